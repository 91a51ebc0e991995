"""One storage layer for the three stages: local paths, gs:// and s3:// (any Apache Beam filesystem).

`storage.fs`: files (read, write whole, stream, list, rename, delete), path checks and the
preflight every program runs on the paths it is given; `storage.jsonl`: JSON Lines, read,
written whole, or appended to on a disk or an object store alike.
"""

from storage import fs, jsonl
from storage.fs import StorageError

__all__ = ["StorageError", "fs", "jsonl"]
