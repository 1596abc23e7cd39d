"""model.rows: a field's text in each sibling row, found with one query, is what a query inside
each row finds; and a handler's ctx.text_of goes through it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from trio_scrape.model.page import Page
from trio_scrape.model.parse import first_text, parse_html
from trio_scrape.model.request import Request
from trio_scrape.model.rows import rows_of
from trio_scrape.model.urls import LinkResolver
from trio_scrape.scraper.handlers import Context

TAGS = ("div", "span", "p", "b")
CLASSES = ("a", "b", "row")
QUERIES = (
    "span",
    ".a",
    "span.a",
    "div.row",  # the row itself, and rows inside rows' text
    "div > span",
    "section span.b",  # an ancestor outside the rows
    "p b",
    ".a, .b",
    "span:first-child",
    "b:last-child",
    "div.row + div.row span",
    "p:not(.a)",
)


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    classes = draw(st.lists(st.sampled_from(CLASSES), max_size=2))
    text = draw(st.text(alphabet="xy \n", max_size=4))
    children = [] if depth >= 3 else draw(st.lists(elements(depth + 1), max_size=3))
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<{tag}{attribute}>{text}{''.join(children)}</{tag}>"


@st.composite
def pages(draw: st.DrawFn) -> str:
    rows = draw(st.lists(elements(1), min_size=2, max_size=6))
    between = draw(st.lists(elements(1), max_size=2))
    body = "".join(f'<div class="row">{row}</div>' for row in rows) + "".join(between)
    return f'<main><span class="a">outside</span><section>{body}</section></main>'


@settings(max_examples=150, deadline=None)
@given(pages(), st.lists(st.sampled_from(QUERIES), min_size=1, max_size=4))
def test_a_rows_field_is_what_a_query_inside_each_row_finds(html: str, queries: list[str]) -> None:
    tree = LexborHTMLParser(html)
    nodes = tree.css("section > div.row")
    rows = rows_of(nodes)
    assert rows is not None
    for query in queries:
        assert [rows.text(query, i) for i in range(len(nodes))] == [
            first_text(node, query) for node in nodes
        ], query


def test_rows_only_for_two_or_more_siblings() -> None:
    tree = LexborHTMLParser("<div><p>1</p><p>2</p></div><div><p>3</p></div>")
    assert rows_of(tree.css("p")) is None  # two parents
    assert rows_of(tree.css("div:first-child > p")) is not None
    assert rows_of(tree.css("div:last-child > p")) is None  # one element


def context(html: str) -> Context:
    url = "http://127.0.0.1/list"
    page = Page(url=url, status=200)
    page.html = parse_html(html, want_links=False).tree
    return Context(page, Request(url), base=url, resolver=LinkResolver())


def test_text_of_reads_rows_fields_once_and_falls_back_for_other_nodes() -> None:
    ctx = context(
        "<ul><li><b> one </b><i>x</i></li><li><i>y</i></li><li><b>three</b></li></ul>"
        "<p><b>lone</b></p>"
    )
    items = ctx.css("li")
    assert [ctx.text_of(li, "b", default="-") for li in items] == ["one", "-", "three"]
    assert [ctx.text_of(li, "i") for li in items] == ["x", "y", None]
    assert len(ctx._rows) == 3  # the three rows were indexed (one query a field)
    lone = ctx.css_first("p")
    assert lone is not None and ctx.text_of(lone, "b") == "lone"  # not a row: asked alone
    # a field asked again after the tree changed reads the texts of the first time
    first = items[0].css_first("i")
    assert first is not None
    first.decompose()
    assert ctx.text_of(items[0], "i") == "x"


def test_enqueue_links_takes_every_a_element_as_css_does() -> None:
    html = (
        '<a href="/1">x</a><A HREF="/2">y</A><svg><a href="/3">s</a></svg>'
        '<template><a href="/4">t</a></template><a>none</a><a href="">empty</a>'
        '<div><a href="/6"></a></div><area href="/7">'
    )
    by_tag, by_css = context(html), context(html)
    assert by_tag.enqueue_links() == 4
    by_css.enqueue_links("body a, svg a")  # a selector the tag path does not take
    expected = [f"http://127.0.0.1/{n}" for n in (1, 2, 3, 6)]
    assert by_tag.enqueued() == ([], expected)
    assert by_css.enqueued() == ([], expected)


FRAGMENTS = ("x", " y\n", "&amp;", "é日", "<!-- c -->", "<script>s()</script>", "<br>", "\t")


@st.composite
def mixed(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(("div", "p", "span", "b", "template", "textarea")))
    parts = draw(st.lists(st.sampled_from(FRAGMENTS), max_size=4))
    if depth < 3:
        parts += draw(st.lists(mixed(depth + 1), max_size=2))
    parts = draw(st.permutations(parts))
    return f"<{tag}>{''.join(parts)}</{tag}>"


@settings(max_examples=150, deadline=None)
@given(st.lists(mixed(), min_size=1, max_size=3))
def test_every_text_read_is_the_text_nodes_of_the_element(parts: list[str]) -> None:
    # Fields are read with lexbor's textContent (text_lexbor, one C call); it must give what
    # selectolax's text walk gives: every text node below, in document order, comments and
    # template contents left out.
    tree = LexborHTMLParser(f"<main>{''.join(parts)}</main>")
    for node in tree.css("main *"):
        walked = node.text(deep=True)
        assert node.text_lexbor() == walked
        found = node.css_first("*")
        expected = None if found is None else " ".join(found.text(deep=True).split())
        assert first_text(node, "*") == expected
