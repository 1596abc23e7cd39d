"""Resumable crawls: the SQLite frontier behind ``--state``.

The database is a transaction log of the crawl, not a snapshot: whatever instant the process
dies at (SIGKILL included), the last committed transaction describes a consistent crawl, and
running the same crawl again goes on from there. Every URL ever seen has a number, ``seq``,
in the order it was found (which is also the order of the queue), and two tables hold them::

    links(seq INTEGER PRIMARY KEY,  -- the first URL's seq: a group's URLs are seq, seq+1, ...
          kind,                     -- 0 links to crawl, 1 sitemaps to read, 2 seen only,
                                    -- 3 a scraper's requests
          depth, referrer,          -- shared by the group: one page's new links or requests,
          urls, digests,            -- the seeds, or a sitemap's entries; a JSON list (kind 3:
                                    -- of Request.to_json() objects); 8 bytes each
                                    -- (DigestSet.digest, or key_digest of a request's key;
                                    -- unsigned little-endian)
          lastmods, count)          -- a sitemap's <lastmod> for each (JSON) or NULL; how many
    marks(seq INTEGER PRIMARY KEY,  -- a URL handed out (no row: queued, never handed out)
          state, attempts,          -- 0 queued again, 1 leased, 2 done, 3 seen only
          depth, referrer,          -- a smaller depth found while it was queued, or NULL
          revisit)                  -- the depth of a pending revisit (see Frontier.add)
    memo_log(id INTEGER PRIMARY KEY,   -- what a recrawl needs of each page fetched in this
             digest, memo)             -- round, appended: its URL's digest (signed), a
                                       -- PageMemo as JSON (a page fetched again after a
                                       -- kill has two: the last one counts)
    pages(digest INTEGER PRIMARY KEY,  -- what earlier rounds remember, by digest: memo_log
          memo)                        -- merged in as a round begins (so a page fetched
                                       -- again is compared with the last round, not itself)
    meta(key PRIMARY KEY, value)    -- 'settings' (JSON), 'output_offset', 'schema', 'round',
                                    -- 'digest_seed' (the seed of every digest above),
                                    -- 'session' (the cookie jar, JSON: http/cookies.py)

Why it is exactly-once: a page is marked done in the same transaction as the length of the
output file once its record is in it, and a page's links are written no later than its done
mark. On resume the output is cut back to that length, leased pages go back to the queue, and
every page whose record was cut is still queued, so it is done again, once.

Why it keeps up with a crawl that finds a million URLs in seconds: the engine never waits for
the disk, and the disk does little per URL. A page's new links are one row, appended at the
end of ``links`` (a ``seq`` primary key, no other index): one row per URL keyed by its digest
cost a random B-tree insert each, 30 s of writing per million URLs, against 0.4 s this way.
Per-URL rows exist only for URLs handed out (``marks``), written at the pace of fetches, near
the end of their table. Changes pile up in memory and one background task commits them every
25 ms in a single transaction, in one worker thread (``trio.to_thread``, one at a time);
a crawl waits for a commit only with 100,000 changes pending. Only a window of the queue
(10,000 requests) is in memory; the rest is read back in ``seq`` order as the window drains,
skipping URLs marked done, by another background task: ``get()`` only asks for a read and
hands out what the window holds meanwhile, so the dispatcher never waits for the disk. The
seen-set in memory is a :class:`~trio_scrape.frontier.digests.DigestSet`, C hash tables from each
URL's digest to its ``seq`` and depth (27-53 bytes a URL), so checking a link never touches
the disk; a resumed crawl rebuilds it from the ``digests`` column (about 0.2 s of CPU per
million URLs) and the marks.
"""

from __future__ import annotations

import array
import dataclasses
import json
import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio

from ..errors import StateError
from ..model.page import CrawlRequest, PageMemo
from ..model.request import Request
from ..model.urls import origin_of
from .base import FrontierOpened, FrontierStatistics, SessionSource, settings_changes
from .depths import lease_depth
from .digests import DigestSet, key_digest
from .memory import LinkBatch, MemoryFrontier, QueueEntry

__all__ = ["ResumeInfo", "SqliteFrontier", "open_sqlite_frontier"]

logger = logging.getLogger("trio_scrape")

