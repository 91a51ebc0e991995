"""Deterministic sharding: which shard an example goes to, and writing one shard.

Shard contents depend only on the keys (hash -> shard, sorted by key within a shard), not
on how many workers ran or in which order they finished: two runs with the same inputs and
seed write byte-identical shards.

Shards are written without TensorFlow (TFRecord framing with a compiled CRC32C, files through
Beam's FileSystems, so gs:// and the other Beam filesystems work): a Beam worker that imported
TensorFlow would spend seconds starting up before its first image.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import uuid

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

DEFAULT_SHARD_SIZE_MB = 128.0


def num_shards_for(total_bytes: int, shard_size_mb: float, fixed: int = 0) -> int:
    if fixed > 0:
        return fixed
    return max(1, math.ceil(total_bytes / (shard_size_mb * 1024 * 1024)))


def shard_of(key: str, num_shards: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % num_shards


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def tfrecord_frame(record: bytes) -> bytes:
    """One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data."""
    length = struct.pack("<Q", len(record))
    return length + _masked_crc(length) + record + _masked_crc(record)


def write_shard(path: str, records: list[tuple[str, bytes]], compression: str = "") -> tuple[int, int]:
    """Writes (key, serialized example) records sorted by key to `path` via a temp name.

    `compression`: "" or "GZIP". Returns (number of records, bytes written).
    """
    records = sorted(records, key=lambda kv: kv[0])
    return write_framed(path, [tfrecord_frame(example) for _, example in records], compression)


def write_framed(path: str, framed: list[bytes], compression: str = "") -> tuple[int, int]:
    """Writes already framed TFRecords, in the order given, to `path` via a temp name (see write_shard)."""
    tmp = f"{path}.incomplete-{uuid.uuid4().hex[:8]}"
    kind = CompressionTypes.GZIP if compression.upper() == "GZIP" else CompressionTypes.UNCOMPRESSED
    with FileSystems.create(tmp, compression_type=kind) as f:
        for record in framed:
            f.write(record)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return len(framed), FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def read_framed(path: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    """The framed TFRecords at (offset, length) `ranges` of an uncompressed file, in the order given.

    Reads in offset order, one read per run of adjacent ranges. A range that is not exactly
    one whole record (its length header disagrees) raises IOError naming the file and offset.
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    out: list[bytes] = [b""] * len(ranges)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        i = 0
        while i < len(order):
            start = ranges[order[i]][0]
            end, j = start + ranges[order[i]][1], i + 1
            while j < len(order) and ranges[order[j]][0] == end:
                end += ranges[order[j]][1]
                j += 1
            f.seek(start)
            block = f.read(end - start)
            pos = 0
            for k in order[i:j]:
                offset, length = ranges[k]
                record = block[pos:pos + length]
                if length < 16 or len(record) != length or struct.unpack("<Q", record[:8])[0] != length - 16:
                    raise IOError(f"{path}: no whole TFRecord of {length} bytes at offset {offset}")
                out[k] = record
                pos += length
            i = j
    return out


def move_dir_contents(src: str, dst: str) -> None:
    """Moves every file of `src` into `dst` (created), then removes `src`."""
    import tensorflow as tf  # driver side only

    tf.io.gfile.makedirs(dst)
    for name in sorted(tf.io.gfile.listdir(src)):
        tf.io.gfile.rename(os.path.join(src, name), os.path.join(dst, name), overwrite=True)
    tf.io.gfile.rmtree(src)
