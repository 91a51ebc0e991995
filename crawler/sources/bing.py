"""`bing`: Bing image search.

Reads the result pages Bing's own infinite scroll loads, `/images/async?q=<query>&first=<n>`:
HTML fragments (`ul.dgControl_list > li > div.imgpt`) with one `<a class="iusc" m="...">`
anchor per result. Its `m` attribute is an HTML-escaped JSON object: `murl` is the
full-size image, `turl` Bing's thumbnail, `purl` the page that shows the image, `t` its
title. Offsets are 1-based (`first=1, 36, 71, ...`); a page with no result not seen before
ends the query (Bing repeats its last page rather than answering an empty one).

Uses the class's queries except the Chinese name (that one is `baidu`'s): the English
queries and the Latin name. `--url_template`, when given, replaces the endpoint (e.g. a
test server on 127.0.0.1); the source adds its own query parameters.
"""

from __future__ import annotations

import json
import urllib.parse

from bs4 import BeautifulSoup

from crawler.classes import FlowerClass
from crawler.sources.base import PagedSearchSource, SearchResult, http_url, register

ENDPOINT = "https://www.bing.com/images/async"
PAGE_SIZE = 35  # what Bing's own scrolling asks for
PHOTO_FILTER = "+filterui:photo-photo"  # photographs only: no clip art or line drawings
_HIGHLIGHT = dict.fromkeys(map(ord, "\ue000\ue001"))  # private-use marks around matched words in `t`


def parse_bing_page(html: str, page_url: str) -> list[SearchResult]:
    """Pure: the results of one Bing result page, in rank order.

    An anchor whose `m` is not a JSON object or has no http(s) `murl` is skipped: one
    broken result must not cost the page.
    """
    soup = BeautifulSoup(html, "html.parser")
    results: list[SearchResult] = []
    seen: set[str] = set()
    for a in soup.select("a.iusc[m]"):
        try:
            meta = json.loads(a["m"])  # BeautifulSoup has already undone the &quot; escaping
        except json.JSONDecodeError:
            continue
        if not isinstance(meta, dict):
            continue
        url = http_url(meta.get("murl"), page_url)
        if not url or url in seen:
            continue
        seen.add(url)
        title = meta.get("t") if isinstance(meta.get("t"), str) else ""
        results.append(
            SearchResult(
                url,
                http_url(meta.get("turl"), page_url),
                http_url(meta.get("purl"), page_url),
                " ".join(title.translate(_HIGHLIGHT).split()),
            )
        )
    return results


def bing_page_url(query: str, first: int, endpoint: str = ENDPOINT) -> str:
    """The result page of `query` starting at 1-based result `first`."""
    params = urllib.parse.urlencode({"q": query, "first": first, "count": PAGE_SIZE, "qft": PHOTO_FILTER})
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{params}"


def page_offset(page: int) -> int:
    """The `first=` offset of 0-based result page `page`: 1, 36, 71, ..."""
    return 1 + page * PAGE_SIZE


def bing_queries(klass: FlowerClass) -> list[str]:
    return [q for q in klass.queries if q != klass.chinese]


@register
class BingSource(PagedSearchSource):
    name = "bing"
    default_endpoint = ENDPOINT
    queries = staticmethod(bing_queries)
    parse = staticmethod(parse_bing_page)

    def page_url(self, query: str, page: int) -> str:
        return bing_page_url(query, page_offset(page), self.api_url)
