"""What every program of the project does the same way at its edge: parsing its flags.

A flag with a bad value (`--workers=abc`, `--num_shards=-3`, `--phase=bogus`) is a user's
mistake: one `error:` line on stderr naming the flag and the cause, exit 2 (README's table),
before any work. absl's own handler prints the usage text or two FATAL lines and exits 1; a
custom `flags_parser` (the Beam programs keep unknown flags as pipeline options) bypasses even
that and ends in a traceback.
"""

from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv: list[str], known_only: bool = False) -> list[str]:
    """absl's parse of `argv`; `known_only` leaves unknown flags in the result (Beam pipeline options).
    Use as `app.run(main, flags_parser=parse_flags)` (or a lambda passing `known_only=True`)."""
    try:
        return flags.FLAGS(argv, known_only=known_only)
    except flags.Error as e:
        print(f"error: {' '.join(str(e).split())} (see --help)", file=sys.stderr, flush=True)
        sys.exit(2)
    except SystemExit as e:
        # absl's --help, --helpshort, --helpfull and --helpxml print what was asked for, then exit 1:
        # help a user asked for is not a failure.
        sys.exit(0 if e.code == 1 else e.code)
