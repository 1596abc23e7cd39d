"""The selector functions of :mod:`trio_scrape.model._native` when it is there, else None.

``_native`` is a Cython module (``_native.pyx``) that a wheel compiles (hatch_build.py): a
field's selector query and its text read in C over selectolax's own lexbor tree, with each
selector compiled once per thread. An editable install has no compiled module, and a wheel
built without a C compiler or Cython, or installed beside a selectolax whose layout differs
from the one it was built for (it checks on import), has none that loads: then
:func:`first_text` and :func:`row_texts` here are None, and their callers
(:func:`trio_scrape.model.parse.first_text`, :class:`trio_scrape.model.rows.Rows`) query through
selectolax's Python API. The results are the same either way; only the time differs.

``TRIO_SCRAPE_PURE_PYTHON=1`` leaves the native module out as well.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["first_text", "row_texts", "unavailable"]

_log = logging.getLogger(__name__)

#: ``(node or parser, query)``: the whitespace-normalised text of the first match, or None.
first_text: Callable[[LexborNode | LexborHTMLParser, str], str | None] | None = None
#: ``(parent, row index by mem_id, query)``: each row's first match's text; None when the
#: parent is one selectolax searches through another node (a fragment's root).
row_texts: Callable[[LexborNode, dict[int, int], str], list[str | None] | None] | None = None
#: Why the native module is not used (None when it is).
unavailable: str | None = None


def _load() -> None:
    global first_text, row_texts, unavailable
    if os.environ.get("TRIO_SCRAPE_PURE_PYTHON") == "1":
        unavailable = "TRIO_SCRAPE_PURE_PYTHON=1"
        return
    try:
        from . import _native
    except Exception as exc:  # not built (ImportError), or built for another selectolax
        unavailable = f"{type(exc).__name__}: {exc}"
        _log.debug("trio_scrape.model._native not used (%s): selectolax's Python API", unavailable)
        return
    first_text = _native.first_text
    row_texts = _native.row_texts


_load()
