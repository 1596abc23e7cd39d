"""One crawl sharded over the primaries of a Redis Cluster (``redis+cluster://...?shards=N``).

A sharded crawl is ``N`` shards, each a complete crawl layout of its own (the keys and the
functions of :mod:`trio_scrape.frontier.redis`, unchanged) under its own hash tag: shard 0 is
the crawl's own tag ``{<crawl id>}``, shard ``k`` is ``{<crawl id>~<k>.<n>}``, where ``n`` is
the first number that puts the tag's slot on the primary after shard ``k - 1``'s, so the
shards spread over the primaries in turn. The tags are chosen by the process that creates the
crawl and stored in shard 0's ``meta`` (``shards``); every other process reads them there.

A host (its origin) belongs to one shard, ``crc32(origin) mod N``: its queue, its slots, its
pacing and pauses, its robots.txt, and the seen-set entries of its URLs all live on that
shard, and every per-host function stays one atomic call there. What spans shards:

- **Leases** (:meth:`ShardedRedisFrontier.get`): a lease a shard gave ahead of need first
  (the shards in turn, no call); else every shard asked at once, each with its own polling,
  the first answer taken: a process leases from whichever shard has a ready host.
- **A page's links**: those of hosts on the page's own shard go with its completion, as on one
  Redis; the others are added to their shards *before* the completion is sent. A process
  killed between the two leaves the page leased: it expires, the page is done again, and its
  links dedupe in the seen-sets. So no link is lost and each record is committed once (with
  its completion, on the page's shard).
- **The end of the crawl**: every shard seen with nothing queued or leased twice, the two
  looks at each with the same counts, and every first look before every second: see
  :meth:`ShardedRedisFrontier._exhausted` for why that is enough.
- **Records**: one stream per shard; ``export`` writes them one after the other, ``status``
  sums them. A process's own output file stores, with each completion, its length and the
  last record id of every shard it holds (``<offset>\\t<id0>,<id1>,...``): restarted, it
  cuts its file back to the longest such length stored on any shard and writes again each
  shard's records after that shard's id.
- **--max-pages**: a crawl-wide budget in shard 0 (``budget``), handed to the shards as
  grants: an add that a shard refuses for want of budget asks for as many more as it has
  unseen URLs (its grant raised to what it has scheduled plus those), and is tried again.
  Never more than ``max_pages`` pages in all; fewer only when URLs counted as unseen for a
  grant were then not scheduled (marked seen as a redirect's target meanwhile).
- **--recrawl** is refused on a sharded crawl (a round begins on one crawl's keys at once),
  and it stores no recrawl memos.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..errors import FrontierError
from ..model.config import CrawlConfig, RedisLocation, check_crawl_id, parse_redis_url
from ..model.page import CrawlRequest, Page
from ..model.request import Request
from ..model.urls import origin_of
from ..output.sinks import Sink, complete_sink
from .base import FrontierOpened, FrontierStatistics
from .digests import redis_digest
from .pacing import HostEvent, HostLimiter
from .redis import (
    _CALL_ERRORS,
    _CALL_TIMEOUT,
    Client,
    RedisFrontier,
    StreamEntry,
    _CommittingSink,
    _describe,
    _lease_key,
    _page_from_record,
    _stream_entry,
    _text,
    crawl_id_for,
    key_prefix,
)
from .redis_open import FleetStatus, _home_node, fleet_status, open_redis_frontier, read_entries
from .resp import RespPool

__all__ = [
    "ShardedRedisFrontier",
    "crawl_entries",
    "crawl_status",
    "crawl_tags",
    "keyslot",
    "open_fleet_frontier",
    "shard_of",
]

logger = logging.getLogger("trio_scrape")

_POLL_MIN = 0.005  # seconds between looks at a shard with nothing to do, doubling up to:
_POLL_MAX = 0.25
_SLOTS = 16_384

# Fix the crawl's layout once, in shard 0's meta: the tags stored by whoever created the
# crawl, or these; a crawl created before (settings stored, no layout) keeps its one tag.
_LAYOUT = """
local s = redis.call('HGET', KEYS[1], 'shards')
if s then return s end
if redis.call('HEXISTS', KEYS[1], 'settings') == 1 then return '' end
redis.call('HSET', KEYS[1], 'shards', ARGV[1])
return ARGV[1]
"""

# Raise shard ARGV[1]'s grant of the crawl's budget ARGV[3] to ARGV[2] pages (no further than
# the budget allows); return its grant and the budget left. KEYS[1]: shard 0's budget hash
# (total: granted so far; <k>: granted to shard k). Two processes asking for the same
# shard's next URLs at once ask for the same grant: the second asks for nothing more.
_GRANT = """
local total = tonumber(redis.call('HGET', KEYS[1], 'total')) or 0
local have = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
local left = tonumber(ARGV[3]) - total
local give = math.min(tonumber(ARGV[2]) - have, left)
if give > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', give)
  redis.call('HINCRBY', KEYS[1], ARGV[1], give)
  have, left = have + give, left - give
