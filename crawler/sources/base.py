"""The source interface and registry.

A source checks its own options when it is built (`__init__`): a value it cannot use raises
ValueError, one line naming the flag (`--url_template ...`), which the crawl reports before any
request (exit 2). Sources with a search API (`default_endpoint`) share the check of
`--url_template` as a replacement endpoint (`Source.endpoint`).
"""

from __future__ import annotations

import abc
import dataclasses
import urllib.parse
from collections.abc import Callable, Iterator

from absl import logging

from crawler import safety
from crawler.candidates import Candidate
from crawler.classes import FlowerClass


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What the crawl flags tell sources (a field per flag of the same name); each source reads and
    checks the fields it needs."""

    classes: tuple[str, ...] = ()  # the slugs of --classes
    url_template: str = ""
    start_url: str = ""
    urls_file: str = ""
    max_pages: int = 10
    allowed_hosts: tuple[str, ...] = ()


FetchText = Callable[[str], str]  # GETs a page through the polite fetcher, returns its text


def http_url(value, base: str = "") -> str:
    """`value` made absolute against `base` if it is an http(s) URL with a host, else ''.

    Pure helper for parsers: search pages carry relative, protocol-relative ('//host/x')
    and junk values (javascript:, data:, None).
    """
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        url = urllib.parse.urljoin(base, value.strip()) if base else value.strip()
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # 'http://[::1/x': not a URL
        return ""
    return url if parts.scheme in ("http", "https") and parts.hostname else ""


class Source(abc.ABC):
    name: str = ""
    default_endpoint: str = ""  # a search API's URL: `api_url` is this, or --url_template instead

    def __init__(self, options: SourceOptions):
        self.options = options
        if self.default_endpoint:
            self.api_url = self.endpoint(self.default_endpoint)

    def endpoint(self, default: str) -> str:
        """`--url_template` as a replacement for a search API's endpoint (e.g. a test server);
        placeholders are refused because the source builds the query itself, and a user name or password
        because every request would carry it."""
        value = self.options.url_template.strip()
        try:
            parts = urllib.parse.urlsplit(value)
        except ValueError:
            parts = urllib.parse.urlsplit("")
        if value and (parts.scheme not in ("http", "https") or not parts.netloc or "{" in value or "@" in parts.netloc):
            raise ValueError(
                f"--url_template for the {self.name} source is an http(s) endpoint to use instead of "
                f"{default}, without placeholders or a user name and password; got "
                f"{safety.strip_userinfo(value)!r}"
            )
        return value or default

    @abc.abstractmethod
    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        """Yields candidates for `klass` in rank order; may stop early when the caller stops."""

    def candidate(
        self, klass: FlowerClass, query: str, url: str, page_url: str, thumbnail_url: str = "", extra=None
    ) -> Candidate:
        """The candidate `url` this source found for `klass` on `page_url` when searching `query`."""
        return Candidate(url, klass.slug, page_url, query, self.name, thumbnail_url, extra or {})


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """One result of a search engine's result page."""

    url: str  # the full-size image
    thumbnail_url: str = ""
    page_url: str = ""  # the page that shows the image
    title: str = ""


class PagedSearchSource(Source):
    """A search engine read page by page: a source names its queries, its result page URLs and its parser.

    A query ends at `--max_pages`, at the first page that brings no result not seen on its earlier
    pages (search engines repeat their last page instead of answering an empty one), or at a page
    that cannot be parsed (logged: the other queries and classes go on).
    """

    @abc.abstractmethod
    def queries(self, klass: FlowerClass) -> list[str]:
        """The queries of `klass`, in the order they are searched."""

    @abc.abstractmethod
    def page_url(self, query: str, page: int) -> str:
        """The URL of result page `page` (0-based) of `query`."""

    @abc.abstractmethod
    def parse(self, text: str, page_url: str) -> list[SearchResult]:
        """The results of one result page in rank order; ValueError if it is not a result page."""

    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        for query in self.queries(klass):
            seen: set[str] = set()
            for page in range(self.options.max_pages):
                url = self.page_url(query, page)
                try:
                    results = self.parse(fetch_text(url), url)
                except ValueError as e:
                    logging.warning("%s %s: %s", self.name, klass.slug, e)
                    break
                fresh = [r for r in results if r.url not in seen]
                if not fresh:
                    break
                for r in fresh:
                    seen.add(r.url)
                    yield self.candidate(klass, query, r.url, r.page_url or url, r.thumbnail_url)
            logging.info("%s %r: %d results", self.name, query, len(seen))


_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    if not cls.name:
        raise ValueError(f"source class {cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"source {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def source_names() -> list[str]:
    return sorted(_REGISTRY)


def get_source(name: str, options: SourceOptions) -> Source:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown source {name!r}; known sources: {', '.join(source_names())}")
    return _REGISTRY[name](options)
