from __future__ import annotations

import pytest

from trio_scrape import CrawlConfig
from trio_scrape._urls import UrlScope, canonicalize, resolve_links


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTP://Example.COM:80/a/../b?z=1&a=2#frag", "http://example.com/b?a=2&z=1"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com", "http://example.com/"),
        ("http://ex.com/%7euser/a b", "http://ex.com/~user/a%20b"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://bücher.de/x", "http://xn--bcher-kva.de/x"),
        ("  http://example.com/p  ", "http://example.com/p"),
    ],
)
def test_canonicalize(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == canonical
    assert canonicalize(canonical) == canonical


@pytest.mark.parametrize(
    "bad", ["ht!tp://x", "mailto:a@b", "/path", "http://", "http://ex.com:99999/", "ftp://x/"]
)
def test_canonicalize_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(bad)


def test_resolve_links() -> None:
    base = "http://ex.com/dir/page.html"
    hrefs = [
        "a.html",
        "./a.html",
        "../up.html",
        "/abs",
        "#top",
        "",
        "mailto:x@y",
        "javascript:alert(1)",
        "tel:1",
        "data:text/html,hi",
        "a.html#frag",
        "http://other.org/x",
        "//proto.rel/y",
        " \t/sp\nace ",
        "http://[bad/",
        "HTTP://EX.COM/abs",
    ]
    links, invalid = resolve_links(base, hrefs)
    assert links == [
        "http://ex.com/dir/a.html",
        "http://ex.com/up.html",
        "http://ex.com/abs",
        "http://other.org/x",
        "http://proto.rel/y",
        "http://ex.com/space",
    ]
    assert invalid == 1


def test_scope() -> None:
    seeds = ["http://www.example.com/", "http://other.org/"]
    host = UrlScope(CrawlConfig(), seeds)
    assert host.allows("http://www.example.com/x") and host.allows("http://other.org/y")
    assert not host.allows("http://sub.example.com/")
    domain = UrlScope(CrawlConfig(scope="domain"), seeds)
    assert domain.allows("http://sub.example.com/") and domain.allows("http://example.com/")
    assert not domain.allows("http://notexample.com/")
    assert UrlScope(CrawlConfig(scope="any"), seeds).allows("http://anything.net/")
    allow = UrlScope(CrawlConfig(allow_hosts=("*.cdn.net",)), seeds)
    assert allow.allows("http://img.cdn.net/a") and not allow.allows("http://cdn.org/")
    filtered = UrlScope(CrawlConfig(include=(r"/blog/",), exclude=(r"\?print",)), seeds)
    assert filtered.allows("http://other.org/blog/1")
    assert not filtered.allows("http://other.org/shop/1")
    assert not filtered.allows("http://other.org/blog/1?print=1")
