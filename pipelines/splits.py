"""Deterministic, class-stratified splits by a salted hash of the key (or of its group)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def parse_splits(spec: str) -> list[tuple[str, float]]:
    """'train:0.8,validation:0.1,test:0.1' -> [('train', 0.8), ...]; fractions must sum to 1."""
    out = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, sep, frac = part.partition(":")
        try:
            value = float(frac)
        except ValueError:
            value = -1
        if not sep or not name or not 0 < value <= 1:
            raise ValueError(f"bad split {part!r} in --splits={spec!r}; expected name:fraction")
        out.append((name.strip(), value))
    names = [n for n, _ in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"--splits={spec!r} must name each split once")
    if abs(sum(f for _, f in out) - 1) > 1e-6:
        raise ValueError(f"--splits={spec!r} fractions sum to {sum(f for _, f in out):g}, not 1")
    return out


def _rank(salt: str, unit: str) -> str:
    return hashlib.sha256(f"{salt}:{unit}".encode()).hexdigest()


def assign_splits(members: Iterable[tuple[str, str]], splits: list[tuple[str, float]], salt: str) -> dict[str, str]:
    """Splits one class's records exactly by the fractions.

    Args:
      members: (key, group) pairs of one class; records sharing a non-empty group move
        together, so near-duplicates never straddle two splits.
      splits: from parse_splits.
      salt: changes the assignment without changing the data.
    Returns:
      key -> split name. Units (groups or single keys) are ordered by a salted hash and cut
      at the cumulative fractions (largest-remainder rounding, so counts are exact).
    """
    units: dict[str, list[str]] = {}
    for key, group in members:
        units.setdefault(group or f"key:{key}", []).append(key)
    order = sorted(units, key=lambda u: _rank(salt, u))
    n = sum(len(v) for v in units.values())
    bounds, acc = [], 0.0
    for _, frac in splits:
        acc += frac
        bounds.append(round(acc * n))
    out: dict[str, str] = {}
    seen = 0
    for unit in order:
        idx = next((i for i, b in enumerate(bounds) if seen < b), len(splits) - 1)
        for key in units[unit]:
            out[key] = splits[idx][0]
        seen += len(units[unit])
    return out
