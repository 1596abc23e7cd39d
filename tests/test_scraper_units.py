"""The scraper's pieces one at a time: requests and their dedup keys, items, the router and a
handler's context (the whole scraper against a real site is tests/test_scraper.py)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict

import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from trio_scrape import Context, Request, RequestError, Router
from trio_scrape.model.page import Page
from trio_scrape.model.request import MAX_BODY_BYTES, MAX_DATA_BYTES, request_key
from trio_scrape.model.urls import LinkResolver, url_key
from trio_scrape.scraper.items import ItemError, to_item

# ------------------------------------------------------------------------------ requests


def test_a_request_is_kept_as_a_browser_requests_it() -> None:
    request = Request("HTTP://Example.org:80/a b?x=1#frag")
    assert request.url == "http://example.org/a%20b?x=1"
    assert request.method == "GET" and request.key == url_key(request.url)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"url": "mailto:a@b.c"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"method": "post"}, "method"),
        ({"method": "GET /x"}, "method"),
        ({"headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
        ({"headers": {"bad name": "v"}}, "headers"),
        ({"headers": {"X-A": "caf\u00e9"}}, "headers"),  # HTTP sends header values as ASCII
        ({"headers": {"Transfer-Encoding": "chunked"}}, "headers"),  # the client's own
        ({"headers": {"Connection": "close"}}, "headers"),
        ({"body": "text"}, "body"),
        ({"body": b"x" * (MAX_BODY_BYTES + 1)}, "body"),
        ({"label": ""}, "label"),
        ({"data": {"when": object()}}, "data"),
        ({"data": {"big": "x" * MAX_DATA_BYTES}}, "data"),
        ({"data": ["not", "a", "mapping"]}, "data"),
    ],
)
def test_a_bad_request_names_its_field(fields: dict[str, Any], where: str) -> None:
    values = {"url": "http://example.org/", **fields}
    with pytest.raises(RequestError, match=f"^{where}: "):
        Request(**values)


def test_form_and_json_requests() -> None:
    form = Request.form("http://example.org/s", {"q": "a b", "page": "2"})
    assert form.method == "POST" and form.body == b"q=a+b&page=2"
    assert form.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    get = Request.form("http://example.org/s?old=1", [("q", "x")], method="GET")
    assert get.url == "http://example.org/s?q=x" and get.body is None
    api = Request.json("http://example.org/api", {"page": 1}, label="api")
    assert api.body == b'{"page":1}' and api.label == "api"
    assert api.headers == {"Content-Type": "application/json"}


def test_a_request_survives_json() -> None:
    request = Request(
        "http://example.org/p",
        method="PUT",
        headers={"X-A": "1"},
        body=b"\x00\xff raw",
        label="detail",
        data={"n": 1, "list": [1, "two"]},
        dedup_key="k",
        dont_dedup=True,
    )
    assert Request.from_json(request.to_json()) == request


_urls = st.sampled_from(
    ["http://example.org/a", "http://example.org/a?b=1&a=2", "http://example.org/a?a=2&b=1"]
)
_bodies = st.one_of(st.none(), st.binary(max_size=64))
_data = st.one_of(
    st.none(), st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3)
)


@given(_urls, st.sampled_from(["GET", "HEAD", "POST", "PUT"]), _bodies, _data)
def test_dedup_keys(url: str, method: str, body: bytes | None, data: dict[str, int] | None) -> None:
    key = Request(url, method=method, body=body, data=data).key
    plain = method in ("GET", "HEAD") and not body and not data
    # A plain GET is its canonical URL: a labelled request and a plain link are one page.
    assert (key == url_key(url)) == plain
    # The key does not depend on the query's order, or on the data's.
    shuffled = dict(reversed(list(data.items()))) if data else data
    assert request_key(url.replace("b=1&a=2", "a=2&b=1"), method, body, shuffled) == key
    # Another body or other data is another request.
    if not plain:
        assert request_key(url, method, (body or b"") + b"!", data) != key
        assert request_key(url, method, body, {**(data or {}), "other": 1}) != key


def test_dedup_key_and_dont_dedup() -> None:
    assert Request("http://example.org/a", dedup_key="mine").key == "mine"
    assert Request("http://example.org/a", dont_dedup=True).dont_dedup


# --------------------------------------------------------------------------------- items


@dataclasses.dataclass
class Quote:
    text: str
    author: str
    tags: list[str] = dataclasses.field(default_factory=list)


class Author(TypedDict):
    name: str
    born: int | None


class PydanticQuote(pydantic.BaseModel):
    text: str
    views: int = 0


class LenientQuote(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")  # its own choice: unknown fields dropped
    text: str


class MsgspecQuote(msgspec.Struct):
    text: str
    views: int = 0


def test_pydantic_and_msgspec_items() -> None:
    for model in (PydanticQuote, MsgspecQuote):
        assert to_item({"text": "t", "views": 2}, model) == {"text": "t", "views": 2}
        assert to_item(model(text="t"), model) == {"text": "t", "views": 0}
        assert to_item(model(text="t")) == {"text": "t", "views": 0}
    assert to_item({"text": "t", "views": "5"}, PydanticQuote) == {"text": "t", "views": 5}
    assert to_item({"text": "t", "other": 1}, LenientQuote) == {"text": "t"}


@pytest.mark.parametrize("model", [PydanticQuote, MsgspecQuote])
@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"views": 1}, "^field 'text': "),
        ({"text": "t", "views": "many"}, "^field 'views': "),
        ({"text": "t", "other": 1}, "field 'other': not a field of"),
    ],
)
def test_a_pydantic_or_msgspec_item_that_does_not_fit_names_its_field(
    model: type[Any], item: dict[str, Any], message: str
) -> None:
    with pytest.raises(ItemError, match=message):
        to_item(item, model)


def test_items_of_every_kind() -> None:
    assert to_item({"a": 1}) == {"a": 1}
    assert to_item(Quote("t", "a")) == {"text": "t", "author": "a", "tags": []}
    assert to_item({"name": "n", "born": None}, Author) == {"name": "n", "born": None}
    assert to_item({"text": "t", "author": "a"}, Quote) == {"text": "t", "author": "a"}


@pytest.mark.parametrize(
    ("item", "item_type", "message"),
    [
        ({"text": "t"}, Quote, "field 'author': missing"),
        ({"text": "t", "author": 3}, Quote, "field 'author': 3 is not str"),
        ({"text": "t", "author": "a", "tags": "x"}, Quote, "field 'tags'"),
        ({"text": "t", "author": "a", "extra": 1}, Quote, "field 'extra': not a field"),
        ({"name": "n", "born": "1815"}, Author, "field 'born'"),
        ({"when": {1, 2}}, None, "field 'when': a set"),
        ({"raw": b"bytes"}, None, "field 'raw': a bytes"),
        ("text", None, "an item must be"),
        (["a", "list"], None, "an item must be"),
    ],
)
def test_an_item_that_does_not_fit_names_its_field(
    item: Any, item_type: type[Any] | None, message: str
) -> None:
    with pytest.raises(ItemError, match=message):
        to_item(item, item_type)


# -------------------------------------------------------------------------------- router


def test_the_router_routes_by_label() -> None:
    router = Router()

    @router.default
    def listing(ctx: Context) -> None: ...

    @router.handler("detail", item=Quote)
    def detail(ctx: Context) -> None: ...

    route = router.route("detail")
    assert route is not None and route.handler is detail and route.item_type is Quote
    default = router.route(None)
    assert default is not None and default.handler is listing
    assert router.route("unknown") is None
    assert router.labels == {"detail"}
    with pytest.raises(ValueError, match="label 'detail' already has a handler"):
        router.add("detail", listing)
    lenient = Router(default_for_unknown=True)
    lenient.add(None, listing)
    found = lenient.route("unknown")
    assert found is not None and found.handler is listing


#: A router at module level: worker processes find it by this name.
module_router = Router()


@module_router.default
def _module_handler(ctx: Context) -> None: ...


def test_a_module_level_router_has_a_reference() -> None:
    assert module_router.reference() == f"{__name__}:module_router"
    local = Router()
    local.add(None, lambda ctx: None)
    assert local.reference() is None


# ------------------------------------------------------------------------------- context


HTML = """<html><head><base href="/docs/"><title>T</title></head><body>
<div class="quote"><span class="text"> Hello   world </span><a href="a/b?x=1">more</a></div>
<div class="quote"><span class="text">Second</span><a href="../up">up</a></div>
<a class="next" href="page/2/">next</a><a class="next" href="mailto:x@y.z">mail</a>
<form action="search" method="post"><input type="hidden" name="token" value="t1">
<input name="q" value="old"><input type="submit" name="go" value="Go"></form>
</body></html>"""


def _context(label: str | None = None, data: dict[str, Any] | None = None) -> Context:
    url = "http://example.org/site/index.html"
    page = Page(url=url, status=200, content_type="text/html", encoding="utf-8")
    page.html = LexborHTMLParser(HTML)
    page.content = HTML.encode()
    request = Request(url, label=label, data=data)
    return Context(page, request, base="http://example.org/docs/", resolver=LinkResolver())


def test_a_context_reads_and_resolves_as_the_page() -> None:
    ctx = _context(label="list", data={"n": 1})
    assert ctx.label == "list" and ctx.data == {"n": 1}
    assert ctx.texts("span.text") == ["Hello world", "Second"]
    assert ctx.text("h1", default="none") == "none"
    assert ctx.urljoin("a/b?x=1") == "http://example.org/docs/a/b?x=1"  # <base href> applies
    with pytest.raises(RequestError, match="does not resolve"):
        ctx.urljoin("mailto:x@y.z")


def test_a_context_enqueues_and_pushes() -> None:
    ctx = _context()
    assert ctx.enqueue_links("a.next", label="list", data={"from": "index"}) == 1
    ctx.enqueue("../up", label="up")
    ctx.enqueue(Request("http://other.example/", method="POST", body=b"x"))
    assert [(r.url, r.label) for r in ctx.requests] == [
        ("http://example.org/docs/page/2/", "list"),
        ("http://example.org/up", "up"),
        ("http://other.example/", None),
    ]
    assert ctx.requests[0].data == {"from": "index"}
    ctx.emit({"a": 1})
    ctx.emit("page/3/")
    assert ctx.items == [{"a": 1}] and ctx.requests[-1].url.endswith("/docs/page/3/")
    assert not ctx.push({"bad": {1}})
    assert ctx.items == [{"a": 1}]  # an item refused is not written, and says why
    assert ctx.item_errors == ["not JSON-serialisable: field 'bad': a set"]


def test_a_context_keeps_plain_gets_as_links_and_the_order_of_the_rest() -> None:
    ctx = _context()
    assert ctx.enqueue_links("a") == 3  # mailto: skipped
    ctx.enqueue("page/3/")
    requests, links = ctx.enqueued()
    assert requests == [] and links == [
        "http://example.org/docs/a/b?x=1",
        "http://example.org/up",
        "http://example.org/docs/page/2/",
        "http://example.org/docs/page/3/",
    ]
    assert [r.url for r in ctx.requests] == links and all(r.is_plain for r in ctx.requests)
    plain = list(links)
    ctx.enqueue_links("a.next", label="list")
    ctx.enqueue("../up")
    requests, links = ctx.enqueued()  # not only plain GETs: every one a request, in order
    assert links == [] and [(r.url, r.label) for r in requests] == [
        *[(url, None) for url in plain],
        ("http://example.org/docs/page/2/", "list"),
        ("http://example.org/up", None),
    ]
    assert [r.key for r in requests[:4]] == [Request(r.url).key for r in requests[:4]]


def test_a_context_encodes_each_item_once_as_it_was_emitted() -> None:
    ctx = _context()
    item: dict[str, Any] = {"n": 1, "tags": ["a"]}
    assert ctx.push(item)
    item["n"] = 2  # a handler reusing its dict: the item written is the one emitted
    assert ctx.push(item)
    assert not ctx.push({"bad": {1}})
    assert ctx.items.lines == [b'{"n":1,"tags":["a"]}', b'{"n":2,"tags":["a"]}']
    assert len(ctx.items) == 2 and ctx.item_errors == ["not JSON-serialisable: field 'bad': a set"]


def test_a_context_submits_a_form_as_a_browser() -> None:
    ctx = _context()
    request = ctx.form(values={"q": "new"}, label="results", data={"q": "new"})
    assert request.method == "POST" and request.url == "http://example.org/docs/search"
    assert request.body == b"token=t1&q=new&go=Go"
    assert request.label == "results" and request.data == {"q": "new"}


async def test_handlers_may_return_or_yield() -> None:
    router = Router()

    @router.handler("gen")
    def generator(ctx: Context) -> Any:
        yield {"n": 1}
        yield Request("http://example.org/next")

    @router.handler("async")
    async def coroutine(ctx: Context) -> Any:
        return [{"n": 2}, "relative"]

    @router.handler("agen")
    async def async_generator(ctx: Context) -> Any:
        yield {"n": 3}

    for label, items, requests in (("gen", [{"n": 1}], 1), ("async", [{"n": 2}], 1)):
        ctx = _context(label)
        route = router.route(label)
        assert route is not None
        await router.run(route, ctx)
        assert ctx.items == items and len(ctx.requests) == requests
    ctx = _context("agen")
    route = router.route("agen")
    assert route is not None
    await router.run(route, ctx)
    assert ctx.items == [{"n": 3}]


# ------------------------------------------------------------------ methods and redirects


@pytest.mark.parametrize(
    ("method", "status", "then"),
    [
        ("POST", 303, ("GET", b"")),
        ("PUT", 303, ("GET", b"")),
        ("POST", 302, ("GET", b"")),
        ("POST", 301, ("GET", b"")),
        ("PUT", 302, ("PUT", b"payload")),
        ("POST", 307, ("POST", b"payload")),
        ("POST", 308, ("POST", b"payload")),
        ("HEAD", 303, ("HEAD", b"")),
    ],
)
async def test_redirects_after_a_request_with_a_body_follow_the_fetch_standard(
    method: str, status: int, then: tuple[str, bytes]
) -> None:
    import httpx

    from trio_scrape.http.fetcher import HttpxFetcher

    seen: list[tuple[str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.content))
        if request.url.path == "/form":
            return httpx.Response(status, headers={"Location": "/done"})
        return httpx.Response(200, text="ok")

    fetcher = HttpxFetcher(
        httpx.MockTransport(answer), headers={}, max_bytes=1 << 20, max_redirects=5
    )
    body = None if method == "HEAD" else b"payload"
    response = await fetcher.fetch("http://example.org/form", method=method, body=body)
    assert response.status == 200 and response.final_url == "http://example.org/done"
    assert seen == [(method, body or b""), then]
