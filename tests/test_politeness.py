"""Per-host politeness against real loopback hosts (127.0.0.x), and in virtual time."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from trio_scrape import CrawlConfig, Crawler, CrawlStatistics, Page, scrape
from trio_scrape.frontier.pacing import HostLimiter

from .site import Reply, Request, Site, html_page


async def run_crawl(seeds: list[str], **options: Any) -> tuple[dict[str, Page], CrawlStatistics]:
    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(seeds, CrawlConfig(**options), sink=send)
    with trio.fail_after(60):
        stats = await crawler.run()
    return {p.url: p async for p in receive}, stats


class Load:
    """Tracks how many requests a server is answering at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def handler(self, seconds: float, links: Callable[[str], list[str]] = lambda p: []) -> Any:
        async def answer(request: Request) -> Reply:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await trio.sleep(seconds)
            finally:
                self.now -= 1
            return Reply(body=html_page(request.path, links(request.path)))

        return answer


@pytest.fixture
async def hosts(nursery: trio.Nursery) -> AsyncIterator[list[Site]]:
    sites = [Site(f"127.0.0.{i}") for i in (2, 3, 4)]
    for site in sites:
        await nursery.start(site.serve)
    yield sites


def serve_pages(site: Site, count: int, handler: Any) -> list[str]:
    for i in range(count):
        site.add(f"/p{i}", handler)
    return [site.url(f"/p{i}") for i in range(count)]


@pytest.mark.parametrize("processes", [1, 2])
async def test_per_host_concurrency_is_capped(hosts: list[Site], processes: int) -> None:
    a, b, _ = hosts
    load_a, load_b = Load(), Load()
    seeds = serve_pages(a, 12, load_a.handler(0.1)) + serve_pages(b, 12, load_b.handler(0.1))
    pages, stats = await run_crawl(seeds, workers=10, per_host=3, processes=processes)
    assert len(pages) == 24 and all(p.ok for p in pages.values())
    assert load_a.most == 3 and load_b.most == 3  # parallel, but never over the cap
    assert stats.hosts[a.base].requests == 12 and stats.hosts[a.base].concurrency == 3
    assert stats.hosts[a.base].in_flight == 0


@pytest.mark.parametrize("processes", [1, 2])
async def test_delay_spaces_request_starts_per_host(hosts: list[Site], processes: int) -> None:
    a, b, _ = hosts
    seeds = serve_pages(a, 5, Reply(body=html_page("a"))) + serve_pages(
        b, 5, Reply(body=html_page("b"))
    )
    # No robots.txt: a host's first request would wait for it after taking its start slot,
    # and the server would see that first gap shortened by the fetch.
    await run_crawl(seeds, workers=8, delay=0.2, robots=False, processes=processes)
    for site in (a, b):
        starts = [r.at for r in site.log]
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        # The delay spaces request starts at the crawler; the server sees each start a little
        # later, by a latency that a loaded machine varies by tens of ms. Without the delay
        # the gaps would be about 0 and the span about 0.
        assert len(gaps) == 4 and min(gaps) >= 0.15, gaps
        assert starts[-1] - starts[0] >= 4 * 0.2 - 0.05, gaps
    # The two hosts' schedules ran side by side, not one after the other (that would put
    # b's first request at least 4 delays after a's).
    assert abs(a.log[0].at - b.log[0].at) < 0.5


async def test_delay_jitter_varies_the_gaps(autojump_clock: trio.testing.MockClock) -> None:
    """In virtual time, so the bounds are exact: each gap is the delay times a factor drawn
    from 1 +- jitter. (Gaps measured at a real server also hold the time each request spends
    before it reaches the wire, which a loaded machine stretches; the plain delay is tested
    against a real server above.)"""
    starts: list[float] = []

    async def server(request: httpx.Request) -> httpx.Response:
        starts.append(trio.current_time())
        return httpx.Response(200, html="<title>x</title>")

    seeds = [f"http://a.test/p{i}" for i in range(40)]
    send, _ = trio.open_memory_channel[Page](math.inf)
    config = CrawlConfig(workers=4, delay=0.1, delay_jitter=0.5, robots=False)
    await Crawler(seeds, config, sink=send, transport=httpx.MockTransport(server)).run()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 39
    assert min(gaps) >= 0.05 - 1e-9 and max(gaps) <= 0.15 + 1e-9, gaps
    assert max(gaps) - min(gaps) > 0.05  # varied, not a constant delay


