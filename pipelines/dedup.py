"""Duplicate groups of a dataset's inputs, and the split plan that keeps each group in one split.

Real photo sets hold the same picture under two names (tf_flowers does), and a re-encode
or a resize of it under a third. A split cut by file name can then put one copy in train
and another in test, and the test score measures memory. The Beam job therefore
fingerprints every input (sha256 of its bytes, and the crawler's perceptual hash:
crawler.dedup.perceptual_hash, one implementation) and groups inputs that are exact copies
or within `max_distance` bits of each other (transitively).

`--dedup` then says what to do with a group:
- `group` (default): keep every copy, and put the whole group in one split (the split of
  its first key; groups that span classes too). With `--keep_input_splits` the input's own
  splits win: groups that straddle them are counted and warned about.
- `drop`: keep the group's first key (sorted), dead-letter the other copies
  (`duplicate`: same bytes; `near_duplicate`: same picture, other bytes).
- `off`: no fingerprints (one read of each file less), splits by key as before.

Finding near duplicates compares every pair of perceptual hashes (numpy, in blocks): about
a second for 10,000 inputs, a minute or more past 100,000.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image

from crawler import dedup as crawler_dedup
from pipelines import splits

MODES = ("group", "drop", "off")
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


class Fingerprint(NamedTuple):
    key: str
    label: str
    split: str  # the input's own split ('' if none)
    sha256: str  # '' when the input could not be read (the decode step dead-letters it)
    phash: str  # '' when it could not be decoded


@dataclasses.dataclass(frozen=True)
class Plan:
    split: dict[str, str]  # key -> split
    drop: dict[str, tuple[str, str]]  # key -> (reason, detail) of a dropped copy
    stats: dict


def phash_of(data: bytes) -> str:
    """The crawler's perceptual hash of encoded bytes ('' if they do not decode); JPEGs are decoded
    reduced and in grayscale in the DCT domain, as the crawler does."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            if img.format == "JPEG":
                img.draft("L", (crawler_dedup.HASH_INPUT_SIDE, crawler_dedup.HASH_INPUT_SIDE))
            img.load()
            return crawler_dedup.perceptual_hash(img)
    except Exception:  # noqa: BLE001 - any undecodable input: no near-duplicate search for it
        return ""


def fingerprint(record, read) -> Fingerprint:
    """The record's hashes: the reader's own (crawler manifest), else from its bytes (`read(record)`)."""
    if record.sha256 and record.phash:
        return Fingerprint(record.key, record.label, record.split, record.sha256, record.phash)
    try:
        data = record.data if record.data is not None else read(record)
    except Exception:  # noqa: BLE001 - the decode step reads it again and dead-letters it with the cause
        return Fingerprint(record.key, record.label, record.split, "", "")
    return Fingerprint(record.key, record.label, record.split, hashlib.sha256(data).hexdigest(), phash_of(data))


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def groups(fps: list[Fingerprint], max_distance: int) -> list[list[Fingerprint]]:
    """Groups of two or more inputs that are exact copies or near duplicates (transitively), each
    sorted by key, the list sorted by first key."""
    fps = sorted(fps, key=lambda f: f.key)
    parent = list(range(len(fps)))

    def union(i: int, j: int) -> None:
        a, b = _find(parent, i), _find(parent, j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_of: dict[str, int] = {}
    for i, f in enumerate(fps):
        if f.sha256:
            union(i, first_of.setdefault(f.sha256, i))
    hashed = [i for i, f in enumerate(fps) if f.phash]
    if max_distance >= 0 and len(hashed) > 1:
        values = np.array([int(fps[i].phash, 16) for i in hashed], np.uint64)
        as_bytes = values.view(np.uint8).reshape(-1, 8)
        for start in range(0, len(hashed), 128):  # a block of rows against every later hash
            block = as_bytes[start : start + 128]
            xor = np.bitwise_xor(block[:, None, :], as_bytes[None, start:, :])
            dist = _POPCOUNT[xor].sum(axis=2, dtype=np.int32)
            for r, c in zip(*np.nonzero(dist <= max_distance)):
                if start + c > start + r:
                    union(hashed[start + r], hashed[start + c])
    members: dict[int, list[Fingerprint]] = collections.defaultdict(list)
    for i, f in enumerate(fps):
        members[_find(parent, i)].append(f)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0].key)


def plan(
    fps: list[Fingerprint], mode: str, max_distance: int, split_spec: str, salt: str, keep_input_splits: bool
) -> Plan:
    """Every input's split, the copies to drop, and what was found (for stats.json)."""
    found = groups(fps, max_distance) if mode != "off" else []
    group_of = {f.key: g[0].key for g in found for f in g}
    drop: dict[str, tuple[str, str]] = {}
    if mode == "drop":
        for g in found:
            kept = g[0]
            for f in g[1:]:
                same = bool(f.sha256) and f.sha256 == kept.sha256
                drop[f.key] = (
                    "duplicate" if same else "near_duplicate",
                    f"{'same bytes' if same else 'same picture'} as {kept.key}",
                )
    if keep_input_splits:
        split = {f.key: f.split for f in fps}
    else:
        by_class: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for f in fps:
            by_class[f.label].append((f.key, group_of.get(f.key, "")))
        split = {}
        for members in by_class.values():
            split.update(splits.assign_splits(members, splits.parse_splits(split_spec), salt))
        for g in found:  # a group across classes: every copy goes where its first key went
            for f in g[1:]:
                split[f.key] = split[g[0].key]
    straddling = sum(1 for g in found if len({split[f.key] for f in g if f.key not in drop}) > 1)
    stats = {
        "mode": mode,
        "max_distance": max_distance,
        "groups": len(found),
        "inputs_in_groups": sum(len(g) for g in found),
        "exact_groups": sum(1 for g in found if len({f.sha256 for f in g}) == 1),
        "cross_class_groups": sum(1 for g in found if len({f.label for f in g}) > 1),
        "groups_across_splits": straddling,
        "dropped": len(drop),
        "examples": [[f.key for f in g][:5] for g in found[:10]],
    }
    return Plan(split, drop, stats)
