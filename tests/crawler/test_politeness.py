"""Politeness, robustness and safety of the download phase, against misbehaving local servers.

Every server is real (sockets on 127.0.0.1, see `badserver`), started once for this module;
each test asserts on what the server saw (its request log) and on what the crawler wrote.
Tests use their own paths, and read the log from a mark taken before they crawl.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import socket
import time
import tracemalloc
from email.utils import format_datetime

import imagehash
import pytest
import urllib3.util.connection

from crawler import dedup, net, safety
from crawler.candidates import Candidate, write_candidates
from crawler.download import DownloadConfig, download
from crawler.flowersite.site import bomb_png
from crawler.manifest import ManifestRecord
from crawler.store import Store
from tests.conftest import run_cli
from tests.crawler import badserver as bs

CONTACT = "https://example.org/flowerpipe-contact"
UA = f"flowerpipe-crawler/0.1 (+{CONTACT})"
MB = 1024 * 1024

# Images for the dedup tests: X and Y have near-copies; W, Z, V are unrelated.
X, Y, Z, W, V = (bs.image(s) for s in (600, 601, 602, 603, 604))
X_NEAR, Y_NEAR = bs.near_copy(X), bs.near_copy(Y)


def _main_routes() -> dict:
    return {
        "/robots.txt": bs.text("User-agent: *\nDisallow: /private/\n"),
        "/img/": bs.seeded(),
        "/private/": bs.seeded(),
        "/slow/": bs.seeded(seconds=0.3),
        "/evil/": bs.seeded(),
        "/noai/": bs.seeded(headers={"X-Robots-Tag": "noai"}),
        "/noimageai/": bs.seeded(headers={"X-Robots-Tag": "otherbot: noindex, noimageai"}),
        "/indexless/": bs.seeded(headers={"X-Robots-Tag": "noindex, nofollow"}),
        "/flaky.jpg": bs.sequence(bs.status(503), bs.status(502), bs.ok(bs.image(501))),
        "/drop.jpg": bs.sequence(bs.hang_up(), bs.ok(bs.image(502))),
        "/always500.jpg": bs.status(500),
        "/missing.jpg": bs.status(404),
        "/gone.jpg": bs.status(410),
        "/limited.jpg": bs.sequence(bs.status(429, {"Retry-After": "1"}), bs.ok(bs.image(503))),
        "/busy.jpg": bs.status(429, {"Retry-After": "3600"}),
        "/sleepy.jpg": bs.sleep_then(3.0, bs.ok(bs.image(504))),
        "/drip.jpg": bs.drip(bs.image(505), 0.5),
        "/bomb.png": bs.gzip_bomb(200 * MB),
        "/chunked-lie.jpg": bs.stream(30 * MB, claim=1000, chunked=True, first=b"\xff\xd8\xff"),
        "/unframed.jpg": bs.stream(30 * MB, first=b"\xff\xd8\xff"),
        "/fake.jpg": bs.ok(b"<!doctype html><html><body>Hot flowers near you!</body></html>", "image/jpeg"),
        "/picture.html": bs.ok(bs.image(506, fmt="PNG"), "text/html"),
        "/truncated.jpg": bs.ok(bs.image(507)[: len(bs.image(507)) * 6 // 10]),
        "/pixelbomb.png": bs.ok(bomb_png(), "image/png"),
        "/tiny.jpg": bs.ok(bs.image(508, size=24)),
        "/to-metadata.jpg": bs.redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-metadata-odd.jpg": bs.redirect("http://0xa9fea9fe/latest/meta-data/"),
        "/to-file.jpg": bs.redirect("file:///etc/passwd"),
        "/to-img.jpg": bs.redirect("/img/509.jpg"),
        "/dedup/x.jpg": bs.ok(X),
        "/dedup/x-copy.jpg": bs.ok(X),
        "/dedup/x-near.jpg": bs.ok(X_NEAR),
        "/dedup/y.jpg": bs.ok(Y),
        "/dedup/y-copy.jpg": bs.ok(Y),
        "/dedup/y-near.jpg": bs.ok(Y_NEAR),
        "/dedup/z.jpg": bs.ok(Z),
        "/dedup/w.jpg": bs.ok(W),
        "/dedup/v.jpg": bs.ok(V),
    }


@pytest.fixture(scope="module")
def site():
    with bs.BadServer(_main_routes()) as s:
        yield s


@pytest.fixture(scope="module")
def origins():
    """More origins (each its own host:port), made on demand and closed with the module."""
    made = []

    def make(routes: dict) -> bs.BadServer:
        server = bs.BadServer(routes).__enter__()
        made.append(server)
        return server

    yield make
    for server in made:
        server.__exit__(None, None, None)


@pytest.fixture
def connects(monkeypatch):
    """Every address the crawler opens a TCP connection to."""
    seen = []
    real = urllib3.util.connection.create_connection

    def spy(address, *args, **kwargs):
        seen.append(address[0])
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    return seen


@dataclasses.dataclass
class Crawl:
    out: str
    stats: dict
    manifest: list[dict]
    rejected: list[dict]
    seconds: float

    def reason(self, url: str, klass: str = "daisy") -> str:
        hits = [r["reason"] for r in self.rejected if r["url"] == url and r["class"] == klass]
        assert len(hits) == 1, (url, self.rejected)
        return hits[0]

    def record(self, url: str, klass: str = "daisy") -> dict:
        return next(r for r in self.rejected if r["url"] == url and r["class"] == klass)

    @property
    def accepted(self) -> set[tuple[str, str]]:
        return {(m["url"], m["class"]) for m in self.manifest}


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def crawl(out, items, *, workers: int = 4, max_image_bytes: int = 2 * MB, **fetch) -> Crawl:
    """The download phase over `items` ((url, class) pairs, or urls for daisy), in this process."""
    config = dict(
        allow_private_hosts=True,
        contact_url=CONTACT,
        per_host_delay=0.0,
        retries=2,
        backoff=0.05,
        connect_timeout=2.0,
        read_timeout=2.0,
        deadline=5.0,
    )
    config.update(fetch)
    pairs = [(i, "daisy") if isinstance(i, str) else i for i in items]
    store = Store(str(out))
    start = time.monotonic()
    stats = download(
        [Candidate(u, k, source="test") for u, k in pairs],
        store,
        net.Fetcher(net.FetchConfig(**config)),
        DownloadConfig(workers=workers, max_image_bytes=max_image_bytes),
    )
    return Crawl(
        str(out),
        stats,
        read_jsonl(store.path("manifest.jsonl")),
        read_jsonl(store.path("rejected.jsonl")),
        time.monotonic() - start,
    )


def paths(entries: list[dict]) -> list[str]:
    return [e["path"] for e in entries]


def starts(entries: list[dict]) -> list[float]:
    return sorted(e["time"] for e in entries)


def wait_for_end(server: bs.BadServer, path: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [e for e in server.log(prefix=path) if e["end"] is not None]
        if hits:
            return hits[-1]
        time.sleep(0.02)
    raise AssertionError(f"{path} never finished on the server")


# -- robots.txt and User-Agent -----------------------------------------------------------------
def test_robots_txt_is_fetched_once_per_origin_before_any_other_request(site, tmp_path):
    mark = site.mark()
    urls = [f"{site.url}/img/{i}.jpg" for i in range(12)] + [f"{site.url}/private/{i}.jpg" for i in (1, 2)]
    c = crawl(tmp_path, urls, workers=8, per_host_concurrency=8)
    log = site.log(mark)
    assert paths(log).count("/robots.txt") == 1
    robots = next(e for e in log if e["path"] == "/robots.txt")
    assert all(robots["end"] <= e["time"] for e in log if e is not robots), "a request went out before robots.txt"
    assert not [p for p in paths(log) if p.startswith("/private/")]
    assert len(c.manifest) == 12
    assert {c.reason(u) for u in urls[12:]} == {"robots_disallowed"}


ROBOTS_RULES = {  # robots.txt behaviour -> (reason for the images or None if allowed, retryable)
    "401": (bs.status(401), "robots_disallowed", False),
    "403": (bs.status(403), "robots_disallowed", False),
    "404": (bs.status(404), None, None),
    "410": (bs.status(410), None, None),
    "500": (bs.status(500), "robots_unavailable", True),
    "503": (bs.status(503), "robots_unavailable", True),
    "timeout": (bs.sleep_then(2.0, bs.text("User-agent: *\nAllow: /\n")), "host_unreachable", True),
}


@pytest.mark.parametrize("rule", list(ROBOTS_RULES))
def test_robots_txt_status_rules(rule, origins, tmp_path):
    route, reason, retryable = ROBOTS_RULES[rule]
    server = origins({"/robots.txt": route, "/img/": bs.seeded()})
    urls = [f"{server.url}/img/{i}.jpg" for i in (1, 2, 3)]
    c = crawl(tmp_path, urls, workers=3, read_timeout=0.5, retries=2)
    log = server.log()
    assert paths(log).count("/robots.txt") == 1  # never retried, fetched once for three workers
    if reason is None:  # other 4xx: everything allowed
        assert sorted(paths(log)) == ["/img/1.jpg", "/img/2.jpg", "/img/3.jpg", "/robots.txt"]
        assert len(c.manifest) == 3
    else:  # no request but robots.txt; every image rejected with the reason
        assert paths(log) == ["/robots.txt"]
        assert not c.manifest
        assert {c.reason(u) for u in urls} == {reason}
        assert {c.record(u)["retryable"] for u in urls} == {retryable}


def test_crawl_delay_from_robots_txt_spaces_request_starts(origins, tmp_path):
    server = origins({"/robots.txt": bs.text("User-agent: *\nCrawl-delay: 0.4\n"), "/img/": bs.seeded()})
    c = crawl(
        tmp_path, [f"{server.url}/img/{i}.jpg" for i in range(4)], workers=4, per_host_concurrency=4, per_host_delay=0.0
    )
    t = starts(server.log())
    assert len(t) == 5 and len(c.manifest) == 4
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert min(gaps) >= 0.35, gaps  # robots.txt's 0.4 s, though our own delay is 0


def test_x_robots_tag_noai_and_noimageai_are_skipped_and_recorded(site, tmp_path):
    mark = site.mark()
    noai, noimageai, indexless = (
        f"{site.url}/{p}/{i}.jpg" for p, i in (("noai", 1), ("noimageai", 2), ("indexless", 3))
    )
    c = crawl(tmp_path, [noai, noimageai, indexless])
    assert c.reason(noai) == c.reason(noimageai) == "x_robots_tag"
    assert "noimageai" in c.record(noimageai)["detail"] and not c.record(noai)["retryable"]
    assert c.accepted == {(indexless, "daisy")}  # other directives are not an AI opt-out
    assert sorted(paths(site.log(mark))) == ["/indexless/3.jpg", "/noai/1.jpg", "/noimageai/2.jpg", "/robots.txt"]
    assert os.listdir(os.path.join(c.out, "daisy")) == [f"{c.manifest[0]['sha256']}.jpg"]


def test_user_agent_names_the_project_and_the_contact_url_flag(site, tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    write_candidates(str(out / "candidates.jsonl"), [Candidate(f"{site.url}/img/{i}.jpg", "daisy") for i in (20, 21)])
    mark = site.mark()
    run_cli(
        "crawler.crawl",
        "--phase=download",
        "--classes=daisy",
        f"--out_dir={out}",
        "--allow_private_hosts",
        f"--contact_url={CONTACT}",
        "--workers=2",
        "--per_host_delay=0",
    )
    log = site.log(mark)
    assert sorted(paths(log)) == ["/img/20.jpg", "/img/21.jpg", "/robots.txt"]
    assert {e["headers"]["User-Agent"] for e in log} == {UA}
    assert len(read_jsonl(str(out / "manifest.jsonl"))) == 2


# -- concurrency, delay, retries, timeouts -----------------------------------------------------
def test_per_host_concurrency_limit_and_minimum_delay(site, origins, tmp_path):
    other = origins({"/slow/": bs.seeded(seconds=0.3)})
    mark = site.mark()
    urls = [u for i in range(6) for u in (f"{site.url}/slow/{i}.jpg", f"{other.url}/slow/{i + 100}.jpg")]
    c = crawl(tmp_path, urls, workers=8, per_host_concurrency=2, per_host_delay=0.1)
    assert len(c.manifest) == 12
    for server, log in ((site, site.log(mark)), (other, other.log())):
        assert bs.max_in_flight(log) == 2, server.url  # the limit, reached: 8 workers wanted more
        t = starts(log)
        assert min(b - a for a, b in zip(t, t[1:])) >= 0.075
    # the limit is per host: both hosts were served at the same time
    assert bs.max_in_flight(site.log(mark, "/slow/") + other.log(prefix="/slow/")) >= 3


def test_global_worker_pool_bounds_requests_in_flight(site, origins, tmp_path):
    other = origins({"/slow/": bs.seeded(seconds=0.3)})
    mark = site.mark()
    urls = [u for i in range(10, 16) for u in (f"{site.url}/slow/{i}.jpg", f"{other.url}/slow/{i + 100}.jpg")]
    c = crawl(tmp_path, urls, workers=3, per_host_concurrency=8)
    assert len(c.manifest) == 12
    assert bs.max_in_flight(site.log(mark) + other.log()) == 3


def test_5xx_and_connection_errors_are_retried_with_exponential_backoff(site, tmp_path):
    mark = site.mark()
    flaky, drop, broken = (f"{site.url}/{p}" for p in ("flaky.jpg", "drop.jpg", "always500.jpg"))
    c = crawl(tmp_path, [flaky, drop, broken], retries=2, backoff=0.2)
    log = site.log(mark)
    assert {u for u, _ in c.accepted} == {flaky, drop}
    t = starts([e for e in log if e["path"] == "/flaky.jpg"])
    assert len(t) == 3  # 503, 502, 200
    assert t[1] - t[0] <= 0.2 + 0.15 and t[2] - t[1] <= 0.4 + 0.15  # full jitter under base * 2**attempt
    assert paths(log).count("/drop.jpg") == 2  # hung up, then served
    assert paths(log).count("/always500.jpg") == 3  # retries + 1, then given up
    r = c.record(broken)
    assert r["reason"] == "http_500" and r["retryable"] and "after 3 attempts" in r["detail"]


def test_backoff_is_exponential_capped_and_fully_jittered():
    assert [net.backoff_delay(a, 0.5, 3.0, rand=lambda: 1.0) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert net.backoff_delay(4, 0.5, 3.0, rand=lambda: 0.0) == 0.0
    assert all(0 <= net.backoff_delay(2, 0.5, 3.0) <= 2.0 for _ in range(100))


def test_404_and_other_4xx_are_never_retried(site, tmp_path):
    mark = site.mark()
    missing, gone = f"{site.url}/missing.jpg", f"{site.url}/gone.jpg"
    c = crawl(tmp_path, [missing, gone], retries=3)
    assert paths(site.log(mark, "/missing")) == ["/missing.jpg"]
    assert paths(site.log(mark, "/gone")) == ["/gone.jpg"]
    assert (c.reason(missing), c.reason(gone)) == ("http_404", "http_410")
    assert not c.record(missing)["retryable"]


def test_429_retry_after_is_honoured_and_capped_by_the_deadline(site, tmp_path):
    mark = site.mark()
    limited, busy = f"{site.url}/limited.jpg", f"{site.url}/busy.jpg"
    c = crawl(tmp_path, [limited, busy], workers=2, retries=3, deadline=2.5)
    t = starts(site.log(mark, "/limited.jpg"))
    assert len(t) == 2 and t[1] - t[0] >= 0.98  # Retry-After: 1
    assert c.accepted == {(limited, "daisy")}
    # Retry-After: 3600 is past the 2.5 s deadline: one request, no sleep, a retryable failure
    assert paths(site.log(mark, "/busy.jpg")) == ["/busy.jpg"]
    r = c.record(busy)
    assert r["reason"] == "http_429" and r["retryable"] and "deadline" in r["detail"]
    assert c.seconds < 2.5


def test_retry_after_header_forms():
    assert net.parse_retry_after("120") == 120.0
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    assert 25 <= net.parse_retry_after(format_datetime(soon, usegmt=True)) <= 30
    assert net.parse_retry_after("soon") is None and net.parse_retry_after(None) is None


def test_read_timeout_on_a_server_that_sleeps_before_its_headers(site, tmp_path):
    mark = site.mark()
    sleepy = f"{site.url}/sleepy.jpg"
    c = crawl(tmp_path, [sleepy], read_timeout=0.5, retries=1, deadline=5.0)
    t = starts(site.log(mark, "/sleepy.jpg"))
    assert len(t) == 2  # timed out, retried once, timed out again
    assert 0.5 <= t[1] - t[0] <= 1.0
    r = c.record(sleepy)
    assert r["reason"] == "timeout" and r["retryable"]
    assert c.seconds < 2.5  # not the server's 3 s, twice


def test_connect_timeout_on_a_host_that_never_accepts(tmp_path):
    """A listening socket whose accept queue is full: the kernel drops further SYNs."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())  # fills the queue; nobody ever accepts
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/img/1.jpg"
        c = crawl(tmp_path, [url], connect_timeout=0.3, read_timeout=5.0, retries=0)
    r = c.record(url)
    assert r["reason"] == "host_unreachable" and "timeout" in r["detail"].lower() and r["retryable"]
    assert c.seconds < 1.5  # the connect timeout, not the read timeout or the deadline


