"""Skip the interpreter's final garbage collections when a process exits (`skip_final_gc`).

When a Python process that imported large libraries exits, the interpreter tears its modules
down and runs full garbage collections over everything they still hold. Measured on the
2-core machine: ~0.35 s for a Beam worker process (Beam, TFDS, NumPy, Pillow), ~1 s for a
process that imported TensorFlow and Keras. The local Beam runner stops its workers one after
the other and waits for each to exit, so a build paid that once per worker; every command paid
it once more.

`gc.freeze()` run at exit moves every object into the permanent generation those collections
skip (about 0.1 s is left). Objects are still freed by reference counting while the modules
are cleared; only objects kept alive by reference cycles are left to the operating system,
and Python does not promise to finalise those at exit anyway (see `object.__del__`). Nothing
in this project relies on a collection at exit: files are closed explicitly.

Not the same as trainer.shutdown.fast_exit, which ends a process at once (`os._exit`, no
atexit handlers or destructors) once a training run's files are written: here the process
still exits normally (atexit handlers, flushes, module teardown), only without the collections.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_gc() -> None:
    """Freezes the heap when this process exits; safe to call any number of times."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
