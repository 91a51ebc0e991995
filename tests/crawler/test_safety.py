import urllib.parse

import pytest

from crawler.safety import PRIVATE, PUBLIC, UnsafeURL, check_url, classify, resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://localhost/x.jpg",
        "http://2130706433/x.jpg",
        "http://0x7f.1/x.jpg",
        "http://017700000001/x.jpg",
        "http://127.1/x.jpg",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:c0a8:101::]/",
        "http://[fc00::1]/",
    ],
)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(url):
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://169.254.43518/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[fe80::1]/",
        "http://100.100.100.200/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
    ],
)
def test_link_local_and_metadata_are_refused_even_with_allow_private(url):
    with pytest.raises(UnsafeURL, match="link-local/metadata"):
        check_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.jpg", "gopher://x/"])
def test_only_http_and_https(url):
    with pytest.raises(UnsafeURL, match="scheme"):
        check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://8.8.8.8/flower.jpg",
        "http://[2606:4700:4700::1111]/flower.jpg",
        "http://[::ffff:8.8.8.8]/flower.jpg",
        "http://[64:ff9b::808:808]/flower.jpg",
    ],
)
def test_public_addresses_are_fetched_with_or_without_allow_private(url):
    host = urllib.parse.urlsplit(url).hostname
    assert [classify(a) for a in resolve(host, 80)] == [PUBLIC]
    assert check_url(url, allow_private=False) is None  # raises otherwise
    assert check_url(url, allow_private=True) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/x.jpg", "http://10.1.2.3/x.jpg", "http://localhost:8000/x.jpg"])
def test_loopback_and_private_addresses_are_fetched_only_with_allow_private(url):
    parts = urllib.parse.urlsplit(url)
    assert {classify(a) for a in resolve(parts.hostname, parts.port or 80)} == {PRIVATE}
    assert check_url(url, allow_private=True) is None  # raises otherwise
    with pytest.raises(UnsafeURL, match="non-public address .* --allow_private_hosts"):
        check_url(url, allow_private=False)
