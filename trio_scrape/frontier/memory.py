"""The frontier: the seen-set and the queue of URLs still to fetch, with leases.

The engine talks to a frontier only through the :class:`~trio_scrape.frontier.base.Frontier`
protocol (and the optional capabilities declared beside it, in ``base.py``), so a crawl's
state can live in memory (here), in SQLite for resumable crawls, or in Redis to share one
crawl between machines.

Leases are what let the crawl end by itself, with no polling: a request handed out by
:meth:`~Frontier.get` stays leased until :meth:`~Frontier.done` (its record is written) or
:meth:`~Frontier.release` (given back unprocessed). A worker adds the links it found *before*
its request is done, so "queue empty and nothing leased" can only mean there is no more work,
and that is when ``get()`` returns ``None``.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import trio
from mypy_extensions import mypyc_attr

from ..model.page import CrawlRequest
from ..model.request import Request
from ..model.urls import origin_of, url_key
from .base import Frontier, FrontierStatistics
from .depths import SeenDepths, found_again, lease_depth, seen_value
from .pacing import HostLimiter

__all__ = ["Frontier", "FrontierStatistics", "MemoryFrontier"]


class LinkBatch:
    """Links of one page to one host, queued as one string: a queued URL costs its length
    plus a byte, instead of ~200 bytes as a string plus a CrawlRequest and a deque slot."""

    __slots__ = ("depth", "position", "referrer", "text")

    def __init__(self, urls: list[str], depth: int, referrer: str | None) -> None:
        self.text = "\n".join(urls)
        self.position = 0
        self.depth = depth
        self.referrer = referrer

    def take(self) -> CrawlRequest:
        text = self.text
        start = self.position
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        self.position = end + 1
        return CrawlRequest(text[start:end], self.depth, self.referrer)

    def exhausted(self) -> bool:
        return self.position > len(self.text)


QueueEntry = CrawlRequest | LinkBatch


# Compiled with mypyc in a wheel (hatch_build.py): the --state frontier and tests subclass it.
@mypyc_attr(allow_interpreted_subclasses=True)
class MemoryFrontier:
    """An in-memory :class:`Frontier`: one FIFO queue per host, hosts served round-robin.

    ``get`` hands out only requests whose host the :class:`HostLimiter` says is ready, so a
    slow or paused host never holds back the others. Hosts with queued work are kept in one of
    three places: a round-robin deque (maybe ready), a heap by the time they become ready
    (delay, pause), or a set of hosts at their concurrency limit, which the limiter empties as
    their requests finish. Each dispatch is O(log hosts), never a scan of every host.

    The seen-set maps Python's 64-bit ``hash()`` of each URL's canonical key (SipHash,
    salted per process), not the string, to the URL's shortest known depth and whether it
    was handed out (:mod:`~trio_scrape.frontier.depths`): about 70 bytes per URL (a 32-byte
    int plus the dict's share) instead of ~150 for typical URL strings, and the hash is
    already cached on the string. The chance of any false "seen" among a million URLs is
    about 3e-8. A frontier that persists its seen-set uses a stable digest instead
    (:mod:`~trio_scrape.frontier.digests`). A page's links to one host are queued together as
    one newline-joined string (:class:`LinkBatch`): about 60 bytes per queued URL instead of
    ~200.

    **For subclasses** (the SQLite frontier keeps a window of its queue here and the rest on
    disk), this is the protected interface; nothing else of this class is:

    - hooks to override: :meth:`_on_lease` (each request handed out; call
      :func:`~.depths.lease_depth` or this one), :meth:`_read_ahead` (bring spilled requests
      back, without waiting), :meth:`_improve` (a seen URL found nearer; extend it, calling
      this one first), :meth:`_seen_depths` (the seen-set the rules update), :meth:`statistics`;
    - calls: :meth:`_enqueue_entry` (queue a :data:`QueueEntry` for an origin), :meth:`_enqueue`,
      :meth:`_wake` (wake ``get()`` after queueing), :meth:`_end_leases` is done/release's;
    - state a subclass reads or sets: ``_queued`` and ``_leased`` (counts), ``_spilled`` and
      ``_low_water`` (see ``__init__``), ``_improved`` and ``_pending_revisits`` (depth
      improvements and revisits pending, by digest).
    """

    def __init__(self) -> None:
        #: a scraper's requests (method, body, label, data) are kept: see add_requests
        self.carries_requests = True
        self._queues: dict[str, collections.deque[QueueEntry]] = {}
        self._queued = 0
        self._ready: collections.deque[str] = collections.deque()
        self._timed: list[tuple[float, int, str]] = []
        # Each host in _timed: when its entry there is due. An entry for another time is
        # stale (the host was made ready sooner: _host_freed), and skipped.
        self._timed_at: dict[str, float] = {}
        self._blocked: set[str] = set()
        self._tracked: set[str] = set()  # hosts in _ready, _timed or _blocked
        self._order = itertools.count()
        # hash(url_key(url)) -> depth << 1 | handed_out: the shortest known depth, and
        # whether the URL was handed out (leased, done, marked seen) or is still queued.
        self._seen: dict[int, int] = {}
        # hash(url_key(url)) -> (depth, referrer) for queued URLs found again at a smaller
        # depth: applied when the queued request is handed out (rare; empty on most crawls).
        self._improved: dict[int, tuple[int, str | None]] = {}
        # hash(url_key(url)) -> revisit, for handed-out URLs found again at a smaller depth.
        self._pending_revisits: dict[int, CrawlRequest] = {}
        self._leased = 0
        self._changed = trio.Event()
        self._waiting = 0  # tasks in get() waiting for _changed
        self._limiter: HostLimiter | None = None
        # A subclass that keeps only a window of its queue in memory sets _spilled while
        # more is waiting elsewhere; get() then calls _read_ahead() below _low_water, and
        # never ends the crawl while it is set. _read_ahead() must not wait: whatever reads
        # the queue back wakes get() (_wake) once it has, whether it found any or not.
        self._spilled = False
        self._low_water = 0

    def _wake(self) -> None:
        if self._waiting:  # else no one to wake: get() looks before it waits
            self._changed.set()
            self._changed = trio.Event()

    def _enqueue(self, request: CrawlRequest, *, front: bool = False) -> None:
        self._enqueue_entry(origin_of(request.url), request, 1, front=front)

    def _enqueue_entry(self, origin: str, entry: QueueEntry, count: int, *, front: bool) -> None:
        queue = self._queues.get(origin)
        if queue is None:
            queue = self._queues[origin] = collections.deque()
        if front:
            queue.appendleft(entry)
        else:
            queue.append(entry)
        self._queued += count
        if origin not in self._tracked:
            self._tracked.add(origin)
            self._ready.append(origin)

    async def add(
        self,
        urls: Iterable[str],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
        sitemap: bool = False,
        lastmods: Mapping[str, str] | None = None,
        revisit: bool = False,
    ) -> int:
        if sitemap or lastmods:
            return self._add_each(urls, depth, referrer, keep, sitemap, lastmods or {}, revisit)
        seen = self._seen
        seen_at = seen.get
        queued = depth << 1
        deeper = queued | 1  # known >> 1 > depth  <=>  known > deeper
        by_origin: dict[str, list[str]] = {}
        added = 0
        for url in urls:
            # (url_key's own shortcut, inlined: most of a page's links are seen already;
            # test_url_key_leaves_a_url_without_escapes_or_query_as_it_is pins that they agree)
            # (digests.memory_digest, with its shortcut inlined)
            digest = hash(url if "%" not in url and "?" not in url else url_key(url))
            known = seen_at(digest)
            if known is not None:
                if known > deeper:
                    added += self._improve(digest, url, known, depth, referrer, revisit)
                continue
            if keep is not None and not keep(url):
                continue
            seen[digest] = queued
            origin = origin_of(url)
            batch = by_origin.get(origin)
            if batch is None:
                by_origin[origin] = [url]
            else:
                batch.append(url)
        for origin, new in by_origin.items():
            added += len(new)
            entry: QueueEntry
            if len(new) > 1:
                entry = LinkBatch(new, depth, referrer)
                if entry.text.count("\n") == len(new) - 1:  # no URL holds a newline
                    self._enqueue_entry(origin, entry, len(new), front=False)
                    continue
            for url in new:
                self._enqueue_entry(origin, CrawlRequest(url, depth, referrer), 1, front=False)
        if added:
            self._wake()
        return added

    def _add_each(
        self,
        urls: Iterable[str],
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None,
        sitemap: bool,
        lastmods: Mapping[str, str],
        revisit: bool,
    ) -> int:
        added = 0
        for url in urls:
            digest = hash(url_key(url))
            known = self._seen.get(digest)
            if known is not None:
                if known >> 1 > depth:
                    added += self._improve(digest, url, known, depth, referrer, revisit)
                continue
            if keep is not None and not keep(url):
                continue
            self._seen[digest] = depth << 1
            request = CrawlRequest(url, depth, referrer, 0, None, sitemap, lastmods.get(url))
            self._enqueue(request)
            added += 1
        if added:
            self._wake()
        return added

    def _improve(
        self,
        digest: int,
        url: str,
        known: int,
        depth: int,
        referrer: str | None,
        revisit: bool,
    ) -> int:
        """Hook: a seen URL found again at a smaller depth (:func:`~.depths.found_again`);
        return how many requests were queued. A subclass may extend it (the SQLite frontier
        writes down what changed), calling this one first."""
        nearer = found_again(known, depth, revisit)
        if nearer is None:
            return 0
        self._seen_depths()[digest] = nearer.value
        if nearer.shorter:  # still queued: it will be handed out at the new depth
            self._improved[digest] = (depth, referrer)
        elif nearer.revisit:
            self._pending_revisits[digest] = CrawlRequest(url, depth, referrer, revisit=True)
        return 0

    def _seen_depths(self) -> SeenDepths:
        """Hook: the seen-set, by digest (a subclass may keep its own)."""
        return self._seen

    def _queue_revisits(self) -> None:
        """Queue the pending revisits of the smallest depth."""
        pending = self._pending_revisits
        depth = min(request.depth for request in pending.values())
        seen = self._seen_depths()
        for digest, request in list(pending.items()):
            if request.depth == depth:
                del pending[digest]
                seen[digest] = seen_value(depth, handed_out=False)
                self._enqueue(request)

    async def add_requests(
        self,
        requests: Iterable[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Queue a scraper's requests never seen before (by their dedup key; each one with
        ``dont_dedup``) at ``depth``, with ``referrer``, where ``keep(url)`` allows. A
        request seen before is not queued again, whatever its depth (a scraper's pages are
        not fetched again for their links). Returns how many were queued."""
        added = 0
        seen = self._seen
        for request in requests:
            digest = None if request.dont_dedup else hash(request.key)
            if digest is not None and digest in seen:
                continue
            if keep is not None and not keep(request.url):
                continue
            if digest is not None:
                seen[digest] = seen_value(depth, handed_out=False)
            self._enqueue(CrawlRequest(request.url, depth, referrer, request=request))
            added += 1
        if added:
            self._wake()
        return added

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        for url in urls:
            self._seen.setdefault(hash(url_key(url)), depth << 1 | 1)

    async def get(self, hosts: HostLimiter) -> CrawlRequest | None:
        self._subscribe(hosts)
        while True:
            if self._spilled and self._queued < self._low_water:
                self._read_ahead()
            request = self._take_ready(hosts)
            if request is not None:
                return request
            if self._spilled:
                # Every host in memory is waiting (or nothing is in memory): bring in the
                # work of other hosts, and wait for it like for any other change.
                self._read_ahead(more=True)
                if not self._spilled:
                    continue  # read back at once: nothing outside memory any more
            elif self._queued == 0 and self._leased == 0:
                if not self._pending_revisits:
                    return None
                self._queue_revisits()
                continue
            timed = self._timed
            self._waiting += 1
            try:
                if timed:
                    with trio.move_on_at(timed[0][0]):
                        await self._changed.wait()
                else:
                    await self._changed.wait()
            finally:
                self._waiting -= 1

    def get_nowait(self, hosts: HostLimiter) -> CrawlRequest:
        """Lease the next request whose host is ready, as :meth:`get` would, without waiting
        (for a worker whose page just ended: its freed slot becomes the next request at once,
        not after a pass through the dispatcher).

        Raises:
            trio.WouldBlock: no queued request's host is ready now (or the queue is empty);
                :meth:`get` waits for one, and says when the crawl is exhausted.
        """
        self._subscribe(hosts)
        if self._spilled and self._queued < self._low_water:
            self._read_ahead()
        request = self._take_ready(hosts)
        if request is None:
            raise trio.WouldBlock
        if self._ready:  # get() must not sleep while a host may be ready: idle workers wait
            self._wake()
        return request

    def _subscribe(self, hosts: HostLimiter) -> None:
        if self._limiter is not hosts:
            self._limiter = hosts
            hosts.subscribe(self._host_freed)

    def _take_ready(self, hosts: HostLimiter) -> CrawlRequest | None:
        """Lease the first queued request, round-robin over hosts, whose host is ready now,
        and ``hosts.start`` it; None if there is none. Hosts that are not ready move to the
        heap (ready later) or the blocked set (full), so each call is O(log hosts)."""
        now = trio.current_time()
        timed = self._timed
        timed_at = self._timed_at
        while timed and timed[0][0] <= now:
            at, _, due = heapq.heappop(timed)
            if timed_at.get(due) == at:
                del timed_at[due]
                self._ready.append(due)
        while self._ready:
            origin = self._ready.popleft()
            queue = self._queues.get(origin)
            if not queue:
                self._queues.pop(origin, None)
                self._tracked.discard(origin)
                continue
            ready_at = hosts.ready_at(origin)
            if ready_at == math.inf:
                self._blocked.add(origin)
                continue
            if ready_at > now:
                heapq.heappush(timed, (ready_at, next(self._order), origin))
                timed_at[origin] = ready_at
                continue
            entry = queue[0]
            if type(entry) is LinkBatch:
                request = entry.take()
                if entry.exhausted():
                    queue.popleft()
            else:
                request = queue.popleft()  # type: ignore[assignment]
            self._queued -= 1
            if queue:
                self._ready.append(origin)
            else:
                del self._queues[origin]
                self._tracked.discard(origin)
            self._leased += 1
            hosts.start(origin, request.url)
            return self._on_lease(request)
        return None

    def _read_ahead(self, *, more: bool = False) -> None:
        """Have queued requests kept outside memory brought into the window, without waiting
        (``more``: every host in the window is waiting, so load past the usual size)."""
        self._spilled = False

    def _on_lease(self, request: CrawlRequest) -> CrawlRequest:
        """Called for each request ``get`` hands out; returns it at its shortest known depth."""
        spec = request.request
        if spec is None:
            return lease_depth(self._seen, self._improved, hash(url_key(request.url)), request)
        if not spec.dont_dedup:
            self._seen[hash(spec.key)] = seen_value(request.depth, handed_out=True)
        return request

    def _host_freed(self, origin: str) -> None:
        """``origin`` may be ready sooner: a slot was freed, or a start that was never sent
        was taken back (its delay no longer runs)."""
        if origin in self._blocked:
            self._blocked.discard(origin)
            self._ready.append(origin)
            self._wake()
        elif self._timed_at.pop(origin, None) is not None:  # its entry in _timed is stale
            self._ready.append(origin)
            self._wake()

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        self._end_leases(len(requests))

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        for request in reversed(requests):
            self._enqueue(request, front=True)
        self._end_leases(len(requests))

    def _end_leases(self, count: int) -> None:
        if count > self._leased:
            raise RuntimeError(f"ending {count} leases but only {self._leased} are held")
        self._leased -= count
        if count:
            self._wake()

    def statistics(self) -> FrontierStatistics:
        return FrontierStatistics(queued=self._queued, leased=self._leased, seen=len(self._seen))
