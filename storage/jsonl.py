"""JSON Lines on any storage: read, written whole, or appended to so that a kill loses little.

Appending differs by store, and `appender(path)` picks the way:
- a local disk appends each line to the file and flushes it (a kill loses no line; a line
  torn by a kill mid-write is dropped by the readers and cut off by the next appender);
- an object store cannot append: lines are buffered and written as whole segment objects
  next to the file, `.<name>.parts/<writer>-<seq>.jsonl`, every `flush_lines` lines,
  `flush_seconds` or `flush()`; `close()` merges the file and its segments into the file
  (written whole) and deletes the segments. A kill loses the lines not yet flushed.
`read` returns the file's lines followed by its segments' (in writer and sequence order), so a
store killed before its merge reads complete; the next appender (or `write`) merges it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator

from storage import fs


def dumps(obj: dict) -> str:
    """One line: sorted keys, UTF-8 kept as is."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n"


def segments_dir(path: str) -> str:
    return fs.join(fs.dirname(path), f".{fs.basename(path)}.parts")


def _segments(path: str) -> list[str]:
    folder = segments_dir(path)
    return [fs.join(folder, name) for name in fs.listdir(folder)] if fs.isdir(folder) else []


def exists(path: str) -> bool:
    """The file, or segments of it (a store killed before its first merge has only those)."""
    return fs.exists(path) or fs.isdir(segments_dir(path))


def read(path: str) -> Iterator[tuple[str, dict]]:
    """('file:line', object) for every complete line of the file, then of its segments.

    A missing file reads as empty; a torn last line (a kill mid-append) is skipped; any other
    line that is not JSON raises ValueError naming the file and line. When segments exist, a
    line already read is not returned again (a merge killed after writing the file but before
    deleting its segments leaves both).
    """
    segments = _segments(path)
    seen: set[str] | None = set() if segments else None
    for source in [path, *segments]:
        try:
            text = fs.read_text(source)
        except FileNotFoundError:
            continue
        for lineno, line in enumerate(text.splitlines(keepends=True), 1):
            if not line.endswith("\n"):
                break  # torn by a kill mid-write; the next appender cuts it off
            if not line.strip() or (seen is not None and (line in seen or seen.add(line))):
                continue
            try:
                yield f"{source}:{lineno}", json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{source}:{lineno}: not valid JSON ({e})") from e


def read_all(path: str) -> list[dict]:
    return [obj for _, obj in read(path)]


def write(path: str, objs: Iterable[dict]) -> int:
    """Replaces the file (and its segments) with these objects, written whole; returns how many."""
    lines = [dumps(o) for o in objs]
    fs.write_text(path, "".join(lines))
    for segment in _segments(path):
        fs.delete(segment)
    return len(lines)


def merge(path: str) -> None:
    """Writes the file's segments into it and deletes them (nothing to do without segments)."""
    if _segments(path):
        write(path, read_all(path))


def _repair(path: str) -> None:
    """Cuts off a torn last line left by a killed local appender."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


class Appender:
    """Appends JSON objects to `path`, one a line; see the module docstring for what a kill loses."""

    def __init__(self, path: str, flush_lines: int = 256, flush_seconds: float = 5.0):
        self.path = path
        merge(path)
        self._local = fs.is_local(path)
        if self._local:
            _repair(path)
            fs.makedirs(os.path.dirname(path) or ".")
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        else:
            self._buffer: list[str] = []
            self._flush_lines, self._flush_seconds = flush_lines, flush_seconds
            self._last_flush = time.monotonic()
            self._writer = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
            self._seq = 0

    def write(self, obj: dict) -> None:
        if self._local:
            self._file.write(dumps(obj))
            self._file.flush()
            return
        self._buffer.append(dumps(obj))
        if len(self._buffer) >= self._flush_lines or time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Makes every line written so far survive a kill (local: fsync; object store: a segment)."""
        if self._local:
            self._file.flush()
            os.fsync(self._file.fileno())
            return
        if self._buffer:
            fs.write_text(
                fs.join(segments_dir(self.path), f"{self._writer}-{self._seq:06d}.jsonl"), "".join(self._buffer)
            )
            self._seq += 1
            self._buffer = []
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flushes, and on an object store merges the segments into the file."""
        self.flush()
        if self._local:
            self._file.close()
        else:
            merge(self.path)
