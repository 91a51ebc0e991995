"""Polite, bounded HTTP for the crawler: one `Fetcher` shared by every worker thread.

For each request hop, in order: a URL with a user name or password is refused
(`userinfo_in_url`: never sent, and left out of every message); the URL's scheme and resolved
addresses are checked (`safety`), and checked again on the connected socket (so a DNS answer
that changes in between gains nothing); the host's robots.txt is fetched once (one request per
host, however many workers) and consulted; the host's gate is taken (at most
`per_host_concurrency` requests in flight, starts at least `delay` apart, the delay being
the larger of ours and robots.txt's Crawl-delay); then the body is streamed with a byte cap
on the decompressed bytes (Content-Length is not trusted) and a total deadline. Redirects
are followed by hand so every hop gets the same checks. Every per-host limit and the
robots.txt cache are keyed on `host_key`, the lower-cased host and port alone.

A host name that does not resolve is `dns_error`, retryable: a resolver that is down or slow
fails every name for a while, so a later run tries again (this download does not).

Retries are an explicit loop, not urllib3's: on 429/500/502/503/504, connection errors and
timeouts, with exponential backoff and full jitter, honouring Retry-After (which also holds
back the whole origin) unless it would pass the download's deadline, in which case the
download fails at once with a retryable reason. Other 4xx (404 included) are never retried.

robots.txt status rules (RFC 9309): 2xx -> parsed; 401/403 -> the origin is disallowed;
other 4xx -> everything allowed; 5xx -> disallowed for this run (retryable); unreachable
or timing out -> disallowed for this run (retryable). `X-Robots-Tag: noai` or `noimageai`
on a response -> skipped and recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import email.utils
import itertools
import math
import random
import re
import threading
import time
import urllib.parse

import requests
from absl import logging
from protego import Protego
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as u3exc
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from crawler import safety

PROJECT_UA = "flowerpipe-crawler/0.1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB, ignore the rest
AI_OPT_OUT = frozenset({"noai", "noimageai"})
_CHUNK = 64 * 1024


class FetchError(Exception):
    """A URL could not be fetched; `reason` is short and stable enough to count by.

    `retryable`: a later run should try again (the failure may be temporary).
    `transient`: this download tries again now (after a backoff); `retry_after` the server's wish.
    """

    def __init__(
        self,
        reason: str,
        detail: str = "",
        retryable: bool = False,
        *,
        transient: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retryable = reason, detail, retryable
        self.transient, self.retry_after = transient, retry_after


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    contact_url: str = "https://github.com/flowerpipe/flowerpipe"
    allow_private_hosts: bool = False  # loopback/private only; link-local and metadata never
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # longest wait for the headers or for any byte of the body
    deadline: float = 30.0  # seconds for one whole download: retries, redirects and body included
    retries: int = 3
    backoff: float = 0.5  # first backoff at most this; doubles per attempt (full jitter)
    max_backoff: float = 10.0
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


DEFAULT_PORTS = {"http": 80, "https": 443}


def host_key(url: str) -> str:
    """'host:port' of `url`: lower-cased, the scheme's default port filled in, any user name and
    password left out. The key of every per-host limit and of the robots.txt cache, so that
    `http://u1@h/`, `http://U2@H:80/` and `http://h/` are one host."""
    p = urllib.parse.urlsplit(url)
    host = (p.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{p.port or DEFAULT_PORTS.get(p.scheme.lower(), 0)}"


def origin(url: str) -> str:
    """'scheme://host[:port]' of `url`, lower-cased, without a user name or password."""
    p = urllib.parse.urlsplit(url)
    host = (p.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{p.scheme.lower()}://{host}" + (f":{p.port}" if p.port else "")


def backoff_delay(attempt: int, base: float, cap: float, rand=random.random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rand() * min(cap, base * 2.0**attempt)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def ai_opt_out(x_robots_tag: str) -> list[str]:
    """The AI opt-out directives (noai, noimageai) in an X-Robots-Tag value, for any user agent."""
    return sorted(AI_OPT_OUT.intersection(re.split(r"[\s,:;]+", x_robots_tag.lower())))


class _Deadline:
    """Starts with the download's first request, so waiting for a busy host's gate is not counted."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end: float | None = None

    def start(self) -> None:
        if self._end is None:
            self._end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return math.inf if self._end is None else self._end - time.monotonic()

    def error(self) -> FetchError:
        return FetchError("deadline", f"download took over {self.seconds:g}s", retryable=True)


