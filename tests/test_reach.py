"""What a crawl reaches: the scope of sitemap entries, origins, frames and page-level robots
rules, each against a loopback server."""

from __future__ import annotations

import logging

import pytest

from trio_scrape import CrawlConfig, scrape

from .site import Reply, Site, html_page
from .test_sitemaps import XML, urlset


async def test_sitemap_entries_out_of_scope_are_counted_in_a_warning(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # A staging copy whose sitemap names the production host (as MkDocs' site_url does).
    site.add("/a", Reply(body=html_page("A")))
    production = [(f"https://www.mkdocs.test/p{i}/", None) for i in range(3)]
    body = urlset((site.url("/a"), None), *production, ("https://cdn.mkdocs.test/x", None))
    site.add("/sitemap.xml", Reply(body=body, content_type=XML))
    config = CrawlConfig(sitemaps=(site.url("/sitemap.xml"),), robots=False)
    with caplog.at_level(logging.WARNING, logger="trio_scrape"):
        got = {p.url[len(site.base) :]: p for p in await scrape([], config)}
    assert set(got) == {"/sitemap.xml", "/a"}
    assert got["/sitemap.xml"].data["sitemap"]["out_of_scope"] == 4
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        f"sitemap {site.url('/sitemap.xml')}: 4 of its 5 pages are out of scope and not"
        " crawled: www.mkdocs.test (3), cdn.mkdocs.test (1) "
    )
