"""Resumable crawls: the SQLite frontier behind ``--state``.

The database is a transaction log of the crawl, not a snapshot: whatever instant the process
dies at (SIGKILL included), the last committed transaction describes a consistent crawl, and
running the same crawl again goes on from there. One table holds every URL ever seen::

    urls(digest INTEGER PRIMARY KEY,   -- url_digest(url), of its canonical key: the seen-set
         url, depth, referrer, attempts,
         state,                        -- 0 queued, 1 leased, 2 done, 3 seen (never queued)
         seq,                          -- queue order; a partial index covers queued rows
         sitemap, lastmod,             -- a sitemap to read; a sitemap's <lastmod> for it
         revisit)                      -- the depth of a pending revisit (see Frontier.add)
    meta(key PRIMARY KEY, value)       -- 'settings' (JSON), 'output_offset', 'schema'

Why it is exactly-once: a page is marked done in the same transaction as the length of the
output file once its record is in it, and a page's links are written no later than its done
mark. On resume the output is cut back to that length, leased pages go back to the queue, and
every page whose record was cut is still queued, so it is done again, once.

Why it stays fast and small: the engine never waits for the disk. Changes pile up in memory
and one background task commits them every 25 ms in a single transaction, in one worker
thread (``trio.to_thread``, one at a time). Only a window of the queue (10,000 requests) is
in memory; the rest is read back in ``seq`` order as the window drains. The seen-set in
memory is a sorted ``array`` of 8-byte digests plus a set of recent ones (about 8-20 bytes a
URL, against ~60 for a ``set`` of ints), so checking a link never touches the disk.
"""

from __future__ import annotations

import array
import bisect
import dataclasses
import heapq
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio

from ._exceptions import StateError
from ._frontier import FrontierStatistics, MemoryFrontier, _lease_depth, url_digest
from ._page import CrawlRequest

__all__ = ["ResumeInfo", "SqliteFrontier", "open_sqlite_frontier"]

logger = logging.getLogger("trio_scrape")

_QUEUED, _LEASED, _DONE, _SEEN = 0, 1, 2, 3
# 4: URLs are stored as browser URLs, keyed by the digest of their canonical key (#11).
# 3 added urls.revisit; 2 and 3 stored w3lib-canonical URLs, keyed by their digests: a
# state of another version is refused, not misread.
_SCHEMA = "4"
_COMMIT_INTERVAL = 0.025  # seconds between commits: about the most work a kill makes us redo
_MAX_PENDING = 20_000  # changes held in memory before a writer waits for a commit
_CLOSE_TIMEOUT = 30.0

_Row = tuple[int, str | None, int, str | None, int, int, int, int, str | None]

_INSERT = (
    "INSERT OR IGNORE INTO urls"
    " (digest, url, depth, referrer, attempts, state, seq, sitemap, lastmod) SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(9))
    + " FROM json_each(?)"
)
_LEASE = "UPDATE urls SET state = 1 WHERE state = 0 AND digest IN (SELECT value FROM json_each(?))"
_DONE_SQL = "UPDATE urls SET state = 2 WHERE digest IN (SELECT value FROM json_each(?))"
# A URL found at a smaller depth: a queued row takes the depth (it is fetched at it); a
# revisit pending at that depth is set when asked for (or moved there if one is pending).
# A row handed out keeps the depth it was handed out at: the crawl's deepest fetch is read
# from those (a leased row is requeued at its revisit's depth on resume).
_IMPROVE = (
    "UPDATE urls SET url = coalesce(url, ?1),"
    " depth = CASE WHEN state = 0 THEN ?2 ELSE depth END,"
    " referrer = CASE WHEN state = 0 THEN ?3 ELSE referrer END,"
    " revisit = CASE WHEN ?4 OR revisit NOT NULL THEN ?2 END WHERE digest = ?5"
)
# A revisit done ends the pending one, unless a smaller depth was found meanwhile.
_REVISITED = "UPDATE urls SET revisit = NULL WHERE digest = ? AND revisit >= ?"
_LOAD = (
    "SELECT json_group_array(json_array(digest, url, depth, referrer, attempts, state, seq,"
    " sitemap, lastmod))"
    " FROM (SELECT * FROM urls WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ?)"
)


def _json_rows(rows: list[Any]) -> str:
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # a lone surrogate in a URL: json escapes it, SQLite keeps the text
        return json.dumps(rows)


@dataclasses.dataclass(frozen=True)
class ResumeInfo:
    """What a state database held when it was opened."""

    scheduled: int  #: URLs ever scheduled (queued, leased or done)
    done: int  #: URLs whose records are written
    queued: int  #: URLs still to do (``requeued`` included)
    requeued: int  #: URLs that a stopped run had leased and that went back to the queue
    output_offset: int | None  #: length of the output file at the last commit
    deepest: int = -1  #: the largest depth a page was handed out at (-1: none was)

    @property
    def is_new(self) -> bool:
        return self.scheduled == 0

    @property
    def finished(self) -> bool:
        """The crawl has run to its end: every scheduled URL is done."""
        return self.scheduled > 0 and self.queued == 0


