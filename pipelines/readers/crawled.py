"""The crawler's output folder: manifest.jsonl next to <class>/<sha256>.<ext> files (local or in a bucket).

A manifest is input, not code: a line whose class is not one plain folder name, whose sha256
is not 64 hex digits or whose format is not the crawler's is not followed anywhere (a
tampered `"class": "/etc"` would pull files from outside the folder); it becomes a dead
letter (`bad_manifest_line`) and every other line is kept.
"""

from __future__ import annotations

import re

from pipelines.readers.base import DirectoryReader, Input, ReaderOptions, Record, register
from storage import fs, jsonl

MANIFEST = "manifest.jsonl"
BAD_LINE = "bad_manifest_line"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = {"jpeg": "jpg", "png": "png"}  # what the crawler stores (crawler.validate)


def _manifest_dir(input_dir: str) -> str | None:
    for d in (input_dir, fs.join(input_dir, "raw")):
        if jsonl.exists(fs.join(d, MANIFEST)):
            return d
    return None


def is_crawl_dir(input_dir: str) -> bool:
    return _manifest_dir(input_dir) is not None


def line_problem(m: dict) -> str:
    """Why a manifest line cannot be followed to a file inside the folder ('' if it can)."""
    missing = [f for f in ("key", "class", "sha256", "format") if not isinstance(m.get(f), str) or not m[f]]
    if missing:
        return f"no {', '.join(missing)}"
    klass = m["class"]
    if klass in (".", "..") or any(c in klass for c in "/\\\0") or klass != klass.strip():
        return f"class {klass!r} is not a folder name inside the input folder"
    if not _SHA256.fullmatch(m["sha256"]):
        return f"sha256 {m['sha256'][:80]!r} is not 64 hex digits"
    if m["format"] not in _EXT:
        return f"format {m['format'][:20]!r} is not one the crawler stores ({', '.join(_EXT)})"
    return ""


def read_crawl_dir(input_dir: str) -> tuple[list[Record], list[dict]]:
    """Records for every good manifest line (the crawler's key, URL and hashes kept), and a dead
    letter for every line that names no file inside the folder."""
    d = _manifest_dir(input_dir)
    if d is None:
        raise ValueError(f"{input_dir} has no {MANIFEST}")
    records, rejected = [], []
    for where, m in jsonl.read(fs.join(d, MANIFEST)):
        problem = line_problem(m) if isinstance(m, dict) else "not a JSON object"
        if problem:
            key = m.get("key") if isinstance(m, dict) and isinstance(m.get("key"), str) else where
            rejected.append(
                {
                    "key": key,
                    "source": where,
                    "path": where,
                    "label": "",
                    "stage": "read",
                    "reason": BAD_LINE,
                    "detail": f"{where}: {problem}",
                }
            )
            continue
        path = fs.join(d, m["class"], f"{m['sha256']}.{_EXT[m['format']]}")
        records.append(
            Record(
                key=m["key"],
                path=path,
                label=m["class"],
                source=m.get("url", ""),
                sha256=m["sha256"],
                phash=m.get("phash", "") if isinstance(m.get("phash"), str) else "",
            )
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