_QUEUED, _LEASED, _DONE, _SEEN = 0, 1, 2, 3  # marks.state (3: a seen-only URL's revisit)
_LINKS, _SITEMAPS, _SEEN_ONLY, _REQUESTS = 0, 1, 2, 3  # links.kind
# 7: links rows of kind 3 (a scraper's requests); a state of schema 6 has none, and opens as
# one of 7 (it is marked 7 then, so that an older version refuses it rather than read a
# request's JSON as a URL). 6: digests are seeded XXH3-64 (DigestSet.digest), no longer
# BLAKE2b. 5: links stored one row per page and per-URL marks. 4: browser URLs
# keyed by the digest of their canonical key; 3 added urls.revisit; 2 and 3 stored
# w3lib-canonical URLs. A state of another version is refused, not misread.
_SCHEMA = "7"
_UPGRADES = ("6",)  # schemas read as they are, then marked _SCHEMA
_COMMIT_INTERVAL = 0.025  # seconds between commits: about the most work a kill makes us redo
# Changes held in memory before a writer waits for a commit (URLs count one each: ~100
# bytes). A crawl that finds 1,000 links a page finds 400,000 URLs a second on loopback:
# this is 1/4 s of that, so a commit slowed down by a busy event loop does not stop it.
_MAX_PENDING = 100_000
_CLOSE_TIMEOUT = 30.0
# The window grows up to this many times its size while every host in it is waiting (a
# slow host's URLs filling it must not hold back the other hosts' on disk).
_MOST_WINDOWS = 5

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS links (seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL,"
    " depth INTEGER NOT NULL, referrer TEXT, urls TEXT NOT NULL, digests BLOB NOT NULL,"
    " lastmods TEXT, count INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS marks (seq INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, depth INTEGER, referrer TEXT, revisit INTEGER)",
    "CREATE TABLE IF NOT EXISTS pages (digest INTEGER PRIMARY KEY, memo TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS memo_log (id INTEGER PRIMARY KEY, digest INTEGER NOT NULL,"
    " memo TEXT NOT NULL)",
)
# This round's memos are appended (a random-keyed upsert per page cost the commit thread
# more than everything else it writes), and merged into pages when the next round begins.
_REMEMBER = (
    "INSERT INTO memo_log (digest, memo) SELECT json_extract(value, '$[0]'),"
    " json_extract(value, '$[1]') FROM json_each(?)"
)
# The last memo of each page (a page fetched again after a kill has two), in digest order.
_MERGE_MEMOS = (
    "INSERT INTO pages (digest, memo) SELECT digest, memo FROM memo_log WHERE id IN"
    " (SELECT max(id) FROM memo_log GROUP BY digest) ORDER BY digest"
    " ON CONFLICT (digest) DO UPDATE SET memo = excluded.memo"
)
# Releases and done marks, in the order they happened: the last one of a URL wins.
_MARK = (
    "INSERT INTO marks (seq, state, attempts) SELECT json_extract(value, '$[0]'),"
    " json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?) WHERE 1"
    " ON CONFLICT (seq) DO UPDATE SET state = excluded.state, attempts = excluded.attempts"
)
# Leases still held at a commit, as {"seq": attempts}.
_LEASE = (
    "INSERT INTO marks (seq, state, attempts) SELECT CAST(key AS INTEGER), 1, value"
    " FROM json_each(?) WHERE 1 ON CONFLICT (seq) DO UPDATE SET state = 1,"
    " attempts = excluded.attempts"
)
# A queued URL found at a smaller depth: it is handed out at that depth and referrer.
_SHORTER = (
    "INSERT INTO marks (seq, state, attempts, depth, referrer) VALUES (?1, 0, 0, ?2, ?3)"
    " ON CONFLICT (seq) DO UPDATE SET depth = ?2, referrer = ?3"
)
# One handed out (or seen only: no mark yet) gets a revisit pending at that depth when asked
# for; otherwise a pending revisit moves there.
_REVISIT = (
    "INSERT INTO marks (seq, state, attempts, revisit) VALUES (?1, 3, 0, ?2)"
    " ON CONFLICT (seq) DO UPDATE SET revisit = ?2"
)
_REVISIT_MOVED = "UPDATE marks SET revisit = ?2 WHERE seq = ?1 AND revisit NOT NULL"
# A revisit done ends the pending one, unless a smaller depth was found meanwhile.
_REVISITED = "UPDATE marks SET revisit = NULL WHERE seq = ? AND revisit >= ?"


#: What a state held when it was opened (the one info type of every frontier).
ResumeInfo = FrontierOpened


