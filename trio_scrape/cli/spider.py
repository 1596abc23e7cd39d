"""Spider files: a scraper defined in a Python file, run by ``trio-scrape crawl SPIDER.py``.

A TOML spider (``.toml``: see :mod:`trio_scrape.scraper.toml_spider`) has the same three
things as tables: ``start``, ``options`` and ``routes`` (compiled into a router).

A Python spider file is a module with, at its top level:

- ``router``: a :class:`~trio_scrape.Router` with the handlers (required);
- ``start``: the start URLs or :class:`~trio_scrape.Request` values, or a function (no
  arguments) that returns them (required, unless URLs are given on the command line);
- ``options`` (optional): a dict of ``run``/``crawl`` options by name, as a ``--config`` file
  has them (``{"max-pages": 100, "delay": 0.5}``); options on the command line win.

The file is imported as a module named after it, from its own directory (which is put on
``sys.path``, so a worker process imports it the same way, and a spider may import its
neighbours).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..model.request import Request
from ..model.validate import shorten
from .options import UsageError

__all__ = ["Spider", "load_spider"]


@dataclasses.dataclass(frozen=True)
class Spider:
    """What a spider file defines."""

    path: Path
    router: Any  #: a trio_scrape.Router
    start: tuple[str | Request, ...]
    options: dict[str, Any]
    #: a TOML spider's line of each key of ``options`` (for the errors that name it)
    option_lines: dict[str, int] = dataclasses.field(default_factory=dict)


def load_spider(path: Path) -> Spider:
    """Import the spider file at ``path`` and read what it defines.

    Raises:
        UsageError: the file is missing, is not Python, does not import (its line named), or
            lacks ``router`` or has a ``start`` or ``options`` of the wrong kind.
    """
    name = f"SPIDER {shorten(str(path), 200)}"
    if path.suffix == ".toml":
        return _load_toml(path, name)
    if path.suffix != ".py":
        raise UsageError(f"{name}: expected a Python file (.py) or a TOML spider (.toml)")
    if not path.is_file():
        raise UsageError(f"{name}: no such file")
    module_name = path.stem
    if not module_name.isidentifier():
        raise UsageError(f"{name}: the file name must be a Python module name")
    directory = str(path.resolve().parent)
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) != str(path.resolve()):
        raise UsageError(f"{name}: its name {module_name!r} is taken by another module")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    from . import options

    options.hooks_loaded = True  # the user's code runs: the process ends with full teardown
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise UsageError(f"{name}: line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        line = _line_of(exc, path)
        where = f"line {line}: " if line else ""
        raise UsageError(
            f"{name}: {where}importing it failed: {type(exc).__name__}: {exc}"
        ) from None
    return _read(module, name, path)


def _load_toml(path: Path, name: str) -> Spider:
    from ..scraper.toml_spider import TomlSpiderError, load_toml_spider

    if not path.is_file():
        raise UsageError(f"{name}: no such file")
    try:
        spider = load_toml_spider(path)
    except TomlSpiderError as exc:
        raise UsageError(f"{name}: {exc}") from None
    return Spider(path, spider.router, spider.start, spider.options, spider.option_lines)


def _read(module: Any, name: str, path: Path) -> Spider:
    from ..scraper.handlers import Router

    router = getattr(module, "router", None)
    if not isinstance(router, Router):
        raise UsageError(f"{name}: no `router` (a trio_scrape.Router) at its top level")
    start: Any = getattr(module, "start", ())
    if callable(start):
        try:
            start = start()
        except Exception as exc:
            raise UsageError(f"{name}: start() raised {type(exc).__name__}: {exc}") from None
    if isinstance(start, str | Request):
        start = [start]
    if not isinstance(start, Iterable) or not all(isinstance(s, str | Request) for s in start):
        raise UsageError(f"{name}: `start` must be URLs or Requests (or a function giving them)")
    spider_options = getattr(module, "options", {})
    if not isinstance(spider_options, dict):
        raise UsageError(f"{name}: `options` must be a dict of option names to values")
    return Spider(path, router, tuple(start), dict(spider_options))  # the path as given


def _line_of(exc: BaseException, path: Path) -> int | None:
    """The line of ``path`` where ``exc`` was raised (its innermost frame in that file)."""
    target = os.path.realpath(path)
    line = None
    traceback = exc.__traceback__
    while traceback is not None:
        if os.path.realpath(traceback.tb_frame.f_code.co_filename) == target:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line
