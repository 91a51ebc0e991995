"""The search sources: pure parsers on saved-structure fixtures, discovery against a real
HTTP server on 127.0.0.1 serving those fixtures, and the urls source end to end."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from crawler.classes import get_class
from crawler.flowersite.catalog import item_path
from crawler.sources import SourceOptions, get_source, source_names
from crawler.sources.baidu import baidu_page_url, decode_baidu_url, parse_baidu_page
from crawler.sources.bing import bing_page_url, bing_queries, parse_bing_page
from crawler.sources.bing import page_offset as bing_offset
from crawler.sources.commons import category_title, commons_api_url, parse_commons_page
from crawler.sources.urls import parse_url_lines, read_urls_file
from tests.conftest import run_cli

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
TULIP = get_class("tulip")
GCM_TOKEN = "file|54554c4950412047455352454e45524941|81234567"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# -- a local server: route(path, params) -> (status, content type, body) --------------------

Route = Callable[[str, dict], tuple[int, str, str]]


class LocalServer:
    """Serves `route` on a free port of 127.0.0.1 and logs every request's path and parameters."""

    def __init__(self, route: Route):
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                params = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()}
                server.requests.append((parts.path, params))
                status, ctype, body = route(parts.path, params)
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def queries(self, path: str) -> list[dict]:
        return [params for p, params in self.requests if p == path]


@pytest.fixture
def serve():
    servers: list[LocalServer] = []

    def start(route: Route) -> LocalServer:
        servers.append(LocalServer(route))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def fetch_text(url: str) -> str:
    r = requests.get(url, timeout=10)
    r.raise_for_status()
    return r.text


NOT_FOUND = (404, "text/plain", "not found")
EMPTY_BING = '<ul class="dgControl_list"></ul>'


def bing_route(path: str, params: dict):
    """Results for 'tulip flower' only; past page 2 Bing repeats page 2."""
    if path != "/images/async":
        return NOT_FOUND
    if params.get("q") != "tulip flower":
        return 200, "text/html", EMPTY_BING
    return 200, "text/html", fixture("bing_page1.html" if params.get("first") == "1" else "bing_page2.html")


def baidu_route(path: str, params: dict):
    if path != "/search/acjson":
        return NOT_FOUND
    if params.get("word") != "郁金香":
        return 200, "application/json", fixture("baidu_blocked.json")
    return 200, "application/json", fixture("baidu_page1.json" if params.get("pn") == "0" else "baidu_page2.json")


def commons_route(rewrite: Callable[[dict], dict] = lambda d: d) -> Route:
    def route(path: str, params: dict):
        if path != "/w/api.php":
            return NOT_FOUND
        if params.get("gcmtitle") != "Category:Tulipa":
            return 200, "application/json", json.dumps({"batchcomplete": True, "query": {"pages": []}})
        name = "commons_api_page2.json" if params.get("gcmcontinue") == GCM_TOKEN else "commons_api_page1.json"
        return 200, "application/json", json.dumps(rewrite(json.loads(fixture(name))))

    return route


def test_every_search_source_is_tested_here():
    # A new source should get a parser test and a local-server discovery test in this file.
    assert set(source_names()) - {"html"} <= {"bing", "baidu", "commons", "urls"}


# What a user may get wrong in the crawl flags the sources read (SourceOptions: one field per flag).
BAD_OPTIONS = [
    SourceOptions(),
    SourceOptions(url_template="http://127.0.0.1:9/search"),
    SourceOptions(url_template="http://127.0.0.1:9/{query}/{"),
    SourceOptions(url_template="ftp://127.0.0.1:9/search?q={query}"),
    SourceOptions(url_template="http://user:pw@127.0.0.1:9/search?q={query}"),
    SourceOptions(start_url="http://user:pw@127.0.0.1:9/", classes=("daisy",)),
    SourceOptions(start_url="http://127.0.0.1:9/", classes=("daisy", "rose")),
    SourceOptions(urls_file="/nonexistent/urls.csv"),
]
SOURCE_FLAGS = re.compile("|".join(rf"--{f.name}\b" for f in dataclasses.fields(SourceOptions)))