# Longer than the ~450 lines a class gets here: the state's write path (changes piled
# up and committed by one task), its read-back window and its resume are one transaction
# log, and their invariants (a page done only with its output's length; links no later
# than the done mark) are easier to check in one place than across classes.
class SqliteFrontier(MemoryFrontier):
    """A :class:`~trio_scrape.Frontier` kept in an SQLite database, for crawls that must
    survive being killed. Open it with :func:`open_sqlite_frontier`.

    Host scheduling is :class:`MemoryFrontier`'s, applied to the window of the queue that is
    in memory.
    """

    def __init__(self, db: sqlite3.Connection, *, window: int = 10_000) -> None:
        super().__init__()
        #: a scraper's requests are kept, with all they carry: see add_requests
        self.carries_requests = True
        # A recrawl's new output (-o): the settings stored when its round begins.
        self._next_settings: dict[str, Any] | None = None
        self._db = db
        self._thread = trio.CapacityLimiter(1)
        self._lock = trio.Lock()
        self._window = window
        self._low_water = window // 2
        self._read_asked = trio.Event()  # set when read_forever should look again
        self._starving = False  # get() found every host in the window waiting
        # The seen-set, and where each URL's row is (its seed is the state's: see _load).
        self._seen_digests = DigestSet(0)
        self._groups: list[_Group] = []
        self._grouped = 0  # URLs in self._groups
        self._marks: list[tuple[int, int, int]] = []  # (seq, state, attempts), in order
        # seq -> attempts of the leases taken since the last commit: one that ends before the
        # next commit (most pages, on a fast site) is never written, only its end is. Each
        # is the newest event of its seq (release and done remove it), so the commit writes
        # them after _marks.
        self._leases: dict[int, int] = {}
        self._shorter: list[tuple[int, int, str | None]] = []  # (seq, depth, referrer)
        self._revisits: list[tuple[int, int, bool]] = []  # (seq, depth, asked for)
        self._revisited: list[tuple[int, int]] = []  # (seq, depth)
        self._leased_seqs: dict[str, tuple[int, int]] = {}  # URL -> (seq, digest)
        # A scraper's requests (CrawlRequest.request set) in the window, by id() (each holds
        # its request, so no id is reused meanwhile): (seq, digest, the request).
        self._request_rows: dict[int, tuple[int, int, CrawlRequest]] = {}
        # Those handed out: Request -> [(seq, digest)] (two equal requests, each with
        # dont_dedup, may be out at once: they are interchangeable), and URL -> seqs.
        self._leased_requests: dict[Request, list[tuple[int, int]]] = {}
        self._leased_request_urls: dict[str, list[int]] = {}
        self._memos: list[tuple[int, tuple[Any, ...]]] = []  # (signed digest, memo)
        self._round = 1
        self._output_offset: int | None = None
        self._committed_offset: int | None = None
        # The crawl's cookie jar (keep_session), the version of it last committed, and the jar
        # the state held when opened (meta 'session').
        self._session: SessionSource | None = None
        self._session_version = -1
        self._stored_session: str | None = None
        self._dirty = trio.Event()
        self._next_seq = 1
        self._loaded_seq = 0  # every queued URL up to this seq is in memory or handed out
        self._on_disk = 0  # queued requests outside the window
        #: what the state held when it was opened (and when this round began)
        self.opened = FrontierOpened(new=True, scheduled=0, done=0, queued=0)

    @property
    def resume(self) -> FrontierOpened:
        """What the state held when it was opened: :attr:`opened`."""
        return self.opened

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
        first = self._next_seq
        new, digests, shorter = self._seen_digests.add_unseen(urls, keep, first, depth << 1)
        for url, digest, known in shorter:
            self._improve(digest, url, known, depth, referrer, revisit)
        if not new:
            return 0
        count = len(new)
        self._next_seq += count
        dates = [lastmods.get(url) for url in new] if lastmods else None
        kind = _SITEMAPS if sitemap else _LINKS
        self._groups.append((first, kind, depth, referrer, new, digests, dates))
        self._grouped += count
        # What fits in the window goes to memory now; the rest is read back from the disk.
        # In a recrawl round, everything is: reading it back brings each page's memo.
        room = 0 if self._spilled or self._round > 1 else max(0, self._window - self._queued)
        for i, url in enumerate(new[:room]):
            lastmod = dates[i] if dates else None
            self._enqueue(CrawlRequest(url, depth, referrer, 0, None, sitemap, lastmod))
        if room:
            self._loaded_seq = first + min(room, count) - 1
        if count > room:
            self._spilled = True
            self._on_disk += count - room
        self._changed_pending()
        self._wake()
        await self._wait_if_backlogged()  # the disk sets the pace, not memory
        return count

    def _improve(
        self,
        digest: int,
        url: str,
        known: int,
        depth: int,
        referrer: str | None,
        revisit: bool,
    ) -> int:
        super()._improve(digest, url, known, depth, referrer, revisit)  # the rules
        seq = self._seen_digests.seq(digest)
        assert seq is not None
        if not known & 1:  # still queued
            self._shorter.append((seq, depth, referrer))
        else:  # a revisit asked for, or a pending one moved
            self._revisits.append((seq, depth, revisit))
        self._changed_pending()
        return 0

    def _seen_depths(self) -> DigestSet:
        return self._seen_digests

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        first = self._next_seq
        new, digests, _ = self._seen_digests.add_unseen(urls, None, first, depth << 1 | 1)
        if new:
            self._next_seq += len(new)
            self._groups.append((first, _SEEN_ONLY, depth, None, new, digests, None))
            self._grouped += len(new)
            self._changed_pending()

    async def add_requests(
        self,
        requests: Iterable[Request],
        *,
        depth: int,
        referrer: str | None,
        keep: Callable[[str], bool] | None = None,
    ) -> int:
        """Queue a scraper's requests never seen before, as :class:`MemoryFrontier` does,
        and write them down (one ``links`` row of kind 3, each request as
        :meth:`Request.to_json`), with their keys' digests in the seen-set.

        A request with ``dont_dedup`` is queued each time it is added, but not again when
        the page that added it is done again after a kill (or its start requests added again
        by a resumed crawl): its digest is of where it came from (the seq of the request
        leased at ``referrer``, or 0 for the seeds), its place among that page's requests
        with its key, and its key. (Two requests leased at ``referrer`` at once: which one
        added it is unknown, and its digest is of its own seq, unique.)"""
        seen = self._seen_digests
        seed = seen.seed
        first = self._next_seq
        new: list[Request] = []
        digests = array.array("Q")
        batch: set[int] = set()
        parent = self._parent_seq(referrer)
        repeats: dict[str, int] = {}  # a dont_dedup request's key -> times in this call
        for request in requests:
            key = request.key
            if request.dont_dedup:
                n = repeats[key] = repeats.get(key, -1) + 1
                origin = f"row {first + len(new)}" if parent is None else f"from {parent} #{n}"
                digest = key_digest(f"\0dont_dedup {origin} {key}", seed)
            else:
                digest = key_digest(key, seed)
            if digest in seen or digest in batch:
                continue
            if keep is not None and not keep(request.url):
                continue
            batch.add(digest)
            new.append(request)
            digests.append(digest)
        if not new:
            return 0
        count = len(new)
        seen.load(digests, first, depth << 1)
        self._next_seq += count
        rows: list[Any] = [request.to_json() for request in new]
        self._groups.append((first, _REQUESTS, depth, referrer, rows, digests, None))
        self._grouped += count
        room = 0 if self._spilled or self._round > 1 else max(0, self._window - self._queued)
        for i, request in enumerate(new[:room]):
            entry = CrawlRequest(request.url, depth, referrer, request=request)
            self._request_rows[id(entry)] = (first + i, digests[i], entry)
            self._enqueue(entry)
        if room:
            self._loaded_seq = first + min(room, count) - 1
        if count > room:
            self._spilled = True
            self._on_disk += count - room
        self._changed_pending()
        self._wake()
        await self._wait_if_backlogged()
        return count

    def _parent_seq(self, referrer: str | None) -> int | None:
        """The seq of the one request leased at ``referrer`` (0: no referrer, the seeds), or
        None when several are."""
        if referrer is None:
            return 0
        plain = self._leased_seqs.get(referrer)
        others = self._leased_request_urls.get(referrer, ())
        if plain is not None and not others:
            return plain[0]
        if plain is None and len(others) == 1:
            return others[0]
        return None

    def _on_lease(self, request: CrawlRequest) -> CrawlRequest:
        if request.request is not None:
            return self._lease_request(request)
        digest = self._seen_digests.digest(request.url)
        seq = self._seen_digests.seq(digest)
        assert seq is not None
        self._leased_seqs[request.url] = (seq, digest)
        if not request.revisit:  # a revisit's page is done already: its mark stays
            self._leases[seq] = request.attempts
            self._changed_pending()
        return lease_depth(self._seen_digests, self._improved, digest, request)

    def _lease_request(self, request: CrawlRequest) -> CrawlRequest:
        """A scraper's request handed out: leased by its seq, and its key marked handed out
        (as MemoryFrontier marks it)."""
        seq, digest, _ = self._request_rows.pop(id(request))
        self._seen_digests[digest] = request.depth << 1 | 1
        assert request.request is not None
        self._leased_requests.setdefault(request.request, []).append((seq, digest))
        self._leased_request_urls.setdefault(request.url, []).append(seq)
        self._leases[seq] = request.attempts
        self._changed_pending()
        return request

    def _end_request_lease(self, request: CrawlRequest) -> tuple[int, int]:
        """The (seq, digest) of a scraper's request handed out, its lease ended."""
        assert request.request is not None
        held = self._leased_requests[request.request]
        seq, digest = held.pop()
        if not held:
            del self._leased_requests[request.request]
        seqs = self._leased_request_urls[request.url]
        seqs.remove(seq)
        if not seqs:
            del self._leased_request_urls[request.url]
        return seq, digest

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        await super().release(requests)  # back in the window: each is a request row again
        for r in requests:
            if r.request is not None:
                seq, digest = self._end_request_lease(r)
                self._request_rows[id(r)] = (seq, digest, r)
                self._leases.pop(seq, None)
                self._marks.append((seq, _QUEUED, r.attempts))
                continue
            seq, _ = self._leased_seqs.pop(r.url)
            if not r.revisit:
                self._leases.pop(seq, None)
                self._marks.append((seq, _QUEUED, r.attempts))
        self._changed_pending()
        await self._wait_if_backlogged()

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        await super().done(requests)
        leases = self._leases
        for r in requests:
            if r.request is not None:
                seq, _ = self._end_request_lease(r)
            else:
                seq, _ = self._leased_seqs.pop(r.url)
            if r.revisit:
                self._revisited.append((seq, r.depth))
            else:
                leases.pop(seq, None)
                self._marks.append((seq, _DONE, r.attempts))
        if output_offset is not None:
            self._output_offset = output_offset
        self._changed_pending()
        await self._wait_if_backlogged()

    def keep_session(self, jar: SessionSource) -> str | None:
        """Commit ``jar`` (meta 'session') with the next commit after it changed; return the
        jar the state held."""
        self._session = jar
        return self._stored_session

    def remember(self, request: CrawlRequest, memo: PageMemo) -> None:
        """Keep what a recrawl needs of a leased page (committed no later than its done
        mark), for the next round."""
        row = (memo.status, memo.etag, memo.last_modified, memo.digest, memo.links)
        spec = request.request
        if spec is not None:  # by its key's digest: a POST is remembered apart from a GET
            held = self._leased_requests.get(spec)
            digest = held[-1][1] if held else key_digest(spec.key, self._seen_digests.seed)
        else:
            leased = self._leased_seqs.get(request.url)
            digest = leased[1] if leased else self._seen_digests.digest(request.url)
        self._memos.append((_signed(digest), row))
        self._changed_pending()

    async def start_round(self) -> None:
        """Begin a new round of a finished crawl: the queue and the seen-set start empty (the
        seeds are added again), the output starts afresh, and what each page's last fetch
        left (:meth:`remember`) is kept for the requests of this round."""
        async with self._lock:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._new_round, limiter=self._thread)

    async def count_unlinked(self) -> int:
        """How many pages remembered from earlier rounds this round has not reached (once
        every change is committed)."""
        await self._commit()
        async with self._lock:
            (count,) = await trio.to_thread.run_sync(
                lambda: self._db.execute(
                    "SELECT count(*) FROM pages WHERE digest NOT IN (SELECT digest FROM memo_log)"
                ).fetchone(),
                limiter=self._thread,
            )
        return int(count)

    def statistics(self) -> FrontierStatistics:
        return FrontierStatistics(
            queued=self._queued + self._on_disk,
            leased=self._leased,
            seen=len(self._seen_digests),
        )

    # ---------------------------------------------------------------------- the window

    def _read_ahead(self, *, more: bool = False) -> None:
        if more:
            self._starving = True
        if self._read_due() and not self._read_asked.is_set():
            self._read_asked.set()

    def _read_due(self) -> bool:
        """Whether :meth:`read_forever` should read now: the window has drained below half,
        or every host in it is waiting and it has room for a whole window more."""
        if not self._spilled:
            return False
        if self._queued < self._low_water:
            return True
        return self._starving and self._queued <= self._window * (_MOST_WINDOWS - 1)

    async def read_forever(self) -> None:
        """Bring queued requests back from the disk into the window whenever
        :meth:`_read_ahead` finds it due, one read at a time, so that ``get()`` never waits
        for the disk: it waits for :meth:`_wake`, which every read ends with, whether it
        found requests or not.

        Raises:
            StateError: the database could not be written or read.
        """
        while True:
            # No checkpoint between this check and the wait: whatever makes a read due
            # later (get() draining the window, links spilled) sets the new event.
            if not self._read_due():
                self._read_asked = trio.Event()
                await self._read_asked.wait()
                continue
            room = self._window * (_MOST_WINDOWS if self._starving else 1) - self._queued
            self._starving = False
            # Reads only while spilled, and only this task reads or clears _spilled, so
            # add() never moves _loaded_seq meanwhile (it does only while not spilled).
            read, self._loaded_seq = await self._commit(load=room)
            # No checkpoint from here to _wake(): a cancellation cannot drop what was read.
            requests = 0
            rows = self._request_rows
            for origin, entry, count, seq, digest in read:
                if seq:  # a scraper's request
                    assert type(entry) is CrawlRequest
                    rows[id(entry)] = (seq, digest, entry)
                self._enqueue_entry(origin, entry, count, front=False)
                requests += count
            self._on_disk -= requests
            if not requests or self._on_disk <= 0:
                # Everything queued is in the window now, unless links were added while we
                # read: they are in the next read, still counted in _on_disk, so the window
                # stays spilled (dropping them here ended a crawl early, now and then).
                self._spilled = self._on_disk > 0 and (bool(requests) or self._grouped > 0)
                if not self._spilled:
                    self._on_disk = 0
            self._wake()  # get() may wait for this read, found or not: it re-checks

    # ------------------------------------------------------------------------- commits

    def _changed_pending(self) -> None:
        if not self._dirty.is_set():
            self._dirty.set()

    def _backlog(self) -> int:
        return (
            self._grouped
            + len(self._marks)
            + len(self._leases)
            + len(self._shorter)
            + len(self._revisits)
            + len(self._revisited)
            + len(self._memos)
        )

    async def _wait_if_backlogged(self) -> None:
        if self._backlog() > _MAX_PENDING:
            await self._commit()

    async def commit_forever(self) -> None:
        """Commit pending changes whenever there are some, at most every 25 ms."""
        while True:
            await self._dirty.wait()
            # Only this loop replaces the event: if _commit() did, this loop could be left
            # waiting on an event nobody sets any more.
            self._dirty = trio.Event()
            await self._commit()
            if self._backlog() < _MAX_PENDING // 8:  # else catch up at once
                await trio.sleep(_COMMIT_INTERVAL)

    async def _commit(self, *, load: int = 0) -> tuple[list[_Read], int]:
        """Write every pending change in one transaction, then read up to ``load`` queued
        requests past the window; return them and the seq read up to. Not cancellable once
        the changes are taken.

        Raises:
            StateError: the database could not be written (disk full, file removed).
        """
        async with self._lock:
            changes = _Changes(
                self._groups,
                self._marks,
                self._leases,
                self._shorter,
                self._revisits,
                self._revisited,
                self._output_offset,
                self._memos,
            )
            loaded_seq = self._loaded_seq
            jar = self._session
            if jar is not None and jar.version != self._session_version:
                changes = dataclasses.replace(changes, session=jar.dumps())
                self._session_version = jar.version
            if not (
                load
                or self._backlog()
                or self._output_offset != self._committed_offset
                or changes.session is not None
            ):
                return [], loaded_seq
            self._groups, self._marks, self._grouped = [], [], 0
            self._leases = {}
            self._shorter, self._revisits, self._revisited, self._memos = [], [], [], []
            self._committed_offset = self._output_offset
            # Shielded: once taken, the changes exist nowhere else. (Even an idle limiter is
            # a checkpoint where a cancellation would otherwise drop them.)
            with trio.CancelScope(shield=True):
                read = await trio.to_thread.run_sync(
                    self._write, changes, loaded_seq, load, limiter=self._thread
                )
        return read

    def _write(self, changes: _Changes, loaded_seq: int, load: int) -> tuple[list[_Read], int]:
        db = self._db
        try:
            db.execute("BEGIN")
            # Few statements, each for many rows: sqlite3 drops the GIL around every step,
            # and with the event loop busy, taking it back once per row (executemany) made
            # a 400-row commit take 350 ms instead of 2. Links first: a page's links are
            # written no later than its done mark.
            groups = changes.groups
            per_statement = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8
            for start in range(0, len(groups), per_statement):
                chunk = groups[start : start + per_statement]
                db.execute(
                    "INSERT INTO links VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    [value for group in chunk for value in _group_row(group)],
                )
            if changes.memos:  # no later than the done marks, as links
                db.execute(_REMEMBER, (_json_text(changes.memos),))
            if changes.marks:
                db.execute(_MARK, (orjson.dumps(changes.marks).decode(),))
            if changes.leases:  # after the marks: each lease is newer than its seq's marks
                leases = orjson.dumps(changes.leases, option=orjson.OPT_NON_STR_KEYS)
                db.execute(_LEASE, (leases.decode(),))
            # Rare: URLs found again at a smaller depth (exact --depth), and revisits.
            if changes.shorter:
                db.executemany(_SHORTER, changes.shorter)
            if changes.revisits:
                db.executemany(_REVISIT, [(s, d) for s, d, asked in changes.revisits if asked])
                db.executemany(
                    _REVISIT_MOVED, [(s, d) for s, d, asked in changes.revisits if not asked]
                )
            if changes.revisited:
                db.executemany(_REVISITED, changes.revisited)
            if changes.output_offset is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('output_offset', ?)",
                    (str(changes.output_offset),),
                )
            if changes.session is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('session', ?)", (changes.session,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StateError(f"cannot write the crawl state: {exc}") from exc
        if not load:
            return [], loaded_seq
        return _read_queue(db, loaded_seq, load, memos=self._round > 1)

    def _new_round(self) -> None:
        db = self._db
        try:
            db.execute("BEGIN")
            db.execute(_MERGE_MEMOS)
            db.execute("DELETE FROM memo_log")
            db.execute("DELETE FROM links")
            db.execute("DELETE FROM marks")
            db.execute("DELETE FROM meta WHERE key = 'output_offset'")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('round', ?)", (str(self._round + 1),))
            if self._next_settings is not None:  # this round writes to a new output
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'settings'",
                    (json.dumps(self._next_settings, sort_keys=True),),
                )
            (known,) = db.execute("SELECT count(*) FROM pages").fetchone()
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StateError(f"cannot write the crawl state: {exc}") from exc
        self._round += 1
        self._next_settings = None
        self._seen_digests = DigestSet(self._seen_digests.seed)
        self._loaded_seq = self._next_seq - 1
        self._on_disk = 0
        self._spilled = False
        self._pending_revisits.clear()
        self._improved.clear()
        self._request_rows.clear()
        self._output_offset = self._committed_offset = None
        self.opened = FrontierOpened(
            new=True, scheduled=0, done=0, queued=0, round=self._round, known=known
        )

    # ---------------------------------------------------------------------- opening

    def _load(self, settings: Mapping[str, Any], reset: bool, new_output: bool = False) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        if reset:
            for table in ("urls", "links", "marks", "pages", "memo_log", "meta"):
                db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("schema") in _UPGRADES:  # committed only if the state is resumed
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (_SCHEMA,))
        elif meta and meta.get("schema") != _SCHEMA:
            db.execute("ROLLBACK")
            raise StateError(
                f"it was made by another version of trio-scrape (state schema "
                f"{meta.get('schema', '1')}, this version uses {_SCHEMA}): add --state-reset"
                " to start over"
            )
        for statement in _SCHEMA_SQL:
            db.execute(statement)
        wanted = json.loads(json.dumps(settings))  # the JSON form, as stored
        if "settings" in meta:
            stored = json.loads(meta["settings"])
            if stored != wanted and new_output and _but_output(stored) == _but_output(wanted):
                self._next_settings = wanted  # allowed if the crawl has finished: see below
            elif stored != wanted:
                db.execute("ROLLBACK")
                raise StateError(_settings_changed(stored, wanted))
        else:
            # A random seed: a site cannot craft a link whose digest is another page's.
            meta["digest_seed"] = str(secrets.randbits(64))
            db.execute(
                "INSERT INTO meta VALUES ('settings', ?), ('schema', ?), ('digest_seed', ?)",
                (json.dumps(wanted, sort_keys=True), _SCHEMA, meta["digest_seed"]),
            )
        requeued = db.execute("UPDATE marks SET state = 0 WHERE state = 1").rowcount
        # A page not done yet is fetched at its smallest depth anyway: no revisit needed.
        db.execute(
            "UPDATE marks SET depth = min(coalesce(depth, revisit), revisit), revisit = NULL"
            " WHERE revisit NOT NULL AND state = 0"
        )
        db.execute("COMMIT")
        (total,) = db.execute("SELECT coalesce(sum(count), 0) FROM links").fetchone()
        seen = self._seen_digests = DigestSet(int(meta["digest_seed"]), expected=total)
        scheduled = done = 0
        deepest = -1
        marks = db.execute(
            "SELECT seq, state, depth, referrer, revisit FROM marks ORDER BY seq"
        ).fetchall()
        next_mark = 0
        groups = db.execute("SELECT seq, kind, depth, referrer, digests, urls FROM links")
        for first, kind, depth, referrer, blob, urls_json in groups:
            digests = _unpack_digests(blob, "Q")
            seen_only = kind == _SEEN_ONLY
            seen.load(digests, first, depth << 1 | seen_only)
            self._next_seq = first + len(digests)
            if seen_only:
                deepest = max(deepest, depth)
            else:
                scheduled += len(digests)
            # The marks of this group's URLs: what was handed out, at which depth.
            urls: list[str] | None = None
            while next_mark < len(marks) and marks[next_mark][0] < self._next_seq:
                seq, state, url_depth, url_referrer, revisit = marks[next_mark]
                next_mark += 1
                digest = digests[seq - first]
                url_depth = depth if url_depth is None else url_depth
                handed_out = state in (_DONE, _SEEN) or seen_only
                seen[digest] = url_depth << 1 | handed_out
                if state == _DONE:
                    done += 1
                if handed_out:
                    deepest = max(deepest, url_depth)
                if revisit is not None:
                    urls = orjson.loads(urls_json) if urls is None else urls
                    seen[digest] = revisit << 1 | 1
                    self._pending_revisits[digest] = CrawlRequest(
                        urls[seq - first],
                        revisit,
                        referrer if url_referrer is None else url_referrer,
                        revisit=True,
                    )
        offset = meta.get("output_offset")
        self._stored_session = meta.get("session")
        self._round = int(meta.get("round", "1"))
        (known,) = db.execute("SELECT count(*) FROM pages").fetchone()
        self.opened = FrontierOpened(
            new=scheduled == 0,
            scheduled=scheduled,
            done=done,
            queued=scheduled - done + len(self._pending_revisits),
            requeued=requeued,
            output_offset=int(offset) if offset is not None else None,
            deepest=deepest,
            round=self._round,
            known=known,
        )
        self._on_disk = scheduled - done
        self._spilled = self._on_disk > 0
        if self._next_settings is not None and not self.opened.finished:
            stored = json.loads(meta["settings"])
            raise StateError(
                "its round is not finished, and writes to "
                f"{stored.get('output')!r} ({settings_changes(stored, self._next_settings)}): "
                "a new output is for a new round; run the same command to resume"
            )