class _HostGate:
    """Per-host concurrency limit and minimum spacing between request starts."""

    def __init__(self, concurrency: int, delay: float):
        self._sem = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._last = -math.inf
        self._not_before = -math.inf
        self.delay = delay

    def __enter__(self):
        self._sem.acquire()
        try:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._last + self.delay, self._not_before)
                self._last = start
            if start > now:
                time.sleep(start - now)
        except BaseException:
            self._sem.release()
            raise
        return self

    def __exit__(self, *exc):
        self._sem.release()

    def slow_down(self, delay: float) -> None:
        """Raises the spacing (robots.txt's Crawl-delay); it applies from the last start."""
        with self._lock:
            self.delay = max(self.delay, delay)

    def hold(self, seconds: float) -> None:
        """No request starts on this host for `seconds` (the server's Retry-After)."""
        with self._lock:
            self._not_before = max(self._not_before, time.monotonic() + seconds)


def _checked_pool(pool_cls: type, allow_private: bool) -> type:
    """`pool_cls` whose connections check the address they actually connected to."""

    class CheckedConnection(pool_cls.ConnectionCls):
        def _new_conn(self):
            sock = super()._new_conn()
            try:
                safety.check_address(sock.getpeername()[0], allow_private, self.host)
            except safety.UnsafeURL:
                sock.close()
                raise
            return sock

    return type(f"Checked{pool_cls.__name__}", (pool_cls,), {"ConnectionCls": CheckedConnection})


_POOLS = {
    allow: {"http": _checked_pool(HTTPConnectionPool, allow), "https": _checked_pool(HTTPSConnectionPool, allow)}
    for allow in (False, True)
}


class _CheckedAdapter(HTTPAdapter):
    def __init__(self, allow_private: bool, **kwargs):
        self._allow_private = allow_private  # read by init_poolmanager, which the base __init__ calls
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS[self._allow_private]


@dataclasses.dataclass(frozen=True)
class _Deny:
    """robots.txt (or its absence) disallows a whole origin."""

    reason: str
    detail: str
    retryable: bool


