"""Opening a Redis frontier, and reading a crawl back from Redis.

:func:`open_redis_frontier` connects (to one Redis, or to the node of a Redis Cluster that
serves the crawl's hash tag), loads the function library (``redis_scripts.lua``), joins or
starts the crawl and hands out a :class:`~trio_scrape.frontier.redis.RedisFrontier`;
:func:`connect` opens a coredis client for ``status``, ``export`` and the tests;
:func:`read_entries`, :func:`read_records` and :func:`fleet_status` read a crawl's record
stream and its state. The per-page path (leases, completions, links) is
:mod:`trio_scrape.frontier.redis`, which compiled wheels build with mypyc: what is here runs
once a crawl, or in the commands that watch one, and stays Python (async generators and
context managers, which mypyc does not compile).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import json
import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import trio

from ..errors import FrontierError
from ..model.config import CrawlConfig, RedisLocation, check_crawl_id, parse_redis_url
from .base import FrontierOpened, settings_changes
from .redis import (
    _CALL_ERRORS,
    _CALL_TIMEOUT,
    _COUNTS,
    _KEY_PREFIX,
    Client,
    RedisFrontier,
    StreamEntry,
    _client_prefix,
    _describe,
    _int,
    _stream_entry,
    _text,
    crawl_id_for,
    key_prefix,
)
from .resp import RespError, RespPool

__all__ = [
    "FleetStatus",
    "JoinInfo",
    "connect",
    "fleet_status",
    "list_crawls",
    "open_redis_frontier",
    "read_entries",
    "read_records",
]

logger = logging.getLogger("trio_scrape")

_STATUS_MAX_HOSTS = 10_000  # hosts `status` looks at (their queues and slots)


async def read_entries(
    client: Client, crawl_id: str, *, after: str = "0-0", chunk: int = 1_000
) -> AsyncIterator[StreamEntry]:
    """Every committed record of a crawl after stream entry ``after``, with its page's
    items, in commit order."""
    key = _client_prefix(client, crawl_id) + "rec"
    start = "(" + after
    while True:
        entries = await client.xrange(key, start, "+", count=chunk)
        if not entries:
            return
        for entry in entries:
            yield _stream_entry(entry.identifier, entry.field_values)
        start = "(" + _text(entries[-1].identifier)


async def read_records(
    client: Client, crawl_id: str, *, after: str = "0-0", chunk: int = 1_000
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Every committed record of a crawl after stream entry ``after``, in commit order:
    ``(entry id, writer, record)`` (:func:`read_entries` has the items too)."""
    async for entry in read_entries(client, crawl_id, after=after, chunk=chunk):
        yield entry.id, entry.writer, entry.record


# ---------------------------------------------------------------------------- opening


def _library_source() -> str:
    return (importlib.resources.files("trio_scrape.frontier") / "redis_scripts.lua").read_text()


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Client]:
    """A coredis client for ``url``, with the frontier's functions loaded.

    Raises:
        FrontierError: Redis cannot be reached, or is older than 7.0 (no Functions).
    """
    # Imported here: about 0.3 s of CPU, which a crawler process (resp.py) does without.
    import coredis
    import coredis.exceptions
    from coredis.retry import NoRetryPolicy

    location = parse_redis_url(url)
    client: Client
    if location.cluster:
        import coredis.connection

        # Commands go to the node serving their key's slot; coredis follows MOVED and ASK
        # redirections (the command did not run where it was refused) and learns the
        # cluster's layout from the nodes named.
        client = coredis.RedisCluster(
            startup_nodes=[coredis.connection.TCPLocation(h, p) for h, p in location.nodes],
            password=location.password,
            decode_responses=False,
            retry_policy=NoRetryPolicy(),  # a retried script could run twice
            connect_timeout=5,
            stream_timeout=_CALL_TIMEOUT,
        )
    else:
        client = coredis.Redis.from_url(
            location.url,
            retry_policy=NoRetryPolicy(),  # a retried script could run twice
            connect_timeout=5,
            stream_timeout=_CALL_TIMEOUT,
        )
    try:
        async with client:
            try:
                with trio.fail_after(_CALL_TIMEOUT):
                    await client.function_load(_library_source(), replace=True)
            except (coredis.exceptions.RedisError, OSError, trio.TooSlowError) as exc:
                raise FrontierError(
                    f"cannot use Redis at {location.host}:{location.port}: {_describe(exc)}"
                ) from None
            yield client
    except (coredis.exceptions.RedisError, OSError) as exc:
        raise FrontierError(
            f"cannot use Redis at {location.host}:{location.port}: {_describe(exc)}"
        ) from None
    finally:
        _close_layout(client)


def _close_layout(client: Client) -> None:
    """Close the error stream coredis 6.9's cluster layout opens and never closes (left to
    the garbage collector, it warns); nothing for a single Redis."""
    layout = getattr(getattr(client, "connection_pool", None), "cluster_layout", None)
    for end in getattr(layout, "_error_stream", ()):
        end.close()


