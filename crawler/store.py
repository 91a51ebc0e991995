"""The crawler's output folder: content-addressed images plus JSONL records.

    <out_dir>/<class>/<sha256>.<ext>   accepted images (file names never come from URLs)
    <out_dir>/manifest.jsonl           one accepted image a line
    <out_dir>/rejected.jsonl           url, class, reason, detail, retryable
    <out_dir>/candidates.jsonl         the discover phase's output
    <out_dir>/crawl_stats.json         totals of the last run

Images are written to a temp name, fsynced and renamed, then their manifest line is
appended: a kill at any moment leaves no partial image and a valid manifest.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

from crawler import jsonl
from crawler.classes import CLASS_NAMES

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
CANDIDATES = "candidates.jsonl"
STATS = "crawl_stats.json"
MANIFEST_FIELDS = ("key", "class", "url", "page_url", "sha256", "width", "height", "bytes", "format",
                   "source", "time")


def write_atomic(path: str, data: bytes) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclasses.dataclass
class StoreState:
    """What an earlier (possibly killed) run already decided."""

    accepted: list[dict]
    rejected: list[dict]

    @property
    def done_urls(self) -> set[str]:
        return {r["url"] for r in self.accepted} | {r["url"] for r in self.rejected}

    def per_class(self) -> collections.Counter:
        return collections.Counter(r["class"] for r in self.accepted)


class Store:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self._manifest: jsonl.Appender | None = None
        self._rejected: jsonl.Appender | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    def load(self) -> StoreState:
        """Reads earlier results; retryable rejections are dropped so they are tried again."""
        jsonl.repair(self.path(MANIFEST))
        jsonl.repair(self.path(REJECTED))
        accepted = [d for _, d in jsonl.read(self.path(MANIFEST))]
        unknown = sorted({d.get("class") for d in accepted} - set(CLASS_NAMES))
        if unknown:
            raise ValueError(f"{self.path(MANIFEST)} holds classes {unknown} that are not in this project's "
                             "class list: use another --out_dir")
        rejected = [d for _, d in jsonl.read(self.path(REJECTED))]
        final = [d for d in rejected if not d.get("retryable")]
        if len(final) != len(rejected):
            tmp = self.path(REJECTED) + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in final)
            os.replace(tmp, self.path(REJECTED))
        return StoreState(accepted, final)

    def open(self) -> None:
        self._manifest = jsonl.Appender(self.path(MANIFEST))
        self._rejected = jsonl.Appender(self.path(REJECTED))

    def close(self) -> None:
        for f in (self._manifest, self._rejected):
            if f:
                f.close()
        self._manifest = self._rejected = None

    def accept(self, record: dict, data: bytes, ext: str) -> str:
        """Writes the image, then its manifest line; returns the image path."""
        class_dir = self.path(record["class"])
        os.makedirs(class_dir, exist_ok=True)
        path = os.path.join(class_dir, f"{record['sha256']}.{ext}")
        write_atomic(path, data)
        self._manifest.write(record)
        return path

    def reject(self, record: dict) -> None:
        self._rejected.write(record)

    def write_stats(self, stats: dict) -> None:
        write_atomic(self.path(STATS), json.dumps(stats, indent=2, sort_keys=True).encode())
