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