# (first seq, kind, depth, referrer, urls, their digests, their sitemap lastmods)
_Group = tuple[int, int, int, str | None, list[str], "array.array[int]", list[str | None] | None]


@dataclasses.dataclass(frozen=True)
class _Changes:
    """What one commit writes."""

    groups: list[_Group]
    marks: list[tuple[int, int, int]]
    leases: dict[int, int]  # seq -> attempts, each newer than any mark of its seq
    shorter: list[tuple[int, int, str | None]]
    revisits: list[tuple[int, int, bool]]
    revisited: list[tuple[int, int]]
    output_offset: int | None
    memos: list[tuple[int, tuple[Any, ...]]]
    session: str | None = None  # the cookie jar, when it changed


def _group_row(group: _Group) -> tuple[Any, ...]:
    first, kind, depth, referrer, urls, digests, lastmods = group
    if sys.byteorder != "little":
        digests = array.array("Q", digests)
        digests.byteswap()
    return (
        first,
        kind,
        depth,
        referrer,
        _json_text(urls),
        digests.tobytes(),
        None if lastmods is None else _json_text(lastmods),
        len(urls),
    )


def _unpack_digests(blob: bytes, typecode: str = "q") -> array.array[int]:
    """A ``digests`` column's digests: as stored (``"Q"``, unsigned), or signed (``"q"``,
    as ``pages`` keys them)."""
    digests = array.array(typecode)
    digests.frombytes(blob)
    if sys.byteorder != "little":
        digests.byteswap()
    return digests


