"""What every program shows on its terminal: its own lines; libraries' chatter held back unless `-v 1`.

- `QuietLibraries`: unless `-v 1`, the INFO lines libraries log (TensorFlow, TFDS, matplotlib,
  Beam; e.g. MirroredStrategy's per-step "Reduce to ... then broadcast") are dropped, as are
  Beam's "Discarding unparseable args" repeats (its one "Unparseable argument: ... Did you
  mean" line stays) and the log lines the local runner forwards from its workers. Warnings and
  errors of every library still show.
- `ShortFormat`: unless `-v 1`, a log line is `12:03:04 message` (`12:03:04 warning: message`
  above INFO) instead of absl's `I1206 12:03:04.123456 140085157202816 progress.py:56] message`,
  whose date, thread id and source line say nothing to a user and made every line wrap.
- `track`: tqdm over a long loop on a terminal, else a log line every `interval` seconds.
- `held_stderr`: the process's file descriptor 2, where TensorFlow's C++ start-up banners and
  the local runner's worker processes write, goes through a pipe into memory and is played back
  at the end without those banners; this process's own Python messages still go out at once.
"""

from __future__ import annotations

import collections
import contextlib
import logging as std_logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from absl import logging

_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN_PACKAGES = tuple(
    os.path.join(_PROJECT, p) + os.sep for p in ("pipelines", "storage", "crawler", "cli", "trainer", "imaging")
)
_FORWARDED = ("worker_handlers.py", "local_job_service.py")  # the local runner relaying its workers' logs

# Lines of C++ libraries (TensorFlow, gRPC via absl's C++ logging) that say nothing to a user:
# INFO/WARNING lines, absl's note that it logs before being initialised, the CPU feature
# banner's second line, CUDA's failure to start on a machine without a GPU. TensorFlow writes
# its start-up banners before it reads TF_CPP_MIN_LOG_LEVEL, so only a filter hides them.
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*"
    r"|E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] .*"
    r"|To enable the following instructions: .*in other operations, rebuild TensorFlow.*"
)


def verbose() -> bool:
    """True with `-v 1` (`--verbosity=1`) or more: show everything."""
    return logging.get_verbosity() >= 1


class QuietLibraries(std_logging.Filter):
    """A filter for absl's handler: see the module docstring (everything passes with -v 1)."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if verbose():
            return True
        if record.pathname.endswith(_FORWARDED):
            return False  # a failing element's 300-line traceback, per retry: the driver says it in one line
        if record.levelno >= std_logging.WARNING:
            return not record.getMessage().startswith("Discarding unparseable args")
        return record.pathname.startswith(_OWN_PACKAGES)


class ShortFormat(std_logging.Formatter):
    """absl's handler's formatter: see the module docstring (absl's own format with -v 1)."""

    def __init__(self, full: std_logging.Formatter):
        super().__init__()
        self.full = full

    def format(self, record: std_logging.LogRecord) -> str:
        if verbose():
            return self.full.format(record)
        level = "" if record.levelno <= std_logging.INFO else f"{record.levelname.lower()}: "
        text = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def quiet_libraries() -> None:
    """Installs QuietLibraries and ShortFormat on absl's handler (once) and mutes matplotlib's font
    search even with -v 1."""
    handler = logging.get_absl_handler()
    if not any(isinstance(f, QuietLibraries) for f in handler.filters):
        handler.addFilter(QuietLibraries())
    if not isinstance(handler.python_handler.formatter, ShortFormat):
        handler.setFormatter(ShortFormat(handler.python_handler.formatter or logging.PythonFormatter()))
    std_logging.getLogger("matplotlib").setLevel(std_logging.WARNING)


@contextlib.contextmanager
def held_stderr():
    """Holds back file descriptor 2 (inherited by the local runner's workers, written by C++ libraries)
    while the block runs; this process's Python stderr (sys.stderr, absl's log lines, tqdm) goes on live.

    What was held (its last 1 MB; kept in memory, nothing touches a disk that may be full) is
    played back without the NOISE lines when the block succeeds, and dropped when it raises: a
    failing worker prints its traceback there (hundreds of lines, once per retry), and the
    driver then says what failed in one line. -v 1 holds nothing back.
    """
    if verbose():
        yield
        return
    held: collections.deque[bytes] = collections.deque()
    size = [0]
    read_end, write_end = os.pipe()

    def drain():
        while chunk := os.read(read_end, 65536):
            held.append(chunk)
            size[0] += len(chunk)
            while size[0] > 1 << 20 and len(held) > 1:
                size[0] -= len(held.popleft())

    reader = threading.Thread(target=drain, name="held-stderr", daemon=True)
    reader.start()
    sys.stderr.flush()
    saved = os.dup(2)
    live = open(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    absl_stream = logging.get_absl_handler().python_handler
    old_sys, old_absl = sys.stderr, absl_stream.stream
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = absl_stream.stream = live
    ok = False
    try:
        yield
        ok = True
    finally:
        live.flush()
        sys.stderr, absl_stream.stream = old_sys, old_absl
        live.close()
        os.dup2(saved, 2)  # the pipe ends when every worker that inherited it has exited
        os.close(saved)
        reader.join(timeout=2)
        if ok:
            text = b"".join(list(held)).decode("utf-8", "replace")
            sys.stderr.write("".join(line for line in text.splitlines(True) if not NOISE.fullmatch(line.rstrip())))
            sys.stderr.flush()


def track(items: Iterable, desc: str, total: int | None = None, unit: str = "", interval: float = 10.0) -> Iterator:
    """Yields `items`, showing progress: a tqdm bar on a terminal, else a log line every `interval` seconds."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit or "it", leave=False, file=sys.stderr)
        return
    last = time.monotonic()
    for n, item in enumerate(items, 1):
        yield item
        if time.monotonic() - last >= interval:
            last = time.monotonic()
            logging.info("%s: %d%s %s so far", desc, n, f" of {total}" if total else "", unit)
