"""TOML spiders: examples/quotes_spider.toml against the loopback quotes site's ground truth
(through the CLI, in memory and with worker processes), the pieces of the format one by one,
and the loader's validation: every bad file is one line naming the key and its line."""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.quotes_site import QuotesSite
from trio_scrape import CrawlConfig, Page, Request, scrape
from trio_scrape.scraper.toml_spider import (
    TomlSpiderError,
    line_of,
    load_toml_spider,
    toml_spider,
)

from .test_cli import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quotes_spider.toml"


@pytest.fixture
async def quotes(nursery: trio.Nursery) -> AsyncIterator[QuotesSite]:
    site = QuotesSite(quotes=40, seed=11)
    await nursery.start(site.serve)
    yield site


@pytest.fixture
def quotes_in_thread() -> Any:
    from examples.quotes_site import serve_in_thread

    with serve_in_thread(quotes=40, seed=11) as site:
        yield site


def _key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def _items(pages: list[Page]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page.items]


def _api_gets(site: QuotesSite) -> int:
    return len([r for r in site.requests("GET") if r.path.startswith("/api/quotes")])


def expected_items(site: QuotesSite) -> list[dict[str, Any]]:
    """Everything examples/quotes_spider.toml must emit for ``site``, once each."""
    expected: list[dict[str, Any]] = []
    for quote in site.quotes():
        fields = {"text": quote.text, "author": quote.author, "tags": list(quote.tags)}
        expected.append({"type": "quote", **fields})
        expected.append({"type": "api_quote", **fields})
        author = {k: v for k, v in site.author(quote.author).item().items() if k != "slug"}
        expected.append({"type": "author", "quote": quote.text, **author})
    for author_ in site.authors():
        for tag in site.author_tags(author_.name):
            for found in site.search(author_.name, tag):
                expected.append(
                    {"type": "search", "author": author_.name, "tag": tag, "text": found.text}
                )
    return expected


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_the_example_toml_spider_gets_the_whole_data_set(
    quotes_in_thread: QuotesSite, tmp_path: Path, processes: str
) -> None:
    result = await cli(
        "crawl",
        str(EXAMPLE),
        quotes_in_thread.base + "/",
        "-o",
        "items.jsonl",
        "--records",
        "pages.jsonl",
        "--processes",
        processes,
        "-q",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert Counter(map(_key, items)) == Counter(map(_key, expected_items(quotes_in_thread)))
    records = [json.loads(line) for line in (tmp_path / "pages.jsonl").read_text().splitlines()]
    assert all(r["error"] is None for r in records)
    labels = {r["label"] for r in records}
    assert labels == {None, "author", "api", "search", "search_tags", "search_results"}
    # The search form was posted back step by step, with its view state.
    posts = quotes_in_thread.requests("POST", "/search")
    assert posts and all("__VIEWSTATE" in (request.form or {}) for request in posts)
    # Every API page once, and no page past the last.
    pages = len(quotes_in_thread.api_pages())
    assert _api_gets(quotes_in_thread) == pages


async def test_tables_from_python_run_in_a_trio_program(quotes: QuotesSite) -> None:
    """The same tables as a dict: fields by regex, absolute URLs, defaults, lists; page
    numbers without has_next (the next page while a page has items), capped by max."""
    spider = toml_spider(
        {
            "routes": {
                "api": {
                    "items": {
                        "each": "jmes:quotes",
                        "fields": {
                            "first_word": {"jmes": "text", "re": r"^(\w+)"},
                            "slug": "jmes:author.slug",
                            "missing": {"jmes": "nope", "default": "-"},
                        },
                    },
                    "pagination": {"pages": {"param": "page", "max": 3}},
                },
                "listing": {
                    "match": {"re": r"/page/\d+/$|:\d+/$"},
                    "items": {
                        "each": "div.quote",
                        "fields": {
                            "about": "a[href*='/author/']::abs(href)",
                            "about_url": "a[href*='/author/']::url(href)",
                            "raw": "a[href*='/author/']::attr(href)",
                            "tags": {"css": "a.tag", "many": True},
                            "nothing": {"css": "a.nothing", "many": True},
                        },
                    },
                },
            }
        }
    )
    start: list[str | Request] = [
        Request(quotes.base + "/api/quotes?page=1", label="api"),
        quotes.base + "/",
    ]
    pages = await scrape(start, CrawlConfig(router=spider.router, depth=100))
    assert all(p.error is None for p in pages)
    items = _items(pages)
    api = [i for i in items if "slug" in i]
    assert [i["slug"] for i in api] == [q.author_slug for q in quotes.quotes()[:30]]
    assert [i["first_word"] for i in api] == [q.text.split()[0] for q in quotes.quotes()[:30]]
    assert {i["missing"] for i in api} == {"-"}
    assert _api_gets(quotes) == 3  # max = 3
    listing = [i for i in items if "about" in i]
    first_page = [q for q in quotes.quotes() if q.page == 1]
    assert [i["about"] for i in listing] == [quotes.base + q.author_url for q in first_page]
    assert [i["about_url"] for i in listing] == [i["about"] for i in listing]
    assert [i["raw"] for i in listing] == [q.author_url for q in first_page]
    assert [i["tags"] for i in listing] == [list(q.tags) for q in first_page]
    assert all(i["nothing"] == [] for i in listing)


async def test_pages_stop_when_a_page_has_no_items(quotes: QuotesSite) -> None:
    spider = toml_spider(
        """
        [[start]]
        url = "BASE/api/quotes?page=2"
        label = "api"

        [routes.api]
        items = { each = "jmes:quotes", fields = { text = "jmes:text" } }
        pagination = { pages = { param = "page" } }
        """.replace("BASE", quotes.base)
    )
    pages = await scrape(list(spider.start), CrawlConfig(router=spider.router, depth=100))
    # Pages 2..last have quotes, the one after the last has none: the end.
    assert sorted(p.url.rpartition("=")[2] for p in pages) == [
        str(n) for n in range(2, len(quotes.api_pages()) + 2)
    ]
    assert [i["text"] for i in _items(pages)] == [q.text for q in quotes.quotes()[10:]]


async def test_a_start_form_logs_in_and_the_next_link_is_capped(quotes: QuotesSite) -> None:
    spider = toml_spider(
        f"""
        [[start]]
        form = {{ url = "{quotes.base}/login", selector = "form", values = {{ username = "ada", password = "secret" }} }}
        label = "home"
        data = {{ who = "ada" }}

        [routes.home]
        merge_data = true
        items = {{ fields = {{ logout = "a[href='/logout']::attr(href)", url = {{ css = "h1 a::abs(href)" }} }} }}
        pagination = {{ next = "li.next a", max = 3 }}
        """  # noqa: E501
    )
    pages = await scrape(list(spider.start), CrawlConfig(router=spider.router, depth=100))
    home = [p for p in pages if p.label == "home"]
    assert home[0].method == "POST" and home[0].final_url == quotes.base + "/"
    assert home[0].items == [{"who": "ada", "logout": "/logout", "url": quotes.base + "/"}]
    # The first page and two more by the next link: max = 3 pages in all.
    assert len(home) == 3 and quotes.count("GET", "/page/3/") == 1
    assert quotes.count("GET", "/page/4/") == 0


# ---------------------------------------------------------------------------- validation

GOOD_ROUTE = '[routes.a]\nitems = { fields = { t = "h1" } }\n'


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[routes.a]\nitems = { fields = { t = "h1[" } }\n', 2, "bad CSS selector 'h1['"),
        (
            '[routes.a]\n\n[[routes.a.items]]\neach = "jmes:quotes["\nfields = { t = "jmes:x" }\n',
            4,
            "routes.a.items[0].each: bad JMESPath expression",
        ),
        (
            GOOD_ROUTE + '\n[[routes.a.follow]]\ncss = "a"\nlabel = "nowhere"\n',
            6,
            "routes.a.follow[0].label: no route for label 'nowhere'",
        ),
        (GOOD_ROUTE + "colour = 3\n", 3, "routes.a.colour: unknown key"),
        ("sart = []\n" + GOOD_ROUTE, 1, "sart: unknown key"),
        (
            GOOD_ROUTE + "merge_data = 'yes'\n",
            3,
            "routes.a.merge_data: expected true or false, not a string",
        ),
        (
            GOOD_ROUTE + "[routes.b]\nmatch = { re = '(' }\n" + 'items = { fields = { u = "h1" } }',
            4,
            "routes.b.match.re: bad regular expression",
        ),
        (
            '[routes.a]\n[[routes.a.items]]\nfields = { t = "h1" }\n'
            '[[routes.a.items]]\nfields.t = "h2"\nfields.u = { css = "p", many = 2 }\n',
            6,
            "routes.a.items[1].fields.u.many: expected true or false, not an integer",
        ),
        (
            '[[routes.a.items]]\nfields.t = "h1"\n[[routes.a.items.follow]]\n'
            'url = "{item.nope}"\nlabel = "a"\n',
            4,
            "the item has no field 'nope'",
        ),
        ('start = ["not a url"]\n' + GOOD_ROUTE, 1, "start[0]: "),
        ("[routes]\n", 1, "a spider needs at least one route"),
        ('[routes.a]\nitems = { fields = { t = "h1" } \n', 2, "not valid TOML"),
    ],
)
def test_a_bad_spider_is_one_line_naming_the_key_and_its_line(
    text: str, line: int, words: str
) -> None:
    with pytest.raises(TomlSpiderError) as raised:
        toml_spider(text)
    message = str(raised.value)
    assert "\n" not in message and words in message, message
    if "not valid TOML" not in words:
        assert raised.value.line == line and message.startswith(f"line {line}: "), message


