"""The library entry points: open_crawl, scrape, Crawler.run with nursery.start."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import pytest
import trio

import trio_scrape
from trio_scrape import ConfigError, CrawlConfig, Crawler, OutputError, Page

from .site import Reply, Site, html_page


def chain_site(site: Site, length: int) -> None:
    for i in range(length):
        site.add(f"/{i}", Reply(body=html_page(f"Page {i}", [f"/{i + 1}"])))


async def test_open_crawl_yields_pages_as_they_finish(site: Site) -> None:
    chain_site(site, 5)
    titles = []
    with trio.fail_after(10):
        async with trio_scrape.open_crawl([site.url("/0")], CrawlConfig(depth=4)) as pages:
            async for page in pages:
                titles.append(page.title)
    assert titles == [f"Page {i}" for i in range(5)]


async def test_fetched_at_is_iso_utc_with_milliseconds(site: Site) -> None:
    chain_site(site, 1)
    [page] = await trio_scrape.scrape([site.url("/0")])
    assert page.fetched_at is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", page.fetched_at)
    when = datetime.fromisoformat(page.fetched_at.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - when).total_seconds()) < 5


@pytest.mark.parametrize("processes", [1, 2])
async def test_leaving_open_crawl_early_cancels_the_crawl(site: Site, processes: int) -> None:
    chain_site(site, 50)
    config = CrawlConfig(depth=100, processes=processes)
    with trio.fail_after(10):
        async with trio_scrape.open_crawl([site.url("/0")], config) as pages:
            async for page in pages:
                if page.title == "Page 2":
                    break
    fetched = len(site.log)
    await trio.sleep(0.2)
    assert len(site.log) == fetched < 10  # nothing runs on after the block


async def test_scrape_returns_every_page_with_bodies(site: Site) -> None:
    chain_site(site, 3)
    pages = await trio_scrape.scrape([site.url("/0")], CrawlConfig(depth=2))
    assert [p.title for p in pages] == ["Page 0", "Page 1", "Page 2"]
    assert all(p.content.startswith(b"<!doctype html>") and p.text for p in pages)


async def test_invalid_seed_raises_config_error_before_anything_runs() -> None:
    for bad in ["ht!tp://x", "/relative", "ftp://example.org/", "http://"]:
        with pytest.raises(ConfigError) as info:
            trio_scrape.open_crawl([bad])
        assert info.value.field == "seeds"
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        await trio_scrape.scrape(["mailto:a@b.c"])


@pytest.mark.parametrize("processes", [1, 2])
async def test_crawler_in_callers_nursery_with_statistics(site: Site, processes: int) -> None:
    chain_site(site, 20)
    send, receive = trio.open_memory_channel[Page](0)
    config = CrawlConfig(depth=19, workers=3, processes=processes)
    crawler = Crawler([site.url("/0")], config, sink=send)
    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(crawler.run)
        # started() fires once the seeds are queued: the frontier knows the seed.
        assert crawler.statistics().seen >= 1
        async with receive:
            async for page in receive:
                seen.append(crawler.statistics().pages)
                assert page.ok
    stats = crawler.statistics()
    assert stats.pages == 20 and stats.ok == 20 and stats.stop_reason == "finished"
    assert stats.status_codes == {200: 20} and stats.bytes > 0
    assert stats.pages_per_second > 0
    assert seen == sorted(seen)


async def test_a_failing_sink_raises_output_error_not_a_group(site: Site) -> None:
    chain_site(site, 3)

    class FullDisk:
        async def send(self, page: Page) -> None:
            raise OutputError("disk full")

    with trio.fail_after(10), pytest.raises(OutputError, match="disk full"):
        await Crawler([site.url("/0")], CrawlConfig(depth=2), sink=FullDisk()).run()


async def test_crawl_inside_a_program_beside_other_tasks(site: Site) -> None:
    chain_site(site, 10)
    ticks = 0
    send, receive = trio.open_memory_channel[Page](math.inf)

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat)
        stats = await Crawler([site.url("/0")], CrawlConfig(depth=9), sink=send).run()
        nursery.cancel_scope.cancel()
    assert stats.pages == 10 and ticks > 0
    assert len([p async for p in receive]) == 10


async def test_sinks_that_want_no_bodies_get_pages_without_them(site: Site) -> None:
    chain_site(site, 2)
    got: list[Page] = []

    class RecordsOnly:
        wants_bodies = False

        async def send(self, page: Page) -> None:
            got.append(page)

    def extract(page: Page) -> dict[str, int]:
        assert page.html is not None and page.content  # hooks still see everything
        return {"size": len(page.content)}

    await Crawler([site.url("/0")], CrawlConfig(depth=1, extract=extract), sink=RecordsOnly()).run()
    assert len(got) == 2
    assert all(p.html is None and p.content == b"" and p.text is None for p in got)
    assert all(p.data["size"] > 0 and p.title for p in got)


async def test_a_crawl_cancelled_from_outside_is_stopped_not_finished(site: Site) -> None:
    chain_site(site, 50)
    send, receive = trio.open_memory_channel[Page](0)
    crawler = Crawler([site.url("/0")], CrawlConfig(depth=49), sink=send)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(crawler.run)
            async with receive:
                for _ in range(3):
                    await receive.receive()
                nursery.cancel_scope.cancel()  # the caller's scope ends the crawl
    stats = crawler.statistics()
    assert stats.pages < 50 and stats.stop_reason == "stopped"
