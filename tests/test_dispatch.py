"""The dispatch path: how a freed host slot becomes the next request.

A worker whose page has ended takes the next request of a ready host itself
(``MemoryFrontier.get_nowait``) instead of waiting for the dispatcher to hand one over; these
tests pin that down, and that it keeps every limit the dispatcher keeps (per-host concurrency
and delay, the crawl deadline).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from trio_scrape import CrawlConfig, Crawler, CrawlRequest, MemoryFrontier, Page
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sqlite import open_sqlite_frontier

from .site import Reply, Request, Site, html_page


@asynccontextmanager
async def opened(kind: str, tmp_path: Path) -> AsyncIterator[MemoryFrontier]:
    if kind == "memory":
        yield MemoryFrontier()
    else:  # the SQLite frontier schedules hosts as the memory one does, on its window
        async with open_sqlite_frontier(tmp_path / "state.db", settings={}) as frontier:
            yield frontier


def url_of(request: CrawlRequest | None) -> str | None:
    return None if request is None else request.url


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_get_nowait_takes_the_next_ready_host_or_would_block(
    kind: str, tmp_path: Path
) -> None:
    hosts = HostLimiter(CrawlConfig(per_host=1, robots=False))
    async with opened(kind, tmp_path) as frontier:
        urls = ["http://a.test/1", "http://a.test/2", "http://b.test/1"]
        await frontier.add(urls, depth=0, referrer=None)
        assert frontier.get_nowait(hosts).url == "http://a.test/1"
        assert frontier.get_nowait(hosts).url == "http://b.test/1"  # round-robin
        with pytest.raises(trio.WouldBlock):
            frontier.get_nowait(hosts)  # a.test is at its limit, b.test has nothing
        hosts.finish("http://a.test", latency=0.1, failed=False)
        assert frontier.get_nowait(hosts).url == "http://a.test/2"
        stats = frontier.statistics()
        assert (stats.queued, stats.leased) == (0, 3)
        with pytest.raises(trio.WouldBlock):
            frontier.get_nowait(hosts)  # empty: only get() says the crawl is over
        assert hosts.statistics()["http://a.test"].in_flight == 1


async def test_get_nowait_keeps_the_delay_and_get_hands_out_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hosts = HostLimiter(CrawlConfig(per_host=2, delay=1.0, delay_jitter=0, robots=False))
    frontier = MemoryFrontier()
    await frontier.add(["http://a.test/1", "http://a.test/2"], depth=0, referrer=None)
    start = trio.current_time()
    assert frontier.get_nowait(hosts).url == "http://a.test/1"
    with pytest.raises(trio.WouldBlock):
        frontier.get_nowait(hosts)  # a free slot, but not before the delay
    assert url_of(await frontier.get(hosts)) == "http://a.test/2"
    assert trio.current_time() - start == 1.0


class CountingFrontier(MemoryFrontier):
    """Counts the requests handed out by each way."""

    def __init__(self) -> None:
        super().__init__()
        self.by_get = 0
        self.by_get_nowait = 0

    async def get(self, hosts: HostLimiter) -> CrawlRequest | None:
        request = await super().get(hosts)
        self.by_get += request is not None
        return request

    def get_nowait(self, hosts: HostLimiter) -> CrawlRequest:
        request = super().get_nowait(hosts)
        self.by_get_nowait += 1
        return request


@pytest.fixture
async def two_hosts(nursery: trio.Nursery) -> list[Site]:
    sites = [Site(f"127.0.0.{i}") for i in (2, 3)]
    for site in sites:
        await nursery.start(site.serve)
    return sites


async def test_a_worker_takes_the_next_request_of_a_freed_host_itself(
    two_hosts: list[Site],
) -> None:
    """Most requests go out from the worker whose page freed a slot, none past the limit."""
    in_flight: dict[str, int] = {site.base: 0 for site in two_hosts}
    most: dict[str, int] = dict(in_flight)

    def answer(site: Site) -> object:
        async def handler(request: Request) -> Reply:
            in_flight[site.base] += 1
            most[site.base] = max(most[site.base], in_flight[site.base])
            try:
                await trio.sleep(0.02)
            finally:
                in_flight[site.base] -= 1
            return Reply(body=html_page(request.path))

        return handler

    seeds = []
    for site in two_hosts:
        for i in range(20):
            site.add(f"/p{i}", answer(site))  # type: ignore[arg-type]
            seeds.append(site.url(f"/p{i}"))
    frontier = CountingFrontier()
    send, receive = trio.open_memory_channel[Page](math.inf)
    config = CrawlConfig(workers=6, per_host=2, robots=False)
    with trio.fail_after(30):
        await Crawler(seeds, config, sink=send, frontier=frontier).run()
    pages = [page async for page in receive]
    assert len(pages) == 40 and all(page.ok for page in pages)
    assert most == {site.base: 2 for site in two_hosts}
    assert frontier.by_get + frontier.by_get_nowait == 40
    # The first request of each slot comes from the dispatcher; the rest mostly not.
    assert frontier.by_get_nowait >= 30, (frontier.by_get, frontier.by_get_nowait)


async def test_no_request_is_taken_after_the_crawl_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker takes no request itself once the deadline has passed, even before the
    dispatcher has noticed: pages at 0, 0.3, 0.6 and 0.9 s, none at 1.2."""
    asked: list[float] = []

    async def server(request: httpx.Request) -> httpx.Response:
        asked.append(trio.current_time())
        await trio.sleep(0.3)
        return httpx.Response(200, html="<title>x</title>")

    seeds = [f"http://a.test/p{i}" for i in range(10)]
    send, receive = trio.open_memory_channel[Page](math.inf)
    config = CrawlConfig(workers=1, per_host=1, robots=False, deadline=1.0)
    crawler = Crawler(seeds, config, sink=send, transport=httpx.MockTransport(server))
    start = trio.current_time()
    stats = await crawler.run()
    assert [round(t - start, 3) for t in asked] == [0, 0.3, 0.6, 0.9]
    assert stats.stop_reason == "deadline"
    assert len([page async for page in receive]) == 4


class FlushTimes:
    """A sink that batches (it has flush()) and notes when each flush came."""

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.flushes: list[tuple[float, int]] = []

    async def send(self, page: Page) -> None:
        self.pages.append(page)

    async def flush(self) -> None:
        self.flushes.append((trio.current_time(), len(self.pages)))


async def test_the_last_records_are_flushed_without_waiting_for_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Records wait up to the flush delay for others to be written with them, but not when
    no page is being attempted any more: the crawl's end does not wait the delay out."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = html_page(request.url.path)
        return httpx.Response(200, content=page, headers={"content-type": "text/html"})

    sink = FlushTimes()
    seeds = [f"http://a.test/p{i}" for i in range(5)]
    config = CrawlConfig(workers=2, robots=False, links=False)
    start = trio.current_time()
    crawler = Crawler(seeds, config, sink=sink, transport=httpx.MockTransport(handler))
    await crawler.run()
    assert len(sink.pages) == 5
    assert sink.flushes and sink.flushes[-1][1] == 5
    assert trio.current_time() - start < 0.02  # the flush delay (_FLUSH_DELAY) was not waited
