"""``render_auto``: learning per host and URL pattern whether rendering changes what is
extracted. The target test crawls :mod:`tests.mixed_site` (static and script-built pages, all
with header and footer links, over three hosts) in real Chromium; the unit tests need no
browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trio_scrape import ConfigError, Context, CrawlConfig, Crawler, Page, Router
from trio_scrape.http.fetcher import Response
from trio_scrape.render import auto
from trio_scrape.render.auto import AutoFetcher, PatternState, compare, url_pattern
from trio_scrape.render.browser import find_browser

from . import mixed_site
from .site import Site


def _browser_installed() -> bool:
    try:
        find_browser()
    except ConfigError:
        return False
    return True


needs_browser = pytest.mark.skipif(
    not _browser_installed(),
    reason="Chromium is not installed (apt-get install chromium-headless-shell)",
)


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        ("http://a.test/", "/"),
        ("http://a.test", "/"),
        ("http://a.test/app/12", "/app/*"),
        ("http://a.test/app/12/reviews?page=3", "/app/*"),
        ("http://a.test/js/", "/js/*"),
        ("http://a.test/p12.html", "/p*.html"),
        ("http://a.test/2024-05-01", "/*-*-*"),
        ("http://a.test/about", "/about"),
    ],
)
def test_url_pattern_is_the_first_segment_with_digits_collapsed(url: str, pattern: str) -> None:
    assert url_pattern(url) == pattern


def test_compare_sees_links_title_and_text_but_not_a_cookie_notice() -> None:
    frame = '<html><head><title>T</title></head><body><a href="/h">h</a>%s</body></html>'
    words = " ".join(f"w{i}" for i in range(100))
    static = (frame % f"<p>{words}</p>").encode()
    assert not compare(static, static).changed
    notice = (frame % f"<p>{words}</p><div>We use cookies.</div>").encode()
    assert not compare(static, notice).changed
    shell = (frame % '<div id="app">Loading...</div>').encode()
    built = compare(shell, static)
    assert built.changed and built.added_words == 100 and built.added_links == 0
    assert built.reason() == "rendering added 100 words (+5000% text)"
    linked = compare(static, (frame % f'<p>{words}</p><a href="/new">n</a>').encode())
    assert linked.changed and linked.added_links == 1
    retitled = compare(static, static.replace(b"<title>T<", b"<title>U<"))
    assert retitled.changed and retitled.title_changed and retitled.reason().endswith("the title")


def test_pattern_state_samples_decides_and_rechecks() -> None:
    same = compare(b"<p>a</p>", b"<p>a</p>")
    built = compare(b"<p>a</p>", b'<p>a</p><a href="/x">x</a>')
    state = PatternState()
    for _ in range(auto.SAMPLES):
        assert state.decision == "sample"
        state.observe(same)
    assert state.decision == "http"
    due = [state.due() for _ in range(2 * auto.RECHECK_EVERY)]
    assert due.count(True) == 2 and due[auto.RECHECK_EVERY - 1]
    state.observe(built)  # a recheck that finds a change flips the pattern to render
    assert state.decision == "render" and "1 links" in state.reason
    for _ in range(auto.SAMPLES - 1):
        state.observe(same)
    assert state.decision == "render"  # the change is still among the last comparisons
    state.observe(same)
    assert state.decision == "http"


def test_state_is_bounded_per_host_and_in_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "MAX_HOSTS", 3)
    fetcher = AutoFetcher(None, None, CrawlConfig(render_auto=True))  # type: ignore[arg-type]
    for n in range(auto.MAX_PATTERNS_PER_HOST + 10):
        fetcher.state(f"http://a.test/section{'x' * n}/1")
    patterns = fetcher._hosts["a.test"]
    assert len(patterns) == auto.MAX_PATTERNS_PER_HOST + 1 and "*" in patterns  # the rest
    assert fetcher.state("http://a.test/another/1")[0] == "*"
    assert fetcher.state("http://a.test/section/2")[0] == "/section/*"
    for host in ("b.test", "c.test", "d.test"):
        fetcher.state(f"http://{host}/")
    assert list(fetcher._hosts) == ["b.test", "c.test", "d.test"]  # a.test, least recent


class _Fetched:
    def __init__(self, status: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.status = status

    async def fetch(self, url: str, *, headers: Any = None, **options: Any) -> Response:
        self.calls.append((url, headers))
        response = Response(url, self.status, httpx.Headers({"content-type": "text/html"}), b"")
        response.rendered = self.status == 200 and headers is None
        return response

    @asynccontextmanager
    async def open_page(self, url: str, setup: Any = None) -> AsyncIterator[tuple[Response, None]]:
        yield await self.fetch(url), None  # the renderer's: a tab held (none here)


async def test_a_render_pattern_revalidates_over_http_and_renders_only_a_changed_page() -> None:
    http, browser = _Fetched(304), _Fetched(200)
    fetcher = AutoFetcher(http, browser, CrawlConfig(render_auto=True))  # type: ignore[arg-type]
    _, state = fetcher.state("http://a.test/app/1")
    state.observe(compare(b"<p>a</p>", b'<p>a</p><a href="/x">x</a>'))
    assert state.decision == "render"
    plain = await fetcher.fetch("http://a.test/app/1")
    assert plain.rendered and not http.calls  # the browser only
    revalidated = await fetcher.fetch("http://a.test/app/2", headers={"If-None-Match": '"v1"'})
    assert revalidated.status == 304 and revalidated.render_note is not None
    assert revalidated.render_note["decision"] == "http" and len(browser.calls) == 1
    http.status = 200
    changed = await fetcher.fetch("http://a.test/app/3", headers={"If-None-Match": '"v1"'})
    assert changed.rendered and changed.render_note["decision"] == "render"  # type: ignore[index]
    assert [url for url, _ in browser.calls] == ["http://a.test/app/1", "http://a.test/app/3"]


async def _crawl(seeds: list[str], config: CrawlConfig) -> tuple[list[Page], Any]:
    send, receive = trio.open_memory_channel[Page](1000)
    crawler = Crawler(seeds, config, sink=send)
    stats = await crawler.run()
    async with receive:
        pages = [page async for page in receive]
    return pages, stats


@needs_browser
async def test_render_auto_learns_which_sections_are_script_built(
    nursery: trio.Nursery,
) -> None:
    truth: dict[str, bool] = {}
    sites = []
    for host in mixed_site.LAYOUT:
        site = Site(host)
        await nursery.start(site.serve)
        truth.update(mixed_site.build(site, pages=16))
        sites.append(site)
    config = CrawlConfig(render_auto=True, depth=2, robots=False, links=True, timeout=30)
    with trio.fail_after(120):
        pages, stats = await _crawl([site.url("/") for site in sites], config)
    got = {page.url: page for page in pages}
    assert set(got) == set(truth) and all(page.ok for page in pages)

    def rendered(url: str) -> bool:
        return bool(got[url].data["rendered"]["decision"] == "render")

    scripted = [url for url, built in truth.items() if built]
    static = [url for url, built in truth.items() if not built]
    scripted_share = sum(map(rendered, scripted)) / len(scripted)
    static_share = sum(map(rendered, static)) / len(static)
    assert scripted_share >= 0.95, (scripted_share, static_share)
    assert static_share <= 0.05, (scripted_share, static_share)
    for url in scripted:  # what rendering is for: the script-built content is in the record
        page = got[url]
        if rendered(url):
            assert "page" in str(page.title) or page.title in ("Shop", "App")
            assert any("/" + url.split("/")[3] + "/" in link for link in page.links)
    note = got[scripted[-1]].data["rendered"]
    assert note["pattern"] in ("/app/*", "/shop/*")
    assert note["reason"].startswith("rendering added ")
    static_note = got[static[-1]].data["rendered"]
    assert static_note["decision"] == "http" and static_note["pattern"]
    sampled = sum(bool(page.data["rendered"].get("sampled")) for page in pages)
    assert stats.rendered == sum(map(rendered, truth)) + sum(
        1 for page in pages if page.data["rendered"].get("sampled") and not rendered(page.url)
    )
    print(
        f"script-built rendered {scripted_share:.0%} of {len(scripted)}, "
        f"static rendered {static_share:.0%} of {len(static)}, "
        f"{sampled} pages fetched both ways, browser loads {stats.rendered}"
    )


@needs_browser
async def test_handlers_get_the_tab_of_pages_auto_mode_rendered_and_none_of_plain_ones(
    site: Site,
) -> None:
    truth = mixed_site.build(site, pages=8)  # 127.0.0.1: a static and a script-built section
    router = Router()

    @router.default
    async def handle(ctx: Context) -> None:
        item: dict[str, Any] = {"url": ctx.page.url, "browser": ctx.browser is not None}
        if ctx.browser is not None:
            item["title"] = await ctx.browser.evaluate("document.title")
        ctx.push(item)
        if ctx.page.url == site.url("/"):
            # A request's own headers go with it where auto mode fetches it over HTTP.
            ctx.enqueue("/contact?probe=1", headers={"X-Probe": "yes"})
        ctx.enqueue_links()

    config = CrawlConfig(render_auto=True, depth=2, robots=False, timeout=30, router=router)
    with trio.fail_after(120):
        pages, _ = await _crawl([site.url("/")], config)
    got = {page.url: page for page in pages}
    assert set(truth) <= set(got) and all(page.ok for page in pages)
    decisions = {url: page.data["rendered"]["decision"] for url, page in got.items()}
    assert "render" in decisions.values() and "http" in decisions.values()
    for url, page in got.items():
        [item] = page.items
        if decisions[url] == "render":
            assert item["browser"] is True and item["title"] == page.title, url
        else:
            assert item["browser"] is False, url
    assert all(decisions[url] == "render" for url, built in truth.items() if built and "/1" in url)
    probe = [r for r in site.log if r.path == "/contact?probe=1"]
    over_http = [r for r in probe if "sec-fetch-mode" not in r.headers]  # not the browser's
    assert over_http and all(r.headers.get("x-probe") == "yes" for r in over_http)
    assert got[site.url("/contact?probe=1")].data["rendered"]["decision"] == "http"
