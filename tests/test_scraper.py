"""The scraper against a real site: examples/quotes_site.py served on loopback, scraped by
examples/quotes_spider.py (and small routers of the tests' own), its items checked against the
site's ground truth: every item once, none extra."""

from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from examples import quotes_spider
from examples.quotes_site import QuotesSite
from trio_scrape import Context, CrawlConfig, Page, Request, Router, Selector, scrape

from .test_cli import cli


@pytest.fixture
async def quotes(nursery: trio.Nursery) -> AsyncIterator[QuotesSite]:
    site = QuotesSite(quotes=40, seed=11)
    await nursery.start(site.serve)
    yield site


def _items(pages: list[Page]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page.items]


def _key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def expected_items(site: QuotesSite) -> list[dict[str, Any]]:
    """Everything examples/quotes_spider.py must emit for ``site``, once each."""
    expected: list[dict[str, Any]] = []
    for quote in site.quotes():
        fields = {"text": quote.text, "author": quote.author, "tags": list(quote.tags)}
        expected.append({"type": "quote", **fields})
        expected.append({"type": "api_quote", **fields})
    for author in site.authors():
        expected.append(
            {"type": "author", **{k: v for k, v in author.item().items() if k != "slug"}}
        )
    for author in site.authors():
        for tag in site.author_tags(author.name):
            for quote in site.search(author.name, tag):
                expected.append(
                    {"type": "search", "author": author.name, "tag": tag, "text": quote.text}
                )
    return expected


@pytest.mark.parametrize("processes", [1, 2])
async def test_the_example_spider_gets_the_whole_data_set(
    quotes: QuotesSite, processes: int
) -> None:
    config = CrawlConfig(router=quotes_spider.router, depth=1000, processes=processes)
    with trio.fail_after(60):
        pages = await scrape([quotes.base + "/"], config)
    errors = [(p.url, p.error) for p in pages if p.error is not None]
    assert not errors
    items = _items(pages)
    assert Counter(map(_key, items)) == Counter(map(_key, expected_items(quotes)))
    # Each author's page once, though many quotes link it; every page once.
    for author in quotes.authors():
        assert quotes.count("GET", f"/author/{author.slug}/") == 1
    gets = Counter(p.url for p in pages if p.method == "GET")
    assert gets and set(gets.values()) == {1}
    searches = len(quotes.authors()) + sum(
        len(quotes.author_tags(a.name)) for a in quotes.authors()
    )
    assert len([p for p in pages if p.method == "POST"]) == searches
    # The search form was posted back step by step, with its view state.
    posts = quotes.requests("POST", "/search")
    assert posts and all("__VIEWSTATE" in (request.form or {}) for request in posts)


async def test_a_list_to_detail_join_keeps_every_item(quotes: QuotesSite) -> None:
    """A list page's fields travel to the detail page in the request's data: every quote is
    joined to its author, even where several quotes link the same author (the data makes
    each request its own)."""
    router = Router()

    @router.default
    def listing(ctx: Context) -> Any:
        for quote in ctx.css("div.quote"):
            about = quote.css_first("a[href*='/author/']")
            assert about is not None
            yield Request(
                ctx.urljoin(about.attributes["href"] or ""),
                label="author",
                data={"text": ctx.text_of(quote, "span.text")},
            )
        ctx.enqueue_links("li.next a")

    @router.handler("author")
    def author(ctx: Context) -> dict[str, Any]:
        return {"text": ctx.data["text"], "born": ctx.text("span.author-born-date")}

    pages = await scrape([quotes.base + "/"], CrawlConfig(router=router, depth=10))
    joined = {item["text"]: item["born"] for item in _items(pages)}
    assert joined == {q.text: quotes.author(q.author).born_date for q in quotes.quotes()}


async def test_a_failing_handler_is_an_extract_error_and_the_crawl_goes_on(
    quotes: QuotesSite,
) -> None:
    router = Router()

    @router.default
    def listing(ctx: Context) -> Any:
        yield {"page": ctx.page.url}
        ctx.enqueue_links("li.next a")
        if "/page/2/" in ctx.page.url:
            raise RuntimeError("boom")
        if "/page/3/" in ctx.page.url:
            yield {"when": {1, 2}}  # not JSON: refused, counted, and the handler goes on
            yield {"after": "the refused item"}
        if "/page/4/" in ctx.page.url:
            ctx.enqueue("http://[bad")  # a malformed URL: the page's error names it
        if ctx.page.url == quotes.base + "/":  # a page of the site, with no handler for it
            yield Request(ctx.urljoin(quote_author), label="unknown")

    quote_author = quotes.quotes()[0].author_url
    pages = await scrape([quotes.base + "/"], CrawlConfig(router=router, depth=10))
    by_url = {p.url.removeprefix(quotes.base): p for p in pages}
    assert by_url["/"].ok and by_url["/"].items == [{"page": quotes.base + "/"}]
    two, three, four = by_url["/page/2/"], by_url["/page/3/"], by_url["/page/4/"]
    assert two.error is not None and two.error.kind == "extract" and "boom" in two.error.message
    assert two.items == [{"page": quotes.base + "/page/2/"}]  # emitted before it raised
    assert three.ok and three.data["invalid_items"] == 1
    assert "field 'when'" in three.data["item_errors"][0]
    assert three.items == [{"page": quotes.base + "/page/3/"}, {"after": "the refused item"}]
    assert four.error is not None and "url" in four.error.message
    # The crawl went on past each: pages 2 and 3 enqueued the next page.
    assert quotes.listing_pages() == 4 and len(pages) == 5
    unknown = by_url[quote_author]
    assert unknown.error is not None and "no handler for label 'unknown'" in unknown.error.message


