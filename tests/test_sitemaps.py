"""Sitemaps: urlsets, index files, gzip, <lastmod>, robots.txt discovery, hostile input."""

from __future__ import annotations

import gzip

import pytest

from trio_scrape import CrawlConfig, scrape
from trio_scrape.model.parse import SITEMAP_MAX_ENTRIES, parse_sitemap

from .site import Reply, Site, html_page
from .test_cli import cli, records

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*entries: tuple[str, str | None]) -> bytes:
    body = "".join(
        f"<url><loc>{loc}</loc>{f'<lastmod>{mod}</lastmod>' if mod else ''}</url>"
        for loc, mod in entries
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{body}</urlset>'.encode()


def index(*locs: str) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f"<sitemapindex {NS}>{body}</sitemapindex>".encode()


def pages(site: Site, *names: str) -> None:
    for name in names:
        site.add(f"/{name}", Reply(body=html_page(name)))


XML = "application/xml"


async def test_index_gzip_and_lastmod(site: Site) -> None:
    pages(site, "a", "b", "c")
    site.add("/sitemap.xml", Reply(body=index(site.url("/one.xml"), site.url("/two.xml.gz")),
                                   content_type=XML))  # fmt: skip
    site.add("/one.xml", Reply(body=urlset((site.url("/a"), "2026-11-01")), content_type=XML))
    compressed = gzip.compress(urlset((site.url("/b"), None), (site.url("/c"), "2026-10-02")))
    site.add("/two.xml.gz", Reply(body=compressed, content_type="application/x-gzip"))
    config = CrawlConfig(sitemaps=(site.url("/sitemap.xml"),), robots=False)
    got = {p.url[len(site.base) :]: p for p in await scrape([], config)}
    assert set(got) == {"/sitemap.xml", "/one.xml", "/two.xml.gz", "/a", "/b", "/c"}
    assert got["/sitemap.xml"].data == {"sitemap": {"kind": "sitemapindex", "pages": 0,
                                                    "sitemaps": 2}}  # fmt: skip
    assert got["/two.xml.gz"].data["sitemap"]["pages"] == 2
    assert got["/a"].data == {"lastmod": "2026-11-01"} and got["/a"].title == "a"
    assert got["/b"].data == {} and got["/c"].data == {"lastmod": "2026-10-02"}
    assert all(p.error is None for p in got.values())


async def test_sitemaps_named_in_robots_txt(site: Site) -> None:
    pages(site, "a", "from-sitemap")
    site.add(
        "/robots.txt",
        Reply(body=f"User-agent: *\nSitemap: {site.url('/s.xml')}\n".encode(), content_type=None),
    )
    site.add("/s.xml", Reply(body=urlset((site.url("/from-sitemap"), None)), content_type=XML))
    config = CrawlConfig(sitemaps_from_robots=True)
    got = sorted(p.url[len(site.base) :] for p in await scrape([site.url("/a")], config))
    assert got == ["/a", "/from-sitemap", "/s.xml"]


async def test_sitemap_pages_obey_scope_and_max_pages(site: Site) -> None:
    pages(site, "a", "b", "c")
    listed = urlset(("http://elsewhere.test/x", None), *((site.url(f"/{n}"), None) for n in "abc"))
    site.add("/s.xml", Reply(body=listed, content_type=XML))
    config = CrawlConfig(sitemaps=(site.url("/s.xml"),), robots=False, max_pages=3)
    got = [p.url[len(site.base) :] for p in await scrape([], config)]
    assert sorted(got) == ["/a", "/b", "/s.xml"]  # the sitemap counts as a scheduled URL


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>not a sitemap</body></html>", "root element is <html>"),
        (b"<urlset><url><loc>x", "not XML"),
        (b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
        (gzip.compress(b"<urlset>" + b" " * 5000 + b"</urlset>"), "past max_bytes=1000"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">'
            b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;">'
            b'<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
            b"]><urlset><url><loc>&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;</loc></url></urlset>",
            "not XML",  # expat refuses the entity-expansion bomb
        ),
    ],
)
def test_hostile_sitemaps_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sitemap(body, max_bytes=1000)


def test_entries_are_capped() -> None:
    body = urlset(*((f"http://x.test/{i}", None) for i in range(SITEMAP_MAX_ENTRIES + 1)))
    with pytest.raises(ValueError, match="more than 50000 entries"):
        parse_sitemap(body, max_bytes=len(body))


async def test_a_bad_sitemap_is_a_record_and_the_crawl_goes_on(site: Site) -> None:
    pages(site, "a")
    site.add("/bad.xml", Reply(body=b"<html>nope</html>", content_type=XML))
    config = CrawlConfig(sitemaps=(site.url("/bad.xml"),), robots=False)
    got = {p.url[len(site.base) :]: p for p in await scrape([site.url("/a")], config)}
    error = got["/bad.xml"].error
    assert error is not None and error.kind == "sitemap" and got["/a"].ok


async def test_sitemap_option_in_the_cli(site: Site) -> None:
    pages(site, "a")
    site.add("/s.xml", Reply(body=urlset((site.url("/a"), "2026-01-01")), content_type=XML))
    result = await cli("run", "--sitemap", site.url("/s.xml"), "-q", "--no-robots")
    assert result.returncode == 0, result.stderr
    got = {r["url"][len(site.base) :]: r for r in records(result.stdout)}
    assert got["/a"]["data"] == {"lastmod": "2026-01-01"}
    bad = await cli("run", "--sitemap", "ht!tp://x")
    assert bad.returncode == 2 and b"--sitemap: invalid URL" in bad.stderr
