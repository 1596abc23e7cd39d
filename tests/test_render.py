"""Rendering in real headless Chromium against loopback sites whose pages are built by JavaScript.

Each test starts its own browser (about 0.2 s here): pytest-trio runs every test in its own
Trio loop, so a browser cannot be shared between tests without a thread of its own. Tests
skip only when no Chromium is installed.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_scrape
from trio_scrape import ConfigError, CrawlConfig, Crawler, Page, Selector
from trio_scrape.render.browser import browser_args, find_browser, group_pids

from .site import Reply, Request, Site, closed_port, html_page

try:
    find_browser()
except ConfigError:
    pytest.skip(
        "Chromium is not installed (apt-get install chromium-headless-shell)",
        allow_module_level=True,
    )

CLI = [sys.executable, "-m", "trio_scrape"]


def js_page(script: str, *, body: str = "<p>loading...</p>", head: str = "") -> Reply:
    return Reply(
        body=(
            f"<!doctype html><html><head><title>loading</title>{head}</head>"
            f"<body>{body}<script>{script}</script></body></html>"
        ).encode()
    )


def add_link(href: str) -> str:
    return (
        "{const a = document.createElement('a'); "
        f"a.href = '{href}'; a.textContent = '{href}'; document.body.append(a);}}"
    )


def js_site(site: Site) -> None:
    site.add(
        "/",
        js_page(
            "document.title = 'Built by JS';"
            "document.body.innerHTML = '<h1>Hello from JS</h1>';"
            + add_link("/sync")
            + f"setTimeout(() => {{ {add_link('/timer')} }}, 60);"
            "fetch('/links.json').then((r) => r.json()).then((d) => {"
            + add_link("' + d.href + '")
            + "});"
        ),
    )
    site.add("/links.json", Reply(body=b'{"href": "/fetched"}', content_type="application/json"))
    for name in ("sync", "timer", "fetched"):
        site.add(f"/{name}", js_page(f"document.title = 'JS {name}';"))


async def crawl(seeds: list[str], config: CrawlConfig) -> tuple[list[Page], Any]:
    send, receive = trio.open_memory_channel[Page](100)
    crawler = Crawler(seeds, config, sink=send)
    stats = await crawler.run()
    async with receive:
        pages = [page async for page in receive]
    return pages, stats


def by_path(pages: list[Page]) -> dict[str, Page]:
    return {"/" + page.url.split("/", 3)[3]: page for page in pages}


async def test_titles_links_and_selectors_come_from_the_rendered_dom(site: Site) -> None:
    js_site(site)
    config = CrawlConfig(
        depth=1, links=True, selectors=(Selector.parse("heading=h1"),), robots=False
    )
    plain = by_path((await crawl([site.url("/")], config))[0])
    assert plain["/"].title == "loading" and plain["/"].links == []  # what HTTP alone sees

    # "quiet" (the default) sees what the page builds synchronously and within 150 ms of its
    # last DOM change (the 60 ms timer). Whether the fetch() answer also made it depends on
    # how fast the loopback server answered: docs/rendering.md says it needs "networkidle".
    pages, stats = await crawl([site.url("/")], CrawlConfig(**{**_fields(config), "render": True}))
    got = by_path(pages)
    assert {"/", "/sync", "/timer"} <= set(got) <= {"/", "/sync", "/timer", "/fetched"}
    home = got["/"]
    assert home.title == "Built by JS"
    assert home.data == {"rendered": True, "heading": "Hello from JS"}
    assert {site.url("/sync"), site.url("/timer")} <= set(home.links)
    assert home.status == 200 and home.content_type == "text/html; charset=utf-8"
    for name in ("sync", "timer"):
        assert got[f"/{name}"].title == f"JS {name}"
        assert got[f"/{name}"].data["rendered"] is True
    assert stats.rendered == len(got) and stats.ok == len(got)
    assert stats.browser_peak_memory is not None and stats.browser_peak_memory > 10_000_000

    # "networkidle" waits while the fetch() is in flight, however slow the server is.
    idle = CrawlConfig(
        **{**_fields(config), "render": True, "render_wait": "networkidle", "depth": 0}
    )
    pages, stats = await crawl([site.url("/")], idle)
    assert [page.title for page in pages] == ["Built by JS"]
    assert sorted(pages[0].links) == [site.url(p) for p in ("/fetched", "/sync", "/timer")]
    assert stats.rendered == 1


def _fields(config: CrawlConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


async def never_answer(request: Request) -> bool:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def test_a_page_whose_load_never_fires_times_out_and_its_tab_serves_on(site: Site) -> None:
    site.add("/hang", js_page("", head='<script src="/never.js"></script>'))
    site.add_raw("/never.js", never_answer)
    site.add("/ok", js_page("document.title = 'fine';"))
    config = CrawlConfig(render=True, render_tabs=1, timeout=1.5, retries=0, robots=False)
    with trio.fail_after(20):
        pages, stats = await crawl([site.url("/hang"), site.url("/ok")], config)
    got = by_path(pages)
    assert got["/hang"].error is not None and got["/hang"].error.kind == "timeout"
    assert got["/ok"].ok and got["/ok"].title == "fine"
    assert stats.rendered == 1


async def test_page_scripts_never_reach_a_forbidden_address(
    site: Site, nursery: trio.Nursery
) -> None:
    canary = Site("127.0.0.2")  # stands in for a private or link-local address
    await nursery.start(canary.serve)
    c = canary.url
    same_host = Site()  # another port of the seed's own host is not the seed's origin
    await nursery.start(same_host.serve)
    p = same_host.port
    site.add(
        "/",
        js_page(
            f"fetch('{c('/fetch')}').catch(() => 0);"
            f"const x = new XMLHttpRequest(); x.open('GET', '{c('/xhr')}'); x.send();"
            f"navigator.sendBeacon('{c('/beacon')}', 'x');"
            f"try {{ new WebSocket('ws://127.0.0.2:{canary.port}/ws'); }} catch (e) {{}}"
            f"try {{ new EventSource('{c('/events')}'); }} catch (e) {{}}"
            f"fetch('{same_host.url('/fetch')}').catch(() => 0);"
            f"try {{ new WebSocket('ws://127.0.0.1:{p}/ws'); }} catch (e) {{}}"
            f"try {{ new WebSocket('ws://localhost:{p}/ws-by-name'); }} catch (e) {{}}"
            # The title changes once the worker has tried: the record shows it got that far.
            "new Worker('/worker.js').onmessage = () => { document.title = 'tried'; };",
            body=f'<img src="{c("/img")}"><iframe src="{c("/frame")}"></iframe>'
            f'<link rel="stylesheet" href="{c("/style.css")}">',
        ),
    )
    worker = f"fetch('{c('/from-worker')}').catch(() => 0).finally(() => postMessage(1));"
    site.add(
        "/worker.js",
        Reply(body=worker.encode(), content_type="text/javascript"),
    )
    site.add("/redirect", Reply(302, headers={"Location": c("/target")}))
    config = CrawlConfig(render=True, robots=False, render_wait="networkidle", render_wait_max=5)
    pages, _ = await crawl([site.url("/"), site.url("/redirect")], config)
    got = by_path(pages)
    assert got["/"].ok and got["/"].title == "tried"
    assert got["/redirect"].error is not None
    assert got["/redirect"].error.kind == "blocked_address"
    assert "/worker.js" in site.paths()
    assert canary.paths() == [] and canary.robots_log == []
    assert same_host.paths() == []

    # The same page with --allow-private does reach it: the canary can see what gets through.
    allowed = CrawlConfig(**{**_fields(config), "allow_private": True})
    pages, _ = await crawl([site.url("/")], allowed)
    assert pages[0].title == "tried"
    assert {"/fetch", "/xhr", "/ws", "/frame", "/from-worker"} <= set(canary.paths())
    assert {"/fetch", "/ws", "/ws-by-name"} <= set(same_host.paths())


async def test_a_dom_over_2_mb_is_read_whole(site: Site) -> None:
    site.add(
        "/big",
        js_page(
            "const parts = [];"
            "for (let i = 0; i < 4000; i++) parts.push(`<p id=p${i}>paragraph ${i} ` +"
            " 'of a big page built in the browser. '.repeat(15) + '</p>');"
            "document.body.innerHTML = parts.join('') + '<a href=/last>last</a>';"
            "document.title = 'big';"
        ),
    )
    pages, _ = await crawl([site.url("/big")], CrawlConfig(render=True, links=True, robots=False))
    (page,) = pages
    assert page.ok and page.title == "big"
    assert page.bytes > 2_000_000
    assert page.text is not None and page.text.count("<p id=") == 4000
    assert page.links == [site.url("/last")]


def renderer_pids(pgid: int) -> list[int]:
    pids = []
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if b"--type=renderer" in file.read():
                    pids.append(pid)
        except OSError:
            pass
    return pids


@pytest.mark.parametrize("victim", ["tab", "browser"])
async def test_a_crash_mid_render_is_retried_in_a_fresh_tab_or_browser(
    site: Site, victim: str
) -> None:
    crawler: Crawler | None = None
    killed: list[int] = []

    async def crash_then_serve(request: Request) -> Reply:
        if not killed:
            assert crawler is not None and crawler._renderer is not None
            browser = crawler._renderer._browser
            assert browser is not None
            targets = renderer_pids(browser.pgid) if victim == "tab" else [browser.process.pid]
            assert targets
            for pid in targets:
                os.kill(pid, signal.SIGKILL)
            killed.append(browser.pgid)
            await trio.sleep_forever()
        return Reply(body=b"document.title = 'survived';", content_type="text/javascript")

    site.add("/page", js_page("", head='<script src="/crash.js"></script>'))
    site.add("/crash.js", crash_then_serve)
    send, receive = trio.open_memory_channel[Page](10)
    config = CrawlConfig(render=True, render_tabs=1, backoff=0, robots=False, timeout=10)
    crawler = Crawler([site.url("/page")], config, sink=send)
    with trio.fail_after(20):
        stats = await crawler.run()
    (page,) = [page async for page in receive]
    assert page.ok and page.title == "survived" and page.data["rendered"] is True
    assert stats.retries == 1
    assert crawler._renderer is not None
    assert crawler._renderer.statistics.browser_starts == (1 if victim == "tab" else 2)
    if victim == "browser":
        assert group_pids(killed[0]) == []


async def test_cancelling_the_enclosing_scope_mid_render_leaves_no_browser(site: Site) -> None:
    site.add("/hang", js_page("", head='<script src="/never.js"></script>'))
    site.add_raw("/never.js", never_answer)
    pgids: list[int] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            crawler = Crawler([site.url("/hang")], CrawlConfig(render=True, robots=False))
            nursery.start_soon(crawler.run)
            while site.hits["/never.js"] == 0:
                await site.hit_event.wait()
            assert crawler._renderer is not None and crawler._renderer._browser is not None
            pgids.append(crawler._renderer._browser.pgid)
            assert group_pids(pgids[0])
            nursery.cancel_scope.cancel()
    assert group_pids(pgids[0]) == []


async def test_render_auto_renders_only_pages_built_by_scripts(site: Site) -> None:
    text = "<p>" + "Plenty of server-rendered text. " * 20 + "</p>"
    site.add("/", Reply(body=html_page("static", ["/app", "/plain"], body=text)))
    site.add("/plain", Reply(body=html_page("plain", body=text + "<script>1</script>")))
    site.add("/app", js_page("document.title = 'app';" + add_link("/")))
    config = CrawlConfig(render_auto=True, depth=1, robots=False, links=True)
    pages, stats = await crawl([site.url("/")], config)
    got = by_path(pages)
    assert got["/"].data["rendered"]["decision"] == "http" and got["/"].title == "static"
    assert got["/plain"].data["rendered"] == {
        "decision": "http",
        "pattern": "/plain",
        "reason": "rendering changed no link, title or text",
        "sampled": True,
    }
    assert got["/app"].data["rendered"] == {
        "decision": "render",
        "pattern": "/app",
        "reason": "rendering added 1 links, 1 words (+100% text) and set the title",
        "sampled": True,
    }
    assert got["/app"].title == "app"
    assert got["/app"].links == [site.url("/")]
    assert site.hits["/app"] == 2  # over HTTP, then in the browser
    # Each page is the first of its pattern, so the browser loads it too, to compare.
    assert stats.rendered == 3 and site.hits["/plain"] == 2


async def test_headers_user_agent_and_blocked_resources(site: Site, nursery: trio.Nursery) -> None:
    other = Site("127.0.0.2")
    await nursery.start(other.serve)
    site.add(
        "/",
        js_page(
            f"fetch('/api'); fetch('{other.url('/api')}').catch(() => 0);",
            body='<img src="/img.png"><video src="/clip.mp4"></video>',
        ),
    )
    config = CrawlConfig(
        render=True,
        robots=False,
        allow_private=True,
        user_agent="render-test/1.0",
        headers={"X-Token": "secret"},
        render_wait="networkidle",
        render_wait_max=1,
    )
    await crawl([site.url("/")], config)
    seen = {r.path: r.headers for r in site.log}
    assert seen["/"]["user-agent"] == "render-test/1.0" and seen["/"]["x-token"] == "secret"
    assert seen["/api"]["x-token"] == "secret"
    assert "/img.png" not in seen and "/clip.mp4" not in seen
    (to_other,) = other.log
    assert to_other.headers["user-agent"] == "render-test/1.0"
    assert "x-token" not in to_other.headers  # --header goes to the seeds' hosts only


async def test_non_html_documents_come_as_sent_and_errors_are_classified(site: Site) -> None:
    site.add("/data.json", Reply(body=b'{"a": 1}', content_type="application/json"))
    site.add("/missing", Reply(404, js_page("document.title = 'gone';").body))
    site.add("/moved", Reply(301, headers={"Location": "/data.json"}))
    site.add(
        "/download",
        Reply(body=b"<title>x</title>", headers={"Content-Disposition": "attachment; filename=x"}),
    )
    urls = [site.url(p) for p in ("/data.json", "/missing", "/moved", "/download")]
    pages, _ = await crawl(urls, CrawlConfig(render=True, robots=False))
    got = by_path(pages)
    assert got["/data.json"].content == b'{"a": 1}'
    assert got["/data.json"].data == {"rendered": False}
    assert got["/missing"].status == 404 and got["/missing"].title == "gone"
    assert got["/missing"].error is not None and got["/missing"].error.kind == "http_status"
    moved = got["/moved"]
    assert moved.final_url == site.url("/data.json") and moved.content == b'{"a": 1}'
    download = got["/download"]  # an attachment is taken as sent, not saved nor rendered
    assert download.ok and download.content == b"<title>x</title>"
    assert download.data == {"rendered": False}


async def test_dialogs_are_dismissed_and_the_deadline_ends_a_render_crawl(site: Site) -> None:
    site.add(
        "/dialogs",
        js_page(
            "alert('hello'); const sure = confirm('sure?'); const name = prompt('name?');"
            "document.title = `confirm=${sure} prompt=${name}`;"
        ),
    )
    site.add("/hang", js_page("", head='<script src="/never.js"></script>'))
    site.add_raw("/never.js", never_answer)
    config = CrawlConfig(render=True, robots=False, deadline=2, grace=0.3, timeout=30)
    with trio.fail_after(10):
        pages, stats = await crawl([site.url("/dialogs"), site.url("/hang")], config)
    got = by_path(pages)
    assert got["/dialogs"].title == "confirm=false prompt=null"
    assert got["/hang"].error is not None and got["/hang"].error.kind == "cancelled"
    assert stats.stop_reason == "deadline" and stats.elapsed < 5


async def test_cli_render_and_sigint_leave_no_browser(site: Site, tmp_path: Path) -> None:
    js_site(site)
    site.add("/hang", js_page(add_link("/"), head='<script src="/never.js"></script>'))
    site.add_raw("/never.js", never_answer)
    out = tmp_path / "out.jsonl"
    args = [*CLI, "run", site.url("/"), site.url("/hang"), "--render", "--no-robots"]
    args += ["--depth=1", "--grace=0.5", "-o", str(out)]
    profiles = tmp_path / "tmp"
    profiles.mkdir()
    env = {**os.environ, "TMPDIR": str(profiles)}  # the browser's profile goes there
    with (tmp_path / "err.txt").open("wb") as stderr:
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    args,
                    env=env,
                    check=False,
                    stderr=stderr,
                )
            )
            with trio.fail_after(30):
                while site.hits["/never.js"] == 0 or site.hits["/timer"] == 0:
                    await site.hit_event.wait()
                process.send_signal(signal.SIGINT)
                returncode = await process.wait()
    err = (tmp_path / "err.txt").read_text()
    assert returncode == 130, err
    assert "rendered" in err.splitlines()[-1]  # the summary line
    got = {r["url"].split("/", 3)[3]: r for r in map(json.loads, out.read_text().splitlines())}
    assert got[""]["title"] == "Built by JS" and got[""]["data"] == {"rendered": True}
    assert got["hang"]["error"]["kind"] == "cancelled"
    assert list(profiles.iterdir()) == []  # the profile was removed...
    assert not _processes_mentioning(str(profiles))  # ...and no browser process is left


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    if text.encode() in file.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


async def test_a_missing_browser_is_a_usage_error_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = await trio.run_process(
        [*CLI, "run", "http://127.0.0.1:9/", "--render", "--browser", str(tmp_path / "nope")],
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1, result.stderr
    assert "--browser" in result.stderr.decode() and "not an executable" in result.stderr.decode()

    monkeypatch.setattr("trio_scrape.render.browser.LIB_DIRS", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="apt-get install chromium-headless-shell"):
        trio_scrape.Crawler(["http://127.0.0.1:9/"], CrawlConfig(render=True))


async def test_render_if_predicate_decides_which_pages_are_rendered(site: Site) -> None:
    site.add("/a", js_page("document.title = 'A by JS';"))
    site.add("/b", js_page("document.title = 'B by JS';"))
    asked: list[tuple[str, int]] = []

    def only_b(url: str, body: bytes) -> bool:
        asked.append((url, len(body)))
        return url.endswith("/b")

    config = CrawlConfig(render_if=only_b, robots=False)
    assert config.rendering == "auto"
    pages, stats = await crawl([site.url("/a"), site.url("/b")], config)
    got = by_path(pages)
    assert got["/a"].title == "loading" and got["/a"].data == {"rendered": False}
    assert got["/b"].title == "B by JS" and got["/b"].data == {"rendered": True}
    assert sorted(url for url, _ in asked) == [site.url("/a"), site.url("/b")]
    assert stats.rendered == 1

    from trio_scrape.cli.progress import status_line

    line = status_line(stats)
    assert line.endswith("\nrendered 1 | tabs in use 0 | browser stopped")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"render": True, "render_auto": True}, "render_auto"),
        ({"render_tabs": 0}, "render_tabs"),
        ({"render_tabs": 65}, "render_tabs"),
        ({"render_tab_pages": 0}, "render_tab_pages"),
        ({"render_wait": "load"}, "render_wait"),
        ({"render_wait_max": 0}, "render_wait_max"),
        ({"render_wait_max": 61}, "render_wait_max"),
        ({"render_if": "not callable"}, "render_if"),
        ({"render": "yes"}, "render"),
        ({"browser": ""}, "browser"),
    ],
)
def test_render_options_are_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(**fields)
    assert info.value.field == field


async def test_the_browser_goes_through_the_crawls_proxy(site: Site, nursery: trio.Nursery) -> None:
    proxy = Site()  # a forward proxy sees absolute URLs as request targets
    await nursery.start(proxy.serve)
    page = f"http://127.0.0.1:{closed_port()}/page"  # only the proxy can answer this
    proxy.add(page, js_page("document.title = 'via proxy';"))
    config = CrawlConfig(render=True, robots=False, proxy=proxy.base, retries=0)
    pages, _ = await crawl([page], config)
    assert pages[0].title == "via proxy" and pages[0].data == {"rendered": True}
    assert proxy.paths() == [page]


async def test_worker_processes_render_with_browsers_of_their_own(site: Site) -> None:
    js_site(site)
    config = CrawlConfig(render=True, depth=1, links=True, robots=False, processes=2)
    pages, stats = await crawl([site.url("/")], config)
    got = by_path(pages)
    assert sorted(got) == ["/", "/fetched", "/sync", "/timer"]
    assert got["/"].title == "Built by JS" and len(got["/"].links) == 3
    assert all(page.data == {"rendered": True} for page in pages)
    assert stats.rendered == 4 and stats.processes == 2


def test_only_a_crawl_that_reads_pages_and_leaves_them_paints_once() -> None:
    """Compositing on the renderer's main thread leaves DevTools input events and
    screenshots unacknowledged: the switch is asked for only by crawls that act on no tab."""
    plain = browser_args(user_data_dir="/tmp/x", user_agent="ua")
    once = browser_args(user_data_dir="/tmp/x", user_agent="ua", paint_once=True)
    assert "--disable-threaded-compositing" not in plain
    assert "--disable-threaded-compositing" in once
    assert set(once) - set(plain) == {"--disable-threaded-compositing"}
