"""The crawl's Prometheus metrics (``--metrics HOST:PORT``), read from its statistics on scrape.

Nothing here runs per page: a :class:`CrawlCollector` asks the crawl for one snapshot of its
statistics (:class:`MetricsSnapshot`: the crawler's :class:`~.stats.CrawlStatistics`, the
shared frontier's round trips, whether the crawl has ended) each time Prometheus scrapes,
and turns it into metric families. The counters it reads are the ones every crawl keeps
anyway (the statistics unit, in the crawler's process: with worker processes its numbers
cover the whole crawl).

Serving: prometheus-client's WSGI app in the threaded WSGI server its ``start_http_server``
builds (the standard library's, a thread per scrape), run in a daemon thread, so a scrape's
text is built off the Trio thread and a slow or stuck scraper cannot hold the crawl's loop.
It is started here rather than by ``start_http_server`` for one setting: the serving loop
polls for its shutdown every :data:`_POLL` seconds, where ``start_http_server``'s polls every
0.5 s and so kept every crawl with ``--metrics`` about half a second past its end.

The one step that needs the crawl's state runs on the Trio thread, through
``trio.from_thread.run_sync``: the snapshot is taken between two of the crawl's steps,
consistent, without locks, and the crawl never sees the server's thread. :func:`serve_metrics`
binds the address before the crawl starts (a taken port is a
:class:`~trio_scrape.errors.ConfigError` on ``metrics``) and stops the server when the crawl
ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import trio
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ..errors import ConfigError
from ..frontier.timing import CALL_BUCKETS, CallTimesSnapshot
from ..model.config import parse_host_port
from .stats import LATENCY_BUCKETS, CrawlStatistics

__all__ = ["TOP_HOSTS", "CrawlCollector", "MetricsSnapshot", "serve_metrics"]

logger = logging.getLogger("trio_scrape")

#: Hosts labelled by name in the per-host metrics (the busiest by requests); the rest are
#: summed under ``host="other"``.
TOP_HOSTS = 20
_OTHER = "other"

#: Seconds between the serving loop's looks for its shutdown: the longest the end of a crawl
#: waits for the server to stop.
_POLL = 0.02


@dataclasses.dataclass(frozen=True)
class MetricsSnapshot:
    """What one scrape reads, taken on the crawl's Trio thread."""

    stats: CrawlStatistics
    now: float  #: the Trio clock, to tell which hosts are paused
    running: bool  #: False once the crawl has ended
    rendering: bool = False  #: whether the crawl renders pages (the browser's metrics)
    round_trips: CallTimesSnapshot | None = None  #: a shared frontier's calls (a fleet)