@pytest.mark.timeout(30)  # without the deadline this server takes 20 minutes
def test_total_deadline_cuts_a_server_that_drips_bytes(site, tmp_path):
    mark = site.mark()
    drip = f"{site.url}/drip.jpg"
    c = crawl(tmp_path, [drip], read_timeout=1.0, deadline=2.0, retries=2)
    assert c.reason(drip) == "deadline" and c.record(drip)["retryable"]
    assert 1.9 <= c.seconds <= 3.5  # each byte came within the read timeout; the deadline cut it
    assert paths(site.log(mark)).count("/drip.jpg") == 1  # a deadline is not retried
    entry = wait_for_end(site, "/drip.jpg")
    assert entry["outcome"].startswith("aborted") and entry["body_bytes"] <= 8


# -- size and content --------------------------------------------------------------------------
def test_gzip_bomb_is_cut_at_the_decompressed_byte_cap(site, tmp_path):
    mark = site.mark()
    bomb = f"{site.url}/bomb.png"
    tracemalloc.start()
    try:
        c = crawl(tmp_path, [bomb], max_image_bytes=1 * MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert c.reason(bomb) == "too_large" and "decompressed" in c.record(bomb)["detail"]
    assert peak < 16 * MB, peak  # 200 MB of zeros were never held
    log = site.log(mark, "/bomb.png")
    assert len(log) == 1 and "gzip" in log[0]["headers"]["Accept-Encoding"]
    assert not c.manifest


@pytest.mark.parametrize("path", ["/chunked-lie.jpg", "/unframed.jpg"])
def test_byte_cap_while_streaming_does_not_trust_content_length(path, site, tmp_path):
    mark = site.mark()
    url = site.url + path
    c = crawl(tmp_path, [url], max_image_bytes=1 * MB)
    assert c.reason(url) == "too_large"
    assert len(site.log(mark, path)) == 1  # too_large is final: not retried
    # /chunked-lie.jpg said Content-Length: 1000 and streamed on; too_large means we counted past it
    entry = wait_for_end(site, path)
    assert entry["outcome"].startswith("aborted") and entry["body_bytes"] < 15 * MB  # not the 30 MB


def test_format_comes_from_magic_bytes_not_url_or_content_type(site, tmp_path):
    fake, picture = f"{site.url}/fake.jpg", f"{site.url}/picture.html"
    c = crawl(tmp_path, [fake, picture])
    assert c.reason(fake) == "not_an_image"  # .jpg and image/jpeg, but HTML bytes
    [m] = c.manifest
    assert m["url"] == picture and m["format"] == "png"  # .html and text/html, but PNG bytes
    assert os.path.exists(os.path.join(c.out, "daisy", f"{m['sha256']}.png"))


def test_truncated_pixel_bomb_and_tiny_images_are_rejected(site, tmp_path):
    mark = site.mark()
    names = {"truncated.jpg": "corrupt", "pixelbomb.png": "too_many_pixels", "tiny.jpg": "too_small"}
    c = crawl(tmp_path, [f"{site.url}/{n}" for n in names])
    assert {n: c.reason(f"{site.url}/{n}") for n in names} == names
    assert not c.manifest and not os.path.exists(os.path.join(c.out, "daisy"))
    assert sorted(paths(site.log(mark))) == sorted(["/robots.txt"] + [f"/{n}" for n in names])


# -- safety ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/to-metadata.jpg", "/to-metadata-odd.jpg", "/to-file.jpg"])
def test_redirect_to_metadata_or_file_is_refused_without_connecting(path, site, tmp_path, connects):
    mark = site.mark()
    url = site.url + path
    c = crawl(tmp_path, [url], allow_private_hosts=True)  # loopback allowed, metadata never
    assert c.reason(url) == "unsafe_url"
    assert set(connects) == {"127.0.0.1"}  # no connection to 169.254.169.254 was even tried
    assert paths(site.log(mark)) == ["/robots.txt", path]
    assert not c.manifest


def test_redirect_hops_are_checked_when_private_hosts_are_not_allowed(site, tmp_path, monkeypatch, connects):
    """The test server stands in for a public host; its redirects to private addresses are refused."""
    real = safety.classify
    monkeypatch.setattr(safety, "classify", lambda a: safety.PUBLIC if str(a) == "127.0.0.1" else real(a))
    port = site.url.rsplit(":", 1)[1]
    targets = {
        "/hop-private.jpg": "http://10.0.0.1/x.jpg",
        "/hop-odd.jpg": f"http://2130706434:{port}/x.jpg",
        "/hop-v6.jpg": f"http://[::ffff:7f00:2]:{port}/x.jpg",
        "/hop-ok.jpg": "/img/510.jpg",
    }
    for path, target in targets.items():
        site.routes[path] = bs.redirect(target)
    mark = site.mark()
    c = crawl(tmp_path, [site.url + p for p in targets], allow_private_hosts=False)
    assert {p: c.reason(site.url + p) for p in targets if p != "/hop-ok.jpg"} == dict.fromkeys(
        ["/hop-private.jpg", "/hop-odd.jpg", "/hop-v6.jpg"], "unsafe_url"
    )
    assert c.accepted == {(site.url + "/hop-ok.jpg", "daisy")}  # the final URL is not recorded instead
    assert set(connects) == {"127.0.0.1"}
    assert sorted(paths(site.log(mark))) == sorted(["/robots.txt", "/img/510.jpg", *targets])


def test_connected_address_is_checked_too_dns_rebinding(site, tmp_path, monkeypatch, connects):
    """check_url sees a public address; the socket then lands on 127.0.0.1: refused before any byte."""
    port = site.url.rsplit(":", 1)[1]
    monkeypatch.setattr(safety, "resolve", lambda host, port: [safety.ipaddress.ip_address("93.184.216.34")])
    real = urllib3.util.connection.create_connection

    def rebind(address, *args, **kwargs):
        host = "127.0.0.1" if address[0] == "rebind.test" else address[0]
        return real((host, address[1]), *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", rebind)
    mark = site.mark()
    url = f"http://rebind.test:{port}/img/511.jpg"
    c = crawl(tmp_path, [url], allow_private_hosts=False)
    assert c.reason(url) == "unsafe_url" and "127.0.0.1" in c.record(url)["detail"]
    assert site.log(mark) == []  # connected, checked, closed: not one request sent


def test_file_names_come_from_content_hashes_only(site, tmp_path):
    urls = [
        f"{site.url}/evil/..%2F..%2Fescape.jpg",
        f"{site.url}/evil/x.jpg?name=../../escape2.jpg",
        f"{site.url}/evil/%2e%2e%5c%2e%2e%5cescape3.jpg",
    ]
    out = tmp_path / "raw"
    c = crawl(out, urls)
    assert len(c.manifest) == 3
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    expected = sorted(
        [f"raw/daisy/{m['sha256']}.jpg" for m in c.manifest]
        + ["raw/crawl_stats.json", "raw/manifest.jsonl", "raw/rejected.jsonl"]
    )
    assert found == expected


# -- dedup -------------------------------------------------------------------------------------
def _phash(data: bytes) -> imagehash.ImageHash:
    from crawler import validate

    return imagehash.hex_to_hash(dedup.perceptual_hash(validate.validate_image(data).image))


def test_dedup_test_images_are_near_copies_or_far_apart():
    hashes = {name: _phash(data) for name, data in (("X", X), ("Y", Y), ("Z", Z), ("W", W), ("V", V))}
    assert _phash(X_NEAR) - hashes["X"] <= 3 and _phash(Y_NEAR) - hashes["Y"] <= 3 and X_NEAR != X
    names = sorted(hashes)
    assert min(hashes[a] - hashes[b] for a in names for b in names if a < b) > dedup.DEFAULT_HAMMING * 2


def test_exact_and_near_duplicates_within_a_class(site, tmp_path):
    u = {n: f"{site.url}/dedup/{n}.jpg" for n in ("x", "x-copy", "x-near", "z")}
    mark = site.mark()
    c = crawl(tmp_path, list(u.values()), workers=4)
    assert c.accepted == {(u["x"], "daisy"), (u["z"], "daisy")}  # the first copy wins, in candidate order
    assert (c.reason(u["x-copy"]), c.reason(u["x-near"])) == ("duplicate", "near_duplicate")
    assert u["x"] in c.record(u["x-near"])["detail"]
    assert sorted(paths(site.log(mark, "/dedup/"))) == sorted(f"/dedup/{n}.jpg" for n in u)
    assert len(os.listdir(os.path.join(c.out, "daisy"))) == 2


def test_cross_class_near_duplicate_is_rejected_from_both_and_reported(site, tmp_path):
    u = {n: f"{site.url}/dedup/{n}.jpg" for n in ("y", "w", "y-near", "y-copy", "v", "z")}
    items = [
        (u["y"], "daisy"),
        (u["w"], "daisy"),
        (u["y-near"], "rose"),
        (u["y-copy"], "tulip"),
        (u["y"], "daisy"),
        (u["v"], "rose"),
        (u["v"], "tulip"),
        (u["z"], "tulip"),
    ]
    mark = site.mark()
    c = crawl(tmp_path, items, workers=4)
    assert c.accepted == {(u["w"], "daisy"), (u["z"], "tulip")}
    assert c.reason(u["y"], "daisy") == "cross_class_duplicate"  # accepted first, then taken back
    assert u["y-near"] in c.record(u["y"], "daisy")["detail"]
    assert c.record(u["y"], "daisy")["other_url"] == u["y-near"]
    assert c.reason(u["y-near"], "rose") == "near_duplicate_other_class"
    assert c.reason(u["y-copy"], "tulip") == "duplicate_other_class"  # rejected too, nothing left to take back
    assert c.reason(u["v"], "rose") == "cross_class_duplicate"  # one URL under two classes
    assert c.reason(u["v"], "tulip") == "duplicate_other_class"
    # every URL fetched once, whatever the classes
    assert sorted(paths(site.log(mark, "/dedup/"))) == sorted(f"/dedup/{n}.jpg" for n in u)
    # files of retracted images are gone; the stats say what happened
    files = {str(p.relative_to(c.out)) for p in pathlib.Path(c.out).rglob("*.jpg")}
    assert files == {f"{m['class']}/{m['sha256']}.jpg" for m in c.manifest}
    stats = json.loads(open(os.path.join(c.out, "crawl_stats.json")).read())
    assert stats["accepted"] == 2 and stats["rejected"] == len(c.rejected) == 5
    assert stats["accepted_per_class"] == {"daisy": 1, "tulip": 1}
    assert stats["rejected_per_reason"]["cross_class_duplicate"] == 2
    assert {(d["url"], d["class"], d["other_url"]) for d in stats["cross_class_duplicates"]} == {
        (u["y"], "daisy", u["y-near"]),
        (u["v"], "rose", u["v"]),
    }
    # a second run fetches only what is new, and keeps rejecting copies in either class
    y_again, x_copy = f"{site.url}/dedup/y-again.jpg", f"{site.url}/dedup/x-copy.jpg"
    site.routes["/dedup/y-again.jpg"] = bs.ok(Y)
    mark = site.mark()
    again = crawl(c.out, items + [(y_again, "daisy"), (x_copy, "rose")])
    assert sorted(paths(site.log(mark))) == ["/dedup/x-copy.jpg", "/dedup/y-again.jpg", "/robots.txt"]
    assert again.reason(y_again) == "duplicate"  # of the retracted daisy y: still in the index
    assert again.accepted == c.accepted | {(x_copy, "rose")}


def _accepted(klass: str, ch: str) -> ManifestRecord:
    """A manifest record of a 3-byte image named `ch * 64`."""
    return ManifestRecord(
        f"http://h/{ch}.jpg", klass, "", "t", "t", f"{klass}/{ch * 64}", ch * 64, bytes=3, format="jpeg", phash="0" * 16
    )


def _accept(store: Store, record: ManifestRecord, data: bytes) -> None:
    """Stages `data` and accepts it, as the download's committer does."""
    store.stage(data, record.sha256, "jpg")
    store.accept_staged(record)


def test_an_interrupted_retraction_is_finished_on_load(tmp_path):
    store = Store(str(tmp_path))
    store.open()
    record = _accepted("daisy", "a")
    _accept(store, record, b"abc")
    _accept(store, _accepted("rose", "b"), b"def")
    # killed right after the retraction's rejected line: manifest and file still there
    store.reject(
        {**record.to_json(), "reason": "cross_class_duplicate", "retryable": False, "other_url": "http://h/b.jpg"}
    )
    store.close()
    state = Store(str(tmp_path)).load()
    assert [r.key for r in state.accepted] == ["rose/" + "b" * 64]
    assert [r["key"] for r in read_jsonl(str(tmp_path / "manifest.jsonl"))] == ["rose/" + "b" * 64]
    assert not (tmp_path / "daisy" / ("a" * 64 + ".jpg")).exists()
    assert [r["key"] for r in state.retracted] == [record.key]


def test_closing_the_store_deletes_images_no_manifest_line_names(tmp_path):
    """An image moved into <class>/ whose manifest line a kill lost (on an object store, the lines of
    the last few seconds) is deleted at the next close unless the resumed run accepted it again."""
    store = Store(str(tmp_path))
    store.load()
    store.open()
    _accept(store, _accepted("daisy", "a"), b"abc")
    (tmp_path / "rose").mkdir()
    (tmp_path / "rose" / ("b" * 64 + ".jpg")).write_bytes(b"orphan")
    (tmp_path / "rose" / "notes.txt").write_text("not ours")
    store.close()
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "daisy/" + "a" * 64 + ".jpg",
        "manifest.jsonl",
        "rejected.jsonl",
        "rose/notes.txt",
    ]


def test_load_repairs_duplicate_keys_and_never_deletes_for_a_smaller_cap(tmp_path, caplog):
    """Two crawls that once wrote into one folder at the same time left a key on several lines (and so
    a class over its cap): `load` keeps the first line of each key; a class over a smaller cap keeps
    its images (nothing accepted is deleted), with a warning."""

    def record(klass: str, ch: str) -> dict:
        return dataclasses.replace(_accepted(klass, ch), time=ch).to_json()

    lines = [
        record("daisy", "a"),
        record("daisy", "b"),
        {**record("daisy", "a"), "time": "later"},
        record("rose", "c"),
        record("daisy", "b"),
        record("daisy", "d"),
        record("daisy", "e"),
    ]
    with open(tmp_path / "manifest.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in lines)
    for r in lines:
        (tmp_path / r["class"]).mkdir(exist_ok=True)
        (tmp_path / r["class"] / f"{r['sha256']}.jpg").write_bytes(b"abc")
    state = Store(str(tmp_path)).load()
    assert [(r.key[:7], r.time) for r in state.accepted] == [
        ("daisy/a", "a"),
        ("daisy/b", "b"),
        ("rose/cc", "c"),
        ("daisy/d", "d"),
        ("daisy/e", "e"),
    ]
    assert [r["time"] for r in read_jsonl(str(tmp_path / "manifest.jsonl"))] == ["a", "b", "c", "d", "e"]
    assert "2 duplicate" in caplog.text
    state = Store(str(tmp_path)).load(max_per_class=3)
    assert state.per_class() == {"daisy": 4, "rose": 1} and "over --max_per_class=3: all kept" in caplog.text
    assert [r["time"] for r in read_jsonl(str(tmp_path / "manifest.jsonl"))] == ["a", "b", "c", "d", "e"]
    assert sorted(p.name[0] for p in (tmp_path / "daisy").iterdir()) == ["a", "b", "d", "e"]
