"""The page pipeline alone: one attempt in, one Outcome out, no crawl state touched."""

from __future__ import annotations

import random

import httpx
import trio

from trio_scrape import CrawlConfig, CrawlRequest
from trio_scrape.engine.pipeline import Outcome, PagePipeline
from trio_scrape.http.fetcher import open_fetcher

PAGE = b"<title>Home</title><a href='/a'>a</a><a href='b?y=2&x=1'>b</a><a href='mailto:x'>m</a>"
SITEMAP = (
    b"<urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
    b"<url><loc>http://site.test/s1</loc><lastmod>2026-01-02</lastmod></url>"
    b"<url><loc>http://[bad</loc></url></urlset>"
)


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/old":
        return httpx.Response(301, headers={"Location": "/new"})
    if path == "/busy":
        return httpx.Response(503, headers={"Retry-After": "7"})
    if path == "/sitemap.xml":
        return httpx.Response(200, content=SITEMAP, headers={"Content-Type": "application/xml"})
    return httpx.Response(200, content=PAGE, headers={"Content-Type": "text/html"})


async def attempt(request: CrawlRequest, **options: object) -> Outcome:
    config = CrawlConfig(**options)  # type: ignore[arg-type]
    async with open_fetcher(config, transport=httpx.MockTransport(handler)) as fetcher:
        pipeline = PagePipeline(config, fetcher, rng=random.Random(1))
        return await pipeline.attempt(request)


async def test_a_page_gives_its_record_and_links_at_the_next_depth() -> None:
    outcome = await attempt(CrawlRequest("http://site.test/dir/", depth=1), depth=3)
    assert outcome.page is not None and outcome.page.title == "Home"
    # Browser URLs: the query as the page wrote it (the frontier dedups on canonical keys).
    assert outcome.links == ["http://site.test/a", "http://site.test/dir/b?y=2&x=1"]
    assert outcome.links_depth == 2
    assert outcome.seen is None and outcome.sitemap is None
    assert outcome.latency is not None and outcome.latency >= 0
    assert not outcome.failed


async def test_no_links_at_the_depth_limit() -> None:
    outcome = await attempt(CrawlRequest("http://site.test/", depth=1), depth=1)
    assert outcome.page is not None and outcome.page.ok and outcome.links == []


async def test_a_redirect_names_its_target_to_mark_seen() -> None:
    outcome = await attempt(CrawlRequest("http://site.test/old"))
    assert outcome.page is not None and outcome.page.final_url == "http://site.test/new"
    assert outcome.seen == "http://site.test/new"


async def test_a_retryable_answer_asks_for_a_retry_with_the_hosts_pause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outcome = await attempt(CrawlRequest("http://site.test/busy"), retries=2)
    assert outcome.page is None
    assert outcome.retry_after == 7.0 and outcome.retry_reason == "HTTP 503"
    assert outcome.failed
    last = await attempt(CrawlRequest("http://site.test/busy", attempts=2), retries=2)
    assert last.page is not None and last.page.status == 503
    assert last.page.error is not None and last.page.error.kind == "http_status"


async def test_a_sitemap_gives_its_entries_and_counts_the_unusable() -> None:
    outcome = await attempt(CrawlRequest("http://site.test/sitemap.xml", sitemap=True))
    assert outcome.sitemap is not None
    assert outcome.sitemap.pages == ["http://site.test/s1"]
    assert outcome.sitemap.lastmods == {"http://site.test/s1": "2026-01-02"}
    assert outcome.invalid_links == 1
    assert outcome.links == []


async def test_a_paced_attempt_has_its_request_written_at_once() -> None:
    from trio_scrape.http.transport import PACED

    asked: list[bool] = []

    def recording(request: httpx.Request) -> httpx.Response:
        asked.append(PACED.get())  # what the transport would see when writing it
        return handler(request)

    config = CrawlConfig()
    async with open_fetcher(config, transport=httpx.MockTransport(recording)) as fetcher:
        pipeline = PagePipeline(config, fetcher)
        for paced in (True, False, True):
            await pipeline.attempt(CrawlRequest("http://site.test/"), paced=paced)
    assert asked == [True, False, True]
