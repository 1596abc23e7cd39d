from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import ada_url
import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_scrape import CrawlConfig, CrawlRequest, MemoryFrontier, Page, StateError, scrape
from trio_scrape.engine.pipeline import PagePipeline
from trio_scrape.frontier.digests import url_digest
from trio_scrape.frontier.sqlite import open_sqlite_frontier
from trio_scrape.http.fetcher import open_fetcher
from trio_scrape.model.parse import parse_html
from trio_scrape.model.urls import (
    LinkResolver,
    UrlScope,
    _is_normalised,
    browser_url,
    canonicalize,
    document_base,
    host_of,
    resolve_links,
    url_key,
)

from .conftest import examples
from .site import Reply, Site, html_page


@pytest.mark.parametrize(
    ("raw", "browser"),
    [
        ("HTTP://Example.COM:80/a/../b?z=1&a=2#frag", "http://example.com/b?z=1&a=2"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com", "http://example.com/"),
        ("http://ex.com/%7euser/a b", "http://ex.com/%7euser/a%20b"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://bücher.de/x", "http://xn--bcher-kva.de/x"),
        ("  http://example.com/p  ", "http://example.com/p"),
        ("http://ex.com/?b", "http://ex.com/?b"),  # not "?b=": some servers tell them apart
        ("http://ex.com/a%3Db?", "http://ex.com/a%3Db?"),  # the empty query stays
        ("http://0x7f.1/", "http://127.0.0.1/"),  # IPv4 number forms, as browsers read them
        ("http:\\\\ex.com\\a", "http://ex.com/a"),  # backslashes
        ("http://0:00", "http://0.0.0.0:0/"),  # a fuzz finding of the old resolver
    ],
)
def test_browser_url(raw: str, browser: str) -> None:
    assert browser_url(raw) == browser
    assert browser_url(browser) == browser


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("HTTP://Example.COM:80/a/../b?z=1&a=2#frag", "http://example.com/b?a=2&z=1"),
        ("http://ex.com/%7euser/%7Ea%2f%3d", "http://ex.com/~user/~a%2F%3D"),
        ("http://ex.com/?b", "http://ex.com/?b="),
        ("http://ex.com/?b=", "http://ex.com/?b="),
        ("http://ex.com/?", "http://ex.com/"),
        ("http://ex.com/?&&", "http://ex.com/"),
        ("http://ex.com/?b=2&a=1&a=0", "http://ex.com/?a=0&a=1&b=2"),
        ("http://ex.com/?q=%41+%20", "http://ex.com/?q=A+%20"),  # "+" is not "%20"
        ("http://ex.com/a=b", "http://ex.com/a=b"),  # "=" and "%3D" are not one in a key
    ],
)
def test_canonical_key(raw: str, key: str) -> None:
    assert canonicalize(raw) == key
    assert url_key(key) == key and canonicalize(key) == key


# Found by property tests of the old canonicaliser (kept as regressions): hosts that w3lib
# passed through, and ports out of range. The URL parser refuses them all.
FUZZ_FINDINGS = ["HTTP://\x1b", "HTTP://\x80", "http://a b/", "http://ex.com\u2028/",
                 "HTTP://0:65536"]  # fmt: skip
REJECTED = ["ht!tp://x", "mailto:a@b", "/path", "http://", "http://ex.com:99999/", "ftp://x/",
            "example.com", "http://[bad/", "http://ex.com/\ud800"]  # fmt: skip


@pytest.mark.parametrize("bad", [*REJECTED, *FUZZ_FINDINGS])
def test_browser_url_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        browser_url(bad)
    with pytest.raises(ValueError):
        canonicalize(bad)


def test_fuzz_findings_are_invalid_links() -> None:
    links, invalid = LinkResolver().resolve("http://ex.com/", FUZZ_FINDINGS)
    assert links == [] and invalid == len(FUZZ_FINDINGS)


