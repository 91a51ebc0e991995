"""The crawler's output folder: content-addressed images plus JSONL records.

    <out_dir>/<class>/<sha256>.<ext>   accepted images (file names never come from URLs)
    <out_dir>/manifest.jsonl           one accepted image a line
    <out_dir>/rejected.jsonl           url, class, reason, detail, retryable
                                       (a retracted image keeps its manifest fields)
    <out_dir>/candidates.jsonl         the discover phase's output
    <out_dir>/crawl_stats.json         totals of the last run
    <out_dir>/.download/               work area of a download in progress (deleted at its end):
        staging/<sha256>.<ext>           fetched and validated images waiting for their decision
        parts/part-XXXXX-of-YYYYY.jsonl  Beam runner: one partition's fetch outcomes
        parts/worker-<run>-<host>-<pid>.json  Beam runner: one worker process's request counts

Fetching workers write an image to staging (temp name, fsynced, renamed: content-addressed,
so two workers writing the same image is harmless); the single committing thread then
renames it into <class>/ and appends its manifest line. A kill at any moment leaves no
partial image under <class>/ and a valid manifest; the next run empties the work area.

An accepted image can be retracted later (a near-duplicate of it turned up in another
class): its rejected line (reason `cross_class_duplicate`) is written first and its file
deleted; the manifest is rewritten without it (temp file + rename) when the store is closed,
once however many images were retracted. `load` finishes a retraction that a kill
interrupted, so what `load` returns never lists a retracted image.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import uuid

from crawler import jsonl
from crawler.classes import CLASS_NAMES

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
CANDIDATES = "candidates.jsonl"
STATS = "crawl_stats.json"
WORK_DIR = ".download"
RETRACTED = "cross_class_duplicate"  # reason of an accepted image taken back
MANIFEST_FIELDS = ("key", "class", "url", "page_url", "sha256", "width", "height", "bytes", "format",
                   "source", "time")


def write_atomic(path: str, data: bytes) -> None:
    """Writes `data` to a unique temp name next to `path`, fsyncs it and renames it into place.

    Writers of the same path (threads, processes, machines) never share a temp file, so the
    last rename wins with a whole file.
    """
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
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
        self._records: dict[str, dict] | None = None  # the manifest by key, once needed
        self._retracted_since_open = False

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    @property
    def staging_dir(self) -> str:
        return os.path.join(self.out_dir, WORK_DIR, "staging")

    @property
    def parts_dir(self) -> str:
        return os.path.join(self.out_dir, WORK_DIR, "parts")

    def clear_work(self) -> None:
        """Deletes the work area (staged images, parts): left over by a killed run, or done with."""
        shutil.rmtree(self.path(WORK_DIR), ignore_errors=True)

    def stage(self, data: bytes, sha256: str, ext: str) -> str:
        """Writes a validated image to staging (thread- and process-safe); returns its path."""
        os.makedirs(self.staging_dir, exist_ok=True)
        path = os.path.join(self.staging_dir, f"{sha256}.{ext}")
        if not os.path.exists(path):  # content-addressed: a file of that name is that image
            write_atomic(path, data)
        return path

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
        self._records = {r["key"]: r for r in state.accepted}
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
        """Closes the files, rewriting the manifest once if images were retracted since `open`."""
        for f in (self._manifest, self._rejected):
            if f:
                f.close()
        self._manifest = self._rejected = None
        if self._retracted_since_open:
            self._rewrite_manifest(list(self._records.values()))
            self._retracted_since_open = False

    def accept(self, record: dict, data: bytes, ext: str) -> str:
        """Writes the image, then its manifest line; returns the image path."""
        class_dir = self.path(record["class"])
        os.makedirs(class_dir, exist_ok=True)
        path = os.path.join(class_dir, f"{record['sha256']}.{ext}")
        write_atomic(path, data)
        self._add(record)
        return path

    def _add(self, record: dict) -> None:
        self._manifest.write(record)
        if self._records is not None:
            self._records[record["key"]] = record

    def accept_staged(self, record: dict, ext: str) -> str:
        """Moves the image staged for `record` into its class folder, then writes its manifest line."""
        class_dir = self.path(record["class"])
        os.makedirs(class_dir, exist_ok=True)
        path = os.path.join(class_dir, f"{record['sha256']}.{ext}")
        os.replace(os.path.join(self.staging_dir, f"{record['sha256']}.{ext}"), path)
        self._add(record)
        return path

    def reject(self, record: dict) -> None:
        self._rejected.write(record)

    def retract(self, key: str, detail: dict) -> dict | None:
        """Takes back the accepted image `key`: rejected line and file deleted now, manifest at `close`.

        Args:
          key: the manifest key (`class/sha256`).
          detail: fields for its rejected line (`detail`, `other_url`, ...).
        Returns:
          The rejected line written, or None if `key` is not in the manifest (already retracted).
        """
        if self._records is None:
            self._records = {d["key"]: d for _, d in jsonl.read(self.path(MANIFEST)) if "key" in d}
        record = self._records.pop(key, None)
        if record is None:
            return None
        line = {**record, **detail, "reason": RETRACTED, "retryable": False}
        self._rejected.write(line)  # first: from here on, `load` completes the retraction
        self._retracted_since_open = True
        self._remove_image(record)
        return line

    def write_stats(self, stats: dict) -> None:
        write_atomic(self.path(STATS), json.dumps(stats, indent=2, sort_keys=True).encode())
