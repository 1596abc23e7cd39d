"""A scraper on a Redis fleet: a scraper's requests queued whole in Redis (any process leases
them with their method, headers, body, label and data), and items committed with their page's
record in the fleet's stream, so that three `trio-scrape crawl` processes, one of them
SIGKILLed and restarted, write the quotes site's whole data set once across their files."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from examples import quotes_spider
from examples.quotes_site import QuotesSite
from trio_scrape import CrawlConfig, CrawlRequest, Page, Request
from trio_scrape.frontier.digests import redis_digest
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.redis_open import connect, open_redis_frontier, read_entries

from .test_cli import CLI, cli
from .test_scraper import expected_items

pytestmark = pytest.mark.usefixtures("redis_url")


def crawl_name() -> str:
    return "t-" + uuid.uuid4().hex[:12]


def _key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in data.decode().splitlines()]


async def lease_all(frontier: Any, hosts: HostLimiter, count: int) -> list[CrawlRequest]:
    leased: list[CrawlRequest] = []
    with trio.fail_after(10):
        while len(leased) < count:
            request = await frontier.get(hosts)
            assert request is not None
            leased.append(request)
    return leased


# ------------------------------------------------------------------ requests in Redis


async def test_another_process_leases_a_request_with_everything_it_carries(
    redis_url: str,
) -> None:
    config = CrawlConfig(per_host=10, robots=False)
    name = crawl_name()
    search = Request.form(
        "http://x.test/search",
        {"q": "a b", "page": "2"},
        headers={"X-Token": "t"},
        label="search",
        data={"step": 3, "tags": [], "ratio": 0.1, "big": 2**60, "text": 'é/\\"\n'},
    )
    listing = Request("http://x.test/list", label="list", dedup_key="the-list")
    plain = Request("http://x.test/about", label="about")
    async with (
        open_redis_frontier(redis_url, config, settings={}, crawl_id=name) as one,
        open_redis_frontier(redis_url, config, settings={}, crawl_id=name) as other,
    ):
        assert one.carries_requests
        added = await one.add_requests(
            [search, listing, plain, search], depth=1, referrer="http://x.test/"
        )
        assert added == 3  # the same request twice in one call: once
        # Seen by their keys, whoever asks: the same search again, a plain link to the page
        # the labelled request fetches, another request with the list's dedup key.
        again = [search, Request("http://x.test/other", dedup_key="the-list")]
        assert await other.add_requests(again, depth=2, referrer=None) == 0
        assert await other.add(["http://x.test/about"], depth=2, referrer=None) == 0
        leased = await lease_all(other, HostLimiter(config), 3)
        by_url = {r.url: r for r in leased}
        assert by_url["http://x.test/search"].request == search
        assert by_url["http://x.test/list"].request == listing
        assert by_url["http://x.test/about"].request == plain
        got = by_url["http://x.test/search"].request
        assert got is not None and got.body == search.body and got.data == search.data
        assert all(r.depth == 1 and r.referrer == "http://x.test/" for r in leased)
        # A leased request marks its own key: enqueued again, it is not queued.
        assert await one.add_requests([search], depth=5, referrer=None) == 0
        await other.release(leased)
        # Released, each comes back whole (the release re-encodes the entry).
        again_leased = await lease_all(one, HostLimiter(config), 3)
        assert {r.request for r in again_leased} == {search, listing, plain}
        await one.release(again_leased)


async def test_dont_dedup_requests_are_queued_once_per_enqueue_even_when_a_page_is_redone(
    redis_url: str,
) -> None:
    config = CrawlConfig(per_host=10, robots=False)
    name = crawl_name()
    poll = Request("http://x.test/poll", dont_dedup=True)
    async with open_redis_frontier(redis_url, config, settings={}, crawl_id=name) as frontier:
        # One page enqueues it twice: two requests.
        assert await frontier.add_requests([poll, poll], depth=1, referrer="http://x.test/a") == 2
        # The same page done again (its process was killed before its done): no more.
        assert await frontier.add_requests([poll, poll], depth=1, referrer="http://x.test/a") == 0
        # Another page enqueues it: one more; and every process adding it as a start: once.
        assert await frontier.add_requests([poll], depth=1, referrer="http://x.test/b") == 1
        assert await frontier.add_requests([poll], depth=0, referrer=None) == 1
        assert await frontier.add_requests([poll], depth=0, referrer=None) == 0
        leased = await lease_all(frontier, HostLimiter(config), 4)
        assert [r.request for r in leased] == [poll] * 4
        await frontier.release(leased)


async def test_posts_to_one_url_end_their_own_leases_whatever_the_order(
    redis_url: str,
) -> None:
    # Several of a process's leases share a URL (one form posted with different values):
    # each page's completion commits its own request's record, and frees its own slot.
    config = CrawlConfig(per_host=10, robots=False)
    name = crawl_name()
    posts = [Request.form("http://x.test/search", {"q": str(i)}, label="r") for i in range(3)]
    async with open_redis_frontier(redis_url, config, settings={}, crawl_id=name) as frontier:
        sink = await frontier.attach_sink(None, links=False)
        assert await frontier.add_requests(posts, depth=0, referrer=None) == 3
        hosts = HostLimiter(config)
        leased = await lease_all(frontier, hosts, 3)
        middle = next(r for r in leased if r.request == posts[1])
        hosts.finish("http://x.test", latency=0.01, failed=False, url=middle.url, request=posts[1])
        page = Page(url=middle.url, method="POST", label="r", status=200, items=[{"q": "1"}])
        await sink.send(page)
        await frontier.done([middle])
        async with connect(redis_url) as client:
            held = await client.hkeys(f"trio-scrape:{name}:lease")
            entries = [e async for e in read_entries(client, name)]
        assert sorted(k.decode() for k in held) == sorted(
            redis_digest(p.key) for p in (posts[0], posts[2])
        )
        [entry] = entries
        assert entry.items == [{"q": "1"}]
        assert entry.record["method"] == "POST" and entry.record["label"] == "r"
        await frontier.release([r for r in leased if r is not middle])


# ------------------------------------------------------------- the fleet, end to end


class SlowQuotesSite(QuotesSite):
    """The quotes site, each answer taking a moment (so that a fleet's crawl lasts long
    enough to be killed half-way), with an event set at each answer."""

    def __init__(self, *args: Any, answer_time: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answer_time = answer_time
        self.hit = trio.Event()

    async def _send(  # type: ignore[override]
        self,
        stream: trio.SocketStream,
        answer: Any,
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        await trio.sleep(self.answer_time)
        self.hit.set()
        self.hit = trio.Event()
        await QuotesSite._send(stream, answer, close, head_only)


@pytest.fixture
async def slow_quotes(nursery: trio.Nursery) -> AsyncIterator[SlowQuotesSite]:
    site = SlowQuotesSite(quotes=100, seed=5, answer_time=0.05)
    await nursery.start(site.serve)
    yield site


async def test_three_crawl_processes_one_killed_write_the_whole_data_set_once(
    slow_quotes: SlowQuotesSite, redis_url: str, tmp_path: Path
) -> None:
    site = slow_quotes
    name = crawl_name()
    spider = str(Path(quotes_spider.__file__))

    def command(i: int) -> list[str]:
        return [
            *CLI, "crawl", spider, site.base + "/", "--no-robots", "-q", "--per-host", "2",
            "--frontier", redis_url, "--crawl-id", name, "--lease", "2",
            "-o", str(tmp_path / f"items{i}.jsonl"), "--records", str(tmp_path / f"pages{i}.jsonl"),
        ]  # fmt: skip

    expected = Counter(map(_key, expected_items(site)))
    pages = len(site.urls())  # a lower bound of the pages the crawl fetches
    with trio.fail_after(150):
        processes = [
            await trio.lowlevel.open_process(command(i), stderr=subprocess.DEVNULL)
            for i in range(3)
        ]

        # A process is killed once it has committed items (written after their commit) and
        # the crawl is under way: its file is then cut back and completed by its restart.
        # (Which process: the first with items; how free slots are shared between processes
        # decides which ones get work.)
        def victim() -> int | None:
            for i in range(3):
                path = tmp_path / f"items{i}.jsonl"
                if path.exists() and path.stat().st_size:
                    return i
            return None

        while all(p.poll() is None for p in processes) and (
            len(site.log) < pages // 4 or victim() is None
        ):
            with trio.move_on_after(1):
                await site.hit.wait()
        killed = victim()
        assert killed is not None and all(p.poll() is None for p in processes), (
            "the crawl was too quick to be killed half-way"
        )
        processes[killed].kill()  # SIGKILL: its leases expire, its file is left as it was
        await processes[killed].wait()
        restarted = await trio.run_process(command(killed), capture_stderr=True, check=False)
        for i, process in enumerate(processes):
            if i != killed:
                await process.wait()
    assert restarted.returncode == 0, restarted.stderr
    assert b"joining the crawl" in restarted.stderr
    assert [p.returncode for i, p in enumerate(processes) if i != killed] == [0, 0]
    # Across the three item files: the whole data set, each item once.
    files = [lines(tmp_path / f"items{i}.jsonl") for i in range(3)]
    # The killed process had committed items, so its restart writes them again; how the
    # other two shared the rest is the fleet's slot sharing (one may get none).
    assert files[killed], "the killed process's committed items are in its file"
    union = Counter(_key(item) for items in files for item in items)
    assert union == expected
    records = [r for i in range(3) for r in lines(tmp_path / f"pages{i}.jsonl")]
    assert all(r["error"] is None for r in records)
    # `export` writes the same from the fleet's stream: every record, every item, once.
    result = await cli(
        "export", "--frontier", redis_url, "--crawl-id", name,
        "-o", str(tmp_path / "all.jsonl"), "--items", str(tmp_path / "all-items.jsonl"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Counter(map(_key, lines(tmp_path / "all-items.jsonl"))) == expected
    exported = lines(tmp_path / "all.jsonl")
    # The records likewise: each committed one in one process's file, once.
    assert Counter(map(_key, records)) == Counter(map(_key, exported))
    assert {r["label"] for r in exported} == {None, "author", "api", "search"}
    assert {r["method"] for r in exported} == {"GET", "POST"}