def test_resolve_links() -> None:
    base = "http://ex.com/dir/page.html"
    hrefs = [
        "a.html",
        "./a.html",
        "../up.html",
        "/abs",
        "#top",  # the page itself
        "",  # the page itself
        "mailto:x@y",
        "javascript:alert(1)",
        "tel:1",
        "data:text/html,hi",
        "a.html#frag",
        "http://other.org/x",
        "//proto.rel/y",
        " \t/sp\nace ",
        "http://[bad/",
        "HTTP://EX.COM/abs",
        "b?y=2&x=1",
        "b?x=1&y=2",  # another spelling of the same page, but another URL: both listed
    ]
    links, invalid = resolve_links(base, hrefs)
    assert links == [
        "http://ex.com/dir/a.html",
        "http://ex.com/up.html",
        "http://ex.com/abs",
        "http://ex.com/dir/page.html",
        "http://other.org/x",
        "http://proto.rel/y",
        "http://ex.com/space",
        "http://ex.com/dir/b?y=2&x=1",
        "http://ex.com/dir/b?x=1&y=2",
    ]
    assert invalid == 1


# ------------------------------------------------ URL resolution bugs found once, as regressions


def test_issue_1_the_cache_never_returns_another_pages_url() -> None:
    resolver = LinkResolver()
    assert resolver.resolve("http://ex.com/d/p1?x=1", ["http:", "http:?q"])[0] == [
        "http://ex.com/d/p1?x=1",
        "http://ex.com/d/p1?q",
    ]
    assert resolver.resolve("http://ex.com/d/p2", ["http:", "http:?q"])[0] == [
        "http://ex.com/d/p2",
        "http://ex.com/d/p2?q",
    ]


def test_issue_2_dot_segments_of_a_base_href_are_resolved_first() -> None:
    parsed = parse_html(
        "<base href='http://ex.com/a/b/../c/'><a href='../../x'>x</a>", want_links=True
    )
    base = document_base("http://ex.com/page", parsed.base)
    assert base == "http://ex.com/a/c/"
    assert resolve_links(base, parsed.hrefs) == (["http://ex.com/x"], 0)
    # Given as is (not through document_base), the resolver parses the base itself.
    assert resolve_links("http://ex.com/a/b/../c/", ["../../x"]) == (["http://ex.com/x"], 0)


def test_issue_3_double_slashes_in_a_path_are_kept_with_or_without_a_query() -> None:
    links, _ = resolve_links("http://ex.com/d/", ["a//b", "a//b?x=1", "/a//b?x=1#f"])
    assert links == ["http://ex.com/d/a//b", "http://ex.com/d/a//b?x=1", "http://ex.com/a//b?x=1"]


def test_issue_4_whitespace_and_controls_as_a_browser_strips_them() -> None:
    hrefs = [
        "/a #top",  # the space before "#" belongs to the path
        "/b ?q",  # and before "?"
        "\u00a0/c",  # Unicode whitespace is not stripped: it is percent-encoded
        "\u3000/d",
        "/e\u2028",
        "/f\u0085",
        "\x01https://o.org/",  # leading C0 controls are stripped: the scheme is seen
        " \x1f/g\x00 ",
        "/h\t\ni\r",  # tabs and newlines anywhere are removed
    ]
    links, invalid = resolve_links("http://ex.com/d/", hrefs)
    assert links == [
        "http://ex.com/a%20",
        "http://ex.com/b%20?q",
        "http://ex.com/d/%C2%A0/c",
        "http://ex.com/d/%E3%80%80/d",
        "http://ex.com/e%E2%80%A8",
        "http://ex.com/f%C2%85",
        "https://o.org/",
        "http://ex.com/g",
        "http://ex.com/hi",
    ]
    assert invalid == 0


@pytest.mark.parametrize(
    "base_href", ["javascript:alert(1)", " JavaScript:void(0)", "data:text/html,x", "http://[bad"]
)
def test_issue_5_an_unusable_base_href_falls_back_to_the_document_url(base_href: str) -> None:
    base = document_base("http://ex.com/d/page", base_href)
    assert base == "http://ex.com/d/page"
    assert resolve_links(base, ["x", "/y"]) == (["http://ex.com/d/x", "http://ex.com/y"], 0)


