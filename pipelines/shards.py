"""Deterministic sharding: which shard an example goes to, and writing one shard.

Shard contents depend only on the keys (hash -> shard, sorted by key within a shard), not
on how many workers ran or in which order they finished: two runs with the same inputs and
seed write byte-identical shards.

Shards are written without TensorFlow (TFRecord framing with a compiled CRC32C, files through
the `storage` layer, so gs://, s3:// and the other Beam filesystems work): a Beam worker that
imported TensorFlow would spend seconds starting up before its first image.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from collections.abc import Iterator

import google_crc32c

from storage import fs

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
    """Writes (key, serialized example) records sorted by key to `path`, whole (`fs.atomic_write`).

    `compression`: "" or "GZIP". Returns (number of records, bytes written).
    """
    records = sorted(records, key=lambda kv: kv[0])
    return write_framed(path, [tfrecord_frame(example) for _, example in records], compression)


def write_framed(path: str, framed: list[bytes], compression: str = "") -> tuple[int, int]:
    """Writes already framed TFRecords, in the order given, to `path` (see write_shard).

    GZIP streams carry no name and time stamp (mtime 0): the same records give the same bytes.
    """
    with fs.atomic_write(path) as raw:
        if compression.upper() == "GZIP":
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                for record in framed:
                    f.write(record)
        else:
            for record in framed:
                raw.write(record)
    return len(framed), fs.size(path)


def read_framed(path: str, ranges: list[tuple[int, int]]) -> list[bytes]:
    """The framed TFRecords at (offset, length) `ranges` of an uncompressed file, in the order given.

    Reads in offset order, one read per run of adjacent ranges. A range that is not exactly
    one whole record (its length header disagrees) raises IOError naming the file and offset.
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    out: list[bytes] = [b""] * len(ranges)
    with fs.open_read(path) as f:
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
                record = block[pos : pos + length]
                if length < 16 or len(record) != length or struct.unpack("<Q", record[:8])[0] != length - 16:
                    raise OSError(f"{path}: no whole TFRecord of {length} bytes at offset {offset}")
                out[k] = record
                pos += length
            i = j
    return out


class CorruptRecord(IOError):
    """A TFRecord file goes bad at record `index` (0-based), `offset` bytes into its (uncompressed) stream."""

    def __init__(self, path: str, index: int, offset: int, reason: str):
        super().__init__(f"{path}: record {index}: {reason}")
        self.index, self.offset, self.reason = index, offset, reason


def read_records(path: str, compression: str = "") -> Iterator[bytes]:
    """Every record of a TFRecord file, both CRCs checked, through the storage layer (any store).

    Raises CorruptRecord at the first record that is cut short ("truncated record at N") or whose
    length or data fails its CRC ("corrupted record at N"), N being its offset, as TensorFlow says.
    """
    with fs.open_read(path) as raw:
        f = gzip.GzipFile(fileobj=raw, mode="rb") if compression.upper() == "GZIP" else raw
        index = offset = 0
        while True:
            try:
                header = f.read(12)
                if not header:
                    return
                if len(header) < 12:
                    raise CorruptRecord(path, index, offset, f"truncated record at {offset}")
                if _masked_crc(header[:8]) != header[8:]:
                    raise CorruptRecord(path, index, offset, f"corrupted record at {offset}")
                (length,) = struct.unpack("<Q", header[:8])
                body = f.read(length + 4)
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise CorruptRecord(path, index, offset, f"bad gzip stream ({e})") from None
            if len(body) < length + 4:
                raise CorruptRecord(path, index, offset, f"truncated record at {offset}")
            if _masked_crc(body[:length]) != body[length:]:
                raise CorruptRecord(path, index, offset, f"corrupted record at {offset}")
            yield body[:length]
            index, offset = index + 1, offset + 16 + length
