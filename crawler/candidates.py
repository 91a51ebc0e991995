"""Candidate image URLs: what the discover phase writes and the download phase reads."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

from storage import jsonl


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
    """Writes candidates whole (any storage); returns how many."""
    return jsonl.write(path, (c.to_json() for c in candidates))


def read_candidates(path: str) -> Iterator[Candidate]:
    for where, d in jsonl.read(path):
        try:
            yield Candidate.from_json(d)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad candidate line ({e})") from e
