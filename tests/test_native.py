"""model._native (Cython, built in wheels): a field's query and text in C give exactly what
selectolax's Python API gives; without the module (an editable install, a selectolax it was
not built for) the same fields are read through that API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from trio_scrape.model import native
from trio_scrape.model.parse import css_first_text, first_text
from trio_scrape.model.rows import Rows, rows_of
from trio_scrape.model.tree import Tree

needs_native = pytest.mark.skipif(
    native.first_text is None,
    reason=f"the native module is not built here ({native.unavailable}): a wheel builds it",
)

TAGS = ("div", "span", "p", "b", "section", "template", "textarea")
CLASSES = ("a", "b", "row")
# Whitespace as str.split() has it (ASCII and not), text, markup the text read leaves out.
WORDS = (
    "x",
    "y z",
    " ",
    "\t\n",
    "\x0b\x0c",
    "\x1c\x1f",
    "\x85",
    "\xa0",
    "\u2003\u3000",
    "é日",
    "&amp; &nbsp;",
    "<!-- c -->",
    "<br>",
)


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    classes = draw(st.lists(st.sampled_from(CLASSES), max_size=2))
    words = draw(st.lists(st.sampled_from(WORDS), max_size=3))
    children = [] if depth >= 3 else draw(st.lists(elements(depth + 1), max_size=3))
    parts = draw(st.permutations([*words, *children]))
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<{tag}{attribute}>{''.join(parts)}</{tag}>"


@st.composite
def pages(draw: st.DrawFn) -> str:
    rows = draw(st.lists(elements(1), min_size=2, max_size=6))
    between = draw(st.lists(elements(1), max_size=2))
    body = [f'<div class="row">{row}</div>' for row in rows] + between
    body = draw(st.permutations(body))
    return f'<main><span class="a">outside</span><section>{"".join(body)}</section></main>'


@st.composite
def compounds(draw: st.DrawFn) -> str:
    tag = draw(st.sampled_from(("", "*", *TAGS)))
    extra = draw(
        st.lists(
            st.sampled_from(
                (
                    ".a",
                    ".b",
                    ".row",
                    "[class]",
                    '[class~="b"]',
                    ":first-child",
                    ":last-child",
                    ":nth-child(2n+1)",
                    ":not(.a)",
                    ":has(b)",
                    ":empty",
                )
            ),
            max_size=2,
        )
    )
    return tag + "".join(extra) or "*"


@st.composite
def selectors(draw: st.DrawFn) -> str:
    """A selector list: compounds joined by combinators, now and then a broken one."""
    if draw(st.integers(0, 15)) == 0:
        return draw(st.sampled_from(("[[", "div >", "", ":nope(", "a,,b", "p:", "#", "..a")))
    complexes = []
    for _ in range(draw(st.integers(1, 2))):
        parts = [draw(compounds())]
        for _ in range(draw(st.integers(0, 2))):
            parts += [draw(st.sampled_from((" ", " > ", " + ", " ~ "))), draw(compounds())]
        complexes.append("".join(parts))
    return ", ".join(complexes)


def outcome(call: Callable[..., object], *args: object) -> object:
    """What ``call(*args)`` returns, or the type and message of what it raises."""
    try:
        return call(*args)
    except (SelectolaxError, ValueError) as exc:
        return (type(exc), str(exc))


@needs_native
@settings(max_examples=200, deadline=None)
@given(pages(), st.lists(selectors(), min_size=1, max_size=4))
def test_the_native_texts_are_selectolaxs(html: str, queries: list[str]) -> None:
    native_first_text, native_row_texts = native.first_text, native.row_texts
    assert native_first_text is not None and native_row_texts is not None
    for tree in (Tree(html), LexborHTMLParser(html)):
        rows = rows_of(tree.css("main > section > div.row"))  # None: raw text ate a row
        for query in queries:
            for node in (tree, *tree.css("section, section *")):
                assert outcome(native_first_text, node, query) == outcome(
                    css_first_text, node, query
                ), (query, node)
            if rows is not None:
                assert outcome(native_row_texts, rows._parent, rows.index, query) == (
                    outcome(rows.css_collect, query)
                ), query


@needs_native
@settings(max_examples=100, deadline=None)
@given(st.lists(elements(), min_size=1, max_size=4), selectors())
def test_fragments_and_templates_as_selectolax_has_them(parts: list[str], query: str) -> None:
    # A fragment's parser searches through a wrapper it must not report; a template's
    # content does not match itself; a fragment's root stands for its top-level nodes.
    fragment = LexborHTMLParser("".join(parts), is_fragment=True)
    document = LexborHTMLParser(f"<body>{''.join(parts)}</body>")
    assert native.first_text is not None
    nodes: list[LexborHTMLParser | LexborNode] = [fragment, document]
    for tree in (fragment, document):
        nodes += tree.css("*")
        for template in tree.css("template"):
            nodes += template.template_fragments()
    if fragment.root is not None:
        nodes.append(fragment.root)
    for node in nodes:
        assert outcome(native.first_text, node, query) == outcome(css_first_text, node, query), (
            query,
            node,
        )


@needs_native
def test_a_bad_selector_raises_selectolaxs_error() -> None:
    tree = Tree("<div><p>a</p><p>b</p></div>")
    rows = rows_of(tree.css("p"))
    assert rows is not None and native.row_texts is not None
    for query in ("[[", "p >", ""):
        with pytest.raises(SelectolaxError) as expected:
            tree.css_first(query)
        with pytest.raises(SelectolaxError) as raised:
            first_text(tree, query)
        assert str(raised.value) == str(expected.value)
        with pytest.raises(SelectolaxError) as raised:
            native.row_texts(rows._parent, rows.index, query)
        assert str(raised.value) == str(expected.value)
        assert first_text(tree, "p") == "a"  # the engine is still sound after a failure


@needs_native
def test_more_selectors_than_the_cache_holds() -> None:
    from trio_scrape.model import _native

    tree = Tree("".join(f'<p class="c{i}">{i}</p>' for i in range(_native.CACHE_SIZE + 20)))
    for _ in range(2):
        for i in range(_native.CACHE_SIZE + 20):
            assert first_text(tree, f"p.c{i}") == str(i)


@needs_native
def test_threads_query_at_once_each_with_its_own_engine() -> None:
    html = "<ul>" + "".join(f"<li><b>{i}</b><i>x{i}</i></li>" for i in range(50)) + "</ul>"
    expected = [[str(i) for i in range(50)], [f"x{i}" for i in range(50)]]
    start = threading.Barrier(4)
    failures: list[object] = []

    def work() -> None:
        tree = Tree(html)
        start.wait()
        for _ in range(200):
            rows = rows_of(tree.css("li"))
            assert rows is not None
            got = [[rows.text(q, i) for i in range(50)] for q in ("b", "i")]
            if got != expected:
                failures.append(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_rows_and_first_text_read_the_same_with_or_without_the_native_module() -> None:
    # In the build under test (native or not) and in a process whose native module fails
    # to import as it does beside a selectolax of another layout.
    html = "<ul><li><b> one\xa0 </b><i>x</i></li><li><i>y\u2003z</i></li><li><b>3</b></li></ul>"
    tree = Tree(html)
    rows = rows_of(tree.css("li"))
    assert isinstance(rows, Rows)
    here = [[rows.text(q, i) for i in range(3)] for q in ("b", "i", "li")]
    assert here == [["one", None, "3"], ["x", "y z", None], ["one x", "y z", "3"]]
    assert first_text(tree, "li + li i", "-") == "y z"
    assert first_text(tree, "em", "-") == "-"
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout, format='%(message)s')\n"
        "class Refuse:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name == 'trio_scrape.model._native':\n"
        "            raise ValueError('LexborNode size changed, may indicate binary "
        "incompatibility')\n"
        "sys.meta_path.insert(0, Refuse)\n"
        "from trio_scrape.model import native\n"
        "from trio_scrape.model.parse import first_text\n"
        "from trio_scrape.model.rows import rows_of\n"
        "from trio_scrape.model.tree import Tree\n"
        "assert native.first_text is None and native.row_texts is None\n"
        "print('unavailable:', native.unavailable)\n"
        f"tree = Tree({html!r})\n"
        "rows = rows_of(tree.css('li'))\n"
        "print([[rows.text(q, i) for i in range(3)] for q in ('b', 'i', 'li')])\n"
        "print(first_text(tree, 'li + li i', '-'), first_text(tree, 'em', '-'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    lines = result.stdout.splitlines()
    assert lines[-3] == (
        "unavailable: ValueError: LexborNode size changed, may indicate binary incompatibility"
    )
    assert any("trio_scrape.model._native not used" in line for line in lines)
    assert lines[-2] == repr(here)
    assert lines[-1] == "y z -"
    assert result.stderr == ""


def test_pure_python_leaves_the_native_module_out() -> None:
    env = {**os.environ, "TRIO_SCRAPE_PURE_PYTHON": "1"}
    script = "from trio_scrape.model import native; print(native.first_text, native.unavailable)"
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["None", "TRIO_SCRAPE_PURE_PYTHON=1"]