# What a read brings into the window: (origin, a request or a batch of them, how many, and for
# a scraper's request its seq and digest, else 0, 0).
_Read = tuple[str, QueueEntry, int, int, int]


def _read_queue(
    db: sqlite3.Connection, after: int, limit: int, *, memos: bool = False
) -> tuple[list[_Read], int]:
    """Up to ``limit`` queued requests with a seq above ``after``, in seq order (at the
    smaller depth a mark gives; ``memos``: with what earlier rounds remember of their pages,
    in a recrawl), and the seq read up to (done URLs skipped included).

    A run of a group's URLs that nothing sets apart (no mark, memo or lastmod, not sitemaps)
    comes as one :class:`LinkBatch` per host, as :class:`MemoryFrontier` queues a page's links:
    one string instead of a request object per URL, built while holding the GIL, kept alive
    in the window for as long as its host takes, and walked by every full garbage collection.
    """
    read: list[_Read] = []
    total = 0
    last = after
    groups = db.execute(
        "SELECT seq, kind, depth, referrer, urls, lastmods, count, digests FROM links"
        " WHERE seq >= (SELECT coalesce(max(seq), 0) FROM links WHERE seq <= ?)"
        " AND kind != ? ORDER BY seq",
        (after, _SEEN_ONLY),
    )
    for first, kind, depth, referrer, urls_json, lastmods_json, count, blob in groups:
        end = first + count - 1
        if end <= after:
            continue
        marks = {
            seq: mark
            for seq, *mark in db.execute(
                "SELECT seq, state, attempts, depth, referrer FROM marks WHERE seq BETWEEN ? AND ?",
                (max(first, after + 1), end),
            )
        }
        digests = _unpack_digests(blob) if memos else None
        remembered = _memos(db, digests) if digests is not None else {}
        if kind == _REQUESTS:
            total, last = _read_requests(
                read,
                first,
                depth,
                referrer,
                urls_json,
                blob,
                marks,
                remembered,
                after,
                limit,
                total,
            )
            if total >= limit:
                break
            continue
        urls: list[str] = orjson.loads(urls_json)
        lastmods = orjson.loads(lastmods_json) if lastmods_json else None
        sitemap = kind == _SITEMAPS
        plain: dict[str, list[str]] = {}  # by origin, in order: URLs with nothing apart
        start = max(0, after + 1 - first)
        if not marks and digests is None and lastmods is None and not sitemap:
            whole = urls[start : start + limit - total]
            origin = _one_origin(whole)
            if origin is not None:  # the whole run as one batch, without a loop per URL
                read.append((origin, LinkBatch(whole, depth, referrer), len(whole), 0, 0))
                total += len(whole)
                last = first + start + len(whole) - 1
                if total >= limit:
                    break
                continue
        for i in range(start, count):
            seq = last = first + i
            url = urls[i]
            mark = marks.get(seq) if marks else None
            memo = remembered.get(digests[i]) if digests is not None else None
            lastmod = lastmods[i] if lastmods else None
            if mark is None and memo is None and lastmod is None and not sitemap:
                run = plain.get(origin := origin_of(url))
                if run is None:
                    plain[origin] = [url]
                else:
                    run.append(url)
            else:
                url_depth, url_referrer, attempts = depth, referrer, 0
                if mark is not None:
                    state, attempts, shorter, by = mark
                    if state == _DONE:
                        continue
                    if shorter is not None:
                        url_depth, url_referrer = shorter, by
                _take_plain(read, plain, depth, referrer)  # what came before goes first
                request = CrawlRequest(
                    url, url_depth, url_referrer, attempts, None, sitemap, lastmod, memo=memo
                )
                read.append((origin_of(url), request, 1, 0, 0))
            total += 1
            if total >= limit:
                break
        _take_plain(read, plain, depth, referrer)
        if total >= limit:
            break
    return read, last


