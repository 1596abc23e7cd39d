"""The declared interfaces: every capability the engine uses of a frontier or a sink, with its
default for the ones that lack it (frontier/base.py, output/sinks.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pytest
import trio

from trio_scrape import CrawlConfig, CrawlRequest, FrontierStatistics, MemoryFrontier, Page
from trio_scrape.frontier.base import CompleteFrontier, Frontier, complete
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sqlite import open_sqlite_frontier
from trio_scrape.model.page import PageMemo
from trio_scrape.output.sinks import CompleteSink, complete_sink, open_file_sink


class SixMethods:
    """A user's frontier, written against the six-method protocol only."""

    def __init__(self) -> None:
        self.inner = MemoryFrontier()

    async def add(
        self,
        urls: Iterable[str],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
        sitemap: bool = False,
        lastmods: Mapping[str, str] | None = None,
        revisit: bool = False,
    ) -> int:
        return await self.inner.add(urls, depth=depth, referrer=referrer, keep=keep)

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        await self.inner.mark_seen(urls, depth=depth)

    async def get(self, hosts: HostLimiter) -> CrawlRequest | None:
        return await self.inner.get(hosts)

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        await self.inner.done(requests)

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        await self.inner.release(requests)

    def statistics(self) -> FrontierStatistics:
        return self.inner.statistics()


class Fleetish(SixMethods):
    """Counts max_pages for a fleet, but cannot say whether another process cut."""

    counts_max_pages = True


def hosts() -> HostLimiter:
    return HostLimiter(CrawlConfig(robots=False))


async def test_a_six_method_frontier_gets_every_default() -> None:
    user = SixMethods()
    view = complete(user)
    assert view.frontier is user
    assert not view.counts_max_pages and not view.cut
    assert view.shared_robots is None and view.count_unlinked is None
    assert not view.leases_without_waiting and not view.times_starts
    assert not view.remembers_pages
    await view.add(["http://a.test/"], depth=0, referrer=None)
    with pytest.raises(trio.WouldBlock):
        view.get_nowait(hosts())
    request = await view.get(hosts())
    assert request is not None and request.url == "http://a.test/"
    await view.starting(request)  # nothing to wait for
    view.remember(request, PageMemo(200, None, None, None, ()))
    await view.done([request])
    assert view.statistics() == FrontierStatistics(queued=0, leased=0, seen=1)
    send, _receive = trio.open_memory_channel[Page](1)
    sink = await view.attach_sink(send, links=False)
    assert isinstance(sink, CompleteSink) and sink.sink is send


async def test_a_fleet_frontier_that_does_not_say_assumes_a_cut() -> None:
    view = complete(Fleetish())
    assert view.counts_max_pages and view.cut


async def test_complete_looks_up_once_and_keeps_a_complete_frontier() -> None:
    view = complete(MemoryFrontier())
    assert complete(view) is view
    assert CompleteFrontier(view).frontier is view.frontier
    frontier: Frontier = view  # a complete frontier is a frontier
    assert frontier is view


async def test_memory_frontier_capabilities_are_its_own() -> None:
    memory = MemoryFrontier()
    view = complete(memory)
    assert view.leases_without_waiting and not view.times_starts and not view.cut
    await view.add(["http://a.test/1", "http://a.test/2"], depth=0, referrer=None)
    limiter = HostLimiter(CrawlConfig(robots=False, per_host=2))
    assert view.get_nowait(limiter).url == "http://a.test/1"


async def test_sqlite_frontier_remembers_and_counts_unlinked(tmp_path: Path) -> None:
    async with open_sqlite_frontier(tmp_path / "s.db", settings={}) as frontier:
        view = complete(frontier)
        assert view.remembers_pages and view.count_unlinked is not None
        assert await view.count_unlinked() == 0


async def test_cut_is_read_each_time() -> None:
    class Cuts(SixMethods):
        counts_max_pages = True
        cut = False

    user = Cuts()
    view = complete(user)
    assert not view.cut
    user.cut = True
    assert view.cut


async def test_a_memory_channel_is_a_sink_with_defaults() -> None:
    send, receive = trio.open_memory_channel[Page](1)
    sink = complete_sink(send)
    assert sink.wants_bodies and not sink.starts and not sink.buffers
    assert sink.offset is None and sink.name is None and sink.format is None
    sink.start(10)  # nothing to start
    page = Page(url="http://a.test/")
    await sink.send(page)
    await sink.flush()
    assert receive.receive_nowait() is page
    await sink.aclose()
    with pytest.raises(trio.EndOfChannel):
        receive.receive_nowait()


async def test_no_sink_drops_pages() -> None:
    sink = complete_sink(None)
    await sink.send(Page(url="http://a.test/"))
    await sink.flush()
    await sink.aclose()
    assert sink.wants_bodies and sink.offset is None and complete_sink(sink) is sink


async def test_a_file_sink_has_every_capability(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    sink = complete_sink(open_file_sink(str(path), "csv"))
    assert not sink.wants_bodies and sink.starts and sink.buffers
    assert (sink.name, sink.format) == (str(path), "csv")
    sink.start(0)
    await sink.send(Page(url="http://a.test/"))
    assert sink.offset == 0  # buffered
    await sink.flush()
    assert sink.offset == path.stat().st_size > 0
    await sink.aclose()
