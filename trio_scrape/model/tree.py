"""A parsed page whose CSS queries share one selector engine a thread.

selectolax's parser makes lexbor's CSS engine (a CSS parser, its selector memory and a
matcher: several memory pools) on the page's first ``css`` / ``css_first`` query, and frees it
with the page. A crawl parses a page, queries it a few times and drops it, so it paid for an
engine a page. :class:`Tree` is selectolax's parser with one change: its ``selector`` (the
engine every query of the page and of its elements goes through, ``node.css`` included) is the
calling thread's, made once. Queries, their results and their errors (``SelectolaxError``
for a selector that does not parse) are selectolax's own.

One engine serves one query at a time: each query runs to its end in C with no Python code in
between, and each thread has its own engine, so neither Trio's tasks nor threads share one
mid-query.
"""

from __future__ import annotations

import threading

from selectolax.lexbor import LexborCSSSelector, LexborHTMLParser

__all__ = ["Tree"]

_local = threading.local()


class Tree(LexborHTMLParser):
    """selectolax's ``LexborHTMLParser``, querying through its thread's selector engine."""

    @property
    def selector(self) -> LexborCSSSelector:
        """This thread's CSS engine (made on its first query)."""
        engine: LexborCSSSelector | None = getattr(_local, "engine", None)
        if engine is None:
            engine = _local.engine = LexborCSSSelector()  # type: ignore[no-untyped-call]  # untyped in its stub
        return engine