async def _home_node(location: RedisLocation, prefix: str) -> str:
    """The ``redis://`` URL of the Redis Cluster node that serves the slot of ``prefix`` (a
    crawl's hash tag), asked of the nodes named in turn (``CLUSTER KEYSLOT`` and ``CLUSTER
    SLOTS``): a crawl's every key and call goes to that node.

    Raises:
        RespError, OSError: no node named answers, or none serves the slot.
    """
    auth = f":{quote(location.password, safe='')}@" if location.password else ""
    error: Exception = RespError("no node named")
    for host, port in location.nodes:
        pool = RespPool(f"redis://{auth}{host}:{port}/0")
        try:
            slot = int(await pool.command("CLUSTER", "KEYSLOT", prefix))
            for start, end, primary, *_ in await pool.command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    node_host = _text(primary[0]) or host  # "": the node asked
                    return f"redis://{auth}{node_host}:{int(primary[1])}/0"
            error = RespError(f"no node serves slot {slot} (is the cluster ok?)")
        except (*_CALL_ERRORS, ValueError) as exc:
            error = exc
        finally:
            with trio.CancelScope(shield=True):
                await pool.aclose()
    raise error


#: What the shared crawl held when this process joined it (the one info type of every
#: frontier).
JoinInfo = FrontierOpened


