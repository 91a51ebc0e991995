"""The crawler's output folder: manifest.jsonl next to <class>/<sha256>.<ext> files (local or in a bucket)."""

from __future__ import annotations

from pipelines.readers.base import Record
from storage import fs, jsonl

MANIFEST = "manifest.jsonl"


def _manifest_dir(input_dir: str) -> str | None:
    for d in (input_dir, fs.join(input_dir, "raw")):
        if jsonl.exists(fs.join(d, MANIFEST)):
            return d
    return None


def is_crawl_dir(input_dir: str) -> bool:
    return _manifest_dir(input_dir) is not None


def read_crawl_dir(input_dir: str) -> list[Record]:
    """Records for every manifest line, keeping the crawler's key, URL and perceptual hash."""
    d = _manifest_dir(input_dir)
    if d is None:
        raise ValueError(f"{input_dir} has no {MANIFEST}")
    records = []
    for where, m in jsonl.read(fs.join(d, MANIFEST)):
        try:
            ext = "jpg" if m["format"] == "jpeg" else m["format"]
            records.append(Record(key=m["key"], path=fs.join(d, m["class"], f"{m['sha256']}.{ext}"),
                                  label=m["class"], source=m.get("url", ""), group=m.get("dup_group", "")))
        except KeyError as e:
            raise ValueError(f"{where}: bad manifest line (no {e})") from e
    return records