async def test_start_requests_with_a_method_a_body_and_a_label(quotes: QuotesSite) -> None:
    router = Router()

    @router.handler("api")
    def api(ctx: Context) -> Any:
        answer = ctx.json()
        yield from ({"text": q["text"]} for q in answer["quotes"])
        if answer["has_next"]:
            yield Request(ctx.urljoin(f"/api/quotes?page={answer['page'] + 1}"), label="api")

    start = Request(quotes.base + "/api/quotes?page=1", label="api")
    pages = await scrape([start], CrawlConfig(router=router, depth=100))
    assert [i["text"] for i in _items(pages)] == [q.text for q in quotes.quotes()]
    assert {p.label for p in pages} == {"api"}
    assert all(p.method == "GET" for p in pages)


async def test_a_post_redirected_by_303_continues_as_a_get(quotes: QuotesSite) -> None:
    """Logging in posts the form (CSRF token included); the site answers 302 to / and the
    crawl follows with a GET, logged in (the cookie jar keeps the session)."""
    router = Router()

    @router.handler("login")
    def login(ctx: Context) -> Any:
        yield ctx.form(values={"username": "ada", "password": "secret"}, label="home")

    @router.handler("home")
    def home(ctx: Context) -> Any:
        yield {"logged_in": ctx.css_first("a[href='/logout']") is not None, "url": ctx.page.url}

    pages = await scrape(
        [Request(quotes.base + "/login", label="login")], CrawlConfig(router=router, depth=2)
    )
    [home_page] = [p for p in pages if p.label == "home"]
    assert home_page.method == "POST" and home_page.final_url == quotes.base + "/"
    assert home_page.items == [{"logged_in": True, "url": quotes.base + "/login"}]
    assert quotes.count("GET", "/") == 1


