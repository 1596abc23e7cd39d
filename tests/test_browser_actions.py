"""Driving the browser (real headless Chromium, loopback sites): waits for a selector or a
predicate, handlers' actions on the tab they hold, the page's own network answers,
screenshots and PDFs, and pages that open endless dialogs, pop-ups and downloads.

Tests skip only when no Chromium is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from examples.quotes_site import QuotesSite
from trio_scrape import ConfigError, Context, CrawlConfig, Crawler, Page, Router
from trio_scrape.render.actions import MAX_SHOT_HEIGHT
from trio_scrape.render.browser import find_browser
from trio_scrape.render.renderer import open_renderer
from trio_scrape.scraper.toml_spider import TomlSpiderError, toml_spider

from .site import Reply, Site

try:
    find_browser()
except ConfigError:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium-headless-shell)",
        allow_module_level=True,
    )


CLI = [sys.executable, "-m", "trio_scrape"]


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
        {"render_delay": 1.0},
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
        pages = by_path(
            await crawl([site.url("/late"), site.url("/other")], timeout=4, retries=0, **options)
        )
        error = pages["/late"].error
        assert error is not None and error.kind == "render_wait", (options, error)
        assert pages["/late"].elapsed < 4.5  # given up within the page deadline
        assert set(pages) == {"/late", "/other"}  # a record each: the crawl went on
    assert error is not None and "boom" in error.message  # what the expression threw is said


async def test_a_selector_lexbor_accepts_and_chromium_refuses_is_a_render_wait_error(
    site: Site,
) -> None:
    site.add("/p", js_page("document.title = 'p';", body="<p>x</p>"))
    selector = 'p:lexbor-contains("x")'  # lexbor's own pseudo-class
    CrawlConfig(render=True, render_wait_for=selector)  # accepted when configured
    [page] = await crawl([site.url("/p")], render_wait_for=selector, timeout=5, retries=0)
    assert page.error is not None and page.error.kind == "render_wait"
    assert "refused" in page.error.message and "lexbor-contains" in page.error.message


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
            # Held past the page deadline: cancelled (the tab's fate: the cut-short test).
            await ctx.browser.evaluate("new Promise(() => {})")

    pages = by_path(
        await crawl(
            [site.url(f"/{n}") for n in "abcd"], router=router, timeout=3, render_tabs=4, retries=0
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


async def test_an_action_cut_short_releases_or_replaces_the_tab(site: Site) -> None:
    """A handler's action cancelled mid-call (a promise that never settles, a script that
    never returns) leaves no tab behind: the one tab is stopped or replaced, and the next
    page renders in it."""
    site.add("/a", js_page("document.title = 'a';"))
    site.add("/b", js_page("document.title = 'b';"))
    site.add("/busy", js_page("document.title = 'busy'; while (true) {}"))
    config = CrawlConfig(render=True, render_tabs=1, allow_private=True)
    async with open_renderer(config) as renderer:
        for script in ("new Promise(() => {})", "while (true) {}"):
            with trio.move_on_after(1) as scope:
                async with renderer.open_page(site.url("/a")) as (_, tab):
                    assert tab is not None
                    await tab.evaluate(script)
            assert scope.cancelled_caught, script
            assert renderer.statistics.tabs_in_use == 0
            with trio.fail_after(10):
                response = await renderer.fetch(site.url("/b"))
            assert "<title>b</title>" in response.content.decode(), script
        # The tab busy in a script for good did not answer once stopped: it was replaced.
        assert renderer.statistics.tabs_replaced == 1
        # So is one whose page's own script never returns (cut short by the page deadline).
        with trio.move_on_after(2) as scope:
            await renderer.fetch(site.url("/busy"))
        assert scope.cancelled_caught
        with trio.fail_after(10):
            response = await renderer.fetch(site.url("/b"))
        assert "<title>b</title>" in response.content.decode()
        assert renderer.statistics.tabs_replaced == 2
        browser = renderer._browser
        assert browser is not None
        targets = await browser.cdp.call("Target.getTargets")
        pages = [t for t in targets["targetInfos"] if t["type"] == "page"]
        assert len(pages) <= 2, pages  # the tab (and the browser's first blank page)


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


SCROLLER = """
let n = 0;
window.addEventListener('scroll', () => {
  if (n >= 3 || innerHeight + scrollY < document.body.scrollHeight - 5) return;
  n++;
  if (n === 1) fetch('/poll');  // a long poll: never answered
  fetch('/more').then((r) => r.text()).then((text) => {
    const div = document.createElement('div');
    div.className = 'item'; div.style.height = '2000px'; div.textContent = text;
    document.body.append(div);
  });
});
"""


async def test_scroll_to_end_stops_when_nothing_new_comes_despite_a_long_poll(site: Site) -> None:
    async def never(_: object) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    site.add("/poll", never)
    site.add("/more", Reply(body=b"more", content_type="text/plain"))
    site.add("/feed", js_page(SCROLLER, body="<div style='height: 2000px'>top</div>"))
    router = Router()

    @router.default
    async def handle(ctx: Context) -> None:
        assert ctx.browser is not None
        scrolls = await ctx.browser.scroll_to_end(idle=0.2)
        await ctx.refresh()
        ctx.push({"scrolls": scrolls, "items": len(ctx.css(".item"))})

    with trio.fail_after(30):
        [page] = await crawl([site.url("/feed")], router=router, timeout=20)
    assert page.ok, page.error
    assert page.items == [{"scrolls": 4, "items": 3}]


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


async def test_a_capture_never_lets_past_what_the_address_guard_refuses(
    site: Site, nursery: trio.Nursery
) -> None:
    canary = Site("127.0.0.2")  # stands in for a private address: not the seed's origin
    await nursery.start(canary.serve)
    canary.add(
        "/secret.json",
        Reply(
            body=b'{"secret": 1}',
            content_type="application/json",
            headers={"Access-Control-Allow-Origin": "*"},  # a script may read it
        ),
    )
    site.add("/mine.json", Reply(body=b'{"mine": 1}', content_type="application/json"))
    site.add(
        "/",
        js_page(
            f"fetch('{canary.url('/secret.json')}').catch(() => 0);"
            "fetch('/mine.json').then(() => { document.title = 'fetched'; });"
        ),
    )
    router = Router()

    @router.handler(None, capture=r"\.json")
    async def handle(ctx: Context) -> None:
        assert ctx.browser is not None
        ctx.push({"captured": [a.json() for a in await ctx.browser.captured()]})

    [page] = await crawl([site.url("/")], router=router, render_wait="networkidle")
    assert page.ok, page.error
    assert page.items == [{"captured": [{"mine": 1}]}]
    assert canary.paths() == []
    # With --allow-private the same page reaches the canary, and the capture sees its answer.
    pages = await crawl(
        [site.url("/")], router=router, render_wait="networkidle", allow_private=True
    )
    assert sorted(map(str, pages[0].items[0]["captured"])) == ["{'mine': 1}", "{'secret': 1}"]
    assert canary.paths() == ["/secret.json"]


async def test_screenshots_of_every_rendered_page_and_a_handlers_pdf(
    site: Site, tmp_path: Path
) -> None:
    tall = "<div style='height: 40000px'>tall</div>"
    site.add("/", js_page("document.title = 'home';", body="<a href=/tall>tall</a>"))
    site.add("/tall", js_page("document.title = 'tall';", body=tall))
    site.add("/data.json", Reply(body=b"{}", content_type="application/json"))
    shots = tmp_path / "shots"
    router = Router()

    @router.default
    async def handle(ctx: Context) -> None:
        if ctx.browser is None:
            return
        pdf = await ctx.browser.pdf(tmp_path / f"{ctx.page.title}.pdf")
        png = await ctx.browser.screenshot()
        ctx.push({"pdf": pdf[:5].decode(), "png": png[:8] == PNG})
        ctx.enqueue_links()

    seeds = [site.url("/"), site.url("/data.json")]
    pages = by_path(await crawl(seeds, router=router, depth=1, screenshot=str(shots)))
    assert set(pages) == {"/", "/tall", "/data.json"}
    for path in ("/", "/tall"):
        page = pages[path]
        assert page.ok, page.error
        shot = Path(page.data["screenshot"])
        assert shot.parent == shots and head(shot, 8) == PNG
        assert page.items == [{"pdf": "%PDF-", "png": True}]
        assert head(tmp_path / f"{path.strip('/') or 'home'}.pdf", 5) == b"%PDF-"
    assert "screenshot_clipped" not in pages["/"].data
    assert pages["/tall"].data["screenshot_clipped"] is True
    width, height = png_size(head(Path(pages["/tall"].data["screenshot"]), 24))
    assert height == MAX_SHOT_HEIGHT and width > 0
    assert "screenshot" not in pages["/data.json"].data  # not rendered: no screenshot
    assert sorted(p.name for p in shots.iterdir()) == sorted(
        Path(pages[p].data["screenshot"]).name for p in ("/", "/tall")
    )


PNG = b"\x89PNG\r\n\x1a\n"


def head(path: Path, size: int) -> bytes:
    with open(path, "rb") as file:
        return file.read(size)


def downloaded(home: Path) -> list[Path]:
    return list(home.rglob("file.bin*"))


def png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


async def test_screenshots_with_state_are_written_once_across_a_sigkill(
    site: Site, tmp_path: Path
) -> None:
    count = 24
    for i in range(count):
        links = "".join(f"<a href=/p{j}>{j}</a>" for j in range(i + 1, min(i + 3, count)))
        site.add(f"/p{i}", js_page(f"document.title = 'p{i}';", body=links))
    shots, out, state = tmp_path / "shots", tmp_path / "out.jsonl", tmp_path / "state.db"
    command = [
        *CLI, "run", site.url("/p0"), "--depth", "100", "-o", str(out), "--state", str(state),
        "--render", "--render-tabs", "2", "--screenshot", str(shots), "-q", "--processes", "1",
        "--no-robots",
    ]  # fmt: skip
    with trio.fail_after(90):
        killed = await site.kill_at(command, 8)
        assert killed, "the crawl was too quick to be killed"
        # What a write cut short by a kill leaves (of a process that is gone): removed.
        shots.mkdir(exist_ok=True)
        orphan = shots / f".{'0' * 32}.png.{dead_pid()}.part"
        orphan.write_bytes(b"half a png")
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    urls = [r["url"] for r in records]
    assert sorted(urls) == sorted(site.url(f"/p{i}") for i in range(count))  # each once
    written = {str(shots / p.name) for p in shots.iterdir()}
    assert written == {r["data"]["screenshot"] for r in records}
    for path in written:
        assert head(Path(path), 8) == PNG


def dead_pid() -> int:
    """A process id no process has now (a child that has exited)."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_endless_dialogs_pop_ups_and_downloads_are_bounded(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # where a download would land
    site.add(
        "/file.bin",
        Reply(
            body=b"x" * 1000,
            content_type="application/octet-stream",
            headers={"Content-Disposition": "attachment; filename=file.bin"},
        ),
    )
    site.add("/popup", js_page("document.title = 'popup';"))
    site.add(
        "/dialogs",
        js_page("document.title = 'dialogs'; for (let i = 0; i < 200; i++) alert(i);"),
    )
    site.add(
        "/popups",
        js_page("document.title = 'popups'; for (let i = 0; i < 100; i++) window.open('/popup');"),
    )
    site.add(
        "/downloads",
        js_page(
            "document.title = 'downloads';"
            "for (let i = 0; i < 30; i++) { const a = document.createElement('a');"
            " a.href = '/file.bin'; a.download = 'file.bin'; document.body.append(a); a.click(); }"
        ),
    )
    config = CrawlConfig(render=True, render_tabs=1, timeout=10, allow_private=True)
    async with open_renderer(config) as renderer:
        with trio.fail_after(40):
            for name in ("dialogs", "popups", "downloads"):
                response = await renderer.fetch(site.url(f"/{name}"))
                assert f"<title>{name}</title>" in response.content.decode()
            browser = renderer._browser
            assert browser is not None
            targets = await browser.cdp.call("Target.getTargets")
        infos = targets["targetInfos"]
        assert [t["url"] for t in infos if t["type"] == "page" and t["title"] != "about:blank"] == [
            site.url("/downloads")
        ]  # the tab: every pop-up was closed
        assert 1 <= renderer.statistics.popups_closed <= 100
    assert not downloaded(tmp_path)