@pytest.mark.parametrize("name", source_names())
def test_every_source_refuses_a_bad_option_in_one_line_naming_the_flag(name):
    """Each registered source checks its own options when built (the crawl then exits 2 with that line);
    whatever it refuses, it refuses naming the flag, and never with a password in the message."""
    refused = 0
    for options in BAD_OPTIONS:
        try:
            get_source(name, options)
        except ValueError as e:
            refused += 1
            message = str(e)
            assert "\n" not in message and SOURCE_FLAGS.search(message) and "pw" not in message, (options, message)
    assert refused  # every source needs something of the flags, or refuses a bad endpoint


# -- bing -----------------------------------------------------------------------------------

BING_PAGE1 = [
    (
        "https://upload.example.org/tulips/red-tulip.jpg",
        "https://tse1.mm.bing.net/th?id=OIP.Qk3iO0LmTn&pid=15.1",
        "https://garden.example.com/spring/tulips.html",
        "Red tulip flower in spring",
    ),
    (
        "https://live.staticflickr.example/65535/5123_b.jpg?size=large&v=2",
        "https://tse3.mm.bing.net/th?id=OIP.Zz9Yy8Xx&pid=15.1",
        "https://www.flickr.example/photos/bloom/5123",
        "Yellow tulips & daffodils",
    ),
    (
        "https://bulbs.example.nl/media/tulpen%20mix.PNG",
        "https://tse4.mm.bing.net/th?id=OIP.Pp1Qq2Rr&pid=15.1",
        "https://bulbs.example.nl/nl/tulpen",
        "Tulpen mix",
    ),
]


def test_bing_parser_reads_iusc_json_and_skips_broken_results():
    results = parse_bing_page(fixture("bing_page1.html"), "https://www.bing.com/images/async?q=tulip+flower&first=1")
    assert [(r.url, r.thumbnail_url, r.page_url, r.title) for r in results] == BING_PAGE1
    assert "https://broken.example.com/cut.jpg" not in {r.url for r in results}


def test_bing_parser_on_pages_without_results():
    assert parse_bing_page(EMPTY_BING, "https://www.bing.com/images/async?q=x") == []
    assert parse_bing_page("<html><body>captcha</body></html>", "https://www.bing.com/") == []
    assert (
        parse_bing_page(
            '<a class="iusc" m="[1, 2]"></a><a class="iusc" m=\'{"murl": "ftp://x/y.jpg"}\'></a>',
            "https://www.bing.com/",
        )
        == []
    )


def test_bing_page_urls_step_by_offset():
    assert [bing_offset(page) for page in range(3)] == [1, 36, 71]
    url = bing_page_url("tulip flower", 36)
    assert url.startswith("https://www.bing.com/images/async?")
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert params["q"] == ["tulip flower"] and params["first"] == ["36"] and params["count"] == ["35"]
    local = "http://127.0.0.1:9/bing?mkt=en-US"
    assert bing_page_url("x", 1, local).startswith(local + "&q=x")
    assert bing_queries(TULIP) == ["tulip flower", "tulip", "Tulipa", "tulip bloom"]  # the Chinese name is baidu's


def test_bing_discover_against_a_local_server(serve):
    server = serve(bing_route)
    source = get_source("bing", SourceOptions(url_template=server.url + "/images/async", max_pages=5))
    cands = list(source.discover(TULIP, fetch_text))
    sent = [(p["q"], p["first"]) for p in server.queries("/images/async")]
    # Page 3 repeats page 2 (nothing new) and ends the query; the other queries end on their empty page 1.
    assert sent == [
        ("tulip flower", "1"),
        ("tulip flower", "36"),
        ("tulip flower", "71"),
        ("tulip", "1"),
        ("Tulipa", "1"),
        ("tulip bloom", "1"),
    ]
    assert all(p["qft"] == "+filterui:photo-photo" for p in server.queries("/images/async"))
    assert [(c.url, c.thumbnail_url, c.page_url) for c in cands] == [t[:3] for t in BING_PAGE1] + [
        (
            "http://keukenhof.example.com/img/field.jpeg",
            "https://tse2.mm.bing.net/th?id=OIP.Ww5Vv4Uu&pid=15.1",
            "https://keukenhof.example.com/gallery",
        )
    ]
    assert {(c.klass, c.query, c.source) for c in cands} == {("tulip", "tulip flower", "bing")}


