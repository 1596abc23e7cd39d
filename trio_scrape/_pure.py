"""``TRIO_SCRAPE_PURE_PYTHON=1``: run a compiled install's modules as plain Python.

A wheel ships the per-page modules twice: compiled by mypyc (hatch_build.py) and as source.
The import system prefers the extension; with this set, the package's own finder loads every
``trio_scrape`` module from its ``.py`` file instead, so that a compiled build can be compared
with (or ruled out against) plain Python without reinstalling. Worker processes inherit it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["prefer_source"]

_PACKAGE_DIR = Path(__file__).resolve().parent


class _SourceFirst:
    """A meta path finder for ``trio_scrape.PACKAGE.NAME``: ``PACKAGE/NAME.py`` if there is one."""

    @classmethod
    def find_spec(
        cls, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        top, _, rest = name.partition(".")
        if top != "trio_scrape" or not rest:
            return None
        source = _PACKAGE_DIR.joinpath(*rest.split(".")).with_suffix(".py")
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(name, source)


def prefer_source() -> None:
    """Load the package's modules from source from now on (idempotent)."""
    if _SourceFirst not in sys.meta_path:
        sys.meta_path.insert(0, _SourceFirst)
