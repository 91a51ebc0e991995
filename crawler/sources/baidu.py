"""`baidu`: Baidu image search.

Reads the JSON pages Baidu's result page loads as you scroll,
`/search/acjson?tn=resultjson_com&word=<query>&pn=<offset>&rn=30`: an object whose `data`
list holds one object per result (the last one is always `{}`). The full-size image is
`replaceUrl[0].ObjURL`, else `objURL` (in older answers obfuscated: `ippr_z2C$q...`,
decoded here), else Baidu's own copies `middleURL`/`hoverURL`; `thumbURL` is the thumbnail;
`replaceUrl[0].FromURL` (else the obfuscated `fromURL`) the page that shows the image,
`fromPageTitleEnc` its title. Baidu escapes `'` as `\\'`, which strict JSON refuses. A refusal
(`antiFlag: 1`) or a page that is not JSON ends the query with a warning; offsets step by 30;
a page with no result not seen before ends it too.

Uses the class's Chinese name, the name Baidu's index knows the flower by.
`--url_template`, when given, replaces the endpoint (e.g. a test server on 127.0.0.1).
"""

from __future__ import annotations

import json
import re
import urllib.parse

from crawler.classes import FlowerClass
from crawler.sources.base import PagedSearchSource, SearchResult, http_url, register

ENDPOINT = "https://image.baidu.com/search/acjson"
PAGE_SIZE = 30  # Baidu's maximum `rn`

# Baidu's obfuscation of objURL/fromURL: three tokens for ':', '.', '/', then a fixed
# substitution of letters and digits (x, y, z and upper case are left as they are).
_TOKENS = {"_z2C$q": ":", "_z&e3B": ".", "AzdH3F": "/"}
_CIPHER = str.maketrans("wkv1ju2it3hs4g5r6fp7eo8dn9cm0bla", "abcdefghijklmnoprstuvw1234567890")
_TAGS = re.compile(r"<[^>]*>")


def decode_baidu_url(value: str) -> str:
    """Undoes Baidu's URL obfuscation; plain http(s) URLs are returned as they are."""
    if value.startswith(("http://", "https://")):
        return value
    for token, plain in _TOKENS.items():
        value = value.replace(token, plain)
    return value.translate(_CIPHER)


def _http_url(value) -> str:
    return http_url(decode_baidu_url(value.strip())) if isinstance(value, str) else ""


def _first_url(*values) -> str:
    return next((u for u in map(_http_url, values) if u), "")


def parse_baidu_page(text: str, page_url: str) -> list[SearchResult]:
    """Pure: the results of one acjson page, in rank order.

    Raises:
        ValueError: the page is not Baidu's JSON, or Baidu refused the request.
    """
    try:
        data = json.loads(text.replace("\\'", "'"), strict=False)
    except json.JSONDecodeError as e:
        raise ValueError(f"{page_url}: not JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{page_url}: not a Baidu result object")
    if data.get("antiFlag") == 1:
        raise ValueError(f"{page_url}: Baidu refused the request ({data.get('message', 'antiFlag')})")
    items = data.get("data")
    if not isinstance(items, list):
        raise ValueError(f"{page_url}: no 'data' list")
    results: list[SearchResult] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict) or not item:
            continue
        replace = item.get("replaceUrl")
        replace = replace[0] if isinstance(replace, list) and replace and isinstance(replace[0], dict) else {}
        url = _first_url(replace.get("ObjURL"), item.get("objURL"), item.get("middleURL"), item.get("hoverURL"))
        if not url or url in seen:
            continue
        seen.add(url)
        title = str(item.get("fromPageTitleEnc") or _TAGS.sub("", str(item.get("fromPageTitle") or "")))
        results.append(
            SearchResult(
                url,
                _first_url(item.get("thumbURL"), item.get("middleURL")),
                _first_url(replace.get("FromURL"), item.get("fromURL")),
                " ".join(title.split()),
            )
        )
    return results


def baidu_page_url(query: str, offset: int, endpoint: str = ENDPOINT) -> str:
    """The acjson page of `query` starting at 0-based result `offset`."""
    params = urllib.parse.urlencode(
        {
            "tn": "resultjson_com",
            "ipn": "rj",
            "word": query,
            "queryWord": query,
            "ie": "utf-8",
            "oe": "utf-8",
            "pn": offset,
            "rn": PAGE_SIZE,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{params}"


@register
class BaiduSource(PagedSearchSource):
    name = "baidu"
    default_endpoint = ENDPOINT
    parse = staticmethod(parse_baidu_page)

    def queries(self, klass: FlowerClass) -> list[str]:
        return [klass.chinese]

    def page_url(self, query: str, page: int) -> str:
        return baidu_page_url(query, page * PAGE_SIZE, self.api_url)  # `pn=`: 0, 30, 60, ...