class Fetcher:
    """Thread-safe polite fetcher. `requests_per_host` counts requests (attempts) per origin."""

    def __init__(self, config: FetchConfig = FetchConfig()):
        self.config = config
        self._local = threading.local()
        self._lock = threading.Lock()
        self._robots: dict[str, Protego | bool | _Deny] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._gates: dict[str, _HostGate] = {}
        self.requests_per_host: dict[str, int] = {}

    # -- plumbing -------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            c = self.config
            adapter = _CheckedAdapter(
                c.allow_private_hosts, max_retries=0, pool_connections=c.pool_size, pool_maxsize=c.pool_size
            )
            s = requests.Session()
            s.trust_env = False  # no proxy or .netrc from the environment: we connect where we checked
            s.mount("http://", adapter)
            s.mount("https://", adapter)
            s.headers["User-Agent"] = c.user_agent
            self._local.session = s
        return s

    def _gate(self, key: str) -> _HostGate:
        """The gate of the host `key` (a `host_key`)."""
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = _HostGate(self.config.per_host_concurrency, self.config.per_host_delay)
            return gate

    # -- robots.txt -----------------------------------------------------------------------
    def _robots_for(self, url: str) -> Protego | bool | _Deny:
        """Protego rules, True (allow all) or a _Deny for `url`'s host, by the status rules; fetched once
        per host (`host_key`)."""
        key, base = host_key(url), origin(url)
        with self._lock:
            if key in self._robots:
                return self._robots[key]
            lock = self._robots_locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._robots:
                return self._robots[key]
            rules: Protego | bool | _Deny
            try:
                page = self._get(
                    base + "/robots.txt", ROBOTS_MAX_BYTES, _Deadline(self.config.deadline), retries=0, robots_txt=True
                )
                rules = Protego.parse(page.body.decode("utf-8", errors="replace"))
                delay = rules.crawl_delay(self.config.user_agent)
                if delay:
                    self._gate(key).slow_down(float(delay))
            except FetchError as e:
                status = int(e.reason[5:]) if re.fullmatch(r"http_\d+", e.reason) else 0
                if status in (401, 403):
                    rules = _Deny(
                        "robots_disallowed", f"robots.txt of {base} answered {status}: host disallowed", retryable=False
                    )
                elif 400 <= status < 500:
                    rules = True
                elif status >= 500:
                    rules = _Deny(
                        "robots_unavailable",
                        f"robots.txt of {base} answered {status}: host disallowed for this run",
                        retryable=True,
                    )
                elif e.reason in ("timeout", "deadline", "connection_error"):
                    rules = _Deny("host_unreachable", f"{base}: robots.txt {e}", retryable=True)
                elif e.reason == "dns_error":
                    rules = _Deny("dns_error", f"robots.txt of {base}: {e.detail}", retryable=True)
                elif e.reason == "unsafe_url":  # a redirect hop of robots.txt, or the socket itself
                    rules = _Deny("unsafe_url", f"robots.txt of {base}: {e.detail}", retryable=False)
                else:
                    rules = _Deny("robots_unavailable", f"robots.txt of {base}: {e}", retryable=e.retryable)
                if isinstance(rules, _Deny):
                    logging.warning("%s: treating %s as disallowed", rules.detail, base)
            with self._lock:
                self._robots[key] = rules
            return rules

    def check_robots(self, url: str) -> float:
        """Raises FetchError if robots.txt forbids `url`; returns the host's Crawl-delay (0 if none)."""
        rules = self._robots_for(url)
        if rules is True:
            return 0.0
        if isinstance(rules, _Deny):
            raise FetchError(rules.reason, rules.detail, retryable=rules.retryable)
        if not rules.can_fetch(url, self.config.user_agent):
            raise FetchError("robots_disallowed", url)
        return float(rules.crawl_delay(self.config.user_agent) or 0.0)

    # -- fetching -------------------------------------------------------------------------
    def get(self, url: str, max_bytes: int) -> Fetched:
        """GETs `url` with every check.

        Args:
          url: http(s) URL.
          max_bytes: cap on the decompressed body.
        Returns:
          The final response, body included.
        Raises:
          FetchError: with a reason (userinfo_in_url, unsafe_url, bad_url, dns_error, robots_disallowed,
            x_robots_tag, http_404, timeout, deadline, too_large, ...) on any failure.
        """
        return self._get(url, max_bytes, _Deadline(self.config.deadline), retries=self.config.retries)

    def _get(self, url: str, max_bytes: int, deadline: _Deadline, retries: int, robots_txt: bool = False) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            if safety.has_userinfo(url):  # never sent: requests would pass it on as Basic auth
                raise FetchError(
                    "userinfo_in_url",
                    f"{safety.strip_userinfo(url)}: a URL with a user name or password is not fetched",
                )
            try:
                safety.check_url(url, self.config.allow_private_hosts)
            except safety.UnsafeURL as e:
                raise FetchError("unsafe_url", f"{url}: {e}") from e
            except safety.BadURL as e:
                raise FetchError("bad_url", f"{url[:300]}: {e}") from e
            except safety.DNSError as e:
                raise FetchError("dns_error", f"{url}: {e}", retryable=True) from e
            if not robots_txt:
                self.check_robots(url)
            result = self._with_retries(url, max_bytes, deadline, retries, robots_txt)
            if isinstance(result, Fetched):
                return result
            url = result  # the next hop
        raise FetchError("too_many_redirects", url)

    def _with_retries(
        self, url: str, max_bytes: int, deadline: _Deadline, retries: int, robots_txt: bool
    ) -> Fetched | str:
        c = self.config
        gate = self._gate(host_key(url))
        for attempt in itertools.count():
            try:
                return self._attempt(url, gate, max_bytes, deadline, robots_txt)
            except FetchError as e:
                if not e.transient:
                    raise
                if attempt >= retries:
                    tries = f"{attempt + 1} attempts" if attempt else "1 attempt"
                    raise FetchError(e.reason, f"{e.detail} (after {tries})", e.retryable) from e
                wait = e.retry_after if e.retry_after is not None else backoff_delay(attempt, c.backoff, c.max_backoff)
                if wait >= deadline.remaining():
                    raise FetchError(
                        e.reason,
                        f"{e.detail}; retry in {wait:.3g}s would pass the {c.deadline:g}s deadline",
                        retryable=True,
                    ) from e
                if e.retry_after is not None:
                    gate.hold(wait)
                logging.debug("retrying %s in %.2fs after %s", url, wait, e)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _attempt(
        self, url: str, gate: _HostGate, max_bytes: int, deadline: _Deadline, robots_txt: bool
    ) -> Fetched | str:
        """One request; returns the response, or the next hop's URL on a redirect."""
        c = self.config
        where = origin(url)
        with gate:
            deadline.start()
            remaining = deadline.remaining()
            if remaining <= 0:
                raise deadline.error()
            with self._lock:
                self.requests_per_host[where] = self.requests_per_host.get(where, 0) + 1
            try:
                resp = self._session().get(
                    url,
                    stream=True,
                    allow_redirects=False,
                    timeout=(min(c.connect_timeout, remaining), min(c.read_timeout, remaining)),
                )
            except safety.UnsafeURL as e:  # raised on the connected socket
                raise FetchError("unsafe_url", f"{url}: {e}") from e
            except requests.Timeout as e:
                if deadline.remaining() <= 0:
                    raise deadline.error() from e
                raise FetchError("timeout", str(e), retryable=True, transient=True) from e
            except requests.ConnectionError as e:
                raise FetchError("connection_error", str(e), retryable=True, transient=True) from e
            except requests.RequestException as e:
                raise FetchError("http_error", str(e), retryable=True) from e
            with contextlib.closing(resp):
                status = resp.status_code
                if resp.is_redirect:
                    try:
                        return urllib.parse.urljoin(url, resp.headers["Location"])
                    except ValueError as e:  # 'http://[::1/x'
                        raise FetchError("bad_url", f"{url}: redirect to an invalid URL ({e})") from e
                if status >= 400:
                    again = status in RETRY_STATUSES
                    raise FetchError(
                        f"http_{status}",
                        url,
                        retryable=again,
                        transient=again,
                        retry_after=parse_retry_after(resp.headers.get("Retry-After")) if again else None,
                    )
                if not robots_txt:
                    opt_out = ai_opt_out(resp.headers.get("X-Robots-Tag", ""))
                    if opt_out:
                        raise FetchError("x_robots_tag", f"{url}: X-Robots-Tag {', '.join(opt_out)}")
                declared = resp.headers.get("Content-Length", "")
                if (
                    declared.isdigit()
                    and int(declared) > max_bytes
                    and not robots_txt
                    and "chunked" not in resp.headers.get("Transfer-Encoding", "").lower()
                    and not resp.headers.get("Content-Encoding")
                ):
                    raise FetchError("too_large", f"Content-Length {declared} over {max_bytes} bytes")
                body = self._read_capped(resp, max_bytes, deadline, truncate=robots_txt)
                return Fetched(url, status, dict(resp.headers), body)

    def _read_capped(
        self, resp: requests.Response, max_bytes: int, deadline: _Deadline, truncate: bool = False
    ) -> bytes:
        """Streams the decompressed body; Content-Length is not trusted (nor needed).

        `read1` returns whatever one socket read brings (a dripping server cannot hold a
        64 KiB read open), decompresses at most one chunk at a time (a gzip bomb stops at
        the cap, not in memory), and each read waits at most the time left.
        """
        raw = resp.raw
        chunks, total = [], 0
        try:
            while True:
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise deadline.error()
                sock = getattr(getattr(raw, "connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(min(self.config.read_timeout, remaining))
                chunk = raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    if truncate:
                        chunks.append(chunk[: max_bytes - (total - len(chunk))])
                        break
                    raise FetchError("too_large", f"body over {max_bytes} bytes (decompressed)")
                chunks.append(chunk)
        except (u3exc.ReadTimeoutError, TimeoutError) as e:
            if deadline.remaining() <= 0:
                raise deadline.error() from e
            raise FetchError(
                "timeout", f"no body byte for {self.config.read_timeout:g}s", retryable=True, transient=True
            ) from e
        except u3exc.DecodeError as e:
            raise FetchError("bad_encoding", str(e)) from e
        except (u3exc.ProtocolError, u3exc.HTTPError, OSError) as e:
            raise FetchError("connection_error", f"{type(e).__name__}: {e}", retryable=True, transient=True) from e
        return b"".join(chunks)