class _DigestSet:
    """A compact map of signed 64-bit digests to small ints (a URL's ``depth << 1 |
    handed_out``): a sorted array of digests with a parallel array of values, plus a dict of
    recent ones, merged when it passes a quarter of the arrays (merging is amortised O(1))."""

    def __init__(
        self, digests: array.array[int] | None = None, values: array.array[int] | None = None
    ) -> None:
        self._sorted: array.array[int] = digests if digests is not None else array.array("q")
        self._values: array.array[int] = values if values is not None else array.array("i")
        self._recent: dict[int, int] = {}

    def get(self, digest: int, /) -> int | None:
        value = self._recent.get(digest)
        if value is not None:
            return value
        digests = self._sorted
        i = bisect.bisect_left(digests, digest)
        if i < len(digests) and digests[i] == digest:
            return self._values[i]
        return None

    def __contains__(self, digest: int) -> bool:
        return self.get(digest) is not None

    def __setitem__(self, digest: int, value: int, /) -> None:
        if digest not in self._recent:
            digests = self._sorted
            i = bisect.bisect_left(digests, digest)
            if i < len(digests) and digests[i] == digest:
                self._values[i] = value
                return
        self.add(digest, value)

    def add(self, digest: int, value: int) -> None:
        """Add a digest known to be new (or in the recent ones)."""
        self._recent[digest] = value
        if len(self._recent) > max(16_384, len(self._sorted) // 4):
            # Merged straight into new arrays: a list of a million ints would cost 40 MB.
            pairs = zip(self._sorted, self._values, strict=True)
            merged = heapq.merge(pairs, sorted(self._recent.items()))
            digests, values = array.array("q"), array.array("i")
            for digest_, value_ in merged:
                digests.append(digest_)
                values.append(value_)
            self._sorted, self._values, self._recent = digests, values, {}

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)


