"""What the pipelines' programs show on their terminal: their own lines and progress; libraries quiet.

- `parse_flags`: the shared flag parser, with `--help`/`--helpfull` exiting 0 (absl exits 1).
- `QuietLibraries`, `quiet_libraries`, `held_stderr`, `verbose`: the project's shared quiet console
  (cli/console.py), handed on here.
- `track`: tqdm over a long loop on a terminal, else a log line every `interval` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from absl import logging

import cli
from cli.console import NOISE, QuietLibraries, held_stderr, quiet_libraries, verbose

__all__ = ["NOISE", "QuietLibraries", "held_stderr", "parse_flags", "quiet_libraries", "track", "verbose"]

_HELP_FLAGS = ("--help", "-help", "--helpshort", "--helpfull", "-?", "--helpxml")


def parse_flags(argv: list[str], known_only: bool = False) -> list[str]:
    """cli.parse_flags; asking for help is not an error: exit 0 after absl printed it."""
    try:
        return cli.parse_flags(argv, known_only=known_only)
    except SystemExit as e:
        if e.code == 1 and any(a.split("=")[0] in _HELP_FLAGS for a in argv[1:]):
            raise SystemExit(0) from None
        raise


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
