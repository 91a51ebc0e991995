"""What the trainer shows on its terminal: its own lines (trainer/progress.py); libraries quiet.

Unless `-v 1` (`--verbosity=1`): TensorFlow's C++ log lines below ERROR are off
(TF_CPP_MIN_LOG_LEVEL, read when TensorFlow loads, so `quiet` runs before its import), its
start-up banners (written before it reads that variable) are filtered out of the start
(`starting`), and libraries' INFO lines, among them MirroredStrategy's "Reduce to
/job:localhost/... then broadcast" at every new step function, are dropped (cli/console.py).
Warnings and errors of the trainer and of every Python library still show.
"""

from __future__ import annotations

import os

from cli.console import held_stderr, quiet_libraries, verbose

# TensorFlow's C++ levels: 0 all, 1 no INFO, 2 no WARNING (e.g. tf.data's auto-shard notes), 3 no ERROR.
QUIET_CPP_LEVEL = "2"


def quiet() -> None:
    """Sets up the quiet console; call after the flags are parsed and before TensorFlow is imported.
    A TF_CPP_MIN_LOG_LEVEL set in the environment is kept."""
    if not verbose() and not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_CPP_LEVEL
    quiet_libraries()


def starting():
    """Around TensorFlow's import and device setup: its C++ start-up banners held back and filtered."""
    return held_stderr()
