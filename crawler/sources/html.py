"""`html`: any site whose result pages are reachable by a URL template with `{query}` (and
optionally `{page}`), or a start URL. Collects links to full-size images (and the
thumbnails they wrap), follows rel=next / "next" links, and stays on the allowed hosts. A link
that is no valid URL (`http://[::1/x.jpg`) is skipped: one broken link must not cost the page."""

from __future__ import annotations

import dataclasses
import posixpath
import urllib.parse
from collections.abc import Iterator

from bs4 import BeautifulSoup

from crawler import safety
from crawler.candidates import Candidate
from crawler.classes import FlowerClass
from crawler.sources.base import FetchText, Source, SourceOptions, register

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif")
NEXT_TEXTS = ("next", "next page", "下一页", "›", "»", ">")


@dataclasses.dataclass(frozen=True)
class Link:
    url: str
    thumbnail_url: str = ""
    title: str = ""


def _join(page_url: str, href: str) -> str:
    """`href` made absolute against the page, or '' if it is no valid URL."""
    try:
        url = urllib.parse.urljoin(page_url, href.strip())
        urllib.parse.urlsplit(url).port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return ""
    return url


def _looks_like_image(url: str) -> bool:
    return posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lower() in IMAGE_EXTENSIONS


def check_template(template: str) -> None:
    """Raises ValueError unless `template` has {query}, formats with {query} and {page} alone and has no
    user name or password (which every request would carry)."""
    if "{query}" not in template:
        raise ValueError(f"--url_template has no {{query}}: {template!r}")
    try:
        template.format(query="q", page=1)
    except (ValueError, KeyError, IndexError) as e:
        what = f"unknown placeholder {{{e.args[0]}}}" if isinstance(e, (KeyError, IndexError)) else str(e)
        raise ValueError(
            f"--url_template={template!r}: {what}; only {{query}} and {{page}} may appear "
            "(a literal brace is written {{ or }})"
        ) from None
    if safety.has_userinfo(template):
        raise ValueError("--url_template holds a user name or password: not supported (it would be sent to every host)")


def parse_results(html: str, page_url: str) -> tuple[list[Link], str | None]:
    """Pure: the image links of a result page and its next-page URL (or None).

    An <a> pointing at an image file is a full-size link (an <img> inside it is its
    thumbnail); an <img> outside such links is a candidate itself.
    """
    soup = BeautifulSoup(html, "html.parser")
    links: list[Link] = []
    seen: set[str] = set()
    wrapped = set()
    for a in soup.find_all("a", href=True):
        url = _join(page_url, a["href"])
        if not url or not _looks_like_image(url):
            continue
        img = a.find("img", src=True)
        thumb = _join(page_url, img["src"]) if img else ""
        if img:
            wrapped.add(id(img))
        if url not in seen:
            seen.add(url)
            links.append(Link(url, thumb, (img.get("alt", "") if img else a.get_text(" ", strip=True))))
    for img in soup.find_all("img", src=True):
        url = _join(page_url, img["src"])
        if (
            url
            and id(img) not in wrapped
            and url not in seen
            and urllib.parse.urlsplit(url).scheme in ("http", "https")
        ):
            seen.add(url)
            links.append(Link(url, "", img.get("alt", "")))
    return links, _next_url(soup, page_url)


def _next_url(soup: BeautifulSoup, page_url: str) -> str | None:
    for tag in soup.find_all(["a", "link"], href=True):
        rel = [r.lower() for r in tag.get("rel") or []]
        if "next" in rel:
            return _join(page_url, tag["href"]) or None
    for a in soup.find_all("a", href=True):
        if a.get_text(" ", strip=True).lower() in NEXT_TEXTS:
            return _join(page_url, a["href"]) or None
    return None


@register
class HtmlSource(Source):
    name = "html"

    def __init__(self, options: SourceOptions):
        super().__init__(options)
        if bool(options.url_template) == bool(options.start_url):
            raise ValueError("the html source needs exactly one of --url_template or --start_url")
        if options.url_template:
            check_template(options.url_template)
        if safety.has_userinfo(options.start_url):
            raise ValueError(
                "--start_url holds a user name or password: not supported (it would be sent to every host)"
            )
        if options.start_url and len(options.classes) != 1:
            raise ValueError("--start_url crawls one class: give exactly one in --classes")

    def _allowed(self, url: str, first: str) -> bool:
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        allowed = set(self.options.allowed_hosts) | {(urllib.parse.urlsplit(first).hostname or "").lower()}
        return host in allowed

    def start_pages(self, klass: FlowerClass) -> list[tuple[str, str]]:
        """(query, first page URL) pairs for a class."""
        o = self.options
        if o.url_template:
            return [(q, o.url_template.format(query=urllib.parse.quote_plus(q), page=1)) for q in klass.queries]
        return [("", o.start_url)]

    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        for query, first in self.start_pages(klass):
            url: str | None = first
            visited: set[str] = set()
            for page in range(1, self.options.max_pages + 1):
                if url is None or url in visited or not self._allowed(url, first):
                    break
                visited.add(url)
                links, next_url = parse_results(fetch_text(url), url)
                for link in links:
                    yield self.candidate(klass, query, link.url, url, link.thumbnail_url)
                if "{page}" in self.options.url_template and next_url is None and links:
                    next_url = self.options.url_template.format(query=urllib.parse.quote_plus(query), page=page + 1)
                url = next_url
