"""Candidate image URLs: what the discover phase writes and the download phase reads."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Iterator

from crawler import jsonl


@dataclasses.dataclass(frozen=True)
class Candidate:
    url: str
    klass: str  # class slug
    page_url: str = ""  # the page the link was found on
    query: str = ""
    source: str = ""
    thumbnail_url: str = ""
    extra: dict = dataclasses.field(default_factory=dict)  # source-specific (licence, author, ...)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["class"] = d.pop("klass")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Candidate":
        d = dict(d)
        d["klass"] = d.pop("class")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown candidate fields {sorted(unknown)}")
        return cls(**d)


def write_candidates(path: str, candidates: Iterable[Candidate]) -> int:
    """Writes candidates atomically (temp file + rename); returns how many."""
    tmp = f"{path}.tmp-{os.getpid()}"
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for c in candidates:
            f.write(json.dumps(c.to_json(), ensure_ascii=False) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


def read_candidates(path: str) -> Iterator[Candidate]:
    for lineno, d in jsonl.read(path):
        try:
            yield Candidate.from_json(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: bad candidate line ({e})") from e
