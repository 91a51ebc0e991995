"""Exact (sha256) and near-duplicate (perceptual hash) detection over accepted images."""

from __future__ import annotations

import dataclasses

import imagehash
import numpy as np
from PIL import Image

DEFAULT_HAMMING = 6  # of 64 bits: re-encodes and small resizes land at 0-4
HASH_INPUT_SIDE = 64  # images are reduced to at least this many pixels a side before hashing


def perceptual_hash(image: Image.Image) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits.

    Large images are first box-reduced in grayscale to at least HASH_INPUT_SIDE px a side (what a reduced
    JPEG decode gives), so phash's Lanczos resize to 32x32 is cheap and both paths agree.
    """
    gray = image.convert("L")
    factor = min(gray.size) // HASH_INPUT_SIDE
    if factor > 1:
        gray = gray.reduce(factor)
    return str(imagehash.phash(gray))


@dataclasses.dataclass(frozen=True)
class Match:
    kind: str  # 'duplicate' | 'near_duplicate'
    key: str  # the accepted image it matches
    klass: str
    distance: int
    url: str = ""


class DedupIndex:
    """Accepted images seen so far. Not thread-safe: the download commits in one thread."""

    def __init__(self, max_distance: int = DEFAULT_HAMMING):
        self.max_distance = max_distance
        self._by_sha: dict[str, tuple[str, str, str]] = {}
        self._buffer = np.zeros(64, np.uint64)  # grows by doubling: adding stays O(1) amortised
        self._owners: list[tuple[str, str, str]] = []

    @property
    def _hashes(self) -> np.ndarray:
        return self._buffer[: len(self._owners)]

    def __len__(self) -> int:
        return len(self._owners)

    def find(self, sha256: str, phash: str) -> Match | None:
        if sha256 in self._by_sha:
            key, klass, url = self._by_sha[sha256]
            return Match("duplicate", key, klass, 0, url)
        if len(self._owners):
            x = np.bitwise_xor(self._hashes, np.uint64(int(phash, 16)))
            dist = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
            i = int(np.argmin(dist))
            if dist[i] <= self.max_distance:
                key, klass, url = self._owners[i]
                return Match("near_duplicate", key, klass, int(dist[i]), url)
        return None

    def add(self, sha256: str, phash: str, key: str, klass: str, url: str = "") -> None:
        self._by_sha[sha256] = (key, klass, url)
        n = len(self._owners)
        if n == len(self._buffer):
            self._buffer = np.concatenate([self._buffer, np.zeros(n, np.uint64)])
        self._buffer[n] = np.uint64(int(phash, 16))
        self._owners.append((key, klass, url))
