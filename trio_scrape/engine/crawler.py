"""The crawl engine: seeds -> frontier -> dispatcher -> workers -> records -> sink.

One nursery owns every task of a crawl::

                   links found (non-blocking add, before the page is done)
                +-------------------------------------------------------+
                v                                                       |
    seeds -> Frontier --get()--> dispatcher --jobs channel--> N workers -+-> records channel
                ^                              (buffer)        pipeline      (buffer)
                |                                              + apply          |
                +------ done() once the record is written -------------- sink task -> Sink

A worker whose page has ended (so its host's slot is free) takes the next request itself
when the frontier can hand one out without waiting (``get_nowait``), and only otherwise waits
on the jobs channel: a freed slot then becomes the next request in the same scheduler pass,
instead of two passes later (the dispatcher's, then the woken worker's), which on a busy loop
is after every other page that ended in the same pass. The dispatcher keeps deciding when
dispatching ends, and hands out whatever no worker took (seeds, new hosts, delays that end).

The ``Crawler`` is the orchestrator: it owns everything shared (frontier, host limiter,
robots.txt, ``max_pages``, statistics, the sink, the state). A worker takes a request, checks
robots.txt, hands one attempt to the :class:`~trio_scrape.engine.pipeline.PagePipeline` (fetch,
parse, hooks, links: no shared state) and applies the :class:`~trio_scrape.engine.pipeline.Outcome`
it returns: free the host's slot, queue the links, or send the request back for a retry.

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

import collections
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import trio

from ..errors import ConfigError, LoginFailed, TrioScrapeError
from ..frontier.base import CompleteFrontier, Frontier, complete
from ..frontier.memory import MemoryFrontier
from ..frontier.open import open_frontier
from ..frontier.pacing import HostLimiter
from ..http.cookies import SessionJar
from ..http.fetcher import HttpxFetcher, open_fetcher
from ..model.config import CrawlConfig
from ..model.page import CrawlRequest, Page, PageError
from ..model.request import Request, RequestError
from ..model.urls import UrlScope, browser_url, host_of, origin_of
from ..output.sinks import Sink, complete_sink
from .admission import Admission
from .assembly import open_page_pipeline
from .pipeline import AttemptLost, Outcome, Pipeline, browser_urls, failed_page
from .records import FLUSH_DELAY, RecordWriter, closing_sink
from .robots import RobotsCache
from .stats import Counters, CrawlStatistics, StopReason

if TYPE_CHECKING:
    from ..frontier.timing import CallTimes
    from ..processes.pool import ProcessPipeline
    from ..render.renderer import Renderer
    from .metrics import MetricsSnapshot

__all__ = ["Crawler", "open_crawl", "raise_single", "scrape"]

logger = logging.getLogger("trio_scrape")

# How long a cancelled worker may still wait to hand its "cancelled" record to the sink.
_LAST_RECORD_TIMEOUT = 5.0
# Pages a worker may take straight from the frontier before it waits on the jobs channel again.
_DIRECT_TAKES = 64
#: The most requests a start-up step (a log-in) may make: one that enqueues more is a loop.
MAX_STARTUP_REQUESTS = 100


# Longer than the ~450 lines a class gets here: it is the orchestrator of one crawl's
# tasks, and what remains is one state machine over shared state (stopping, the cancel scopes,
# the pages being attempted, the frontier and the host limiter): the dispatch loop, a
# worker's page from dispatch to record, and shutdown. Statistics (stats.py), the record
# writer (records.py), what a page adds (admission.py) and the pipeline's assembly
# (assembly.py) are units of their own; splitting the page's life further would pass that
# state back and forth.
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
        seeds: Iterable[str | Request],
        config: CrawlConfig | None = None,
        *,
        sink: Sink | None = None,
        frontier: Frontier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if isinstance(seeds, str | Request):
            seeds = [seeds]
        self._config = config = config if config is not None else CrawlConfig()
        # Seeds and sitemaps are requested as a browser would request them; a scraper's
        # start requests (Request values) carry their own.
        self._seeds = []
        self._start_requests: list[Request] = []
        for seed in seeds:
            if isinstance(seed, Request):
                self._start_requests.append(seed)
                continue
            try:
                self._seeds.append(browser_url(seed))
            except ValueError as exc:
                raise ConfigError("seeds", str(exc)) from None
        self._sitemaps = []
        for sitemap in config.sitemaps:
            try:
                self._sitemaps.append(browser_url(sitemap))
            except ValueError as exc:
                raise ConfigError("sitemaps", str(exc)) from None
        self._scope = UrlScope(config, self._starts())
        self._rng = random.Random()
        self._hosts = HostLimiter(config, rng=self._rng)
        self._sink: Sink | None = sink
        self._keep_bodies = complete_sink(sink).wants_bodies
        self._own_state = frontier is None and config.state is not None
        self._own_redis = frontier is None and config.frontier is not None
        self._frontier = complete(frontier if frontier is not None else MemoryFrontier())
        # A shared frontier counts max_pages for the whole fleet itself.
        self._fleet_pages = self._own_redis or self._frontier.counts_max_pages
        # Pages cut off by a stop go back to the queue instead of becoming records.
        self._resumable = self._own_state or self._own_redis
        # With a state, records are committed as soon as they can be: what a kill makes the
        # next run redo is what was written since the last commit.
        self._flush_delay = 0.0 if self._own_state else FLUSH_DELAY
        self._attempting = 0  # pages between dispatch and their record (or retry)
        self._transport = transport
        self._pipeline: Pipeline | None = None
        self._processes: ProcessPipeline | None = None  # the pipeline, in worker processes
        self._renderer: Renderer | None = None
        if config.rendering != "off":
            # Imported only when used, as are the renderer and --state below: they cost
            # start-up time to every crawl otherwise (see docs/performance.md, Start-up).
            from ..render.browser import find_browser

            find_browser(config.browser)  # a missing browser is a ConfigError, raised here
        if transport is not None and config.process_count > 1:
            raise ConfigError(
                "processes", "a custom transport runs only in one process: use processes=1"
            )
        self._robots: RobotsCache | None = None
        #: the crawl's cookies, whatever runs its pages (see http/cookies.py)
        self.jar = SessionJar()
        self._startup_scope: trio.CancelScope | None = None
        self._login_failure: str | None = None  # why a handler said the log-in failed

        #: where ``config.metrics`` is served (host, port), once the crawl runs
        self.metrics_address: tuple[str, int] | None = None
        self._ran = False
        self._stopping = False
        self._stop_reason: StopReason | None = None
        self._dispatch_scope: trio.CancelScope | None = None
        self._workers_scope: trio.CancelScope | None = None
        self._started_at: float | None = None
        self._ended_at: float | None = None

        self._counts = Counters(self._rng)
        # Whether a page was handed out at the depth limit (its links not followed): until
        # one was, every link reached was followed, and revisits would find nothing new.
        self._cut = False
        self._admission = self._admission_for(self._frontier, scheduled=0)

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
        if self._startup_scope is not None:
            self._startup_scope.cancel()
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
        return self._counts.snapshot(
            frontier,
            hosts=self._hosts.statistics(),
            elapsed=elapsed,
            stop_reason=self._stop_reason if self._ended_at is not None else None,
            **self._render_statistics(),
            processes=self._config.process_count,
            worker_restarts=0 if self._processes is None else self._processes.restarts,
        )

    def _render_statistics(self) -> dict[str, Any]:
        if self._renderer is not None:
            stats = self._renderer.statistics
            return {
                "rendered": stats.rendered,
                "tabs_in_use": stats.tabs_in_use,
                "browser_memory": stats.browser_memory,
                "browser_peak_memory": stats.browser_peak_memory,
            }
        if self._config.rendering == "off":
            return {}
        # Worker processes render with browsers of their own: pages rendered are counted
        # from the records, memory sampled from /proc (tabs in use are not reported).
        processes = self._processes
        return {
            "rendered": self._counts.rendered_records,
            "browser_memory": None if processes is None else processes.browser_memory,
            "browser_peak_memory": None if processes is None else processes.browser_peak_memory,
        }

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
            LoginFailed: the router's start-up step (a log-in) failed, or a handler raised
                ``LoginFailed`` mid-crawl (the crawl was stopped: see :meth:`stop`).
            RuntimeError: the crawler was already run (a Crawler runs once).
        """
        if self._ran:
            raise RuntimeError("this Crawler has already run; make a new one")
        self._ran = True
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            raise_single(group)
        if self._login_failure is not None:
            raise LoginFailed(self._login_failure)
        return self.statistics()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        """The crawl, with its metrics endpoint around it when ``config.metrics`` asks."""
        config = self._config
        if config.metrics is None:
            await self._crawl(task_status)
            return
        from .metrics import serve_metrics  # prometheus-client: only with --metrics

        async with serve_metrics(
            config.metrics, self._metrics_snapshot, linger=config.metrics_linger
        ) as address:
            self.metrics_address = address
            await self._crawl(task_status)

    def _metrics_snapshot(self) -> MetricsSnapshot:
        from .metrics import MetricsSnapshot

        trips: CallTimes | None = getattr(self._frontier.frontier, "round_trips", None)
        return MetricsSnapshot(
            self.statistics(),
            now=trio.current_time(),
            running=self._ended_at is None,
            rendering=self._config.rendering != "off",
            round_trips=None if trips is None else trips.snapshot(),
        )

    async def _crawl(self, task_status: trio.TaskStatus[None]) -> None:
        config = self._config
        self._started_at = trio.current_time()
        job_send, job_recv = trio.open_memory_channel[CrawlRequest](config.channel_buffer)
        record_send, record_recv = trio.open_memory_channel[tuple[CrawlRequest, Page]](
            config.channel_buffer
        )
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(closing_sink(self._sink))
                if not await self._open_frontier(stack):  # that crawl has finished
                    task_status.started()
                    return
                fetcher = await self._open_pipeline(stack)
                nursery = await stack.enter_async_context(trio.open_nursery())
                if config.robots or config.sitemaps_from_robots:
                    self._robots = RobotsCache(
                        fetcher,
                        self._hosts,
                        config,
                        rng=self._rng,
                        shared=self._frontier.shared_robots,
                    )
                    if config.robots:  # a redirect's target is asked about as a page's URL is
                        fetcher.redirect_allowed = self._robots.allowed
                writer = RecordWriter(
                    complete_sink(self._sink),
                    self._frontier,
                    self._counts,
                    attempting=lambda: self._attempting,
                    flush_delay=self._flush_delay,
                )
                nursery.start_soon(writer.run, record_recv)
                sampler = trio.CancelScope()
                if self._processes is not None and config.rendering != "off":
                    nursery.start_soon(_run_in, sampler, self._processes.sample_browsers)
                async with record_send, trio.open_nursery() as workers:
                    self._workers_scope = workers.cancel_scope

                    def add_worker() -> None:
                        workers.start_soon(self._work, job_recv.clone(), record_send.clone())

                    await self._start_up()
                    await self._admission.seeds(self._seeds, self._start_requests)
                    await self._admission.sitemaps(self._sitemaps, depth=0, referrer=None)
                    if config.sitemaps_from_robots:
                        await self._add_robots_sitemaps()
                    task_status.started()
                    with job_recv:
                        await self._dispatch(job_send, add_worker)
                sampler.cancel()
                count_unlinked = self._frontier.count_unlinked
                if config.recrawl and self._stop_reason is None and count_unlinked is not None:
                    self._counts.unlinked = await count_unlinked()  # the round is complete
        except BaseException:
            # Cancelled from outside (the caller's cancel scope), or an error: not finished.
            if self._stop_reason is None:
                self._stop_reason = "stopped"
            raise
        finally:
            self._ended_at = trio.current_time()
            if self._stop_reason is None and self._frontier.max_pages_refused:
                self._stop_reason = "max_pages"  # the fleet's count, kept by its frontier
            if self._stop_reason is None:
                self._stop_reason = "finished"

    async def _open_frontier(self, stack: AsyncExitStack) -> bool:
        """Open the crawl's frontier (its own state or fleet when it has one) and put the
        sink behind the frontier's commits; False: that crawl has finished (nothing to do)."""
        config = self._config
        own = self._own_state or self._own_redis
        opened = await open_frontier(
            stack,
            config,
            seeds=self._seeds + [r.url for r in self._start_requests],
            sitemaps=self._sitemaps,
            sink=self._sink,
            frontier=None if own else self._frontier,
        )
        if opened is None:
            return False
        self._frontier, info = opened
        if config.router is not None and not self._frontier.carries_requests:
            field = "state" if self._own_state else "frontier" if self._own_redis else "router"
            raise ConfigError(
                field,
                f"a scraper's requests (label, data, method, body) cannot be kept in "
                f"{type(self._frontier.frontier).__name__}",
            )
        stored = self._frontier.keep_session(self.jar)  # a state keeps the cookies
        if stored is not None:
            try:
                self.jar.loads(stored)
            except ValueError as exc:
                logger.warning("the state's cookies cannot be read (%s): starting with none", exc)
        if self._own_state:
            self._cut = info.deepest >= config.depth
        # Records go out once committed (a fleet's), through a sink with every capability.
        self._sink = await self._frontier.attach_sink(self._sink, links=config.links)
        self._admission = self._admission_for(self._frontier, scheduled=info.scheduled)
        return True

    def _admission_for(self, frontier: CompleteFrontier, *, scheduled: int) -> Admission:
        return Admission(
            self._config,
            frontier,
            self._scope,
            self._counts,
            scheduled=scheduled,
            fleet_pages=self._fleet_pages,
            max_pages_reached=self._max_pages_reached,
            remember=frontier.remember if frontier.remembers_pages else None,
        )

    def _max_pages_reached(self) -> None:
        if self._stop_reason is None:
            self._stop_reason = "max_pages"

    async def _open_pipeline(self, stack: AsyncExitStack) -> HttpxFetcher:
        """Open the page pipeline (here, or in worker processes) and return the plain HTTP
        fetcher that robots.txt and sitemaps use."""
        config = self._config
        starts = self._starts()
        seed_hosts = {host_of(url) for url in starts}
        seed_origins = {origin_of(url) for url in starts}
        if config.process_count == 1:
            tools = await stack.enter_async_context(
                open_page_pipeline(
                    config,
                    seed_hosts=seed_hosts,
                    seed_origins=seed_origins,
                    transport=self._transport,
                    rng=self._rng,
                    jar=self.jar,
                )
            )
            self._pipeline, self._renderer = tools.pipeline, tools.renderer
            return tools.fetcher
        # Each worker process opens its own pipeline; this process fetches robots.txt and
        # sitemaps only.
        from ..processes.pool import open_process_pipeline

        if config.screenshot is not None and config.rendering == "always":
            from ..render.files import open_directory

            open_directory(config.screenshot, "screenshot")  # its error here, not in each process

        fetcher = await stack.enter_async_context(
            open_fetcher(
                config,
                transport=self._transport,
                seed_hosts=seed_hosts,
                seed_origins=seed_origins,
                jar=self.jar,
            )
        )
        self._pipeline = self._processes = await stack.enter_async_context(
            open_process_pipeline(
                config,
                seed_hosts=seed_hosts,
                seed_origins=seed_origins,
                bodies=self._keep_bodies,
                jar=self.jar,
            )
        )
        return fetcher

    def _starts(self) -> list[str]:
        """Every URL the crawl starts from: seeds, start requests' URLs, sitemaps."""
        return self._seeds + [r.url for r in self._start_requests] + self._sitemaps

    def _worker_count(self) -> int:
        config = self._config
        if config.rendering == "always":
            # Each page needs a tab: more workers would only wait for one, and that wait
            # would count against their page deadline. (Worker processes get jobs least
            # busy first, so each gets at most its own tabs' worth.)
            return min(config.workers, config.render_tabs * config.process_count)
        return config.workers

    async def _dispatch(
        self, jobs: trio.MemorySendChannel[CrawlRequest], add_worker: Callable[[], None]
    ) -> None:
        """Move requests from the frontier to the workers until there are none left or the
        crawl is stopped (by its deadline or :meth:`stop`).

        Workers start as jobs come (``add_worker``), up to :meth:`_worker_count`: one more
        whenever no worker waits for the next job. So memory follows the pages in flight, not
        the option: ``workers=10_000`` on a ten-page site starts at most ten.
        """
        config = self._config
        workers, most = 0, self._worker_count()
        async with jobs:
            with trio.CancelScope() as scope:
                self._dispatch_scope = scope
                if self._stopping:
                    scope.cancel()
                if config.deadline is not None:
                    # From the first dispatch: start-up (opening the state, starting worker
                    # processes, reading robots.txt sitemaps) does not eat the crawl's time.
                    scope.deadline = trio.current_time() + config.deadline
                while True:
                    request = await self._frontier.get(self._hosts)
                    if request is None:
                        return
                    if workers < most and not jobs.statistics().tasks_waiting_receive:
                        add_worker()
                        workers += 1
                    try:
                        # send() would yield to the scheduler even with room in the channel:
                        # only wait when it is full (a full channel is where we checkpoint).
                        try:
                            jobs.send_nowait(request)
                        except trio.WouldBlock:
                            await jobs.send(request)
                    except BaseException:
                        self._never_started(request)
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
            request: CrawlRequest | None = None
            direct = 0
            while True:
                if request is None:
                    direct = 0
                    try:
                        request = await jobs.receive()
                    except trio.EndOfChannel:
                        return
                attempted = await self._page(request, records)
                request = None
                # A page that went to the network checkpointed; a run of pages that may not
                # have (robots.txt refusals, blocked addresses) goes back to the channel,
                # which does, so one worker never holds the scheduler.
                if attempted and direct < _DIRECT_TAKES:
                    request = self._next_request(jobs)
                    direct += 1

    def _next_request(self, jobs: trio.MemoryReceiveChannel[CrawlRequest]) -> CrawlRequest | None:
        """The next request for a worker whose page has just ended, without waiting: one the
        dispatcher has queued, else one taken from the frontier right away.

        A page's end usually frees its host's slot; taking the next request here writes it
        in the same scheduler pass instead of two passes later (the dispatcher, then a worker
        woken by the channel). Under load a pass runs every ready task, so those two passes
        could hold a freed slot for as long as the whole batch of pages that ended with it.
        """
        try:
            return jobs.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            pass
        frontier = self._frontier
        scope = self._dispatch_scope
        # (cancel_called is true once the crawl's deadline has passed, too)
        if (
            not frontier.leases_without_waiting
            or self._stopping
            or scope is None
            or scope.cancel_called
        ):
            return None  # the dispatcher alone decides when dispatching ends
        try:
            request: CrawlRequest = frontier.get_nowait(self._hosts)
        except trio.WouldBlock:
            return None
        return request

    def _never_started(self, request: CrawlRequest) -> None:
        """A dispatched request that goes no further (stopped, refused by robots.txt, a
        revisit with nothing to find): its host's slot is freed with no latency to learn from.
        Exactly one ``finish`` per dispatched request, whatever happens to it."""
        self._hosts.finish(
            origin_of(request.url),
            latency=None,
            failed=False,
            url=request.url,
            request=request.request,
            unsent=True,
        )

    async def _page(
        self,
        request: CrawlRequest,
        records: trio.MemorySendChannel[tuple[CrawlRequest, Page]],
    ) -> bool:
        """A request from start to record; returns whether it was attempted (it went to the
        pipeline, and so most likely to the network)."""
        if self._stopping:
            # Dispatched but not started: it goes back, it is not "scheduled".
            self._never_started(request)
            await self._frontier.release([request])
            return False
        page = None
        attempted = False
        begun: float | None = None  # when its fetch began
        if request.depth >= self._config.depth:
            self._cut = True
        elif request.revisit and not (self._cut or self._frontier.cut):
            # Nothing was cut: the page's links were all followed already.
            self._never_started(request)
            await self._frontier.done([request])
            return False
        try:
            self._attempting += 1
            try:
                if (
                    self._robots is not None
                    and self._config.robots
                    and not await self._robots.allowed(request.url)
                ):
                    self._never_started(request)
                    page = failed_page(request, PageError("robots", "disallowed by robots.txt"))
                else:
                    if self._frontier.times_starts:  # a shared one times the host's delay
                        await self._frontier.starting(request)
                    attempted = True
                    begun = trio.current_time()
                    page = await self._attempt(request)
            finally:
                self._attempting -= 1  # before its record goes out: see _write_records
            if page is not None and request.revisit:  # its links are queued
                self._counts.revisits += 1
                await self._frontier.done([request])
            elif page is not None:
                if not self._keep_bodies:  # a lexbor tree is far larger than its page
                    page.html = None
                    page.text = None
                    page.content = b""
                try:  # no scheduler round trip when the sink has room
                    records.send_nowait((request, page))
                except trio.WouldBlock:
                    await records.send((request, page))
        except trio.Cancelled:
            if request.revisit or (page is None and self._resumable):
                # A resumable crawl does this page again next time instead.
                with trio.CancelScope(shield=True):
                    await self._frontier.release([request])
                raise
            if page is None:
                page = _cut_off(request, begun)
            with trio.CancelScope(shield=True), trio.move_on_after(_LAST_RECORD_TIMEOUT):
                try:
                    await records.send((request, page))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            raise
        return attempted

    # ---------------------------------------------------------------------------- a page

    async def _attempt(self, request: CrawlRequest) -> Page | None:
        """One attempt at a page through the pipeline, applied to the crawl's shared state.
        Returns its Page, or None when the request went back to the frontier to be retried
        (its host paused meanwhile: no worker waits for it)."""
        assert self._pipeline is not None
        origin = origin_of(request.url)
        started = trio.current_time()
        if request.first_try is None:
            request = request._replace(first_try=started)
        try:
            outcome = await self._pipeline.attempt(request, paced=self._hosts.paced(origin))
        except AttemptLost as exc:
            self._hosts.finish(origin, latency=None, failed=False)
            return await self._lost(request, exc)
        except BaseException:
            # Exactly one finish() per dispatched request, whatever happened (cancellation).
            elapsed = trio.current_time() - started
            self._hosts.finish(
                origin, latency=elapsed, failed=True, url=request.url, request=request.request
            )
            raise
        self._hosts.finish(
            origin,
            latency=outcome.latency,
            failed=outcome.failed,
            url=request.url,
            request=request.request,
        )
        return await self._apply(request, outcome)

    async def _apply(self, request: CrawlRequest, outcome: Outcome) -> Page | None:
        """Apply an attempt's outcome: queue its links and sitemap entries, mark a redirect's
        target seen, or send the request back for a retry with its host paused."""
        self._counts.invalid_links += outcome.invalid_links
        page = outcome.page
        if outcome.login_failed is not None:  # a handler says the session is gone: stop
            if self._login_failure is None:
                self._login_failure = f"{request.url}: {outcome.login_failed}"
                logger.warning("log-in failed at %s; stopping", request.url)
            self.stop()
            if self._resumable:  # done again, logged in, when the crawl is resumed
                await self._frontier.release([request])
                return None
        if page is None:
            self._counts.retries += 1
            origin = origin_of(request.url)
            logger.info(
                "retrying %s in %.2fs (attempt %d failed: %s); pausing %s",
                request.url,
                outcome.retry_after,
                request.attempts + 1,
                outcome.retry_reason,
                origin,
            )
            # The whole host waits (a 429/503 or a failing connection concerns all its
            # pages); the request goes back to the front of its host's queue.
            self._hosts.pause(origin, outcome.retry_after)
            self._counts.pauses += 1
            await self._frontier.release([request._replace(attempts=request.attempts + 1)])
            return None
        await self._admission.outcome(request, outcome, page)
        return page

    async def _lost(self, request: CrawlRequest, exc: AttemptLost) -> Page | None:
        """The worker process running an attempt died: the attempt counts (a page that kills
        its process every time must not kill them all), and the request goes back."""
        attempts = request.attempts + 1
        if attempts > self._config.retries:
            elapsed = trio.current_time() - (request.first_try or trio.current_time())
            return failed_page(request, PageError("crashed", str(exc)), elapsed=elapsed)
        self._counts.retries += 1
        await self._frontier.release([request._replace(attempts=attempts)])
        return None

    # ------------------------------------------------------------------------ start-up

    async def _start_up(self) -> None:
        """The router's start-up step (a log-in): its requests, and every request their
        pages' handlers enqueue, one at a time in order, before any seed is queued. Each is
        an ordinary attempt (the host's politeness and robots.txt, the address guard,
        retries, the crawl's cookies); the pages are not records.

        Raises:
            LoginFailed: ``on_start`` raised or returned something that is not a request, a
                page of the step failed (its handler raised ``LoginFailed``, an HTTP error, a
                fetch that failed after its retries), or the step made more than
                :data:`MAX_STARTUP_REQUESTS` requests.
        """
        router = self._config.router
        if router is None or self._stopping:
            return
        try:
            requests = collections.deque(router.startup(self._starts()))
        except LoginFailed:
            raise
        except RequestError as exc:  # a request it made or returned is not one
            text = str(exc) if str(exc).startswith("on_start") else f"on_start: {exc}"
            raise LoginFailed(text) from None
        except Exception as exc:
            raise LoginFailed(f"on_start raised {type(exc).__name__}: {exc}") from None
        if not requests:
            return
        made = 0
        with trio.CancelScope() as scope:
            self._startup_scope = scope
            while requests:
                made += 1
                if made > MAX_STARTUP_REQUESTS:
                    raise LoginFailed(
                        f"the start-up step made more than {MAX_STARTUP_REQUESTS} requests"
                    )
                spec = requests.popleft()
                # At depth -1, before the seeds: what the handlers enqueue is followed
                # whatever the crawl's depth (even 0).
                step = CrawlRequest(spec.url, depth=-1, request=spec)
                outcome = await self._start_up_page(step)
                page = outcome.page
                assert page is not None
                if outcome.login_failed is not None:
                    raise LoginFailed(f"{page.url}: {outcome.login_failed}")
                if page.error is not None:
                    raise LoginFailed(f"{page.url}: {page.error.message}")
                requests.extend(outcome.requests)
                requests.extend(map(Request.link, outcome.links))  # the handler's plain GETs
        self._startup_scope = None
        if not scope.cancelled_caught:
            logger.info("start-up step done (%d requests)", made)

    async def _start_up_page(self, request: CrawlRequest) -> Outcome:
        """One request of the start-up step, tried again as a page is (the host paused
        meanwhile), until it has a page."""
        assert self._pipeline is not None
        hosts = self._hosts
        origin = origin_of(request.url)
        while True:
            ready = hosts.ready_at(origin)  # (nothing else runs: never full)
            if ready != math.inf and ready > trio.current_time():
                await trio.sleep_until(ready)
            hosts.start(origin, request.url)
            robots = self._robots
            if robots is not None and self._config.robots and not await robots.allowed(request.url):
                hosts.finish(origin, latency=None, failed=False)
                raise LoginFailed(f"{request.url}: disallowed by robots.txt")
            started = trio.current_time()
            if request.first_try is None:
                request = request._replace(first_try=started)
            try:
                outcome = await self._pipeline.attempt(request, paced=hosts.paced(origin))
            except AttemptLost as exc:
                hosts.finish(origin, latency=None, failed=False)
                if request.attempts + 1 > self._config.retries:
                    raise LoginFailed(f"{request.url}: {exc}") from None
                request = request._replace(attempts=request.attempts + 1)
                continue
            except BaseException:
                hosts.finish(origin, latency=trio.current_time() - started, failed=True)
                raise
            hosts.finish(origin, latency=outcome.latency, failed=outcome.failed)
            if outcome.page is not None:
                return outcome
            self._counts.retries += 1
            logger.info(
                "retrying %s in %.2fs (start-up step: %s)",
                request.url,
                outcome.retry_after,
                outcome.retry_reason,
            )
            hosts.pause(origin, outcome.retry_after)
            self._counts.pauses += 1
            request = request._replace(attempts=request.attempts + 1)

    async def _add_robots_sitemaps(self) -> None:
        assert self._robots is not None
        found: list[str] = []
        for origin in dict.fromkeys(origin_of(seed) for seed in self._seeds):
            urls, invalid = browser_urls(await self._robots.sitemaps(origin))
            self._counts.invalid_links += invalid
            found += urls
        await self._admission.sitemaps(found, depth=0, referrer=None)


