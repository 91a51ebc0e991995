import io

import requests
from PIL import Image

from crawler.flowersite import catalog
from crawler.sources.html import parse_results


def test_search_pages_paginate_until_results_run_out(flower_site):
    url = flower_site.url + catalog.page_url("daisy flower", 1)
    pages = 0
    links = []
    while url:
        r = requests.get(url, timeout=10)
        assert r.status_code == 200
        page_links, url = parse_results(r.text, r.url)
        links += page_links
        pages += 1
    expected = catalog.results("daisy flower", flower_site.per_class, flower_site.seed)
    assert [link.url.replace(flower_site.url, "") for link in links] == [it.path for it in expected]
    assert pages == -(-len(expected) // flower_site.page_size)
    assert all(link.thumbnail_url for link in links)


def test_unknown_query_has_no_results(flower_site):
    r = requests.get(flower_site.url + "/search?q=motorbike", timeout=10)
    assert "No results" in r.text and 'rel="next"' not in r.text


def test_traps_behave_like_the_real_web(flower_site):
    base = flower_site.url
    assert "Disallow: /private/" in requests.get(base + "/robots.txt", timeout=10).text
    assert requests.get(base + "/img/rose/missing-1.jpg", timeout=10).status_code == 404
    fake = requests.get(base + "/img/rose/fake.jpg", timeout=10)
    assert fake.headers["Content-Type"] == "image/jpeg" and fake.content.lstrip().startswith(b"<!doctype html")
    original = requests.get(base + catalog.item_path("rose", 1, flower_site.seed), timeout=10).content
    assert requests.get(base + "/mirror/rose/1.jpg", timeout=10).content == original
    near = requests.get(base + "/reencoded/rose/2.jpg", timeout=10).content
    assert near != requests.get(base + catalog.item_path("rose", 2, flower_site.seed), timeout=10).content
    truncated = requests.get(base + "/img/rose/truncated.jpg", timeout=10).content
    img = Image.open(io.BytesIO(truncated))
    try:
        img.load()
        raise AssertionError("truncated JPEG decoded")
    except OSError:
        pass
    huge = requests.get(base + "/img/rose/huge.png", timeout=10).content
    assert len(huge) < 200_000 and int.from_bytes(huge[16:20], "big") == 20000


def test_images_are_jpeg_and_some_png():
    formats = {catalog.image_format("tulip", i, 0) for i in range(60)}
    assert formats == {"jpeg", "png"}


def test_latency_delays_every_response_and_connections_wait_side_by_side():
    import concurrent.futures
    import time

    from crawler.flowersite import FlowerSite

    with FlowerSite(per_class=2, latency_ms=200) as site:
        t0 = time.perf_counter()
        assert requests.get(site.url + "/robots.txt", timeout=5).status_code == 200
        single = time.perf_counter() - t0
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda _: requests.get(site.url + "/robots.txt", timeout=5).status_code, range(4)))
        together = time.perf_counter() - t0
    assert single >= 0.2 and codes == [200] * 4
    assert together < 4 * 0.2  # four connections overlap their waits (sequential would take 0.8 s)


def test_a_client_that_hangs_up_mid_request_prints_no_traceback(capfd):
    import socket
    import struct
    import time

    from crawler.flowersite import FlowerSite

    with FlowerSite(per_class=2) as site:
        host, port = site.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /robots.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the request is not finished
            time.sleep(0.2)  # the server is reading it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        time.sleep(0.5)  # the server's thread meets the reset
        assert requests.get(site.url + "/robots.txt", timeout=5).status_code == 200  # and serves on
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err
