"""trio-scrape: a web crawler and scraper built on Trio's structured concurrency.

Layers, from the outside in: the CLI (``cli``) builds a :class:`CrawlConfig` and calls the
library; :class:`Crawler` / :func:`open_crawl` / :func:`scrape` run the engine (``engine``),
which moves :class:`CrawlRequest` s from a :class:`Frontier` (``frontier``) through the
fetcher (``http``) and parser (``model.parse``) into :class:`Page` records for a
:class:`Sink` (``output``). Everything importable from here is public; the subpackages are
not (tests/test_layers.py keeps their layers apart).

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

    from .engine.crawler import Crawler as Crawler
    from .engine.crawler import open_crawl as open_crawl
    from .engine.crawler import scrape as scrape
    from .engine.stats import CrawlStatistics as CrawlStatistics
    from .engine.stats import StopReason as StopReason
    from .errors import BrowserActionError as BrowserActionError
    from .errors import ConfigError as ConfigError
    from .errors import FrontierError as FrontierError
    from .errors import LoginFailed as LoginFailed
    from .errors import OutputError as OutputError
    from .errors import StateError as StateError
    from .errors import TrioScrapeError as TrioScrapeError
    from .errors import WorkerError as WorkerError
    from .frontier.base import Frontier as Frontier
    from .frontier.base import FrontierStatistics as FrontierStatistics
    from .frontier.memory import MemoryFrontier as MemoryFrontier
    from .model.config import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
    from .model.config import CrawlConfig as CrawlConfig
    from .model.config import ExtractHook as ExtractHook
    from .model.config import FollowHook as FollowHook
    from .model.page import CrawlRequest as CrawlRequest
    from .model.page import ErrorKind as ErrorKind
    from .model.page import Page as Page
    from .model.page import PageError as PageError
    from .model.parse import Selector as Selector
    from .model.request import Request as Request
    from .model.request import RequestError as RequestError
    from .model.urls import browser_url as browser_url
    from .model.urls import canonicalize as canonicalize
    from .output.sinks import CsvSink as CsvSink
    from .output.sinks import JsonlSink as JsonlSink
    from .output.sinks import Sink as Sink
    from .output.sinks import open_file_sink as open_file_sink
    from .scraper.browser import BrowserTab as BrowserTab
    from .scraper.browser import CapturedResponse as CapturedResponse
    from .scraper.forms import FormError as FormError
    from .scraper.forms import FormFile as FormFile
    from .scraper.forms import FormSubmission as FormSubmission
    from .scraper.forms import form_submission as form_submission
    from .scraper.handlers import Context as Context
    from .scraper.handlers import Router as Router
    from .scraper.items import ItemError as ItemError

__all__ = [
    "BrowserActionError",
    "BrowserTab",
    "CapturedResponse",
    "ConfigError",
    "Context",
    "CrawlConfig",
    "CrawlRequest",
    "CrawlStatistics",
    "Crawler",
    "CsvSink",
    "DEFAULT_USER_AGENT",
    "ErrorKind",
    "ExtractHook",
    "FollowHook",
    "FormError",
    "FormFile",
    "FormSubmission",
    "Frontier",
    "FrontierError",
    "FrontierStatistics",
    "ItemError",
    "JsonlSink",
    "LoginFailed",
    "MemoryFrontier",
    "OutputError",
    "Page",
    "PageError",
    "Request",
    "RequestError",
    "Router",
    "Selector",
    "Sink",
    "StateError",
    "StopReason",
    "TrioScrapeError",
    "WorkerError",
    "__version__",
    "browser_url",
    "canonicalize",
    "form_submission",
    "open_crawl",
    "open_file_sink",
    "scrape",
]

_EXPORTS = {
    "DEFAULT_USER_AGENT": ".model.config",
    "CrawlConfig": ".model.config",
    "ExtractHook": ".model.config",
    "FollowHook": ".model.config",
    "Crawler": ".engine.crawler",
    "CrawlStatistics": ".engine.stats",
    "StopReason": ".engine.stats",
    "open_crawl": ".engine.crawler",
    "scrape": ".engine.crawler",
    "BrowserActionError": ".errors",
    "ConfigError": ".errors",
    "FrontierError": ".errors",
    "LoginFailed": ".errors",
    "OutputError": ".errors",
    "StateError": ".errors",
    "TrioScrapeError": ".errors",
    "WorkerError": ".errors",
    "Frontier": ".frontier.base",
    "FrontierStatistics": ".frontier.base",
    "MemoryFrontier": ".frontier.memory",
    "CrawlRequest": ".model.page",
    "ErrorKind": ".model.page",
    "Page": ".model.page",
    "PageError": ".model.page",
    "Selector": ".model.parse",
    "Request": ".model.request",
    "RequestError": ".model.request",
    "BrowserTab": ".scraper.browser",
    "CapturedResponse": ".scraper.browser",
    "FormError": ".scraper.forms",
    "FormFile": ".scraper.forms",
    "FormSubmission": ".scraper.forms",
    "form_submission": ".scraper.forms",
    "Context": ".scraper.handlers",
    "Router": ".scraper.handlers",
    "ItemError": ".scraper.items",
    "CsvSink": ".output.sinks",
    "JsonlSink": ".output.sinks",
    "Sink": ".output.sinks",
    "open_file_sink": ".output.sinks",
    "browser_url": ".model.urls",
    "canonicalize": ".model.urls",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trio_scrape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    # Tracebacks and reprs say trio_scrape.Crawler, not trio_scrape.engine.crawler.Crawler.
    if getattr(value, "__module__", "").startswith("trio_scrape."):
        try:
            value.__module__ = "trio_scrape"
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


del TYPE_CHECKING
