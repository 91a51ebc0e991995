import pytest

from crawler.safety import UnsafeURL, check_url


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


def test_public_address_and_allow_private():
    check_url("http://8.8.8.8/flower.jpg", allow_private=False)
    check_url("http://[2606:4700:4700::1111]/flower.jpg", allow_private=False)
    check_url("http://[::ffff:8.8.8.8]/flower.jpg", allow_private=False)
    check_url("http://[64:ff9b::808:808]/flower.jpg", allow_private=False)
    check_url("http://127.0.0.1:8000/x.jpg", allow_private=True)
    check_url("http://10.1.2.3/x.jpg", allow_private=True)
    check_url("http://localhost:8000/x.jpg", allow_private=True)
