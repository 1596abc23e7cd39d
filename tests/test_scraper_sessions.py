"""Sessions: one cookie jar for the whole crawl (worker processes included, and kept in a
state), a start-up step that logs in before the seeds, and a failed log-in that stops the
crawl. Against the loopback quotes site (examples/quotes_site.py: ``/login`` with a
per-visit CSRF token checked against the ``session`` cookie; logged-in listing pages show
``a.goodreads`` links)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from examples import quotes_login_spider
from examples.quotes_site import QuotesSite
from trio_scrape import CrawlConfig, Crawler, LoginFailed, Page, Request, Router, scrape

from . import session_spider
from .test_cli import cli


@pytest.fixture
async def quotes(nursery: trio.Nursery) -> AsyncIterator[QuotesSite]:
    site = QuotesSite(quotes=40, seed=11)
    await nursery.start(site.serve)
    yield site


def _listing_urls(site: QuotesSite) -> list[str]:
    pages = site.listing_pages()
    return [site.base + "/", *(f"{site.base}/page/{n}/" for n in range(2, pages + 1))]


def _logged_in(site: QuotesSite, pages: list[Page]) -> None:
    """Every listing page was scraped logged in: its quotes carry their Goodreads link."""
    items = [item for page in pages for item in page.items]
    assert sorted(item["text"] for item in items) == sorted(q.text for q in site.quotes())
    by_text = {q.text: q.goodreads for q in site.quotes()}
    assert all(item["goodreads"] == by_text[item["text"]] for item in items)


@pytest.mark.parametrize("processes", [1, 2])
async def test_the_start_up_step_logs_in_before_any_seed(
    quotes: QuotesSite, processes: int
) -> None:
    # Every listing page as a seed: with several in flight at once, pages go to both
    # worker processes, and each one is logged in though one process logged in.
    config = CrawlConfig(router=session_spider.router, depth=0, processes=processes, workers=8)
    with trio.fail_after(60):
        pages = await scrape(_listing_urls(quotes), config)
    assert not [(p.url, p.error) for p in pages if p.error is not None]
    _logged_in(quotes, pages)
    # The log-in (form, post) came first, once, and is not a record.
    log = [(r.method, r.path) for r in quotes.log if r.path != "/robots.txt"]
    assert log[:2] == [("GET", "/login"), ("POST", "/login")]
    assert quotes.count("POST", "/login") == 1
    assert all(p.url.rstrip("/").rsplit("/", 1)[-1] != "login" for p in pages)
    if processes == 2:
        assert len({item["pid"] for page in pages for item in page.items}) == 2


async def test_a_wrong_password_stops_the_crawl_before_any_seed(
    quotes: QuotesSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTES_PASSWORD", "wrong")
    config = CrawlConfig(router=quotes_login_spider.router, depth=10)
    with trio.fail_after(30), pytest.raises(LoginFailed) as raised:
        await scrape([quotes.base + "/"], config)
    assert "Invalid username or password." in str(raised.value)
    assert quotes.count("POST", "/login") == 1
    assert quotes.count("GET", "/") == 0  # no page was scraped logged out


async def test_a_failed_step_page_fails_the_log_in(quotes: QuotesSite) -> None:
    router = Router()
    router.on_start(lambda seeds: Request(seeds[0] + "no-such-page", label="login"))
    router.add("login", lambda ctx: None)
    router.add(None, lambda ctx: None)
    with trio.fail_after(30), pytest.raises(LoginFailed, match="HTTP 404"):
        await scrape([quotes.base + "/"], CrawlConfig(router=router))
    assert quotes.count("GET", "/") == 0


def _broken_on_start(seeds: list[str]) -> Request:
    raise RuntimeError("no credentials")


@pytest.mark.parametrize(
    ("on_start", "message"),
    [
        (_broken_on_start, "on_start raised RuntimeError: no credentials"),
        (lambda seeds: "ht!tp://x", "on_start: url: not a valid URL: 'ht!tp://x'"),
        (lambda seeds: [Request(seeds[0]), 3], "on_start: returned int, not a Request or a URL"),
    ],
)
async def test_an_on_start_that_raises_or_returns_junk_fails_the_log_in(
    quotes: QuotesSite, on_start: Any, message: str
) -> None:
    router = Router()
    router.on_start(on_start)
    router.add(None, lambda ctx: None)
    with trio.fail_after(30), pytest.raises(LoginFailed) as raised:
        await scrape([quotes.base + "/"], CrawlConfig(router=router))
    assert str(raised.value) == message
    assert quotes.count("GET", "/") == 0


async def test_a_handler_that_finds_the_session_gone_stops_the_crawl(quotes: QuotesSite) -> None:
    # No start-up step: the listing handler's check fails on the first page.
    router = Router()
    router.add(None, quotes_login_spider.listing)
    with trio.fail_after(30), pytest.raises(LoginFailed, match="logged out at"):
        await scrape([quotes.base + "/"], CrawlConfig(router=router, depth=10))
    assert quotes.count("GET", "/page/3/") == 0


async def test_the_jar_is_shared_by_worker_processes(nursery: trio.Nursery) -> None:
    # Two origins (two ports of one host: cookies ignore ports) get a worker process each
    # (HostRouter: a new origin's home is the process with the fewest). The first sets a
    # cookie (GET /login); the page it leads to, on the other origin, must send it.
    first, second = QuotesSite(quotes=10), QuotesSite(quotes=10)
    await nursery.start(first.serve)
    await nursery.start(second.serve)
    start = Request(first.base + "/login", label="hop", data={"next": second.base + "/"})
    config = CrawlConfig(router=session_spider.plain, processes=2, depth=5, allow_private=True)
    with trio.fail_after(60):
        pages = await scrape([start], config)
    assert not [(p.url, p.error) for p in pages if p.error is not None]
    pids = {item["url"]: item["pid"] for page in pages for item in page.items}
    assert pids[first.base + "/login"] != pids[second.base + "/"]  # two processes
    [set_cookie] = [r for r in first.log if r.path == "/login"]
    assert set_cookie.cookie is None
    [sent] = [r for r in second.log if r.path == "/"]
    assert sent.cookie is not None and sent.cookie.startswith("session=")


async def test_the_jar_is_kept_in_the_state(quotes: QuotesSite, tmp_path: Path) -> None:
    # A first run gets a session cookie (GET /login sets one); a second round of the same
    # state (a recrawl) starts with it: the site sees it on its first request.
    state = tmp_path / "state.db"
    config = CrawlConfig(depth=0, state=state, recrawl=True)
    with trio.fail_after(30):
        await scrape([quotes.base + "/login"], config)
    [first] = quotes.requests("GET", "/login")
    assert first.cookie is None
    db = sqlite3.connect(state)
    [[jar]] = db.execute("SELECT value FROM meta WHERE key = 'session'").fetchall()
    db.close()
    assert [cookie[1] for cookie in json.loads(jar)] == ["session"]
    with trio.fail_after(30):
        await scrape([quotes.base + "/login"], config)
    _, again = quotes.requests("GET", "/login")
    assert again.cookie is not None and again.cookie.startswith("session=")
    assert again.cookie.removeprefix("session=") in jar


async def test_a_stopped_scrape_resumes_logged_in(quotes: QuotesSite, tmp_path: Path) -> None:
    # Stopped after its first page, then resumed: the resumed run logs in again (by design:
    # the stored session may have expired), and every listing page is scraped logged in.
    state = tmp_path / "state.db"
    config = CrawlConfig(router=session_spider.router, depth=10, state=state, workers=1)
    send, receive = trio.open_memory_channel[Page](0)
    crawler = Crawler([quotes.base + "/"], config, sink=send)
    pages: list[Page] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(crawler.run)
            async for page in receive:
                pages.append(page)
                crawler.stop()
    assert quotes.count("POST", "/login") == 1
    with trio.fail_after(30):
        pages += await scrape([quotes.base + "/"], config)
    assert quotes.count("POST", "/login") == 2
    _logged_in(quotes, pages)


@pytest.fixture
def quotes_in_thread() -> Any:
    from examples.quotes_site import serve_in_thread

    with serve_in_thread(quotes=40, seed=11) as site:
        yield site


async def test_the_crawl_command_logs_in_with_worker_processes(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    spider = Path(quotes_login_spider.__file__)
    result = await cli(
        "crawl",
        str(spider),
        quotes_in_thread.base + "/",
        "--processes",
        "2",
        "-o",
        "items.jsonl",
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    by_text = {q.text: q.goodreads for q in quotes_in_thread.quotes()}
    assert sorted(item["text"] for item in items) == sorted(by_text)
    assert all(item["goodreads"] == by_text[item["text"]] for item in items)


async def test_a_wrong_password_exits_4_with_one_line(
    quotes_in_thread: QuotesSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTES_PASSWORD", "wrong")
    spider = Path(quotes_login_spider.__file__)
    result = await cli(
        "crawl", str(spider), quotes_in_thread.base + "/", "-o", "items.jsonl", cwd=tmp_path
    )
    assert result.returncode == 4
    [line] = result.stderr.decode().splitlines()
    assert line == (
        f"trio-scrape: error: log-in failed: {quotes_in_thread.base}/login: "
        "Invalid username or password."
    )
    assert (tmp_path / "items.jsonl").read_text() == ""
    assert quotes_in_thread.count("GET", "/") == 0


async def test_an_on_start_that_raises_exits_4_with_one_line(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    spider = tmp_path / "spider.py"
    spider.write_text(
        "from trio_scrape import Router\n"
        "router = Router()\n"
        "@router.on_start\n"
        "def log_in(seeds):\n"
        "    raise RuntimeError('nope')\n"
        "@router.default\n"
        "def page(ctx):\n"
        "    return {'url': ctx.page.url}\n"
    )
    result = await cli("crawl", str(spider), quotes_in_thread.base + "/", "-o", "-", cwd=tmp_path)
    assert result.returncode == 4
    assert result.stderr.decode().splitlines() == [
        "trio-scrape: error: log-in failed: on_start raised RuntimeError: nope"
    ]
    assert result.stdout == b""
