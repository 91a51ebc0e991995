"""The crawler's manifest.jsonl: one accepted image a line, written by the crawler (crawler.store) and
read by the Beam job (pipelines/readers/crawled.py). The one definition of a line, as
pipelines/schema.py is of an example.

A line names its image file, `<class>/<sha256>.<ext>` inside the crawl folder (`ext` from
`EXTENSIONS`). A manifest is input, not code: `ManifestRecord.from_json` refuses a line whose
class is not one plain folder name, whose sha256 is not 64 hex digits or whose format is not one
the crawler stores (a tampered `"class": "/etc"` would lead outside the folder). Every other field
is informative: one of the wrong type is read as its default.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

FILE = "manifest.jsonl"
EXTENSIONS = {"jpeg": "jpg", "png": "png"}  # the formats the crawler stores (crawler.validate) -> file extension
_SHA256 = re.compile(r"[0-9a-f]{64}")


def extension(fmt: str) -> str:
    """The file extension of an image the crawler stored in format `fmt` ('jpeg' -> 'jpg')."""
    return EXTENSIONS[fmt]


def image_file(klass: str, sha256: str, fmt: str) -> str:
    """The image's path relative to the crawl folder."""
    return f"{klass}/{sha256}.{extension(fmt)}"


@dataclasses.dataclass(frozen=True)
class ManifestRecord:
    """One line of manifest.jsonl (fields in the order the line holds them)."""

    url: str = ""
    klass: str = ""  # `class` in the line: the class slug, and the image's folder
    page_url: str = ""
    source: str = ""  # the crawler source that found it
    time: str = ""  # when it was accepted (UTC, ISO 8601)
    key: str = ""  # `<class>/<sha256>`
    sha256: str = ""  # of the stored bytes
    width: int = 0
    height: int = 0
    bytes: int = 0
    format: str = ""  # of the stored bytes: a key of EXTENSIONS
    source_format: str = ""  # as downloaded (jpeg, png, webp, gif)
    phash: str = ""  # 64-bit perceptual hash, hex (crawler.dedup)
    query: str = ""
    thumbnail_url: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # the source's own fields (licence, ...)

    @property
    def file(self) -> str:
        """The image's path relative to the crawl folder."""
        return image_file(self.klass, self.sha256, self.format)

    def to_json(self) -> dict:
        return {**{name: getattr(self, attr) for name, (attr, _) in _LINE_FIELDS.items()}, **self.extra}

    @classmethod
    def from_json(cls, d: object) -> ManifestRecord:
        """The record of a manifest line; raises ValueError naming the problem of a line that names no
        file inside the folder (see the module docstring). Fields no record field has go to `extra`."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        missing = [f for f in ("key", "class", "sha256", "format") if not isinstance(d.get(f), str) or not d[f]]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        klass = d["class"]
        if klass in (".", "..") or any(c in klass for c in "/\\\0") or klass != klass.strip():
            raise ValueError(f"class {klass!r} is not a folder name inside the input folder")
        if not _SHA256.fullmatch(d["sha256"]):
            raise ValueError(f"sha256 {d['sha256'][:80]!r} is not 64 hex digits")
        if d["format"] not in EXTENSIONS:
            raise ValueError(f"format {d['format'][:20]!r} is not one the crawler stores ({', '.join(EXTENSIONS)})")
        known = {
            attr: d[name]
            for name, (attr, kind) in _LINE_FIELDS.items()
            if type(d.get(name)) is kind  # bool is no int here
        }
        return cls(**known, extra={k: v for k, v in d.items() if k not in _LINE_FIELDS})


# line field -> (record attribute, its type), in the order of the line
_LINE_FIELDS = {
    ("class" if f.name == "klass" else f.name): (f.name, type(f.default))
    for f in dataclasses.fields(ManifestRecord)
    if f.name != "extra"
}