end
return { have, math.max(0, left) }
"""


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def keyslot(tag: str) -> int:
    """The cluster slot of every key with hash tag ``{tag}`` (CRC16 of the tag, mod 16384)."""
    return _crc16(tag.encode()) % _SLOTS


def shard_of(origin: str, shards: int) -> int:
    """The shard a host belongs to: the same in every process."""
    return zlib.crc32(origin.encode()) % shards


def shard_tags(
    crawl_id: str, shards: int, primaries: Sequence[Sequence[tuple[int, int]]]
) -> list[str]:
    """The hash tags of a new crawl's shards: shard 0 the crawl id; each next one on the
    primary after the previous one's (``primaries``: each primary's slot ranges)."""

    def primary_of(slot: int) -> int:
        for i, ranges in enumerate(primaries):
            if any(start <= slot <= end for start, end in ranges):
                return i
        raise FrontierError(f"no node serves slot {slot} (is the cluster ok?)")

    tags = [crawl_id]
    home = primary_of(keyslot(crawl_id))
    for k in range(1, shards):
        wanted = (home + k) % len(primaries)
        n = 0
        while primary_of(keyslot(f"{crawl_id}~{k}.{n}")) != wanted:
            n += 1
        tags.append(f"{crawl_id}~{k}.{n}")
    return tags


async def _layout(location: RedisLocation, crawl_id: str) -> list[str]:
    """The crawl's shard tags, fixed by whoever created it (``[crawl_id]``: one tag).

    Raises:
        FrontierError: no node named answers.
    """
    try:
        with trio.fail_after(_CALL_TIMEOUT):
            node = await _home_node(location, key_prefix(crawl_id, cluster=True))
            pool = RespPool(node)
            try:
                ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
                for start, end, primary, *_ in await pool.command("CLUSTER", "SLOTS"):
                    where = (_text(primary[0]), int(primary[1]))
                    ranges.setdefault(where, []).append((int(start), int(end)))
                primaries = [ranges[where] for where in sorted(ranges)]
                tags = shard_tags(crawl_id, location.shards, primaries)
                meta = key_prefix(crawl_id, cluster=True) + "meta"
                stored = _text(await pool.command("EVAL", _LAYOUT, 1, meta, json.dumps(tags)))
            finally:
                with trio.CancelScope(shield=True):
                    await pool.aclose()
    except (*_CALL_ERRORS, ValueError, trio.TooSlowError) as exc:
        raise FrontierError(
            f"cannot use Redis at {location.host}:{location.port}: {_describe(exc)}"
        ) from None
    found: list[str] = json.loads(stored) if stored else [crawl_id]
    if len(found) != location.shards and location.shards != 1:
        logger.warning(
            "the crawl %s was created with %d shard(s): it keeps them (?shards=%d ignored)",
            crawl_id,
            len(found),
            location.shards,
        )
    return found


@asynccontextmanager
async def open_fleet_frontier(
    url: str,
    config: CrawlConfig,
    *,
    settings: Mapping[str, Any],
    crawl_id: str | None = None,
    writer: str = "",
    lease: float = 30.0,
) -> AsyncIterator[RedisFrontier | ShardedRedisFrontier]:
    """:func:`~trio_scrape.frontier.redis_open.open_redis_frontier`, or on a Redis Cluster the
    crawl's shards when it has several (created with ``?shards=N``, N > 1).

    Raises:
        FrontierError: Redis cannot be reached or fails, or the crawl id exists with other
            settings, or (usage) --recrawl on a sharded crawl.
    """
    location = parse_redis_url(url)
    wanted = json.loads(json.dumps(settings))
    crawl_id = check_crawl_id(crawl_id or crawl_id_for(wanted))
    tags = await _layout(location, crawl_id) if location.cluster else [crawl_id]
    if len(tags) == 1:
        async with open_redis_frontier(
            url, config, settings=settings, crawl_id=crawl_id, writer=writer, lease=lease
        ) as frontier:
            yield frontier
        return
    if config.recrawl:
        raise FrontierError(
            f"--recrawl is not available on the sharded crawl {crawl_id} ({len(tags)} shards)",
            usage=True,
        )
    async with contextlib.AsyncExitStack() as stack:
        shards: list[RedisFrontier] = []
        for k, tag in enumerate(tags):
            shard = await stack.enter_async_context(
                open_redis_frontier(
                    url,
                    config,
                    settings=settings,
                    crawl_id=crawl_id,
                    writer=writer,
                    lease=lease,
                    tag=None if k == 0 else tag,
                    owner=shards[0].owner if shards else None,  # one process, one name
                )
            )
            shards.append(shard)
        yield ShardedRedisFrontier(shards, crawl_id, config, writer=writer)


class _ShardHosts:
    """The HostLimiter as one shard sees it: starts go to it; of its events, only those of
    the shard's hosts reach the shard (each host's state lives on its shard alone): one
    observer on the limiter hands each event to its host's shard's (``observers``)."""

    def __init__(
        self, hosts: HostLimiter, k: int, observers: list[Callable[[HostEvent], None] | None]
    ) -> None:
        self.hosts = hosts
        self._k = k
        self._observers = observers

    def observe(self, observer: Callable[[HostEvent], None]) -> None:
        self._observers[self._k] = observer

    def start(self, origin: str, url: str = "") -> None:
        self.hosts.start(origin, url)


class _ShardWriter:
    """What a shard's committing sink tells when it wrote records: the sharded frontier
    keeps the last id of each shard with the file's length."""

    def __init__(self, frontier: ShardedRedisFrontier, k: int) -> None:
        self._frontier = frontier
        self._k = k

    def _wrote(self, offset: int | None, last_id: str) -> None:
        self._frontier._wrote(self._k, offset, last_id)