async def test_the_crawl_command_refuses_a_bad_spider_before_fetching(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    spider = tmp_path / "bad.toml"
    spider.write_text(GOOD_ROUTE + '\n[[routes.a.follow]]\ncss = "a"\nlabel = "nowhere"\n')
    result = await cli("crawl", str(spider), quotes_in_thread.base + "/", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert "bad.toml" in line and "Traceback" not in line
    assert ": line 6: routes.a.follow[0].label: no route for label 'nowhere'" in line, line
    assert quotes_in_thread.count() == 0  # nothing was fetched


def test_the_example_loads_and_names_its_routes() -> None:
    spider = load_toml_spider(EXAMPLE)
    assert spider.options == {"workers": 8} and spider.start == ()
    assert spider.router.labels == {
        "listing",
        "author",
        "api",
        "search",
        "search_tags",
        "search_results",
    }
    assert spider.router.reference() is not None


def test_line_of_finds_keys_in_tables_arrays_and_inline_tables() -> None:
    text = (
        "start = []\n"  # 1
        "[routes.a]\n"  # 2
        "match = '*'\n"  # 3
        "[[routes.a.items]]\n"  # 4
        "fields = { t = 'h1' }\n"  # 5
        "[[routes.a.items]]\n"  # 6
        "each = 'p'\n"  # 7
        "[routes.a.items.fields]\n"  # 8
        "u = { css = 'b', many = true }\n"  # 9
        "[routes.'b.c']\n"  # 10
        "merge_data = true\n"  # 11
    )
    assert line_of(text, ("start",)) == 1
    assert line_of(text, ("routes", "a", "match")) == 3
    assert line_of(text, ("routes", "a", "items", 0, "fields", "t")) == 5
    assert line_of(text, ("routes", "a", "items", 1, "each")) == 7
    assert line_of(text, ("routes", "a", "items", 1, "fields", "u", "many")) == 9
    assert line_of(text, ("routes", "b.c", "merge_data")) == 11


# --------------------------------------------------------------------- hostile spiders

_KEYS = [
    "start",
    "options",
    "routes",
    "a",
    "b",
    "match",
    "items",
    "each",
    "fields",
    "follow",
    "submit",
    "pagination",
    "merge_data",
    "css",
    "jmes",
    "re",
    "many",
    "default",
    "value",
    "data",
    "label",
    "url",
    "next",
    "pages",
    "param",
    "max",
    "has_next",
    "form",
    "values",
    "selector",
    "method",
    "body",
    "headers",
    "glob",
    "normalise",
    "clicked",
    "start",
]
_SCALARS = st.one_of(
    st.sampled_from(
        [
            "h1",
            "a::abs(href)",
            "a::attr(x)",
            "jmes:quotes",
            "jmes:[",
            "{item.t}",
            "{value}",
            "{data.x}",
            "{",
            "div[",
            "(",
            "*",
            "http://127.0.0.1:9/",
            "a",
            "b",
            "",
        ]
    ),
    st.text(max_size=8),
    st.integers(-3, 3),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=20,
)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)  # strings (JSON escapes are TOML's), integers, booleans


def _must_be_one_line_or_compile(text: str) -> None:
    try:
        toml_spider(text)
    except TomlSpiderError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4))