async def test_the_crawl_command_writes_items_and_records(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    spider = Path(quotes_spider.__file__)
    result = await cli(
        "crawl",
        str(spider),
        quotes_in_thread.base + "/",
        "-o",
        "items.jsonl",
        "--records",
        "pages.jsonl",
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert Counter(map(_key, items)) == Counter(map(_key, expected_items(quotes_in_thread)))
    records = [json.loads(line) for line in (tmp_path / "pages.jsonl").read_text().splitlines()]
    assert {r["label"] for r in records} == {None, "author", "api", "search"}
    assert all(r["error"] is None for r in records)


@pytest.fixture
def quotes_in_thread() -> Any:
    from examples.quotes_site import serve_in_thread

    with serve_in_thread(quotes=40, seed=11) as site:
        yield site


@pytest.mark.parametrize(
    ("spider", "message"),
    [
        ("router = 1\n", "no `router`"),
        ("import trio_scrape\nrouter = trio_scrape.Router()\nstart = 3\n", "`start` must be"),
        ("x = (\n", "line 1"),
        ("import trio_scrape\n\nraise ValueError('nope')\n", "line 3: importing it failed"),
    ],
)
async def test_a_bad_spider_file_is_one_line_and_exit_2(
    tmp_path: Path, spider: str, message: str
) -> None:
    (tmp_path / "bad_spider.py").write_text(spider)
    result = await cli("crawl", "bad_spider.py", "http://127.0.0.1:9/", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert message in line and "Traceback" not in line


async def test_jmespath_selectors_take_fields_from_json_answers(quotes: QuotesSite) -> None:
    selectors = (
        Selector.parse("texts=jmes:quotes[].text", many=True),
        Selector.parse("next=jmes:has_next"),
        Selector.parse("title=h1"),  # a CSS selector on a JSON answer: nothing
    )
    [page] = await scrape([quotes.base + "/api/quotes?page=1"], CrawlConfig(selectors=selectors))
    first = quotes.api_pages()[0]
    assert page.data["texts"] == [q["text"] for q in first["quotes"]]
    assert page.data["next"] is first["has_next"] and page.data["title"] is None
    with pytest.raises(ValueError, match="JMESPath"):
        Selector.parse("bad=jmes:quotes[")


async def test_the_http_cache_never_answers_a_post(quotes: QuotesSite, tmp_path: Path) -> None:
    """With --cache, a GET is served from the cache the second time; a POST always goes to
    the server."""
    router = Router()
    router.add(None, lambda ctx: None)
    post = Request.form(quotes.base + "/login", {"username": "a", "password": "no"})
    for _ in range(2):
        starts: list[str | Request] = [quotes.base + "/", post]
        pages = await scrape(starts, CrawlConfig(router=router, cache=tmp_path / "cache"))
        assert len(pages) == 2
    assert quotes.count("POST", "/login") == 2
    assert quotes.count("GET", "/") == 1


async def test_a_failed_request_s_record_says_its_method_and_label() -> None:
    """A request that never got an answer (here, a refused connection) is recorded as the
    request it was, as a fetched page is."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    router = Router()
    router.handler("dead")(lambda ctx: None)
    start = Request(f"http://127.0.0.1:{port}/post", method="POST", body=b"a=1", label="dead")
    with trio.fail_after(30):
        pages = await scrape([start], CrawlConfig(router=router, retries=0))
    [page] = pages
    assert page.error is not None and page.error.kind == "connect"
    assert (page.method, page.label) == ("POST", "dead")


async def test_a_page_cut_off_by_the_deadline_says_it_had_begun(quotes: QuotesSite) -> None:
    router = Router()

    @router.default
    def listing(ctx: Context) -> Any:
        yield Request(ctx.urljoin("/page/2/"), label="slow")

    @router.handler("slow")
    async def slow(ctx: Context) -> None:
        await trio.sleep(60)  # cancelled by the crawl's deadline and grace

    config = CrawlConfig(router=router, depth=1, deadline=1, grace=0.2, timeout=120)
    with trio.fail_after(30):
        pages = await scrape([quotes.base + "/"], config)
    [cut] = [p for p in pages if p.url.endswith("/page/2/")]
    assert cut.error is not None and cut.error.kind == "cancelled"
    assert "during this page" in cut.error.message
    assert (cut.method, cut.label) == ("GET", "slow")
    assert cut.elapsed > 0


async def test_crawl_records_carry_the_links_with_links(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    spider = Path(quotes_spider.__file__)
    args = ["crawl", str(spider), quotes_in_thread.base + "/", "-o", "items.jsonl"]
    result = await cli(
        *args, "--records", "pages.jsonl", "--links", "--max-pages", "3", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "pages.jsonl").read_text().splitlines()]
    assert len(records) == 3
    home = next(r for r in records if r["url"] == quotes_in_thread.base + "/")
    assert quotes_in_thread.base + "/page/2/" in home["links"]


@pytest.mark.parametrize(
    ("output", "records", "where"),
    [("out.jsonl", "./out.jsonl", "'out.jsonl'"), ("-", "-", "standard output")],
)
async def test_items_and_records_to_one_file_is_refused(
    tmp_path: Path, output: str, records: str, where: str
) -> None:
    spider = Path(quotes_spider.__file__)
    result = await cli(
        "crawl",
        str(spider),
        "http://127.0.0.1:9/",
        "-o",
        output,
        "--records",
        records,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"trio-scrape: error: --records: the items go to {where} already (-o): give another file"
    ]
    assert not (tmp_path / "out.jsonl").exists()


async def test_records_are_part_of_a_resumable_scrape(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    """A state remembers where the records went: resumed without them, or to another file,
    the crawl is refused (the records would be lost, or cut from the wrong file)."""
    spider = Path(quotes_spider.__file__)
    common = ["crawl", str(spider), quotes_in_thread.base + "/", "-o", "items.jsonl"]
    common += ["--state", "st.db", "-q"]
    first = await cli(*common, "--records", "pages.jsonl", "--max-pages", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    for change, was in (
        ([], "None"),
        (["--records", "other.jsonl"], repr(str(tmp_path / "other.jsonl"))),
    ):
        result = await cli(*common, *change, "--max-pages", "2", cwd=tmp_path)
        assert result.returncode == 2
        [line] = result.stderr.decode().splitlines()
        assert f"records was {str(tmp_path / 'pages.jsonl')!r}, now {was}" in line


async def test_a_handler_s_request_out_of_scope_is_logged_once_per_host(
    quotes: QuotesSite, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router()
    elsewhere = quotes.base.replace("127.0.0.1", "localhost")  # another host: out of scope

    @router.default
    def listing(ctx: Context) -> Any:
        for n in (2, 3):
            yield Request(f"{elsewhere}/page/{n}/", label="page")

    router.handler("page")(lambda ctx: None)
    caplog.set_level(logging.DEBUG, logger="trio_scrape")
    with trio.fail_after(30):
        pages = await scrape([quotes.base + "/"], CrawlConfig(router=router, depth=1))
    assert [p.url for p in pages] == [quotes.base + "/"]
    logged = [
        r.getMessage() for r in caplog.records if "out of the crawl's scope" in r.getMessage()
    ]
    assert len(logged) == 1 and f"{elsewhere}/page/2/" in logged[0]