def _histogram(
    name: str, doc: str, bounds: tuple[float, ...], counts: tuple[int, ...], total: float
) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip((*bounds, math.inf), counts or (0,) * (len(bounds) + 1), strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


class CrawlCollector(Collector):
    """Metric families of a crawl, from ``read()`` (a :class:`MetricsSnapshot`) on each
    scrape; ``top_hosts`` bounds the per-host series (see :data:`TOP_HOSTS`)."""

    def __init__(
        self, read: Callable[[], MetricsSnapshot | None], *, top_hosts: int = TOP_HOSTS
    ) -> None:
        self._read = read
        self._top_hosts = top_hosts

    def collect(self) -> Iterator[Metric]:
        snapshot = self._read()
        if snapshot is None:
            return
        stats = snapshot.stats
        p = "trio_scrape_"

        pages = CounterMetricFamily(
            p + "pages",
            "Records written, by final HTTP status (none: no answer).",
            labels=["status"],
        )
        with_status = 0
        for status, count in sorted(stats.status_codes.items()):
            pages.add_metric([str(status)], count)
            with_status += count
        pages.add_metric(["none"], stats.pages - with_status)
        yield pages
        errors = CounterMetricFamily(
            p + "page_errors", "Records with an error, by its kind.", labels=["kind"]
        )
        for kind, count in sorted(stats.errors.items()):
            errors.add_metric([kind], count)
        yield errors
        yield CounterMetricFamily(p + "pages_ok", "Records with ok true.", value=stats.ok)
        items = CounterMetricFamily(
            p + "items",
            "Items a scraper's handlers emitted, written or refused.",
            labels=["outcome"],
        )
        items.add_metric(["written"], stats.items)
        items.add_metric(["refused"], stats.invalid_items)
        yield items
        yield _histogram(
            p + "page_duration_seconds",
            "Seconds from a page's first try to its record.",
            LATENCY_BUCKETS,
            stats.latency_buckets,
            stats.latency_sum,
        )
        yield CounterMetricFamily(p + "retries", "Extra attempts made.", value=stats.retries)
        yield CounterMetricFamily(
            p + "response_bytes", "Decoded body bytes received.", value=stats.bytes
        )
        yield CounterMetricFamily(
            p + "invalid_links", "Links that do not parse as URLs.", value=stats.invalid_links
        )
        yield CounterMetricFamily(
            p + "refused_by_max_pages",
            "URLs found that max_pages kept from being crawled.",
            value=stats.refused_by_max_pages,
        )
        yield GaugeMetricFamily(p + "queued_urls", "URLs waiting in the frontier.", stats.queued)
        yield GaugeMetricFamily(
            p + "pages_in_flight", "Pages handed out and not yet written.", stats.in_flight
        )
        yield GaugeMetricFamily(p + "seen_urls", "Distinct URLs ever queued.", stats.seen)
        yield GaugeMetricFamily(
            p + "crawl_running", "1 while the crawl runs, 0 once it has ended.", snapshot.running
        )
        yield GaugeMetricFamily(
            p + "crawl_elapsed_seconds", "Seconds since the crawl started.", stats.elapsed
        )
        yield from self._hosts(stats, snapshot.now)
        yield CounterMetricFamily(
            p + "host_pauses", "Times a host was paused (back-off, Retry-After).", stats.pauses
        )
        yield GaugeMetricFamily(
            p + "worker_processes", "Processes running the page pipeline.", stats.processes
        )
        yield CounterMetricFamily(
            p + "worker_restarts",
            "Worker processes replaced after they died.",
            value=stats.worker_restarts,
        )
        if snapshot.rendering:
            yield from self._browser(stats)
        trips = snapshot.round_trips
        if trips is not None:
            calls = CounterMetricFamily(
                p + "redis_calls",
                "Round trips to the fleet's Redis, by function.",
                labels=["function"],
            )
            for function, count in sorted(trips.calls.items()):
                calls.add_metric([function], count)
            yield calls
            yield _histogram(
                p + "redis_call_duration_seconds",
                "Seconds a round trip to the fleet's Redis took.",
                CALL_BUCKETS,
                trips.buckets,
                trips.seconds,
            )

    def _browser(self, stats: CrawlStatistics) -> Iterator[Metric]:
        p = "trio_scrape_"
        yield CounterMetricFamily(
            p + "rendered_pages", "Pages rendered by the browser.", value=stats.rendered
        )
        yield GaugeMetricFamily(
            p + "browser_tabs_in_use",
            "Browser tabs rendering a page now (0 with worker processes: not reported).",
            stats.tabs_in_use,
        )
        if stats.browser_memory is not None:
            yield GaugeMetricFamily(
                p + "browser_memory_bytes", "The browsers' total PSS.", stats.browser_memory
            )
        if stats.browser_peak_memory is not None:
            yield GaugeMetricFamily(
                p + "browser_peak_memory_bytes",
                "The largest browser memory sampled.",
                stats.browser_peak_memory,
            )

    def _hosts(self, stats: CrawlStatistics, now: float) -> Iterator[Metric]:
        """Per-host series: the ``top_hosts`` busiest hosts by name, the rest as ``other``."""
        p = "trio_scrape_host_"
        label = ["host"]
        requests = CounterMetricFamily(p + "requests", "Attempts started, by host.", labels=label)
        errors = CounterMetricFamily(p + "errors", "Attempts that failed, by host.", labels=label)
        in_flight = GaugeMetricFamily(
            p + "in_flight", "Attempts running now, by host.", labels=label
        )
        limit = GaugeMetricFamily(
            p + "concurrency_limit", "The host's concurrency limit now.", labels=label
        )
        paused = GaugeMetricFamily(
            p + "paused", "Hosts paused now (other: how many).", labels=label
        )
        ranked = sorted(stats.hosts.items(), key=lambda kv: (-kv[1].requests, kv[0]))
        for origin, host in ranked[: self._top_hosts]:
            requests.add_metric([origin], host.requests)
            errors.add_metric([origin], host.errors)
            in_flight.add_metric([origin], host.in_flight)
            limit.add_metric([origin], host.concurrency)
            paused.add_metric([origin], _paused(host.paused_until, now))
        rest = [host for _, host in ranked[self._top_hosts :]]
        if rest:
            requests.add_metric([_OTHER], sum(h.requests for h in rest))
            errors.add_metric([_OTHER], sum(h.errors for h in rest))
            in_flight.add_metric([_OTHER], sum(h.in_flight for h in rest))
            paused.add_metric([_OTHER], sum(_paused(h.paused_until, now) for h in rest))
        yield from (requests, errors, in_flight, limit, paused)
        yield GaugeMetricFamily(
            p[:-1] + "s_tracked", "Hosts in the crawl's host table.", len(stats.hosts)
        )


def _paused(until: float | None, now: float) -> int:
    return int(until is not None and until > now)


class _Reader:
    """Reads a snapshot on the Trio thread for the server's thread, and notes when a scrape
    has read the figures of an ended crawl."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot], token: trio.lowlevel.TrioToken):
        self._snapshot = snapshot
        self._token = token
        self.final_read = trio.Event()  # set on the Trio thread

    def _on_trio_thread(self) -> MetricsSnapshot:
        snapshot = self._snapshot()
        if not snapshot.running:
            self.final_read.set()
        return snapshot

    def __call__(self) -> MetricsSnapshot | None:
        """The snapshot; None when the crawl's Trio loop has ended (a scrape racing the end
        of ``trio.run``: it gets no crawl metrics)."""
        try:
            return trio.from_thread.run_sync(self._on_trio_thread, trio_token=self._token)
        except trio.RunFinishedError:
            return None


@asynccontextmanager
async def serve_metrics(
    address: str,
    snapshot: Callable[[], MetricsSnapshot],
    *,
    linger: float = 0.0,
) -> AsyncIterator[tuple[str, int]]:
    """Serve ``snapshot()``'s metrics at ``http://address/metrics`` inside the block; yield
    the address bound (host, port: the port chosen when ``address`` asks for 0).

    When the block ends normally (the crawl ended, it did not fail), wait up to ``linger``
    seconds for one scrape of the final figures (a snapshot that says the crawl is no
    longer running) first; then, whatever happened, stop the server.

    Raises:
        ConfigError: (``metrics``) the address is malformed, or cannot be listened on (taken,
            not this machine's).
    """
    try:
        host, port = parse_host_port(address)
    except ValueError as exc:
        raise ConfigError("metrics", str(exc)) from None
    reader = _Reader(snapshot, trio.lowlevel.current_trio_token())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CrawlCollector(reader))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, memory, open fds
    try:
        server, thread = _start_server(host, port, registry)
    except OSError as exc:
        raise ConfigError(
            "metrics", f"cannot serve metrics on {address}: {exc.strerror or exc}"
        ) from None
    bound = server.server_address
    where = (str(bound[0]), int(bound[1]))
    # A port the system chose (0) is said without -v: the user has no other way to learn it.
    logger.log(
        logging.INFO if port else logging.WARNING,
        "serving metrics at http://%s/metrics",
        address if port else f"{host}:{where[1]}",
    )
    try:
        yield where
        if linger > 0:
            with trio.move_on_after(linger):
                await reader.final_read.wait()
    finally:
        with trio.CancelScope(shield=True):
            # shutdown() waits for the serving loop's next poll (up to _POLL seconds).
            await trio.to_thread.run_sync(_stop, server, thread)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (a line on stderr per scrape otherwise)."""


def _start_server(
    host: str, port: int, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread]:
    """Listen on ``host:port`` and serve ``registry`` from a daemon thread, as prometheus-
    client's ``start_http_server`` does, with a serving loop that looks for its shutdown every
    :data:`_POLL` seconds.

    Raises:
        OSError: the address cannot be resolved or listened on.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a stuck scrape's thread does not hold the process
        address_family = family

    server = make_server(
        str(sockaddr[0]), port, make_wsgi_app(registry), Server, handler_class=_QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL},
        name="trio-scrape metrics",
        daemon=True,
    )
    thread.start()
    return server, thread


def _stop(server: WSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
