"""Per-host politeness: how many requests a host may have in flight, and when the next may start.

A :class:`HostLimiter` keeps one small state per origin (scheme, host and port): requests in
flight against a concurrency limit, the earliest time the next request may start (the
``delay`` since the previous start, with jitter; at least the robots.txt ``Crawl-delay``),
and a pause (``Retry-After``, back-off). It never sleeps: the frontier asks it
:meth:`~HostLimiter.ready_at` and dispatches only hosts that are ready, so no worker waits
for a slow host while others have work.

With ``autothrottle`` each host's concurrency limit adapts (AIMD, as TCP does): it starts at
1; a response that comes back fast and well adds ``1/limit`` (so one more slot per round of
``limit`` responses), up to ``per_host``; a timeout, a connection failure, a 429 or 5xx
answer, or a latency over twice the host's best latency (plus 50 ms) halves it, at most once
per round. The limit therefore settles just below the concurrency at which the server starts
to slow down, instead of overshooting it.

Host states are kept in an LRU of ``max_hosts`` entries: a host with nothing in flight that
was not used for a while is forgotten, so a crawl of a million hosts keeps a bounded table.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import trio

from ..model.config import CrawlConfig
from ..model.page import rebuilt_by_fields
from ..model.request import Request

logger = logging.getLogger("trio_scrape")

__all__ = [
    "HostEvent",
    "HostLimiter",
    "HostPaused",
    "HostStatistics",
    "RequestFinished",
    "RobotsLoaded",
]

_SLACK = 0.05  # seconds of latency above twice the best that still count as "fast"


@dataclasses.dataclass(frozen=True)
class HostStatistics:
    """One host's politeness state, from :meth:`Crawler.statistics`."""

    requests: int  #: attempts started
    errors: int  #: attempts that failed (connection, timeout, 429/5xx)
    in_flight: int  #: attempts running now
    concurrency: int  #: the current concurrency limit (adapts with autothrottle)
    delay: float  #: minimum seconds between request starts (delay or Crawl-delay)
    paused_until: float | None  #: trio clock time the host is paused until, if it is

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return rebuilt_by_fields(self)


@dataclasses.dataclass(frozen=True)
class HostPaused:
    """A host is paused: no request starts for ``seconds`` (Retry-After, back-off)."""

    origin: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class RobotsLoaded:
    """A host's robots.txt is known, with its Crawl-delay in seconds (None: none)."""

    origin: str
    crawl_delay: float | None


@dataclasses.dataclass(frozen=True)
class RequestFinished:
    """A request to a host ended: its slot is free. ``latency`` is None when it never ran;
    ``failed``: a timeout, a connection failure, a 429 or 5xx answer. ``request``: the
    scraper's request, when it was more than a ``GET`` of ``url`` (several may share a URL)."""

    origin: str
    url: str
    latency: float | None
    failed: bool
    request: Request | None = None


#: What :meth:`HostLimiter.observe` observers are told.
HostEvent = HostPaused | RobotsLoaded | RequestFinished


class _Host:
    __slots__ = (
        "active",
        "best_latency",
        "crawl_delay",
        "errors",
        "last_start",
        "last_url",
        "limit",
        "next_start",
        "paused_until",
        "previous_next",
        "previous_start",
        "requests",
        "robots_known",
        "round_left",
    )

    def __init__(self, limit: float, robots_known: bool) -> None:
        self.active = 0
        self.limit = limit
        self.robots_known = robots_known
        self.last_start = -math.inf
        self.last_url = ""  # the URL of the request started last (when the caller said)
        self.next_start = -math.inf
        # last_start and next_start before the last start: what an unsent request gives back
        self.previous_start = -math.inf
        self.previous_next = -math.inf
        self.paused_until = -math.inf
        self.crawl_delay = 0.0
        self.requests = 0
        self.errors = 0
        self.best_latency = math.inf
        self.round_left = 0  # responses until the next decrease may happen