async def test_urls_robots_txt_refuses_cost_no_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """In virtual time: a URL that robots.txt disallows is never requested, so it takes no
    turn of the host's Crawl-delay; the pages sent are spaced by it, from the first."""
    starts: list[tuple[float, str]] = []
    private = [f"/private/{i}" for i in range(10)]
    body = html_page("home", [*private, "/a", "/b"])

    async def server(request: httpx.Request) -> httpx.Response:
        starts.append((trio.current_time(), request.url.path))
        if request.url.path == "/robots.txt":
            return httpx.Response(200, text="User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n")
        return httpx.Response(
            200,
            content=body if request.url.path == "/" else b"<p>x</p>",
            headers={"content-type": "text/html"},
        )

    send, _ = trio.open_memory_channel[Page](math.inf)
    config = CrawlConfig(depth=1, workers=4)
    crawler = Crawler(["http://a.test/"], config, sink=send, transport=httpx.MockTransport(server))
    stats = await crawler.run()
    assert [path for _, path in starts] == ["/robots.txt", "/", "/a", "/b"]
    assert [at for at, _ in starts][1:] == [0, 1, 2]  # virtual time: exact
    assert stats.pages == 13 and stats.errors == {"robots": 10}
    assert stats.elapsed == 2


async def test_slow_host_does_not_hold_back_a_fast_host(hosts: list[Site]) -> None:
    slow, fast, _ = hosts
    slow_seeds = serve_pages(slow, 4, Reply(body=html_page("slow")))
    fast_seeds = serve_pages(fast, 20, Reply(body=html_page("fast")))
    # One delay for everyone, but the slow host's robots.txt asks for 1 s between pages.
    slow.add("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 1\n", content_type=None))
    start = trio.current_time()
    pages, _ = await run_crawl(slow_seeds + fast_seeds, workers=4)
    fast_done = max(r.at for r in fast.log) - start
    slow_starts = [r.at - start for r in slow.log]
    assert len(pages) == 24
    assert fast_done < 0.8  # all 20 fast pages while the slow host was still waiting
    assert [round(t) for t in slow_starts] == [0, 1, 2, 3]  # Crawl-delay honoured


async def test_retry_after_pauses_the_whole_host_but_not_others(hosts: list[Site]) -> None:
    busy, other, _ = hosts
    answers = iter([Reply(429, headers={"Retry-After": "1"})])
    serve_pages(busy, 4, Reply(body=html_page("busy")))
    busy.add("/p0", lambda request: next(answers, Reply(body=html_page("p0"))))
    other_seeds = serve_pages(other, 6, Reply(body=html_page("other")))
    seeds = [busy.url(f"/p{i}") for i in range(4)] + other_seeds
    start = trio.current_time()
    pages, stats = await run_crawl(seeds, workers=2, per_host=1, backoff=0.01)
    assert all(p.ok for p in pages.values()) and stats.retries == 1
    busy_times = [(r.path, r.at - start) for r in busy.log]
    # /p0 was refused at once; nothing went to that host for the next second...
    assert busy_times[0][0] == "/p0" and all(t >= 1.0 for _, t in busy_times[1:])
    # ...while the other host was served meanwhile.
    assert max(r.at for r in other.log) - start < 0.8


