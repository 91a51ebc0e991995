"""Ending a training process on time: a deadline after SIGTERM, and an exit that waits for nothing.

Preemption gives a process about 30 s between SIGTERM and SIGKILL. The loop's SIGTERM handler
only sets a flag, read after the step in progress, because Python runs signal handlers in the
main thread between bytecodes: while that thread is inside a TensorFlow step, nothing runs. A
step that does not return (64 logical devices on 2 cores took over 15 minutes for their first
one) would keep the process past any deadline. `StopWatchdog` does not need the main thread:
Python's C-level handler writes the signal number to a wakeup file descriptor
(`signal.set_wakeup_fd`), a thread reads it and, if the process is still alive `grace_seconds`
later, says so in one line and ends it with exit code 143, keeping the last checkpoint.

Once the checkpoint is saved, what remains is teardown, and teardown can wait a long time:
destroying a tf.data iterator joins its autotuning thread, which was seen asleep for up to a
minute (45-75 s after "checkpoint saved" on a loaded 2-core machine; gdb showed the main thread in
`RootDataset::Iterator::~Iterator` waiting for `Model::OptimizeLoop`). `fast_exit` flushes the
logs and standard streams and ends the process without running destructors; callers use it
when every file is written and closed.
"""

from __future__ import annotations

import logging as std_logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from absl import logging

SIGTERM_EXIT = 143


def fast_exit(code: int) -> None:
    """Ends the process now with `code`, after flushing the logs and stdout/stderr; no
    destructors, atexit handlers or thread joins run (TensorFlow's can take a minute)."""
    try:
        logging.flush()
        std_logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


class StopWatchdog:
    """Within the `with` block, SIGTERM starts a deadline: the process ends `grace_seconds` later
    at the latest (exit 143), whatever its main thread is doing. Without a signal it stands down
    when the block ends; after one it stays armed until the process ends.

    `last_checkpoint()` names the checkpoint a cut-off process leaves, for its last line.
    Installs Python's signal wakeup file descriptor (main thread only; elsewhere the watchdog
    does nothing and says so in the log).
    """

    def __init__(self, grace_seconds: float, last_checkpoint: Callable[[], str | None]):
        self.grace_seconds = grace_seconds
        self.last_checkpoint = last_checkpoint
        self.signalled = threading.Event()
        self._read_fd = self._write_fd = None
        self._previous_fd = -1

    def __enter__(self) -> StopWatchdog:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)  # the C handler must never block
        try:
            self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: no signal reaches this code anyway
            os.close(read_fd)
            os.close(write_fd)
            logging.info("SIGTERM deadline not armed (not the main thread)")
            return self
        self._read_fd, self._write_fd = read_fd, write_fd
        threading.Thread(target=self._watch, name="sigterm-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._write_fd is None or self.signalled.is_set():
            return  # signalled: the deadline holds until the process ends
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._write_fd)  # the reader sees the end of the pipe and stops
        self._write_fd = None

    def _watch(self) -> None:
        with os.fdopen(self._read_fd, "rb", buffering=0) as pipe:
            while True:
                data = pipe.read(64)
                if not data:
                    return
                if signal.SIGTERM in data:
                    break
        self.signalled.set()
        time.sleep(self.grace_seconds)
        last = self.last_checkpoint() or "none"
        logging.warning(
            "SIGTERM: the step in progress did not finish within %gs of SIGTERM; exiting with the last "
            "checkpoint kept (%s); run the same command to resume",
            self.grace_seconds,
            last,
        )
        fast_exit(SIGTERM_EXIT)
