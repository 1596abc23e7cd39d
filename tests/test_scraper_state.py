"""A scraper's requests and items with ``--state``: requests kept with all they carry, items
exactly once across SIGKILL (JSON Lines and CSV), a POST in flight sent again once, a recrawl
sending a POST again unconditionally, and states made before requests were kept."""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from xxhash import xxh3_64_intdigest

from examples import quotes_spider
from examples.quotes_site import QuotesSite
from trio_scrape import CrawlConfig, Page, Request, scrape
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sqlite import open_sqlite_frontier
from trio_scrape.model.urls import url_key
from trio_scrape.output.items import open_item_sink

from .site import Reply, Site, html_page
from .site import Request as SiteRequest
from .test_cli import CLI, cli
from .test_scraper import _key, expected_items

SETTINGS = {"seeds": ["http://x.test/"], "depth": 5}


def hosts() -> HostLimiter:
    return HostLimiter(CrawlConfig(per_host=1000, robots=False))


# ------------------------------------------------------------------ the SQLite frontier


async def test_requests_come_back_with_everything_they_carry(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    post = Request.form(
        "http://x.test/search",
        {"q": "caf\u00e9"},
        headers={"X-Token": "t1"},
        label="search",
        data={"step": 2, "names": ["a", "b"]},
    )
    keyed = Request("http://x.test/item?id=1&utm=x", label="item", dedup_key="item 1")
    raw = Request("http://x.test/raw", method="PUT", body=bytes(range(256)), label="raw")
    again = Request("http://x.test/poll", label="poll", dont_dedup=True)
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.carries_requests
        added = await frontier.add_requests(
            [post, keyed, raw, again, again], depth=1, referrer="http://x.test/"
        )
        assert added == 5  # a dont_dedup request each time
        first = await frontier.get(limiter)
        second = await frontier.get(limiter)
        assert first is not None and second is not None
        assert first.request == post and second.request == keyed
        await frontier.done([first], output_offset=10)
        # second stays leased: the run "dies" with it in flight.

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        opened = frontier.opened
        assert (opened.scheduled, opened.done, opened.queued, opened.requeued) == (5, 1, 4, 1)
        # Seen by their keys: not queued again (the dedup key, not the URL, for `keyed`).
        assert await frontier.add_requests([post, keyed, raw], depth=1, referrer=None) == 0
        assert (
            await frontier.add_requests(
                [Request("http://x.test/item?id=1")], depth=1, referrer=None
            )
            == 1
        )
        got = [await frontier.get(limiter) for _ in range(5)]
        assert all(r is not None for r in got)
        specs = [r.request for r in got if r is not None]
        assert specs == [keyed, raw, again, again, Request("http://x.test/item?id=1")]
        assert [(r.depth, r.referrer) for r in got[:4] if r] == [(1, "http://x.test/")] * 4
        # Every field survived the disk: method, headers, body, label, data, dedup key.
        assert specs[1] is not None and specs[1].body == bytes(range(256))
        await frontier.done([r for r in got if r], output_offset=20)
        assert await frontier.get(limiter) is None

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.opened.finished and frontier.opened.output_offset == 20


async def test_a_scrape_sinks_packed_offset_round_trips(tmp_path: Path) -> None:
    """ScrapeSink.offset packs both files' offsets (items << 48 | records): far past 2**63,
    it is kept exactly (as text in ``meta``)."""
    path = tmp_path / "state.db"
    offset = (1 << 47) * (1 << 48) + (1 << 48) - 1  # both halves at their largest
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(["http://x.test/a", "http://x.test/b"], depth=0, referrer=None)
        leased = await frontier.get(limiter)
        assert leased is not None
        await frontier.done([leased], output_offset=offset)
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.opened.output_offset == offset


async def test_a_request_and_a_link_to_one_page_are_one_page(tmp_path: Path) -> None:
    """A GET's key is its URL's key: the state's digest of it is the link's digest (as the
    memory frontier's is), whichever comes first, and across reopening."""
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(["http://x.test/a"], depth=1, referrer=None)
        labelled = [Request("http://x.test/a", label="x"), Request("http://x.test/b", label="x")]
        assert await frontier.add_requests(labelled, depth=1, referrer=None) == 1
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert (
            await frontier.add(["http://x.test/b", "http://x.test/c"], depth=1, referrer=None) == 1
        )
        assert await frontier.add_requests(labelled, depth=1, referrer=None) == 0


async def test_a_request_handed_out_is_marked_by_its_own_key(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add_requests([Request("http://x.test/a", label="x")], depth=1, referrer=None)
        leased = await frontier.get(limiter)
        assert leased is not None
        seen = frontier._seen_digests
        value = seen.get(xxh3_64_intdigest(url_key("http://x.test/a").encode(), seen.seed))
        assert value == 1 << 1 | 1  # depth 1, handed out
        await frontier.done([leased])


async def test_dont_dedup_requests_each_time_but_once_per_page_done_again(
    tmp_path: Path,
) -> None:
    """A page done again after a kill adds its dont_dedup requests again: they are not
    queued twice. Another page adding the same request queues it again, as memory does."""
    path = tmp_path / "state.db"
    limiter = hosts()
    poll = Request("http://x.test/poll", dont_dedup=True, label="poll")
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(["http://x.test/p1", "http://x.test/p2"], depth=0, referrer=None)
        assert await frontier.add_requests([poll], depth=0, referrer=None) == 1
        p1 = await frontier.get(limiter)
        assert p1 is not None and p1.url == "http://x.test/p1"
        assert await frontier.add_requests([poll, poll], depth=1, referrer=p1.url) == 2
        # p1 is not done: the run "dies" with it in flight.

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.opened.queued == 5
        # The resumed crawl adds its start requests again, and p1 its requests: nothing new.
        assert await frontier.add_requests([poll], depth=0, referrer=None) == 0
        p1 = await frontier.get(limiter)
        assert p1 is not None and p1.url == "http://x.test/p1"
        assert await frontier.add_requests([poll, poll], depth=1, referrer=p1.url) == 0
        assert await frontier.add_requests([poll, poll, poll], depth=1, referrer=p1.url) == 1
        await frontier.done([p1])
        p2 = await frontier.get(limiter)
        assert p2 is not None and p2.url == "http://x.test/p2"
        assert await frontier.add_requests([poll], depth=1, referrer=p2.url) == 1
        await frontier.done([p2])
        polls = [await frontier.get(limiter) for _ in range(5)]
        assert [r.request for r in polls if r] == [poll] * 5
        await frontier.done([r for r in polls if r])
        assert await frontier.get(limiter) is None


# The tables as trio-scrape wrote them before a scraper's requests were kept (schema 6).
_SCHEMA_6 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE links (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    " depth INTEGER NOT NULL, referrer TEXT, urls TEXT NOT NULL, digests BLOB NOT NULL,"
    " lastmods TEXT, count INTEGER NOT NULL)",
    "CREATE TABLE marks (seq INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, depth INTEGER, referrer TEXT, revisit INTEGER)",
    "CREATE TABLE pages (digest INTEGER PRIMARY KEY, memo TEXT NOT NULL)",
    "CREATE TABLE memo_log (id INTEGER PRIMARY KEY, digest INTEGER NOT NULL, memo TEXT NOT NULL)",
)


def make_schema_6_state(path: Path, settings: dict[str, Any], output_offset: int) -> None:
    """A state as the version before this one left it: the seed page done, its three links
    queued (the second leased when the crawl died), a redirect's target seen only."""
    seed = 0x1234_5678_9ABC_DEF0

    def digests(urls: list[str]) -> bytes:
        return b"".join(
            xxh3_64_intdigest(url_key(u).encode(), seed).to_bytes(8, "little") for u in urls
        )

    db = sqlite3.connect(path)
    for statement in _SCHEMA_6:
        db.execute(statement)
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ("settings", json.dumps(settings, sort_keys=True)),
            ("schema", "6"),
            ("digest_seed", str(seed)),
            ("output_offset", str(output_offset)),
        ],
    )
    rows = [
        (1, 0, 0, None, ["http://x.test/"]),
        (2, 0, 1, "http://x.test/", ["http://x.test/a", "http://x.test/b", "http://x.test/c"]),
        (5, 2, 1, None, ["http://x.test/moved"]),
    ]
    for seq, kind, depth, referrer, urls in rows:
        db.execute(
            "INSERT INTO links VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
            (seq, kind, depth, referrer, json.dumps(urls), digests(urls), len(urls)),
        )
    db.executemany(
        "INSERT INTO marks (seq, state, attempts) VALUES (?, ?, ?)", [(1, 2, 0), (3, 1, 0)]
    )
    db.commit()
    db.close()


