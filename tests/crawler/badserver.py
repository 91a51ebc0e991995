"""A misbehaving web server for crawler tests: real sockets on 127.0.0.1, one origin each.

    with BadServer({"/robots.txt": text("User-agent: *\\nDisallow: /private/\\n"),
                    "/flaky.jpg": sequence(status(503), ok(jpeg))}) as s:
        s.url + "/flaky.jpg"
        s.requests  # what it saw: path, headers, start and end time, bytes sent, outcome

A route is `route(handler, n)`, n being how often its path was asked before. Routes are
looked up by exact path, then by the longest matching prefix (a key ending in '/').
"""

from __future__ import annotations

import functools
import io
import socket
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image

Route = Callable[["_Handler", int], None]


# -- images ------------------------------------------------------------------------------------
@functools.cache
def image(seed: int, size: int = 96, fmt: str = "JPEG") -> bytes:
    """A smooth random picture: different seeds are far apart in perceptual hash."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), "RGB")
    img = small.resize((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def near_copy(data: bytes) -> bytes:
    """A re-encoded, slightly smaller copy: a near-duplicate, not an exact one."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img = img.resize((img.width * 9 // 10, img.height * 9 // 10), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()


@functools.cache
def gzip_of_zeros(n_bytes: int) -> bytes:
    """gzip of `n_bytes` zero bytes: about a thousandth of the size."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(parts) + comp.compress(bytes(n_bytes & ((1 << 20) - 1))) + comp.flush()


# -- routes ------------------------------------------------------------------------------------
def ok(body: bytes, ctype: str = "image/jpeg", headers: dict | None = None) -> Route:
    def route(h: _Handler, n: int) -> None:
        h.reply(200, body, {"Content-Type": ctype, **(headers or {})})

    return route


def text(body: str) -> Route:
    return ok(body.encode(), "text/plain")


def status(code: int, headers: dict | None = None, body: bytes = b"error") -> Route:
    def route(h: _Handler, n: int) -> None:
        h.reply(code, body, {"Content-Type": "text/html", **(headers or {})})

    return route


def redirect(location: str, code: int = 302) -> Route:
    return status(code, {"Location": location}, b"")


def sequence(*routes: Route) -> Route:
    """The n-th request gets routes[n]; the last one repeats."""

    def route(h: _Handler, n: int) -> None:
        routes[min(n, len(routes) - 1)](h, n)

    return route


def sleep_then(seconds: float, then: Route) -> Route:
    """Sleeps before sending anything (headers included)."""

    def route(h: _Handler, n: int) -> None:
        time.sleep(seconds)
        then(h, n)

    return route


def hang_up() -> Route:
    """Closes the connection without a response (a connection error for the client)."""

    def route(h: _Handler, n: int) -> None:
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)
        h.entry["outcome"] = "hung up"

    return route


def drip(body: bytes, interval: float, ctype: str = "image/jpeg") -> Route:
    """Honest headers, then one byte every `interval` seconds."""

    def route(h: _Handler, n: int) -> None:
        h.send_head(200, {"Content-Type": ctype, "Content-Length": str(len(body))})
        for i in range(len(body)):
            h.write(body[i : i + 1])
            time.sleep(interval)

    return route


def stream(n_bytes: int, *, claim: int | None = None, chunked: bool = False, first: bytes = b"") -> Route:
    """`n_bytes` of body (`first`, then zeros); `claim` is the Content-Length header, true or not.

    With `chunked`, Transfer-Encoding: chunked overrides the (false) Content-Length, as HTTP says;
    without, no framing at all: the body ends when the connection closes.
    """

    def route(h: _Handler, n: int) -> None:
        headers = {"Content-Type": "image/jpeg", "Connection": "close"}
        if claim is not None:
            headers["Content-Length"] = str(claim)
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        h.close_connection = True
        h.send_head(200, headers)
        block = 64 * 1024
        sent = 0
        while sent < n_bytes:
            data = (first + bytes(block))[:block] if sent == 0 else bytes(min(block, n_bytes - sent))
            h.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data, body=len(data))
            sent += len(data)
        if chunked:
            h.write(b"0\r\n\r\n")

    return route


def seeded(fmt: str = "JPEG", seconds: float = 0.0, headers: dict | None = None) -> Route:
    """For a prefix: '<prefix>/<seed>.<ext>' is image(seed); other names get a seed from their crc32."""

    def route(h: _Handler, n: int) -> None:
        name = h.path.split("?", 1)[0].rsplit("/", 1)[1].split(".", 1)[0]
        seed = int(name) if name.isdigit() else 10_000 + zlib.crc32(h.path.encode()) % 10_000
        if seconds:
            time.sleep(seconds)
        h.reply(200, image(seed, fmt=fmt), {"Content-Type": f"image/{fmt.lower()}", **(headers or {})})

    return route


def gzip_bomb(n_bytes: int) -> Route:
    body = gzip_of_zeros(n_bytes)
    return ok(body, "image/png", {"Content-Encoding": "gzip"})


# -- server ------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that stops reading cannot block a server thread for long
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def do_GET(self):  # noqa: N802
        bad = self.server.bad
        self.entry = bad._record(self)
        path = self.path.split("?", 1)[0]
        route, n = bad._route(path)
        try:
            route(self, n)
            self.entry.setdefault("outcome", "sent")
        except (TimeoutError, BrokenPipeError, ConnectionResetError) as e:
            self.entry["outcome"] = f"aborted by client ({type(e).__name__})"
            self.close_connection = True
        finally:
            self.entry["end"] = time.monotonic()

    def send_head(self, code: int, headers: dict) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def write(self, data: bytes, body: int | None = None) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.entry["body_bytes"] += len(data) if body is None else body

    def reply(self, code: int, body: bytes, headers: dict) -> None:
        self.send_head(code, {"Content-Length": str(len(body)), **headers})
        self.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    bad: BadServer


class BadServer:
    """One origin on 127.0.0.1 (a free port); `requests` is its request log."""

    def __init__(self, routes: dict[str, Route]):
        self.routes = dict(routes)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.bad = self
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self.requests: list[dict] = []
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def log(self, since: int = 0, prefix: str = "") -> list[dict]:
        """Requests from index `since` on whose path starts with `prefix`."""
        with self._lock:
            return [r for r in self.requests[since:] if r["path"].startswith(prefix)]

    def mark(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, h: BaseHTTPRequestHandler) -> dict:
        entry = {
            "path": h.path,
            "headers": dict(h.headers),
            "time": time.monotonic(),
            "end": None,
            "body_bytes": 0,
            "outcome": None,
        }
        with self._lock:
            self.requests.append(entry)
        return entry

    def _route(self, path: str) -> tuple[Route, int]:
        with self._lock:
            if path in self.routes:
                key = path
            else:
                prefixes = [p for p in self.routes if p.endswith("/") and path.startswith(p)]
                key = max(prefixes, key=len) if prefixes else ""
            n = self._counts.get(path, 0)
            self._counts[path] = n + 1
        if not key:
            return status(404, body=b"<html>Not found</html>"), n
        return self.routes[key], n


def max_in_flight(entries: list[dict], slack: float = 0.02) -> int:
    """The most requests the server was serving at one moment.

    A handler stamps its `end` after its last write returns: the client may already have the
    response and have sent its next request. Overlaps shorter than `slack` seconds are that
    race (a loaded machine can deschedule the handler thread for a while), not concurrency.
    """
    done = [e for e in entries if e["end"] is not None]
    events = sorted(
        [(e["time"], 1) for e in done] + [(max(e["time"], e["end"] - slack), -1) for e in done],
        key=lambda t: (t[0], t[1]),
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most
