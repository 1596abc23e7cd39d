"""Driving the browser (real headless Chromium, loopback sites): waits for a selector or a
predicate, handlers' actions on the tab they hold, the page's own network answers,
screenshots and PDFs, and pages that open endless dialogs, pop-ups and downloads.

Tests skip only when no Chromium is installed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from examples.quotes_site import QuotesSite
from trio_scrape import ConfigError, Context, CrawlConfig, Crawler, Page, Router
from trio_scrape.render.browser import find_browser

from .site import Reply, Site

try:
    find_browser()
except ConfigError:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium-headless-shell)",
        allow_module_level=True,
    )


def js_page(script: str, *, body: str = "<p>loading...</p>", title: str = "loading") -> Reply:
    return Reply(
        body=(
            f"<!doctype html><html><head><title>{title}</title></head>"
            f"<body>{body}<script>{script}</script></body></html>"
        ).encode()
    )


async def crawl(seeds: list[str], **options: Any) -> list[Page]:
    options.setdefault("robots", False)
    options.setdefault("render", True)
    options.setdefault("processes", 1)
    send, receive = trio.open_memory_channel[Page](1000)
    await Crawler(seeds, CrawlConfig(**options), sink=send).run()
    async with receive:
        return [page async for page in receive]


def by_path(pages: list[Page]) -> dict[str, Page]:
    return {"/" + page.url.split("/", 3)[3]: page for page in pages}


# A heading added 400 ms after load: later than the quiet wait's 150 ms.
LATE = "setTimeout(() => { document.body.innerHTML = '<h1 id=late>late</h1>'; late = 1; }, 400);"


async def test_waits_for_a_selector_a_predicate_or_a_delay(site: Site) -> None:
    site.add("/late", js_page(LATE))
    url = site.url("/late")
    quiet = await crawl([url])
    assert quiet[0].ok and 'id="late"' not in quiet[0].content.decode()

    for options in (
        {"render_wait_for": "h1#late"},
        {"render_wait_js": "document.querySelector('#late') !== null"},
        {"render_wait_js": "new Promise((r) => setTimeout(() => r(!!window.late), 50))"},
        {"render_delay": 0.6},
    ):
        pages = await crawl([url], **options)
        assert pages[0].ok, (options, pages[0].error)
        assert 'id="late"' in pages[0].content.decode(), options


async def test_an_unmet_wait_is_a_render_wait_error_within_the_deadline(site: Site) -> None:
    site.add("/late", js_page(LATE))
    site.add("/other", js_page("document.title = 'other';"))
    for options in (
        {"render_wait_for": "h2.never"},
        {"render_wait_js": "false"},
        {"render_wait_js": "(() => { throw new Error('boom'); })()"},
    ):
        started = trio.current_time()
        pages = by_path(
            await crawl([site.url("/late"), site.url("/other")], timeout=2, retries=0, **options)
        )
        assert trio.current_time() - started < 8
        error = pages["/late"].error
        assert error is not None and error.kind == "render_wait", (options, error)
        assert set(pages) == {"/late", "/other"}  # a record each: the crawl went on
    assert error is not None and "boom" in error.message  # what the expression threw is said


def test_an_invalid_wait_selector_is_refused_when_configured() -> None:
    with pytest.raises(ConfigError) as caught:
        CrawlConfig(render=True, render_wait_for="div[")
    assert caught.value.field == "render_wait_for"
    with pytest.raises(ValueError, match="render_wait_for"):
        Router().handler("x", render_wait_for="p::")


FORM = """
<form><input id=name><select id=colour><option value=red>red</option>
<option value=blue>blue</option></select></form>
<button id=more onclick="const p = document.createElement('p'); p.className = 'added';
p.textContent = document.getElementById('name').value + '/' +
document.getElementById('colour').value; document.body.append(p);">more</button>
"""


async def test_a_handler_clicks_fills_selects_and_reads_the_new_dom(site: Site) -> None:
    site.add("/form", js_page("document.title = 'form';", body=FORM))
    site.add("/static", Reply(body=b"plain", content_type="text/plain"))
    router = Router()
    seen: list[Any] = []

    @router.default
    async def handle(ctx: Context) -> None:
        if ctx.browser is None:
            ctx.push({"url": ctx.page.url, "browser": None})
            return
        assert ctx.css(".added") == []
        await ctx.browser.fill("#name", "ada")
        await ctx.browser.select("#colour", "blue")
        await ctx.browser.click("#more")
        await ctx.browser.click("#more")
        seen.append(await ctx.browser.evaluate("document.querySelectorAll('.added').length"))
        await ctx.refresh()
        ctx.push(
            {"added": ctx.texts(".added"), "title": await ctx.browser.evaluate("document.title")}
        )

    pages = by_path(await crawl([site.url("/form"), site.url("/static")], router=router))
    assert pages["/form"].ok, pages["/form"].error
    assert pages["/form"].items == [{"added": ["ada/blue", "ada/blue"], "title": "form"}]
    assert seen == [2]
    assert pages["/static"].items == [{"url": site.url("/static"), "browser": None}]


async def test_failed_actions_and_throwing_scripts_fail_the_page_not_the_crawl(site: Site) -> None:
    for name in ("a", "b", "c", "d"):
        site.add(f"/{name}", js_page(f"document.title = '{name}';", body=FORM))
    router = Router()

    @router.default
    async def handle(ctx: Context) -> None:
        assert ctx.browser is not None
        name = ctx.page.title
        ctx.push({"before": name})
        if name == "a":
            await ctx.browser.evaluate("(() => { throw new TypeError('bad script'); })()")
        elif name == "b":
            await ctx.browser.click("#missing")
        elif name == "c":
            await ctx.browser.select("#colour", "green")
        else:
            # Held past the page deadline: cancelled, and the tab serves the other pages.
            await ctx.browser.evaluate("new Promise(() => {})")

    pages = by_path(
        await crawl(
            [site.url(f"/{n}") for n in "abcd"], router=router, timeout=3, render_tabs=1, retries=0
        )
    )
    errors = {path: page.error for path, page in pages.items()}
    assert errors["/a"] is not None and errors["/a"].kind == "extract"
    assert "bad script" in errors["/a"].message
    assert errors["/b"] is not None and "#missing" in errors["/b"].message
    assert errors["/c"] is not None and "no such option" in errors["/c"].message
    assert errors["/d"] is not None and errors["/d"].kind == "timeout"
    for path in ("/a", "/b", "/c", "/d"):
        assert pages[path].items == [{"before": path[1:]}]


async def scroll_quotes(ctx: Context) -> None:
    assert ctx.browser is not None
    ctx.push({"scrolls": await ctx.browser.scroll_to_end()})
    for answer in await ctx.browser.captured():
        for quote in answer.json()["quotes"]:
            ctx.push(quote)


async def test_the_scroll_pages_quotes_come_from_its_own_api_answers(nursery: trio.Nursery) -> None:
    site = QuotesSite(quotes=45, seed=3)
    await nursery.start(site.serve)
    router = Router()

    @router.handler(None, capture=r"/api/quotes\?page=")
    async def handle(ctx: Context) -> None:
        await scroll_quotes(ctx)

    pages = await crawl([site.base + "/scroll"], router=router, timeout=30)
    assert len(pages) == 1 and pages[0].ok, pages[0].error
    items = pages[0].items
    quotes = [item for item in items if "text" in item]
    truth = [
        {"text": q.text, "author": {"name": q.author, "slug": q.author_slug}, "tags": list(q.tags)}
        for q in site.quotes()
    ]
    assert quotes == truth
    assert pages[0].data["captured"] == 5 and "capture_capped" not in pages[0].data
    assert items[0]["scrolls"] >= 1


async def test_a_capture_is_capped_in_count_and_bytes(site: Site) -> None:
    big = json.dumps({"x": "y" * 300_000}).encode()
    site.add("/big.json", Reply(body=big, content_type="application/json"))
    site.add("/small.json", Reply(body=b'{"n": 1}', content_type="application/json"))
    fetches = "".join(f"fetch('/small.json?{i}');" for i in range(5))
    site.add("/many", js_page(fetches + "fetch('/big.json');"))
    router = Router()

    @router.handler(None, capture=r"\.json", capture_max=3, capture_max_bytes=100_000)
    async def handle(ctx: Context) -> None:
        assert ctx.browser is not None
        await ctx.browser.wait_for("body")
        ctx.push({"kept": [a.url.rsplit("/", 1)[1] for a in await ctx.browser.captured()]})

    pages = await crawl([site.url("/many")], router=router, render_wait="networkidle")
    assert pages[0].ok, pages[0].error
    kept = pages[0].items[0]["kept"]
    assert len(kept) <= 3 and all(name.startswith("small.json") for name in kept)
    assert pages[0].data["captured"] == len(kept)
    assert "capture_capped" in pages[0].data
