"""What the pipelines' programs show on their terminal: their own lines and progress; libraries quiet.

- `QuietLibraries`, `quiet_libraries`, `held_stderr`, `verbose`: the project's shared quiet console
  (cli/console.py), handed on here.
- `track`: tqdm over a long loop on a terminal, else a log line every `interval` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

from absl import logging

from cli.console import NOISE, QuietLibraries, held_stderr, quiet_libraries, verbose

__all__ = ["NOISE", "QuietLibraries", "held_stderr", "quiet_libraries", "track", "verbose"]


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