def test_a_relative_base_href_resolves_against_the_document_url() -> None:
    assert document_base("http://ex.com/d/page", "../other/") == "http://ex.com/other/"
    assert document_base("http://ex.com/d/page", None) == "http://ex.com/d/page"
    # A base of another scheme is a base: its relative links are not http(s), so skipped.
    assert resolve_links(document_base("http://ex.com/", "ftp://f.org/"), ["x", "//h/"]) == ([], 0)


def test_queries_are_encoded_in_the_pages_legacy_encoding() -> None:
    hrefs = ["/s?q=café", "/s?q=€", "/s?q=ß", "/caf\u00e9?q=\u4e2d"]
    latin = resolve_links("http://ex.com/", hrefs, encoding="cp1252")[0]
    # The path is always UTF-8; the query is in the page's encoding; what the encoding lacks
    # becomes an HTML character reference ("&#20013;"), percent-encoded.
    assert latin == [
        "http://ex.com/s?q=caf%E9",
        "http://ex.com/s?q=%80",
        "http://ex.com/s?q=%DF",
        "http://ex.com/caf%C3%A9?q=%26%2320013%3B",
    ]
    utf8 = [
        "http://ex.com/s?q=caf%C3%A9",
        "http://ex.com/s?q=%E2%82%AC",
        "http://ex.com/s?q=%C3%9F",
    ]
    assert resolve_links("http://ex.com/", hrefs[:3], encoding="utf-8")[0] == utf8
    assert resolve_links("http://ex.com/", hrefs[:3], encoding="utf-16-le")[0] == utf8
    assert resolve_links("http://ex.com/", hrefs[:3], encoding="no-such-codec")[0] == utf8
    assert resolve_links("http://ex.com/", ["/s?q=\ud55c"], encoding="euc-kr")[0] == [
        "http://ex.com/s?q=%C7%D1"
    ]


def test_scope() -> None:
    seeds = ["http://www.example.com/", "http://other.org/"]
    host = UrlScope(CrawlConfig(), seeds)
    assert host.allows("http://www.example.com/x") and host.allows("http://other.org/y")
    assert not host.allows("http://sub.example.com/")
    domain = UrlScope(CrawlConfig(scope="domain"), seeds)
    assert domain.allows("http://sub.example.com/") and domain.allows("http://example.com/")
    assert not domain.allows("http://notexample.com/")
    assert UrlScope(CrawlConfig(scope="any"), seeds).allows("http://anything.net/")
    allow = UrlScope(CrawlConfig(allow_hosts=("*.cdn.net",)), seeds)
    assert allow.allows("http://img.cdn.net/a") and not allow.allows("http://cdn.org/")
    filtered = UrlScope(CrawlConfig(include=(r"/blog/",), exclude=(r"\?print",)), seeds)
    assert filtered.allows("http://other.org/blog/1")
    assert not filtered.allows("http://other.org/shop/1")
    assert not filtered.allows("http://other.org/blog/1?print=1")


def test_allowed_hosts_match_internationalised_hosts_as_browsers_write_them() -> None:
    scope = UrlScope(CrawlConfig(allow_hosts=("*.Bücher.de", "ß.example")), ["http://ex.com/"])
    assert scope.allows(browser_url("http://www.bücher.de/x"))  # www.xn--bcher-kva.de
    assert scope.allows(browser_url("http://ß.example/"))  # xn--zca.example (UTS #46)
    assert not scope.allows(browser_url("http://bucher.de/"))