async def _run_in(scope: trio.CancelScope, task: Callable[[], Awaitable[None]]) -> None:
    """Run ``task`` until ``scope`` is cancelled."""
    with scope:
        await task()


def raise_single(group: BaseExceptionGroup[BaseException]) -> NoReturn:
    """Re-raise the one real exception inside nested nursery groups, so callers see an
    ``OutputError`` (or a hook's bug) rather than an ExceptionGroup (the first, when several are
    the same trio-scrape error); a group holding several distinct exceptions is re-raised
    as is."""
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
    if real and all(isinstance(e, TrioScrapeError) and type(e) is type(real[0]) for e in real):
        # One failure seen by several tasks (Redis stopped answering both the lease and the
        # renewal): the first tells it.
        raise real[0] from None
    if not real and leaves:
        raise leaves[0] from None
    raise group


# ---------------------------------------------------------------------------------- helpers


def open_crawl(
    seeds: Iterable[str | Request],
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
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(crawler.run)
            async with receive:
                async for page in receive:
                    yield page
    except BaseExceptionGroup as group:  # the crawl's own error (LoginFailed), not a group
        raise_single(group)


async def scrape(
    urls: Iterable[str | Request],
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


def _cut_off(request: CrawlRequest, begun: float | None) -> Page:
    """The record of a request the crawl's stop cut off: before it began, or (``begun``:
    when its fetch began) during its fetch or handlers."""
    if begun is None:
        return failed_page(request, PageError("cancelled", "the crawl stopped before this page"))
    return failed_page(
        request,
        PageError("cancelled", "the crawl stopped during this page"),
        elapsed=trio.current_time() - begun,
    )
