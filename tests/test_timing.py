"""Deadlines, back-off and Retry-After in virtual time (trio's autojump clock).

The network is an ``httpx.MockTransport`` whose handler sleeps in trio time, so a test of
a 60-second back-off runs in milliseconds and asserts exact virtual durations.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trio_scrape import CrawlConfig, Crawler, CrawlStatistics, Page
from trio_scrape.http.fetcher import backoff_delay, parse_retry_after

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


async def crawl(
    handler: Handler, seeds: list[str], **options: Any
) -> tuple[dict[str, Page], CrawlStatistics, float]:
    send, receive = trio.open_memory_channel[Page](math.inf)
    options.setdefault("robots", False)  # these tests are about time, not robots.txt
    crawler = Crawler(
        seeds, CrawlConfig(**options), sink=send, transport=httpx.MockTransport(handler)
    )
    start = trio.current_time()
    stats = await crawler.run()
    took = trio.current_time() - start
    return {p.url: p async for p in receive}, stats, took


def html(title: str, links: Sequence[str] = ()) -> httpx.Response:
    body = f"<title>{title}</title>" + "".join(f'<a href="{h}">x</a>' for h in links)
    return httpx.Response(200, html=body)


async def test_page_deadline_is_per_attempt_and_exact(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts: list[float] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        attempts.append(trio.current_time())
        await trio.sleep(1000)
        return html("late")

    pages, stats, took = await crawl(
        hang, ["http://a.test/"], timeout=7, retries=2, backoff=1, max_backoff=1
    )
    page = pages["http://a.test/"]
    assert page.error is not None and page.error.kind == "timeout"
    assert len(attempts) == 3 and stats.retries == 2
    # Each attempt gets a full 7 s; back-off of at most 1 s between attempts.
    assert 21 <= took <= 23
    assert all(7 <= b - a <= 8 for a, b in itertools.pairwise(attempts))


async def test_retry_after_seconds_and_date(autojump_clock: trio.testing.MockClock) -> None:
    for value in ["42", None]:
        times: list[float] = []

        async def limited(
            request: httpx.Request, value: str | None = value, times: list[float] = times
        ) -> httpx.Response:
            times.append(trio.current_time())
            if len(times) == 1:
                retry_after = value or "Wed, 21 Oct 2015 07:28:00 GMT"  # a date in the past
                return httpx.Response(429, headers={"Retry-After": retry_after})
            return html("ok")

        pages, _, _ = await crawl(limited, ["http://a.test/"], backoff=0.5, max_backoff=0.5)
        assert pages["http://a.test/"].ok
        gap = times[1] - times[0]
        if value == "42":
            assert 42 <= gap < 42.1
        else:
            assert gap <= 0.5  # a date already past means "now": only the back-off applies


async def test_backoff_is_exponential_with_jitter(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []

    async def failing(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return httpx.Response(503)

    pages, stats, _ = await crawl(failing, ["http://a.test/"], retries=4, backoff=2, max_backoff=10)
    assert pages["http://a.test/"].status == 503 and stats.retries == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # attempt n waits in [d/2, d] with d = min(10, 2 * 2**(n-1)): 2, 4, 8, 10
    for gap, full in zip(gaps, [2, 4, 8, 10], strict=True):
        assert full / 2 <= gap <= full


def test_backoff_delay_bounds() -> None:
    rng = random.Random(1)
    draws = [backoff_delay(3, base=1, cap=100, rng=rng) for _ in range(500)]
    assert min(draws) >= 2 and max(draws) <= 4 and max(draws) - min(draws) > 1.5
    assert backoff_delay(30, base=1, cap=5, rng=rng) <= 5


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("120") == 120
    assert parse_retry_after(later, now=now) == 90
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None


async def test_crawl_deadline_then_grace_then_cancelled_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/":
            return html("home", [f"/p{i}" for i in range(100)])
        delay = {"/p0": 12.0, "/p1": 40.0}.get(request.url.path, 3.0)
        await trio.sleep(delay)
        return html(request.url.path)

    pages, stats, took = await crawl(
        handler, ["http://a.test/"], depth=1, workers=2, deadline=10, grace=5, timeout=100
    )
    # Dispatch stops at t=10; the workers' pages get until t=15; then they are cancelled.
    assert took == pytest.approx(15, abs=0.01)
    assert stats.stop_reason == "deadline"
    assert pages["http://a.test/p0"].ok  # finished at t=12, inside the grace period
    cancelled = [p for p in pages.values() if p.error and p.error.kind == "cancelled"]
    assert [p.url for p in cancelled] == ["http://a.test/p1"]
    # Every page a worker started has exactly one record; the rest were never started.
    assert stats.pages == len(pages) and stats.in_flight == 0
    assert stats.queued == 100 - len(pages) + 1


async def test_stop_is_graceful_and_idempotent(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(2)
        return html(request.url.path, [f"/{int(request.url.path.strip('/') or 0) + 1}"])

    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(
        ["http://a.test/0"],
        CrawlConfig(depth=1000, grace=1, robots=False),
        sink=send,
        transport=httpx.MockTransport(handler),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(crawler.run)
        await trio.sleep(5)  # virtual: pages /0 and /1 are done, /2 is in flight
        crawler.stop()
        crawler.stop()
    stats = crawler.statistics()
    pages = [p async for p in receive]
    assert stats.stop_reason == "stopped"
    assert [p.url for p in pages if p.ok] == ["http://a.test/0", "http://a.test/1"]
    assert [p.error.kind for p in pages if p.error] == ["cancelled"]
    assert trio.current_time() == pytest.approx(6, abs=0.01)


async def test_stop_before_run_crawls_nothing(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be fetched")

    send, _ = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(["http://a.test/"], sink=send, transport=httpx.MockTransport(handler))
    crawler.stop()
    stats = await crawler.run()
    assert stats.pages == 0 and stats.queued == 1 and stats.stop_reason == "stopped"


async def test_cancelling_the_callers_scope_stops_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    closed: list[bool] = []

    class Transport(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.sleep(1000)
        return html("never")

    crawler = Crawler(["http://a.test/"], transport=Transport(handler))
    with trio.move_on_after(3) as scope:
        await crawler.run()
    assert scope.cancelled_caught
    assert trio.current_time() == pytest.approx(3)
    assert closed == [True]
    # No task of the crawl survives the scope: only the test's own task remains.
    root = trio.lowlevel.current_root_task()
    assert root is not None
    tasks = [t for n in root.child_nurseries for t in n.child_tasks]
    assert all("Crawler" not in t.name and "_work" not in t.name for t in tasks)


async def test_a_crawler_runs_once(autojump_clock: trio.testing.MockClock) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return html("x")

    crawler = Crawler(["http://a.test/"], transport=httpx.MockTransport(handler))
    await crawler.run()
    with pytest.raises(RuntimeError, match="already run"):
        await crawler.run()
