from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trio_scrape import CrawlConfig
from trio_scrape._urls import LinkResolver, UrlScope, canonicalize, resolve_links

from .conftest import examples


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTP://Example.COM:80/a/../b?z=1&a=2#frag", "http://example.com/b?a=2&z=1"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com", "http://example.com/"),
        ("http://ex.com/%7euser/a b", "http://ex.com/~user/a%20b"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://bücher.de/x", "http://xn--bcher-kva.de/x"),
        ("  http://example.com/p  ", "http://example.com/p"),
    ],
)
def test_canonicalize(raw: str, canonical: str) -> None:
    assert canonicalize(raw) == canonical
    assert canonicalize(canonical) == canonical


# Found by the property tests below (kept as regressions): hosts w3lib passes through, and a
# port out of range that the fast path took as canonical.
FUZZ_FINDINGS = ["HTTP://\x1b", "HTTP://\x80", "http://a b/", "http://ex.com\u2028/",
                 "HTTP://0:65536"]  # fmt: skip
REJECTED = ["ht!tp://x", "mailto:a@b", "/path", "http://", "http://ex.com:99999/", "ftp://x/"]


@pytest.mark.parametrize("bad", [*REJECTED, *FUZZ_FINDINGS])
def test_canonicalize_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        canonicalize(bad)


def test_fuzz_findings_are_invalid_links() -> None:
    links, invalid = LinkResolver().resolve("http://ex.com/", FUZZ_FINDINGS)
    assert links == [] and invalid == len(FUZZ_FINDINGS)
    # Also found: a port with a leading zero came back unnormalised from the fast path.
    assert LinkResolver().resolve("http://ex.com/", ["http://0:00"]) == (["http://0:0/"], 0)


def test_resolve_links() -> None:
    base = "http://ex.com/dir/page.html"
    hrefs = [
        "a.html",
        "./a.html",
        "../up.html",
        "/abs",
        "#top",
        "",
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
    ]
    links, invalid = resolve_links(base, hrefs)
    assert links == [
        "http://ex.com/dir/a.html",
        "http://ex.com/up.html",
        "http://ex.com/abs",
        "http://other.org/x",
        "http://proto.rel/y",
        "http://ex.com/space",
    ]
    assert invalid == 1


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


# ------------------------------------------------------------- fast path == slow path

_SEGMENT = st.one_of(
    st.sampled_from(
        [
            ".",
            "..",
            "",
            "a",
            "B",
            "x.html",
            "%7e",
            "%7E",
            "~u",
            "é",
            "a b",
            "q=1",
            "it's",
            "(1)",
            "a:b",
            "[x]",
            "|",
            ".hidden",
            "a;p",
        ]
    ),
    st.text(alphabet="abcXYZ09-._~!$&'()*+,;=:@%/ é", max_size=6),
)
_PATH = st.lists(_SEGMENT, max_size=5).map("/".join)
_HOSTS = st.sampled_from(
    [
        "ex.com",
        "EX.com",
        "ex.com:80",
        "ex.com:8080",
        "127.0.0.1:8089",
        "sub.ex.com",
        "xn--bcher-kva.de",
        "bücher.de",
        "[::1]:81",
    ]
)
_HREF = st.one_of(
    _PATH,
    _PATH.map(lambda p: "/" + p),
    _PATH.map(lambda p: "./" + p),
    _PATH.map(lambda p: "../" + p),
    st.tuples(_PATH, st.sampled_from(["?b=2&a=1", "?x", "?", "#f", "?q#f", ""])).map("".join),
    st.tuples(
        st.sampled_from(["http://", "HTTPS://", "//", "ftp://", "mailto:"]),
        _HOSTS,
        _PATH.map(lambda p: "/" + p),
    ).map("".join),
    st.sampled_from(["javascript:void(0)", "tel:+1", "data:,x", "#top", "", " /sp ", "?only"]),
)
_BASE = st.tuples(
    st.sampled_from(["http://ex.com", "https://ex.com:8443", "http://127.0.0.1:8089"]),
    st.sampled_from(["/", "/dir/page.html", "/dir/sub/", "/p?next=/a/b", "/a/b/c.html?x=1"]),
).map("".join)


def slow_resolve(base: str, href: str) -> str | None:
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", href)
    if scheme and scheme.group()[:-1].lower() not in ("http", "https"):
        return None  # another scheme is skipped before any parsing
    try:
        absolute = urljoin(base, href.split("#", 1)[0])
        if absolute.split(":", 1)[0].lower() not in ("http", "https"):
            return None
        return canonicalize(absolute)
    except ValueError:
        return "invalid"


