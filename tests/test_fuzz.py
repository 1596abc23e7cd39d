"""Fuzzing the page pipeline: whatever bytes and headers a server sends, no exception escapes
and every URL still gets its record.

Run in the suite with a few hundred examples each; for a long session, see docs/hardening.md
(Hardening): ``FUZZ_EXAMPLES=100000 python -m pytest tests/test_fuzz.py tests/test_urls.py``.
"""

from __future__ import annotations

import gzip

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_scrape import CrawlConfig, Selector, scrape
from trio_scrape.model.parse import decode_body, is_html, parse_html, parse_sitemap

from .conftest import examples

_CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from([
        "text/html", "text/html; charset=utf-8", "text/html; charset=latin-1",
        "text/html; charset=utf-16", "text/html; charset=bogus-xyz", "text/html;charset=",
        'text/html; charset="utf-8', "application/xhtml+xml", "text/plain", "application/json",
        "image/png", "application/xml", "TEXT/HTML; CHARSET=SHIFT_JIS", "text/html; charset=utf-7",
    ]),
    st.text(max_size=40),
)  # fmt: skip

_HTML_PIECES = st.sampled_from([
    b"<html>", b"<head>", b"<title>", b"</title>", b"<a href=", b'"', b"'", b">", b"</a>",
    b"<base href='", b"<meta charset=", b"utf-8", b"windows-1252", b"<!--", b"-->", b"\xff\xfe",
    b"\xef\xbb\xbf", b"\x00", b"&amp;", b"&#0;", b"&#x110000;", b"<script>", b"</script>",
    b"<svg><a href='/x'>", b"<area href=", b"javascript:", b"http://[::1", b"\xc3\x28",
    b"<table><td>", b"%zz", b"\r\n", b"\t", b" ", b"x" * 100, "é€😀".encode(),
])  # fmt: skip
_BODIES = st.one_of(
    st.binary(max_size=2000),
    st.lists(_HTML_PIECES, max_size=60).map(b"".join),
)
_SELECTORS = (
    Selector.parse("t=title"),
    Selector.parse("a=a::attr(href)", many=True),
    Selector.parse("x=div > p:nth-child(2)::text"),
)


@settings(max_examples=examples(400), deadline=None)
@given(body=_BODIES, content_type=_CONTENT_TYPES)
def test_decode_parse_and_select_never_raise(body: bytes, content_type: str | None) -> None:
    is_html(content_type, body)
    text, encoding = decode_body(body, content_type)
    assert isinstance(text, str) and isinstance(encoding, str)
    text.encode("utf-8", "surrogatepass")  # a str, whatever it holds
    parsed = parse_html(text, want_links=True)
    assert all(isinstance(href, str) for href in parsed.hrefs)
    assert parsed.title is None or isinstance(parsed.title, str)
    for selector in _SELECTORS:
        selector.extract(parsed.tree)


@settings(max_examples=examples(300), deadline=None)
@given(body=st.one_of(_BODIES, _BODIES.map(gzip.compress)))
def test_sitemap_parser_raises_only_value_error(body: bytes) -> None:
    try:
        parse_sitemap(b"<urlset>" + body, max_bytes=100_000)
        parse_sitemap(body, max_bytes=100_000)
    except ValueError:
        pass


@st.composite
def _responses(draw: st.DrawFn) -> list[tuple[int, dict[str, str], bytes]]:
    statuses = st.sampled_from([200, 200, 200, 204, 301, 404, 500, 999])
    headers = st.dictionaries(
        st.sampled_from(["content-type", "content-encoding", "location", "retry-after",
                         "set-cookie", "content-language", "refresh"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        max_size=4,
    )  # fmt: skip
    return draw(st.lists(st.tuples(statuses, headers, _BODIES), min_size=1, max_size=5))


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses=_responses())
def test_whole_pipeline_gives_every_url_a_record(
    responses: list[tuple[int, dict[str, str], bytes]],
) -> None:
    """Pages with arbitrary status, headers (bogus encodings, redirects anywhere) and bodies,
    each linking to the next: the crawl ends, with one record per URL it started."""

    def answer(request: httpx.Request) -> httpx.Response:
        digits = request.url.path.strip("/")
        index = int(digits) if digits.isascii() and digits.isdigit() else 0
        status, headers, body = responses[index % len(responses)]
        link = f'<a href="/{index + 1}">next</a>'.encode() if index + 1 < len(responses) else b""
        return httpx.Response(status, headers=headers, content=body + link)

    config = CrawlConfig(
        depth=10, robots=False, retries=0, max_redirects=2, max_bytes=50_000, selectors=_SELECTORS
    )

    async def main() -> None:
        with trio.fail_after(20):
            pages = await scrape(
                ["http://fuzz.test/0"], config, transport=httpx.MockTransport(answer)
            )
        urls = [page.url for page in pages]
        assert len(urls) == len(set(urls)) and "http://fuzz.test/0" in urls
        for page in pages:
            assert page.ok == (page.error is None and 200 <= (page.status or 0) < 300)

    trio.run(main)
