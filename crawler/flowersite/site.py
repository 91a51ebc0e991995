"""The local flower site: an image search engine for the 20 classes, on 127.0.0.1.

    with FlowerSite(per_class=80) as site:
        print(site.url)            # http://127.0.0.1:<free port>
        ...                        # crawl it
        site.requests              # what it was asked, for tests

Real sockets (`http.server.ThreadingHTTPServer`, HTTP/1.1 keep-alive); images are rendered
on first request and kept in memory.
"""

from __future__ import annotations

import concurrent.futures
import functools
import io
import os
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from absl import logging
from PIL import Image

from crawler.classes import CLASS_NAMES, FLOWER_CLASSES
from crawler.flowersite import catalog
from crawler.flowersite.render import render_flower

THUMB_SIZE = 96
TRUNCATED_INDEX = 100_000  # seeds of trap images, far from real items


_IMAGES: dict[tuple[str, int, int], tuple[bytes, str]] = {}


def image_bytes(slug: str, index: int, seed: int) -> tuple[bytes, str]:
    """The encoded full-size image `index` of class `slug` and its MIME type (rendered once)."""
    key = (slug, index, seed)
    if key not in _IMAGES:
        _IMAGES[key] = _encode_item(key)
    return _IMAGES[key]


def _encode_item(key: tuple[str, int, int]) -> tuple[bytes, str]:
    slug, index, seed = key
    img = render_flower(slug, seed * 1_000_003 + index)
    buf = io.BytesIO()
    if catalog.image_format(slug, index, seed) == "png":
        img.save(buf, "PNG", optimize=False, compress_level=6)
        return buf.getvalue(), "image/png"
    img.save(buf, "JPEG", quality=85 + (index % 3) * 5)
    return buf.getvalue(), "image/jpeg"


@functools.cache
def thumbnail_bytes(slug: str, index: int, seed: int) -> bytes:
    img = Image.open(io.BytesIO(image_bytes(slug, index, seed)[0])).convert("RGB")
    img.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def bomb_png(side: int = 20000) -> bytes:
    """A small PNG declaring side x side 1-bit pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes((side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def trap_body(name: str, slug: str, seed: int) -> tuple[int, bytes, str]:
    """(status, body, content type) served for a trap URL."""
    if name == "private":
        body, ctype = image_bytes(slug, 0, seed)
        return 200, body, ctype
    if name.startswith("missing"):
        return 404, b"<html><body>Not found</body></html>", "text/html"
    if name == "mirror":
        body, ctype = image_bytes(slug, 1, seed)
        return 200, body, ctype
    if name == "reencoded":
        img = Image.open(io.BytesIO(image_bytes(slug, 2, seed)[0])).convert("RGB")
        img = img.resize((max(1, img.width * 9 // 10), max(1, img.height * 9 // 10)))
        return 200, _jpeg(img, 60), "image/jpeg"
    if name == "fake":
        return 200, b"<!doctype html><html><body>Hot flowers near you! Click here.</body></html>", "image/jpeg"
    if name == "truncated":
        data = _jpeg(render_flower(slug, seed * 1_000_003 + TRUNCATED_INDEX), 90)
        return 200, data[: len(data) * 6 // 10], "image/jpeg"
    if name == "huge":
        return 200, bomb_png(), "image/png"
    if name == "tiny":
        return 200, _jpeg(render_flower(slug, seed * 1_000_003 + TRUNCATED_INDEX + 1, size=(24, 24)), 90), "image/jpeg"
    raise KeyError(name)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits ~40 ms for
    # the client's delayed ACK on every response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):  # noqa: N802
        site = self.server.site
        site._record(self)
        url = urllib.parse.urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            status, body, ctype = self._route(site, url, parts)
        except (KeyError, ValueError, IndexError):
            status, body, ctype = 404, b"<html><body>Not found</body></html>", "text/html"
        if site.latency:  # a remote server's time to first byte; each connection waits on its own
            time.sleep(site.latency)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, site: FlowerSite, url, parts):
        if url.path == "/robots.txt":
            return 200, catalog.ROBOTS_TXT.encode(), "text/plain"
        if url.path in ("/", "/about"):
            return 200, site.home_page().encode(), "text/html; charset=utf-8"
        if url.path == "/search":
            qs = urllib.parse.parse_qs(url.query)
            query = qs.get("q", [""])[0]
            page = max(1, int(qs.get("page", ["1"])[0]))
            html = catalog.render_page(query, page, site.per_class, site.seed, site.page_size)
            return 200, html.encode(), "text/html; charset=utf-8"
        kind, slug, name = parts[0], parts[1], parts[2]
        if slug not in CLASS_NAMES:
            raise KeyError(slug)
        stem = name.rsplit(".", 1)[0]
        if kind in ("private", "mirror", "reencoded"):
            return trap_body(kind, slug, site.seed)
        if kind == "img" and stem in catalog.TRAPS:
            return trap_body(stem, slug, site.seed)
        index = int(stem)
        if not 0 <= index < site.per_class:
            raise KeyError(name)
        if kind == "thumb":
            return 200, thumbnail_bytes(slug, index, site.seed), "image/jpeg"
        if kind == "img" and url.path == catalog.item_path(slug, index, site.seed):
            body, ctype = image_bytes(slug, index, site.seed)
            return 200, body, ctype
        raise KeyError(name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    site: FlowerSite

    def handle_error(self, request, client_address):
        """A client that hangs up (the crawler drops a connection it is done with, or one over
        its byte cap) is ordinary here; anything else is printed with its traceback, as before."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FlowerSite:
    """The site, started on a free port of 127.0.0.1 (or the one given)."""

    def __init__(
        self,
        per_class: int = 80,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 20,
        latency_ms: float = 0.0,
    ):
        """`latency_ms`: every response waits this long before its first byte, like a server
        across a real network (loopback has none); concurrent connections wait side by side."""
        self.per_class, self.seed, self.page_size = per_class, seed, page_size
        self.latency = latency_ms / 1000.0
        self._server = _Server((host, port), _Handler)
        self._server.site = self
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def search_template(self) -> str:
        """The `--url_template` that reaches this site's result pages."""
        return self.url + "/search?q={query}"

    def home_page(self) -> str:
        links = "".join(
            f'<li><a href="{catalog.page_url(c.queries[0], 1)}">{c.english}</a></li>' for c in FLOWER_CLASSES
        )
        return (
            f'<!doctype html><html><head><meta charset="utf-8"><title>Flower search</title></head>'
            f'<body><form action="/search"><input name="q"></form><ul>{links}</ul></body></html>'
        )

    def _record(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append({"path": handler.path, "user_agent": handler.headers.get("User-Agent", "")})

    def prerender(self, processes: int = 0, classes: tuple[str, ...] = CLASS_NAMES) -> int:
        """Renders every image up front on `processes` worker processes (0: all cores).

        Optional: images are otherwise rendered on first request, in the server's process.
        Returns how many were rendered.
        """
        keys = [(c, i, self.seed) for c in classes for i in range(self.per_class) if (c, i, self.seed) not in _IMAGES]
        with concurrent.futures.ProcessPoolExecutor(processes or os.cpu_count()) as pool:
            for key, value in zip(keys, pool.map(_encode_item, keys, chunksize=16)):
                _IMAGES[key] = value
        return len(keys)

    def start(self) -> FlowerSite:
        self._thread = threading.Thread(target=self._server.serve_forever, name="flowersite", daemon=True)
        self._thread.start()
        logging.info("flower site serving %d images per class at %s", self.per_class, self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join()

    def __enter__(self) -> FlowerSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
