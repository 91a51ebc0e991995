"""`urls`: a file of image URLs and their classes, the input img2dataset takes.

`--urls_file` is read once, when the source is built, so a bad file stops the crawl before
any request. `.jsonl` files hold one `{"url": ..., "class": ...}` object a line; any other
file (`.txt`, `.csv`) holds `url,class` lines (CSV quoting allowed), with an optional
`url,class` header, `#` comment lines and blank lines. A class is a slug or English name of
`crawler.classes` (`morning_glory`, `Morning glory`). A line that is not `url,class` or names
an unknown class is an error naming the file and line. A line whose URL the crawler cannot use
(not http(s), no host, unparsable, over `candidates.MAX_URL_CHARS`) or that carries a user
name or password does not stop the crawl: it is refused (`bad_url`, `userinfo_in_url`; see
`candidates.screen`), recorded in rejected.jsonl with `path:line` in its detail, and the
other lines are crawled. Queries are not used: discovering a class yields that class's lines
in file order.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterator

from absl import logging

from crawler.candidates import Candidate, screen
from crawler.classes import CLASS_NAMES, FlowerClass, get_class
from crawler.sources.base import FetchText, Source, SourceOptions, register
from storage import StorageError, fs

HEADER = ["url", "class"]


@dataclasses.dataclass(frozen=True)
class UrlLine:
    url: str
    klass: str  # class slug
    lineno: int


def _check(url: object, name: object, path: str, lineno: int) -> UrlLine:
    """The line's URL (checked later, by `screen`: a bad one is refused, not an error) and its class."""
    where = f"{path}:{lineno}"
    if not isinstance(url, str) or not isinstance(name, str):
        raise ValueError(f"{where}: url and class must be strings")
    url = url.strip()
    try:
        klass = get_class(name.strip().lower())
    except ValueError:
        raise ValueError(f"{where}: unknown class {name.strip()!r}; known classes: {', '.join(CLASS_NAMES)}") from None
    return UrlLine(url, klass.slug, lineno)


def _csv_line(line: str, path: str, lineno: int, first: bool) -> UrlLine | None:
    if len(line) > csv.field_size_limit():  # the csv module refuses it; its URL is refused as too long
        cells = [c.strip() for c in line.rsplit(",", 1)]
    else:
        try:
            cells = [c.strip() for c in next(csv.reader([line]))]
        except csv.Error as e:
            raise ValueError(f"{path}:{lineno}: not a CSV line ({e})") from None
    if first and [c.lower() for c in cells] == HEADER:
        return None
    if len(cells) != 2:
        raise ValueError(f"{path}:{lineno}: expected 'url,class', got {len(cells)} field(s): {line.strip()!r}")
    return _check(cells[0], cells[1], path, lineno)


def _jsonl_line(line: str, path: str, lineno: int) -> UrlLine:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(obj, dict) or "url" not in obj or "class" not in obj:
        raise ValueError(f"{where}: expected an object with 'url' and 'class'")
    return _check(obj["url"], obj["class"], path, lineno)


def parse_url_lines(text: str, path: str) -> list[UrlLine]:
    """Pure: the lines of a urls file's text; `path` picks the format (.jsonl or CSV) and
    names the file in errors.

    Raises:
        ValueError: `<path>:<line>: <reason>` for the first bad line, or `<path>: ...` when
            the file holds no URL at all.
    """
    is_jsonl = path.lower().endswith(".jsonl")
    out: list[UrlLine] = []
    first = True
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or (not is_jsonl and stripped.startswith("#")):
            continue
        parsed = _jsonl_line(stripped, path, lineno) if is_jsonl else _csv_line(stripped, path, lineno, first)
        first = False
        if parsed is not None:
            out.append(parsed)
    if not out:
        raise ValueError(f"{path}: no url,class lines")
    return out


def read_urls_file(path: str) -> list[UrlLine]:
    try:
        text = fs.read_bytes(path).decode("utf-8-sig")  # -sig: spreadsheets often start CSV files with a BOM
    except StorageError as e:
        raise ValueError(f"--urls_file={e}") from None
    except OSError as e:
        raise ValueError(f"--urls_file={path}: cannot read the urls file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"--urls_file={path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_url_lines(text, path)


@register
class UrlsSource(Source):
    name = "urls"

    def __init__(self, options: SourceOptions):
        super().__init__(options)
        if not options.urls_file:
            raise ValueError("the urls source needs --urls_file (a .txt/.csv of url,class lines or a .jsonl)")
        self.lines = read_urls_file(options.urls_file)
        logging.info("urls: %d lines from %s", len(self.lines), options.urls_file)

    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        for line in self.lines:
            if line.klass == klass.slug:
                yield screen(
                    Candidate(line.url, klass.slug, source=self.name), where=f"{self.options.urls_file}:{line.lineno}"
                )
