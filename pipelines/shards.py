"""Deterministic sharding: which shard an example goes to, and writing one shard.

Shard contents depend only on the keys (hash -> shard, sorted by key within a shard), not
on how many workers ran or in which order they finished: two runs with the same inputs and
seed write byte-identical shards.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid

import tensorflow as tf

DEFAULT_SHARD_SIZE_MB = 128.0


def num_shards_for(total_bytes: int, shard_size_mb: float, fixed: int = 0) -> int:
    if fixed > 0:
        return fixed
    return max(1, math.ceil(total_bytes / (shard_size_mb * 1024 * 1024)))


def shard_of(key: str, num_shards: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % num_shards


def write_shard(path: str, records: list[tuple[str, bytes]], compression: str = "") -> tuple[int, int]:
    """Writes (key, serialized example) records sorted by key to `path` via a temp name.

    Returns (number of records, bytes written).
    """
    records = sorted(records, key=lambda kv: kv[0])
    tmp = f"{path}.incomplete-{uuid.uuid4().hex[:8]}"
    options = tf.io.TFRecordOptions(compression_type=compression or None)
    with tf.io.TFRecordWriter(tmp, options) as w:
        for _, example in records:
            w.write(example)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return len(records), tf.io.gfile.stat(path).length


def move_dir_contents(src: str, dst: str) -> None:
    """Moves every file of `src` into `dst` (created), then removes `src`."""
    tf.io.gfile.makedirs(dst)
    for name in sorted(tf.io.gfile.listdir(src)):
        tf.io.gfile.rename(os.path.join(src, name), os.path.join(dst, name), overwrite=True)
    tf.io.gfile.rmtree(src)
