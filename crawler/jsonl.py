"""JSON Lines that survive a kill: appends are whole lines, reads drop a torn last line."""

from __future__ import annotations

import json
import os
from typing import Iterator


def read(path: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every complete line; a torn last line is skipped."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.endswith("\n"):
                return  # torn by a kill mid-write; `repair` removes it before appending
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from e


def repair(path: str) -> None:
    """Truncates a torn last line left by a killed writer."""
    if not os.path.exists(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class Appender:
    """Appends one JSON object per line, flushed at once (a killed process loses no line)."""

    def __init__(self, path: str):
        repair(path)
        self._f = open(path, "a", encoding="utf-8")

    def write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
