"""The fleet's faults with one Redis: Redis killed and restarted (AOF) mid-crawl, and the
connection to Redis frozen (a network partition: a proxy that stops forwarding). For each, the
crawl does what docs/fleet.md ("Faults") says, and no record is lost or written twice: the
export and the processes' files are checked against the site's pages.

Time is scaled down: the fleet's defaults are a 30 s lease and a 10 s call timeout, so a
real partition of 30 s outlasts both; here the lease is 1 s and, where a freeze must outlast
the call timeout, the timeout is 2 s (the module's ``_CALL_TIMEOUT``, patched), so a freeze of
a few seconds covers the same cases.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest
import trio

from trio_scrape import CrawlConfig, Crawler, open_file_sink
from trio_scrape.errors import FrontierError
from trio_scrape.frontier import redis as redis_frontier
from trio_scrape.frontier import redis_open
from trio_scrape.frontier.redis_open import connect

from .half_way import crawl_command, ended, export, start_half_way
from .proxy import FreezableProxy
from .redis_server import AofRedis
from .redis_server import aof_redis as aof_redis
from .test_redis import WatchedSite, lines, tree_site
from .test_redis import watched as watched

pytestmark = pytest.mark.usefixtures("redis_url")


def crawl_name() -> str:
    return "f-" + uuid.uuid4().hex[:12]


async def wait_hits(site: WatchedSite, count: int) -> None:
    while len(site.log) < count:
        await site.hit_event.wait()


# The coredis connection Redis's death breaks leaves anyio streams to the garbage collector
# (docs/fleet.md, "Redis down or unreachable"); only that warning is ignored.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*MemoryObject:pytest.PytestUnraisableExceptionWarning"
)
async def test_redis_killed_and_restarted_mid_crawl_loses_and_repeats_nothing(
    watched: WatchedSite, aof_redis: AofRedis, tmp_path: Path
) -> None:
    """Redis (AOF, ``appendfsync always``) SIGKILLed while a process crawls through it: the
    process stops, exit 3 and one line. Redis restarted on its port and directory, the same
    command finishes the crawl: the export holds every page once, and so does the process's
    file (cut back to what Redis says it holds, then completed)."""
    expected = tree_site(watched, 600)
    name = crawl_name()
    out = tmp_path / "out.jsonl"
    command = crawl_command(watched.url("/p0"), aof_redis.url, name, out)
    with trio.fail_after(90):
        crawl = await start_half_way(command, watched)
        aof_redis.kill()
        code, error = await ended(crawl)
        before = len(lines(out))
        aof_redis.restart()
        again = await trio.run_process(command, capture_stderr=True, check=False)
    assert code == 3, error
    assert error.count(b"\n") == 1 and b"Redis" in error, error
    assert 0 < before < len(expected)
    assert again.returncode == 0, again.stderr
    assert b"joining the crawl" in again.stderr
    exported = await export(aof_redis.url, name, tmp_path / "all.jsonl")
    assert sorted(exported) == sorted(expected) and max(exported.values()) == 1
    written = Counter(r["url"] for r in lines(out))
    assert written == exported


async def _two_crawlers_one_frozen(
    site: WatchedSite,
    redis_url: str,
    tmp_path: Path,
    *,
    unfreeze_when_reaped: bool,
) -> tuple[list[BaseException], Counter[str], Counter[str], list[str]]:
    """Crawlers A (through a proxy) and B (direct) share a crawl of 600 pages with 1 s
    leases; once the site has answered 100 requests the proxy freezes. It thaws when Redis
    has reaped one of A's leases (``unfreeze_when_reaped``: a freeze longer than the lease,
    shorter than the call timeout) or when A has given up (longer than both). Returns A's
    errors, the export's counts, the two files' counts, and the site's pages."""
    expected = tree_site(site, 600)
    name = crawl_name()
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    errors: list[BaseException] = []
    a_ended = trio.Event()
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]

    def config(url: str) -> CrawlConfig:
        # More host slots than the two crawlers lease at once: B never holds them all, so A
        # holds leases whenever it fetches, and the freeze catches some to expire.
        return CrawlConfig(
            depth=100, robots=False, frontier=url, crawl_id=name, lease=1.0, workers=4,
            per_host=32,
        )  # fmt: skip

    async def crawl(url: str, out: Path) -> None:
        await Crawler([site.url("/p0")], config(url), sink=open_file_sink(str(out), "jsonl")).run()

    async def crawl_a(url: str) -> None:
        try:
            await crawl(url, files[0])
        except FrontierError as exc:
            errors.append(exc)
        finally:
            a_ended.set()

    async def reaped() -> int:
        async with connect(redis_url) as client:
            value = await client.hget(f"trio-scrape:{name}:meta", "reaped")
            return int(value or 0)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            proxy = await nursery.start(FreezableProxy(port).serve)
            async with trio.open_nursery() as crawlers:
                crawlers.start_soon(crawl_a, proxy.url())
                crawlers.start_soon(crawl, redis_url, files[1])
                await wait_hits(site, 100)
                proxy.freeze()
                if unfreeze_when_reaped:
                    # B's lease calls reap A's expired leases (bounded: A gives up after the
                    # call timeout, and the whole is under fail_after)
                    while not await reaped() and not a_ended.is_set():
                        with trio.move_on_after(0.1):
                            await a_ended.wait()
                    assert not a_ended.is_set(), "A gave up within the freeze"
                else:
                    await a_ended.wait()
                proxy.thaw()
            nursery.cancel_scope.cancel()
    exported = await export(redis_url, name, tmp_path / "all.jsonl")
    written = Counter(r["url"] for out in files for r in lines(out))
    return errors, exported, written, expected


async def test_a_connection_frozen_past_the_lease_waits_and_loses_nothing(
    watched: WatchedSite, redis_url: str, tmp_path: Path
) -> None:
    """The connection of crawler A freezes for longer than its 1 s lease, shorter than the
    call timeout (10 s): A waits; its leases expire and B does those pages; thawed, A's late
    completions are refused and A goes on. Every page is in the export once and in the two
    files once."""
    errors, exported, written, expected = await _two_crawlers_one_frozen(
        watched, redis_url, tmp_path, unfreeze_when_reaped=True
    )
    assert errors == []
    assert sorted(exported) == sorted(expected) and max(exported.values()) == 1
    assert written == exported


async def test_a_connection_frozen_past_the_call_timeout_stops_that_crawler_only(
    watched: WatchedSite, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection of crawler A freezes for longer than its lease and the call timeout
    (2 s here, 10 s by default): A stops with FrontierError (the CLI's exit 3); B does the
    rest, A's expired leases included. Thawed, the calls the proxy held reach Redis late and
    change nothing. Every page is in the export once; the files hold no page twice (A's last
    committed batch may be missing from its file: it never heard that it was committed)."""
    monkeypatch.setattr(redis_frontier, "_CALL_TIMEOUT", 2.0)  # its calls
    monkeypatch.setattr(redis_open, "_CALL_TIMEOUT", 2.0)  # its closing
    errors, exported, written, expected = await _two_crawlers_one_frozen(
        watched, redis_url, tmp_path, unfreeze_when_reaped=False
    )
    assert len(errors) == 1 and "no answer within 2s" in str(errors[0]), errors
    assert sorted(exported) == sorted(expected) and max(exported.values()) == 1
    assert max(written.values()) == 1 and set(written) <= set(exported)
