import pytest

from crawler.classes import get_class
from crawler.sources import SourceOptions, get_source
from crawler.sources.html import parse_results

PAGE = """<html><body>
<div><a href="/img/a.jpg"><img src="/thumb/a.jpg" alt="A"></a></div>
<div><a href="https://cdn.example.com/b.PNG?x=1"><img src="t/b.jpg"></a></div>
<div><a href="/about">about</a><img src="//static.example.com/c.webp"></div>
<a href="/img/a.jpg">duplicate link</a>
<a href="/search?q=x&page=2">Next</a>
</body></html>"""


def test_full_size_links_with_thumbnails_then_bare_images():
    links, next_url = parse_results(PAGE, "http://site.test/search?q=x")
    assert [(link.url, link.thumbnail_url) for link in links] == [
        ("http://site.test/img/a.jpg", "http://site.test/thumb/a.jpg"),
        ("https://cdn.example.com/b.PNG?x=1", "http://site.test/t/b.jpg"),
        ("http://static.example.com/c.webp", ""),
    ]
    assert next_url == "http://site.test/search?q=x&page=2"


def test_rel_next_wins_and_last_page_has_none():
    html = '<a href="/p3">next</a><link rel="next" href="/p2">'
    assert parse_results(html, "http://s.test/p1")[1] == "http://s.test/p2"
    assert parse_results("<p>No results</p>", "http://s.test/p9") == ([], None)


@pytest.mark.parametrize(
    "options,message",
    [
        (SourceOptions(), "exactly one of --url_template or --start_url"),
        (SourceOptions(url_template="http://127.0.0.1:9/?q={query}", start_url="http://127.0.0.1:9/"), "exactly one"),
        (SourceOptions(url_template="http://127.0.0.1:9/search"), "--url_template has no {query}"),
        (SourceOptions(url_template="http://127.0.0.1:9/{query}/{size}"), "--url_template=.*unknown placeholder"),
        (SourceOptions(url_template="http://u:pw@127.0.0.1:9/?q={query}"), "--url_template holds a user name"),
        (SourceOptions(start_url="http://u:pw@127.0.0.1:9/", classes=("daisy",)), "--start_url holds a user name"),
        (SourceOptions(start_url="http://127.0.0.1:9/", classes=("daisy", "rose")), "--start_url crawls one class"),
    ],
)
def test_the_html_source_checks_its_own_options(options, message):
    with pytest.raises(ValueError, match=message):
        get_source("html", options)


def test_good_html_options_give_the_start_pages():
    source = get_source("html", SourceOptions(start_url="http://127.0.0.1:9/", classes=("daisy",)))
    assert source.start_pages(get_class("daisy")) == [("", "http://127.0.0.1:9/")]
    source = get_source("html", SourceOptions(url_template="http://127.0.0.1:9/?q={query}&p={page}"))
    assert source.start_pages(get_class("daisy"))[0] == ("daisy flower", "http://127.0.0.1:9/?q=daisy+flower&p=1")
