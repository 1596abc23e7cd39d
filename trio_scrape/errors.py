"""The exceptions trio-scrape raises.

A failed *page* is never an exception: it is a record whose ``error`` says what went wrong
(see :class:`trio_scrape.PageError`). The exceptions below are for misuse and for failures
that stop a whole crawl::

    TrioScrapeError
    ├── ConfigError (also a ValueError)    bad option, seed URL or hook: raised before anything runs
    ├── OutputError                        the record sink failed (disk full, unwritable path)
    ├── StateError                         the --state database cannot be used or written
    ├── FrontierError                      the shared frontier (Redis) cannot be reached or used
    ├── WorkerError                        worker processes kept dying (--processes)
    ├── LoginFailed                        a scraper's log-in failed (its handler said so)
    └── BrowserActionError                 a handler's browser action failed (its page's error)

Anything else that escapes a crawl is a bug in trio-scrape or in a hook you gave it.
"""

from __future__ import annotations

__all__ = [
    "BrowserActionError",
    "ConfigError",
    "FrontierError",
    "LoginFailed",
    "OutputError",
    "StateError",
    "TrioScrapeError",
    "WorkerError",
]


class TrioScrapeError(Exception):
    """Base class of every exception trio-scrape raises on purpose."""


class ConfigError(TrioScrapeError, ValueError):
    """A configuration value, seed URL or hook reference is invalid.

    Raised at construction time (``CrawlConfig(...)``, ``Crawler(...)``), never mid-crawl.
    ``field`` names the offending option, so the CLI can point at the flag.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class OutputError(TrioScrapeError):
    """Writing records failed: the crawl cannot go on without losing them.

    The underlying :class:`OSError` is chained as ``__cause__``.
    """


class StateError(TrioScrapeError):
    """The crawl state (``CrawlConfig.state``) cannot be used: it is not a state file, another
    crawl holds it, it was made with other settings (``state_reset`` starts over), or writing
    it failed. Raised by :meth:`Crawler.run` before anything is fetched, except for a failed
    write, which stops the crawl (what was committed stays consistent).
    """


class FrontierError(TrioScrapeError):
    """The shared frontier (``CrawlConfig.frontier``, Redis) cannot be used: it cannot be
    reached, it failed or timed out mid-crawl, or the crawl id belongs to a crawl with other
    settings. What was committed stays committed; leases this process held expire and go back
    to the queue for the rest of the fleet.

    ``usage`` is true when the error is in what was asked (a crawl id taken by a crawl with
    other settings, another process writing the same file), not in Redis.
    """

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


class WorkerError(TrioScrapeError):
    """Worker processes (``CrawlConfig.processes``) died more often than they may be replaced
    (a few times per process: docs/processes.md), so the crawl stops. Pages they were running went
    back to the queue first: with ``state``, running the crawl again resumes it."""


class LoginFailed(TrioScrapeError):
    """A log-in failed: a scraper's handler raises it (directly, or through
    ``Context.require``) when the page shows the log-in did not work, and the crawl stops
    instead of scraping pages logged out. :meth:`Crawler.run` raises it too, with the URL and
    the reason, when the crawl's start-up step (``Router.on_start``) fails in any way or a
    handler raised it mid-crawl (``trio-scrape crawl`` exits with code 4). With ``state``,
    pages in flight go back to the queue: running the crawl again logs in again and resumes.
    """


class BrowserActionError(TrioScrapeError):
    """A handler's action on a rendered page failed: nothing matched its selector, its script
    threw, or the tab went away. Uncaught, it becomes the page's ``extract`` error (the crawl
    goes on)."""
