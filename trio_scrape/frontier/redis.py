"""A frontier in Redis: one crawl shared by any number of processes on any number of machines.

Every change to the shared state is one call of a Redis Function (``redis_scripts.lua``),
atomic on the server and timed by the server's clock: add-if-unseen, lease (with a token, an
expiry, the host's in-flight count and its next allowed start), renew, complete (refused
for a stale or foreign token), release (back to the front of the host's queue, with its
attempts and a pause), reap (expired leases back to the front of their queue).

Why records are exactly-once across the fleet: a page's record enters the crawl's record
stream in the same call that completes its lease, and a lease that expired (its process
died, or stalled past the lease) can no longer complete: its URL went back to the queue and
someone else's completion is the one that counts. Each process writes the records *it*
committed to its own output file after the commit, and stores, with its next commit, how long
its file is and the last stream entry it holds; restarted with the same command, it cuts its
file back to that length and writes again what it had committed after it. ``trio-scrape
export`` writes the whole stream: every scheduled URL's record, once, whoever crawled it.

Why a cancelled call loses nothing: calls that change the shared state run shielded (a Redis
socket timeout bounds them), so their answer is always read. A call that fails outright
(connection lost) stops the process with :class:`~trio_scrape.FrontierError`; leases it may
have taken without knowing expire, and go back to the queue, since a process only renews the
leases it knows of.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias

import orjson
import trio
from mypy_extensions import mypyc_attr

from ..errors import FrontierError
from ..model.config import CrawlConfig
from ..model.page import CrawlRequest, Page, PageError, PageMemo
from ..model.request import Request
from ..model.urls import origin_of
from ..output.sinks import CompleteSink, JsonlSink, Sink, _json, complete_sink, encode_record
from .base import FrontierOpened, FrontierStatistics
from .digests import redis_digest
from .pacing import HostEvent, HostPaused, RequestFinished, RobotsLoaded
from .resp import BULK, Prefix, RespError, RespPool
from .timing import CallTimes

if TYPE_CHECKING:
    import coredis  # imported when used: status, export, tests (see connect)

__all__ = [
    "Client",
    "key_prefix",
    "writer_for",
    "RedisFrontier",
    "crawl_id_for",
    "StreamEntry",
]

logger = logging.getLogger("trio_scrape")

_LIBRARY = "trio_scrape_v1"
_KEY_PREFIX = "trio-scrape:"
_ADD_CHUNK = 2_000  # URLs per add call: a page's links, or a chunk of a big sitemap
_POLL_MIN = 0.005  # seconds between polls of an idle frontier, doubling up to _POLL_MAX
_POLL_MAX = 0.25
# While URLs are queued but no host has a free slot, another process's fetch may end any
# moment and free one: poll more often than when only leases are left.
_POLL_MAX_QUEUED = 0.02
_CALL_TIMEOUT = 10.0  # seconds a Redis call may take before the frontier gives up
# The counters every answer carries (limited: 1 once max_pages refused a URL of the crawl)
_COUNTS = ("queued", "leased", "seen", "done", "limited")
_KNOWN_MAX = 100_000  # digests whose depth this process remembers (about 10 MB at most)
_REFUSED_MAX = 10_000  # refused links kept written (see defer_links)
# What a failed round trip raises: an error answer, a broken socket.
_CALL_ERRORS = (
    RespError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


#: A coredis client (status, export, tests) of one Redis, or of a Redis Cluster.
Client: TypeAlias = "coredis.Redis[bytes] | coredis.RedisCluster[bytes]"


def key_prefix(crawl_id: str, *, cluster: bool = False) -> str:
    """Where a crawl's keys live: ``trio-scrape:ID:``, or on a Redis Cluster
    ``trio-scrape:{ID}:``, whose hash tag puts every key of the crawl in one slot (one node),
    so each of the functions stays one atomic call there."""
    if cluster:
        return _KEY_PREFIX + "{" + crawl_id + "}:"
    return _KEY_PREFIX + crawl_id + ":"


def _client_prefix(client: Client, crawl_id: str) -> str:
    import coredis  # already imported: the client is one of its

    return key_prefix(crawl_id, cluster=isinstance(client, coredis.RedisCluster))


def crawl_id_for(settings: Mapping[str, Any]) -> str:
    """The default crawl id: a digest of what defines the crawl (seeds, scope), so the same
    command on every machine joins the same crawl."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return "crawl-" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


_digest = redis_digest  # the fleet's digest scheme: see frontier/digests.py

# A fetch's end as ts_lease's five arguments (digest, token, origin, latency, failed 0/1).
_FREED = BULK * 4 + b"$1\r\n%b\r\n"
# A completion as ts_done's eight arguments a request (see done).
_DONE = BULK * 2 + b"$1\r\n%b\r\n" + BULK * 5


def _encode_request(digest: str, request: CrawlRequest) -> str:
    fields: list[Any] = [
        request.url,
        request.depth,
        request.referrer,
        request.attempts,
        request.sitemap,
        request.lastmod,
        request.revisit,
    ]
    if request.request is not None:
        # A scraper's request (method, headers, body, label, data, dedup key): its JSON as
        # one ASCII string, which the functions' cjson passes through untouched (a nested
        # value would come back changed: an empty list as {}, numbers rounded).
        fields.append(json.dumps(request.request.to_json(), separators=(",", ":")))
    return digest + "\t" + json.dumps(fields, separators=(",", ":"))


def _decode_request(entry: str | bytes) -> tuple[str, CrawlRequest]:
    """A queue entry (as Redis answers it, or as text): its digest and its request."""
    text: str | bytes
    if isinstance(entry, bytes):  # read as it came: no text made of the whole entry
        head, _, text = entry.partition(b"\t")
        digest = head.decode()
    else:
        digest, _, text = entry.partition("\t")
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError:  # a lone surrogate's escape, which orjson refuses
        fields = json.loads(text)
    url, depth, referrer, attempts, sitemap, lastmod, revisit = fields[:7]
    spec = Request.from_json(json.loads(fields[7])) if len(fields) > 7 else None
    request = CrawlRequest(
        url, depth, referrer, attempts, None, bool(sitemap), lastmod, bool(revisit), None, spec
    )
    return digest, request


