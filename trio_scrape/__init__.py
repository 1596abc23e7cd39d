"""trio-scrape: a web crawler and scraper built on Trio's structured concurrency.

Layers, from the outside in: the CLI (``trio_scrape._cli``) builds a :class:`CrawlConfig` and
calls the library; :class:`Crawler` / :func:`open_crawl` / :func:`scrape` run the engine
(``_crawler``), which moves :class:`CrawlRequest` s from a :class:`Frontier` through the
fetcher (``_fetch``) and parser (``_parse``) into :class:`Page` records for a :class:`Sink`.
Everything importable from here is public; the underscored modules are not.

Names are imported when first used (PEP 562): ``import trio_scrape`` costs almost nothing, so
the CLI's entry point runs (and catches a Ctrl-C) before the engine's imports.
"""

from __future__ import annotations

import importlib
import os

from ._version import __version__ as __version__

if os.environ.get("TRIO_SCRAPE_PURE_PYTHON") == "1":  # a compiled wheel run as plain Python
    from ._pure import prefer_source

    prefer_source()

# Not typing.TYPE_CHECKING: importing typing (16 ms) is most of what this module would cost,
# and a Ctrl-C during start-up is caught only once the entry point runs. mypy reads any
# TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._config import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
    from ._config import CrawlConfig as CrawlConfig
    from ._config import ExtractHook as ExtractHook
    from ._config import FollowHook as FollowHook
    from ._crawler import Crawler as Crawler
    from ._crawler import CrawlStatistics as CrawlStatistics
    from ._crawler import StopReason as StopReason
    from ._crawler import open_crawl as open_crawl
    from ._crawler import scrape as scrape
    from ._exceptions import ConfigError as ConfigError
    from ._exceptions import OutputError as OutputError
    from ._exceptions import StateError as StateError
    from ._exceptions import TrioScrapeError as TrioScrapeError
    from ._exceptions import WorkerError as WorkerError
    from ._frontier import Frontier as Frontier
    from ._frontier import FrontierStatistics as FrontierStatistics
    from ._frontier import MemoryFrontier as MemoryFrontier
    from ._page import CrawlRequest as CrawlRequest
    from ._page import ErrorKind as ErrorKind
    from ._page import Page as Page
    from ._page import PageError as PageError
    from ._parse import Selector as Selector
    from ._sinks import CsvSink as CsvSink
    from ._sinks import JsonlSink as JsonlSink
    from ._sinks import Sink as Sink
    from ._sinks import open_file_sink as open_file_sink
    from ._urls import browser_url as browser_url
    from ._urls import canonicalize as canonicalize

__all__ = [
    "ConfigError",
    "CrawlConfig",
    "CrawlRequest",
    "CrawlStatistics",
    "Crawler",
    "CsvSink",
    "DEFAULT_USER_AGENT",
    "ErrorKind",
    "ExtractHook",
    "FollowHook",
    "Frontier",
    "FrontierStatistics",
    "JsonlSink",
    "MemoryFrontier",
    "OutputError",
    "Page",
    "PageError",
    "Selector",
    "Sink",
    "StateError",
    "StopReason",
    "TrioScrapeError",
    "WorkerError",
    "__version__",
    "browser_url",
    "canonicalize",
    "open_crawl",
    "open_file_sink",
    "scrape",
]

_EXPORTS = {
    "DEFAULT_USER_AGENT": "._config",
    "CrawlConfig": "._config",
    "ExtractHook": "._config",
    "FollowHook": "._config",
    "Crawler": "._crawler",
    "CrawlStatistics": "._crawler",
    "StopReason": "._crawler",
    "open_crawl": "._crawler",
    "scrape": "._crawler",
    "ConfigError": "._exceptions",
    "OutputError": "._exceptions",
    "StateError": "._exceptions",
    "TrioScrapeError": "._exceptions",
    "WorkerError": "._exceptions",
    "Frontier": "._frontier",
    "FrontierStatistics": "._frontier",
    "MemoryFrontier": "._frontier",
    "CrawlRequest": "._page",
    "ErrorKind": "._page",
    "Page": "._page",
    "PageError": "._page",
    "Selector": "._parse",
    "CsvSink": "._sinks",
    "JsonlSink": "._sinks",
    "Sink": "._sinks",
    "open_file_sink": "._sinks",
    "browser_url": "._urls",
    "canonicalize": "._urls",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_scrape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    # Tracebacks and reprs say trio_scrape.Crawler, not trio_scrape._crawler.Crawler.
    if getattr(value, "__module__", "").startswith("trio_scrape._"):
        try:
            value.__module__ = "trio_scrape"
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


del TYPE_CHECKING
