"""open_frontier: one way to open memory, SQLite and Redis frontiers, one FrontierOpened."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from pathlib import Path

from trio_scrape import CrawlConfig, MemoryFrontier
from trio_scrape.frontier.base import CompleteFrontier, FrontierOpened
from trio_scrape.frontier.open import open_frontier
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.redis import RedisFrontier
from trio_scrape.frontier.sqlite import SqliteFrontier
from trio_scrape.output.sinks import open_file_sink

SEEDS = ["http://x.test/"]


def test_finished_means_the_same_for_every_frontier() -> None:
    assert FrontierOpened(new=False, scheduled=3, done=3, queued=0).finished
    assert not FrontierOpened(new=True, scheduled=0, done=0, queued=0).finished
    assert not FrontierOpened(new=False, scheduled=3, done=2, queued=1).finished
    # Another process still holds a lease: its page may add links.
    assert not FrontierOpened(new=False, scheduled=3, done=2, queued=0, leased=1).finished
    assert FrontierOpened(new=True, scheduled=0, done=0, queued=0).is_new


async def test_memory_by_default_and_a_given_frontier_completed() -> None:
    async with AsyncExitStack() as stack:
        opened = await open_frontier(stack, CrawlConfig(), seeds=SEEDS, sitemaps=[], sink=None)
        assert opened is not None
        frontier, info = opened
        assert isinstance(frontier, CompleteFrontier)
        assert isinstance(frontier.frontier, MemoryFrontier)
        assert info.new and not info.finished
        mine = MemoryFrontier()
        opened = await open_frontier(
            stack, CrawlConfig(), seeds=SEEDS, sitemaps=[], sink=None, frontier=mine
        )
        assert opened is not None and opened[0].frontier is mine


async def _crawl_one(frontier: CompleteFrontier) -> None:
    limiter = HostLimiter(CrawlConfig(robots=False))
    await frontier.add(SEEDS, depth=0, referrer=None)
    request = await frontier.get(limiter)
    assert request is not None
    await frontier.done([request], output_offset=0)


async def test_a_state_resumed_finished_and_recrawled(tmp_path: Path) -> None:
    config = CrawlConfig(state=tmp_path / "s.db", robots=False)
    output = str(tmp_path / "out.jsonl")
    async with AsyncExitStack() as stack:
        sink = open_file_sink(output, "jsonl")
        stack.push_async_callback(sink.aclose)
        opened = await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=sink)
        assert opened is not None
        frontier, info = opened
        assert isinstance(frontier.frontier, SqliteFrontier)
        assert info.new and frontier.remembers_pages
        await _crawl_one(frontier)
    async with AsyncExitStack() as stack:
        sink = open_file_sink(output, "jsonl")
        stack.push_async_callback(sink.aclose)
        assert await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=sink) is None
    recrawl = CrawlConfig(state=tmp_path / "s.db", robots=False, recrawl=True)
    async with AsyncExitStack() as stack:
        sink = open_file_sink(output, "jsonl")
        stack.push_async_callback(sink.aclose)
        opened = await open_frontier(stack, recrawl, seeds=SEEDS, sitemaps=[], sink=sink)
        assert opened is not None
        info = opened[1]
        assert (info.new, info.round, info.finished) == (True, 2, False)


async def test_a_fleet_joined_then_finished(redis_url: str) -> None:
    config = CrawlConfig(frontier=redis_url, crawl_id=f"open-{uuid.uuid4().hex[:8]}", robots=False)
    async with AsyncExitStack() as stack:
        opened = await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=None)
        assert opened is not None
        frontier, info = opened
        assert isinstance(frontier.frontier, RedisFrontier)
        assert info.new and not info.finished and frontier.counts_max_pages
        await _crawl_one(frontier)
    async with AsyncExitStack() as stack:
        assert await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=None) is None


async def test_a_fleet_with_a_pending_revisit_is_not_finished(redis_url: str) -> None:
    """Redis keeps pending revisits outside its queue: they count as queued on joining, as
    a state counts them, so the crawl is not taken for finished."""
    config = CrawlConfig(
        frontier=redis_url, crawl_id=f"open-{uuid.uuid4().hex[:8]}", robots=False, depth=5
    )
    limiter = HostLimiter(CrawlConfig(robots=False))
    async with AsyncExitStack() as stack:
        opened = await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=None)
        assert opened is not None
        frontier = opened[0]
        await frontier.add(["http://x.test/deep"], depth=3, referrer=None)
        request = await frontier.get(limiter)
        assert request is not None
        await frontier.add(["http://x.test/deep"], depth=1, referrer=None, revisit=True)
        await frontier.done([request])
    async with AsyncExitStack() as stack:
        opened = await open_frontier(stack, config, seeds=SEEDS, sitemaps=[], sink=None)
        assert opened is not None
        info = opened[1]
        assert (info.scheduled, info.queued, info.finished) == (1, 1, False)