def test_hostile_tables_are_one_line_never_a_traceback(tables: dict[str, Any]) -> None:
    text = "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in tables.items())
    _must_be_one_line_or_compile(text)
    try:
        toml_spider(tables)  # the same tables from Python
    except TomlSpiderError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mangled_example_is_one_line_never_a_traceback(data: st.DataObject) -> None:
    text = EXAMPLE.read_text()
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 12))
        insert = data.draw(st.text(alphabet=string.printable + "{}[]=\"'", max_size=6))
        text = text[:at] + insert + text[at + cut :]
    _must_be_one_line_or_compile(text)


def test_the_documented_spiders_compile() -> None:
    import re

    import trio_scrape.scraper.toml_spider as module

    docs = (EXAMPLE.parent.parent / "docs" / "scraping.md").read_text()
    [block] = re.findall(r"```toml\n(# quotes.toml.*?)```", docs, re.S)
    assert toml_spider(block).router.labels == {"listing", "author"}
    assert module.__doc__ is not None
    text = module.__doc__.split("::\n", 1)[1].split("\nEverything")[0]
    text = "\n".join(line[4:] for line in text.splitlines())
    assert toml_spider(text).router.labels == {"listing", "author"}


_FIELDS_HTML = """<html><body><div class="q"><span class="t">  a \n b </span>
<a class="tag" href="/x"> one </a><a class="tag" href=" /y ">two</a><a class="tag">three</a>
<input class="flag" disabled></div><div class="q"><span class="t">second</span></div>
</body></html>"""


