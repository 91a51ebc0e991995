"""The crawler's output folder: content-addressed images plus JSONL records.

    <out_dir>/<class>/<sha256>.<ext>   accepted images (file names never come from URLs)
    <out_dir>/manifest.jsonl           one accepted image a line
    <out_dir>/rejected.jsonl           url, class, reason, detail, retryable
                                       (a retracted image keeps its manifest fields)
    <out_dir>/candidates.jsonl         the discover phase's output
    <out_dir>/crawl_stats.json         totals of the last run

Images are written to a temp name, fsynced and renamed, then their manifest line is
appended: a kill at any moment leaves no partial image and a valid manifest.

An accepted image can be retracted later (a near-duplicate of it turned up in another
class): its rejected line (reason `cross_class_duplicate`) is written first, then the
manifest is rewritten without it (temp file + rename) and its file deleted. `load` finishes
a retraction that a kill interrupted, so the manifest never lists a retracted image.
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
RETRACTED = "cross_class_duplicate"  # reason of an accepted image taken back
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
    rejected: list[dict]  # retryable ones included

    @property
    def final_rejected(self) -> list[dict]:
        return [r for r in self.rejected if not r.get("retryable")]

    @property
    def done_urls(self) -> set[str]:
        return {url for url, _ in self.done}

    @property
    def done(self) -> set[tuple[str, str]]:
        """(url, class) pairs decided for good (retryable rejections are tried again)."""
        return {(r["url"], r["class"]) for r in self.accepted} | {(r["url"], r["class"]) for r in self.final_rejected}

    @property
    def retracted(self) -> list[dict]:
        """Images accepted, then taken back as cross-class duplicates (they keep sha256 and phash)."""
        return [r for r in self.rejected if r.get("reason") == RETRACTED and r.get("sha256")]

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
        """Reads earlier results (finishing an interrupted retraction); nothing is dropped.

        Retryable rejections stay in rejected.jsonl (and in the stats) until `forget_retryable`
        is called for the candidates about to be tried again.
        """
        jsonl.repair(self.path(MANIFEST))
        jsonl.repair(self.path(REJECTED))
        accepted = [d for _, d in jsonl.read(self.path(MANIFEST))]
        unknown = sorted({d.get("class") for d in accepted} - set(CLASS_NAMES))
        if unknown:
            raise ValueError(f"{self.path(MANIFEST)} holds classes {unknown} that are not in this project's "
                             "class list: use another --out_dir")
        rejected = [d for _, d in jsonl.read(self.path(REJECTED))]
        state = StoreState(accepted, rejected)
        taken_back = {r["key"] for r in state.retracted}
        if any(r["key"] in taken_back for r in accepted):  # a kill interrupted a retraction
            state.accepted = [r for r in accepted if r["key"] not in taken_back]
            self._rewrite_manifest(state.accepted)
            for r in accepted:
                if r["key"] in taken_back:
                    self._remove_image(r)
        return state

    def forget_retryable(self, pairs: set[tuple[str, str]]) -> None:
        """Drops the retryable rejections of these (url, class) pairs: they are about to be tried again."""
        rejected = [d for _, d in jsonl.read(self.path(REJECTED))]
        kept = [d for d in rejected if not (d.get("retryable") and (d["url"], d["class"]) in pairs)]
        if len(kept) != len(rejected):
            data = "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in kept)
            write_atomic(self.path(REJECTED), data.encode("utf-8"))

    def image_path(self, record: dict) -> str:
        ext = "jpg" if record["format"] == "jpeg" else "png"
        return os.path.join(self.out_dir, record["class"], f"{record['sha256']}.{ext}")

    def _rewrite_manifest(self, records: list[dict]) -> None:
        data = "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in records)
        write_atomic(self.path(MANIFEST), data.encode("utf-8"))

    def _remove_image(self, record: dict) -> None:
        try:
            os.remove(self.image_path(record))
        except FileNotFoundError:
            pass

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

    def retract(self, key: str, detail: dict) -> dict | None:
        """Takes back the accepted image `key`: rejected line, manifest without it, file deleted.

        Args:
          key: the manifest key (`class/sha256`).
          detail: fields for its rejected line (`detail`, `other_url`, ...).
        Returns:
          The rejected line written, or None if `key` is not in the manifest (already retracted).
        """
        accepted = [d for _, d in jsonl.read(self.path(MANIFEST))]
        record = next((d for d in accepted if d.get("key") == key), None)
        if record is None:
            return None
        line = {**record, **detail, "reason": RETRACTED, "retryable": False}
        self._rejected.write(line)  # first: from here on, `load` completes the retraction
        self._manifest.close()
        self._rewrite_manifest([d for d in accepted if d.get("key") != key])
        self._manifest = jsonl.Appender(self.path(MANIFEST))
        self._remove_image(record)
        return line

    def write_stats(self, stats: dict) -> None:
        write_atomic(self.path(STATS), json.dumps(stats, indent=2, sort_keys=True).encode())
