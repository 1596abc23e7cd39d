"""The frontier's interface: what the engine may ask of a frontier, all of it declared here.

A frontier must have the six methods of :class:`Frontier` (the protocol users write their own
frontier against). Everything else the engine uses is an optional *capability*, each a small
protocol below (:class:`LeasesWithoutWaiting`, :class:`TimesStarts`, ...): a frontier has it
or not, and what the engine does without it is written once, in :class:`CompleteFrontier`.

:func:`complete` turns any frontier into a :class:`CompleteFrontier`, once, when the crawl
starts: the capabilities are looked up then (a ``getattr`` that misses costs an
``AttributeError``, and these were asked for every page), and the engine calls every method
plainly from there on. Why a view rather than a base class to inherit from: a frontier
written against the six-method protocol (users pass their own to ``Crawler(frontier=...)``)
never inherits from anything, so a base class could not give it its defaults; and
:class:`~trio_scrape.frontier.memory.MemoryFrontier` is compiled with mypyc, which lets a
compiled class inherit only from compiled ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import trio

from ..model.page import CrawlRequest, PageMemo, rebuilt_by_fields

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from ..model.request import Request
    from ..output.sinks import CompleteSink, Sink
    from .pacing import HostLimiter

__all__ = [
    "AttachesSink",
    "CarriesRequests",
    "CompleteFrontier",
    "CountsMaxPages",
    "CountsUnlinked",
    "DefersLinks",
    "Frontier",
    "FrontierOpened",
    "FrontierStatistics",
    "KeepsSession",
    "KnowsCut",
    "LeasesWithoutWaiting",
    "RemembersPages",
    "SharesRobots",
    "TimesStarts",
    "complete",
    "settings_changes",
]


@dataclasses.dataclass(frozen=True)
class FrontierStatistics:
    queued: int
    leased: int
    seen: int

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return rebuilt_by_fields(self)


@dataclasses.dataclass(frozen=True)
class FrontierOpened:
    """What a frontier held when this process opened it: a ``--state`` resumed, a fleet's
    crawl joined, or a new crawl (:func:`~trio_scrape.frontier.open.open_frontier`)."""

    new: bool  #: nothing was ever scheduled: a new crawl
    scheduled: int  #: URLs ever scheduled (queued, leased or done) in this round
    done: int  #: URLs whose records are written
    queued: int  #: URLs still to do: queued (``requeued`` included) or waiting for a revisit
    leased: int = 0  #: URLs leased by other processes (a fleet; a state has none)
    requeued: int = 0  #: URLs that a stopped run had leased and that went back to the queue
    output_offset: int | None = None  #: length of the output file at the last commit
    deepest: int = -1  #: the largest depth a page was handed out at (-1: none, or unknown)
    round: int = 1  #: 1 for the first crawl, then one more for each round of a recrawl
    known: int = 0  #: pages remembered from earlier rounds, when this round began

    @property
    def is_new(self) -> bool:
        return self.new

    @property
    def finished(self) -> bool:
        """The crawl has run to its end: something was scheduled, and nothing is queued,
        leased or waiting for a revisit. The same for every frontier."""
        return self.scheduled > 0 and self.queued == 0 and self.leased == 0


class Frontier(Protocol):
    """What every frontier has: the seen-set and the queue, with leases. See the module
    :mod:`trio_scrape.frontier.memory` for why leases make a crawl end by itself."""

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
        """Queue each URL never seen before (and for which ``keep``, if given, is true:
        ``keep`` is asked only about unseen URLs); return how many requests were queued.

        URLs are browser URLs (:func:`~trio_scrape.model.urls.browser_url`), queued as given;
        "seen before" compares their canonical keys (:func:`~trio_scrape.model.urls.url_key`)
        through a digest, never the text (:mod:`trio_scrape.frontier.digests` says which).

        The URLs of one call share a depth and referrer: they are one page's links, the
        seeds, or a sitemap's entries. A URL that ``keep`` refuses is not marked seen.
        ``sitemap``: these URLs are sitemaps; ``lastmods``: a sitemap's ``<lastmod>`` by URL.

        A URL's depth is the shortest known: a URL seen before at a larger depth takes this
        ``depth`` and ``referrer``. Still queued, it is handed out at the new depth. Already
        handed out (leased, done, or marked seen), it gets a pending revisit when ``revisit``
        is true (otherwise only its known depth changes): a request with
        ``CrawlRequest.revisit`` set, so that its links can be followed from the new depth.
        Pending revisits are queued only once the queue is empty and nothing is leased, those
        of the smallest depth first and one depth at a time, so that a URL is revisited at
        most once more however many shorter paths turn up meanwhile.
        (:mod:`trio_scrape.frontier.depths` holds these rules for the Python frontiers.)
        """
        ...

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        """Record URLs as handed out at ``depth`` without queueing them (a redirect's final
        URL, crawled as the page that redirected to it). URLs already seen are unchanged."""
        ...

    async def get(self, hosts: HostLimiter) -> CrawlRequest | None:
        """Lease the next request whose host ``hosts`` says is ready, and ``hosts.start`` it.

        Blocks while no queued request's host is ready, or the queue is empty but requests are
        leased (they may add links). Returns ``None`` once the queue is empty and nothing is
        leased: the crawl is exhausted. Never holds back a ready host for one that is not.
        """
        ...

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        """End the leases of requests whose records are written.

        ``output_offset`` is the length of the output file once these records are in it; a
        persistent frontier stores it in the same transaction as the done marks, so a resumed
        crawl can cut the file back to exactly the records it knows are done.
        """
        ...

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        """Give leased requests back (unstarted, or to retry; a request may come back with
        more ``attempts``): they go to the front of their host's queue."""
        ...

    def statistics(self) -> FrontierStatistics: ...