def test_bing_max_pages_caps_each_query(serve):
    server = serve(bing_route)
    source = get_source("bing", SourceOptions(url_template=server.url + "/images/async", max_pages=1))
    assert len(list(source.discover(TULIP, fetch_text))) == 3
    assert {p["first"] for p in server.queries("/images/async")} == {"1"}


# -- baidu ----------------------------------------------------------------------------------

BAIDU_PAGE1 = [
    # replaceUrl's plain URLs win over the obfuscated objURL/fromURL of the same result
    (
        "https://pic.example.cn/yjx/red.jpg",
        "https://img1.baidu.example/it/u=1111,2222&fm=253&fmt=auto&app=138&f=JPEG?w=500&h=375",
        "https://www.example.cn/tulip.html",
        "红色郁金香图片",
    ),
    # only obfuscated URLs: decoded
    (
        "https://img.flowers-cn.example.com/2021/tulip_garden_01.jpg",
        "https://img2.baidu.example/it/u=5555,6666&fm=253&f=JPEG?w=500&h=333",
        "http://blog.huahui.example.cn/post/8842.html",
        "郁金香花园",
    ),
    # plain objURL; the title (Baidu's \' escape, <strong> highlights) cleaned
    (
        "http://photos.example.com/tulip's%20bloom.png",
        "https://img0.baidu.example/it/u=9999,1010&fm=253&f=JPEG?w=400&h=600",
        "http://photos.example.com/album/7",
        "Tulip's bloom 郁金香",
    ),
    # no objURL at all: Baidu's own copy
    (
        "https://img3.baidu.example/it/u=1414,1515&fm=253&f=JPEG?w=500&h=500",
        "https://img3.baidu.example/it/u=1414,1515&fm=253&f=JPEG?w=500&h=500",
        "",
        "郁金香",
    ),
]


