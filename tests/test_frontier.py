"""The Frontier contract. Every implementation runs this same suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_scrape import CrawlConfig, CrawlRequest, Frontier, MemoryFrontier
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.redis_open import open_redis_frontier
from trio_scrape.frontier.sharded import open_fleet_frontier
from trio_scrape.frontier.sqlite import open_sqlite_frontier

from .redis_cluster import redis_cluster as redis_cluster


@asynccontextmanager
async def _memory(tmp_path: Path) -> AsyncIterator[Frontier]:
    yield MemoryFrontier()


def _sqlite(window: int) -> Callable[[Path], AbstractAsyncContextManager[Frontier]]:
    # A tiny window makes the suite go through the on-disk queue, not only the window.
    return lambda tmp_path: open_sqlite_frontier(tmp_path / "state.db", settings={}, window=window)


def _redis(url: str, test: str) -> AbstractAsyncContextManager[Frontier]:
    # Each test its own crawl (the server is shared by the session).
    return open_redis_frontier(
        url, CrawlConfig(per_host=1000, robots=False), settings={}, crawl_id=f"suite-{test}"
    )


FRONTIERS: dict[str, Callable[[Path], AbstractAsyncContextManager[Frontier]]] = {
    "memory": _memory,
    "sqlite": _sqlite(10_000),
    "sqlite-window-2": _sqlite(2),
}


def _sharded(url: str, test: str) -> AbstractAsyncContextManager[Frontier]:
    # The same crawl in 3 shards, one per primary (the suite's URLs share one host: what
    # spans shards is tested with several hosts, below and in tests/test_redis_cluster.py).
    return open_fleet_frontier(
        url + "?shards=3",
        CrawlConfig(per_host=1000, robots=False),
        settings={},
        crawl_id=f"suite-{test}",
    )


# the cluster: 3 nodes, started once for this module; "redis-sharded": a crawl of 3 shards
REMOTE = {"redis", "redis-cluster", "redis-sharded"}


@pytest.fixture
def hosts() -> HostLimiter:
    return HostLimiter(CrawlConfig(per_host=1000, robots=False))


@pytest.fixture(params=sorted(FRONTIERS) + sorted(REMOTE))
async def frontier(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Frontier]:
    if request.param in REMOTE:
        name = f"{request.node.originalname}-{uuid.uuid4().hex[:8]}"
        if request.param == "redis":
            opened_frontier = _redis(request.getfixturevalue("redis_url"), name)
        elif request.param == "redis-cluster":
            opened_frontier = _redis(request.getfixturevalue("redis_cluster").url, name)
        else:
            opened_frontier = _sharded(request.getfixturevalue("redis_cluster").url, name)
    else:
        opened_frontier = FRONTIERS[request.param](tmp_path)
    async with opened_frontier as opened:
        yield opened


async def until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``: at once for an in-process frontier, within a few seconds
    for one in another process (Redis), whose answers arrive as I/O."""
    with trio.fail_after(5):
        while not condition():  # noqa: ASYNC110 -- the condition is set by I/O, not an Event
            await trio.sleep(0.001)


def req(path: str, depth: int = 0) -> CrawlRequest:
    return CrawlRequest(f"http://x.test{path}", depth, None)


async def add(frontier: Frontier, *paths: str, depth: int = 0) -> int:
    urls = [f"http://x.test{p}" for p in paths]
    return await frontier.add(urls, depth=depth, referrer=None, revisit=True)


async def test_fifo_and_dedup(frontier: Frontier, hosts: HostLimiter) -> None:
    assert await add(frontier, "/a", "/b", "/a") == 2
    assert await add(frontier, "/b", "/c") == 1
    got = [await frontier.get(hosts) for _ in range(3)]
    assert [r.url for r in got if r] == ["http://x.test/a", "http://x.test/b", "http://x.test/c"]
    stats = frontier.statistics()
    assert (stats.queued, stats.leased, stats.seen) == (0, 3, 3)


