"""The examples run as documented, against the demo site served on loopback."""

from __future__ import annotations

from pathlib import Path

import trio

from examples import in_program, sitemap_crawl
from examples.extract_hook import extract
from trio_scrape import CrawlConfig, scrape

from .site import Reply, Site
from .test_cli import cli, records

ROOT = Path(__file__).parent.parent
SITE_DIR = ROOT / "examples" / "site"


def serve_demo_site(site: Site) -> None:
    """Serve examples/site as the quick start's demo does, on this test's port."""
    for path in SITE_DIR.rglob("*.html"):
        route = "/" + path.relative_to(SITE_DIR).as_posix()
        site.add(route, Reply(body=path.read_bytes()))
    site.add("/", Reply(body=(SITE_DIR / "index.html").read_bytes()))
    for path in SITE_DIR.glob("*.xml"):  # sitemaps name the quick start's address
        body = path.read_bytes().replace(b"http://127.0.0.1:8765", site.base.encode())
        site.add("/" + path.name, Reply(body=body, content_type="application/xml"))


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


async def test_news_config_example(site: Site) -> None:
    serve_demo_site(site)
    config = (ROOT / "examples" / "news.toml").read_text()
    result = await cli(
        "run", "--config", str(ROOT / "examples" / "news.toml"), site.url("/"), "-q", cwd=ROOT
    )
    assert "http://127.0.0.1:8765/" in config  # the documented address, replaced here
    assert result.returncode == 0, result.stderr
    articles = {r["data"]["headline"]: r["data"] for r in records(result.stdout) if
                r["data"].get("headline")}  # fmt: skip
    assert articles["Channels with back-pressure"] == {
        "headline": "Channels with back-pressure",
        "author": "Linus",
        "published": "2026-11-15",
        "tags": ["trio", "python"],
    }
    assert len(articles) == 3


async def test_sitemap_example(site: Site) -> None:
    serve_demo_site(site)
    with trio.fail_after(20):
        articles = await sitemap_crawl.main(site.url("/sitemap.xml"))
    assert sorted((p.data["lastmod"], p.title) for p in articles) == [
        ("2026-11-01", "Structured concurrency, explained · Demo news"),
        ("2026-11-15", "Channels with back-pressure · Demo news"),
        ("2026-11-20", "How crawlers stay polite · Demo news"),
    ]
    assert site.paths().count("/sitemap.xml") == 1 and "/" not in site.paths()
