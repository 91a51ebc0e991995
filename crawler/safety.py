"""Which URLs the crawler may fetch at all: http(s) only, and public addresses only.

A URL's host is resolved and every address it resolves to is checked; the check runs
again on every redirect hop, and once more on the socket itself right after it connects
(see `net.Fetcher`), so a DNS answer that changes between check and connect gains nothing.
Odd IP spellings ('0x7f.1', '2130706433', '0251.0376.0251.0376', '[::ffff:127.0.0.1]')
are normalised by the resolver itself, so they are caught the same way as '127.0.0.1';
IPv4 addresses embedded in IPv6 ones (mapped, compatible, 6to4, NAT64) are checked too.

`allow_private` (the `--allow_private_hosts` flag, for the local flower site and tests)
allows loopback and private ranges, never link-local and cloud metadata addresses: no
crawl target lives there, only credentials.

Three kinds of refusal, recorded differently: `UnsafeURL` (a scheme other than http(s), or a
host that resolved to an address we may not reach: final), `BadURL` (not a URL we can parse:
no host, a bad port or IPv6 literal, an invalid name: final) and `DNSError` (the name did not
resolve now: a resolver that is down or slow answers EAI_AGAIN, and some answer EAI_NONAME
for a while too, so a later run tries again). A URL with a user name or password
(`userinfo`) is refused before any of this (see `has_userinfo`): the crawler never sends,
stores or prints it.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

ALLOWED_SCHEMES = ("http", "https")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Refused even with allow_private: link-local (169.254.169.254 is the AWS/GCP/Azure metadata
# service) and the metadata endpoints of other clouds that sit outside link-local.
_FORBIDDEN_NETS = tuple(
    ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")

PUBLIC, PRIVATE, FORBIDDEN = "public", "private", "forbidden"


class UnsafeURL(ValueError):
    """The URL must not be fetched (scheme or address); the message says why."""


class BadURL(ValueError):
    """The URL cannot be parsed or names no valid host; the message says why."""


class DNSError(OSError):
    """The URL's host name did not resolve this time; the message says why (the resolver's words)."""


def has_userinfo(url: str) -> bool:
    """True if `url` carries a user name or password (`http://user:pass@host/`)."""
    try:
        return "@" in urllib.parse.urlsplit(url).netloc
    except ValueError:
        return "@" in url.split("//", 1)[-1].split("/", 1)[0]


def strip_userinfo(url: str) -> str:
    """`url` without its user name and password (`http://user:pass@host/a` -> `http://host/a`)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        scheme, sep, rest = url.partition("//")
        netloc, slash, path = rest.partition("/")
        return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}" if sep else url
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if int(addr) >> 32 == 0 and int(addr) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(addr))
    return None


def classify(addr: Address) -> str:
    """PUBLIC, PRIVATE (loopback, private, CGNAT, ...: allowed by allow_private) or FORBIDDEN."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_ipv4(addr)
        if inner is not None:
            return classify(inner)  # the IPv4 address the packets really go to decides
    if addr.is_loopback or addr in _NAT64_LOCAL:
        return PRIVATE
    if (
        any(addr in net for net in _FORBIDDEN_NETS)
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
    ):
        return FORBIDDEN
    if addr.is_private or not addr.is_global or addr in _CGNAT:
        return PRIVATE
    return PUBLIC


def check_address(addr: str | Address, allow_private: bool, host: str = "") -> None:
    """Raises UnsafeURL unless `addr` may be connected to."""
    ip = ipaddress.ip_address(addr.split("%")[0]) if isinstance(addr, str) else addr
    kind = classify(ip)
    where = f"host {host!r} resolves to " if host else ""
    if kind == FORBIDDEN:
        raise UnsafeURL(f"{where}link-local/metadata address {ip}: never fetched, even with --allow_private_hosts")
    if kind == PRIVATE and not allow_private:
        raise UnsafeURL(f"{where}non-public address {ip} (use --allow_private_hosts for a local site)")


def resolve(host: str, port: int) -> list[Address]:
    """The addresses `host` resolves to; DNSError if it does not resolve now, BadURL if it is no valid name."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise DNSError(f"cannot resolve host {host!r}: {e.strerror or e}") from e
    except (UnicodeError, ValueError) as e:
        raise BadURL(f"host {host!r} is not a valid name ({e})") from e
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: str, allow_private: bool) -> None:
    """Raises unless `url` is http(s) and every address its host resolves to may be fetched.

    Args:
      url: the URL of one request (a start URL or a redirect hop).
      allow_private: also allow loopback and private addresses (never link-local or metadata).
    Raises:
      UnsafeURL: another scheme, or an address that may not be fetched.
      BadURL: no host, a bad port, an invalid IPv6 literal or host name.
      DNSError: the host name did not resolve (retry later).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:  # 'http://[::1/x': an IPv6 literal without its bracket
        raise BadURL(f"not a valid URL ({e})") from e
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"scheme {parts.scheme!r} not allowed (only http, https)")
    if not parts.hostname:
        raise BadURL("no host in URL")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as e:
        raise BadURL(f"bad port in {url!r}") from e
    for addr in resolve(parts.hostname, port):
        check_address(addr, allow_private, parts.hostname)
