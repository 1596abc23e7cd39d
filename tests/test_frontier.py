"""The Frontier contract. Every implementation runs this same suite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from trio_scrape import CrawlRequest, Frontier, MemoryFrontier

FRONTIERS: dict[str, Callable[[], Frontier]] = {"memory": MemoryFrontier}


@pytest.fixture(params=sorted(FRONTIERS))
def frontier(request: pytest.FixtureRequest) -> Frontier:
    return FRONTIERS[request.param]()


def req(path: str, depth: int = 0) -> CrawlRequest:
    return CrawlRequest(f"http://x.test{path}", depth, None)


async def test_fifo_and_dedup(frontier: Frontier) -> None:
    assert await frontier.add([req("/a"), req("/b"), req("/a")]) == 2
    assert await frontier.add([req("/b"), req("/c")]) == 1
    got = [await frontier.get() for _ in range(3)]
    assert [r.url for r in got if r] == ["http://x.test/a", "http://x.test/b", "http://x.test/c"]
    stats = frontier.statistics()
    assert (stats.queued, stats.leased, stats.seen) == (0, 3, 3)


async def test_get_returns_none_only_when_empty_and_nothing_leased(frontier: Frontier) -> None:
    assert await frontier.get() is None
    await frontier.add([req("/a")])
    leased = await frontier.get()
    assert leased is not None
    result: list[CrawlRequest | None] = []

    async def getter() -> None:
        result.append(await frontier.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(getter)
        await trio.testing.wait_all_tasks_blocked()
        assert result == []  # blocked: /a is leased and may add links
        await frontier.add([req("/b", 1)])
        await trio.testing.wait_all_tasks_blocked()
        assert [r.url for r in result if r] == ["http://x.test/b"]
        await frontier.done([leased])
        nursery.start_soon(getter)
        await trio.testing.wait_all_tasks_blocked()
        assert len(result) == 1  # /b still leased
        await frontier.done([req("/b", 1)])
    assert result[1] is None


async def test_release_puts_requests_back_in_front(frontier: Frontier) -> None:
    await frontier.add([req("/a"), req("/b"), req("/c")])
    a, b = await frontier.get(), await frontier.get()
    assert a is not None and b is not None
    await frontier.release([a, b])
    assert frontier.statistics().leased == 0
    got = [await frontier.get() for _ in range(3)]
    assert [r.url.rsplit("/", 1)[1] for r in got if r] == ["a", "b", "c"]


async def test_mark_seen_prevents_queueing(frontier: Frontier) -> None:
    await frontier.mark_seen(["http://x.test/seen"])
    assert await frontier.add([req("/seen")]) == 0
    assert frontier.statistics().queued == 0


async def test_ending_more_leases_than_held_is_a_bug(frontier: Frontier) -> None:
    with pytest.raises(RuntimeError):
        await frontier.done([req("/never-leased")])
