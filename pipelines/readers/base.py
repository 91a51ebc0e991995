"""The record every reader produces."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class Record:
    key: str  # unique and deterministic
    path: str  # where the bytes are (read lazily, inside the pipeline); descriptive only when `data` is set
    label: str  # class name
    source: str = ""  # provenance (URL for crawled images)
    group: str = ""  # duplicate group (set by the job's de-duplication): records of one group share a split
    split: str = ""  # the input's own split, if it has one
    data: bytes | None = None  # the encoded image, for readers that load bytes themselves (TFDS, on workers)
    sha256: str = ""  # of the file, when the reader knows it (the crawler's manifest)
    phash: str = ""  # perceptual hash (crawler.dedup.perceptual_hash), when the reader knows it


def check_unique_keys(records: Iterable[Record]) -> None:
    """Raises ValueError naming the first duplicate keys (TFDS treats them as an error too)."""
    counts = collections.Counter(r.key for r in records)
    dups = [k for k, n in counts.items() if n > 1]
    if dups:
        raise ValueError(f"duplicate keys in the input ({len(dups)}), e.g. {dups[:3]}")


def check_class_names(present: Iterable[str], expected: list[str]) -> None:
    """Raises a one-line ValueError naming the labels missing from / extra to `expected`."""
    present, wanted = set(present), set(expected)
    if len(wanted) != len(expected):
        dups = sorted(n for n, c in collections.Counter(expected).items() if c > 1)
        raise ValueError(f"--class_names lists {dups} more than once")
    if present != wanted:
        parts = []
        if wanted - present:
            parts.append(f"missing from the input: {sorted(wanted - present)}")
        if present - wanted:
            parts.append(f"in the input but not in --class_names: {sorted(present - wanted)}")
        raise ValueError(f"the input's labels disagree with --class_names ({'; '.join(parts)})")