def test_baidu_parser_reads_data_list():
    text = fixture("baidu_page1.json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # the fixture keeps Baidu's invalid \' escape
    results = parse_baidu_page(text, "https://image.baidu.com/search/acjson?pn=0")
    assert [(r.url, r.thumbnail_url, r.page_url, r.title) for r in results] == BAIDU_PAGE1
    assert parse_baidu_page(fixture("baidu_page2.json"), "u") == []  # only the trailing {}


def test_baidu_url_decoding():
    obfuscated = "ippr_z2C$qAzdH3FAzdH3Fks52_z&e3Bi7wi7t_z&e3Bjxw4rsj_z&e3BvgAzdH3Fr5fpAzdH3Fbb9d_z&e3Bip4s"
    assert decode_baidu_url(obfuscated) == "http://blog.huahui.example.cn/post/8842.html"
    assert decode_baidu_url("https://plain.example.com/a1.jpg") == "https://plain.example.com/a1.jpg"


@pytest.mark.parametrize(
    "text,message",
    [
        (fixture("baidu_blocked.json"), "Baidu refused the request (Forbid spider access)"),
        ("<html>验证</html>", "not JSON"),
        ('{"queryEnc": "x"}', "no 'data' list"),
    ],
)
def test_baidu_parser_errors_name_the_page(text, message):
    with pytest.raises(ValueError, match=r"^https://image\.baidu\.com/p1: .*" + message.split(" (")[0]):
        parse_baidu_page(text, "https://image.baidu.com/p1")


def test_baidu_page_urls_step_by_offset():
    url = baidu_page_url("郁金香", 60)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert url.startswith("https://image.baidu.com/search/acjson?")
    assert params["word"] == ["郁金香"] and params["pn"] == ["60"] and params["rn"] == ["30"]
    assert params["tn"] == ["resultjson_com"]


def test_baidu_discover_against_a_local_server(serve):
    server = serve(baidu_route)
    source = get_source("baidu", SourceOptions(url_template=server.url + "/search/acjson", max_pages=5))
    cands = list(source.discover(TULIP, fetch_text))
    assert [(p["word"], p["pn"], p["rn"]) for p in server.queries("/search/acjson")] == [
        ("郁金香", "0", "30"),
        ("郁金香", "30", "30"),
    ]  # page 2 holds nothing: the end
    assert [(c.url, c.thumbnail_url) for c in cands] == [t[:2] for t in BAIDU_PAGE1]
    assert cands[3].page_url.startswith(server.url + "/search/acjson?")  # no source page: the result page
    assert {(c.klass, c.query, c.source) for c in cands} == {("tulip", "郁金香", "baidu")}


def test_baidu_refusal_ends_the_class_quietly(serve):
    server = serve(baidu_route)
    source = get_source("baidu", SourceOptions(url_template=server.url + "/search/acjson"))
    assert list(source.discover(get_class("daisy"), fetch_text)) == []
    assert [p["word"] for p in server.queries("/search/acjson")] == ["雏菊"]


# -- commons --------------------------------------------------------------------------------

COMMONS_FILES = [
    (
        "https://upload.wikimedia.org/wikipedia/commons/a/a1/Tulipa_gesneriana_001.jpg",
        "https://commons.wikimedia.org/wiki/File:Tulipa_gesneriana_001.jpg",
        "CC BY-SA 4.0",
        "Anna Bloem",
    ),
    (
        "https://upload.wikimedia.org/wikipedia/commons/0/0f/Tulips_in_Keukenhof_%282019%29.png",
        "https://commons.wikimedia.org/wiki/File:Tulips_in_Keukenhof_(2019).png",
        "Public domain",
        "Jan van Dijk (photographer)",
    ),
    (
        "https://upload.wikimedia.org/wikipedia/commons/5/5e/Tulipa_sylvestris.jpg",
        "https://commons.wikimedia.org/wiki/File:Tulipa_sylvestris.jpg",
        "CC BY 2.0",
        'Flickr user "wildflowers"',
    ),
]


def test_commons_parser_reads_files_licence_author_and_continue():
    files, cont = parse_commons_page(fixture("commons_api_page1.json"), "https://commons.wikimedia.org/w/api.php")
    # the SVG and the file whose imageinfo is still to come are left out
    assert [(f.url, f.file_page, f.license, f.author) for f in files] == COMMONS_FILES[:2]
    assert files[0].license_url == "https://creativecommons.org/licenses/by-sa/4.0"
    assert files[0].thumbnail_url.endswith("/320px-Tulipa_gesneriana_001.jpg")
    assert cont == {"gcmcontinue": GCM_TOKEN, "continue": "gcmcontinue||"}
    files, cont = parse_commons_page(fixture("commons_api_page2.json"), "u")
    assert [(f.url, f.file_page, f.license, f.author) for f in files] == COMMONS_FILES[2:] and cont is None


def test_commons_parser_takes_formatversion_1_pages_in_page_id_order():
    page2 = json.loads(fixture("commons_api_page2.json"))["query"]["pages"][0]
    page1 = json.loads(fixture("commons_api_page1.json"))["query"]["pages"][0]
    v1 = {"query": {"pages": {str(page2["pageid"]): page2, str(page1["pageid"]): page1}}}
    files, cont = parse_commons_page(json.dumps(v1), "u")
    assert [f.url for f in files] == [COMMONS_FILES[0][0], COMMONS_FILES[2][0]] and cont is None


def test_commons_api_errors_name_the_request():
    with pytest.raises(ValueError, match=r"^https://c\.test/api: API error maxlag: Waiting"):
        parse_commons_page(
            '{"error": {"code": "maxlag", "info": "Waiting for a database server"}}', "https://c.test/api"
        )


def test_commons_request_urls():
    assert category_title(get_class("iris")) == "Category:Iris (plant)"
    first = urllib.parse.parse_qs(urllib.parse.urlsplit(commons_api_url("Category:Tulipa")).query)
    assert first["gcmtitle"] == ["Category:Tulipa"] and "gcmcontinue" not in first
    assert first["generator"] == ["categorymembers"] and first["iiprop"] == ["url|mime|extmetadata"]
    nxt = commons_api_url("Category:Tulipa", {"gcmcontinue": GCM_TOKEN, "continue": "gcmcontinue||"})
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(nxt).query)
    assert params["gcmcontinue"] == [GCM_TOKEN] and params["continue"] == ["gcmcontinue||"]


