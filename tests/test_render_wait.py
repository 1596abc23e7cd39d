"""The default quiet wait in real Chromium: it ends soon after ``load`` on a page that is done,
and still waits for what a page has started: a timer, a ``fetch()`` answered late, a script
it inserted; the quotes site's script-built /js/ pages come out whole."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from examples.quotes_site import QuotesSite
from trio_scrape import ConfigError, Context, CrawlConfig, Crawler, Page, Router, Selector
from trio_scrape.render.browser import find_browser

from .site import Reply, Request, Site

try:
    find_browser()
except ConfigError:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium-headless-shell)",
        allow_module_level=True,
    )


async def _crawl(seeds: list[str], config: CrawlConfig) -> tuple[dict[str, Page], Any]:
    send, receive = trio.open_memory_channel[Page](100)
    crawler = Crawler(seeds, config, sink=send)
    with trio.fail_after(60):
        stats = await crawler.run()
    async with receive:
        pages = {page.url: page async for page in receive}
    return pages, stats


def _page(script: str) -> Reply:
    return Reply(
        body=(
            "<!doctype html><html><head><title>loading</title></head><body><p>loading</p>"
            f"<script>{script}</script></body></html>"
        ).encode()
    )


def _append(text: str) -> str:
    return (
        f"{{const p = document.createElement('h2'); p.textContent = '{text}'; "
        "document.body.append(p);}"
    )


async def test_the_quiet_wait_waits_for_what_the_page_started(site: Site) -> None:
    release = trio.Event()

    async def late_answer(request: Request) -> Reply:
        await release.wait()  # answered only once the page's timer has shown its text
        return Reply(body=b'"from fetch"', content_type="application/json")

    site.add("/late.json", late_answer)
    site.add("/inserted.js", Reply(body=_append("from script").encode(), content_type="text/js"))
    site.add("/release", lambda request: (release.set(), Reply(body=b"ok"))[1])
    site.add(
        "/",
        _page(
            # A timer of 200 ms: longer than the 25 ms quiet window, within the 250 ms horizon.
            "setTimeout(() => {" + _append("from timer") + "fetch('/release'); }, 200);"
            "fetch('/late.json').then((r) => r.json()).then((t) => {" + _append("' + t + '") + "});"
            "const s = document.createElement('script'); s.src = '/inserted.js';"
            "document.head.append(s);"
        ),
    )
    config = CrawlConfig(render=True, robots=False, selectors=(Selector.parse("h2=h2", many=True),))
    pages, _ = await _crawl([site.url("/")], config)
    page = pages[site.url("/")]
    assert page.ok and sorted(page.data["h2"]) == ["from fetch", "from script", "from timer"]


async def test_the_quotes_sites_script_built_pages_come_out_whole(nursery: trio.Nursery) -> None:
    quotes = QuotesSite(quotes=30, seed=3)
    await nursery.start(quotes.serve)
    config = CrawlConfig(
        render=True,
        robots=False,
        selectors=(Selector.parse("quote=div.quote span.text", many=True),),
    )
    urls = [quotes.base + path for path in ("/js/", "/js/page/2/", "/js/page/3/")]
    pages, stats = await _crawl(urls, config)
    texts = [text for url in urls for text in pages[url].data["quote"]]
    assert texts == [quote.text for quote in quotes.quotes()]
    assert stats.rendered == 3


@pytest.mark.parametrize("handler", [False, True], ids=["reading", "handler"])
async def test_what_an_animation_frame_adds_after_the_last_change_is_waited_for(
    site: Site, handler: bool
) -> None:
    # Text added by a requestAnimationFrame callback queued at the last change. A crawl that
    # only reads pages draws no frames: the callback runs from a timer the wait tracks. With a
    # handler the browser draws frames: the next one comes up to 16.7 ms later, after the
    # 10 ms quiet window, so only the rule "a frame begun after the last change" catches it
    # on every page.
    script = (
        "setTimeout(() => {"
        + _append("from timer")
        + "requestAnimationFrame(() => {"
        + _append("from frame")
        + "}); }, 30);"
    )
    paths = [f"/frame{n}" for n in range(8)]
    for path in paths:
        site.add(path, _page(script))
    router = Router()
    if handler:

        @router.default
        async def handle(ctx: Context) -> None:
            assert ctx.browser is not None
            ctx.push({"h2": ctx.texts("h2")})

    config = CrawlConfig(
        render=True,
        robots=False,
        selectors=(Selector.parse("h2=h2", many=True),),
        router=router if handler else None,
    )
    pages, _ = await _crawl([site.url(path) for path in paths], config)
    for path in paths:
        page = pages[site.url(path)]
        assert page.ok and page.data["h2"] == ["from timer", "from frame"], path
        if handler:
            assert page.items == [{"h2": ["from timer", "from frame"]}]
