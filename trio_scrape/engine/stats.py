"""A crawl's statistics: the counters its records and attempts move, and their snapshot.

:class:`Counters` is what the crawler updates as it goes (one :meth:`~Counters.count` per
record, on the sink task's path, so it is kept to plain attribute arithmetic);
:class:`CrawlStatistics` is the frozen snapshot :meth:`Crawler.statistics` returns. What the
counters do not own (the frontier's queue, the hosts' state, the browser's memory, the clock)
is passed in when a snapshot is taken.
"""

from __future__ import annotations

import array
import bisect
import collections
import dataclasses
import logging
import random
from collections.abc import Mapping
from typing import Any, Literal

from ..frontier.memory import FrontierStatistics
from ..frontier.pacing import HostStatistics
from ..model.page import Page

__all__ = ["LATENCY_BUCKETS", "LATENCY_SAMPLES", "Counters", "CrawlStatistics", "StopReason"]

logger = logging.getLogger("trio_scrape")

#: Why a crawl ended: it ran out of URLs, hit ``max_pages``, its ``deadline``, or was stopped
#: (:meth:`Crawler.stop`, a signal, a cancel scope around it, or an exception).
StopReason = Literal["finished", "max_pages", "deadline", "stopped"]

#: Page latencies kept for the percentiles: a uniform sample (reservoir) of at most this many.
LATENCY_SAMPLES = 10_000

#: Upper bounds (seconds) of the page latency histogram's buckets (+Inf is implied): every
#: record is counted in one, for ``--metrics``.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclasses.dataclass(frozen=True)
class CrawlStatistics:
    """A snapshot of a crawl, from :meth:`Crawler.statistics`."""

    pages: int  #: records written
    ok: int  #: records with ``ok`` true
    errors: Mapping[str, int]  #: records by ``error.kind``
    status_codes: Mapping[int, int]  #: records by final HTTP status
    bytes: int  #: decoded body bytes received
    queued: int  #: URLs waiting in the frontier
    in_flight: int  #: URLs handed to workers and not yet written
    seen: int  #: distinct URLs ever queued
    retries: int  #: extra attempts made
    invalid_links: int  #: hrefs that do not parse as URLs (or are too long)
    elapsed: float  #: seconds since the crawl started (until it ended, once it has)
    stop_reason: StopReason | None  #: None while running
    hosts: Mapping[str, HostStatistics] = dataclasses.field(default_factory=dict)
    """per origin (``scheme://host[:port]``): requests, errors, in flight, concurrency, delay"""
    latency_p50: float | None = None  #: median seconds per page (first try to record)
    latency_p95: float | None = None  #: 95th percentile of the same
    refused_by_max_pages: int = 0
    """distinct URLs found (in scope, never seen) that ``max_pages`` kept from being crawled"""
    revisits: int = 0
    """pages fetched once more, without a record, for their links: found at a smaller depth
    after they were handed out (see ``Frontier.add``)"""
    changed: int = 0  #: a recrawl's records of pages whose content changed since the last round
    unchanged: int = 0  #: ... of pages unchanged (``304 Not Modified``, or the same SHA-256)
    new: int = 0  #: ... of pages the last round did not have
    gone: int = 0  #: ... of pages the last round had that answer 404 or 410 now
    unlinked: int = 0
    """pages of earlier rounds that a finished recrawl round did not reach (no longer linked)"""
    rendered: int = 0  #: pages rendered by the browser (``render`` / ``render_auto``)
    tabs_in_use: int = 0  #: browser tabs rendering a page right now
    browser_memory: int | None = None  #: the browser's total PSS in bytes (None: not running)
    browser_peak_memory: int | None = None  #: the largest ``browser_memory`` sampled
    processes: int = 1  #: processes running the page pipeline (1: the crawler's own)
    worker_restarts: int = 0  #: worker processes replaced after they died
    items: int = 0  #: items written (a scraper's handlers emitted them)
    invalid_items: int = 0  #: items refused (not of the declared type, or not JSON)
    pauses: int = 0  #: times a host was paused (a retry's back-off or ``Retry-After``)
    latency_buckets: tuple[int, ...] = ()
    """records per bucket of :data:`LATENCY_BUCKETS` of their latency (first try to
    record), then those over the last bound"""
    latency_sum: float = 0.0  #: the sum of every record's latency, in seconds

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.elapsed if self.elapsed > 0 else 0.0