def _request_digest(request: Request, referrer: str | None, occurrence: int) -> str:
    """A scraper's request's digest in the fleet: its dedup key's (``redis_digest``); for a
    ``dont_dedup`` one, the digest of where it was enqueued (the page, or the start) and its
    place among that page's requests of the same key: a page done again (its process
    was killed) enqueues the same digests, so each of its requests is queued once."""
    if not request.dont_dedup:
        return redis_digest(request.key)
    return redis_digest(f"dont_dedup\0{referrer or ''}\0{occurrence}\0{request.key}")


def _lease_key(request: CrawlRequest) -> str | Request:
    """What tells this process's leases apart: the URL of a plain request; a scraper's
    request itself (several may share a URL: posts of one form)."""
    return request.url if request.request is None else request.request


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    return int(value) if value not in (None, b"", "") else 0


class _Lease:
    """One lease this process holds: its digest and its token (as Redis's bytes: they only
    go back to it), whether its fetch ended (its host slot is freed with the next lease
    call), and its page's links, added with its completion (see
    :meth:`RedisFrontier.defer_links`)."""

    __slots__ = ("digest", "ended", "fresh", "links", "token")

    def __init__(self, digest: bytes, token: bytes) -> None:
        self.digest = digest
        self.token = token
        self.ended = False
        self.links: list[bytes] = []
        #: the links sent to be added, by depth: known to be seen at it once added
        self.fresh: list[tuple[int, list[str]]] = []


def _json_text(text: str) -> bytes:
    """``text`` as a JSON string (as json.dumps writes it, for the odd lone surrogate)."""
    try:
        return orjson.dumps(text)
    except TypeError:
        return json.dumps(text).encode()


class LeaseHosts(Protocol):
    """What a Redis frontier asks of the hosts it leases for: the engine's
    :class:`~trio_scrape.frontier.pacing.HostLimiter`, or one shard's view of it
    (:mod:`~trio_scrape.frontier.sharded`)."""

    def observe(self, observer: Callable[[HostEvent], None]) -> None:
        """Have ``observer`` told of every fetch that ends, pause and robots.txt result."""

    def start(self, origin: str, url: str = "") -> None:
        """Take one of ``origin``'s slots for a request (for ``url``) leased for it."""