# ------------------------------------------------------------------------ capabilities


@runtime_checkable
class LeasesWithoutWaiting(Protocol):
    def get_nowait(self, hosts: HostLimiter) -> CrawlRequest:
        """Lease the next ready request as ``get`` would, without waiting.

        Raises:
            trio.WouldBlock: no queued request's host is ready now.
        """
        ...


@runtime_checkable
class TimesStarts(Protocol):
    async def starting(self, request: CrawlRequest) -> None:
        """The request is about to be sent: wait until its host may start one (a frontier
        shared between processes times the host's delay for the whole fleet)."""
        ...


@runtime_checkable
class RemembersPages(Protocol):
    def remember(self, request: CrawlRequest, memo: PageMemo) -> None:
        """Keep what a recrawl needs of a leased page, for the next round."""
        ...


@runtime_checkable
class AttachesSink(Protocol):
    async def attach_sink(self, sink: Sink | None, *, links: bool) -> Sink:
        """The sink the crawler is to send records to instead of ``sink`` (a frontier that
        commits records itself wraps it)."""
        ...


@runtime_checkable
class SharesRobots(Protocol):
    @property
    def shared_robots(self) -> Any:
        """robots.txt shared by the processes of a crawl
        (:class:`~trio_scrape.engine.robots.SharedRobots`), or None."""
        ...


@runtime_checkable
class CountsUnlinked(Protocol):
    async def count_unlinked(self) -> int:
        """How many pages remembered from earlier rounds this round has not reached."""
        ...


@runtime_checkable
class CountsMaxPages(Protocol):
    #: The frontier enforces ``max_pages`` itself (for a whole fleet): the crawler does not.
    counts_max_pages: bool


@runtime_checkable
class KnowsMaxPagesRefused(Protocol):
    #: Whether the frontier's own ``max_pages`` (see :class:`CountsMaxPages`) refused a URL
    #: of the crawl: the fleet stopped at it.
    max_pages_refused: bool


