"""The crawl engine: seeds -> frontier -> dispatcher -> workers -> records -> sink.

One nursery owns every task of a crawl::

                   links found (non-blocking add, before the page is done)
                +-------------------------------------------------------+
                v                                                       |
    seeds -> Frontier --get()--> dispatcher --jobs channel--> N workers -+-> records channel
                ^                              (buffer)        fetch,        (buffer)
                |                                              parse,           |
                +------ done() once the record is written ------ extract   sink task -> Sink

Why it cannot deadlock with bounded channels: the only blocking sends are dispatcher -> workers
and workers -> sink, and the sink never waits on anyone upstream. Links go back into the
frontier with a call that does not wait on the dispatcher, so a worker can always finish its
page. Why it ends by itself: the frontier leases every request it hands out until the sink
has written its record, and a worker adds its links before that; "queue empty and nothing
leased" therefore means "no more work", and the frontier's ``get()`` returns ``None``.

Deadlines nest like Go's ``context``: the crawl deadline (``deadline``) cancels the
dispatcher; each attempt at a page runs under its own page deadline (``timeout``, covering
request, body, parse and the extract hook, whose awaits inherit it); httpx's connect/read
timeouts sit inside that. When the crawl is stopped (deadline, :meth:`Crawler.stop`, a
signal in the CLI), pages in flight get ``grace`` seconds, then are cancelled and recorded
with ``error.kind = "cancelled"``; the sink drains, the client closes, and ``run`` returns.
"""

from __future__ import annotations

import array
import collections
import dataclasses
import inspect
import logging
import math
import os
import random
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn
from urllib.parse import urljoin

import httpx
import trio

from ._config import CrawlConfig
from ._exceptions import ConfigError
from ._fetch import (
    RETRY_STATUSES,
    Fetcher,
    FetchError,
    Response,
    backoff_delay,
    open_fetcher,
    parse_retry_after,
)
from ._frontier import Frontier, MemoryFrontier
from ._page import CrawlRequest, Page, PageError
from ._parse import decode_body, is_html, parse_html, parse_sitemap
from ._politeness import HostLimiter, HostStatistics, RobotsCache, origin_of
from ._sinks import Sink
from ._state import open_sqlite_frontier
from ._urls import LinkResolver, UrlScope, canonicalize, host_of

__all__ = ["CrawlStatistics", "Crawler", "StopReason", "open_crawl", "raise_single", "scrape"]

logger = logging.getLogger("trio_scrape")

#: Why a crawl ended: it ran out of URLs, hit ``max_pages``, its ``deadline``, or was stopped.
StopReason = Literal["finished", "max_pages", "deadline", "stopped"]

# How long a cancelled worker may still wait to hand its "cancelled" record to the sink.
_LAST_RECORD_TIMEOUT = 5.0
# How long a record may wait for others to be written with it (one write per batch).
_FLUSH_DELAY = 0.02
_LATENCY_SAMPLES = 10_000


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
    invalid_links: int  #: hrefs that could not be made canonical URLs
    elapsed: float  #: seconds since the crawl started (until it ended, once it has)
    stop_reason: StopReason | None  #: None while running
    hosts: Mapping[str, HostStatistics] = dataclasses.field(default_factory=dict)
    """per origin (``scheme://host[:port]``): requests, errors, in flight, concurrency, delay"""
    latency_p50: float | None = None  #: median seconds per page (first try to record)
    latency_p95: float | None = None  #: 95th percentile of the same

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.elapsed if self.elapsed > 0 else 0.0