def test_commons_discover_against_a_local_server(serve):
    server = serve(commons_route())
    source = get_source("commons", SourceOptions(url_template=server.url + "/w/api.php", max_pages=5))
    cands = list(source.discover(TULIP, fetch_text))
    sent = server.queries("/w/api.php")
    assert [(p["gcmtitle"], p.get("gcmcontinue")) for p in sent] == [
        ("Category:Tulipa", None),
        ("Category:Tulipa", GCM_TOKEN),
    ]
    assert [(c.url, c.page_url, c.extra["license"], c.extra["author"]) for c in cands] == COMMONS_FILES
    assert all(c.extra["file_page"] == c.page_url and c.source == "commons" for c in cands)
    assert cands[0].extra["license_url"] == "https://creativecommons.org/licenses/by-sa/4.0"


def test_search_sources_refuse_a_template_as_endpoint():
    for name in ("bing", "baidu", "commons"):
        with pytest.raises(ValueError, match=f"--url_template for the {name} source"):
            get_source(name, SourceOptions(url_template="http://127.0.0.1:9/search?q={query}"))


# -- urls -----------------------------------------------------------------------------------


def test_urls_txt_and_csv_with_header_comments_and_quotes(tmp_path):
    txt = tmp_path / "list.txt"
    txt.write_text("http://a.test/1.jpg,daisy\n\n# a comment\nhttps://a.test/2.png , Morning Glory\n")
    assert [(u.url, u.klass, u.lineno) for u in read_urls_file(str(txt))] == [
        ("http://a.test/1.jpg", "daisy", 1),
        ("https://a.test/2.png", "morning_glory", 4),
    ]
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        '\ufeffurl,class\n"http://a.test/x,y.jpg",rose\nhttp://a.test/3.jpg,morning_glory\n', encoding="utf-8"
    )
    assert [(u.url, u.klass) for u in read_urls_file(str(csv_file))] == [
        ("http://a.test/x,y.jpg", "rose"),
        ("http://a.test/3.jpg", "morning_glory"),
    ]


def test_urls_jsonl(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text(
        '{"url": "http://a.test/1.jpg", "class": "tulip"}\n\n{"url": "http://a.test/2.jpg", "class": "iris"}\n'
    )
    source = get_source("urls", SourceOptions(urls_file=str(path)))
    assert [(c.url, c.klass, c.source) for c in source.discover(TULIP, fetch_text)] == [
        ("http://a.test/1.jpg", "tulip", "urls")
    ]
    assert [c.url for c in source.discover(get_class("iris"), fetch_text)] == ["http://a.test/2.jpg"]
    assert list(source.discover(get_class("rose"), fetch_text)) == []


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "l.csv",
            "url,class\nhttp://a.test/1.jpg,daisy\nhttp://a.test/2.jpg\n",
            "l.csv:3: expected 'url,class', got 1",
        ),
        ("l.csv", "http://a.test/1.jpg,daisy,extra\n", "l.csv:1: expected 'url,class', got 3"),
        ("l.txt", "# x\nhttp://a.test/1.jpg,tulipz\n", "l.txt:2: unknown class 'tulipz'; known classes: daisy,"),
        (
            "l.jsonl",
            '{"url": "http://a.test/1.jpg", "class": "rose"}\n{"url": "http://a.test/2.jpg"\n',
            "l.jsonl:2: not valid JSON",
        ),
        ("l.jsonl", '["http://a.test/1.jpg", "rose"]\n', "l.jsonl:1: expected an object with 'url' and 'class'"),
        ("l.txt", "# nothing here\n\n", "l.txt: no url,class lines"),
    ],
)
def test_urls_bad_lines_are_named(name, text, message):
    with pytest.raises(ValueError) as e:
        parse_url_lines(text, name)
    assert str(e.value).startswith(message), str(e.value)