@runtime_checkable
class CarriesRequests(Protocol):
    #: Whether :meth:`add_requests` keeps a scraper's requests (method, body, label, data)
    #: as durably as the frontier keeps URLs.
    carries_requests: bool

    async def add_requests(
        self,
        requests: Iterable[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Queue a scraper's requests never seen before, by their dedup key (each one with
        ``dont_dedup``), where ``keep(url)`` allows; return how many were queued."""
        ...


class SessionSource(Protocol):
    """The crawl's cookie jar as a frontier keeps it (``http.cookies.SessionJar``)."""

    version: int  #: changes whenever the cookies may have

    def dumps(self) -> str:
        """The cookies as JSON text."""
        ...


@runtime_checkable
class KeepsSession(Protocol):
    def keep_session(self, jar: SessionSource) -> str | None:
        """Keep ``jar`` with the frontier's commits from now on (its ``dumps()`` whenever its
        ``version`` changed since the last commit); return the jar the frontier held when
        it was opened (JSON text; None: none)."""
        ...


@runtime_checkable
class DefersLinks(Protocol):
    def defer_links(
        self,
        request: CrawlRequest,
        urls: Sequence[str],
        *,
        depth: int,
        keep: Callable[[str], bool] | None,
        revisit: bool,
    ) -> bool:
        """Keep a leased page's links to add them with its completion (``done``: one call
        for both, in a frontier shared over the network), as ``add(urls, depth=depth,
        referrer=request.url, keep=keep, revisit=revisit)`` would add them; a released
        request's links are dropped (the page is done again). Returns False when it does not
        keep them (the caller adds them now)."""
        ...


@runtime_checkable
class KnowsCut(Protocol):
    #: Whether any page was handed out at the depth limit (its links not followed), by
    #: any process sharing the frontier: until then a revisit finds nothing new.
    cut: bool


class CompleteFrontier:
    """A frontier with every capability the engine uses: the frontier's own where it has
    them, the defaults otherwise. Made once by :func:`complete`.

    The defaults: ``get_nowait`` raises :class:`trio.WouldBlock` (the dispatcher's ``get``
    does the work), ``starting`` and ``remember`` do nothing, ``attach_sink`` returns the sink
    as it is, ``shared_robots`` is None, ``count_unlinked`` is None (nothing to count),
    ``counts_max_pages`` is False, and ``cut`` is what ``counts_max_pages`` says: a frontier
    shared with other processes that cannot say whether one of them cut assumes one did.
    """

    __slots__ = (
        "_add_requests",
        "_counts_from",
        "_cut_from",
        "_defer_links",
        "_get_nowait",
        "_remember",
        "_starting",
        "add",
        "carries_requests",
        "count_unlinked",
        "counts_max_pages",
        "done",
        "frontier",
        "get",
        "keep_session",
        "mark_seen",
        "release",
        "shared_robots",
        "statistics",
    )

    # The six methods every frontier has are the frontier's own bound methods, set on each
    # view (slots): a call costs what a call of the frontier costs, on the per-page path.
    if TYPE_CHECKING:

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
        ) -> int: ...

        async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None: ...

        async def get(self, hosts: HostLimiter) -> CrawlRequest | None: ...

        async def done(
            self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
        ) -> None: ...

        async def release(self, requests: Sequence[CrawlRequest]) -> None: ...

        def statistics(self) -> FrontierStatistics: ...

    def __init__(self, frontier: Frontier) -> None:
        if isinstance(frontier, CompleteFrontier):
            frontier = frontier.frontier
        #: the frontier this view completes
        self.frontier: Frontier = frontier
        for name in ("add", "mark_seen", "get", "done", "release", "statistics"):
            setattr(self, name, getattr(frontier, name))
        #: whether the frontier keeps a scraper's requests (method, body, label, data)
        self.carries_requests = isinstance(frontier, CarriesRequests) and bool(
            frontier.carries_requests
        )
        self._add_requests = frontier.add_requests if self.carries_requests else None  # type: ignore[attr-defined]
        self.counts_max_pages = (
            bool(frontier.counts_max_pages) if isinstance(frontier, CountsMaxPages) else False
        )
        self._counts_from: KnowsMaxPagesRefused | None = (
            frontier if isinstance(frontier, KnowsMaxPagesRefused) else None
        )
        self._cut_from: KnowsCut | None = frontier if isinstance(frontier, KnowsCut) else None
        self._get_nowait: Callable[[HostLimiter], CrawlRequest] | None = (
            frontier.get_nowait if isinstance(frontier, LeasesWithoutWaiting) else None
        )
        self._starting: Callable[[CrawlRequest], Awaitable[None]] | None = (
            frontier.starting if isinstance(frontier, TimesStarts) else None
        )
        self._defer_links: Callable[..., bool] | None = (
            frontier.defer_links if isinstance(frontier, DefersLinks) else None
        )
        self._remember: Callable[[CrawlRequest, PageMemo], None] | None = (
            frontier.remember if isinstance(frontier, RemembersPages) else None
        )
        #: ``keep_session(jar) -> str | None`` (:class:`KeepsSession`): a frontier that
        #: keeps no cookies keeps nothing and held none
        self.keep_session: Callable[[SessionSource], str | None] = (
            frontier.keep_session if isinstance(frontier, KeepsSession) else _keeps_no_session
        )
        #: robots.txt shared by a fleet, or None
        self.shared_robots: Any = (
            frontier.shared_robots if isinstance(frontier, SharesRobots) else None
        )
        #: ``async count_unlinked() -> int`` of a frontier that remembers earlier rounds, or
        #: None when it does not (a recrawl then has nothing to count)
        self.count_unlinked: Callable[[], Awaitable[int]] | None = (
            frontier.count_unlinked if isinstance(frontier, CountsUnlinked) else None
        )

    # The capabilities, with their defaults.

    async def add_requests(
        self,
        requests: Sequence[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """The frontier's ``add_requests``. A frontier that does not carry requests takes
        plain ones (a ``GET`` with no headers, body, label or data) as URLs.

        Raises:
            TypeError: a request is more than a URL and the frontier cannot keep it (the
                crawler refuses such a frontier for a scraper before it starts).
        """
        if self._add_requests is not None:
            count: int = await self._add_requests(
                requests, depth=depth, referrer=referrer, keep=keep
            )
            return count
        urls = []
        for request in requests:
            if request.to_json() != {"url": request.url}:
                raise TypeError(f"{type(self.frontier).__name__} cannot keep {request!r}")
            urls.append(request.url)
        return await self.add(urls, depth=depth, referrer=referrer, keep=keep)

    async def add_links(
        self,
        request: CrawlRequest,
        urls: Sequence[str],
        *,
        depth: int,
        keep: Callable[[str], bool] | None,
        revisit: bool,
    ) -> None:
        """A leased page's links: ``add(urls, depth=depth, referrer=request.url, keep=keep,
        revisit=revisit)``, now or, in a frontier that defers them (:class:`DefersLinks`),
        with the page's completion."""
        defer = self._defer_links
        if defer is not None and defer(request, urls, depth=depth, keep=keep, revisit=revisit):
            return
        await self.add(urls, depth=depth, referrer=request.url, keep=keep, revisit=revisit)

    @property
    def max_pages_refused(self) -> bool:
        """Whether a frontier that counts ``max_pages`` itself (a fleet's) refused a URL of
        the crawl: the crawl stopped at ``max_pages``."""
        return self._counts_from is not None and bool(self._counts_from.max_pages_refused)

    @property
    def cut(self) -> bool:
        """Whether a page was handed out at the depth limit by another process sharing the
        frontier (read each time: it changes as the crawl goes)."""
        if self._cut_from is None:
            return self.counts_max_pages
        return bool(self._cut_from.cut)

    def get_nowait(self, hosts: HostLimiter) -> CrawlRequest:
        """The frontier's ``get_nowait``.

        Raises:
            trio.WouldBlock: no request is ready now, or the frontier cannot say without
                waiting.
        """
        if self._get_nowait is None:
            raise trio.WouldBlock
        return self._get_nowait(hosts)

    @property
    def leases_without_waiting(self) -> bool:
        """Whether :meth:`get_nowait` can ever return a request."""
        return self._get_nowait is not None

    async def starting(self, request: CrawlRequest) -> None:
        if self._starting is not None:
            await self._starting(request)

    @property
    def times_starts(self) -> bool:
        """Whether :meth:`starting` may wait (it need not be called otherwise)."""
        return self._starting is not None

    def remember(self, request: CrawlRequest, memo: PageMemo) -> None:
        if self._remember is not None:
            self._remember(request, memo)

    @property
    def remembers_pages(self) -> bool:
        """Whether :meth:`remember` keeps anything (a recrawl's memos need not be built
        otherwise)."""
        return self._remember is not None

    async def attach_sink(self, sink: Sink | None, *, links: bool) -> CompleteSink:
        """The sink records go to: the frontier's wrapper of ``sink`` (records go out only
        once committed) or ``sink`` itself, completed
        (:func:`~trio_scrape.output.sinks.complete_sink`)."""
        from ..output.sinks import complete_sink

        if isinstance(self.frontier, AttachesSink):
            sink = await self.frontier.attach_sink(sink, links=links)
        return complete_sink(sink)


def _keeps_no_session(jar: SessionSource) -> None:
    return None


def complete(frontier: Frontier) -> CompleteFrontier:
    """``frontier`` with every capability the engine uses (its own, or the defaults): look
    them up once, when the crawl starts. A :class:`CompleteFrontier` is returned as is."""
    if isinstance(frontier, CompleteFrontier):
        return frontier
    return CompleteFrontier(frontier)


def settings_changes(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """What differs between the settings a crawl was started with and the ones asked for
    now, as ``"depth was 2, now 3; ..."``: a state and a fleet both refuse a crawl with
    other settings, and say so with this."""
    return "; ".join(
        f"{key} was {stored.get(key)!r}, now {wanted.get(key)!r}"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    )
