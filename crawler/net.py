"""Polite, bounded HTTP for the crawler: one `Fetcher` shared by every worker thread.

For each request, in order: the URL's scheme and resolved addresses are checked
(`safety`); the host's robots.txt is fetched once and consulted; the host's gate is
taken (at most `per_host_concurrency` requests at once, starts at least `delay` apart,
the delay being the larger of ours and robots.txt's Crawl-delay); then the body is
streamed with a byte cap and a total deadline. Redirects are followed by hand so every hop
gets the same checks. Retries with exponential backoff and jitter on 429/5xx and
connection errors, honouring Retry-After, are urllib3's `Retry`; 404 is never retried.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import urllib.parse

import requests
from absl import logging
from protego import Protego
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from crawler import safety

PROJECT_UA = "flowerpipe-crawler/0.1"
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A URL could not be fetched; `reason` is short and stable enough to count by."""

    def __init__(self, reason: str, detail: str = "", retryable: bool = False):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retryable = reason, detail, retryable


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    contact_url: str = "https://github.com/flowerpipe/flowerpipe"
    allow_private_hosts: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0  # seconds for one whole download, body included
    retries: int = 3
    backoff: float = 0.5
    per_host_concurrency: int = 4
    per_host_delay: float = 0.1  # seconds between request starts on one host
    pool_size: int = 32

    @property
    def user_agent(self) -> str:
        return f"{PROJECT_UA} (+{self.contact_url})"


@dataclasses.dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str]
    body: bytes


class _HostGate:
    """Per-host concurrency limit and minimum spacing between request starts."""

    def __init__(self, concurrency: int, delay: float):
        self._sem = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._next = 0.0
        self.delay = delay

    def __enter__(self):
        self._sem.acquire()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.delay
        if start > now:
            time.sleep(start - now)
        return self

    def __exit__(self, *exc):
        self._sem.release()


class Fetcher:
    """Thread-safe polite fetcher. `stats` counts requests per host."""

    def __init__(self, config: FetchConfig = FetchConfig()):
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._robots: dict[str, Protego | bool] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._unreachable: dict[str, str] = {}
        self._gates: dict[str, _HostGate] = {}
        self.requests_per_host: dict[str, int] = {}

    # -- plumbing -------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            c = self.config
            retry = Retry(total=c.retries, connect=c.retries, read=c.retries, status=c.retries, redirect=False,
                          backoff_factor=c.backoff, backoff_jitter=c.backoff / 2, status_forcelist=RETRY_STATUSES,
                          allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False)
            adapter = HTTPAdapter(max_retries=retry, pool_connections=c.pool_size, pool_maxsize=c.pool_size)
            s = requests.Session()
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers["User-Agent"] = c.user_agent
            self._local.session = s
        return s

    @staticmethod
    def _origin(url: str) -> str:
        p = urllib.parse.urlsplit(url)
        return f"{p.scheme.lower()}://{p.netloc.lower()}"

    def _gate(self, origin: str, delay: float) -> _HostGate:
        with self._lock:
            gate = self._gates.get(origin)
            if gate is None:
                gate = self._gates[origin] = _HostGate(self.config.per_host_concurrency,
                                                       self.config.per_host_delay)
            gate.delay = max(gate.delay, delay)  # robots.txt's Crawl-delay, once known
            self.requests_per_host[origin] = self.requests_per_host.get(origin, 0) + 1
            return gate

    # -- robots.txt -----------------------------------------------------------------------
    def _robots_for(self, origin: str) -> Protego | bool:
        """Protego rules, or True (allow all) / False (disallow all) by the status rules."""
        with self._lock:
            if origin in self._robots:
                return self._robots[origin]
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:
            if origin in self._robots:
                return self._robots[origin]
            rules: Protego | bool
            try:
                with self._gate(origin, 0.0):
                    r = self._session().get(origin + "/robots.txt", allow_redirects=True,
                                            timeout=(self.config.connect_timeout, self.config.read_timeout))
                if r.status_code in (401, 403):
                    rules = False
                elif 400 <= r.status_code < 500:
                    rules = True
                elif r.status_code >= 500:
                    rules = False
                else:
                    rules = Protego.parse(r.text[:500_000])
            except requests.RequestException as e:
                logging.warning("robots.txt of %s unreachable (%s): treating the host as disallowed", origin, e)
                rules = False
                with self._lock:
                    self._unreachable[origin] = f"{type(e).__name__}: {e}"
            with self._lock:
                self._robots[origin] = rules
            return rules

    def check_robots(self, url: str) -> float:
        """Raises FetchError if robots.txt forbids `url`; returns the host's Crawl-delay (0 if none)."""
        rules = self._robots_for(self._origin(url))
        if rules is True:
            return 0.0
        if rules is False:
            why = self._unreachable.get(self._origin(url))
            if why:
                raise FetchError("host_unreachable", f"{self._origin(url)}: {why}", retryable=True)
            raise FetchError("robots_disallowed", "robots.txt forbidden (401/403) or failing (5xx): host disallowed")
        if not rules.can_fetch(url, self.config.user_agent):
            raise FetchError("robots_disallowed", url)
        return float(rules.crawl_delay(self.config.user_agent) or 0.0)

    # -- fetching -------------------------------------------------------------------------
    def get(self, url: str, max_bytes: int) -> Fetched:
        """GETs `url` with every check; raises FetchError with a reason on any failure."""
        c = self.config
        start = time.monotonic()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                safety.check_url(url, c.allow_private_hosts)
            except safety.UnsafeURL as e:
                raise FetchError("unsafe_url", str(e)) from e
            crawl_delay = self.check_robots(url)
            origin = self._origin(url)
            try:
                with self._gate(origin, crawl_delay):
                    resp = self._session().get(url, stream=True, allow_redirects=False,
                                               timeout=(c.connect_timeout, c.read_timeout))
                    try:
                        if resp.is_redirect:
                            location = resp.headers.get("Location", "")
                            url = urllib.parse.urljoin(url, location)
                            continue
                        body = self._read_capped(resp, max_bytes, start)
                    finally:
                        resp.close()
            except requests.Timeout as e:
                raise FetchError("timeout", str(e), retryable=True) from e
            except requests.ConnectionError as e:
                raise FetchError("connection_error", str(e), retryable=True) from e
            except requests.RequestException as e:
                raise FetchError("http_error", str(e), retryable=True) from e
            if resp.status_code >= 400:
                raise FetchError(f"http_{resp.status_code}", url, retryable=resp.status_code in RETRY_STATUSES)
            tag = resp.headers.get("X-Robots-Tag", "").lower()
            if "noai" in tag or "noimageai" in tag:
                raise FetchError("x_robots_tag", tag)
            return Fetched(url, resp.status_code, dict(resp.headers), body)
        raise FetchError("too_many_redirects", url)

    def _read_capped(self, resp: requests.Response, max_bytes: int, start: float) -> bytes:
        """Streams the (decompressed) body; Content-Length is not trusted."""
        chunks, total = [], 0
        for chunk in resp.iter_content(chunk_size=64 * 1024):
            total += len(chunk)
            if total > max_bytes:
                raise FetchError("too_large", f"body over {max_bytes} bytes")
            if time.monotonic() - start > self.config.deadline:
                raise FetchError("deadline", f"download took over {self.config.deadline:.0f}s", retryable=True)
            chunks.append(chunk)
        return b"".join(chunks)