async def test_a_state_from_before_requests_were_kept_resumes(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    make_schema_6_state(path, SETTINGS, output_offset=77)
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        opened = frontier.opened
        assert (opened.scheduled, opened.done, opened.queued, opened.requeued) == (4, 1, 3, 1)
        assert opened.output_offset == 77
        assert (
            await frontier.add(["http://x.test/a", "http://x.test/moved"], depth=1, referrer=None)
            == 0
        )
        got = [await frontier.get(limiter) for _ in range(3)]
        assert [r.url for r in got if r] == [
            "http://x.test/a",
            "http://x.test/b",
            "http://x.test/c",
        ]
        # It takes a scraper's requests from now on.
        assert (
            await frontier.add_requests(
                [Request("http://x.test/d", label="d")], depth=2, referrer=None
            )
            == 1
        )
        await frontier.done([r for r in got if r])
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("7",)
    db.close()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.opened.queued == 1
        last = await frontier.get(limiter)
        assert last is not None and last.request == Request("http://x.test/d", label="d")


async def test_a_state_from_before_is_not_upgraded_when_refused(tmp_path: Path) -> None:
    from trio_scrape import StateError

    path = tmp_path / "state.db"
    make_schema_6_state(path, SETTINGS, output_offset=0)
    with pytest.raises(StateError, match="other settings"):
        async with open_sqlite_frontier(path, settings={**SETTINGS, "depth": 9}):
            pass
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("6",)
    db.close()


async def test_a_state_from_before_resumes_on_the_command_line(site: Site, tmp_path: Path) -> None:
    """``trio-scrape run`` killed, its state turned back into what the last version wrote
    (the rows of kinds 0-2 are the same; the schema said 6), then resumed: every page once."""
    pages = [f"/p{i}" for i in range(400)]
    for i, path in enumerate(pages):
        site.add(path, Reply(body=html_page(path, pages[i + 1 : i + 4])))
    out, state = tmp_path / "out.jsonl", tmp_path / "state.db"
    command = [*CLI, "run", site.url("/p0"), "--depth", "1000", "-o", str(out)]
    command += ["--state", str(state), "-q", "--workers", "4"]
    with trio.fail_after(60):
        assert await site.kill_at(command, 150), "the crawl was too quick to be killed"
    db = sqlite3.connect(state)
    db.execute("UPDATE meta SET value = '6' WHERE key = 'schema'")
    db.commit()
    db.close()
    with trio.fail_after(60):
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    assert b"resuming the crawl" in result.stderr
    urls = Counter(json.loads(line)["url"] for line in out.read_text().splitlines())
    assert sorted(urls) == sorted(site.url(p) for p in pages) and set(urls.values()) == {1}


# ------------------------------------------------------------------------ whole scrapes


class LoggedQuotes(QuotesSite):
    """The quotes site, with an event set at each request (to kill a crawl at a moment)."""

    def __init__(self, quotes: int, seed: int) -> None:
        super().__init__(quotes, seed)
        self.hit = trio.Event()

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        answer = super()._answer(method, target, headers, body)
        self.hit.set()
        self.hit = trio.Event()
        return answer


@pytest.fixture
async def big_quotes(nursery: trio.Nursery) -> AsyncIterator[LoggedQuotes]:
    site = LoggedQuotes(quotes=300, seed=5)
    await nursery.start(site.serve)
    yield site


async def kill_at(site: LoggedQuotes, command: list[str], requests: int) -> bool:
    """Run ``command``, SIGKILL it once ``site`` has logged ``requests`` requests; return
    whether it was killed (False: it ended by itself first)."""
    process = await trio.lowlevel.open_process(command, stderr=subprocess.DEVNULL)
    while len(site.log) < requests and process.poll() is None:
        with trio.move_on_after(1):  # also notice a process that ended by itself
            await site.hit.wait()
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    await process.wait()
    return killed


async def csv_rows(path: Path, *pages: list[dict[str, Any]], offset: int = 0) -> list[list[str]]:
    """What CsvItemSink writes of ``pages``' items to ``path`` (started at ``offset``)."""
    sink = open_item_sink(str(path), "csv")
    sink.start(offset)
    for items in pages:
        page = Page(url="http://x.test/")
        page.items = items
        await sink.send(page)
    await sink.aclose()
    return list(csv.reader(io.StringIO(await trio.Path(path).read_text())))


async def test_csv_items_resume_with_their_header(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    first = await csv_rows(path, [{"a": 1, "b": "x"}])
    assert first == [["a", "b", "_extra"], ["1", "x", ""]]
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"2,torn")  # a last row never committed
    rows = await csv_rows(path, [{"b": "y", "a": 3, "c": True}], offset=size)
    assert rows == [["a", "b", "_extra"], ["1", "x", ""], ["3", "y", '{"c":true}']]


def searches(site: QuotesSite) -> int:
    return len(site.authors()) + sum(len(site.author_tags(a.name)) for a in site.authors())


def expected_gets(site: QuotesSite) -> set[str]:
    pages = site.listing_pages()
    return {
        site.base + "/",
        *(f"{site.base}/page/{n}/" for n in range(2, pages + 1)),
        *(f"{site.base}/author/{a.slug}/" for a in site.authors()),
        *(f"{site.base}/api/quotes?page={n}" for n in range(1, pages + 1)),
        site.base + "/search",
    }


@pytest.mark.parametrize("items_format", ["jsonl", "csv"])
async def test_sigkill_at_random_moments_then_every_item_once(
    big_quotes: LoggedQuotes, tmp_path: Path, items_format: str
) -> None:
    site = big_quotes
    items, records, state = (
        tmp_path / f"items.{items_format}",
        tmp_path / "pages.jsonl",
        tmp_path / "state.db",
    )
    command = [
        *CLI, "crawl", str(Path(quotes_spider.__file__)), site.base + "/", "-o", str(items),
        "--records", str(records), "--state", str(state), "-q",
    ]  # fmt: skip
    total = len(expected_gets(site)) + searches(site)
    rng = random.Random(20261201 if items_format == "jsonl" else 20261202)
    kills = 0
    with trio.fail_after(120):
        for _ in range(4):
            kills += await kill_at(
                site, command, len(site.log) + rng.randint(total // 10, total // 5)
            )
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert kills >= 3, "the crawl was too quick to be killed: make the site bigger"
    assert result.returncode == 0, result.stderr
    assert b"resuming the crawl" in result.stderr
    if items_format == "jsonl":
        got = [json.loads(line) for line in items.read_text().splitlines()]
        assert Counter(map(_key, got)) == Counter(map(_key, expected_items(site)))
    else:
        rows = list(csv.reader(io.StringIO(items.read_text())))
        header, *expected = await csv_rows(tmp_path / "expected.csv", expected_items(site))
        assert rows[0] == header and rows.count(header) == 1
        assert Counter(map(tuple, rows[1:])) == Counter(map(tuple, expected))
    # Every page once in the records: each GET once, as many POSTs as searches.
    pages = [json.loads(line) for line in records.read_text().splitlines()]
    assert all(p["error"] is None for p in pages)
    gets = Counter(p["url"] for p in pages if p["method"] == "GET")
    assert set(gets) == expected_gets(site) and set(gets.values()) == {1}
    assert len([p for p in pages if p["method"] == "POST"]) == searches(site)


def spider_file(tmp_path: Path, base: str) -> Path:
    """A spider posting a form at its start, with the answer as its item."""
    path = tmp_path / "post_spider.py"
    path.write_text(
        f"""
from trio_scrape import Request, Router

router = Router()


def start():
    return [Request.form({base + "/submit"!r}, {{"q": "one"}}, label="submit", data={{"n": 1}})]


@router.default
def page(ctx):
    yield {{"page": ctx.page.url}}
    ctx.enqueue_links("a")


@router.handler("submit")
def submitted(ctx):
    yield {{"answer": ctx.text("body"), "n": ctx.data["n"], "method": ctx.page.method}}
"""
    )
    return path


def chain(site: Site, count: int) -> None:
    """/c0 -> /c1 -> ... (one page at a time: each is fetched after the one before)."""
    for i in range(count):
        links = [f"/c{i + 1}"] if i + 1 < count else []
        site.add(f"/c{i}", Reply(body=html_page(f"c{i}", links)))


def take_body(request: SiteRequest) -> bytes:
    length = int(request.headers.get("content-length", "0"))
    body, request.leftover = request.leftover[:length], request.leftover[length:]
    return body


async def test_a_post_in_flight_when_killed_is_sent_again_once(site: Site, tmp_path: Path) -> None:
    chain(site, 40)
    posted: list[bytes] = []
    arrived = trio.Event()
    hang = True

    async def submit(request: SiteRequest) -> bool:
        posted.append(take_body(request))
        arrived.set()
        if hang:
            await trio.sleep_forever()  # the first one never gets an answer
        reply = Reply(body=b"<html><body>thanks</body></html>")
        from .site import encode_reply

        await request.io.send_all(encode_reply(reply))
        return True

    site.add_raw("/submit", submit)
    spider = spider_file(tmp_path, site.base)
    items, state = tmp_path / "items.jsonl", tmp_path / "state.db"
    command = [
        *CLI,
        "crawl",
        str(spider),
        site.url("/c0"),
        "-o",
        str(items),
        "--state",
        str(state),
        "-q",
    ]
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(command, stderr=subprocess.DEVNULL)
        await arrived.wait()
        # The chain's pages come one after the other, well after the POST's lease is
        # committed (every 25 ms).
        while site.hits["/c39"] == 0 and process.poll() is None:
            await site.hit_event.wait()
        process.send_signal(signal.SIGKILL)
        await process.wait()
        db = sqlite3.connect(state)
        rows = db.execute("SELECT seq, referrer, urls FROM links WHERE kind = 3").fetchall()
        [(seq, referrer)] = [
            (seq, referrer)
            for seq, referrer, requests in rows
            if json.loads(requests)[0].get("method") == "POST"
        ]
        # Not done: queued (no mark yet) or leased (mark 1); the resumed crawl does it again.
        assert referrer is None
        assert db.execute("SELECT state FROM marks WHERE seq = ?", (seq,)).fetchall() in (
            [],
            [(1,)],
        )
        db.close()
        hang = False
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    assert b"resuming the crawl" in result.stderr
    assert posted == [b"q=one", b"q=one"]  # sent again, once
    got = [json.loads(line) for line in items.read_text().splitlines()]
    answers = [item for item in got if "answer" in item]
    assert answers == [{"answer": "thanks", "n": 1, "method": "POST"}]
    assert Counter(item.get("page") for item in got if "page" in item) == Counter(
        site.url(f"/c{i}") for i in range(40)
    )


async def test_a_recrawl_sends_a_post_again_never_conditional(site: Site, tmp_path: Path) -> None:
    """Round 2 of a scrape sends its POST again, with no validators, and its GETs whole too
    (a 304 has no body for a handler): its items are the whole set again."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    def page(request: SiteRequest) -> Reply:
        seen.append((request.method, request.path, request.headers))
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304)
        return Reply(
            body=html_page("c0"),
            headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
        )

    def submit(request: SiteRequest) -> Reply:
        take_body(request)
        seen.append((request.method, request.path, request.headers))
        return Reply(body=b"<html><body>thanks</body></html>", headers={"ETag": '"p1"'})

    site.add("/c0", page)
    site.add("/submit", submit)
    spider = spider_file(tmp_path, site.base)
    items, state = tmp_path / "items.jsonl", tmp_path / "state.db"
    command = ["crawl", str(spider), site.url("/c0"), "-o", str(items), "--state", str(state), "-q"]
    with trio.fail_after(60):
        first = await cli(*command)
        assert first.returncode == 0, first.stderr
        round_1 = items.read_text()
        second = await cli(*command, "--recrawl")
    assert second.returncode == 0, second.stderr
    assert b"recrawling" in second.stderr
    assert [(m, p) for m, p, _ in seen].count(("POST", "/submit")) == 2
    for method, path, headers in seen:
        assert "if-none-match" not in headers and "if-modified-since" not in headers, (method, path)
    assert sorted(items.read_text().splitlines()) == sorted(round_1.splitlines())
    assert len(round_1.splitlines()) == 2


@pytest.mark.parametrize("processes", [1, 2])
async def test_library_scrape_with_state_resumes(
    quotes_small: QuotesSite, tmp_path: Path, processes: int
) -> None:
    """``CrawlConfig(router=..., state=...)``, in this process or in worker processes (the
    requests cross them and come back to be done by equality): every item once; a finished
    scrape, asked again, does nothing."""
    state = tmp_path / "state.db"
    config = CrawlConfig(
        router=quotes_spider.router, depth=1000, state=str(state), processes=processes
    )
    with trio.fail_after(60):
        pages = await scrape([quotes_small.base + "/"], config)
    items = [item for page in pages for item in page.items]
    assert Counter(map(_key, items)) == Counter(map(_key, expected_items(quotes_small)))
    with trio.fail_after(60):
        assert await scrape([quotes_small.base + "/"], config) == []


@pytest.fixture
async def quotes_small(nursery: trio.Nursery) -> AsyncIterator[QuotesSite]:
    site = QuotesSite(quotes=40, seed=11)
    await nursery.start(site.serve)
    yield site
