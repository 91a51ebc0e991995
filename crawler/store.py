"""The crawler's output folder: content-addressed images plus JSONL records.

    <out_dir>/<class>/<sha256>.<ext>   accepted images (file names never come from URLs)
    <out_dir>/manifest.jsonl           one accepted image a line (crawler.manifest.ManifestRecord)
    <out_dir>/rejected.jsonl           url, class, reason, detail, retryable
                                       (a retracted image keeps its manifest fields)
    <out_dir>/candidates.jsonl         the discover phase's output
    <out_dir>/crawl_stats.json         totals of the last run
    <out_dir>/.lock                    held by the crawl writing the folder (storage.lock): one at a time
    <out_dir>/.download/               work area of a download in progress (emptied at its end):
        staging/<sha256>.<ext>           fetched and validated images waiting for their decision
        parts/part-XXXXX-of-YYYYY.jsonl  Beam runner: one partition's fetch outcomes
        parts/worker-<run>-<host>-<pid>.json  Beam runner: one worker process's request counts

The folder may be a local path or a bucket (gs://, s3://): every file goes through the
`storage` layer. Fetching workers write an image to staging (written whole: content-addressed,
so two workers writing the same image is harmless); the single committing thread then moves
it into <class>/ (a rename on a disk, a copy and a delete on an object store) and appends
its manifest line (`storage.jsonl.Appender`: each line flushed on a disk, segments every few
seconds on an object store). A kill at any moment leaves no partial image under <class>/
and a valid manifest; the next run empties the work area (staging/ and parts/ only: anything
else found in .download/ is left alone, with a warning), and `close` deletes any image under
<class>/ that no manifest line names (moved in, then killed before its line was kept).
A write that fails (a full disk: ENOSPC, EFBIG, EDQUOT) raises a StorageError naming the file.

An accepted image can be retracted later (a near-duplicate of it turned up in another
class): its rejected line (reason `cross_class_duplicate`) is written first and its file
deleted; the manifest is rewritten without it (written whole) when the store is closed,
once however many images were retracted. `load` finishes a retraction that a kill
interrupted, so what `load` returns never lists a retracted image. `load` also repairs a
manifest that names a key on several lines (two crawls that once wrote into the folder at the
same time, before the folder had a lock): the first line of each key is kept.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import os
import re
from collections.abc import Iterator

from absl import logging

from crawler.classes import CLASS_NAMES
from crawler.manifest import EXTENSIONS, ManifestRecord, extension
from crawler.manifest import FILE as MANIFEST
from storage import StorageError, fs, jsonl

REJECTED = "rejected.jsonl"
CANDIDATES = "candidates.jsonl"
STATS = "crawl_stats.json"
WORK_DIR = ".download"
RETRACTED = "cross_class_duplicate"  # reason of an accepted image taken back
_IMAGE_FILE = re.compile(rf"^([a-z_]+)/([0-9a-f]{{64}})\.({'|'.join(sorted(set(EXTENSIONS.values())))})$")
WORK_SUBDIRS = ("staging", "parts")  # all the crawler makes in WORK_DIR
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


@contextlib.contextmanager
def writing(path: str) -> Iterator[None]:
    """Names `path` in the OSError of a write that fails: the OS names no file when a write (not an open)
    fails, e.g. on a full disk, and the user needs to know which disk."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        cause = e.strerror or str(e)
        if e.errno in _NO_SPACE:
            cause = (
                f"no space left ({os.strerror(e.errno)}): free some space, then run the same command again (it resumes)"
            )
        raise StorageError(path, cause, "write") from e


@dataclasses.dataclass
class StoreState:
    """What an earlier (possibly killed) run already decided."""

    accepted: list[ManifestRecord]
    rejected: list[dict]  # retryable ones included

    @property
    def final_rejected(self) -> list[dict]:
        return [r for r in self.rejected if not r.get("retryable")]

    @property
    def done(self) -> set[tuple[str, str]]:
        """(url, class) pairs decided for good (retryable rejections are tried again)."""
        return {(r.url, r.klass) for r in self.accepted} | {(r["url"], r["class"]) for r in self.final_rejected}

    @property
    def retracted(self) -> list[dict]:
        """Images accepted, then taken back as cross-class duplicates (they keep sha256 and phash)."""
        return [r for r in self.rejected if r.get("reason") == RETRACTED and r.get("sha256")]

    def per_class(self) -> collections.Counter:
        return collections.Counter(r.klass for r in self.accepted)