def _read_requests(
    read: list[_Read],
    first: int,
    depth: int,
    referrer: str | None,
    requests_json: str,
    blob: bytes,
    marks: Mapping[int, list[Any]],
    remembered: Mapping[int, PageMemo],
    after: int,
    limit: int,
    total: int,
) -> tuple[int, int]:
    """:func:`_read_queue` for a row of a scraper's requests: each one not done with a seq
    above ``after``, until ``total`` reaches ``limit``; return ``total`` and the last seq read."""
    values: list[dict[str, Any]] = orjson.loads(requests_json)
    digests = _unpack_digests(blob, "Q")
    last = after
    for i in range(max(0, after + 1 - first), len(values)):
        seq = last = first + i
        attempts = 0
        mark = marks.get(seq)
        if mark is not None:
            state, attempts, _, _ = mark
            if state == _DONE:
                continue
        spec = Request.from_json(values[i])
        memo = remembered.get(_signed(digests[i]))
        request = CrawlRequest(spec.url, depth, referrer, attempts, memo=memo, request=spec)
        read.append((origin_of(spec.url), request, 1, seq, digests[i]))
        total += 1
        if total >= limit:
            break
    return total, last


def _take_plain(
    read: list[_Read], plain: dict[str, list[str]], depth: int, referrer: str | None
) -> None:
    """Move runs of URLs by origin into ``read``: a batch each (a URL holding a newline, which
    a batch cannot, as requests)."""
    for origin, run in plain.items():
        if len(run) > 1 and not any("\n" in url for url in run):
            read.append((origin, LinkBatch(run, depth, referrer), len(run), 0, 0))
        else:
            read.extend((origin, CrawlRequest(url, depth, referrer), 1, 0, 0) for url in run)
    plain.clear()


