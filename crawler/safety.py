"""Which URLs the crawler may fetch at all: http(s) only, and public addresses only.

A URL's host is resolved and every address it resolves to is checked; the check runs
again on every redirect hop (see `net.Fetcher`). Odd IP spellings ('0x7f.1', '2130706433',
'[::ffff:127.0.0.1]') are normalised by the resolver itself, so they are caught the same
way as '127.0.0.1'.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

ALLOWED_SCHEMES = ("http", "https")
# Cloud metadata endpoints that are not covered by the stdlib's private/link-local tests.
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


class UnsafeURL(ValueError):
    """The URL must not be fetched (scheme or address); the message says why."""


def is_public_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or addr in _METADATA
                or (isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10")))


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as e:
        raise UnsafeURL(f"cannot resolve host {host!r}: {e}") from e
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_url(url: str, allow_private: bool) -> None:
    """Raises UnsafeURL unless `url` is http(s) and (unless allowed) resolves to public addresses only."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURL(f"scheme {parts.scheme!r} not allowed (only http, https)")
    if not parts.hostname:
        raise UnsafeURL("no host in URL")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for addr in resolve(parts.hostname, port):
        if not is_public_address(addr):
            raise UnsafeURL(f"host {parts.hostname!r} resolves to non-public address {addr} "
                            "(use --allow_private_hosts for a local site)")