class SqliteFrontier(MemoryFrontier):
    """A :class:`~trio_scrape.Frontier` kept in an SQLite database, for crawls that must
    survive being killed. Open it with :func:`open_sqlite_frontier`.

    Host scheduling is :class:`MemoryFrontier`'s, applied to the window of the queue that is
    in memory.
    """

    def __init__(self, db: sqlite3.Connection, *, window: int = 10_000) -> None:
        super().__init__()
        self._db = db
        self._thread = trio.CapacityLimiter(1)
        self._lock = trio.Lock()
        self._window = window
        self._low_water = window // 2
        self._seen_digests = _DigestSet()
        self._inserts: list[_Row] = []
        self._leases: list[int] = []
        self._releases: list[tuple[int, int]] = []
        self._dones: list[int] = []
        self._improvements: list[tuple[str, int, str | None, int, int]] = []
        self._revisits_done: list[tuple[int, int]] = []
        self._output_offset: int | None = None
        self._committed_offset: int | None = None
        self._dirty = trio.Event()
        self._next_seq = 1
        self._loaded_seq = 0
        self._on_disk = 0  # queued requests outside the window
        self.resume = ResumeInfo(0, 0, 0, 0, None)

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
        added = 0
        seen = self._seen_digests
        for url in urls:
            digest = url_digest(url)
            known = seen.get(digest)
            if known is not None:
                if known >> 1 > depth:
                    added += self._improve(digest, url, known, depth, referrer, revisit)
                continue
            if keep is not None and not keep(url):
                continue
            seen.add(digest, depth << 1)
            seq = self._next_seq
            self._next_seq += 1
            lastmod = lastmods.get(url) if lastmods else None
            self._inserts.append(
                (digest, url, depth, referrer, 0, _QUEUED, seq, int(sitemap), lastmod)
            )
            if self._spilled or self._queued >= self._window:
                self._spilled = True
                self._on_disk += 1
            else:
                self._enqueue(CrawlRequest(url, depth, referrer, 0, None, sitemap, lastmod))
                self._loaded_seq = seq
            added += 1
        if added:
            self._changed_pending()
            self._wake()
            await self._wait_if_backlogged()  # the disk sets the pace, not memory
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
        queued = not known & 1
        self._seen_digests[digest] = depth << 1 | (not queued)
        if queued:
            self._improved[digest] = (depth, referrer)
        elif revisit:
            self._pending_revisits[digest] = CrawlRequest(url, depth, referrer, revisit=True)
        self._improvements.append((url, depth, referrer, revisit and not queued, digest))
        self._changed_pending()
        return 0

    def _seen_depths(self) -> _DigestSet:
        return self._seen_digests

    async def mark_seen(self, urls: Iterable[str], *, depth: int = 0) -> None:
        for url in urls:
            digest = url_digest(url)
            if digest not in self._seen_digests:
                self._seen_digests.add(digest, depth << 1 | 1)
                self._inserts.append((digest, None, depth, None, 0, _SEEN, 0, 0, None))
                self._changed_pending()

    def _on_lease(self, request: CrawlRequest) -> CrawlRequest:
        digest = url_digest(request.url)
        self._leases.append(digest)
        self._changed_pending()
        return _lease_depth(self._seen_digests, self._improved, digest, request)

    async def release(self, requests: Sequence[CrawlRequest]) -> None:
        await super().release(requests)
        self._releases.extend((r.attempts, url_digest(r.url)) for r in requests)
        self._changed_pending()
        await self._wait_if_backlogged()

    async def done(
        self, requests: Sequence[CrawlRequest], *, output_offset: int | None = None
    ) -> None:
        await super().done(requests)
        for r in requests:
            if r.revisit:
                self._revisits_done.append((url_digest(r.url), r.depth))
            else:
                self._dones.append(url_digest(r.url))
        if output_offset is not None:
            self._output_offset = output_offset
        self._changed_pending()
        await self._wait_if_backlogged()

    def statistics(self) -> FrontierStatistics:
        return FrontierStatistics(
            queued=self._queued + self._on_disk,
            leased=self._leased,
            seen=len(self._seen_digests),
        )

    # ---------------------------------------------------------------------- the window

    async def _refill(self, *, more: bool = False) -> bool:
        room = self._window * (5 if more else 1) - self._queued
        if not self._spilled or room <= 0:
            return False
        rows = await self._commit(load=room)
        for _digest, url, depth, referrer, attempts, _state, seq, sitemap, lastmod in rows:
            assert url is not None and seq > self._loaded_seq
            request = CrawlRequest(url, depth, referrer, attempts, None, bool(sitemap), lastmod)
            self._enqueue(request)
            self._loaded_seq = seq
        self._on_disk -= len(rows)
        if not rows or self._on_disk <= 0:
            # Everything queued is in the window now (rows added while we read are in
            # the next batch, still counted in _on_disk, so the window stays spilled).
            self._spilled = self._on_disk > 0 and bool(rows)
            if not self._spilled:
                self._on_disk = 0
        if rows:
            self._wake()
        return bool(rows)

    # ------------------------------------------------------------------------- commits

    def _changed_pending(self) -> None:
        if not self._dirty.is_set():
            self._dirty.set()

    def _backlog(self) -> int:
        return (
            len(self._inserts)
            + len(self._leases)
            + len(self._releases)
            + len(self._dones)
            + len(self._improvements)
            + len(self._revisits_done)
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
            await trio.sleep(_COMMIT_INTERVAL)

    async def _commit(self, *, load: int = 0) -> list[_Row]:
        """Write every pending change in one transaction (then read up to ``load`` queued
        rows past the window). Not cancellable once the changes are taken.

        Raises:
            StateError: the database could not be written (disk full, file removed).
        """
        async with self._lock:
            batch = (
                self._inserts,
                self._leases,
                self._releases,
                self._dones,
                self._improvements,
                self._revisits_done,
                self._output_offset,
                self._loaded_seq,
                load,
            )
            if not (load or self._backlog() or self._output_offset != self._committed_offset):
                return []
            self._inserts, self._leases, self._releases, self._dones = [], [], [], []
            self._improvements, self._revisits_done = [], []
            self._committed_offset = self._output_offset
            # Shielded: once taken, the batch exists nowhere else. (Even an idle limiter is a
            # checkpoint where a cancellation would otherwise drop it.)
            with trio.CancelScope(shield=True):
                rows = await trio.to_thread.run_sync(self._write, *batch, limiter=self._thread)
        return rows

    def _write(
        self,
        inserts: list[_Row],
        leases: list[int],
        releases: list[tuple[int, int]],
        dones: list[int],
        improvements: list[tuple[str, int, str | None, int, int]],
        revisits_done: list[tuple[int, int]],
        output_offset: int | None,
        loaded_seq: int,
        load: int,
    ) -> list[_Row]:
        db = self._db
        try:
            db.execute("BEGIN")
            # One statement per kind of change, its rows passed as one JSON array: sqlite3
            # drops the GIL around every step, and with the event loop busy, taking it back
            # once per row made a 400-row commit take 350 ms instead of 2.
            if inserts:
                db.execute(_INSERT, (_json_rows(inserts),))
            if leases:
                db.execute(_LEASE, (_json_rows(leases),))
            if releases:  # retries: rare
                db.executemany(
                    "UPDATE urls SET state = 0, attempts = ? WHERE digest = ? AND state < 2",
                    releases,
                )
            if improvements:  # rare: a URL found again at a smaller depth
                db.executemany(_IMPROVE, improvements)
            if dones:  # last: a page done in this batch stays done whatever came before
                db.execute(_DONE_SQL, (_json_rows(dones),))
            if revisits_done:
                db.executemany(_REVISITED, revisits_done)
            if output_offset is not None:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('output_offset', ?)", (str(output_offset),)
                )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StateError(f"cannot write the crawl state: {exc}") from exc
        if not load:
            return []
        (loaded,) = db.execute(_LOAD, (loaded_seq, load)).fetchone()
        return [tuple(row) for row in orjson.loads(loaded)]

    # ---------------------------------------------------------------------- opening

    def _load(self, settings: Mapping[str, Any], reset: bool) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        if reset:
            db.execute("DROP TABLE IF EXISTS urls")
            db.execute("DROP TABLE IF EXISTS meta")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS urls (digest INTEGER PRIMARY KEY, url TEXT,"
            " depth INTEGER, referrer TEXT, attempts INTEGER, state INTEGER, seq INTEGER,"
            " sitemap INTEGER, lastmod TEXT, revisit INTEGER)"
        )
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("schema", _SCHEMA) != _SCHEMA:
            db.execute("ROLLBACK")
            raise StateError(
                f"it was made by another version of trio-scrape (state schema "
                f"{meta['schema']}, this version uses {_SCHEMA}): add --state-reset to start over"
            )
        db.execute("CREATE INDEX IF NOT EXISTS queued ON urls (seq) WHERE state = 0")
        db.execute("CREATE INDEX IF NOT EXISTS revisits ON urls (digest) WHERE revisit NOT NULL")
        wanted = json.loads(json.dumps(settings))  # the JSON form, as stored
        if "settings" in meta:
            stored = json.loads(meta["settings"])
            if stored != wanted:
                db.execute("ROLLBACK")
                raise StateError(_settings_changed(stored, wanted))
        else:
            db.execute(
                "INSERT INTO meta VALUES ('settings', ?), ('schema', ?)",
                (json.dumps(wanted, sort_keys=True), _SCHEMA),
            )
        requeued = db.execute("UPDATE urls SET state = 0 WHERE state = 1").rowcount
        # A page not done yet is fetched at its smallest depth anyway: no revisit needed.
        db.execute(
            "UPDATE urls SET depth = min(depth, revisit), revisit = NULL"
            " WHERE revisit NOT NULL AND state = 0"
        )
        db.execute("COMMIT")
        counts = dict(db.execute("SELECT state, count(*) FROM urls GROUP BY state").fetchall())
        (max_seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM urls").fetchone()
        digests, values = array.array("q"), array.array("i")
        deepest = -1
        for digest, depth, state in db.execute("SELECT digest, depth, state FROM urls"):
            digests.append(digest)
            values.append(depth << 1 | (state != _QUEUED))
            if state != _QUEUED and depth > deepest:
                deepest = depth
        self._seen_digests = _DigestSet(digests, values)  # rowid order is digest order: sorted
        revisits = db.execute(
            "SELECT digest, url, revisit, referrer FROM urls WHERE revisit NOT NULL"
        ).fetchall()
        for digest, url, depth, referrer in revisits:
            self._seen_digests[digest] = depth << 1 | 1
            self._pending_revisits[digest] = CrawlRequest(url, depth, referrer, revisit=True)
        offset = meta.get("output_offset")
        queued = counts.get(_QUEUED, 0)
        self.resume = ResumeInfo(
            scheduled=queued + counts.get(_DONE, 0),
            done=counts.get(_DONE, 0),
            queued=queued + len(revisits),
            requeued=requeued,
            output_offset=int(offset) if offset is not None else None,
            deepest=deepest,
        )
        self._next_seq = max_seq + 1
        self._on_disk = queued
        self._spilled = queued > 0


def _settings_changed(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    changes = [
        f"{key} was {stored.get(key)!r}, now {wanted.get(key)!r}"
        for key in sorted(set(stored) | set(wanted))
        if stored.get(key) != wanted.get(key)
    ]
    return (
        "it was made by a crawl with other settings ("
        + "; ".join(changes)
        + "): run the same command to resume, or add --state-reset to start over"
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
) -> AsyncIterator[SqliteFrontier]:
    """Open (or create) the crawl state at ``path`` and commit to it in the background while
    the block runs; the last changes are committed on the way out, even when cancelled.

    ``settings`` are the options that define the crawl (seeds, scope, output): they are
    stored on creation and must be equal on resume. ``reset`` empties the state first.

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
            frontier._load(settings, reset)
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