async def test_robots_txt_is_fetched_once_and_obeyed(site: Site) -> None:
    site.add(
        "/robots.txt",
        Reply(
            body=b"User-agent: *\nDisallow: /private\n\nUser-agent: otherbot\nDisallow: /\n",
            content_type="text/plain",
        ),
    )
    site.add("/", Reply(body=html_page("Home", ["/private/a", "/public", "/private-b"])))
    site.add("/public", Reply(body=html_page("Public")))
    pages, stats = await run_crawl([site.url("/")], depth=1, workers=4)
    robots = [p for p in pages.values() if p.error and p.error.kind == "robots"]
    assert sorted(p.url for p in robots) == [site.url("/private-b"), site.url("/private/a")]
    assert all(p.status is None and not p.ok for p in robots)
    assert sorted(site.hits) == ["/", "/public"]  # the disallowed pages were never requested
    assert len(site.robots_log) == 1
    assert stats.errors == {"robots": 2}

    site.robots_log.clear()
    site.log.clear()
    pages, _ = await run_crawl([site.url("/")], depth=1, robots=False)
    assert site.robots_log == [] and "/private/a" in site.hits


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_redirect_into_a_disallowed_path_is_not_followed(
    hosts: list[Site], processes: int
) -> None:
    """Each redirect hop is asked about as a page's URL is: a hop into a path robots.txt
    disallows, on the page's host or another, is never requested; the page's record is a
    ``robots`` error naming the target. Robots.txt's own redirects are not asked about."""
    site, other, _ = hosts
    for server in (site, other):
        server.add("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private\n"))
        server.add("/private/secret", Reply(body=html_page("secret")))
        server.add("/open", Reply(body=html_page("open")))
    site.add("/in", Reply(status=302, headers={"location": "/private/secret"}))
    site.add("/across", Reply(status=301, headers={"location": other.url("/private/secret")}))
    site.add("/fine", Reply(status=302, headers={"location": other.url("/open")}))
    seeds = [site.url(path) for path in ("/in", "/across", "/fine")]
    pages, stats = await run_crawl(seeds, processes=processes, allow_private=True)
    for path, target in (
        ("/in", site.url("/private/secret")),
        ("/across", other.url("/private/secret")),
    ):
        page = pages[site.url(path)]
        assert page.error is not None and page.error.kind == "robots", page.error
        assert target in page.error.message
    assert pages[site.url("/fine")].ok and pages[site.url("/fine")].final_url == other.url("/open")
    assert "/private/secret" not in site.hits and "/private/secret" not in other.hits
    assert other.robots_log  # the other host's robots.txt was read for the hops to it
    assert stats.errors == {"robots": 2}