SCROLL_SPIDER = """
[routes.scroll]
match = "*/scroll"
scroll = true
capture = '/api/quotes\\?page='
render_wait_for = "#quotes"

[[routes.scroll.items]]
each = "jmes:[].quotes[]"
fields = { text = "jmes:text", author = "jmes:author.name", tags = "jmes:tags" }
"""


async def test_a_toml_route_scrolls_and_takes_items_from_the_captured_answers(
    nursery: trio.Nursery,
) -> None:
    site = QuotesSite(quotes=35, seed=5)
    await nursery.start(site.serve)
    spider = toml_spider(SCROLL_SPIDER)
    pages = await crawl([site.base + "/scroll"], router=spider.router, timeout=30)
    assert pages[0].ok, pages[0].error
    truth = [{"text": q.text, "author": q.author, "tags": list(q.tags)} for q in site.quotes()]
    assert pages[0].items == truth
    assert pages[0].data["captured"] == 4


def test_a_toml_routes_browser_keys_are_checked() -> None:
    for key, value, message in (
        ("render_wait_for", '"div["', "not a CSS selector"),
        ("capture", '"("', "not a regular expression"),
        ("scroll", "0", "scrolls"),
        ("capture_max", '"x"', "integer"),
    ):
        with pytest.raises(TomlSpiderError, match=message) as caught:
            toml_spider(f"[routes.a]\n{key} = {value}\nitems = {{ fields = {{ t = 'h1' }} }}\n")
        assert f"routes.a.{key}" in str(caught.value)