class HostLimiter:
    """Concurrency limit, start schedule and pauses for every host of a crawl."""

    def __init__(
        self, config: CrawlConfig, *, rng: random.Random | None = None, max_hosts: int = 10_000
    ) -> None:
        self._per_host = config.per_host
        self._delay = config.delay
        self._jitter = config.delay_jitter
        self._autothrottle = config.autothrottle
        self._robots = config.robots
        self._rng = rng or random.Random()
        self._hosts: collections.OrderedDict[str, _Host] = collections.OrderedDict()
        self._max_hosts = max_hosts
        self._listeners: list[Callable[[str], None]] = []
        self._observers: list[Callable[[HostEvent], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(origin)`` whenever that host may have become ready sooner."""
        self._listeners.append(listener)

    def observe(self, observer: Callable[[HostEvent], None]) -> None:
        """Call ``observer(event)`` on every :class:`HostPaused`, :class:`RobotsLoaded` and
        :class:`RequestFinished` (for a request whose URL :meth:`finish` was given): a
        frontier shared between processes passes them on to the rest of the fleet (slots,
        pauses, robots.txt, the autothrottle's latencies)."""
        self._observers.append(observer)

    def _host(self, origin: str) -> _Host:
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host(
                1.0 if self._autothrottle else self._per_host, robots_known=not self._robots
            )
            if len(self._hosts) > self._max_hosts:
                self._forget_idle()
        else:
            self._hosts.move_to_end(origin)
        return host

    def _forget_idle(self) -> None:
        now = trio.current_time()
        for origin in list(self._hosts)[: len(self._hosts) - self._max_hosts]:
            host = self._hosts[origin]
            # Keep what still matters: requests in flight, a pause or a delay not yet over.
            if host.active == 0 and host.paused_until <= now and host.next_start <= now:
                del self._hosts[origin]

    def ready_at(self, origin: str) -> float:
        """The trio time from which ``origin`` may start a request; ``inf`` while its
        concurrency limit is reached (it becomes ready when one finishes)."""
        host = self._hosts.get(origin)
        if host is None:
            return -math.inf
        if host.active >= (int(host.limit) if host.robots_known else 1):
            return math.inf  # full; or its robots.txt is being read: one request at a time
        return max(host.next_start, host.paused_until)

    def start(self, origin: str, url: str = "") -> None:
        """A request to ``origin`` (for ``url``) is dispatched now: take a slot, schedule the
        next start."""
        host = self._host(origin)
        host.active += 1
        host.requests += 1
        host.previous_start, host.previous_next = host.last_start, host.next_start
        host.last_url = url
        host.last_start = now = trio.current_time()
        delay = max(self._delay, host.crawl_delay)
        if delay > 0 and self._jitter > 0:
            delay *= 1 + self._rng.uniform(-self._jitter, self._jitter)
        host.next_start = now + delay

    def finish(
        self,
        origin: str,
        *,
        latency: float | None,
        failed: bool,
        url: str | None = None,
        request: Request | None = None,
        unsent: bool = False,
    ) -> None:
        """A request to ``origin`` ended (``latency`` None: it never ran). Frees its slot.
        ``url``: the request's, for observers (a shared frontier frees its slot fleet-wide),
        with the scraper's ``request`` when it has one (``CrawlRequest.request``).
        ``unsent``: nothing was sent (robots.txt refused it, the crawl stopped): when it is
        the request the host started last (its ``url`` was given to :meth:`start`), its start
        is taken back, so the host's delay counts from the last request sent, not from one
        that never was."""
        if url is not None and self._observers:
            finished = RequestFinished(origin, url, latency, failed, request)
            for observer in self._observers:
                observer(finished)
        host = self._host(origin)
        was_full = host.active >= (int(host.limit) if host.robots_known else 1)
        host.active = max(0, host.active - 1)
        if unsent and url and host.last_url == url:
            host.last_start, host.next_start = host.previous_start, host.previous_next
            host.last_url = ""  # taken back once
            was_full = True  # it may be ready sooner: say so
        if failed:
            host.errors += 1
        if self._autothrottle and latency is not None:
            self._adapt(host, latency, failed)
        if was_full or host.active == 0:
            self._notify(origin)

    def _adapt(self, host: _Host, latency: float, failed: bool) -> None:
        host.best_latency = min(host.best_latency, latency)
        slow = latency > 2 * host.best_latency + _SLACK
        host.round_left -= 1
        if failed or slow:
            if host.round_left <= 0:
                host.limit = max(1.0, host.limit / 2)
                host.round_left = max(1, int(host.limit))
        else:
            host.limit = min(float(self._per_host), host.limit + 1 / host.limit)

    def paced(self, origin: str) -> bool:
        """Whether requests to ``origin`` are spaced by a delay (``delay`` or Crawl-delay)."""
        if self._delay > 0:
            return True
        host = self._hosts.get(origin)
        return host is not None and host.crawl_delay > 0

    def pause(self, origin: str, seconds: float) -> None:
        """Start no request to ``origin`` for ``seconds`` (Retry-After, back-off)."""
        host = self._host(origin)
        host.paused_until = max(host.paused_until, trio.current_time() + seconds)
        if self._observers:
            paused = HostPaused(origin, seconds)
            for observer in self._observers:
                observer(paused)

    def robots_known(self, origin: str) -> bool:
        host = self._hosts.get(origin)
        return host is not None and host.robots_known

    def robots_loaded(self, origin: str, crawl_delay: float | None) -> None:
        """The host's robots.txt is known: lift the one-at-a-time rule, and apply its
        Crawl-delay (if any) as the host's minimum time between request starts, counted
        from the request that was already let through."""
        host = self._host(origin)
        host.robots_known = True
        if crawl_delay:
            host.crawl_delay = max(0.0, crawl_delay)
            host.next_start = max(host.next_start, host.last_start + host.crawl_delay)
        if self._observers:
            loaded = RobotsLoaded(origin, crawl_delay or None)
            for observer in self._observers:
                observer(loaded)
        self._notify(origin)

    def _notify(self, origin: str) -> None:
        for listener in self._listeners:
            listener(origin)

    def statistics(self) -> Mapping[str, HostStatistics]:
        now = trio.current_time()
        return {
            origin: HostStatistics(
                requests=host.requests,
                errors=host.errors,
                in_flight=host.active,
                concurrency=int(host.limit),
                delay=max(self._delay, host.crawl_delay),
                paused_until=host.paused_until if host.paused_until > now else None,
            )
            for origin, host in self._hosts.items()
        }