@settings(max_examples=3000, deadline=None)
@given(base=_BASE, href=_HREF)
def test_fast_resolution_agrees_with_urljoin_and_w3lib(base: str, href: str) -> None:
    # urljoin drops empty path segments ("a//b" -> "a/b") and applies RFC 1808 ";params"
    # rules (";" -> "/"), unlike RFC 3986 and browsers; the fast path keeps both as browsers
    # do, so such hrefs are not comparable.
    path = href.split("?", 1)[0].split("#", 1)[0]
    assume("//" not in (path[2:] if path.startswith("//") else path.split("://", 1)[-1]))
    assume(";" not in path)
    expected = slow_resolve(base, href)
    for resolver in (LinkResolver(), shared_resolver):  # cold, and with a warm cache
        links, invalid = resolver.resolve(base, [href])
        got = "invalid" if invalid else (links[0] if links else None)
        assert got == expected, (base, href)


shared_resolver = LinkResolver(cache_size=512)


def test_path_characters_are_those_w3lib_keeps() -> None:
    from trio_scrape._urls import _PATH_CHARS

    for char in map(chr, range(33, 127)):
        if re.fullmatch(f"[{_PATH_CHARS}]", char) and char not in "/.":
            url = f"http://h/a{char}b"
            assert canonicalize(url) == url, char


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
    from trio_scrape._urls import host_of

    assert host_of(url) == host


# -------------------------------------------------------- hardening: the canonicaliser

# Anything a page can put in an href: unicode, controls, IPv6 and IDNA hosts, odd ports,
# percent signs, overlong strings.
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
def test_canonicalize_raises_only_value_error_and_is_idempotent(raw: str) -> None:
    try:
        canonical = canonicalize(raw)
    except ValueError:
        return
    assert canonicalize(canonical) == canonical
    assert canonical.startswith(("http://", "https://")) and len(canonical) <= 2048
    assert canonical.isascii() and not any(c in canonical for c in " \t\r\n#")


@settings(max_examples=examples(1500), deadline=None)
@given(base=_BASE, hrefs=st.lists(_HOSTILE_TEXT, max_size=8))
def test_resolver_never_raises_and_yields_only_canonical_urls(base: str, hrefs: list[str]) -> None:
    links, invalid = LinkResolver().resolve(base, hrefs)
    assert 0 <= invalid <= len(hrefs) and len(links) <= len(hrefs)
    for link in links:
        assert canonicalize(link) == link and len(link) <= 2048


_SEGMENT = st.text(alphabet="abcxyz019-_~", min_size=1, max_size=6)


@st.composite
def _spellings(draw: st.DrawFn) -> tuple[str, str]:
    """Two spellings of one URL: case of scheme and host, default port, fragment, dot
    segments, query order and percent-encoding case all varied."""
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.sampled_from(["ex.com", "sub.example.org", "bücher.de", "[::1]"]))
    segments = draw(st.lists(_SEGMENT, min_size=1, max_size=4))
    params = draw(st.lists(st.tuples(_SEGMENT, _SEGMENT), max_size=4, unique_by=lambda p: p[0]))
    encoded = draw(st.sampled_from(["", "%2F", "%3A", "%C3%A9"]))  # reserved or non-ASCII
    plain = f"{scheme}://{host}/" + "/".join(segments) + encoded
    if params:
        plain += "?" + "&".join(f"{k}={v}" for k, v in params)
    port = {"http": ":80", "https": ":443"}[scheme] if draw(st.booleans()) else ""
    dots = draw(st.sampled_from(["", "./", "zz/../", "./zz/../"]))
    odd = f"{scheme.upper()}://{host.upper()}{port}/{dots}" + "/".join(segments)
    odd += encoded.lower()
    if params:
        odd += "?" + "&".join(f"{k}={v}" for k, v in reversed(params))
    odd += "#" + draw(_SEGMENT) if draw(st.booleans()) else ""
    return plain, odd


@settings(max_examples=examples(800), deadline=None)
@given(pair=_spellings())
def test_equivalent_spellings_have_one_canonical_form(pair: tuple[str, str]) -> None:
    plain, odd = pair
    assert canonicalize(plain) == canonicalize(odd)
    links, invalid = LinkResolver().resolve("http://base.test/dir/", [odd, plain])
    assert invalid == 0 and links == [canonicalize(plain)]


def test_link_limits() -> None:
    resolver = LinkResolver()
    long_href = "/" + "a" * 2100
    links, invalid = resolver.resolve("http://ex.com/", [long_href, "/ok"])
    assert links == ["http://ex.com/ok"] and invalid == 1
    many = [f"/p{i}" for i in range(12_000)]
    links, invalid = resolver.resolve("http://ex.com/", many)
    assert len(links) == 10_000 and links[-1] == "http://ex.com/p9999"
    with pytest.raises(ValueError, match="longer than 2048"):
        canonicalize("http://ex.com/" + "a" * 2040)
