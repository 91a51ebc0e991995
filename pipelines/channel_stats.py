"""Per-channel mean and standard deviation of a split's images, exact (integer sums), in any order.

Each image gives its pixel count and, per channel, the sum and the sum of squares of its uint8
values (Python integers: no rounding, and the total does not depend on the order the Beam
workers add them in). `summary` turns the total into stats.json's `channel_stats`, on the 0-255
scale, which the trainer reads instead of a pass over the data (`--normalization=dataset`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

SPLIT = "train"  # the split the statistics describe: what a model trained on the data is normalised with


class PixelSums(NamedTuple):
    images: int
    pixels: int  # per channel
    sums: tuple[int, ...]  # per channel
    squares: tuple[int, ...]  # per channel


EMPTY = PixelSums(0, 0, (), ())


def of_image(image: np.ndarray) -> PixelSums:
    """The sums of one HxWxC uint8 image."""
    flat = image.reshape(-1, image.shape[-1]).astype(np.int64)
    return PixelSums(1, flat.shape[0], tuple(int(v) for v in flat.sum(0)), tuple(int(v) for v in (flat * flat).sum(0)))


def add(a: PixelSums, b: PixelSums) -> PixelSums:
    if not a.images:
        return b
    if not b.images:
        return a
    if len(a.sums) != len(b.sums):
        raise ValueError(f"images with {len(a.sums)} and {len(b.sums)} channels in one split")
    return PixelSums(
        a.images + b.images,
        a.pixels + b.pixels,
        tuple(x + y for x, y in zip(a.sums, b.sums)),
        tuple(x + y for x, y in zip(a.squares, b.squares)),
    )


def total(parts: Iterable[PixelSums]) -> PixelSums:
    out = EMPTY
    for p in parts:
        out = add(out, p)
    return out


def summary(sums: PixelSums, split: str = SPLIT) -> dict | None:
    """stats.json's `channel_stats`: {"split", "images", "pixels", "mean": [per channel], "std": [...]}
    (population std, 0-255 scale); None when the split has no image."""
    if not sums.images:
        return None
    n = sums.pixels
    # n^2 * variance = n * sum(x^2) - sum(x)^2, exactly, in integers
    std = [math.sqrt(n * q - s * s) / n for s, q in zip(sums.sums, sums.squares)]
    return {
        "split": split,
        "images": sums.images,
        "pixels": n,
        "mean": [s / n for s in sums.sums],
        "std": std,
    }