class Store:
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        fs.makedirs(out_dir)
        self._manifest: jsonl.Appender | None = None
        self._rejected: jsonl.Appender | None = None
        self._records: dict[str, ManifestRecord] | None = None  # the manifest by key, once needed
        self._retracted_since_open = False
        self._warned_foreign_work = False

    def path(self, name: str) -> str:
        return fs.join(self.out_dir, name)

    @property
    def staging_dir(self) -> str:
        return fs.join(self.out_dir, WORK_DIR, "staging")

    @property
    def parts_dir(self) -> str:
        return fs.join(self.out_dir, WORK_DIR, "parts")

    def clear_work(self) -> None:
        """Deletes the crawler's own folders of the work area (staged images, parts: left over by a killed
        run, or done with), then the area itself if nothing else is in it. Anything else there is not
        the crawler's: it is left alone, with a warning."""
        for name in WORK_SUBDIRS:
            fs.rmtree(fs.join(self.out_dir, WORK_DIR, name))
        work = self.path(WORK_DIR)
        if not fs.isdir(work):
            return
        foreign = fs.list_files(work)
        if foreign and not self._warned_foreign_work:
            self._warned_foreign_work = True
            logging.warning(
                "%s holds %d file(s) the crawler did not make, left alone: %s",
                work,
                len(foreign),
                ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else ""),
            )
        if not foreign and fs.is_local(work):
            with contextlib.suppress(OSError):  # a sub-folder of someone else's is left too
                os.rmdir(work)

    def stage(self, data: bytes, sha256: str, ext: str) -> str:
        """Writes a validated image to staging (thread- and process-safe); returns its path."""
        path = fs.join(self.staging_dir, f"{sha256}.{ext}")
        if not fs.exists(path):  # content-addressed: a file of that name is that image
            with writing(path):
                fs.write_bytes(path, data)
        return path

    def load(self, max_per_class: int | None = None) -> StoreState:
        """Reads earlier results, repairing the manifest first if it needs it.

        Repairs, each logged with a warning, after which the manifest is rewritten whole once:
        a key on several lines keeps its first line; an interrupted retraction is finished. With
        `max_per_class`, a class already holding more images (an earlier run with a larger cap)
        keeps them all, with a warning: the download adds none to it. Accepted images are never
        deleted for a smaller cap.

        Retryable rejections stay in rejected.jsonl (and in the stats) until `forget_retryable`
        is called for the candidates about to be tried again.
        """
        manifest = self._read_manifest()
        accepted = _first_of_each_key(manifest)
        if len(accepted) != len(manifest):
            logging.warning(
                "%s: %d duplicate line(s) of a key (two crawls once wrote into this folder at the same "
                "time): kept the first line of each key",
                self.path(MANIFEST),
                len(manifest) - len(accepted),
            )
        state = StoreState(accepted, jsonl.read_all(self.path(REJECTED)))
        taken_back = {r["key"] for r in state.retracted}
        gone = [r for r in accepted if r.key in taken_back]  # a kill interrupted a retraction
        kept = [r for r in accepted if r.key not in taken_back]
        if max_per_class is not None:
            _warn_over_cap(kept, max_per_class, self.path(MANIFEST))
        if len(kept) != len(manifest):
            with writing(self.path(MANIFEST)):
                jsonl.write(self.path(MANIFEST), (r.to_json() for r in kept))
            for r in gone:
                fs.delete(self.image_path(r))
        state.accepted = kept
        self._records = {r.key: r for r in kept}
        return state

    def _read_manifest(self) -> list[ManifestRecord]:
        """The manifest's records; ValueError naming the file (and line) of one this crawl cannot have written."""
        lines = list(jsonl.read(self.path(MANIFEST)))
        unknown = sorted({d.get("class") for _, d in lines if isinstance(d, dict)} - set(CLASS_NAMES), key=str)
        if unknown:
            raise ValueError(
                f"{self.path(MANIFEST)} holds classes {unknown} that are not in this project's "
                "class list: use another --out_dir"
            )
        records = []
        for where, d in lines:
            try:
                records.append(ManifestRecord.from_json(d))
            except ValueError as e:
                raise ValueError(
                    f"{where}: not a manifest line the crawler writes ({e}): use another --out_dir"
                ) from None
        return records

    def forget_retryable(self, pairs: set[tuple[str, str]]) -> None:
        """Drops the retryable rejections of these (url, class) pairs: they are about to be tried again."""
        rejected = jsonl.read_all(self.path(REJECTED))
        kept = [d for d in rejected if not (d.get("retryable") and (d["url"], d["class"]) in pairs)]
        if len(kept) != len(rejected):
            with writing(self.path(REJECTED)):
                jsonl.write(self.path(REJECTED), kept)

    def image_path(self, record: ManifestRecord) -> str:
        return fs.join(self.out_dir, record.file)

    def open(self) -> None:
        with writing(self.path(MANIFEST)):
            self._manifest = jsonl.Appender(self.path(MANIFEST))
        with writing(self.path(REJECTED)):
            self._rejected = jsonl.Appender(self.path(REJECTED))

    def close(self) -> None:
        """Closes the files, rewriting the manifest once if images were retracted since `open`, and
        deletes the images no manifest line names. A file that fails to close (a full disk) is
        closed all the same, and its error raised once both are."""
        failed: list[OSError] = []
        for f in (self._manifest, self._rejected):
            if f:
                try:
                    with writing(f.path):
                        f.close()
                except OSError as e:
                    failed.append(e)
                    _drop(f)
        self._manifest = self._rejected = None
        if failed:
            raise failed[0]
        if self._retracted_since_open:
            with writing(self.path(MANIFEST)):
                jsonl.write(self.path(MANIFEST), [r.to_json() for r in self._records.values()])
            self._retracted_since_open = False
        self._delete_unlisted_images()

    def _delete_unlisted_images(self) -> None:
        """An image is moved into <class>/ before its manifest line is written; a kill in between (a
        few seconds of lines on an object store) leaves it unlisted. The same run, resumed, moves it
        in again if it accepts it again; whatever no manifest line names is deleted here."""
        if self._records is None:
            return
        listed = {f"{r.klass}/{r.sha256}" for r in self._records.values()}
        for rel in fs.list_files(self.out_dir):
            m = _IMAGE_FILE.match(rel)
            if m and m.group(1) in CLASS_NAMES and f"{m.group(1)}/{m.group(2)}" not in listed:
                fs.delete(fs.join(self.out_dir, rel))

    def accept_staged(self, record: ManifestRecord) -> str:
        """Moves the image staged for `record` into its class folder, then writes its manifest line."""
        path = self.image_path(record)
        with writing(path):
            fs.rename(fs.join(self.staging_dir, f"{record.sha256}.{extension(record.format)}"), path)
        with writing(self._manifest.path):
            self._manifest.write(record.to_json())
        if self._records is not None:
            self._records[record.key] = record
        return path

    def reject(self, record: dict) -> None:
        with writing(self._rejected.path):
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
            self._records = {r.key: r for r in self._read_manifest()}
        record = self._records.pop(key, None)
        if record is None:
            return None
        line = {**record.to_json(), **detail, "reason": RETRACTED, "retryable": False}
        with writing(self._rejected.path):
            self._rejected.write(line)
            self._rejected.flush()  # kept before the file goes: from here on, `load` completes the retraction
        self._retracted_since_open = True
        fs.delete(self.image_path(record))
        return line

    def write_stats(self, stats: dict) -> None:
        with writing(self.path(STATS)):
            fs.write_json(self.path(STATS), stats)


def _first_of_each_key(manifest: list[ManifestRecord]) -> list[ManifestRecord]:
    """The manifest's records, each key's first only."""
    seen: set[str] = set()
    return [r for r in manifest if not (r.key in seen or seen.add(r.key))]


def _warn_over_cap(records: list[ManifestRecord], max_per_class: int, where: str) -> None:
    """Warns about each class holding more than `max_per_class` images (kept: nothing is deleted)."""
    count = collections.Counter(r.klass for r in records)
    for klass, n in sorted(count.items()):
        if n > max_per_class:
            logging.warning(
                "%s: class %s holds %d images, over --max_per_class=%d: all kept, none added",
                where,
                klass,
                n,
                max_per_class,
            )


def _drop(appender: jsonl.Appender) -> None:
    """Closes the file of an appender whose close failed (its unwritten lines are lost, as with a kill), so
    that nothing tries to write them again when the process exits."""
    f = getattr(appender, "_file", None)
    if f is not None:
        with contextlib.suppress(OSError, ValueError):
            f.close()
