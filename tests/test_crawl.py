"""The engine against a real loopback server, including every hostile case a crawler meets."""

from __future__ import annotations

import gzip
import math
import random
from typing import Any

import pytest
import trio
import trio.lowlevel

from trio_scrape import ConfigError, CrawlConfig, Crawler, CrawlStatistics, Page

from .site import Reply, Request, Site, closed_port, html_page, reset_connection

#: Tests that run with the page pipeline in the crawler's process and in 2 worker processes.
both = pytest.mark.parametrize("processes", [1, 2], ids=["1-process", "2-processes"])


async def run_crawl(seeds: list[str], **options: Any) -> tuple[dict[str, Page], CrawlStatistics]:
    """Crawl and return the pages by URL, asserting there is exactly one record per URL."""
    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(seeds, CrawlConfig(**options), sink=send)
    with trio.fail_after(60):
        stats = await crawler.run()
    pages = [page async for page in receive]
    by_url = {page.url: page for page in pages}
    assert len(by_url) == len(pages), "a URL was recorded twice"
    assert stats.pages == len(pages)
    return by_url, stats


def kind(page: Page) -> str | None:
    return page.error.kind if page.error else None


# ----------------------------------------------------------------------------- links, scope


@both
async def test_follows_links_once_each_with_depth_and_referrer(site: Site, processes: int) -> None:
    site.add(
        "/",
        Reply(
            body=html_page(
                "Home",
                [
                    "/a",
                    "a#frag",
                    "/b",
                    "/a",
                    "mailto:x@y.z",
                    "javascript:void(0)",
                    "#top",
                    "tel:123",
                ],
            )
        ),
    )
    site.add("/a", Reply(body=html_page("A", ["/", "./b", "c?y=2&x=1"])))
    site.add("/b", Reply(body=html_page("B", ["/c?x=1&y=2"])))
    site.add("/c", Reply(body=html_page("C", ["/never"])))
    pages, stats = await run_crawl([site.url("/")], depth=2, processes=processes)

    # /c has two spellings with one canonical key: one request, with the spelling found first.
    (c_url,) = set(pages) - {site.url(p) for p in ["/", "/a", "/b"]}
    assert c_url in (site.url("/c?x=1&y=2"), site.url("/c?y=2&x=1"))
    assert pages[site.url("/")].depth == 0 and pages[site.url("/")].referrer is None
    assert pages[site.url("/a")].depth == 1 and pages[site.url("/a")].referrer == site.url("/")
    assert pages[c_url].depth == 2
    assert pages[site.url("/a")].title == "A"
    assert all(p.ok and p.error is None for p in pages.values())
    # Each page was requested once; /never is at depth 3.
    assert sorted(site.hits.values()) == [1, 1, 1, 1]
    assert "/never" not in site.hits
    assert stats.stop_reason == "finished" and stats.ok == 4