@pytest.mark.parametrize(
    "spec",
    [
        "span.t",
        "span.missing",
        {"css": "span.missing", "default": "none"},
        {"css": "span.t", "normalise": False},
        {"css": "span.missing", "normalise": False, "default": 0},
        {"css": "a.tag", "many": True},
        {"css": "a.missing", "many": True},
        {"css": "a.missing", "many": True, "default": ["d"]},
        {"css": "a.tag", "many": True, "normalise": False},
        "a.tag::attr(href)",
        "input.flag::attr(disabled)",
        {"css": "a.tag::attr(href)", "normalise": False},
        {"css": "a.tag::attr(href)", "many": True},
        {"css": "a.tag::attr(href)", "many": True, "normalise": False},
        {"css": "a.missing::attr(href)", "default": "d"},
        {"value": "  spaced   constant "},
        {"value": "  kept ", "normalise": False},
        {"value": 3, "many": True},
        {"css": "span.t", "re": "(\\w)"},
        "a.tag::abs(href)",
    ],
)
def test_a_fields_fast_path_gives_what_its_general_path_gives(spec: Any) -> None:
    from selectolax.lexbor import LexborHTMLParser

    from trio_scrape import Context
    from trio_scrape.model.urls import LinkResolver
    from trio_scrape.scraper.toml_spider import Trace, _value

    url = "http://example.org/q/"
    page = Page(url=url, status=200, content_type="text/html", encoding="utf-8")
    page.html = LexborHTMLParser(_FIELDS_HTML)
    ctx = Context(page, Request(url), base=url, resolver=LinkResolver())
    value = _value(spec, ("routes", "r", "items", 0, "fields", "f"))
    assert (value.fast is None) == (
        (isinstance(spec, dict) and "re" in spec) or "::abs" in str(spec)
    )
    scopes = [None, *page.html.css("div.q")]
    for scope in scopes:
        assert value.take(ctx, scope, None) == value.take(ctx, scope, Trace())