def test_urls_lines_the_crawler_cannot_fetch_are_refused_naming_their_line(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text(
        "url,class\nfile:///etc/passwd,daisy\nhttp:///nohost.jpg,daisy\nhttp://[::1/x.jpg,daisy\n"
        "http://user:pw@a.test/1.jpg,daisy\nhttp://a.test/2.jpg,daisy\n"
    )
    found = list(get_source("urls", SourceOptions(urls_file=str(path))).discover(get_class("daisy"), fetch_text))
    assert [(c.url, c.refused, c.refused_detail.split(": ")[:2]) for c in found] == [
        ("file:///etc/passwd", "bad_url", [f"{path}:2", "not an http(s) URL with a host"]),
        ("http:///nohost.jpg", "bad_url", [f"{path}:3", "not an http(s) URL with a host"]),
        ("http://[::1/x.jpg", "bad_url", [f"{path}:4", "not a valid URL (Invalid IPv6 URL)"]),
        (
            "http://a.test/1.jpg",
            "userinfo_in_url",
            [f"{path}:5", "a URL with a user name or password is not fetched, stored or shown"],
        ),
        ("http://a.test/2.jpg", "", [""]),
    ]
    assert "pw" not in repr(found)


def test_urls_file_missing_or_not_given(tmp_path):
    with pytest.raises(ValueError, match="nope.txt: cannot read the urls file"):
        get_source("urls", SourceOptions(urls_file=str(tmp_path / "nope.txt")))
    with pytest.raises(ValueError, match="needs --urls_file"):
        get_source("urls", SourceOptions())


def test_urls_cli_downloads_the_listed_images(flower_site, tmp_path):
    seed = flower_site.seed
    wanted = {("daisy", 0), ("daisy", 1), ("daisy", 2), ("rose", 0), ("rose", 1)}
    lines = ["url,class", "# from the local flower site"]
    lines += [f"{flower_site.url}{item_path(slug, i, seed)},{slug}" for slug, i in sorted(wanted)]
    lines += [f"{flower_site.url}{item_path('tulip', 0, seed)},tulip"]  # not in --classes: left alone
    urls_file = tmp_path / "urls.csv"
    urls_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "raw"
    run_cli(
        "crawler.crawl",
        "--source=urls",
        f"--urls_file={urls_file}",
        "--classes=daisy,rose",
        f"--out_dir={out}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--workers=4",
    )
    manifest = read_jsonl(out / "manifest.jsonl")
    assert {(m["class"], m["url"]) for m in manifest} == {
        (slug, f"{flower_site.url}{item_path(slug, i, seed)}") for slug, i in wanted
    }
    assert {m["source"] for m in manifest} == {"urls"}
    assert not (out / "rejected.jsonl").exists() or read_jsonl(out / "rejected.jsonl") == []


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "url,class\nhttp://127.0.0.1:9/a.jpg,daisy\nhttp://127.0.0.1:9/b.jpg;daisy\n",
            "urls.csv:3: expected 'url,class'",
        ),
        ("http://127.0.0.1:9/a.jpg,dasiy\n", "urls.csv:1: unknown class 'dasiy'"),
    ],
)
def test_urls_cli_bad_file_is_a_one_line_error(text, message, tmp_path):
    urls_file = tmp_path / "urls.csv"
    urls_file.write_text(text)
    proc = run_cli(
        "crawler.crawl",
        "--source=urls",
        f"--urls_file={urls_file}",
        "--classes=daisy",
        f"--out_dir={tmp_path / 'raw'}",
        check=False,
    )
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_commons_cli_records_licence_and_author_in_the_manifest(flower_site, serve, tmp_path):
    """Commons answers whose file URLs point at the local flower site: a whole crawl keeps
    each file's licence, author and file page in manifest.jsonl."""
    images = iter(f"{flower_site.url}{item_path('tulip', i, flower_site.seed)}" for i in range(10))

    def to_flower_site(answer: dict) -> dict:
        for page in answer["query"]["pages"]:
            for info in page.get("imageinfo", []):
                info["url"] = next(images)
        return answer

    server = serve(commons_route(to_flower_site))
    out = tmp_path / "raw"
    run_cli(
        "crawler.crawl",
        "--source=commons",
        f"--url_template={server.url}/w/api.php",
        "--classes=tulip",
        f"--out_dir={out}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--workers=4",
    )
    manifest = read_jsonl(out / "manifest.jsonl")
    assert sorted((m["license"], m["author"], m["file_page"]) for m in manifest) == sorted(
        (lic, author, page) for _, page, lic, author in COMMONS_FILES
    )
    assert {m["source"] for m in manifest} == {"commons"}