def test_include_and_exclude_see_the_canonical_key_so_every_spelling_gets_one_verdict() -> None:
    scope = UrlScope(
        CrawlConfig(include=(r"/~docs/",), exclude=(r"\?a=1&b=$",)), ["http://ex.com/"]
    )
    assert scope.allows("http://ex.com/~docs/x") and scope.allows("http://ex.com/%7Edocs/x")
    assert not scope.allows("http://ex.com/~docs/x?b&a=1")
    assert not scope.allows("http://ex.com/%7edocs/x?a=1&b=")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://ex.com/", "ex.com"),
        ("http://ex.com:81/a", "ex.com"),
        ("http://[::1]:8/", "::1"),
        ("http://u:p@ex.com:9/x", "ex.com"),
        ("https://ex.com", "ex.com"),
    ],
)
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host


def test_link_limits() -> None:
    resolver = LinkResolver()
    long_href = "/" + "a" * 2100
    links, invalid = resolver.resolve("http://ex.com/", [long_href, "/ok"])
    assert links == ["http://ex.com/ok"] and invalid == 1
    # Short enough as an href, too long once resolved: invalid on either path.
    near = "a" * 2040
    assert resolver.resolve("http://ex.com/dir/", [near, near + "?q"]) == ([], 2)
    many = [f"/p{i}" for i in range(12_000)]
    links, invalid = resolver.resolve("http://ex.com/", many)
    assert len(links) == 10_000 and links[-1] == "http://ex.com/p9999"
    with pytest.raises(ValueError, match="longer than 2048"):
        browser_url("http://ex.com/" + "a" * 2040)


def test_the_url_code_does_not_use_w3lib() -> None:
    # With w3lib 2.4.1 three of the old URL tests failed (it resolves no dot segments);
    # resolution and keys are ada's and our own now, whatever w3lib a user has.
    import sys

    import trio_scrape  # noqa: F401

    assert "w3lib" not in sys.modules and "w3lib.url" not in sys.modules


# ------------------------------------------------ property tests: the crawler == ada-url

# Hrefs built from the pieces the URL parser treats specially: dot segments (also
# percent-encoded), slashes and backslashes, "?", "#", whitespace and controls, "%", ":",
# "@", schemes in odd case, non-ASCII, IPv4 forms and IDNA hosts.
_PIECE = st.sampled_from(
    ["a", "B", "x.html", ".", "..", "%2e", "%2E%2e", ".%2E", "/", "//", "\\", "?", "#", "&",
     "=", " ", "\t", "\n", "\x00", "\x1f", "%", "%7e", "%41", ":", "@", ";", "'", "~", "é",
     "\u00a0", "\u3000", "\ufffd", "[", "]", "|", "^", "`", "{", "}", "<", ">", "\"", "+"]
)  # fmt: skip
_PREFIX = st.sampled_from(
    ["", "", "", "/", "./", "../", "../../", "//", "\\\\", "?", "#", " ", "\x01", "http:",
     "HTTP:", "https:", "http://", "hTTps://", "http:/", "http:\\\\", "//ex.com", "//0x7f.1",
     "http://bücher.de", "http://[::1]:81", "http://u:p@h:80", "http://ex.com:443",
     "mailto:", "javascript:", "ftp://", "data:,", "git://h/"]
)  # fmt: skip
_HREF = st.tuples(_PREFIX, st.lists(_PIECE, max_size=8).map("".join)).map("".join)
_BASE = st.sampled_from(
    [
        "http://ex.com/",
        "http://ex.com/dir/page.html",
        "http://ex.com/dir/sub/",
        "https://ex.com:8443/a/b/c?x=1#frag",
        "http://u:p@ex.com:8080/p?next=/a/b",
        "http://127.0.0.1:8089/d/p1?x=1",
        "http://[::1]:81/x/y",
        "http://ex.com/a/b/../c/",  # not normalised: the resolver must parse it
        "HTTP://EX.COM:80/%7e/./x",
        "http://bücher.de/a%2fb/c",
        "ftp://f.org/dir/",  # a <base href> may have another scheme
        "http://[bad",  # or not parse at all
    ]
)