@asynccontextmanager
async def open_redis_frontier(
    url: str,
    config: CrawlConfig,
    *,
    settings: Mapping[str, Any],
    crawl_id: str | None = None,
    writer: str = "",
    lease: float = 30.0,
    tag: str | None = None,
    owner: str | None = None,
) -> AsyncIterator[RedisFrontier]:
    """Join (or start) the crawl ``crawl_id`` in the Redis at ``url``, renew this process's
    leases while the block runs, and give back the ones still held on the way out.

    ``settings`` define the crawl (seeds, scope): stored by the first process, they must be
    equal for every process that joins. ``crawl_id`` defaults to a digest of them.
    ``writer`` names this process's output file for the fleet (host and path), so a restart
    with the same command recovers it. ``tag``: on a cluster, the hash tag of one shard of a
    sharded crawl (frontier/sharded.py) instead of the crawl id; ``owner``: the process's
    name in the fleet, the same on every shard of a sharded crawl (by default, a new one).

    Raises:
        FrontierError: Redis cannot be reached or fails, or the crawl id exists with other
            settings.
    """
    wanted = json.loads(json.dumps(settings))
    crawl_id = check_crawl_id(crawl_id or crawl_id_for(wanted))
    location = parse_redis_url(url)
    node = location.url
    if location.cluster:
        # One crawl, one slot, one node: this process talks to that node only. Should the
        # slot move (resharding, failover), the node answers MOVED and the process stops.
        try:
            with trio.fail_after(_CALL_TIMEOUT):
                home = key_prefix(crawl_id if tag is None else tag, cluster=True)
                node = await _home_node(location, home)
        except (*_CALL_ERRORS, ValueError, trio.TooSlowError) as exc:
            raise FrontierError(
                f"cannot use Redis at {location.host}:{location.port}: {_describe(exc)}"
            ) from None
    redis = RespPool(node)
    try:
        with trio.fail_after(_CALL_TIMEOUT):
            await redis.command("FUNCTION", "LOAD", "REPLACE", _library_source())
    except (*_CALL_ERRORS, trio.TooSlowError) as exc:
        with trio.CancelScope(shield=True):
            await redis.aclose()
        if isinstance(exc, RespError) and "DB index is out of range" in str(exc):
            raise FrontierError(  # the URL's database: the user's to change
                f"this Redis has no database {location.db} (ERR DB index is out of range)",
                usage=True,
            ) from None
        raise FrontierError(
            f"cannot use Redis at {location.host}:{location.port}: {_describe(exc)}"
        ) from None
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(redis.aclose)
        frontier = RedisFrontier(
            redis,
            crawl_id,
            config,
            lease=lease,
            batch=max(1, min(32, config.workers // 2)),
            writer=writer,
            cluster=location.cluster,
            tag=tag,
            owner=owner,
        )
        meta = frontier._prefix + "meta"
        text = json.dumps(wanted, sort_keys=True)
        is_new = bool(await frontier._command("HSETNX", meta, "settings", text))
        stored = json.loads(_text(await frontier._command("HGET", meta, "settings")))
        # One read of every count, after the revisits: a process starting beside another must
        # not see the other's seed as scheduled but neither queued nor leased (finished).
        revisits = await frontier._command("ZCARD", frontier._prefix + "rvd")
        values = await frontier._command("HMGET", meta, *_COUNTS, "round", "known", "scheduled")
        counts, (round_, known, scheduled) = values[: len(_COUNTS)], values[len(_COUNTS) :]
        if stored != wanted:
            raise FrontierError(_settings_changed(crawl_id, stored, wanted), usage=True)
        frontier._note(counts)
        frontier.round, frontier.known = _int(round_) or 1, _int(known)
        stats = frontier.statistics()
        frontier.opened = FrontierOpened(
            new=is_new,
            scheduled=_int(scheduled),
            done=frontier.done_total,
            queued=stats.queued + revisits,
            leased=stats.leased,
            round=frontier.round,
            known=frontier.known,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(frontier.renew_forever)
                yield frontier
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(_CALL_TIMEOUT):
                try:
                    await frontier.release_all()
                    await frontier.save_writer_state()
                except FrontierError as exc:  # Redis failed: that error is the one to report
                    logger.info("could not give back leases: %s (they expire)", exc)


def _settings_changed(crawl_id: str, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    return (
        f"crawl {crawl_id} was started with other settings ({settings_changes(stored, wanted)}):"
        " run the same command to join it, or give another --crawl-id"
    )


# ---------------------------------------------------------------------------- status


@dataclasses.dataclass(frozen=True)
class FleetStatus:
    crawl_id: str
    queued: int
    leased: int
    done: int
    errors: int
    seen: int
    refused: int
    reaped: int
    records: int
    hosts: Mapping[str, tuple[int, int]]  # origin -> (queued, in flight)
    processes: Mapping[str, float]  # process -> seconds since last seen
    round: int = 1  # the recrawl round (1: the first crawl)
    #: the round's records by data.change (new, changed, unchanged, gone) and, once it is
    #: complete, pages of earlier rounds it did not reach ("unlinked")
    changes: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "crawl_id": self.crawl_id,
            "queued": self.queued,
            "leased": self.leased,
            "done": self.done,
            "errors": self.errors,
            "seen": self.seen,
            "refused": self.refused,
            "reaped": self.reaped,
            "records": self.records,
            "hosts": {o: {"queued": q, "in_flight": n} for o, (q, n) in self.hosts.items()},
            "processes": {p: round(age, 3) for p, age in self.processes.items()},
            "round": self.round,
            "changes": dict(self.changes),
        }


async def list_crawls(client: Client) -> list[str]:
    found = []
    tagged = _client_prefix(client, "") != key_prefix("")  # a cluster: trio-scrape:{ID}:
    async for key in client.scan_iter(match=_KEY_PREFIX + "*:meta", count=1000):
        name = _text(key)[len(_KEY_PREFIX) : -len(":meta")]
        if tagged:
            # A shard of a sharded crawl ({ID~K...}) is listed as its crawl's shard 0, {ID}.
            if not (name.startswith("{") and name.endswith("}")) or "~" in name:
                continue
            name = name[1:-1]
        found.append(name)
    return sorted(found)


async def fleet_status(
    client: Client, crawl_id: str, *, max_hosts: int = 50, recent: float = 60.0
) -> FleetStatus:
    """Counts of one crawl, its busiest hosts (among the first 10,000 it has queued work
    for) and the processes seen in the last ``recent`` seconds."""
    prefix = _client_prefix(client, crawl_id)
    fields = ["queued", "leased", "done", "errors", "seen", "refused", "reaped"]
    values = [_int(v) for v in await client.hmget(prefix + "meta", fields)]
    if prefix == key_prefix(crawl_id):
        now = (await client.time()).timestamp() * 1000
    else:  # a cluster: the clock of the node holding the crawl (TIME alone has no key)
        seconds, micros = await client.eval_ro("return redis.call('TIME')", [prefix + "meta"])
        now = int(seconds) * 1000 + int(micros) / 1000
    hosts: dict[str, tuple[int, int]] = {}
    origins: list[str] = []
    async for origin_key in client.sscan_iter(prefix + "known", count=1_000):
        origins.append(_text(origin_key))
        if len(origins) >= _STATUS_MAX_HOSTS:  # a bounded look, however many hosts
            break
    for origin in origins:
        queued = await client.llen(prefix + "q:" + origin)
        in_flight = _int(await client.hget(prefix + "h:" + origin, "n"))
        if queued or in_flight:
            hosts[origin] = (queued, in_flight)
    busiest = dict(sorted(hosts.items(), key=lambda kv: (-kv[1][0] - kv[1][1], kv[0]))[:max_hosts])
    procs = await client.zrangebyscore(
        prefix + "procs", now - recent * 1000, math.inf, withscores=True
    )
    processes = {_text(p): max(0.0, (now - float(score)) / 1000) for p, score in procs}
    records = await client.xlen(prefix + "rec")
    queued, leased, done, errors, seen, refused, reaped = values
    kinds = ["new", "changed", "unchanged", "gone"]
    round_, known, reached, *counts = (
        _int(v)
        for v in await client.hmget(
            prefix + "meta", ["round", "known", "reached", *(f"c:{k}" for k in kinds)]
        )
    )
    changes = dict(zip(kinds, counts, strict=True)) if round_ > 1 else {}
    if changes and queued == 0 and leased == 0:
        changes["unlinked"] = max(0, known - reached)
    return FleetStatus(
        crawl_id,
        queued,
        leased,
        done,
        errors,
        seen,
        refused,
        reaped,
        records,
        busiest,
        processes,
        round_ or 1,
        changes,
    )