# Longer than the ~450 lines a class gets here: it is the Python side of the Lua
# functions in redis_scripts.lua, one method per function call plus the batching of leases
# and completions; the two are read side by side.
class RedisFrontier:
    """A :class:`~trio_scrape.Frontier` kept in Redis, shared by every process of one crawl.
    Open it with :func:`open_redis_frontier`.

    ``statistics()`` gives the fleet's counts as of this process's last call to Redis.
    """

    #: The frontier enforces ``max_pages`` for the whole fleet (the Crawler does not count).
    counts_max_pages = True
    #: A scraper's requests (method, headers, body, label, data) are queued whole in Redis:
    #: see :meth:`add_requests`.
    carries_requests = True

    def __init__(
        self,
        redis: RespPool,
        crawl_id: str,
        config: CrawlConfig,
        *,
        lease: float,
        batch: int,
        writer: str = "",
        cluster: bool = False,
        tag: str | None = None,
        owner: str | None = None,
    ) -> None:
        # Every round trip goes through this lean client (see resp.py and _round_trip).
        self._redis = redis
        self.crawl_id = crawl_id
        # ``tag``: one shard of a sharded crawl (frontier/sharded.py), its own hash tag
        self._prefix = key_prefix(crawl_id if tag is None else tag, cluster=cluster)
        #: ts_add calls that refused a URL for max_pages (a sharded crawl asks for more)
        self.limited_adds = 0
        #: whether the fleet's max_pages refused a URL (any process's): the crawl stops there
        self.max_pages_refused = False
        self._per_host = str(config.per_host)
        # Flags for the functions: robots.txt gates new hosts; autothrottle adapts limits.
        self._gate = ("1" if config.robots else "0") + ("a" if config.autothrottle else "")
        self._delay_ms = config.delay * 1000
        self._jitter = config.delay_jitter
        self._max_pages = str(config.max_pages or 0)
        self._lease_ms = str(max(1, round(lease * 1000)))
        self.lease = lease
        self._batch = str(batch)
        #: this process's name in the fleet (one for all the shards of a sharded crawl)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.writer = writer
        # Our leases, by _lease_key: a list, since identical dont_dedup requests share a key.
        self._held: dict[str | Request, list[_Lease]] = {}
        self._prefetched: collections.deque[CrawlRequest] = collections.deque()
        self._stats = FrontierStatistics(queued=0, leased=0, seen=0)
        #: this process's round trips, counted and timed with --metrics (else None)
        self.round_trips = CallTimes() if config.metrics is not None else None
        self._fcalls: dict[str, Prefix] = {}  # each function's FCALL head, encoded once
        self.done_total = 0  #: records committed by the whole fleet, at the last call
        self.refused = 0  #: completions of this process refused (their lease had expired)
        self._changed = trio.Event()
        self._version = 0
        self._limiter: LeaseHosts | None = None
        self._host_updates: dict[str, tuple[str, str, float]] = {}
        self._pauses: dict[str, float] = {}  # origin -> trio time its pause ends
        # Pauses the fleet set (heard with each lease answer): origin -> trio time they end.
        self._fleet_pauses: dict[str, float] = {}
        self._since = "0"  # server time (ms) of the last lease answer
        # After a lease answer that came short: the wake count it was asked at, and until
        # when get() waits before asking again if nothing changes (see get).
        self._quiet: tuple[int, float] | None = None
        self._crawl_delayed: set[str] = set()  # origins with a robots.txt Crawl-delay
        # Fetches that ended (digest, token, origin, latency ms, failed), encoded as the lease
        # call's arguments (_FREED): their host slots are freed with the next lease call, and
        # their latencies feed the autothrottle.
        self._to_free: list[bytes] = []
        self._sink: _CommittingSink | None = None
        self._writer_state = ""
        self._writer_locked = False  # this process holds its output file's lock (renewed)
        self._rng = random.Random()
        #: what the shared crawl held when this process joined it
        self.opened = FrontierOpened(new=True, scheduled=0, done=0, queued=0)
        self._max_depth = str(config.depth)
        #: Whether any process has handed out a page at the depth limit (its links not
        #: followed), as of this process's last lease; until then revisits find nothing new.
        self.cut = False
        self.round = 1  #: the crawl's round (--recrawl starts the next one)
        self.known = 0  #: pages known from earlier rounds, when this round began
        # _lease_key -> its PageMemo (JSON), sent with its done
        self._memos: dict[str | Request, bytes] = {}
        # Digests this process knows to be in the seen-set, with a depth they are known at
        # (or nearer: depths only decrease): a link found again at that depth or deeper
        # changes nothing, so it need not be asked about. Most of a page's links are ones
        # the process has met already (menus, neighbours).
        self._known: dict[str, int] = {}
        # The same by URL, for a page's links (defer_links): no digest to compute for them.
        self._known_urls: dict[str, int] = {}
        # Links on their way to the seen-set with a completion not yet answered, by URL, at
        # the depth sent: another page's same link need not go too (see defer_links).
        self._sending: dict[str, int] = {}
        # Links the scope refused, as defer_links sends them: digest, origin, JSON.
        self._refused: dict[str, tuple[bytes, bytes, bytes]] = {}

    @property
    def joined(self) -> FrontierOpened:
        """What the shared crawl held when this process joined it: :attr:`opened`."""
        return self.opened

    @property
    def has_prefetched(self) -> bool:
        """Whether ``get`` has a request leased ahead of need (it returns it without a
        call to Redis)."""
        return bool(self._prefetched)

    # ---------------------------------------------------------------------- Redis calls

    async def _call(
        self,
        function: str,
        args: Sequence[str | bytes],
        *,
        shield: bool,
        encoded: Sequence[bytes] = (),
        encoded_count: int = 0,
    ) -> Any:
        """Call one of the library's functions; ``encoded``: ``encoded_count`` more arguments,
        encoded already (a page's, see :data:`~trio_scrape.frontier.resp.BULK`).

        Raises:
            FrontierError: Redis could not be reached, or answered with an error.
        """
        prefix = self._fcalls.get(function)
        if prefix is None:
            prefix = self._fcalls[function] = Prefix("FCALL", function, 1, self._prefix)
        return await self._round_trip(prefix, args, shield, encoded, encoded_count)

    async def _command(self, *parts: str | bytes | int, shield: bool = True) -> Any:
        """Send one command (``parts``) and return Redis's answer, within the call timeout.

        Raises:
            FrontierError: Redis could not be reached, or answered with an error.
        """
        return await self._round_trip(None, parts, shield)

    async def _round_trip(
        self,
        prefix: Prefix | None,
        parts: Sequence[str | bytes | int],
        shield: bool,
        encoded: Sequence[bytes] = (),
        encoded_count: int = 0,
    ) -> Any:
        """One command sent and its answer read, within the call timeout: every round trip
        of this process to Redis goes through here (each function call: lease, completion,
        add, release, renewal, start; and the few plain commands: robots.txt, the output
        file's lock, joining), so this is the one place to count or time them
        (:attr:`round_trips`, with --metrics only: a crawl without pays nothing for them).

        Raises:
            FrontierError: Redis could not be reached, or answered with an error.
        """
        timed = self.round_trips
        started = time.perf_counter() if timed is not None else 0.0
        # One scope for both the shield and the call timeout (fail_after would be a second).
        scope = trio.CancelScope(shield=shield, deadline=trio.current_time() + _CALL_TIMEOUT)
        failure: BaseException | None = None
        try:
            with scope:
                answer = await self._redis.call(prefix, parts, encoded, encoded_count)
        except _CALL_ERRORS as exc:
            failure = exc
        finally:
            if timed is not None:
                what = prefix.name if prefix is not None else str(parts[0])
                timed.observe(what, time.perf_counter() - started)
        if scope.cancelled_caught:
            failure = trio.TooSlowError()
        if failure is not None:
            what = prefix.name if prefix is not None else str(parts[0])
            raise FrontierError(f"Redis failed during {what}: {_describe(failure)}") from None
        return answer

    def _note(self, counts: Sequence[Any]) -> None:
        queued, leased, seen, done, limited = [int(v or 0) for v in counts]  # nil, "" or a number
        self._stats = FrontierStatistics(queued=queued, leased=leased, seen=seen)
        self.done_total = done
        if limited:
            self.max_pages_refused = True

    def _wake(self) -> None:
        self._version += 1
        changed = self._changed
        if changed.statistics().tasks_waiting:  # else the next waiter may wait on it still
            changed.set()
            self._changed = trio.Event()

    # ------------------------------------------------------------------ Frontier protocol

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
        candidates: dict[str, str] = {}
        for url in urls:
            if url not in candidates:
                candidates[url] = _digest(url)
        added = 0
        items = list(candidates.items())
        head = [
            self._per_host,
            self._gate,
            self._max_pages,
            str(depth),
            referrer or "",
            "0" if referrer is None else "1",
            "1" if revisit else "0",
        ]
        known_here = self._known
        if len(known_here) > _KNOWN_MAX:
            known_here.clear()
        items = [(url, d) for url, d in items if known_here.get(d, depth + 1) > depth]
        for start in range(0, len(items), _ADD_CHUNK):
            chunk = items[start : start + _ADD_CHUNK]
            if keep is not None or len(chunk) > 1:
                # Only URLs that are new (and that keep(), asked about new URLs only, wants)
                # or that were seen deeper go to the add: a page's links are mostly known,
                # and sending each one's request would cost far more than its digest. A
                # URL another process adds between the two calls is still added once (the
                # add re-checks).
                depths = await self._call("ts_depths", [d for _, d in chunk], shield=False)
                wanted = []
                for (url, digest), value in zip(chunk, depths, strict=True):
                    known = int(value)
                    if known >= 0:
                        known_here[digest] = known
                    if (known < 0 and (keep is None or keep(url))) or known > depth:
                        wanted.append((url, digest))
                chunk = wanted
            if not chunk:
                continue
            args = list(head)
            for url, digest in chunk:
                lastmod = lastmods.get(url) if lastmods else None
                request = CrawlRequest(url, depth, referrer, 0, None, sitemap, lastmod)
                args += [digest, origin_of(url), _encode_request(digest, request)]
            count, limited, counts = await self._call("ts_add", args, shield=True)
            self._note(counts)
            added += int(count)
            if int(limited):
                self.limited_adds += 1
            else:  # each is in the seen-set now, at this depth or nearer
                for _, digest in chunk:
                    known_here[digest] = min(depth, known_here.get(digest, depth))
        if added:
            self._wake()
        return added

    def defer_links(
        self,
        request: CrawlRequest,
        urls: Sequence[str],
        *,
        depth: int,
        keep: Callable[[str], bool] | None,
        revisit: bool,
    ) -> bool:
        """Keep a leased page's links for the call that completes its lease (``ts_done``
        adds them as ``ts_add`` would, in the same atomic call): a page costs no round trip
        of its own for its links. Each link goes once, as its digest, its origin and its URL;
        those this process knows to be in the seen-set at ``depth`` or nearer not at all.
        ``keep`` is asked here about every link not known so (a fleet counts ``max_pages``
        in Redis: ``keep`` is the scope); a link it refuses goes only as far as updating a
        seen URL's depth, as ``add`` does. Returns False (the caller adds them now) for a
        request this process does not hold, or more links than one add call takes."""
        if len(urls) > _ADD_CHUNK:
            return False
        held = self._held.get(_lease_key(request))
        if not held:
            return False
        # The lease whose fetch has ended (another with the same key may still be fetching).
        lease = next((x for x in held if x.ended), held[0])
        known = self._known_urls
        if len(known) > _KNOWN_MAX:
            known.clear()
        sending = self._sending
        beyond = depth + 1
        # Most links are known (menus, neighbours): sifted out in one pass.
        urls = [u for u in urls if known.get(u, beyond) > depth and sending.get(u, beyond) > depth]
        if not urls:
            return True
        lines = [b"=%d\t%d\t%s" % (depth, revisit, _json_text(request.url))]
        last = ""
        fresh = []
        for url in urls:
            origin = origin_of(url)
            same = origin == last
            last = origin
            if keep is None or keep(url):
                fresh.append(url)
                lines.append(
                    b"+%s\t%s\t%s"
                    % (_digest(url).encode(), b"" if same else origin.encode(), _json_text(url))
                )
                continue
            # Refused (out of scope): it goes only to update a seen URL's depth, and comes
            # again with every page that has it (a site's links off-site): written once.
            refused = self._refused.get(url)
            if refused is None:
                if len(self._refused) > _REFUSED_MAX:
                    self._refused.clear()
                digest, text = _digest(url).encode(), _json_text(url)
                refused = self._refused[url] = (digest, origin.encode(), text)
            digest, origin_text, text = refused
            lines.append(b"-%s\t%s\t%s" % (digest, b"" if same else origin_text, text))
        if len(lines) > 1:
            lease.links.append(b"\n".join(lines))
            lease.fresh.append((depth, fresh))
            # Each goes with this page's completion, which adds it even if refused (or, if
            # this lease is given back instead, whoever does the page again finds it).
            for url in fresh:
                sending[url] = depth
        return True

    async def add_requests(
        self,
        requests: Iterable[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Queue a scraper's requests never seen before by the fleet (by their dedup key's
        digest; a ``dont_dedup`` one by where it was enqueued: see :func:`_request_digest`)
        at ``depth``, with ``referrer``, where ``keep(url)`` allows; each entry carries the
        whole request, so any process leases it with everything it holds. A request seen
        before is not queued again, whatever its depth (as in memory). Returns how many were
        queued."""
        candidates: dict[str, Request] = {}
        occurrences: collections.Counter[str] = collections.Counter()
        for request in requests:
            occurrence = 0
            if request.dont_dedup:
                occurrence = occurrences[request.key]
                occurrences[request.key] += 1
            candidates.setdefault(_request_digest(request, referrer, occurrence), request)
        head = [
            self._per_host,
            self._gate,
            self._max_pages,
            str(depth),
            referrer or "",
            "0" if referrer is None else "1",
            "0",
        ]
        items = list(candidates.items())
        added = 0
        for start in range(0, len(items), _ADD_CHUNK):
            chunk = items[start : start + _ADD_CHUNK]
            # Only unseen ones (that keep() wants) go to the add, which checks again.
            depths = await self._call("ts_depths", [d for d, _ in chunk], shield=False)
            args = list(head)
            for (digest, request), known in zip(chunk, depths, strict=True):
                if int(known) >= 0 or (keep is not None and not keep(request.url)):
                    continue
                queued = CrawlRequest(request.url, depth, referrer, request=request)
                args += [digest, origin_of(request.url), _encode_request(digest, queued)]
            if len(args) == len(head):
                continue
            count, limited, counts = await self._call("ts_add", args, shield=True)
            self._note(counts)
            added += int(count)
            self.limited_adds += int(limited)
        if added:
            self._wake()
        return added

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        digests = [_digest(url) for url in urls]
        if digests:
            self._note(await self._call("ts_seen", [str(depth), *digests], shield=True))

    async def get(self, hosts: LeaseHosts) -> CrawlRequest | None:
        if self._limiter is not hosts:
            self._limiter = hosts
            hosts.observe(self._host_changed)
        poll = _POLL_MIN
        while True:
            if self._prefetched:
                request = self._prefetched.popleft()
                hosts.start(origin_of(request.url), request.url)
                return request
            version = self._version
            quiet, self._quiet = self._quiet, None
            if quiet is not None and quiet[0] == version and not self._to_free:
                # The last lease answer came short (it took all there was to take) and nothing
                # has changed since: no fetch of this process ended, nothing was added, no
                # host's robots.txt came. A call now would lease nothing; wait as a call
                # that found nothing would have had this process wait, then ask.
                timeout = quiet[1] - trio.current_time()
                if timeout > 0 and not self._host_updates:
                    with trio.move_on_after(timeout):
                        await self._changed.wait()
                    continue
            await self._send_host_updates()
            delay_ms = self._delay_ms
            if delay_ms and self._jitter:
                delay_ms *= 1 + self._rng.uniform(-self._jitter, self._jitter)
            args: list[str | bytes] = [self._per_host, self._gate, self.owner, self._batch]
            args += [self._lease_ms, str(round(delay_ms)), self._since, self._max_depth]
            to_free, self._to_free = self._to_free, []
            answer = await self._call(
                "ts_lease", args, shield=True, encoded=to_free, encoded_count=5 * len(to_free)
            )
            leases, counts, wait_ms, expires_ms, server_now, paused, cut = answer
            self.cut = self.cut or _int(cut) == 1
            self._note(counts)
            self._since = str(int(server_now))
            self._heard_pauses(paused)
            held = self._held
            for i in range(0, len(leases), 3):
                entry = leases[i + 1]
                digest, request = _decode_request(entry)
                if leases[i + 2]:  # a recrawl: what the last round stored of the page
                    status, etag, modified, sha256, links = orjson.loads(leases[i + 2])
                    memo = PageMemo(status, etag, modified, sha256, tuple(links))
                    request = request._replace(memo=memo)
                lease = _Lease(entry[: len(digest)], leases[i])
                key = request.url if request.request is None else request.request
                mine = held.get(key)
                if mine is None:
                    held[key] = [lease]
                else:
                    mine.append(lease)
                self._prefetched.append(request)
            if self._prefetched:
                if len(leases) < 3 * int(self._batch):
                    self._quiet = (version, self._wait_deadline(_POLL_MIN, wait_ms, expires_ms))
                continue
            if self._stats.queued == 0 and self._stats.leased == 0:
                return None
            deadline = self._wait_deadline(poll, wait_ms, expires_ms)
            poll = min(_POLL_MAX_QUEUED if self._stats.queued else _POLL_MAX, poll * 2)
            if version == self._version:
                with trio.move_on_at(deadline):
                    await self._changed.wait()

    def _wait_deadline(self, poll: float, wait_ms: Any, expires_ms: Any) -> float:
        """Until when a process whose lease call took all there was waits, unless woken,
        before it asks again: ``poll`` seconds (the next poll of an idle frontier), bounded by
        the answer's ms until a host is ready and until the next lease expires."""
        if 0 < self._stats.leased <= sum(len(mine) for mine in self._held.values()):
            # Every lease of the fleet is this process's own: no other process's fetch
            # can free a slot, and each of this one's wakes it (_host_changed), as does
            # each of its completions; a ready host's or a lease's time bounds the wait
            # below. Polling often would only ask again for slots it holds itself.
            timeout = _POLL_MAX
        else:
            timeout = poll
        for ms in (wait_ms, expires_ms):
            if int(ms) >= 0:
                timeout = min(timeout, int(ms) / 1000 + 0.001)
        return trio.current_time() + timeout

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        """Complete leases; with a committing sink attached, commit each request's record
        with it and then hand the committed pages to the real sink.

        Raises:
            RuntimeError: a request is not leased by this process.
            FrontierError: Redis failed.
            OutputError: the sink failed to write committed records.
        """
        leases = self._take(requests)
        # A revisit writes no record; every other request has its page in the sink, in order.
        recorded = sum(1 for r in requests if not r.revisit)
        taken = self._sink.take(recorded) if self._sink is not None else []
        pages: list[Page | None] = [None] * len(requests)
        if taken:
            remaining = iter(taken)
            pages = [None if r.revisit else next(remaining) for r in requests]
        args: list[str | bytes] = [self._per_host, self._gate, self._max_pages]
        args += [self.writer, self._writer_state]
        self._writer_state = ""
        records: list[bytes] = []
        encoded: list[bytes] = []  # each request's eight arguments, in one % (_DONE)
        memos = self._memos
        for request, lease, page in zip(requests, leases, pages, strict=True):
            failed = b"1" if page is not None and page.error is not None else b"0"
            record = self._sink.encode(page) if self._sink is not None and page else b""
            records.append(record)
            memo = memos.pop(_lease_key(request), b"")
            change = page.data.get("change") if page is not None else None
            items = _json(page.items) if page is not None and page.items else b""
            change_text = change.encode() if isinstance(change, str) else b""
            links = b"\n".join(lease.links) if lease.links else b""
            digest, token = lease.digest, lease.token
            # fmt: off
            encoded.append(_DONE % (
                len(digest), digest, len(token), token, failed, len(record), record,
                len(memo), memo, len(change_text), change_text, len(items), items,
                len(links), links,
            ))
            # fmt: on
        ids, counts, _added, limited, ready_ms = await self._call(
            "ts_done", args, shield=True, encoded=encoded, encoded_count=8 * len(encoded)
        )
        self._note(counts)
        self._sent(leases, added=not int(limited))
        refused = [r.url for r, entry in zip(requests, ids, strict=True) if not _text(entry)]
        if refused:
            self.refused += len(refused)
            logger.warning(
                "%d record(s) not committed: their lease had expired and the URL went back "
                "to the queue (%s%s); raise --lease if pages take that long",
                len(refused),
                refused[0],
                ", ..." if len(refused) > 1 else "",
            )
        if int(ready_ms) >= 0 or (self._stats.queued == 0 and self._stats.leased == 0):
            # A lease call may find something (a host has queued work and a free slot, now
            # or soon), or the crawl may be over: get() asks. Not otherwise: its slots
            # are freed by the fetches' ends (each wakes it), not by their records.
            self._wake()
        if self._sink is not None:
            committed = []
            committed_records = []
            for page, entry, record in zip(pages, ids, records, strict=True):
                if page is not None and entry:
                    committed.append((page, _text(entry)))
                    committed_records.append(record)
            await self._sink.write_committed(committed, committed_records)

    def _sent(self, leases: Sequence[_Lease], *, added: bool) -> None:
        """The links that went with ``leases`` are no longer on their way; ``added``: each
        is in the seen-set now, at its depth or nearer (not when max_pages refused some, or
        the leases were given back)."""
        known, sending = self._known_urls, self._sending
        for lease in leases:
            for depth, urls in lease.fresh:
                for url in urls:
                    if added and known.get(url, depth + 1) > depth:
                        known[url] = depth
                    if sending.get(url) == depth:
                        del sending[url]

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        # Requests leased ahead of need go back too, behind these: they came from the front
        # of the same queues, and a released request must come before them.
        prefetched = list(self._prefetched)
        self._prefetched.clear()
        leases = self._take([*requests, *prefetched])
        self._sent(leases, added=False)
        for request in requests:
            self._memos.pop(_lease_key(request), None)
        if not leases:
            return
        now = trio.current_time()
        args: list[str | bytes] = [self._per_host, self._gate]
        for i, lease in enumerate(leases):
            digest, token = lease.digest, lease.token
            entry, pause_ms = "", 0
            if i < len(requests):
                request = requests[i]
                until = self._pauses.pop(origin_of(request.url), now)
                pause_ms = max(0, round((until - now) * 1000))
                entry = _encode_request(digest.decode(), request._replace(first_try=None))
            args += [digest, token, entry, str(pause_ms)]
        self._note(await self._call("ts_release", args, shield=True))
        self._wake()

    # ------------------------------------------------------------------------ recrawls

    def remember(self, request: CrawlRequest, memo: PageMemo) -> None:
        """Keep what a recrawl needs of a leased page: stored in Redis (the crawl's
        ``pages`` hash, by URL digest) by the call that completes its lease."""
        self._memos[_lease_key(request)] = orjson.dumps(tuple(memo))  # a JSON array

    async def start_round(self) -> bool:
        """Begin the next round of the finished crawl (queue, seen-set, records and output
        lengths start empty; pages' memos stay), unless another process just did: then join
        that round. Returns whether this call began it.

        Raises:
            FrontierError: Redis failed.
        """
        round_, known, started = await self._call("ts_round", [str(self.round)], shield=True)
        self._known.clear()  # the seen-set starts empty
        self._known_urls.clear()
        self._sending.clear()
        self.round, self.known = int(round_), int(known)
        counts = await self._command("HMGET", self._prefix + "meta", *_COUNTS)
        self._note(counts)
        return bool(int(started))

    async def count_unlinked(self) -> int:
        """How many pages known from earlier rounds this round has not reached (asked once
        the round is complete: every process has ended its leases).

        Raises:
            FrontierError: Redis failed.
        """
        round_, known, reached, *_ = await self._call("ts_round_counts", [], shield=False)
        return max(0, int(known) - int(reached)) if int(round_) > 1 else 0

    def _take(self, requests: Sequence[CrawlRequest]) -> list[_Lease]:
        # The usual case first: each request's key held by one lease (a URL is leased
        # once at a time), the keys all different: each is taken as it is, all or none.
        held = self._held
        taken: list[_Lease] = []
        for request in requests:
            leases = held.get(request.url if request.request is None else request.request)
            if leases is None or len(leases) != 1:
                break
            taken.append(leases[0])
        else:
            if len({id(lease) for lease in taken}) == len(taken):
                for request in requests:
                    del held[request.url if request.request is None else request.request]
                return taken
        keys = [_lease_key(r) for r in requests]
        wanted = collections.Counter(keys)
        missing = [k for k, n in wanted.items() if len(self._held.get(k, ())) < n]
        if missing:
            raise RuntimeError(f"ending leases this process does not hold: {missing[:3]}")
        taken = []
        for key in keys:
            leases = self._held[key]
            # Identical requests are interchangeable, but a lease whose fetch has ended
            # (its host slot freed) is the one to end: another's fetch may still run.
            index = next((i for i, lease in enumerate(leases) if lease.ended), 0)
            lease = leases.pop(index)
            if not leases:
                del self._held[key]
            taken.append(lease)
        return taken

    def statistics(self) -> FrontierStatistics:
        """The fleet's counts at this process's last call; requests this process leased
        ahead of need count as queued, not leased (no worker has them)."""
        ahead = len(self._prefetched)
        stats = self._stats
        return FrontierStatistics(stats.queued + ahead, max(0, stats.leased - ahead), stats.seen)

    # ------------------------------------------------------------- politeness updates

    @property
    def shared_robots(self) -> RedisFrontier:
        """robots.txt shared by the fleet (:class:`~trio_scrape.engine.robots.SharedRobots`)."""
        return self

    async def robots(
        self, origin: str, fetch: Callable[[str], Awaitable[str | None]]
    ) -> str | None:
        """``origin``'s robots.txt for the whole crawl: read from Redis, or fetched by the
        one process that takes the host's lock while the others wait for its text.

        Raises:
            FrontierError: Redis failed.
        """
        key, lock = self._prefix + "robots", self._prefix + "rl:" + origin
        hold_ms = int(self.lease * 1000)
        while True:
            stored = await self._command("HGET", key, origin, shield=False)
            if stored is None:
                claimed = await self._command(
                    "SET", lock, self.owner, "PX", hold_ms, "NX", shield=False
                )
            if stored is not None:
                found = _text(stored)
                return found[1:] if found.startswith("+") else None
            if claimed:
                break
            await trio.sleep(0.05)  # another process is fetching it (its lock expires)
        text = await fetch(origin)
        value = "-" if text is None else "+" + text
        await self._command("HSET", key, origin, value)
        await self._command("DEL", lock)
        return text

    def _heard_pauses(self, paused: Sequence[Any]) -> None:
        now = trio.current_time()
        for i in range(0, len(paused), 2):
            origin, until = _text(paused[i]), now + int(paused[i + 1]) / 1000
            self._fleet_pauses[origin] = max(until, self._fleet_pauses.get(origin, until))
        if len(self._fleet_pauses) > 1_000:  # forget the pauses that are over
            self._fleet_pauses = {o: t for o, t in self._fleet_pauses.items() if t > now}

    async def starting(self, request: CrawlRequest) -> None:
        """The request is about to be sent: wait, if need be, until its host may start one.

        With a delay (``delay`` or a Crawl-delay), Redis is asked at every start: the start
        comes no sooner than the delay after the fleet's previous start to the host (which
        drew its jitter once), and it sets when the next may come. A request leased before
        another process paused its host (Retry-After, back-off) waits for the pause to end,
        holding its slot: a paced host's pause is seen at every start, anyone else's with
        each lease answer (see docs/fleet.md, politeness). The wait is bounded: each answer
        names the next instant a start may come, and at most ``per_host`` requests of the
        fleet compete for it.

        Raises:
            FrontierError: Redis failed.
        """
        if not (self._delay_ms > 0 or self._crawl_delayed or self._fleet_pauses):
            return  # no delay and no pause anywhere: nothing to ask or wait for
        origin = origin_of(request.url)
        paced = self._delay_ms > 0 or origin in self._crawl_delayed
        if not paced and self._fleet_pauses.get(origin, -math.inf) <= trio.current_time():
            return
        if origin in self._host_updates:
            # Its robots.txt was just read (this request's check read it): the fleet learns
            # its Crawl-delay before this start, which the delay then counts from.
            await self._send_host_updates()
        while True:
            factor = 1.0
            if self._jitter:
                factor += self._rng.uniform(-self._jitter, self._jitter)
            args = [self._per_host, self._gate, str(round(self._delay_ms)), f"{factor:.4f}"]
            wait_ms = int(await self._call("ts_start", [*args, origin], shield=True))
            if wait_ms <= 0:
                return
            await trio.sleep(wait_ms / 1000)

    def _host_changed(self, event: HostEvent) -> None:
        """HostLimiter observer: a fetch that ended, a pause or a robots.txt result, shared
        with the fleet."""
        if isinstance(event, RequestFinished):  # its fetch ended: its host slot is free
            key = event.url if event.request is None else event.request
            # its lease stays till done
            for held in self._held.get(key, ()):
                if held.ended:
                    continue
                held.ended = True
                latency = b"-1" if event.latency is None else b"%d" % round(event.latency * 1000)
                digest, token = held.digest, held.token
                host = event.origin.encode("utf-8", "surrogateescape")
                # fmt: off
                self._to_free.append(_FREED % (
                    len(digest), digest, len(token), token, len(host), host,
                    len(latency), latency, b"1" if event.failed else b"0",
                ))
                # fmt: on
                self._wake()
                break
        elif isinstance(event, HostPaused):
            origin = event.origin
            until = trio.current_time() + event.seconds
            self._pauses[origin] = max(self._pauses.get(origin, -math.inf), until)
            self._fleet_pauses[origin] = max(self._fleet_pauses.get(origin, -math.inf), until)
        elif isinstance(event, RobotsLoaded):
            delay = event.crawl_delay
            self._host_updates[event.origin] = (
                "1",
                "" if delay is None else str(round(delay * 1000)),
                0,
            )
            if delay:
                self._crawl_delayed.add(event.origin)
            self._wake()  # the host's limit is known: it may have slots free now

    async def _send_host_updates(self) -> None:
        """Robots results and pauses not sent with a release (a robots.txt retry)."""
        updates, self._host_updates = self._host_updates, {}
        for origin, (robots, cdelay, _) in updates.items():
            await self._call(
                "ts_host", [self._per_host, self._gate, origin, robots, cdelay, "0"], shield=True
            )

    # ------------------------------------------------------------------ housekeeping

    async def renew_forever(self) -> None:
        """Renew this process's leases (and say it is alive) three times per lease."""
        while True:
            await trio.sleep(self.lease / 3)
            await self.renew()

    async def renew(self) -> int:
        args: list[str | bytes] = [self.owner, self._lease_ms]
        for leases in self._held.values():
            for lease in leases:
                args += [lease.digest, lease.token]
        renewed = int(await self._call("ts_renew", args, shield=True))
        if self._writer_locked and not await self._lock_writer():
            # Its lease ran out (the process was frozen) and another process writing the same
            # file took the lock: two writers must not share a file.
            raise FrontierError(
                f"lost the lock on {self.writer.partition(':')[2]!r} to another process of "
                f"crawl {self.crawl_id}: give each process its own -o file"
            )
        return renewed

    async def release_all(self) -> None:
        """Give back every lease this process still holds (on the way out): in flight when
        the crawl ended, or leased ahead of need; back to the queue as they were leased."""
        self._prefetched.clear()
        if self._held:
            leases = [lease for held in self._held.values() for lease in held]
            self._held.clear()
            self._sent(leases, added=False)
            args: list[str | bytes] = [self._per_host, self._gate]
            for lease in leases:
                args += [lease.digest, lease.token, "", "0"]
            self._note(await self._call("ts_release", args, shield=True))

    # ---------------------------------------------------------------------- writers

    async def _lock_writer(self) -> bool:
        """Take (or keep, for another lease) the lock on this process's output file for the
        crawl; return whether this process holds it (never taken from another live one).
        :meth:`renew` keeps it once taken.

        Raises:
            FrontierError: Redis failed.
        """
        args: list[str | bytes] = [self.writer, self.owner, self._lease_ms]
        self._writer_locked = int(await self._call("ts_writer_lock", args, shield=True)) == 1
        return self._writer_locked

    async def attach_sink(self, sink: Sink | None, *, links: bool) -> _CommittingSink:
        """Wrap ``sink`` so records go to it only once committed; recover a file sink's
        output where this writer left it (cut back, then what was committed after).

        Raises:
            FrontierError: another live process writes the same file for this crawl.
            OutputError: the file cannot be cut or written.
        """
        inner = complete_sink(sink)
        wrapper = _CommittingSink(inner, links=links)
        self._sink = wrapper
        if self.writer and inner.starts:
            deadline = trio.current_time() + self.lease + 1
            while not await self._lock_writer():
                if trio.current_time() > deadline:
                    raise FrontierError(
                        f"another process of crawl {self.crawl_id} writes to "
                        f"{self.writer.partition(':')[2]!r}: give each process its own -o file",
                        usage=True,
                    )
                await trio.sleep(0.1)
            state = _text(await self._command("HGET", self._prefix + "w", self.writer) or b"")
            offset_text, _, last_id = state.partition("\t")
            inner.start(int(offset_text) if offset_text else 0)
            recovered = 0
            after = last_id or "0-0"
            while True:
                answer = await self._command("XRANGE", self._prefix + "rec", "(" + after, "+",
                                             "COUNT", 1_000)  # fmt: skip
                if not answer:
                    break
                for identifier, values in answer:
                    entry = _stream_entry(
                        identifier, dict(zip(values[::2], values[1::2], strict=True))
                    )
                    if entry.writer == self.writer:
                        page = _page_from_record(entry.record, entry.items)
                        await wrapper.write_committed([(page, entry.id)])
                        recovered += 1
                after = _text(answer[-1][0])
            if recovered:
                logger.warning(
                    "%d committed record(s) missing from %s were written again",
                    recovered,
                    self.writer.partition(":")[2],
                )
        else:
            inner.start()
        wrapper.frontier = self
        return wrapper

    def _wrote(self, offset: int | None, last_id: str) -> None:
        if self.writer and offset is not None:
            self._writer_state = f"{offset}\t{last_id}"

    async def save_writer_state(self) -> None:
        """Store how far this process's output file is written, and give up its lock (the
        next process writing that file, e.g. the next round's, need not wait for it to
        expire).

        Raises:
            FrontierError: Redis failed.
        """
        if not self.writer:
            return
        state, self._writer_state = self._writer_state, ""
        self._writer_locked = False
        await self._call("ts_writer_done", [self.writer, self.owner, state], shield=True)


class _Committed(Protocol):
    """Who a committing sink tells what it wrote: the frontier (or a shard's writer)."""

    def _wrote(self, offset: int | None, last_id: str) -> None:
        """The output file is ``offset`` bytes long, through stream entry ``last_id``."""


@mypyc_attr(allow_interpreted_subclasses=True)  # sharded.py's _ShardedSink
class _CommittingSink:
    """The crawler's sink when the frontier is Redis: pages wait here until the frontier has
    committed their records (in ``done``), then go to the real sink."""

    def __init__(self, inner: CompleteSink, *, links: bool) -> None:
        self._inner = inner
        self._links = links
        self._pending: list[Page] = []
        self.wants_bodies = inner.wants_bodies
        self.frontier: _Committed | None = None

    async def send(self, page: Page) -> None:
        self._pending.append(page)

    async def flush(self) -> None:
        """Nothing to do: pages are written once the frontier commits them."""

    def take(self, count: int) -> list[Page]:
        if count > len(self._pending):
            raise RuntimeError(f"{count} requests done but only {len(self._pending)} records")
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def encode(self, page: Page) -> bytes:
        return encode_record(page, links=self._links)

    async def write_committed(
        self, pages: Sequence[tuple[Page, str]], records: Sequence[bytes] = ()
    ) -> None:
        """Hand committed pages to the real sink; ``records``, when given, are their records
        as :meth:`encode` gave them, which a JSON Lines file writes as they are (a page is
        not encoded twice)."""
        inner = self._inner
        if inner.sink is None or not pages:
            return
        sink = inner.sink
        if records and type(sink) is JsonlSink and sink.links == self._links:
            for record in records:
                await sink.send_encoded(record)
        else:
            for page, _ in pages:
                await inner.send(page)
        await inner.flush()
        if self.frontier is not None:
            self.frontier._wrote(inner.offset, pages[-1][1])

    async def aclose(self) -> None:
        await self._inner.aclose()


def writer_for(sink: Sink | None) -> str:
    """This process's name for its output file in the fleet (``host:/abs/path``), or "" when
    the output is not a file it can cut back and complete on restart (stdout, a channel)."""
    complete = complete_sink(sink)
    name = complete.name
    if name is None or name == "-" or not complete.starts:
        return ""
    return f"{socket.gethostname()}:{name}"


def _page_from_record(
    record: Mapping[str, Any], items: Sequence[dict[str, Any]] | None = None
) -> Page:
    """The page a committed record (and its items) stands for, to write again."""
    error = record.get("error")
    page = Page(
        url=record["url"],
        depth=record.get("depth", 0),
        referrer=record.get("referrer"),
        method=record.get("method") or "GET",
        label=record.get("label"),
        final_url=record.get("final_url"),
        status=record.get("status"),
        content_type=record.get("content_type"),
        bytes=record.get("bytes", 0),
        elapsed=record.get("elapsed", 0.0),
        fetched_at=record.get("fetched_at"),
        title=record.get("title"),
        data=record.get("data") or {},
        links=record.get("links") or [],
        error=PageError(error["kind"], error["message"]) if error else None,
        items=list(items or ()),
    )
    return page


class StreamEntry(NamedTuple):
    """One entry of a crawl's committed record stream."""

    id: str  #: the stream entry's id (commit order)
    writer: str  #: the process's output file that holds it ("": none), see writer_for
    record: dict[str, Any]  #: the page's record
    items: list[dict[str, Any]]  #: the page's items (a scraper's; [] for none)


def _stream_entry(identifier: Any, field_values: Mapping[Any, Any]) -> StreamEntry:
    fields = {_text(k): v for k, v in field_values.items()}
    items = fields.get("i")
    return StreamEntry(
        _text(identifier),
        _text(fields.get("w", b"")),
        orjson.loads(fields["r"]),
        orjson.loads(items) if items else [],
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.TooSlowError):
        return f"no answer within {_CALL_TIMEOUT:g}s"
    return str(exc) or type(exc).__name__