def ada_resolution(base: str, href: str) -> str | None:
    """What a browser requests for ``href`` on a page with base URL ``base``: ada's result
    without its fragment, None for other schemes, "invalid" when it does not parse."""
    try:
        url = ada_url.join_url(base, href)
    except ValueError:
        try:
            url = ada_url.URL(href).href  # an absolute href needs no base
        except ValueError:
            return "invalid"
    if not url.startswith(("http://", "https://")):
        return None
    return url.partition("#")[0]


shared_resolver = LinkResolver(cache_size=512)


@settings(max_examples=examples(3000), deadline=None)
@given(base=_BASE, href=_HREF)
def test_the_crawler_resolves_as_ada_does(base: str, href: str) -> None:
    expected = ada_resolution(base, href)
    if expected == "invalid":
        # An href with another scheme (``mailto:``, ``git:``) is skipped without parsing,
        # even when ada would refuse it; nothing is requested either way.
        cleaned = re.sub("[\t\n\r]", "", href).strip("".join(map(chr, range(33))))
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", cleaned)
        if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
            expected = None
    for resolver in (LinkResolver(), shared_resolver):  # cold, and with a warm cache
        links, invalid = resolver.resolve(base, [href])
        got = "invalid" if invalid else (links[0] if links else None)
        assert got == expected, (base, href)


_HOST_PART = st.sampled_from(
    ["a", "ex", "x9", "b-c", "xn--nxasmq6b", "0x7f", "127", "1", "0", "01", "255", "256", "Ab",
     "a_b", "-a", "a-", "", "bücher", "09"]
)  # fmt: skip
_NORMALISED_CANDIDATE = st.builds(
    lambda scheme, labels, port, path: f"{scheme}://{'.'.join(labels)}{port}{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp"]),
    st.lists(_HOST_PART, min_size=1, max_size=5),
    st.sampled_from(["", ":80", ":443", ":8080", ":080", ":65535", ":65536", ":0", ":"]),
    st.lists(
        st.sampled_from(
            [
                "a",
                ".",
                "..",
                "",
                "b.html",
                "%7e",
                "x:y",
                "~!$&'()*+,;=@",
                "q?x",
                "#f",
                " ",
                "\\",
                "é",
                "A-Z_0",
            ]
        ),
        max_size=5,
    ).map(lambda segments: "/" + "/".join(segments)),
)


@settings(max_examples=examples(3000), deadline=None)
@given(url=_NORMALISED_CANDIDATE)
def test_a_base_taken_as_normalised_is_one_ada_leaves_unchanged(url: str) -> None:
    # The link resolver skips parsing such a base (the page's own URL, nearly always).
    if _is_normalised(url):
        assert ada_url.URL(url).href == url


def test_the_usual_bases_are_taken_as_normalised() -> None:
    for url in ["http://127.0.0.1:8080/d000/p1.html", "https://www.example.com/", "http://a.b/c/"]:
        assert _is_normalised(url), url
    for url in ["http://127.1/", "http://ex.com:80/", "http://ex.com/a/../b", "http://ex.com"]:
        assert not _is_normalised(url), url


_PLAIN = st.lists(
    st.sampled_from(["a", "b.html", ".", "..", "", "x-y_z~", "!$&'()*+,;=@", "Q9"]), max_size=6
).map("/".join)


@settings(max_examples=examples(2000), deadline=None)
@given(base=_BASE, prefix=st.sampled_from(["", "/", "./", "../", "../../"]), path=_PLAIN)
def test_the_plain_path_fast_path_agrees_with_ada(base: str, prefix: str, path: str) -> None:
    href = prefix + path
    links, invalid = LinkResolver().resolve(base, [href, href + "#f"])
    expected = ada_resolution(base, href)
    assert (links[0] if links else ("invalid" if invalid else None)) == expected, (base, href)


@settings(max_examples=examples(800), deadline=None)
@given(base=_BASE, href=_HREF)
def test_httpx_sends_the_browser_url_unchanged(base: str, href: str) -> None:
    links, _ = LinkResolver().resolve(base, [href])
    for link in links:
        try:
            request = httpx.Request("GET", link)
        except (httpx.InvalidURL, ValueError):  # IDNAError is a ValueError
            continue  # a host httpx refuses ("a..b"): the page becomes an invalid_url record
        parts = ada_url.parse_url(link)
        target = link[len(parts["protocol"]) + 2 + len(parts["host"]) :]
        if parts["username"] or parts["password"]:
            target = target[target.index("/") :]
        assert request.url.raw_path.decode("ascii") == target, link


