"""What the pipelines' programs show on their terminal: their own lines and progress; libraries quiet.

- `QuietLibraries`, `quiet_libraries`, `held_stderr`, `verbose`, `track`: the project's shared
  quiet console (cli/console.py), handed on here.
"""

from __future__ import annotations

from cli.console import NOISE, QuietLibraries, held_stderr, quiet_libraries, track, verbose

__all__ = ["NOISE", "QuietLibraries", "held_stderr", "quiet_libraries", "track", "verbose"]
