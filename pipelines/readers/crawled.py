"""The crawler's output folder: manifest.jsonl next to <class>/<sha256>.<ext> files (local or in a bucket).

A manifest is input, not code: a line `crawler.manifest.ManifestRecord.from_json` refuses (its
class, sha256 or format would lead outside the folder, e.g. a tampered `"class": "/etc"`) is not
followed anywhere; it becomes a dead letter (`bad_manifest_line`) and every other line is kept.
"""

from __future__ import annotations

from crawler.manifest import FILE as MANIFEST
from crawler.manifest import ManifestRecord
from pipelines.readers.base import DirectoryReader, Input, ReaderOptions, Record, register
from storage import fs, jsonl

BAD_LINE = "bad_manifest_line"


def _manifest_dir(input_dir: str) -> str | None:
    for d in (input_dir, fs.join(input_dir, "raw")):
        if jsonl.exists(fs.join(d, MANIFEST)):
            return d
    return None


def is_crawl_dir(input_dir: str) -> bool:
    return _manifest_dir(input_dir) is not None


def read_crawl_dir(input_dir: str) -> tuple[list[Record], list[dict]]:
    """Records for every good manifest line (the crawler's key, URL and hashes kept), and a dead
    letter for every line that names no file inside the folder."""
    d = _manifest_dir(input_dir)
    if d is None:
        raise ValueError(f"{input_dir} has no {MANIFEST}")
    records, rejected = [], []
    for where, line in jsonl.read(fs.join(d, MANIFEST)):
        try:
            m = ManifestRecord.from_json(line)
        except ValueError as e:
            key = line.get("key") if isinstance(line, dict) and isinstance(line.get("key"), str) else where
            rejected.append(
                {
                    "key": key,
                    "source": where,
                    "path": where,
                    "label": "",
                    "stage": "read",
                    "reason": BAD_LINE,
                    "detail": f"{where}: {e}",
                }
            )
            continue
        records.append(
            Record(key=m.key, path=fs.join(d, m.file), label=m.klass, source=m.url, sha256=m.sha256, phash=m.phash)
        )
    return records, rejected


@register
class CrawledReader(DirectoryReader):
    """The crawler's folder: asked before the folder reader; labels in the crawler's class order."""

    name = "crawled"

    def accepts(self, options: ReaderOptions) -> bool:
        return is_crawl_dir(options.input_dir)

    def read(self, options: ReaderOptions) -> Input:
        from crawler.classes import CLASS_NAMES

        records, rejected = read_crawl_dir(options.input_dir)
        present = {r.label for r in records}
        names = [c for c in CLASS_NAMES if c in present] + sorted(present - set(CLASS_NAMES))
        return Input(records, names, f"crawl {options.input_dir}", rejected)