async def test_get_returns_none_only_when_empty_and_nothing_leased(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    assert await frontier.get(hosts) is None
    await add(frontier, "/a")
    leased = await frontier.get(hosts)
    assert leased is not None
    result: list[CrawlRequest | None] = []

    async def getter() -> None:
        result.append(await frontier.get(hosts))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(getter)
        await trio.testing.wait_all_tasks_blocked()
        assert result == []  # blocked: /a is leased and may add links
        await add(frontier, "/b", depth=1)
        await until(lambda: len(result) == 1)
        assert [r.url for r in result if r] == ["http://x.test/b"]
        await frontier.done([leased])
        nursery.start_soon(getter)
        await trio.testing.wait_all_tasks_blocked()
        assert len(result) == 1  # /b still leased
        await frontier.done([req("/b", 1)])
    assert result[1] is None


async def test_release_puts_requests_back_in_front(frontier: Frontier, hosts: HostLimiter) -> None:
    await add(frontier, "/a", "/b", "/c")
    a, b = await frontier.get(hosts), await frontier.get(hosts)
    assert a is not None and b is not None
    await frontier.release([a, b])
    assert frontier.statistics().leased == 0
    got = [await frontier.get(hosts) for _ in range(3)]
    assert [r.url.rsplit("/", 1)[1] for r in got if r] == ["a", "b", "c"]


async def test_mark_seen_prevents_queueing(frontier: Frontier, hosts: HostLimiter) -> None:
    await frontier.mark_seen(["http://x.test/seen"])
    assert await add(frontier, "/seen") == 0
    assert frontier.statistics().queued == 0


async def test_ending_more_leases_than_held_is_a_bug(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    with pytest.raises(RuntimeError):
        await frontier.done([req("/never-leased")])


async def test_keep_is_asked_only_about_unseen_urls(frontier: Frontier, hosts: HostLimiter) -> None:
    asked: list[str] = []

    def keep(url: str) -> bool:
        asked.append(url)
        return not url.endswith("/no")

    await add(frontier, "/a")
    added = await frontier.add(
        ["http://x.test/a", "http://x.test/b", "http://x.test/no"],
        depth=2,
        referrer="http://x.test/",
        keep=keep,
    )
    assert added == 1 and asked == ["http://x.test/b", "http://x.test/no"]
    assert await add(frontier, "/no") == 1  # refused URLs were not marked seen
    got = [await frontier.get(hosts) for _ in range(3)]
    assert [(r.url, r.depth, r.referrer) for r in got if r][1] == (
        "http://x.test/b",
        2,
        "http://x.test/",
    )


async def test_sitemap_flags_and_lastmod_survive_queueing(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    await frontier.add(["http://x.test/s.xml"], depth=0, referrer=None, sitemap=True)
    await frontier.add(
        ["http://x.test/a", "http://x.test/b"],
        depth=0,
        referrer="http://x.test/s.xml",
        lastmods={"http://x.test/a": "2026-11-01"},
    )
    got = [await frontier.get(hosts) for _ in range(3)]
    assert [(r.url[13:], r.sitemap, r.lastmod) for r in got if r] == [
        ("/s.xml", True, None),
        ("/a", False, "2026-11-01"),
        ("/b", False, None),
    ]
    first = got[0]
    assert first is not None
    await frontier.release([first._replace(attempts=1)])
    again = await frontier.get(hosts)
    assert again is not None and again.sitemap and again.attempts == 1


# --------------------------------------------------------------- depth: the shortest known


async def test_queued_url_found_nearer_is_handed_out_at_the_smaller_depth(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    await frontier.add(
        ["http://x.test/a", "http://x.test/b"], depth=3, referrer="http://x.test/far"
    )
    assert await frontier.add(["http://x.test/b"], depth=1, referrer="http://x.test/near") == 0
    assert await frontier.add(["http://x.test/a"], depth=5, referrer="http://x.test/farther") == 0
    got = [await frontier.get(hosts) for _ in range(2)]
    assert [(r.url[13:], r.depth, r.referrer, r.revisit) for r in got if r] == [
        ("/a", 3, "http://x.test/far", False),
        ("/b", 1, "http://x.test/near", False),
    ]
    assert frontier.statistics().queued == 0


async def test_handed_out_url_found_nearer_is_revisited_once_when_the_queue_is_dry(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    await add(frontier, "/a", "/b", depth=4)
    a = await frontier.get(hosts)
    assert a is not None and a.url.endswith("/a")
    await add(frontier, "/a", depth=3)  # while leased
    await add(frontier, "/a", depth=2)  # and once more: still one revisit
    await frontier.done([a])
    b = await frontier.get(hosts)
    assert b is not None and b.url.endswith("/b") and not b.revisit
    # /b is leased and may add links: the revisit waits until nothing is left.
    await frontier.add(["http://x.test/c"], depth=5, referrer=None)
    c = await frontier.get(hosts)
    assert c is not None and c.url.endswith("/c")
    await frontier.done([b, c])
    again = await frontier.get(hosts)
    assert again is not None
    assert (again.url[13:], again.depth, again.revisit) == ("/a", 2, True)
    await frontier.done([again])
    assert await frontier.get(hosts) is None


async def test_revisits_go_by_depth_one_depth_at_a_time(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    await add(frontier, "/a", "/b", "/c", depth=5)
    leased = [await frontier.get(hosts) for _ in range(3)]
    await frontier.done([r for r in leased if r])
    await add(frontier, "/c", depth=2)
    await add(frontier, "/a", "/b", depth=3)
    first = await frontier.get(hosts)
    assert first is not None and (first.url[13:], first.depth, first.revisit) == ("/c", 2, True)
    # The revisit of /c may find /a nearer still, so depth 3 waits for it.
    await add(frontier, "/a", depth=3)
    await frontier.done([first])
    rest = [await frontier.get(hosts) for _ in range(2)]
    assert sorted((r.url[13:], r.depth) for r in rest if r) == [("/a", 3), ("/b", 3)]
    await frontier.done([r for r in rest if r])
    assert await frontier.get(hosts) is None


async def test_no_revisit_unless_asked(frontier: Frontier, hosts: HostLimiter) -> None:
    await add(frontier, "/a", depth=3)
    a = await frontier.get(hosts)
    assert a is not None
    await frontier.done([a])
    assert await frontier.add(["http://x.test/a"], depth=1, referrer=None, revisit=False) == 0
    assert await frontier.get(hosts) is None


async def test_a_redirect_target_is_seen_at_its_depth(
    frontier: Frontier, hosts: HostLimiter
) -> None:
    await frontier.mark_seen(["http://x.test/target"], depth=4)
    await add(frontier, "/target", depth=5)
    assert await frontier.get(hosts) is None
    await frontier.add(["http://x.test/target"], depth=2, referrer=None, revisit=True)
    again = await frontier.get(hosts)
    assert again is not None and (again.depth, again.revisit) == (2, True)


# ------------------------------------------- "seen" is decided by the canonical key


async def test_spellings_of_one_url_are_one_url(frontier: Frontier, hosts: HostLimiter) -> None:
    """Frontiers get browser URLs and queue them as given, but compare canonical keys (through
    ``url_digest``): query order, ``?b``/``?b=``, an empty query and escapes of unreserved
    characters do not make another URL."""
    first = "http://x.test/%7Ep?b=2&a=1&flag"
    others = ["http://x.test/~p?a=1&b=2&flag=", "http://x.test/%7ep?flag&&b=2&a=1"]
    assert await frontier.add([first, *others], depth=2, referrer=None, revisit=True) == 1
    assert await frontier.add(others, depth=3, referrer=None, revisit=True) == 0
    # Found nearer under another spelling: handed out at that depth, under the first one.
    assert await frontier.add(others[:1], depth=1, referrer="http://x.test/near") == 0
    got = await frontier.get(hosts)
    assert got is not None and (got.url, got.depth, got.referrer) == (
        first,
        1,
        "http://x.test/near",
    )
    await frontier.mark_seen(["http://x.test/r?"], depth=1)  # a redirect target
    assert await frontier.add(["http://x.test/r"], depth=2, referrer=None) == 0
    await frontier.done([got])
    assert await frontier.get(hosts) is None
    assert frontier.statistics().seen == 2
