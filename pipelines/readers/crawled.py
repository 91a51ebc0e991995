"""The crawler's output folder: manifest.jsonl next to <class>/<sha256>.<ext> files."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from pipelines.readers.base import Record

MANIFEST = "manifest.jsonl"


def _manifest_dir(input_dir: str) -> str | None:
    for d in (input_dir, os.path.join(input_dir, "raw")):
        if tf.io.gfile.exists(os.path.join(d, MANIFEST)):
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
    with tf.io.gfile.GFile(os.path.join(d, MANIFEST)) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                m = json.loads(line)
                ext = "jpg" if m["format"] == "jpeg" else m["format"]
                records.append(Record(key=m["key"], path=os.path.join(d, m["class"], f"{m['sha256']}.{ext}"),
                                      label=m["class"], source=m.get("url", ""), group=m.get("dup_group", "")))
            except (KeyError, json.JSONDecodeError) as e:
                raise ValueError(f"{d}/{MANIFEST}:{lineno}: bad manifest line ({e})") from e
    return records
