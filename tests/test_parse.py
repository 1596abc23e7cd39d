from __future__ import annotations

import codecs
import re

import pytest

from trio_scrape.model.parse import decode_body, is_html, normalise_space, parse_html


@pytest.mark.parametrize(
    ("content", "content_type", "text", "encoding"),
    [
        (b"plain", "text/html", "plain", "utf-8"),
        # As browsers read them (the WHATWG Encoding standard): latin-1 and ASCII labels
        # are windows-1252, whose 0x80-0x9F are the curly quotes, dashes and euro sign.
        ("é".encode("latin-1"), "text/html; charset=iso-8859-1", "é", "cp1252"),
        (
            b"Don\x92t \x80 5 \x96 caf\xe9",
            "text/html; charset=ISO-8859-1",
            "Don\u2019t \u20ac 5 \u2013 caf\xe9",
            "cp1252",
        ),
        (b"caf\xe9 \x93x\x94", "text/html; charset=us-ascii", "caf\xe9 \u201cx\u201d", "cp1252"),
        (b'<meta charset="latin1">\x92', None, '<meta charset="latin1">\u2019', "cp1252"),
        ('"é"'.encode("cp1252"), 'text/html; charset="windows-1252"', '"é"', "cp1252"),
        (codecs.BOM_UTF8 + "é".encode(), "text/html; charset=latin-1", "é", "utf-8-sig"),
        ("é".encode("utf-16"), None, "é", "utf-16"),
        (
            b'<meta charset="koi8-r">' + "ж".encode("koi8-r"),
            "text/html",
            '<meta charset="koi8-r">ж',
            "koi8-r",
        ),
        (
            b"<meta http-equiv=Content-Type content='text/html; charset=utf-16'>x",
            None,
            "<meta http-equiv=Content-Type content='text/html; charset=utf-16'>x",
            "utf-8",
        ),
        (b"\xfd\xfe\xff", "text/html; charset=utf-8", "\ufffd\ufffd\ufffd", "utf-8"),
        (b"x", "text/html; charset=bogus", "x", "utf-8"),
    ],
)
def test_decode_body(content: bytes, content_type: str | None, text: str, encoding: str) -> None:
    assert decode_body(content, content_type) == (text, encoding)


def test_decode_never_raises_on_noise() -> None:
    import random

    rng = random.Random(3)
    for _ in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        for content_type in (None, "text/html; charset=utf-16", "text/html; charset=rot13"):
            text, _ = decode_body(blob, content_type)
            assert isinstance(text, str)


def test_is_html() -> None:
    assert is_html("text/html; charset=utf-8", b"")
    assert is_html("application/xhtml+xml", b"")
    assert not is_html("application/json", b"<html>")
    assert is_html(None, b"  <!-- c --> <!DOCTYPE html><p>")
    assert not is_html(None, b"\x89PNG")


def test_parse_html() -> None:
    parsed = parse_html(
        "<html><head><title>\n  A   title </title><base href='/sub/'></head>"
        "<body><a href='x'>1</a><a>no href</a><area href='/map'><a href=''>e</a></body>",
        want_links=True,
    )
    assert parsed.title == "A title"
    assert parsed.base == "/sub/"
    assert parsed.hrefs == ["x", "/map"]
    assert parse_html("<p>no title", want_links=False).title is None
    assert parse_html("<a href=x>", want_links=False).hrefs == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # document.title strips and collapses ASCII whitespace only: TAB, LF, FF, CR, SPACE.
        ("Chapter\u00a01.\u00a0Getting Started", "Chapter\u00a01.\u00a0Getting Started"),
        ("\u00a0 padded \u00a0", "\u00a0 padded \u00a0"),
        ("\u2003em\u3000spaces\u2028", "\u2003em\u3000spaces\u2028"),
        (" \t\n\x0c\r A \t\n\x0c\r  B\r\n", "A B"),
        ("A\u00a0 \t B", "A\u00a0 B"),
    ],
)
def test_title_collapses_ascii_whitespace_only(title: str, expected: str) -> None:
    assert parse_html(f"<title>{title}</title>", want_links=False).title == expected


def test_parse_html_keeps_document_order_and_first_elements() -> None:
    # Links of several kinds come in document order, whichever way they are found; the
    # first <title>, <base href> and canonical link win (a title inside <svg> comes first
    # in the document, as in CSS matching).
    page = (
        "<html><head><link rel=stylesheet href=s.css><link rel='Canonical' href=' /c '>"
        "<link rel=canonical href=/c2><meta content=x><meta name=ROBOTS content='NoFollow'>"
        "<meta http-equiv=Refresh content='5; url=/next'><base><base href='/b/'></head>"
        "<body><svg><title>in svg</title></svg><title>second</title>"
        "<a href=1>1</a><iframe src=f></iframe><a href=2 rel=nofollow>2</a><area href=m>"
        "<frame src=g><a href=3>3</a></body></html>"
    )
    parsed = parse_html(page, want_links=True)
    assert parsed.title == "in svg"
    assert parsed.base == "/b/"
    assert parsed.canonical == "/c"
    assert parsed.robots == {"nofollow"}
    assert parsed.refresh == (5.0, "/next")
    assert parsed.hrefs == ["1", "f", "2", "m", "3"]
    assert parse_html(page, want_links=True, frames=False).hrefs == ["1", "2", "m", "3"]
    no_frames = parse_html(page, want_links=True, frames=False, skip_rel_nofollow=True)
    assert no_frames.hrefs == ["1", "m", "3"]
    only_a = parse_html("<a href=1></a><p><a>x</a><a href=''></a><a href=2>", want_links=True)
    assert only_a.hrefs == ["1", "2"]


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("  a \t b\n\nc  ", "a b c"),
        ("\u00a0x\u2003 y\u3000", "x y"),  # Unicode spaces, as \s matches them
        ("\x1cx\x1fy", "x y"),
        ("", ""),
        ("word", "word"),
    ],
)
def test_normalise_space_collapses_what_a_regex_s_matches(text: str, normal: str) -> None:
    assert normalise_space(text) == normal == re.sub(r"\s+", " ", text).strip()
