"""The record every reader produces."""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterable


@dataclasses.dataclass(frozen=True)
class Record:
    key: str  # unique and deterministic
    path: str  # where the bytes are (read lazily, inside the pipeline)
    label: str  # class name
    source: str = ""  # provenance (URL for crawled images)
    group: str = ""  # near-duplicate group: records of one group share a split
    split: str = ""  # the input's own split, if it has one


def check_unique_keys(records: Iterable[Record]) -> None:
    """Raises ValueError naming the first duplicate keys (TFDS treats them as an error too)."""
    counts = collections.Counter(r.key for r in records)
    dups = [k for k, n in counts.items() if n > 1]
    if dups:
        raise ValueError(f"duplicate keys in the input ({len(dups)}), e.g. {dups[:3]}")
