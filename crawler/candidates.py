"""Candidate image URLs: what the discover phase writes and the download phase reads.

Every candidate passes `screen` when a source hands it over and when candidates.jsonl is read
back, so that what the crawler keeps, sends and prints never holds a user name or password:

- a URL with a user name or password (`http://user:pass@host/a.jpg`, `userinfo`) is refused,
  reason `userinfo_in_url`, and kept as `http://host/a.jpg` (the credentials would go to
  robots.txt and the image, and into every file and log line);
- a URL the crawler cannot use (not parsable, e.g. `http://[::1/a.jpg`; no host; a bad port;
  not http(s); longer than MAX_URL_CHARS) is refused, reason `bad_url`, kept shortened.

A refused candidate is not fetched: the download phase records it in rejected.jsonl with its
reason and detail (a urls file's `path:line` first), for good (not retryable).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Iterable, Iterator

from crawler import safety
from storage import jsonl

USERINFO = "userinfo_in_url"
BAD_URL = "bad_url"
MAX_URL_CHARS = 8192  # what common servers accept in a request line; longer is junk, not an image
_SHOWN_CHARS = 300  # of a refused URL, in its record


@dataclasses.dataclass(frozen=True)
class Candidate:
    url: str
    klass: str  # class slug
    page_url: str = ""  # the page the link was found on
    query: str = ""
    source: str = ""
    thumbnail_url: str = ""
    extra: dict = dataclasses.field(default_factory=dict)  # source-specific (licence, author, ...)
    refused: str = ""  # a reason (USERINFO, BAD_URL): recorded as rejected without a request
    refused_detail: str = ""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["class"] = d.pop("klass")
        for name in ("refused", "refused_detail"):  # candidates.jsonl keeps its usual lines
            if not d[name]:
                del d[name]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Candidate:
        d = dict(d)
        d["klass"] = d.pop("class")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown candidate fields {sorted(unknown)}")
        return cls(**d)


def _shown(url: str) -> str:
    """A refused URL as its record keeps it: without userinfo, and shortened if long."""
    url = safety.strip_userinfo(url)
    return url if len(url) <= _SHOWN_CHARS else f"{url[:_SHOWN_CHARS]}... ({len(url)} characters)"


def url_problem(url: str) -> str:
    """Why the crawler cannot use `url` at all ('' if it can): what `bad_url` records."""
    if len(url) > MAX_URL_CHARS:
        return f"URL of {len(url)} characters (over {MAX_URL_CHARS})"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme.lower() not in safety.ALLOWED_SCHEMES or not parts.hostname:
        return "not an http(s) URL with a host"
    return ""


def screen(c: Candidate, where: str = "") -> Candidate:
    """`c` as the crawler may keep it (see the module docstring); a candidate refused already is kept as is.

    Args:
      c: a candidate as a source found it.
      where: where it came from, to start the detail of a refusal (a urls file's 'path:line').
    """
    if c.refused:
        return c
    prefix = f"{where}: " if where else ""
    page_url, thumbnail_url = safety.strip_userinfo(c.page_url), safety.strip_userinfo(c.thumbnail_url)
    problem = url_problem(c.url)
    if problem:
        return dataclasses.replace(
            c,
            url=_shown(c.url),
            page_url=page_url,
            thumbnail_url=thumbnail_url,
            refused=BAD_URL,
            refused_detail=f"{prefix}{problem}: {_shown(c.url)}",
        )
    if safety.has_userinfo(c.url):
        url = safety.strip_userinfo(c.url)
        return dataclasses.replace(
            c,
            url=url,
            page_url=page_url,
            thumbnail_url=thumbnail_url,
            refused=USERINFO,
            refused_detail=f"{prefix}a URL with a user name or password is not fetched, stored or shown",
        )
    if (page_url, thumbnail_url) != (c.page_url, c.thumbnail_url):
        return dataclasses.replace(c, page_url=page_url, thumbnail_url=thumbnail_url)
    return c


def write_candidates(path: str, candidates: Iterable[Candidate]) -> int:
    """Writes candidates whole (any storage); returns how many."""
    return jsonl.write(path, (c.to_json() for c in candidates))


def read_candidates(path: str) -> Iterator[Candidate]:
    """The candidates of a candidates.jsonl, each through `screen` (the file may be a user's own)."""
    for where, d in jsonl.read(path):
        try:
            yield screen(Candidate.from_json(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: bad candidate line ({e})") from e