class _ShardedSink(_CommittingSink):
    """The crawler's sink on a sharded crawl: pages wait here until ``done`` hands each to
    its shard's committing sink, which writes it once committed."""


class ShardedRedisFrontier:
    """A :class:`~trio_scrape.Frontier` over the shards of one crawl on a Redis Cluster
    (each a :class:`~trio_scrape.frontier.redis.RedisFrontier` under its own hash tag).
    Open it with :func:`open_fleet_frontier`."""

    counts_max_pages = True
    carries_requests = True

    def __init__(
        self, shards: Sequence[RedisFrontier], crawl_id: str, config: CrawlConfig, *, writer: str
    ) -> None:
        self.shards = list(shards)
        self.crawl_id = crawl_id
        self.writer = writer
        self.lease = shards[0].lease
        self._count = len(shards)
        self._max_pages = config.max_pages or 0
        self._grants = [0] * self._count  # each shard's grant of the budget, as last heard
        self._budget_left = self._max_pages  # the budget not yet granted, as last heard
        self._shard_by_origin: dict[str, int] = {}
        self._url_shard: dict[str, int] = {}  # a page's links' shards, by URL
        self._views: list[_ShardHosts] = []  # the engine's HostLimiter, one view per shard
        self._grant_known = [False] * self._count
        self._turn = 0
        # Requests leased by a shard while another's answered first: handed out next.
        self._ready: collections.deque[tuple[int, CrawlRequest]] = collections.deque()
        # Each shard's last two looks that found it with nothing queued or leased:
        # (local time the call began, time it ended, its counts).
        self._dry: list[collections.deque[tuple[float, float, tuple[int, int]]]] = [
            collections.deque(maxlen=2) for _ in shards
        ]
        self._changed = trio.Event()
        # A leased page's links to hosts of other shards, by lease key: added before its
        # completion (see done).
        self._links: dict[str | Request, list[list[tuple[int, list[str], int, bool]]]] = {}
        self._sink: _ShardedSink | None = None
        self._last_ids = ["0-0"] * self._count
        # The round trips of every shard, counted together (--metrics).
        trips = shards[0].round_trips
        for shard in shards:
            shard.round_trips = trips
        self.round_trips = trips
        self.round = 1
        self.known = 0
        opened = [shard.opened for shard in shards]
        self.opened = FrontierOpened(
            new=opened[0].new,
            scheduled=sum(o.scheduled for o in opened),
            done=sum(o.done for o in opened),
            queued=sum(o.queued for o in opened),
            leased=sum(o.leased for o in opened),
        )

    @property
    def joined(self) -> FrontierOpened:
        return self.opened

    @property
    def done_total(self) -> int:
        """Records committed by the whole fleet, summed over the shards' last answers."""
        return sum(shard.done_total for shard in self.shards)

    @property
    def refused(self) -> int:
        return sum(shard.refused for shard in self.shards)

    @property
    def cut(self) -> bool:
        return any(shard.cut for shard in self.shards)

    @property
    def max_pages_refused(self) -> bool:
        """Whether the fleet's max_pages refused a URL (any process's)."""
        return any(shard.max_pages_refused for shard in self.shards)

    def shard_index(self, origin: str) -> int:
        k = self._shard_by_origin.get(origin)
        if k is None:
            if len(self._shard_by_origin) > 100_000:
                self._shard_by_origin.clear()
            k = self._shard_by_origin[origin] = shard_of(origin, self._count)
        return k

    def _shard_of_url(self, url: str) -> int:
        k = self._url_shard.get(url)
        if k is None:
            if len(self._url_shard) > 100_000:  # a page's links are mostly ones met before
                self._url_shard.clear()
            k = self._url_shard[url] = self.shard_index(origin_of(url))
        return k

    def _wake(self) -> None:
        changed = self._changed
        if changed.statistics().tasks_waiting:
            changed.set()
            self._changed = trio.Event()

    # ------------------------------------------------------------------------- adding

    def _by_shard(self, urls: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for url in urls:
            groups.setdefault(self._shard_of_url(url), []).append(url)
        return groups

    async def _grant(self, k: int, want: int) -> bool:
        """Ask shard 0 to raise shard ``k``'s grant of the budget to what the shard has
        scheduled plus ``want`` (0: only learn the grant); return whether it grew."""
        if want > 0 and self._budget_left <= 0:
            return False
        self._grant_known[k] = True
        target = 0
        if want > 0:
            shard = self.shards[k]
            scheduled = await shard._command("HGET", shard._prefix + "meta", "scheduled")
            target = int(scheduled or 0) + want
        budget = key_prefix(self.crawl_id, cluster=True) + "budget"
        before = self._grants[k]
        shard0 = self.shards[0]
        grant, left = await shard0._command(
            "EVAL", _GRANT, 1, budget, str(k), str(target), str(self._max_pages)
        )
        self._grants[k], self._budget_left = int(grant), int(left)
        self.shards[k]._max_pages = str(self._grants[k])
        return self._grants[k] > before

    async def _add_to(
        self,
        k: int,
        add: Callable[[], Awaitable[int]],
        unseen: Callable[[], Awaitable[int]],
    ) -> int:
        """``add()`` on shard ``k``; with --max-pages, within the shard's grant, asking for
        as many more as ``unseen()`` says are new when the shard refused some for want of
        it."""
        if not self._max_pages:
            return await add()
        if not self._grant_known[k]:
            await self._grant(k, 0)
        if self._grants[k] == 0 and not await self._grant(k, await unseen()):
            return 0  # nothing granted: nothing may be scheduled there
        shard = self.shards[k]
        added = 0
        while True:
            # A count, not a flag: another task's add to the shard may run meanwhile.
            before = shard.limited_adds
            added += await add()
            if shard.limited_adds == before or not await self._grant(k, await unseen()):
                return added

    async def _unseen(self, k: int, urls: Sequence[str], keep: Callable[[str], bool] | None) -> int:
        """How many of ``urls`` shard ``k`` has not seen (and ``keep`` wants)."""
        depths = await self.shards[k]._call(
            "ts_depths", [redis_digest(url) for url in urls], shield=False
        )
        return sum(
            1
            for url, known in zip(urls, depths, strict=True)
            if int(known) < 0 and (keep is None or keep(url))
        )

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
        added = 0
        for k, group in self._by_shard(dict.fromkeys(urls)).items():
            shard = self.shards[k]

            def add(shard: RedisFrontier = shard, group: list[str] = group) -> Awaitable[int]:
                return shard.add(
                    group,
                    depth=depth,
                    referrer=referrer,
                    keep=keep,
                    sitemap=sitemap,
                    lastmods=lastmods,
                    revisit=revisit,
                )

            def unseen(k: int = k, group: list[str] = group) -> Awaitable[int]:
                return self._unseen(k, group, keep)

            added += await self._add_to(k, add, unseen)
        if added:
            self._wake()
        return added

    async def add_requests(
        self,
        requests: Iterable[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        groups: dict[int, list[Request]] = {}
        for request in requests:
            groups.setdefault(self._shard_of_url(request.url), []).append(request)
        added = 0
        for k, group in groups.items():
            shard = self.shards[k]

            def add(shard: RedisFrontier = shard, group: list[Request] = group) -> Awaitable[int]:
                return shard.add_requests(group, depth=depth, referrer=referrer, keep=keep)

            async def unseen(group: list[Request] = group) -> int:
                return len(group)  # at most: a scraper's requests are rarely seen again

            added += await self._add_to(k, add, unseen)
        if added:
            self._wake()
        return added

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        for k, group in self._by_shard(urls).items():
            await self.shards[k].mark_seen(group, depth=depth)

    def defer_links(
        self,
        request: CrawlRequest,
        urls: Sequence[str],
        *,
        depth: int,
        keep: Callable[[str], bool] | None,
        revisit: bool,
    ) -> bool:
        """A leased page's links: those of its own shard go with its completion (as on one
        Redis); the others are kept here and added to their shards just before it (see
        :meth:`done`). With --max-pages, none is kept (the caller adds them now, within
        the budget's grants)."""
        if self._max_pages:
            return False
        home = self._shard_of_url(request.url)
        own: list[str] = []
        others: dict[int, list[str]] = {}
        known = self._url_shard
        for url in urls:
            k = known.get(url)
            if k is None:
                k = self._shard_of_url(url)
            if k == home:
                own.append(url)
            elif keep is None or keep(url):
                others.setdefault(k, []).append(url)
        if own and not self.shards[home].defer_links(
            request, own, depth=depth, keep=keep, revisit=revisit
        ):
            return False
        if others:
            pending = [(k, group, depth, revisit) for k, group in others.items()]
            self._links.setdefault(_lease_key(request), []).append(pending)
        return True

    # ------------------------------------------------------------------------ leasing

    def _shard_hosts(self, hosts: HostLimiter) -> list[_ShardHosts]:
        views = self._views
        if not views or views[0].hosts is not hosts:
            observers: list[Callable[[HostEvent], None] | None] = [None] * self._count

            def dispatch(event: HostEvent) -> None:
                observer = observers[self.shard_index(event.origin)]
                if observer is not None:
                    observer(event)

            hosts.observe(dispatch)
            views = self._views = [_ShardHosts(hosts, k, observers) for k in range(self._count)]
        return views

    async def get(self, hosts: HostLimiter) -> CrawlRequest | None:
        """Lease from whichever shard has a ready host: first what a shard leased ahead of
        need (no call), then every shard asked at once, the first answer taken (another
        shard's answer that comes too is kept for the next ``get``)."""
        if self._ready:
            return self._ready.popleft()[1]
        views = self._shard_hosts(hosts)
        count = self._count
        for i in range(count):
            k = (self._turn + i) % count
            if self.shards[k].has_prefetched:
                self._turn = k + 1
                return await self.shards[k].get(views[k])
        while True:
            finished = False
            async with trio.open_nursery() as nursery:

                async def ask(k: int) -> None:
                    nonlocal finished
                    shard = self.shards[k]
                    poll = _POLL_MIN
                    while True:
                        began = trio.current_time()
                        request = await shard.get(views[k])
                        if request is not None:
                            self._ready.append((k, request))
                            self._dry[k].clear()
                            nursery.cancel_scope.cancel()
                            return
                        counts = (shard.done_total, shard.statistics().seen)
                        self._dry[k].append((began, trio.current_time(), counts))
                        if self._exhausted():
                            finished = True
                            nursery.cancel_scope.cancel()
                            return
                        with trio.move_on_after(poll):
                            await self._changed.wait()
                        poll = min(poll * 2, _POLL_MAX)

                for k in range(count):
                    nursery.start_soon(ask, k)
            if self._ready:
                return self._ready.popleft()[1]
            if finished:
                return None

    def _exhausted(self) -> bool:
        """Whether the crawl has ended: every shard was seen twice with nothing queued or
        leased and the same counts (done, seen), and every first look ended before every
        second began. Between those instants nothing was queued anywhere: a URL queued on a
        shard after its first look would show in its second (queued, or seen and done),
        and only a live lease adds URLs; at the instant between the looks, every shard
        was empty with nothing leased, so nothing can be queued again."""
        firsts, seconds = [], []
        for looks in self._dry:
            if len(looks) < 2 or looks[0][2] != looks[1][2]:
                return False
            firsts.append(looks[0][1])
            seconds.append(looks[1][0])
        return max(firsts) < min(seconds)

    # ---------------------------------------------------------------------- completing

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        """Complete leases, each on its page's shard: first the pages' links to other
        shards' hosts are added there, then each shard's completions (with their records)
        go in one call, and the records committed are written.

        Raises:
            RuntimeError: a request is not leased by this process.
            FrontierError: Redis failed.
            OutputError: the sink failed to write committed records.
        """
        recorded = sum(1 for r in requests if not r.revisit)
        taken = iter(self._sink.take(recorded) if self._sink is not None else ())
        groups: dict[int, tuple[list[CrawlRequest], list[Page]]] = {}
        for request in requests:
            group = groups.setdefault(self._shard_of_url(request.url), ([], []))
            group[0].append(request)
            if not request.revisit and self._sink is not None:
                group[1].append(next(taken))
        for request in requests:
            pending = self._links.get(_lease_key(request))
            if pending:
                for k, urls, depth, revisit in pending.pop(0):
                    await self.shards[k].add(
                        urls, depth=depth, referrer=request.url, revisit=revisit
                    )
                if not pending:
                    del self._links[_lease_key(request)]
        for k, (mine, pages) in groups.items():
            shard = self.shards[k]
            if shard._sink is not None:
                shard._sink._pending.extend(pages)
            await shard.done(mine)
        self._wake()

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        groups: dict[int, list[CrawlRequest]] = {}
        for request in requests:
            groups.setdefault(self._shard_of_url(request.url), []).append(request)
            pending = self._links.get(_lease_key(request))
            if pending:
                pending.pop(0)
                if not pending:
                    del self._links[_lease_key(request)]
        # Leased ahead of need by a shard's answer: back with that shard's (the engine never
        # had them; their local slots are freed here).
        while self._ready:
            k, request = self._ready.popleft()
            if self._views:
                self._views[k].hosts.finish(origin_of(request.url), latency=None, failed=False)
            groups.setdefault(k, []).append(request)
        for k, group in groups.items():
            await self.shards[k].release(group)
        self._wake()

    def statistics(self) -> FrontierStatistics:
        stats = [shard.statistics() for shard in self.shards]
        ahead = len(self._ready)
        return FrontierStatistics(
            queued=sum(s.queued for s in stats) + ahead,
            leased=max(0, sum(s.leased for s in stats) - ahead),
            seen=sum(s.seen for s in stats),
        )

    # ------------------------------------------------------------------- politeness

    @property
    def shared_robots(self) -> ShardedRedisFrontier:
        return self

    async def robots(
        self, origin: str, fetch: Callable[[str], Awaitable[str | None]]
    ) -> str | None:
        """``origin``'s robots.txt for the whole crawl, kept on the host's shard."""
        return await self.shards[self.shard_index(origin)].robots(origin, fetch)

    async def starting(self, request: CrawlRequest) -> None:
        await self.shards[self._shard_of_url(request.url)].starting(request)

    # ---------------------------------------------------------------------- writers

    def _wrote(self, k: int, offset: int | None, last_id: str) -> None:
        """Shard ``k`` wrote records up to ``last_id`` and the file is ``offset`` long: every
        shard stores that length and every shard's last id with its next completion."""
        self._last_ids[k] = last_id
        vector = ",".join(self._last_ids)
        for shard in self.shards:
            shard._wrote(offset, vector)

    async def attach_sink(self, sink: Sink | None, *, links: bool) -> _ShardedSink:
        """Wrap ``sink`` so records go to it only once committed, each by its shard; recover
        a file sink's output where this writer left it: cut back to the longest length any
        shard stored, then each shard's records committed after the id stored with it.

        Raises:
            FrontierError: another live process writes the same file for this crawl.
            OutputError: the file cannot be cut or written.
        """
        inner = complete_sink(sink)
        wrapper = _ShardedSink(inner, links=links)
        self._sink = wrapper
        committing = []
        for k, shard in enumerate(self.shards):
            own = _CommittingSink(inner, links=links)
            own.frontier = _ShardWriter(self, k)
            shard._sink = own
            committing.append(own)
        if not (self.writer and inner.starts):
            inner.start()
            return wrapper
        home = self.shards[0]
        deadline = trio.current_time() + self.lease + 1
        while not await home._lock_writer():
            if trio.current_time() > deadline:
                raise FrontierError(
                    f"another process of crawl {self.crawl_id} writes to "
                    f"{self.writer.partition(':')[2]!r}: give each process its own -o file",
                    usage=True,
                )
            await trio.sleep(0.1)
        best_offset, best_ids = 0, ["0-0"] * self._count
        for shard in self.shards:
            state = _text(await shard._command("HGET", shard._prefix + "w", self.writer) or b"")
            offset_text, _, ids_text = state.partition("\t")
            ids = ids_text.split(",") if ids_text else []
            if offset_text and int(offset_text) >= best_offset and len(ids) == self._count:
                best_offset, best_ids = int(offset_text), ids
        inner.start(best_offset)
        self._last_ids = list(best_ids)
        recovered = 0
        for k, shard in enumerate(self.shards):
            after = best_ids[k]
            while True:
                answer = await shard._command(
                    "XRANGE", shard._prefix + "rec", "(" + after, "+", "COUNT", 1_000
                )
                if not answer:
                    break
                for identifier, values in answer:
                    entry = _stream_entry(
                        identifier, dict(zip(values[::2], values[1::2], strict=True))
                    )
                    if entry.writer == self.writer:
                        page = _page_from_record(entry.record, entry.items)
                        await committing[k].write_committed([(page, entry.id)])
                        recovered += 1
                after = _text(answer[-1][0])
        if recovered:
            logger.warning(
                "%d committed record(s) missing from %s were written again",
                recovered,
                self.writer.partition(":")[2],
            )
        return wrapper


# ------------------------------------------------------------------- status and export


async def crawl_tags(client: Client, crawl_id: str) -> list[str]:
    """The hash tags of a crawl's shards (``[crawl_id]``: one, or not a cluster)."""
    import coredis

    if not isinstance(client, coredis.RedisCluster):
        return [crawl_id]
    stored = await client.hget(key_prefix(crawl_id, cluster=True) + "meta", "shards")
    tags: list[str] = json.loads(_text(stored)) if stored else []
    return tags if len(tags) > 1 else [crawl_id]


async def crawl_status(client: Client, crawl_id: str, **kwargs: Any) -> FleetStatus:
    """:func:`~trio_scrape.frontier.redis_open.fleet_status` of every shard of the crawl,
    summed (hosts and processes merged)."""
    tags = await crawl_tags(client, crawl_id)
    reports = [await fleet_status(client, tag, **kwargs) for tag in tags]
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    hosts: dict[str, tuple[int, int]] = {}
    processes: dict[str, float] = {}
    for report in reports:
        hosts.update(report.hosts)
        for name, age in report.processes.items():
            processes[name] = min(age, processes.get(name, age))
    max_hosts = kwargs.get("max_hosts", 50)
    busiest = dict(sorted(hosts.items(), key=lambda kv: (-kv[1][0] - kv[1][1], kv[0]))[:max_hosts])

    def total(name: str) -> int:
        return sum(int(getattr(report, name)) for report in reports)

    return FleetStatus(
        crawl_id,
        queued=total("queued"),
        leased=total("leased"),
        done=total("done"),
        errors=total("errors"),
        seen=total("seen"),
        refused=total("refused"),
        reaped=total("reaped"),
        records=total("records"),
        hosts=busiest,
        processes=processes,
        round=first.round,
    )


async def crawl_entries(client: Client, crawl_id: str) -> AsyncIterator[StreamEntry]:
    """Every committed record of the crawl: each shard's stream in turn, in commit order."""
    for tag in await crawl_tags(client, crawl_id):
        async for entry in read_entries(client, tag):
            yield entry