async def test_worker_processes_drive_their_own_browsers(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With --processes 2 the pipeline (rendering, the route's capture and scroll, the
    screenshots) runs in the worker processes, each with a browser of its own."""
    site = QuotesSite(quotes=25, seed=7)
    await nursery.start(site.serve)
    spider, shots = tmp_path / "scroll.toml", tmp_path / "shots"
    spider.write_text(SCROLL_SPIDER)
    seeds = [site.base + "/scroll", site.base + "/js/"]
    command = [
        *CLI, "crawl", str(spider), *seeds, "-o", "items.jsonl", "--records", "pages.jsonl",
        "--render", "--processes", "2", "--screenshot", str(shots), "-q", "--no-robots",
    ]  # fmt: skip
    with trio.fail_after(60):
        result = await trio.run_process(command, cwd=tmp_path, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    truth = [{"text": q.text, "author": q.author, "tags": list(q.tags)} for q in site.quotes()]
    assert items == truth
    records = {
        r["url"]: r for r in map(json.loads, (tmp_path / "pages.jsonl").read_text().splitlines())
    }
    assert set(records) == set(seeds)
    assert records[site.base + "/scroll"]["data"]["captured"] == 3
    assert {p.name for p in shots.iterdir()} == {
        Path(r["data"]["screenshot"]).name for r in records.values()
    }


async def test_auto_mode_screenshots_the_pages_it_renders(site: Site, tmp_path: Path) -> None:
    page = b"<title>t</title><p>" + b"text " * 100 + b'</p><a href="/app">app</a>'
    site.add("/", Reply(body=page))
    site.add("/app", js_page("document.title = 'built'; document.body.innerHTML = '<h1>app</h1>';"))
    shots = tmp_path / "shots"
    command = [
        *CLI, "run", site.url("/"), "--depth", "1", "--no-robots", "--render-auto",
        "--screenshot", str(shots),
    ]  # fmt: skip
    with trio.fail_after(30):
        result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    assert "warning" not in result.stderr.decode()
    records = {r["url"]: r for r in (json.loads(line) for line in result.stdout.splitlines())}
    static, built = records[site.url("/")], records[site.url("/app")]
    assert static["ok"] and static["data"]["rendered"]["decision"] == "http"
    assert "screenshot" not in static["data"]  # fetched both ways, its HTTP body kept
    assert built["ok"] and built["title"] == "built"
    assert built["data"]["rendered"]["decision"] == "render"
    assert [p.name for p in shots.iterdir()] == [Path(built["data"]["screenshot"]).name]


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_a_screenshot_directory_that_cannot_be_made_is_one_line_exit_2(
    tmp_path: Path, processes: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    command = [
        *CLI, "run", "http://127.0.0.1:9/", "--render", "--screenshot",
        str(tmp_path / "file" / "shots"), "--processes", processes, "-q",
    ]  # fmt: skip
    with trio.fail_after(30):
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"trio-scrape: error: --screenshot: cannot create '{tmp_path / 'file' / 'shots'}': "
        "Not a directory"
    ]


async def test_parse_runs_a_toml_routes_scroll_and_capture(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    site = QuotesSite(quotes=15, seed=9)
    await nursery.start(site.serve)
    spider = tmp_path / "scroll.toml"
    spider.write_text(SCROLL_SPIDER)
    command = [*CLI, "parse", site.base + "/scroll", "--spider", str(spider), "--render"]
    with trio.fail_after(60):
        result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    report = json.loads(result.stdout)
    assert report["route"] == "scroll" and report["error"] is None, report["error"]
    truth = [{"text": q.text, "author": q.author, "tags": list(q.tags)} for q in site.quotes()]
    assert report["items"] == truth
