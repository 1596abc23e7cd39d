"""model.tree: pages parsed for a crawl query through one selector engine a thread, with
selectolax's own results and errors."""

from __future__ import annotations

import gc
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from trio_scrape.model.parse import parse_html
from trio_scrape.model.tree import Tree

QUERIES = ("p", "div > p", ".a", "p.a, b", "div:first-child", "b:not(.a)", "* + p", "div p b")


@st.composite
def markup(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(("div", "p", "b")))
    cls = draw(st.sampled_from(("", ' class="a"')))
    inner = "" if depth >= 3 else "".join(draw(st.lists(markup(depth + 1), max_size=3)))
    return f"<{tag}{cls}>t{inner}</{tag}>"


def ids(nodes: list[LexborNode]) -> list[str]:
    return [node.html or "" for node in nodes]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(markup(), min_size=1, max_size=3), min_size=2, max_size=5))
def test_a_tree_finds_what_selectolax_finds_page_after_page(pages: list[list[str]]) -> None:
    # One engine serves page after page, each freed before the next: the same matches as a
    # parser with its own engine, from the document and from its elements.
    for parts in pages:
        html = f"<main>{''.join(parts)}</main>"
        ours, theirs = Tree(html), LexborHTMLParser(html)
        for query in QUERIES:
            assert ids(ours.css(query)) == ids(theirs.css(query)), query
            first = ours.css_first(query)
            expected = theirs.css_first(query)
            assert (first and first.html) == (expected and expected.html)
            for mine, other in zip(ours.css("div"), theirs.css("div"), strict=True):
                assert ids(mine.css(query)) == ids(other.css(query)), query
        del ours, theirs
        gc.collect()


def test_pages_share_their_threads_engine_and_threads_have_their_own() -> None:
    first, second = Tree("<p>1</p>"), Tree("<p>2</p>")
    assert first.selector is second.selector
    assert first.selector is not LexborHTMLParser("<p></p>").selector
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(Tree("<p></p>").selector))
    thread.start()
    thread.join()
    assert found and found[0] is not first.selector


def test_a_bad_selector_is_selectolaxs_error() -> None:
    with pytest.raises(SelectolaxError):
        Tree("<p></p>").css("p[")
    assert [n.text() for n in Tree("<p>x</p>").css("p")] == ["x"]  # the engine goes on


def test_the_crawl_parses_pages_into_trees() -> None:
    parsed = parse_html("<title>t</title><p class=a>x</p>", want_links=True)
    assert isinstance(parsed.tree, Tree)
