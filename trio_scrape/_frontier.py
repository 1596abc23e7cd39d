"""The frontier: the seen-set and the queue of URLs still to fetch, with leases.

The engine talks to a frontier only through the :class:`Frontier` protocol, so a crawl's
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
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import trio

from ._page import CrawlRequest

__all__ = ["Frontier", "FrontierStatistics", "MemoryFrontier", "url_digest"]


@dataclasses.dataclass(frozen=True)
class FrontierStatistics:
    queued: int
    leased: int
    seen: int


class Frontier(Protocol):
    async def add(
        self,
        urls: Iterable[str],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Queue each canonical URL never seen before (and for which ``keep``, if given, is
        true: ``keep`` is asked only about unseen URLs); return how many were queued.

        The URLs of one call share a depth and referrer: they are one page's links, or the
        seeds. A URL that ``keep`` refuses is not marked seen.
        """
        ...

    async def mark_seen(self, urls: Iterable[str]) -> None:
        """Record URLs as seen without queueing them (a redirect's final URL)."""
        ...

    async def get(self) -> CrawlRequest | None:
        """Lease the next request.

        Blocks while the queue is empty but requests are leased (they may add links). Returns
        ``None`` once the queue is empty and nothing is leased: the crawl is exhausted.
        """
        ...

    async def done(self, requests: Sequence[CrawlRequest]) -> None:
        """End the leases of requests whose records are written."""
        ...

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        """Give leased requests back unprocessed: they go to the front of the queue."""
        ...

    def statistics(self) -> FrontierStatistics: ...


def url_digest(url: str) -> int:
    """A stable 64-bit digest of a canonical URL, for frontiers that persist their seen-set."""
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "little")


class MemoryFrontier:
    """An in-memory FIFO :class:`Frontier` (breadth-first order) with a compact seen-set.

    The seen-set holds Python's 64-bit ``hash()`` of each canonical URL (SipHash, salted per
    process), not the string: about 60 bytes per URL (a 32-byte int plus the set's share)
    instead of ~150 for typical URL strings, and the hash is already cached on the string. The
    chance of any false "seen" among a million URLs is about 3e-8. A frontier that persists
    its seen-set uses the stable :func:`url_digest` instead.
    """

    def __init__(self) -> None:
        self._queue: collections.deque[CrawlRequest] = collections.deque()
        self._seen: set[int] = set()
        self._leased = 0
        self._changed = trio.Event()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def add(
        self,
        urls: Iterable[str],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        added = 0
        seen = self._seen
        queue = self._queue
        for url in urls:
            digest = hash(url)
            if digest in seen or (keep is not None and not keep(url)):
                continue
            seen.add(digest)
            queue.append(CrawlRequest(url, depth, referrer))
            added += 1
        if added:
            self._wake()
        return added

    async def mark_seen(self, urls: Iterable[str]) -> None:
        self._seen.update(hash(url) for url in urls)

    async def get(self) -> CrawlRequest | None:
        while not self._queue:
            if self._leased == 0:
                return None
            await self._changed.wait()
        self._leased += 1
        return self._queue.popleft()

    async def done(self, requests: Sequence[CrawlRequest]) -> None:
        self._end_leases(len(requests))

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        self._queue.extendleft(reversed(requests))
        self._end_leases(len(requests))

    def _end_leases(self, count: int) -> None:
        if count > self._leased:
            raise RuntimeError(f"ending {count} leases but only {self._leased} are held")
        self._leased -= count
        if count:
            self._wake()

    def statistics(self) -> FrontierStatistics:
        return FrontierStatistics(
            queued=len(self._queue), leased=self._leased, seen=len(self._seen)
        )