class Crawler:
    """A crawl from ``seeds`` under ``config``, run with :meth:`run`.

    Records go to ``sink`` (anything with ``async send(page)``: a file sink, or a
    ``trio.MemorySendChannel[Page]``); :meth:`run` takes ownership of it and closes it (if it
    has ``aclose``) when the crawl ends. ``frontier`` defaults to the SQLite state at
    ``config.state`` when set, else a fresh in-memory one.
    ``transport`` replaces httpx's network transport (tests use ``httpx.MockTransport``).

    Run it inside your own nursery::

        crawler = Crawler(["https://example.org/"], CrawlConfig(depth=2), sink=send_channel)
        async with trio.open_nursery() as nursery:
            await nursery.start(crawler.run)   # returns once the seeds are queued
            ...                                # other tasks; crawler.statistics() any time

    Raises:
        ConfigError: a seed is not an absolute http(s) URL (``field`` is ``"seeds"``).
    """

    def __init__(
        self,
        seeds: Iterable[str],
        config: CrawlConfig | None = None,
        *,
        sink: Sink | None = None,
        frontier: Frontier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if isinstance(seeds, str):
            seeds = [seeds]
        self._config = config = config if config is not None else CrawlConfig()
        canonical = []
        for seed in seeds:
            try:
                canonical.append(canonicalize(seed))
            except ValueError as exc:
                raise ConfigError("seeds", str(exc)) from None
        self._seeds = canonical
        self._sitemaps = []
        for sitemap in config.sitemaps:
            try:
                self._sitemaps.append(canonicalize(sitemap))
            except ValueError as exc:
                raise ConfigError("sitemaps", str(exc)) from None
        self._scope = UrlScope(config, canonical + self._sitemaps)
        self._resolver = LinkResolver()
        self._rng = random.Random()
        self._hosts = HostLimiter(config, rng=self._rng)
        self._sink = sink
        self._keep_bodies = bool(getattr(sink, "wants_bodies", True))
        self._own_state = frontier is None and config.state is not None
        # With a state, records are committed as soon as they can be: what a kill makes the
        # next run redo is what was written since the last commit.
        self._flush_delay = 0.0 if self._own_state else _FLUSH_DELAY
        self._frontier: Frontier = frontier if frontier is not None else MemoryFrontier()
        self._transport = transport
        self._fetcher: Fetcher | None = None
        self._robots: RobotsCache | None = None

        self._ran = False
        self._stopping = False
        self._stop_reason: StopReason | None = None
        self._dispatch_scope: trio.CancelScope | None = None
        self._workers_scope: trio.CancelScope | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None

        self._pages = 0
        self._ok = 0
        self._errors: collections.Counter[str] = collections.Counter()
        self._status_codes: collections.Counter[int] = collections.Counter()
        self._bytes = 0
        self._retries = 0
        self._invalid_links = 0
        self._scheduled = 0
        # Page latencies for percentiles: a uniform sample (reservoir) of at most 10,000.
        self._latencies = array.array("d")

    @property
    def config(self) -> CrawlConfig:
        return self._config

    # ----------------------------------------------------------------------------- control

    def stop(self, reason: StopReason = "stopped") -> None:
        """Stop the crawl gracefully: dispatch no more pages, give those in flight ``grace``
        seconds, write their records, and let :meth:`run` return. Idempotent; does not block;
        may be called before or during :meth:`run`."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_reason = reason
        if self._dispatch_scope is not None:
            self._dispatch_scope.cancel()
        self._begin_grace()

    def _begin_grace(self) -> None:
        if self._workers_scope is not None:
            grace_ends = trio.current_time() + self._config.grace
            self._workers_scope.deadline = min(self._workers_scope.deadline, grace_ends)

    def statistics(self) -> CrawlStatistics:
        """A consistent snapshot of the crawl's counters; cheap, never blocks."""
        frontier = self._frontier.statistics()
        if self._started_at is None:
            elapsed = 0.0
        else:
            end = self._ended_at if self._ended_at is not None else trio.current_time()
            elapsed = end - self._started_at
        p50, p95 = _percentiles(self._latencies, (0.5, 0.95))
        return CrawlStatistics(
            latency_p50=p50,
            latency_p95=p95,
            pages=self._pages,
            ok=self._ok,
            errors=dict(self._errors),
            status_codes=dict(self._status_codes),
            bytes=self._bytes,
            queued=frontier.queued,
            in_flight=frontier.leased,
            seen=frontier.seen,
            retries=self._retries,
            invalid_links=self._invalid_links,
            elapsed=elapsed,
            stop_reason=self._stop_reason if self._ended_at is not None else None,
            hosts=self._hosts.statistics(),
        )

    # ------------------------------------------------------------------------------- run

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> CrawlStatistics:
        """Crawl until the frontier is exhausted, ``max_pages`` are dispatched, the crawl
        deadline passes or :meth:`stop` is called; then return the final statistics.

        Works with ``await nursery.start(crawler.run)``, which returns once the seeds are
        queued. Cancelling the enclosing scope stops everything at once: no task is left
        behind and the HTTP client is closed. Page failures never raise: they are records.

        With ``config.state``, the crawl resumes from the state (a finished one does nothing
        and logs so), and pages cut off by a stop go back to the queue instead of becoming
        ``cancelled`` records.

        Raises:
            OutputError: the sink could not write records.
            StateError: the state cannot be opened, belongs to a crawl with other settings,
                or could not be written.
            RuntimeError: the crawler was already run (a Crawler runs once).
        """
        if self._ran:
            raise RuntimeError("this Crawler has already run; make a new one")
        self._ran = True
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            raise_single(group)
        return self.statistics()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        config = self._config
        self._started_at = trio.current_time()
        job_send, job_recv = trio.open_memory_channel[CrawlRequest](config.channel_buffer)
        record_send, record_recv = trio.open_memory_channel[tuple[CrawlRequest, Page]](
            config.channel_buffer
        )
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(_closing(self._sink))
                if self._own_state and not await self._open_state(stack):
                    task_status.started()
                    return
                seed_hosts = {host_of(url) for url in self._seeds + self._sitemaps}
                self._fetcher = fetcher = await stack.enter_async_context(
                    open_fetcher(config, transport=self._transport, seed_hosts=seed_hosts)
                )
                nursery = await stack.enter_async_context(trio.open_nursery())
                if config.robots or config.sitemaps_from_robots:
                    self._robots = RobotsCache(fetcher, self._hosts, config, rng=self._rng)
                nursery.start_soon(self._write_records, record_recv)
                async with record_send, trio.open_nursery() as workers:
                    self._workers_scope = workers.cancel_scope
                    with job_recv:
                        for _ in range(config.workers):
                            workers.start_soon(self._work, job_recv.clone(), record_send.clone())
                    await self._frontier.add(
                        self._seeds, depth=0, referrer=None, keep=self._within_max_pages
                    )
                    await self._add_sitemaps(self._sitemaps, depth=0, referrer=None)
                    if config.sitemaps_from_robots:
                        await self._add_robots_sitemaps()
                    task_status.started()
                    await self._dispatch(job_send)
        finally:
            self._ended_at = trio.current_time()
            if self._stop_reason is None:
                self._stop_reason = "finished"

    async def _open_state(self, stack: AsyncExitStack) -> bool:
        """Open the crawl state, start the sink where the state left it; return whether
        there is anything to crawl."""
        config = self._config
        assert config.state is not None
        frontier = await stack.enter_async_context(
            open_sqlite_frontier(
                config.state, settings=self._state_settings(), reset=config.state_reset
            )
        )
        self._frontier = frontier
        resume = frontier.resume
        self._scheduled = resume.scheduled
        name = os.fspath(config.state)
        if resume.finished:
            logger.warning(
                "nothing to do: the crawl in %s has finished (%d pages); "
                "add --state-reset to crawl again",
                name,
                resume.done,
            )
            return False
        if not resume.is_new:
            logger.warning(
                "resuming the crawl in %s: %d pages done, %d to do (%d were in flight)",
                name,
                resume.done,
                resume.queued,
                resume.requeued,
            )
        start = getattr(self._sink, "start", None)
        if start is not None:
            start(resume.output_offset or 0)
        return True

    def _state_settings(self) -> dict[str, object]:
        """What defines a resumable crawl: its seeds, its scope and where its records go."""
        config = self._config
        follow = config.follow
        return {
            "seeds": sorted(set(self._seeds)),
            "depth": config.depth,
            "max_pages": config.max_pages,
            "scope": config.scope,
            "allow_hosts": list(config.allow_hosts),
            "include": list(config.include),
            "exclude": list(config.exclude),
            "sitemaps": sorted(set(self._sitemaps)),
            "sitemaps_from_robots": config.sitemaps_from_robots,
            "follow": None if follow is None else f"{follow.__module__}:{follow.__qualname__}",
            "output": getattr(self._sink, "name", None),
            "format": getattr(self._sink, "format", None),
            "links": config.links,
        }

    async def _dispatch(self, jobs: trio.MemorySendChannel[CrawlRequest]) -> None:
        """Move requests from the frontier to the workers until there are none left or the
        crawl is stopped (by its deadline or :meth:`stop`)."""
        config = self._config
        async with jobs:
            with trio.CancelScope() as scope:
                self._dispatch_scope = scope
                if self._stopping:
                    scope.cancel()
                if config.deadline is not None and self._started_at is not None:
                    scope.deadline = self._started_at + config.deadline
                while True:
                    request = await self._frontier.get(self._hosts)
                    if request is None:
                        return
                    try:
                        # send() would yield to the scheduler even with room in the channel:
                        # only wait when it is full (a full channel is where we checkpoint).
                        try:
                            jobs.send_nowait(request)
                        except trio.WouldBlock:
                            await jobs.send(request)
                    except BaseException:
                        self._hosts.finish(origin_of(request.url), latency=None, failed=False)
                        with trio.CancelScope(shield=True):
                            await self._frontier.release([request])
                        raise
            self._dispatch_scope = None
            if scope.cancelled_caught and not self._stopping:
                self.stop("deadline")
                logger.info("crawl deadline of %gs reached; stopping", config.deadline)

    async def _work(
        self,
        jobs: trio.MemoryReceiveChannel[CrawlRequest],
        records: trio.MemorySendChannel[tuple[CrawlRequest, Page]],
    ) -> None:
        async with jobs, records:
            async for request in jobs:
                if self._stopping:
                    # Dispatched but not started: it goes back, it is not "scheduled".
                    self._hosts.finish(origin_of(request.url), latency=None, failed=False)
                    await self._frontier.release([request])
                    continue
                page = None
                try:
                    if (
                        self._robots is not None
                        and self._config.robots
                        and not await self._robots.allowed(request.url)
                    ):
                        self._hosts.finish(origin_of(request.url), latency=None, failed=False)
                        page = self._failed(
                            request, PageError("robots", "disallowed by robots.txt")
                        )
                    else:
                        page = await self._crawl_page(request)
                    if page is not None:
                        if not self._keep_bodies:  # a lexbor tree is far larger than its page
                            page.html = None
                            page.text = None
                            page.content = b""
                        try:  # no scheduler round trip when the sink has room
                            records.send_nowait((request, page))
                        except trio.WouldBlock:
                            await records.send((request, page))
                except trio.Cancelled:
                    if page is None and self._own_state:
                        # A resumable crawl does this page again next time instead.
                        with trio.CancelScope(shield=True):
                            await self._frontier.release([request])
                        raise
                    if page is None:
                        page = self._failed(
                            request, PageError("cancelled", "the crawl stopped before this page")
                        )
                    with trio.CancelScope(shield=True), trio.move_on_after(_LAST_RECORD_TIMEOUT):
                        try:
                            await records.send((request, page))
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            pass
                    raise

    async def _write_records(
        self, records: trio.MemoryReceiveChannel[tuple[CrawlRequest, Page]]
    ) -> None:
        """The sink task: hand pages to the sink in order, and flush once the channel is
        momentarily empty and the oldest unflushed record has waited ``_FLUSH_DELAY`` (one
        write per batch instead of one per page); only then end the pages' leases."""
        sink = self._sink
        flush = getattr(sink, "flush", None)
        start = getattr(sink, "start", None)
        if start is not None:
            start()  # a no-op if the state already started it where it left off
        written: list[CrawlRequest] = []
        due = math.inf  # when the oldest record not yet flushed is to be written at the latest
        async with records:
            while True:
                try:
                    request, page = records.receive_nowait()
                except trio.WouldBlock:
                    if written and (flush is None or trio.current_time() >= due):
                        await self._hand_over(written, flush)
                        written = []
                        due = math.inf
                    received = None
                    with trio.move_on_at(due):
                        try:
                            received = await records.receive()
                        except trio.EndOfChannel:
                            break
                    if received is None:
                        continue  # flush is due
                    request, page = received
                except trio.EndOfChannel:
                    break
                if not written:
                    due = trio.current_time() + self._flush_delay
                self._count(page)
                if sink is not None:
                    await sink.send(page)
                written.append(request)
            if written:
                await self._hand_over(written, flush)

    async def _hand_over(self, written: list[CrawlRequest], flush: Any) -> None:
        if flush is not None:
            await flush()
        await self._frontier.done(written, output_offset=self._output_offset())

    def _output_offset(self) -> int | None:
        offset = getattr(self._sink, "offset", None)
        return offset if isinstance(offset, int) else None

    def _count(self, page: Page) -> None:
        self._pages += 1
        if len(self._latencies) < _LATENCY_SAMPLES:
            self._latencies.append(page.elapsed)
        else:
            slot = self._rng.randrange(self._pages)
            if slot < _LATENCY_SAMPLES:
                self._latencies[slot] = page.elapsed
        self._bytes += page.bytes
        if page.status is not None:
            self._status_codes[page.status] += 1
        if page.error is not None:
            self._errors[page.error.kind] += 1
        elif page.ok:
            self._ok += 1
        if logger.isEnabledFor(logging.DEBUG):
            outcome = page.error.kind if page.error else page.status
            logger.debug("%s %s (%.3fs)", outcome, page.url, page.elapsed)

    # ---------------------------------------------------------------------------- a page

    async def _crawl_page(self, request: CrawlRequest) -> Page | None:
        """One attempt at a page. Returns its Page, or None when the request went back to the
        frontier to be retried (its host paused meanwhile: no worker waits for it)."""
        config = self._config
        assert self._fetcher is not None
        origin = origin_of(request.url)
        started = trio.current_time()
        first_try = started if request.first_try is None else request.first_try
        attempt = request.attempts + 1
        error: FetchError | None = None
        response: Response | None = None
        retry_after: float | None = None
        page: Page | None = None
        new_links: list[str] = []
        with trio.move_on_after(config.timeout) as page_deadline:
            try:
                response = await self._fetcher.fetch(request.url)
            except FetchError as exc:
                error = exc
            finally:
                # Exactly once per dispatched request, whatever happened (cancellation too).
                self._hosts.finish(
                    origin,
                    latency=trio.current_time() - started,
                    failed=_attempt_failed(response, error),
                )
            if response is not None:
                if response.status in RETRY_STATUSES and attempt <= config.retries:
                    retry_after = parse_retry_after(response.fields.get("retry-after"))
                else:
                    page = self._new_page(request, response)
                    new_links = await self._process(page, request)

        if page is not None:
            page.elapsed = trio.current_time() - first_try
            if page_deadline.cancelled_caught:  # the deadline passed in parse or hooks
                page.error = PageError(
                    "timeout", f"page deadline of {config.timeout:g}s passed in extraction"
                )
                return page
            await self._enqueue(new_links, request)
            if page.final_url and page.final_url != request.url:
                await self._mark_final_url_seen(page.final_url)
            return page

        if page_deadline.cancelled_caught:
            error = FetchError("timeout", f"page deadline of {config.timeout:g}s passed")
        retryable = response is not None or (error is not None and error.retryable)
        delay = backoff_delay(attempt, base=config.backoff, cap=config.max_backoff, rng=self._rng)
        if retry_after is not None:
            if retry_after > config.max_retry_after:
                assert response is not None
                return self._failed(
                    request,
                    started=first_try,
                    response=response,
                    error=PageError(
                        "http_status",
                        f"HTTP {response.status} with Retry-After {retry_after:g}s, "
                        f"over max_retry_after={config.max_retry_after:g}s",
                    ),
                )
            delay = max(delay, retry_after)
        if not retryable or attempt > config.retries:
            assert error is not None
            return self._failed(request, PageError(error.kind, error.message), started=first_try)
        self._retries += 1
        logger.info(
            "retrying %s in %.2fs (attempt %d failed: %s); pausing %s",
            request.url,
            delay,
            attempt,
            error.message if error else f"HTTP {response.status if response else '?'}",
            origin,
        )
        # The whole host waits (a 429/503 or a failing connection concerns all its pages);
        # the request goes back to the front of its host's queue, and this worker moves on.
        self._hosts.pause(origin, delay)
        await self._frontier.release([request._replace(attempts=attempt, first_try=first_try)])
        return None

    def _new_page(self, request: CrawlRequest, response: Response) -> Page:
        status = response.status
        page = Page(
            url=request.url,
            depth=request.depth,
            referrer=request.referrer,
            final_url=response.final_url,
            status=status,
            content_type=response.fields.get("content-type"),
            bytes=len(response.content),
            fetched_at=_utc_now(),
            content=response.content,
            headers=response.headers,
        )
        if request.lastmod is not None:
            page.data["lastmod"] = request.lastmod
        if not 200 <= status < 300:
            reason = httpx.codes.get_reason_phrase(status)
            page.error = PageError("http_status", f"HTTP {status} {reason}".rstrip())
        return page

    async def _add_sitemaps(self, urls: list[str], *, depth: int, referrer: str | None) -> None:
        if urls:  # sitemaps may be on any host: the pages they list are scope-checked
            await self._frontier.add(
                urls, depth=depth, referrer=referrer, keep=self._within_max_pages, sitemap=True
            )

    async def _add_robots_sitemaps(self) -> None:
        assert self._robots is not None
        found: list[str] = []
        for origin in dict.fromkeys(origin_of(seed) for seed in self._seeds):
            found += self._canonical_urls(await self._robots.sitemaps(origin))
        await self._add_sitemaps(found, depth=0, referrer=None)

    def _canonical_urls(self, urls: Iterable[str]) -> list[str]:
        """The canonical forms of URLs a sitemap or robots.txt gave; unusable ones are
        counted in ``invalid_links``."""
        canonical = []
        for url in urls:
            try:
                canonical.append(canonicalize(url))
            except ValueError:
                self._invalid_links += 1
        return canonical

    async def _read_sitemap(self, page: Page, request: CrawlRequest) -> None:
        """Queue what a fetched sitemap lists; its record says how much (``data.sitemap``)."""
        try:
            sitemap = parse_sitemap(page.content, max_bytes=self._config.max_bytes)
        except ValueError as exc:
            page.error = PageError("sitemap", f"cannot read the sitemap: {exc}")
            return
        pages: dict[str, str] = {}
        plain: list[str] = []
        for loc, lastmod in sitemap.pages:
            for url in self._canonical_urls([loc]):
                if lastmod:
                    pages[url] = lastmod
                plain.append(url)
        children = self._canonical_urls(sitemap.sitemaps)
        await self._frontier.add(
            plain, depth=request.depth, referrer=request.url, keep=self._schedules, lastmods=pages
        )
        await self._add_sitemaps(children, depth=request.depth, referrer=request.url)
        page.data["sitemap"] = {
            "kind": sitemap.kind,
            "pages": len(sitemap.pages),
            "sitemaps": len(sitemap.sitemaps),
        }

    async def _process(self, page: Page, request: CrawlRequest) -> list[str]:
        """Parse the page and run the hooks; return the canonical links to follow."""
        config = self._config
        if request.sitemap:
            if page.ok:
                await self._read_sitemap(page, request)
            return []
        follow = page.ok and request.depth < config.depth
        html = is_html(page.content_type, page.content)
        if html or _is_textual(page.content_type):
            page.text, page.encoding = decode_body(page.content, page.content_type)
        if html and page.text is not None:
            want_links = page.ok and (follow or config.links or config.follow is not None)
            parsed = parse_html(page.text, want_links=want_links)
            page.html = parsed.tree
            page.title = parsed.title
            if want_links:
                base = page.final_url or page.url
                if parsed.base:
                    base = _safe_join(base, parsed.base)
                page.links, invalid = self._resolver.resolve(base, parsed.hrefs)
                self._invalid_links += invalid
        if not page.ok:
            return []
        if config.selectors and page.html is not None:
            for selector in config.selectors:
                page.data[selector.name] = selector.extract(page.html)
        if config.extract is not None:
            try:
                data = config.extract(page)
                if inspect.isawaitable(data):
                    data = await data
                if data:
                    page.data.update(data)
            except Exception as exc:
                page.error = PageError("extract", f"extract hook raised {_describe(exc)}")
        if not follow:
            return []
        if config.follow is None:
            return page.links
        try:
            chosen = list(config.follow(page))
        except Exception as exc:
            if page.error is None:
                page.error = PageError("extract", f"follow hook raised {_describe(exc)}")
            return []
        links, invalid = self._resolver.resolve(page.final_url or page.url, chosen)
        self._invalid_links += invalid
        return links

    async def _enqueue(self, links: list[str], parent: CrawlRequest) -> None:
        if links:
            await self._frontier.add(
                links, depth=parent.depth + 1, referrer=parent.url, keep=self._schedules
            )

    def _schedules(self, url: str) -> bool:
        """Whether a never-seen link is scheduled: in scope, and within ``max_pages``."""
        return self._scope.allows(url) and self._within_max_pages(url)

    def _within_max_pages(self, url: str) -> bool:
        # max_pages limits the URLs scheduled, not dispatches: so a page's retries and its
        # record are never cut off, and the crawl ends by itself once those pages are done.
        limit = self._config.max_pages
        if limit is None:
            return True
        if self._scheduled >= limit:
            if self._stop_reason is None:
                self._stop_reason = "max_pages"
            return False
        self._scheduled += 1
        return True

    async def _mark_final_url_seen(self, final_url: str) -> None:
        # A redirect's target counts as crawled: a later link to it is not fetched again
        # (site-wide http -> https redirects would otherwise double every page).
        try:
            await self._frontier.mark_seen([canonicalize(final_url)])
        except ValueError:
            pass

    def _failed(
        self,
        request: CrawlRequest,
        error: PageError,
        *,
        started: float | None = None,
        response: Response | None = None,
    ) -> Page:
        """The record of a page that failed (``started``: when its first attempt began)."""
        now = trio.current_time()
        page = Page(
            url=request.url,
            depth=request.depth,
            referrer=request.referrer,
            fetched_at=_utc_now(),
            elapsed=0.0 if started is None else now - started,
            error=error,
        )
        if response is not None:
            page.final_url = response.final_url
            page.status = response.status
            page.content_type = response.fields.get("content-type")
            page.bytes = len(response.content)
        return page


def _percentiles(
    samples: array.array[float], fractions: tuple[float, float]
) -> tuple[float | None, float | None]:
    if not samples:
        return None, None
    ordered = sorted(samples)
    last = len(ordered) - 1
    low, high = (ordered[min(last, int(f * len(ordered)))] for f in fractions)
    return low, high


def _attempt_failed(response: Response | None, error: FetchError | None) -> bool:
    """Whether an attempt counts against its host (errors, pauses, autothrottle): no answer in
    time, a failed connection, or a 429/5xx answer; a 404 or a too-large body does not."""
    if response is not None:
        return response.status in RETRY_STATUSES or response.status >= 500
    return error is None or error.retryable


_second_text: tuple[int, str] = (-1, "")


def _utc_now() -> str:
    """The time now as ``2026-11-24T22:43:05.123Z``; the text up to the second is formatted
    once per second (it cost 2% of a crawl's CPU formatted for every page)."""
    global _second_text
    now = time.time()
    second = int(now)
    if second != _second_text[0]:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_text = (second, text)
    return f"{_second_text[1]}.{int((now - second) * 1000):03d}Z"


def _is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media.endswith(("json", "xml"))


def _safe_join(base: str, href: str) -> str:
    try:
        return urljoin(base, href.strip())
    except ValueError:
        return base


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one real exception inside nested nursery groups, so callers see an
    ``OutputError`` (or a hook's bug) rather than an ExceptionGroup; a group holding several
    distinct exceptions is re-raised as is."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        raise real[0] from None
    if not real and leaves:
        raise leaves[0] from None
    raise group


class _closing(AbstractAsyncContextManager[None]):
    """Close a sink (if it can be closed) when the crawl ends, however it ends."""

    def __init__(self, sink: Sink | None) -> None:
        self._sink = sink

    async def __aexit__(self, *exc_info: object) -> None:
        aclose = getattr(self._sink, "aclose", None)
        if aclose is not None:
            await aclose()


# ---------------------------------------------------------------------------------- helpers


def open_crawl(
    seeds: Iterable[str],
    config: CrawlConfig | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[Page]]:
    """Crawl in the background and receive pages as they finish::

        async with trio_scrape.open_crawl(["https://example.org/"], config) as pages:
            async for page in pages:
                print(page.url, page.title)

    Leaving the ``async with`` block early cancels the crawl; nothing is left running.

    Raises:
        ConfigError: a seed is invalid (raised here, before anything runs).
        OutputError: never for this form (there is no file sink); other errors escaping
            the crawl are bugs, or exceptions from your own code in the block.
    """
    crawler = Crawler(seeds, config, transport=transport)
    return _pages_of(crawler)


@trio.as_safe_channel
async def _pages_of(crawler: Crawler) -> AsyncGenerator[Page, None]:
    send, receive = trio.open_memory_channel[Page](0)
    crawler._sink = send
    async with trio.open_nursery() as nursery:
        nursery.start_soon(crawler.run)
        async with receive:
            async for page in receive:
                yield page


async def scrape(
    urls: Iterable[str],
    config: CrawlConfig | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Page]:
    """Crawl ``urls`` (and, with ``config.depth``, their links) and return every page.

    The pages keep their bodies (``content``, ``text``, ``html``): for large crawls iterate
    :func:`open_crawl` instead.

    Raises:
        ConfigError: a seed is invalid.
    """
    async with open_crawl(urls, config, transport=transport) as pages:
        return [page async for page in pages]