def _one_origin(urls: list[str]) -> str | None:
    """The origin of all ``urls`` if they share one and hold no newline (a page's links to
    its own site, the common case: checked at C speed on the joined text), else None."""
    origin = origin_of(urls[0])
    text = "\n".join(urls)
    newlines = len(urls) - 1
    prefix = origin + "/"
    if (
        text.startswith(prefix)
        and text.count("\n") == newlines
        and text.count("\n" + prefix) == newlines
    ):
        return origin
    return None


def _memos(db: sqlite3.Connection, digests: array.array[int]) -> dict[int, PageMemo]:
    """What earlier rounds remember of the pages with these (signed) digests."""
    remembered = {}
    for digest, memo in db.execute(
        "SELECT digest, memo FROM pages WHERE digest IN (SELECT value FROM json_each(?))",
        (orjson.dumps(digests.tolist()).decode(),),
    ):
        status, etag, last_modified, sha256, links = orjson.loads(memo)
        remembered[digest] = PageMemo(status, etag, last_modified, sha256, tuple(links))
    return remembered


def _signed(digest: int) -> int:
    """An unsigned 64-bit digest as the signed integer SQLite stores."""
    return digest - (digest >> 63 << 64)


def _json_text(values: list[Any]) -> str:
    try:
        return orjson.dumps(values).decode()
    except TypeError:  # a lone surrogate in a URL: json escapes it, SQLite keeps the text
        return json.dumps(values)


