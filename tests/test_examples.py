"""The examples run as documented, against the demo site served on loopback."""

from __future__ import annotations

from pathlib import Path

import trio

from examples import in_program
from examples.extract_hook import extract
from trio_scrape import CrawlConfig, scrape

from .site import Reply, Site

SITE_DIR = Path(__file__).parent.parent / "examples" / "site"


def serve_demo_site(site: Site) -> None:
    for path in SITE_DIR.rglob("*.html"):
        route = "/" + path.relative_to(SITE_DIR).as_posix()
        site.add(route, Reply(body=path.read_bytes()))
    site.add("/", Reply(body=(SITE_DIR / "index.html").read_bytes()))


async def test_in_program_example(site: Site) -> None:
    serve_demo_site(site)
    with trio.fail_after(20):
        titles, stats = await in_program.main(site.url("/"), every=0.01)
    assert "Demo news" in titles and "About the demo" in titles
    # /, /about.html, 3 articles, /index.html (a distinct URL from /), 2 missing tag pages
    assert len(titles) == stats.pages == 8
    assert stats.errors == {"http_status": 2}


async def test_extract_hook_example(site: Site) -> None:
    serve_demo_site(site)
    pages = await scrape([site.url("/")], CrawlConfig(depth=1, extract=extract))
    articles = {p.data["headline"]: p.data for p in pages if p.data}
    assert articles["Structured concurrency, explained"] == {
        "headline": "Structured concurrency, explained",
        "author": "Ada",
        "published": "2026-11-01",
        "tags": ["trio", "python"],
    }
    assert len(articles) == 3