async def test_robots_4xx_allows_all_and_5xx_is_retried_then_allows(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.add("/", Reply(body=html_page("Home")))
    pages, _ = await run_crawl([site.url("/")])  # no robots.txt route: 404
    assert pages[site.url("/")].ok and len(site.robots_log) == 1

    site.robots_log.clear()
    site.add("/robots.txt", Reply(503))
    with caplog.at_level(logging.WARNING, logger="trio_scrape"):
        pages, _ = await run_crawl([site.url("/")], backoff=0.01)
    assert pages[site.url("/")].ok and len(site.robots_log) == 3
    assert "robots.txt failed (HTTP 503)" in caplog.text


async def test_robots_uses_the_configured_user_agent(site: Site) -> None:
    site.add("/robots.txt", Reply(body=b"User-agent: mybot\nDisallow: /\n", content_type=None))
    site.add("/", Reply(body=html_page("Home")))
    pages, _ = await run_crawl([site.url("/")], user_agent="mybot/2.0 (+https://example.org)")
    assert pages[site.url("/")].error is not None
    pages, _ = await run_crawl([site.url("/")])  # the default agent is not "mybot"
    assert pages[site.url("/")].ok
    assert site.robots_log[0].headers["user-agent"] == "mybot/2.0 (+https://example.org)"


# ---------------------------------------------------------------------- virtual time


async def test_autothrottle_converges_below_the_overload_point(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server answers in 100 ms up to 3 requests at a time; beyond that each extra
    request in flight makes every answer slower. AIMD should settle near 3, not at 16."""
    load = Load()
    history: list[int] = []

    async def server(request: httpx.Request) -> httpx.Response:
        load.now += 1
        load.most = max(load.most, load.now)
        history.append(load.now)
        await trio.sleep(0.1 * max(1, load.now - 2) ** 2)
        load.now -= 1
        return httpx.Response(200, html="<title>x</title>")

    seeds = [f"http://a.test/p{i}" for i in range(400)]
    for autothrottle in (False, True):
        load.most, history = 0, []
        send, _ = trio.open_memory_channel[Page](math.inf)
        config = CrawlConfig(
            workers=16, per_host=16, autothrottle=autothrottle, robots=False, timeout=100
        )
        crawler = Crawler(seeds, config, sink=send, transport=httpx.MockTransport(server))
        stats = await crawler.run()
        assert stats.pages == 400 and stats.ok == 400
        late = history[len(history) // 2 :]
        if not autothrottle:
            assert load.most == 16  # the control: without it the server is overloaded
        else:
            assert stats.hosts["http://a.test"].concurrency in (2, 3, 4, 5)
            assert sum(late) / len(late) <= 5 and max(late) <= 7


async def test_pause_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    times: dict[str, float] = {}

    async def server(request: httpx.Request) -> httpx.Response:
        path = request.url.host + request.url.path
        if path == "a.test/p0" and path not in times:
            times[path] = trio.current_time()
            return httpx.Response(503, headers={"Retry-After": "30"})
        times.setdefault(path, trio.current_time())
        return httpx.Response(200, html="<title>x</title>")

    seeds = [f"http://a.test/p{i}" for i in range(3)] + [f"http://b.test/p{i}" for i in range(3)]
    send, _ = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(
        seeds,
        CrawlConfig(workers=2, per_host=1, robots=False),
        sink=send,
        transport=httpx.MockTransport(server),
    )
    start = trio.current_time()
    await crawler.run()
    assert all(times[f"b.test/p{i}"] - start < 1 for i in range(3))
    assert all(times[f"a.test/p{i}"] - start >= 30 for i in (1, 2))


def test_host_table_is_bounded() -> None:
    async def main() -> None:
        limiter = HostLimiter(CrawlConfig(), max_hosts=100)
        for i in range(1000):
            origin = f"http://h{i}.test"
            limiter.start(origin)
            limiter.finish(origin, latency=0.1, failed=False)
        assert len(limiter.statistics()) <= 101

    trio.run(main)


async def test_a_forgotten_host_relearns_its_robots_rules(site: Site) -> None:
    from trio_scrape.engine.robots import RobotsCache

    site.add("/robots.txt", Reply(body=b"User-agent: *\nCrawl-delay: 2\n", content_type=None))
    config = CrawlConfig()
    from trio_scrape.http.fetcher import open_fetcher

    async with open_fetcher(config, seed_hosts=[site.host], seed_origins=[site.base]) as fetcher:
        limiter = HostLimiter(config)
        robots = RobotsCache(fetcher, limiter, config)
        assert await robots.allowed(site.url("/a"))
        assert limiter.robots_known(site.base)
        limiter._hosts.clear()  # as the LRU would
        assert not limiter.robots_known(site.base)
        assert await robots.allowed(site.url("/b"))
        assert limiter.robots_known(site.base) and robots.fetches == 1
        assert limiter.statistics()[site.base].delay == 2


async def test_robots_rules_past_500_kib_are_ignored(site: Site) -> None:
    """As Google does: only the first 500 KiB of a robots.txt count."""
    filler = b"# padding\n" * (510 * 1024 // 10)
    body = b"User-agent: *\nDisallow: /early\n" + filler + b"Disallow: /late\n"
    site.add("/robots.txt", Reply(body=body, content_type="text/plain"))
    for path in ("/early", "/late"):
        site.add(path, Reply(body=html_page(path)))
    pages = await scrape([site.url("/early"), site.url("/late")], CrawlConfig())
    errors = {p.url[len(site.base) :]: p.error.kind if p.error else None for p in pages}
    assert errors == {"/early": "robots", "/late": None}
    assert site.paths() == ["/late"]