# -------------------------------------------------- hardening: hostile text never raises

_HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=60).map(lambda t: "http://" + t),
    st.tuples(
        st.sampled_from(["http://", "HTTPS://", "//", "http:/", "http:", "https://user:pw@"]),
        st.sampled_from(["ex.com", "[::1]", "[fe80::1%25eth0]", "[::ffff:127.0.0.1]", "bücher.de",
                         "xn--bcher-kva.de", "EX.COM.", "[", "]", "127.0.0.1", "a..b", "-a-.com",
                         "\u0000", "ex.com:99999", "ex.com:-1", "ex.com:0x50", ""]),
        st.text(alphabet="/?#%&=.:;@![]{}<>\\\"' \t\n\u00e9\u2028\ufffd\U0001f600aZ09",
                max_size=40),
    ).map("".join),
    st.integers(min_value=2000, max_value=12000).map(lambda n: "http://ex.com/" + "a" * n),
)  # fmt: skip


@settings(max_examples=examples(1500), deadline=None)
@given(raw=_HOSTILE_TEXT)
def test_browser_url_raises_only_value_error_and_is_idempotent(raw: str) -> None:
    try:
        url = browser_url(raw)
    except ValueError:
        return
    assert browser_url(url) == url
    key = canonicalize(raw)
    assert url_key(key) == key == url_key(url)
    assert url.startswith(("http://", "https://")) and len(url) <= 2048
    assert url.isascii() and not any(c in url for c in " \t\r\n#")


@settings(max_examples=examples(1500), deadline=None)
@given(base=_BASE, hrefs=st.lists(_HOSTILE_TEXT, max_size=8))
def test_resolver_never_raises_and_yields_only_browser_urls(base: str, hrefs: list[str]) -> None:
    links, invalid = LinkResolver().resolve(base, hrefs, encoding="cp1252")
    assert 0 <= invalid <= len(hrefs) and len(links) <= len(hrefs)
    for link in links:
        assert browser_url(link) == link and len(link) <= 2048


# ------------------------------------------- two spellings, one canonical key, one request

_SEGMENT = st.text(alphabet="abcxyz019-_~", min_size=1, max_size=6)


