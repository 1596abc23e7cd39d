"""Rows: a field's text in every element of one selection, found with one selector query.

A scraper's loop reads the same fields from each element of a list (``for product in
ctx.css("div.product")``: its name, its price...). Asked element by element, that is one CSS
query per field per element, and selectolax parses the selector's text again on every query
(about 2 us each, most of a field's cost). When the elements are siblings, as the items of a
list are, :class:`Rows` asks each field once, over their parent, and gives every element its
first match: the same element a query inside it finds (selectors match against the whole
document either way, and siblings' subtrees do not overlap), at a fraction of the cost.

Where a wheel built :mod:`trio_scrape.model._native` (:mod:`trio_scrape.model.native`), a
field's query, the walk from each match up to its row and the texts run in C, with the selector
compiled once per thread; elsewhere through selectolax's Python API (:meth:`Rows.css_collect`).
The texts are the same.

A field's texts are read when it is first asked for, and kept as text (not as elements): a
handler that changes the tree afterwards reads the texts as they were.
"""

from __future__ import annotations

from selectolax.lexbor import LexborNode

from .native import row_texts as _native_row_texts
from .parse import first_text

__all__ = ["RowIndex", "Rows", "rows_of"]


class Rows:
    """Sibling elements (``nodes``, in document order, of one ``parent``), each a row whose
    fields :meth:`text` reads with one selector query per field."""

    __slots__ = ("_parent", "_texts", "index")

    def __init__(self, parent: LexborNode, nodes: list[LexborNode]) -> None:
        self._parent = parent
        #: Each row's position, by its element's ``mem_id``.
        self.index: dict[int, int] = {node.mem_id: i for i, node in enumerate(nodes)}
        self._texts: dict[str, list[str | None]] = {}

    def text(self, query: str, row: int) -> str | None:
        """The whitespace-normalised text of the first element ``query`` matches inside row
        number ``row`` (the row's element itself included, as a query inside it has it), or
        None."""
        texts = self._texts.get(query)
        if texts is None:
            texts = self._texts[query] = self._collect(query)
        return texts[row]

    def _collect(self, query: str) -> list[str | None]:
        native = _native_row_texts
        if native is not None:
            texts = native(self._parent, self.index, query)
            if texts is not None:
                return texts
        return self.css_collect(query)

    def css_collect(self, query: str) -> list[str | None]:
        """Every row's text for ``query`` through selectolax's Python API (``css``,
        ``parent``, ``text_lexbor``): what the native module matches, and what runs where it
        is not built."""
        index = self.index
        stop = self._parent.mem_id
        texts: list[str | None] = [None] * len(index)
        left = len(index)
        for match in self._parent.css(query):
            node: LexborNode | None = match
            while node is not None:  # up to the row that holds the match, if one does
                ident = node.mem_id
                row = index.get(ident)
                if row is not None:
                    if texts[row] is None:
                        texts[row] = " ".join(match.text_lexbor().split())
                        left -= 1
                    break
                if ident == stop:
                    break
                node = node.parent
            if not left:
                break
        return texts


def rows_of(nodes: list[LexborNode]) -> Rows | None:
    """``nodes`` as :class:`Rows` when there are two or more, all children of one parent;
    None otherwise (each is then asked on its own)."""
    if len(nodes) < 2:
        return None
    parent = nodes[0].parent
    if parent is None:
        return None
    ident = parent.mem_id
    for node in nodes:
        above = node.parent
        if above is None or above.mem_id != ident:
            return None
    return Rows(parent, nodes)


class RowIndex:
    """The rows of one page's selections: :meth:`text` reads a field through the rows of the
    element it is asked of (one query a field), or, for an element of no rows, with a query
    of its own. Selections are indexed only when a field is first asked for."""

    __slots__ = ("_pending", "_rows")

    def __init__(self) -> None:
        self._pending: list[list[LexborNode]] = []
        self._rows: dict[int, tuple[Rows, int]] = {}

    def add(self, nodes: list[LexborNode]) -> None:
        """A selection the page made (each of its elements may be a row)."""
        if len(nodes) > 1:
            self._pending.append(nodes)

    def clear(self) -> None:
        """Forget every selection (the page's tree was replaced)."""
        self._pending.clear()
        self._rows.clear()

    def __len__(self) -> int:
        """How many elements are indexed as rows."""
        return len(self._rows)

    def text(self, node: LexborNode, query: str, default: str | None = None) -> str | None:
        """The whitespace-normalised text of the first element ``query`` matches inside
        ``node`` (``node`` included), ``default`` when none does."""
        found = self._rows.get(node.mem_id)
        if found is None:
            if not self._pending:
                return first_text(node, query, default)
            found = self._index(node.mem_id)
            if found is None:
                return first_text(node, query, default)
        text = found[0].text(query, found[1])
        return default if text is None else text

    def _index(self, ident: int) -> tuple[Rows, int] | None:
        # Newest first, up to the selection that holds the element: a handler reads the list
        # it selected last, and a selection it never reads (all of a page's links, say) is
        # not indexed.
        indexed = self._rows
        pending = self._pending
        while pending:
            rows = rows_of(pending.pop())
            if rows is not None:
                for key, row in rows.index.items():
                    indexed.setdefault(key, (rows, row))
                if ident in rows.index:
                    break
        return indexed.get(ident)
