"""trio-scrape: a web crawler and scraper built on Trio's structured concurrency.

Layers, from the outside in: the CLI (``trio_scrape._cli``) builds a :class:`CrawlConfig` and
calls the library; :class:`Crawler` / :func:`open_crawl` / :func:`scrape` run the engine
(``_crawler``), which moves :class:`CrawlRequest` s from a :class:`Frontier` through the
fetcher (``_fetch``) and parser (``_parse``) into :class:`Page` records for a :class:`Sink`.
Everything importable from here is public; the underscored modules are not.
"""

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
from ._version import __version__ as __version__

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
    "__version__",
    "browser_url",
    "canonicalize",
    "open_crawl",
    "open_file_sink",
    "scrape",
]

# Tracebacks and reprs say trio_scrape.Crawler, not trio_scrape._crawler.Crawler.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trio_scrape._"):
        try:
            _obj.__module__ = "trio_scrape"
        except (AttributeError, TypeError):
            pass
del _name, _obj