@st.composite
def _spellings(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one URL: case of scheme and host, default port, fragment, dot
    segments, query order and blank values, escapes of unreserved characters, escape case."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.sampled_from(["ex.com", "sub.example.org", "bücher.de", "[::1]", "127.0.0.1"]))
    segments = draw(st.lists(_SEGMENT, min_size=1, max_size=4))
    params = draw(st.lists(st.tuples(_SEGMENT, _SEGMENT), max_size=4, unique_by=lambda p: p[0]))
    flag = draw(st.sampled_from(["", "flag"]))  # an argument without a value: "?flag"
    encoded = draw(st.sampled_from(["", "%2F", "%3A", "%C3%A9", "%3D"]))  # stay escaped
    plain = f"{scheme}://{host}/" + "/".join(segments) + encoded
    arguments = [f"{k}={v}" for k, v in params] + ([flag + "="] if flag else [])
    if arguments:
        plain += "?" + "&".join(arguments)
    port = {"http": ":80", "https": ":443"}[scheme] if draw(st.booleans()) else ""
    dots = draw(st.sampled_from(["", "./", "zz/../", "./zz/%2e%2E/"]))
    escape = draw(st.booleans())  # "~" as "%7E", "a" as "%61"
    odd_segments = [s.replace("~", "%7E").replace("a", "%61") if escape else s for s in segments]
    odd = f"{scheme.upper()}://{host.upper()}{port}/{dots}" + "/".join(odd_segments)
    odd += encoded.lower()
    odd_arguments = [f"{k}={v}" for k, v in reversed(params)] + ([flag] if flag else [])
    if odd_arguments:
        odd += "?" + "&&".join(draw(st.permutations(odd_arguments)))
    elif draw(st.booleans()):
        odd += "?"
    odd += "#" + draw(_SEGMENT) if draw(st.booleans()) else ""
    return plain, odd


@settings(max_examples=examples(800), deadline=None)
@given(pair=_spellings())
async def test_two_spellings_with_one_key_lead_to_one_request(pair: tuple[str, str]) -> None:
    plain, odd = pair
    assert canonicalize(plain) == canonicalize(odd)
    links, invalid = LinkResolver().resolve("http://base.test/dir/", [odd, plain])
    assert invalid == 0 and len(links) in (1, 2)  # the page's links: one per spelling
    assert url_digest(links[0]) == url_digest(links[-1])
    frontier = MemoryFrontier()
    assert await frontier.add(links, depth=1, referrer=None) == 1
    assert frontier.statistics().queued == 1 and frontier.statistics().seen == 1


# --------------------------------------------- end to end: what the server sees on the wire


async def test_the_server_sees_the_urls_a_browser_requests(site: Site) -> None:
    """The hrefs of those regressions on a loopback site, crawled with the CLI and ``--links``: the
    server's log holds the browser's request targets, each once; records hold the same."""
    home = [
        "/d/p1?x=1", "/d/p2", "/base-dots", "/base-js", "/legacy", "/redirect",
        "a//b", "a//b?x=1",  # bug 3: "//" kept with or without a query
        "/a #top", "/sp ?q", "\u00a0nb", "/u\u3000", "\x01/ctl",  # bug 4: whitespace
        "/q?b", "/q?b=",  # one key: the first spelling is requested, and only it
        "/s?b=2&a=1",  # not sorted on the wire
        "/p%3Dx", "/e?",  # "%3D" stays, an empty query stays
        "/T%7e", "/T~",  # one key
        f"HTTP://{site.host}:{site.port}/abs/../up",
        "mailto:x@y", "javascript:void(0)", "#top",
    ]  # fmt: skip
    site.add("/", Reply(body=html_page("Home", home)))
    site.add("/d/p1", Reply(body=html_page("P", ["http:", "http:?q"])))  # bug 1: the cache
    site.add("/d/p2", Reply(body=html_page("P", ["http:", "http:?q"])))
    site.add(  # bug 2: a base href with dot segments
        "/base-dots", Reply(body=b"<base href='/a/b/../c/'><a href='../../x'>x</a><a href=y>y</a>")
    )
    site.add("/base-js", Reply(body=b"<base href='javascript:void(0)'><a href='z'>z</a>"))
    site.add(
        "/legacy",
        Reply(
            body="<a href='/w?q=caf\u00e9'>w</a>".encode("cp1252"),
            content_type="text/html; charset=windows-1252",
        ),
    )
    site.add("/redirect", Reply(302, headers={"Location": "/after path#f"}))
    site.fallback = lambda path: Reply(body=html_page("Leaf"))
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "trio_scrape", "run", site.url("/"), "--depth", "2",
             "--links", "--no-robots", "-q"],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = [
        "/", "/d/p1?x=1", "/d/p2", "/base-dots", "/base-js", "/legacy", "/redirect",
        "/a//b", "/a//b?x=1", "/a%20", "/sp%20?q", "/%C2%A0nb", "/u%E3%80%80", "/ctl",
        "/q?b", "/s?b=2&a=1", "/p%3Dx", "/e?", "/T%7e", "/up",
        "/after%20path",  # the redirect's Location, as a browser resolves it
        "/d/p1?q", "/d/p2?q", "/x", "/a/c/y", "/z", "/w?q=caf%E9",
    ]  # fmt: skip
    assert sorted(site.hits) == sorted(expected)
    assert set(site.hits.values()) == {1}
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert sorted(r["url"] for r in records) == sorted(
        site.url(t) for t in expected if t != "/after%20path"
    )
    by_url = {r["url"]: r for r in records}
    assert by_url[site.url("/redirect")]["final_url"] == site.url("/after%20path")
    links = by_url[site.url("/")]["links"]
    assert links[:4] == [site.url(p) for p in ["/d/p1?x=1", "/d/p2", "/base-dots", "/base-js"]]
    assert site.url("/q?b=") in links and site.url("/T~") in links  # listed, not requested
    assert site.url("/") in links  # "#top": the page itself
    assert by_url[site.url("/base-dots")]["links"] == [site.url("/x"), site.url("/a/c/y")]