def _but_output(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings but where the records go (a recrawl's round may write elsewhere)."""
    return {k: v for k, v in settings.items() if k not in ("output", "format", "records")}


def _settings_changed(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    return (
        f"it was made by a crawl with other settings ({settings_changes(stored, wanted)}): "
        "run the same command to resume, or add --state-reset to start over"
    )


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    try:
        # One crawl per state file: the exclusive lock is taken by the first write and held
        # until the connection closes, so a second crawl on the same file is refused.
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a commit survives the process dying (it is in the OS's page cache);
        # only a power loss can take back the last commits, and never tears the database.
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


@asynccontextmanager
async def open_sqlite_frontier(
    path: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    reset: bool = False,
    window: int = 10_000,
    new_output: bool = False,
) -> AsyncIterator[SqliteFrontier]:
    """Open (or create) the crawl state at ``path`` and commit to it in the background while
    the block runs; the last changes are committed on the way out, even when cancelled.

    ``settings`` are the options that define the crawl (seeds, scope, output): they are
    stored on creation and must be equal on resume. ``reset`` empties the state first.
    ``new_output`` (a recrawl): a finished crawl's next round may write to another output
    (``output`` and ``format`` may differ; the new ones are stored when the round begins).

    Raises:
        StateError: the file is not a crawl state, is in use by another crawl, or was made
            with other ``settings`` (and ``reset`` is false); or a write failed.
    """
    name = os.fspath(path)

    def open_sync() -> SqliteFrontier:
        try:
            db = _connect(name)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the crawl state {name!r}: {_explain(exc)}") from None
        frontier = SqliteFrontier(db, window=window)
        try:
            frontier._load(settings, reset, new_output)
        except sqlite3.Error as exc:
            db.close()
            raise StateError(f"cannot use the crawl state {name!r}: {_explain(exc)}") from None
        except StateError as exc:
            db.close()
            raise StateError(f"cannot resume from {name!r}: {exc}") from None
        return frontier

    frontier = await trio.to_thread.run_sync(open_sync)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(frontier.commit_forever)
            nursery.start_soon(frontier.read_forever)
            yield frontier
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
            try:
                await frontier._commit()
            finally:
                await trio.to_thread.run_sync(frontier._db.close, limiter=frontier._thread)


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text:
        return "another crawl is using it"
    if "not a database" in text:
        return "it is not a trio-scrape state file"
    return text