async def test_depth_zero_fetches_only_the_seeds(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", ["/a"])))
    pages, _ = await run_crawl([site.url("/"), site.url("/")])
    assert list(pages) == [site.url("/")]
    assert site.paths() == ["/"]


async def test_links_field_lists_every_unique_link_including_offsite(site: Site) -> None:
    site.add(
        "/",
        Reply(
            body=html_page(
                "Home", ["/a", "/a#x", "http://external.invalid/p", "HTTP://EXTERNAL.invalid:80/p"]
            )
        ),
    )
    pages, _ = await run_crawl([site.url("/")], links=True)
    assert pages[site.url("/")].links == [site.url("/a"), "http://external.invalid/p"]


@both
async def test_offsite_links_are_not_fetched_in_host_scope(site: Site, processes: int) -> None:
    other = Site("127.0.0.2")
    async with trio.open_nursery() as nursery:
        await nursery.start(other.serve)
        other.add("/x", Reply(body=html_page("Other")))
        site.add("/", Reply(body=html_page("Home", [other.url("/x"), "/in"])))
        site.add("/in", Reply(body=html_page("In")))
        pages, _ = await run_crawl([site.url("/")], depth=3, processes=processes)
        assert set(pages) == {site.url("/"), site.url("/in")}
        assert other.log == []

        pages, _ = await run_crawl(
            [site.url("/")],
            depth=3,
            allow_hosts=("127.0.0.*",),
            allow_private=True,
            processes=processes,
        )
        assert other.url("/x") in pages and pages[other.url("/x")].ok
        nursery.cancel_scope.cancel()


async def test_include_and_exclude_patterns(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", ["/keep/1", "/keep/2", "/drop/1", "/keep/private"])))
    for path in ["/keep/1", "/keep/2", "/drop/1", "/keep/private"]:
        site.add(path, Reply(body=html_page(path)))
    pages, _ = await run_crawl([site.url("/")], depth=1, include=("/keep/",), exclude=("private",))
    assert set(pages) == {site.url("/"), site.url("/keep/1"), site.url("/keep/2")}


async def test_a_catastrophic_include_pattern_takes_linear_time(site: Site) -> None:
    # (a+)+$ backtracks in Python's re in time exponential in a run of a's that does not end
    # the text: 27 of them blocked the crawl for ~10 s, and 60 for ages. RE2 matches it in
    # time linear in the URL. (The bound is checked at the crawl's next checkpoint.)
    evil = "/" + "a" * 27 + "!"
    site.add("/", Reply(body=html_page("Home", [evil, "/aaa"])))
    site.add("/aaa", Reply(body=html_page("A")))
    with trio.fail_after(5):
        pages, _ = await run_crawl([site.url("/")], depth=1, include=("(a+)+$",))
    assert set(pages) == {site.url("/"), site.url("/aaa")}


def test_include_patterns_refuse_what_re2_cannot_match() -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(include=(r"(\w)\1",))
    assert info.value.field == "include"
    assert "not RE2 syntax" in str(info.value) and "backreferences" in str(info.value)


@both
async def test_infinite_calendar_is_bounded_by_depth_and_max_pages(
    site: Site, processes: int
) -> None:
    def calendar(path: str) -> Reply | None:
        if not path.startswith("/cal/"):
            return None
        day = int(path.rsplit("/", 1)[1])
        return Reply(body=html_page(f"Day {day}", [f"/cal/{day + 1}", f"/cal/{day - 1}"]))

    site.fallback = calendar
    pages, _ = await run_crawl([site.url("/cal/0")], depth=4, processes=processes)
    assert {int(u.rsplit("/", 1)[1]) for u in pages} == set(range(-4, 5))

    site.log.clear()
    pages, stats = await run_crawl(
        [site.url("/cal/0")], depth=1000, max_pages=25, workers=4, processes=processes
    )
    assert len(pages) == 25 and len(site.log) == 25
    assert stats.stop_reason == "max_pages"


@both
async def test_no_deadlock_when_every_page_links_to_hundreds_with_buffer_1(
    site: Site, processes: int
) -> None:
    rng = random.Random(7)
    count = 300
    for i in range(count):
        targets = [f"/p{rng.randrange(count)}" for _ in range(250)] + [f"/p{(i + 1) % count}"]
        site.add(f"/p{i}", Reply(body=html_page(f"P{i}", targets)))
    pages, stats = await run_crawl(
        [site.url("/p0")], depth=10_000, workers=4, buffer=1, processes=processes
    )
    assert len(pages) == count
    assert stats.stop_reason == "finished" and stats.in_flight == 0 and stats.queued == 0


@both
async def test_error_pages_are_recorded_but_not_followed(site: Site, processes: int) -> None:
    site.add("/", Reply(body=html_page("Home", ["/missing", "/broken"])))
    site.add("/broken", Reply(500, html_page("Oops", ["/hidden"])))
    pages, stats = await run_crawl([site.url("/")], depth=5, retries=0, processes=processes)
    assert pages[site.url("/missing")].status == 404
    assert pages[site.url("/missing")].error is not None
    assert kind(pages[site.url("/missing")]) == "http_status"
    assert not pages[site.url("/missing")].ok
    assert pages[site.url("/broken")].status == 500
    assert "/hidden" not in site.hits
    assert stats.errors == {"http_status": 2}


# ------------------------------------------------------------------------------ redirects


@both
async def test_redirect_chain_is_followed_and_target_not_fetched_again(
    site: Site, processes: int
) -> None:
    site.add("/", Reply(body=html_page("Home", ["/old", "/new"])))
    site.add("/old", Reply(301, headers={"Location": "/mid"}))
    site.add("/mid", Reply(302, headers={"Location": site.url("/new")}))
    site.add("/new", Reply(body=html_page("New")))
    pages, _ = await run_crawl(
        [site.url("/old"), site.url("/")], depth=1, workers=1, processes=processes
    )
    old = pages[site.url("/old")]
    assert old.ok and old.status == 200 and old.final_url == site.url("/new")
    assert old.title == "New"
    assert site.hits["/new"] == 1
    assert site.url("/new") not in pages


@both
async def test_a_redirect_target_linking_to_itself_is_fetched_once(
    site: Site, processes: int
) -> None:
    # /d answers 301 to /d/, whose own href="#top" is /d/ again once the fragment is gone: the
    # redirect's target is seen before the page's links are queued, so nothing is fetched twice.
    site.add("/", Reply(body=html_page("Home", ["d"])))
    site.add("/d", Reply(301, headers={"Location": "/d/"}))
    site.add("/d/", Reply(body=html_page("D", ["#top"])))
    pages, _ = await run_crawl([site.url("/")], depth=3, processes=processes)
    assert sorted(pages) == [site.url("/"), site.url("/d")]
    assert pages[site.url("/d")].final_url == site.url("/d/")
    assert site.hits["/d/"] == 1


@pytest.mark.parametrize("headers", [None, {"X-Extra": "1"}], ids=["plain", "httpx"])
async def test_a_location_in_raw_utf8_is_read_as_utf8(
    site: Site, headers: dict[str, str] | None
) -> None:
    """A server that writes a Location's non-ASCII as raw UTF-8 bytes (the header's text as
    latin-1 here, so its bytes on the wire are UTF-8): the target is that UTF-8, escaped once,
    as a browser requests it. Both request paths: the plain one and httpx's."""
    raw = "/caf\u00e9?q=\u00e9".encode().decode("latin-1")  # its UTF-8 bytes, as latin-1
    site.add("/go", Reply(302, headers={"Location": raw}))
    site.add("/caf%C3%A9?q=%C3%A9", Reply(body=html_page("cafe")))
    config_headers = {"headers": headers} if headers else {}
    pages, _ = await run_crawl([site.url("/go")], **config_headers)
    page = pages[site.url("/go")]
    assert page.ok, page.error
    assert page.final_url == site.url("/caf%C3%A9?q=%C3%A9")


async def test_redirect_loops_and_long_chains_fail(site: Site) -> None:
    site.add("/loop1", Reply(302, headers={"Location": "/loop2"}))
    site.add("/loop2", Reply(302, headers={"Location": "/loop1"}))
    for i in range(12):
        site.add(f"/chain{i}", Reply(302, headers={"Location": f"/chain{i + 1}"}))
    site.add("/chain12", Reply(body=html_page("End")))
    pages, _ = await run_crawl(
        [site.url("/loop1"), site.url("/chain0"), site.url("/chain9")], max_redirects=5
    )
    for url in [site.url("/loop1"), site.url("/chain0")]:
        assert kind(pages[url]) == "too_many_redirects"
    assert pages[site.url("/chain9")].final_url == site.url("/chain12")
    assert sum(site.hits[f"/loop{i}"] for i in (1, 2)) == 6  # the first request + 5 redirects


async def test_redirect_to_a_non_http_scheme_is_invalid_url(site: Site) -> None:
    site.add("/ftp", Reply(302, headers={"Location": "ftp://example.org/file"}))
    pages, _ = await run_crawl([site.url("/ftp")])
    assert kind(pages[site.url("/ftp")]) == "invalid_url"


# ------------------------------------------------------------------ slow and broken servers


@both
async def test_trickling_body_hits_the_page_deadline(site: Site, processes: int) -> None:
    async def trickle(request: Request) -> bool:
        await request.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            await request.stream.send_all(b"x")
            await trio.sleep(1)
        return False

    site.add_raw("/trickle", trickle)
    start = trio.current_time()
    pages, _ = await run_crawl([site.url("/trickle")], timeout=1.5, retries=0, processes=processes)
    page = pages[site.url("/trickle")]
    assert page.error is not None and page.error.kind == "timeout"
    # The page's own clock stops at the deadline; the crawl's (which also starts worker
    # processes, slow on a loaded machine) only has to end long before the 1,000 s trickle.
    assert 1.4 < page.elapsed < 3 and trio.current_time() - start < 30


@both
async def test_server_that_never_answers_times_out_and_is_retried(
    site: Site, processes: int
) -> None:
    async def silent(request: Request) -> bool:
        await trio.sleep_forever()
        return False  # pragma: no cover

    site.add_raw("/silent", silent)
    pages, stats = await run_crawl(
        [site.url("/silent")], timeout=0.5, retries=1, backoff=0.01, processes=processes
    )
    assert kind(pages[site.url("/silent")]) == "timeout"
    assert site.hits["/silent"] == 2 and stats.retries == 1


async def test_connection_reset_is_a_network_error_after_retries(site: Site) -> None:
    site.add_raw("/reset", reset_connection)
    # Without robots.txt, every attempt opens a fresh connection. (After a robots.txt fetch the
    # first attempt would reuse its keep-alive connection, and a reset there is taken for a
    # stale connection and sent once more on a new one: 4 hits, as intended.)
    pages, _ = await run_crawl([site.url("/reset")], retries=2, backoff=0.01, robots=False)
    assert kind(pages[site.url("/reset")]) in ("network", "protocol")
    assert site.hits["/reset"] == 3


async def test_refused_connection_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/"
    pages, _ = await run_crawl([url], retries=1, backoff=0.01)
    assert kind(pages[url]) == "connect"
    assert pages[url].status is None and not pages[url].ok


@both
async def test_503_then_200_is_retried_to_success(site: Site, processes: int) -> None:
    answers = iter([Reply(503), Reply(503), Reply(body=html_page("Finally"))])
    site.add("/flaky", lambda request: next(answers))
    pages, stats = await run_crawl(
        [site.url("/flaky")], retries=2, backoff=0.01, processes=processes
    )
    page = pages[site.url("/flaky")]
    assert page.ok and page.title == "Finally" and stats.retries == 2


@both
async def test_429_retry_after_is_honoured(site: Site, processes: int) -> None:
    answers = iter([Reply(429, headers={"Retry-After": "1"}), Reply(body=html_page("OK"))])
    site.add("/limited", lambda request: next(answers))
    pages, _ = await run_crawl([site.url("/limited")], backoff=0.01, processes=processes)
    assert pages[site.url("/limited")].ok
    first, second = (r.at for r in site.log)
    assert second - first >= 1.0


async def test_retry_after_over_the_cap_fails_at_once(site: Site) -> None:
    site.add("/later", Reply(503, headers={"Retry-After": "3600"}))
    pages, _ = await run_crawl([site.url("/later")], max_retry_after=60)
    page = pages[site.url("/later")]
    assert page.status == 503 and page.error is not None and page.error.kind == "http_status"
    assert "Retry-After" in page.error.message and site.hits["/later"] == 1


async def test_503_exhausting_retries_keeps_the_status(site: Site) -> None:
    site.add("/down", Reply(503))
    pages, _ = await run_crawl([site.url("/down")], retries=2, backoff=0.01)
    assert pages[site.url("/down")].status == 503 and site.hits["/down"] == 3


# ------------------------------------------------------------------------- bodies and caps


@both
async def test_gzip_bomb_is_cut_at_max_bytes(site: Site, processes: int) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 128 * 1024
    site.add("/bomb", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    pages, _ = await run_crawl([site.url("/bomb")], max_bytes=1024 * 1024, processes=processes)
    page = pages[site.url("/bomb")]
    assert kind(page) == "too_large"
    # An answer came: its record says which, though its body is refused.
    assert (page.status, page.content_type) == (200, "text/html; charset=utf-8")
    assert page.final_url == site.url("/bomb") and not page.ok


async def test_endless_chunked_body_is_cut_at_max_bytes(site: Site) -> None:
    async def endless(request: Request) -> bool:
        await request.stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16384, b"y" * 16384)
        for _ in range(100_000):  # bounded: 1.6 GB, far past any cap in this test
            await request.stream.send_all(chunk)
        return False

    site.add_raw("/endless", endless)
    pages, _ = await run_crawl([site.url("/endless")], max_bytes=256 * 1024)
    assert kind(pages[site.url("/endless")]) == "too_large"


@both
async def test_an_answer_with_bare_lf_line_ends_is_read(site: Site, processes: int) -> None:
    """Lines that end in a bare LF (some servers): read, as browsers, curl and h11 read them."""

    async def bare(request: Request) -> bool:
        body = b"<title>bare</title>"
        head = b"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: %d\n\n" % len(body)
        await request.stream.send_all(head + body)
        return False

    site.add_raw("/bare", bare)
    pages, _ = await run_crawl([site.url("/bare")], processes=processes)
    page = pages[site.url("/bare")]
    assert page.ok and page.title == "bare", page.error


async def test_declared_length_over_the_cap_fails_before_reading(site: Site) -> None:
    site.add("/big", Reply(body=b"z" * 5000, content_type="text/plain"))
    pages, _ = await run_crawl([site.url("/big")], max_bytes=1000)
    assert kind(pages[site.url("/big")]) == "too_large"
    assert (pages[site.url("/big")].status, pages[site.url("/big")].content_type) == (
        200,
        "text/plain",
    )


async def test_corrupt_gzip_is_a_decode_error(site: Site) -> None:
    site.add("/corrupt", Reply(body=b"this is not gzip", headers={"Content-Encoding": "gzip"}))
    pages, _ = await run_crawl([site.url("/corrupt")])
    assert kind(pages[site.url("/corrupt")]) == "decode"


@both
async def test_charsets(site: Site, processes: int) -> None:
    title = "Café Ünïcode"
    site.add(
        "/latin1",
        Reply(
            body=f"<title>{title}</title>".encode("latin-1"),
            content_type="text/html; charset=ISO-8859-1",
        ),
    )
    site.add(
        "/utf16", Reply(body=f"<title>{title}</title>".encode("utf-16"), content_type="text/html")
    )
    site.add(
        "/meta",
        Reply(
            body='<meta charset="windows-1251"><title>Привет</title>'.encode("cp1251"),
            content_type="text/html",
        ),
    )
    site.add(
        "/sniffed",
        Reply(body=f"<html><title>{title}</title></html>".encode("latin-1"), content_type=None),
    )
    site.add(
        "/mislabelled",
        Reply(
            body=f"<title>{title}</title>".encode("latin-1"),
            content_type="text/html; charset=utf-8",
        ),
    )
    site.add(
        "/invalid",
        Reply(
            body=b"<title>bad \xff\xfe\xc3 bytes</title>", content_type="text/html; charset=utf-8"
        ),
    )
    site.add(
        "/unknown",
        Reply(body=b"<title>label</title>", content_type="text/html; charset=no-such-charset"),
    )
    urls = [
        site.url(p)
        for p in ["/latin1", "/utf16", "/meta", "/sniffed", "/mislabelled", "/invalid", "/unknown"]
    ]
    pages, _ = await run_crawl(urls, processes=processes)
    assert pages[site.url("/latin1")].title == title
    assert pages[site.url("/utf16")].title == title
    assert pages[site.url("/meta")].title == "Привет"
    assert pages[site.url("/sniffed")].title == title
    assert pages[site.url("/mislabelled")].title == "Caf\ufffd \ufffdn\ufffdcode"
    assert pages[site.url("/invalid")].title is not None
    assert "\ufffd" in pages[site.url("/invalid")].title  # type: ignore[operator]
    assert pages[site.url("/unknown")].title == "label"
    assert all(p.ok for p in pages.values())


async def test_malformed_html_still_yields_title_and_links(site: Site) -> None:
    site.add(
        "/",
        Reply(
            body=b"<html><title>Broken <b>page</title><p><a href=/x>unclosed <a "
            b"href='/y'<div></table></html"
        ),
    )
    pages, _ = await run_crawl([site.url("/")], links=True)
    page = pages[site.url("/")]
    assert page.title == "Broken <b>page" or page.title == "Broken page"
    assert site.url("/x") in page.links


async def test_binary_content_gets_a_record_without_links(site: Site) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    site.add("/img", Reply(body=png, content_type="image/png"))
    site.add("/untyped", Reply(body=png, content_type=None))
    pages, _ = await run_crawl([site.url("/img"), site.url("/untyped")], links=True, depth=2)
    for path in ["/img", "/untyped"]:
        page = pages[site.url(path)]
        assert page.ok and page.title is None and page.links == [] and page.bytes == len(png)
        assert page.content == png


# ----------------------------------------------------------------------------------- hooks


async def test_extract_hooks_sync_and_async_and_failing(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", ["/boom"], body="<h1>Hello</h1>")))
    site.add("/boom", Reply(body=html_page("Boom")))

    async def extract(page: Page) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        if page.url.endswith("/boom"):
            raise KeyError("no price")
        assert page.html is not None
        node = page.html.css_first("h1")
        return {"h1": node.text() if node else None, "len": len(page.text or "")}

    pages, stats = await run_crawl([site.url("/")], depth=1, extract=extract)
    assert pages[site.url("/")].data == {
        "h1": "Hello",
        "len": len(html_page("Home", ["/boom"], body="<h1>Hello</h1>")),
    }
    boom = pages[site.url("/boom")]
    assert boom.error is not None and boom.error.kind == "extract"
    assert "KeyError" in boom.error.message and boom.status == 200 and not boom.ok
    assert stats.errors == {"extract": 1}

    pages, _ = await run_crawl([site.url("/")], extract=lambda page: {"title": page.title})
    assert pages[site.url("/")].data == {"title": "Home"}


async def test_follow_hook_chooses_links(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", ["/a", "/b"])))
    site.add("/a", Reply(body=html_page("A")))
    site.add("/b", Reply(body=html_page("B")))
    pages, _ = await run_crawl(
        [site.url("/")], depth=1, follow=lambda page: [u for u in page.links if u.endswith("b")]
    )
    assert set(pages) == {site.url("/"), site.url("/b")}


async def test_extract_hook_inherits_the_page_deadline(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home")))

    async def slow(page: Page) -> dict[str, Any]:
        await trio.sleep(30)
        return {}

    pages, _ = await run_crawl([site.url("/")], extract=slow, timeout=0.5)
    page = pages[site.url("/")]
    assert page.error is not None and page.error.kind == "timeout"
    assert page.elapsed < 2 and site.hits["/"] == 1


# -------------------------------------------------------------------------------- deadlines


@both
async def test_crawl_deadline_stops_dispatch_and_gives_grace(site: Site, processes: int) -> None:
    # /quick outlasts the deadline but ends within the grace; /stuck outlasts both. The
    # deadline leaves a loaded machine ample time to dispatch both (robots.txt off: its fetch
    # would hold the host to one request until it is known), so the crawl ends at
    # deadline + grace, when /stuck is cancelled.
    async def slow(request: Request) -> Reply:
        await trio.sleep(2.0 if request.path == "/quick" else 60)
        return Reply(body=html_page(request.path))

    site.fallback = None
    for path in ["/quick", "/stuck"]:
        site.add(path, slow)
    site.add("/", Reply(body=html_page("Home", [f"/more{i}" for i in range(50)])))
    start = trio.current_time()
    pages, stats = await run_crawl(
        [site.url("/quick"), site.url("/stuck")],
        deadline=1.0,
        grace=1.5,
        timeout=100,
        workers=2,
        robots=False,
        processes=processes,
    )
    took = trio.current_time() - start
    assert 2.5 - 0.1 < took < 5
    assert pages[site.url("/quick")].ok
    stuck = pages[site.url("/stuck")]
    assert stuck.error is not None and stuck.error.kind == "cancelled"
    assert stats.stop_reason == "deadline"


async def test_requests_go_through_the_proxy(site: Site) -> None:
    # The test server doubles as a forward proxy: it receives absolute-form request targets.
    site.add("http://proxied.test/", Reply(body=html_page("Via proxy", ["/next"])))
    site.add("http://proxied.test/next", Reply(body=html_page("Next")))
    pages, _ = await run_crawl(["http://proxied.test/"], proxy=site.base, depth=1)
    assert [p.title for p in pages.values()] == ["Via proxy", "Next"]
    assert site.paths() == ["http://proxied.test/", "http://proxied.test/next"]


@both
async def test_custom_headers_and_user_agent_are_sent(site: Site, processes: int) -> None:
    site.add("/", Reply(body=html_page("Home")))
    await run_crawl(
        [site.url("/")], headers={"X-Token": "abc"}, user_agent="probe/1.0", processes=processes
    )
    [request] = site.log
    assert request.headers["x-token"] == "abc" and request.headers["user-agent"] == "probe/1.0"


async def test_cookies_set_by_the_server_are_sent_back(site: Site) -> None:
    site.add(
        "/", Reply(body=html_page("Home", ["/next"]), headers={"Set-Cookie": "sid=42; Path=/"})
    )
    site.add("/next", Reply(body=html_page("Next")))
    await run_crawl([site.url("/")], depth=1, workers=1)
    first, second = site.log
    assert "cookie" not in first.headers and second.headers["cookie"] == "sid=42"


async def test_authorization_does_not_follow_a_redirect_to_another_origin(site: Site) -> None:
    other = Site("127.0.0.3")
    async with trio.open_nursery() as nursery:
        await nursery.start(other.serve)
        other.add("/landing", Reply(body=html_page("Landing")))
        site.add("/same", Reply(302, headers={"Location": "/secret"}))
        site.add("/secret", Reply(body=html_page("Secret")))
        site.add("/away", Reply(302, headers={"Location": other.url("/landing")}))
        pages, _ = await run_crawl(
            [site.url("/same"), site.url("/away")],
            headers={"Authorization": "Bearer t"},
            allow_private=True,  # 127.0.0.3 is not a seed's host
        )
        assert all(p.ok for p in pages.values())
        assert {r.path: r.headers.get("authorization") for r in site.log} == {
            "/same": "Bearer t",
            "/secret": "Bearer t",
            "/away": "Bearer t",
        }
        assert "authorization" not in other.log[0].headers
        nursery.cancel_scope.cancel()


async def test_retries_do_not_count_against_max_pages(site: Site) -> None:
    answers = iter([Reply(503), Reply(503)])
    site.add("/", Reply(body=html_page("Home", [f"/p{i}" for i in range(10)])))
    for i in range(10):
        site.add(f"/p{i}", Reply(body=html_page(f"P{i}")))
    site.add("/p0", lambda request: next(answers, Reply(body=html_page("P0"))))
    pages, stats = await run_crawl([site.url("/")], depth=1, max_pages=5, workers=1, backoff=0.01)
    assert len(pages) == 5 and stats.retries == 2 and all(p.ok for p in pages.values())