@pytest.mark.parametrize(
    "spec",
    [
        "jmes:a.b",
        "jmes:missing",
        {"jmes": "missing", "default": "d"},
        {"jmes": "list", "many": True},
        {"jmes": "a.b", "many": True},
        {"jmes": "missing", "many": True},
        {"jmes": "missing", "many": True, "default": [0]},
        {"jmes": "text", "normalise": False},
        "jmes:text",
    ],
)
def test_a_json_fields_fast_path_gives_what_its_general_path_gives(spec: Any) -> None:
    from trio_scrape import Context
    from trio_scrape.model.urls import LinkResolver
    from trio_scrape.scraper.toml_spider import Trace, _value

    url = "http://example.org/api"
    body = {"a": {"b": " x  y "}, "list": [1, None, " s  t ", {"k": 1}], "text": "  t  u "}
    page = Page(url=url, status=200, content_type="application/json", encoding="utf-8")
    page.content = json.dumps(body).encode()
    ctx = Context(page, Request(url), base=url, resolver=LinkResolver())
    value = _value(spec, ("routes", "r", "items", 0, "fields", "f"))
    assert value.fast is not None
    for scope in (None, body):
        assert value.take(ctx, scope, None) == value.take(ctx, scope, Trace())


@pytest.mark.parametrize("cap", [None, 5])
def test_the_next_link_is_the_first_that_is_an_http_url(cap: int | None) -> None:
    from selectolax.lexbor import LexborHTMLParser

    from trio_scrape import Context
    from trio_scrape.model.urls import LinkResolver

    url = "http://example.org/list/1"
    html = (
        '<ul><li class="next"><a href="javascript:void(0)">js</a></li>'
        '<li class="next"><a href=" 2?x=1 ">2</a></li><li class="next"><a href="3">3</a></li>'
        "</ul>"
    )
    page = Page(url=url, status=200, content_type="text/html", encoding="utf-8")
    page.html = LexborHTMLParser(html)
    ctx = Context(page, Request(url), base=url, resolver=LinkResolver())
    cap_text = "" if cap is None else f", max = {cap}"
    spider = toml_spider(
        f'[routes.a]\nmatch = "*"\npagination = {{ next = "li.next a"{cap_text} }}\n'
    )
    route = spider.router.route_for(None, url)
    assert route is not None
    route.handle(ctx, None)
    [request] = ctx.requests
    assert request.url == "http://example.org/list/2?x=1"
    assert (request.data or {}) == ({} if cap is None else {"_page": 2})


@pytest.mark.parametrize("key", ["scroll = true", "capture = '/api/'"])
async def test_a_route_that_needs_the_browser_is_refused_without_render(
    tmp_path: Path, key: str
) -> None:
    (tmp_path / "spider.toml").write_text(
        'start = ["http://127.0.0.1:9/scroll"]\n\n'
        f'[routes.feed]\nmatch = "*/scroll"\n{key}\n\n'
        '[[routes.feed.items]]\nfields = { text = "p" }\n'
    )
    result = await cli("crawl", "spider.toml", "-o", "items.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "trio-scrape: error: SPIDER 'spider.toml': routes.feed: `scroll` and `capture` need "
        "the browser: give --render (or render = true in [options])"
    ]
    assert not (tmp_path / "items.jsonl").exists()
