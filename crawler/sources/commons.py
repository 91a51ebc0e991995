"""`commons`: Wikimedia Commons, one category per class (e.g. Category:Tulipa).

Uses the MediaWiki API rather than the HTML category page, because it names each file's
licence and author directly: `api.php?action=query&generator=categorymembers&gcmtype=file
&prop=imageinfo&iiprop=url|mime|extmetadata&format=json&formatversion=2`. Each entry of
`query.pages` has `imageinfo[0]` with `url` (the original file), `thumburl`,
`descriptionurl` (the File: page), `mime`, and `extmetadata.LicenseShortName.value`,
`.LicenseUrl.value` and `.Artist.value` (HTML; its text is kept). Only raster images the
crawler accepts (JPEG, PNG, WebP, GIF) are kept; SVG, TIFF, PDF and video are skipped.
Paging follows the API's `continue` object (all its keys are sent back, `gcmcontinue`
among them); a page without one is the last. The licence, licence URL, author and file
page go into each candidate's `extra`, so the manifest records them.

Uses the class's `commons_category`. `--url_template`, when given, replaces the API
endpoint (e.g. a test server on 127.0.0.1).
"""

from __future__ import annotations

import dataclasses
import html as htmllib
import json
import urllib.parse
from collections.abc import Iterator

from absl import logging
from bs4 import BeautifulSoup

from crawler.candidates import Candidate
from crawler.classes import FlowerClass
from crawler.sources.base import FetchText, Source, http_url, register

ENDPOINT = "https://commons.wikimedia.org/w/api.php"
PAGE_SIZE = 50  # files per request: extmetadata is costly for the API to compute, so ask for modest pages
THUMB_WIDTH = 320
RASTER_MIMES = ("image/jpeg", "image/png", "image/webp", "image/gif")


@dataclasses.dataclass(frozen=True)
class CommonsFile:
    url: str
    file_page: str
    thumbnail_url: str = ""
    title: str = ""
    license: str = ""
    license_url: str = ""
    author: str = ""


def _text(html: str) -> str:
    """The visible text of an extmetadata value (authors are often links)."""
    text = BeautifulSoup(html, "html.parser").get_text(" ") if "<" in html else htmllib.unescape(html)
    return " ".join(text.split())


def _meta(extmetadata: dict, key: str) -> str:
    value = extmetadata.get(key)
    return _text(str(value.get("value", ""))) if isinstance(value, dict) else ""


def parse_commons_page(text: str, page_url: str) -> tuple[list[CommonsFile], dict[str, str] | None]:
    """Pure: the raster files of one API answer and the `continue` parameters (None: last page).

    Accepts both `formatversion=2` (`pages` a list) and the default (`pages` keyed by page id,
    listed here in page-id order). Files without imageinfo (the API may hand it over on the
    next request) or with another MIME type are left out.

    Raises:
        ValueError: the answer is not JSON or is an API error.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{page_url}: not JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{page_url}: not a MediaWiki API answer")
    if isinstance(data.get("error"), dict):
        err = data["error"]
        raise ValueError(f"{page_url}: API error {err.get('code', '?')}: {err.get('info', '')}")
    query = data.get("query") if isinstance(data.get("query"), dict) else {}
    pages = query.get("pages") or []
    if isinstance(pages, dict):
        pages = [pages[k] for k in sorted(pages, key=lambda k: int(k) if k.lstrip("-").isdigit() else 0)]
    files: list[CommonsFile] = []
    for page in pages:
        infos = page.get("imageinfo") if isinstance(page, dict) else None
        info = infos[0] if isinstance(infos, list) and infos else None
        if not isinstance(info, dict) or info.get("mime") not in RASTER_MIMES:
            continue
        url = http_url(info.get("url"), page_url)
        if not url:
            continue
        meta = info.get("extmetadata") if isinstance(info.get("extmetadata"), dict) else {}
        files.append(
            CommonsFile(
                url,
                http_url(info.get("descriptionurl"), page_url),
                http_url(info.get("thumburl"), page_url),
                str(page.get("title", "")),
                _meta(meta, "LicenseShortName"),
                http_url(_meta(meta, "LicenseUrl"), page_url),
                _meta(meta, "Artist"),
            )
        )
    cont = data.get("continue")
    if not isinstance(cont, dict) or not cont:
        return files, None
    return files, {str(k): str(v) for k, v in cont.items()}


def category_title(klass: FlowerClass) -> str:
    name = klass.commons_category.strip()
    return name if name.lower().startswith("category:") else f"Category:{name}"


def commons_api_url(category: str, cont: dict[str, str] | None = None, endpoint: str = ENDPOINT) -> str:
    """The API request for the files of `category`, continuing from `cont` (None: the first)."""
    params = {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "generator": "categorymembers",
        "gcmtitle": category,
        "gcmtype": "file",
        "gcmlimit": PAGE_SIZE,
        "prop": "imageinfo",
        "iiprop": "url|mime|extmetadata",
        "iiurlwidth": THUMB_WIDTH,
        "iiextmetadatafilter": "LicenseShortName|LicenseUrl|Artist",
        "iiextmetadatalanguage": "en",
        **(cont or {}),
    }
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode(params, safe=':|')}"


@register
class CommonsSource(Source):
    name = "commons"
    default_endpoint = ENDPOINT

    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        category = category_title(klass)
        cont: dict[str, str] | None = None
        seen_conts: list[dict[str, str] | None] = []
        n = 0
        for _ in range(self.options.max_pages):
            url = commons_api_url(category, cont, self.api_url)
            try:
                files, next_cont = parse_commons_page(fetch_text(url), url)
            except ValueError as e:
                logging.warning("commons %s: %s", klass.slug, e)
                break
            seen_conts.append(cont)
            for f in files:
                n += 1
                yield self.candidate(
                    klass,
                    category,
                    f.url,
                    f.file_page or url,
                    f.thumbnail_url,
                    extra={
                        "license": f.license,
                        "license_url": f.license_url,
                        "author": f.author,
                        "file_page": f.file_page,
                    },
                )
            if next_cont is None or next_cont in seen_conts:  # a repeated token would loop forever
                break
            cont = next_cont
        logging.info("commons %s: %d files", category, n)