async def test_a_state_from_before_browser_urls_is_refused_in_one_line(
    site: Site, tmp_path: Path
) -> None:
    """States of schema 2 hold w3lib-canonical URLs and digests of them: resuming one would
    fetch pages again under their browser URLs, so it is refused with a clear line."""
    state = tmp_path / "crawl.state"
    db = sqlite3.connect(state)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema', '2'), ('settings', '{}')")
    db.commit()
    db.close()
    with pytest.raises(StateError, match=r"state schema 2, this version uses 7.*--state-reset"):
        async with open_sqlite_frontier(state, settings={}):
            pass
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-m", "trio_scrape", "run", site.url("/"), "--state", str(state),
             "-o", str(tmp_path / "out.jsonl")],
            capture_stdout=True, capture_stderr=True, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "state schema 2" in lines[0] and "--state-reset" in lines[0]
    assert site.log == []  # nothing was requested


async def test_a_follow_hooks_relative_links_resolve_against_the_document_base() -> None:
    page = b"<base href='/sub/'><a href='a'>a</a>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=page, headers={"Content-Type": "text/html"})

    def follow(page: Page) -> list[str]:
        return ["b", "../c", page.links[0]]

    config = CrawlConfig(depth=2, follow=follow)
    async with open_fetcher(config, transport=httpx.MockTransport(handler)) as fetcher:
        outcome = await PagePipeline(config, fetcher).attempt(CrawlRequest("http://ex.test/d/p"))
    assert outcome.links == ["http://ex.test/sub/b", "http://ex.test/c", "http://ex.test/sub/a"]


async def test_ipv4_number_forms_are_read_as_browsers_read_them(site: Site) -> None:
    """Hex, octal, decimal and short forms of a loopback canary (127.0.0.2) are one host to a
    browser: one URL here too, held to the private-address guard, fetched once if allowed."""
    canary = Site("127.0.0.2")
    async with trio.open_nursery() as nursery:
        await nursery.start(canary.serve)
        canary.add("/x", Reply(body=html_page("Canary")))
        forms = ["0x7f.0.0.2", "0177.0.0.2", "2130706434", "127.2", "0x7f000002"]
        links = [f"http://{form}:{canary.port}/x" for form in forms]
        site.add("/", Reply(body=html_page("Home", links)))
        for allow_private in (False, True):
            config = CrawlConfig(depth=1, scope="any", robots=False, allow_private=allow_private)
            pages = {p.url: p for p in await scrape([site.url("/")], config)}
            assert set(pages) == {site.url("/"), canary.url("/x")}
            assert pages[site.url("/")].links == [canary.url("/x")]
            error = pages[canary.url("/x")].error
            if allow_private:
                assert error is None and canary.paths() == ["/x"]
            else:
                assert error is not None and error.kind == "blocked_address"
                assert canary.log == []
        nursery.cancel_scope.cancel()


@settings(max_examples=examples(500), deadline=None)
@given(raw=_HOSTILE_TEXT)
def test_url_key_leaves_a_url_without_escapes_or_query_as_it_is(raw: str) -> None:
    """MemoryFrontier.add inlines this shortcut of url_key (its seen-set keys such a URL by
    the URL itself): the two must agree."""
    try:
        url = browser_url(raw)
    except ValueError:
        return
    if "%" not in url and "?" not in url:
        assert url_key(url) == url