class Counters:
    """What a crawl has counted so far: records (by outcome, status, error kind, change),
    bytes, retries, invalid links, revisits, and a uniform sample of page latencies."""

    __slots__ = (
        "_rng",
        "bytes",
        "changes",
        "errors",
        "invalid_items",
        "invalid_links",
        "items",
        "latencies",
        "latency_buckets",
        "latency_sum",
        "ok",
        "pages",
        "pauses",
        "refused",
        "rendered_records",
        "retries",
        "revisits",
        "status_codes",
        "unlinked",
    )

    def __init__(self, rng: random.Random) -> None:
        self.pages = 0
        self.items = 0
        self.invalid_items = 0
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.status_codes: collections.Counter[int] = collections.Counter()
        self.bytes = 0
        self.retries = 0
        self.invalid_links = 0
        self.revisits = 0
        self.changes: collections.Counter[str] = collections.Counter()  # a recrawl's
        self.unlinked = 0
        self.refused: set[int] = set()  # hash() of URLs max_pages refused
        self.rendered_records = 0  # records of pages a browser rendered (data.rendered)
        self.latencies = array.array("d")
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.pauses = 0  # hosts paused by this process (retries)
        self._rng = rng

    def count(self, page: Page) -> None:
        """Count one record as it goes to the sink."""
        self.pages += 1
        if page.items:
            self.items += len(page.items)
        if "invalid_items" in page.data:
            self.invalid_items += page.data["invalid_items"]
        rendered = page.data.get("rendered")  # True, or render_auto's note
        if rendered is True or (
            isinstance(rendered, dict) and rendered.get("decision") == "render"
        ):
            self.rendered_records += 1
        elapsed = page.elapsed
        latencies = self.latencies
        if len(latencies) < LATENCY_SAMPLES:
            latencies.append(elapsed)
        else:
            slot = self._rng.randrange(self.pages)
            if slot < LATENCY_SAMPLES:
                latencies[slot] = elapsed
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        self.latency_sum += elapsed
        self.bytes += page.bytes
        if page.status is not None:
            self.status_codes[page.status] += 1
        change = page.data.get("change")
        if change is not None:
            self.changes[change] += 1
        if page.error is not None:
            self.errors[page.error.kind] += 1
        elif page.ok:
            self.ok += 1
        if logger.isEnabledFor(logging.DEBUG):
            outcome = page.error.kind if page.error else page.status
            logger.debug("%s %s (%.3fs)", outcome, page.url, page.elapsed)

    def snapshot(
        self,
        frontier: FrontierStatistics,
        *,
        hosts: Mapping[str, HostStatistics],
        elapsed: float,
        stop_reason: StopReason | None,
        **more: Any,
    ) -> CrawlStatistics:
        """A :class:`CrawlStatistics` of these counters with what they do not own:
        the frontier's and the hosts' state, the time, and ``more`` (rendering, processes)."""
        p50, p95 = percentiles(self.latencies, (0.5, 0.95))
        return CrawlStatistics(
            latency_p50=p50,
            latency_p95=p95,
            pages=self.pages,
            ok=self.ok,
            errors=dict(self.errors),
            status_codes=dict(self.status_codes),
            bytes=self.bytes,
            queued=frontier.queued,
            in_flight=frontier.leased,
            seen=frontier.seen,
            retries=self.retries,
            invalid_links=self.invalid_links,
            elapsed=elapsed,
            stop_reason=stop_reason,
            hosts=hosts,
            revisits=self.revisits,
            refused_by_max_pages=len(self.refused),
            changed=self.changes["changed"],
            unchanged=self.changes["unchanged"],
            new=self.changes["new"],
            gone=self.changes["gone"],
            unlinked=self.unlinked,
            items=self.items,
            invalid_items=self.invalid_items,
            pauses=self.pauses,
            latency_buckets=tuple(self.latency_buckets),
            latency_sum=self.latency_sum,
            **more,
        )


def percentiles(
    samples: array.array[float], fractions: tuple[float, float]
) -> tuple[float | None, float | None]:
    """The two ``fractions`` (0-1) of ``samples``, nearest rank; ``(None, None)`` if empty."""
    if not samples:
        return None, None
    ordered = sorted(samples)
    last = len(ordered) - 1
    low, high = (ordered[min(last, int(f * len(ordered)))] for f in fractions)
    return low, high
