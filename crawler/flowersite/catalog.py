"""What the local flower site holds: which images exist, which query finds them, and the
misbehaving links the real web is full of. Pure data, no I/O; `site.py` serves it.

Each class has `per_class` images `/img/<slug>/<i>.<ext>` (about one in six is a PNG).
Each of the class's queries finds an overlapping part of them (as real search engines
do: the first few images come up for every query). The first result page of a class's
first query also carries one of each trap below, so crawling any subset of classes meets
all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.parse

from crawler.classes import FLOWER_CLASSES, FlowerClass

# Paths the site serves that are not good images, with the reason a careful crawler
# rejects them. Keyed by a name used in the URL.
TRAPS: dict[str, str] = {
    "private": "disallowed by robots.txt (/private/)",
    "missing-1": "404 not found",
    "missing-2": "404 not found",
    "mirror": "exact duplicate of image 1 (same bytes, other URL)",
    "reencoded": "near-duplicate of image 2 (re-encoded at lower quality, resized)",
    "fake": "an HTML page served as image/jpeg",
    "truncated": "a JPEG cut off after 60% of its bytes",
    "huge": "a PNG declaring 20000x20000 pixels (decompression bomb)",
    "tiny": "a 24x24 image, below any sensible minimum size",
}
ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"
POPULAR = 3  # the first images of a class come up for every query


@dataclasses.dataclass(frozen=True)
class Item:
    """One result link: the full-size URL path and its thumbnail path."""

    path: str
    thumb: str
    title: str


def image_format(slug: str, index: int, seed: int) -> str:
    """'png' for about one image in six, else 'jpeg'; stable per (slug, index, seed)."""
    h = hashlib.sha256(f"fmt:{slug}:{index}:{seed}".encode()).digest()[0]
    return "png" if h % 6 == 0 else "jpeg"


def item_path(slug: str, index: int, seed: int) -> str:
    ext = "png" if image_format(slug, index, seed) == "png" else "jpg"
    return f"/img/{slug}/{index}.{ext}"


def match_class(query: str) -> FlowerClass | None:
    """The class a search query is about, matching any of its names or queries."""
    q = " ".join(query.lower().split())
    for c in FLOWER_CLASSES:
        names = {c.english.lower(), c.slug, c.chinese, c.latin.lower(), *(x.lower() for x in c.queries)}
        if q in names:
            return c
    return None


def results(query: str, per_class: int, seed: int) -> list[Item]:
    """All results for `query`, in rank order (empty for an unknown query)."""
    c = match_class(query)
    if c is None:
        return []
    q = " ".join(query.lower().split())
    queries = [x.lower() for x in c.queries]
    k = queries.index(q) if q in queries else 0
    n_q = len(queries)
    indices = list(range(min(POPULAR, per_class)))
    indices += [i for i in range(POPULAR, per_class) if i % n_q == k]
    items = [Item(item_path(c.slug, i, seed), f"/thumb/{c.slug}/{i}.jpg", f"{c.english} {i}") for i in indices]
    if k == 0:
        items[POPULAR:POPULAR] = [
            Item(p, f"/thumb/{c.slug}/0.jpg", f"{c.english} {name}") for name, p in trap_paths(c.slug)
        ]
    return items


def trap_paths(slug: str) -> list[tuple[str, str]]:
    """(trap name, URL path) for the traps placed on a class's first result page."""
    paths = {
        "private": f"/private/{slug}/0.jpg",
        "missing-1": f"/img/{slug}/missing-1.jpg",
        "missing-2": f"/img/{slug}/missing-2.jpg",
        "mirror": f"/mirror/{slug}/1.jpg",
        "reencoded": f"/reencoded/{slug}/2.jpg",
        "fake": f"/img/{slug}/fake.jpg",
        "truncated": f"/img/{slug}/truncated.jpg",
        "huge": f"/img/{slug}/huge.png",
        "tiny": f"/img/{slug}/tiny.jpg",
    }
    return list(paths.items())


def page_url(query: str, page: int) -> str:
    return "/search?" + urllib.parse.urlencode({"q": query, "page": page})


def render_page(query: str, page: int, per_class: int, seed: int, page_size: int) -> str:
    """The HTML of one result page: full-size links around thumbnails, and rel=next."""
    items = results(query, per_class, seed)
    chunk = items[(page - 1) * page_size : page * page_size]

    def esc(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

    cells = "\n".join(
        f'<div class="result"><a class="thumb" href="{esc(it.path)}">'
        f'<img src="{esc(it.thumb)}" alt="{esc(it.title)}" width="96"></a>'
        f'<span class="title">{esc(it.title)}</span></div>'
        for it in chunk
    )
    nav = []
    if page > 1:
        nav.append(f'<a rel="prev" href="{esc(page_url(query, page - 1))}">previous</a>')
    if page * page_size < len(items):
        nav.append(f'<a rel="next" href="{esc(page_url(query, page + 1))}">next</a>')
    body = cells if chunk else '<p class="empty">No results.</p>'
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{esc(query)} - Flower search'
        f"</title></head><body><h1>Results for {esc(query)}</h1>{body}"
        f'<nav>{" ".join(nav)}</nav><footer><a href="/about">about</a></footer></body></html>'
    )
