"""The depth and revisit rules: Python (frontier/depths.py, used by the memory and SQLite
frontiers) and Lua (redis_scripts.lua, run atomically in Redis) agree on the same inputs."""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from trio_scrape.frontier.depths import found_again, lease_depth, seen_value
from trio_scrape.frontier.redis import _decode_request, _encode_request, _text
from trio_scrape.frontier.redis_open import connect
from trio_scrape.model.page import CrawlRequest

DIGEST = "0123456789abcdef"  # seen-set bucket "0123", field "456789abcdef"
URL = "http://x.test/page"
ORIGIN = "http://x.test"
REFERRER = "http://x.test/near"


def test_found_again_in_python() -> None:
    assert found_again(seen_value(2, handed_out=False), 2, True) is None  # not nearer
    queued = found_again(seen_value(3, handed_out=False), 1, True)
    assert queued is not None and (queued.value, queued.shorter, queued.revisit) == (2, True, False)
    handed = found_again(seen_value(3, handed_out=True), 1, True)
    assert handed is not None and (handed.value, handed.shorter, handed.revisit) == (3, False, True)
    moved = found_again(seen_value(3, handed_out=True), 1, False)
    assert moved is not None and (moved.shorter, moved.revisit) == (False, False)


def test_lease_depth_in_python() -> None:
    seen = {7: seen_value(1, handed_out=False)}
    improved: dict[int, tuple[int, str | None]] = {7: (1, REFERRER)}
    request = lease_depth(seen, improved, 7, CrawlRequest(URL, 3, "http://far/"))
    assert (request.depth, request.referrer, seen[7], improved) == (1, REFERRER, 3, {})


async def test_found_again_agrees_with_lua(redis_url: str) -> None:
    async with connect(redis_url) as client:
        for known_depth, handed_out, depth, revisit in itertools.product(
            range(4), (False, True), range(4), (False, True)
        ):
            prefix = f"trio-scrape:rules-{uuid.uuid4().hex[:8]}:"
            known = seen_value(known_depth, handed_out=handed_out)
            await client.hset(prefix + "s:0123", {"456789abcdef": str(known)})
            entry = _encode_request(DIGEST, CrawlRequest(URL, depth, REFERRER))
            args = ["10", "0", "0", str(depth), REFERRER, "1", "1" if revisit else "0"]
            await client.fcall("ts_add", [prefix], [*args, DIGEST, ORIGIN, entry])
            value = int(_text(await client.hget(prefix + "s:0123", "456789abcdef")))
            better = await client.hget(prefix + "better", DIGEST)
            revisit_entry = await client.hget(prefix + "rv", DIGEST)
            case = (known_depth, handed_out, depth, revisit)
            nearer = found_again(known, depth, revisit)
            if nearer is None:
                assert (value, better, revisit_entry) == (known, None, None), case
                continue
            assert value == nearer.value, case
            assert (better is not None) == nearer.shorter, case
            if better is not None:
                assert json.loads(_text(better)) == [depth, REFERRER], case
            assert (revisit_entry is not None) == nearer.revisit, case
            if revisit_entry is not None:
                _, request = _decode_request(_text(revisit_entry).partition("\t")[2])
                assert (request.depth, request.referrer, request.revisit) == (
                    depth,
                    REFERRER,
                    True,
                ), case


async def test_lease_depth_agrees_with_lua(redis_url: str) -> None:
    async with connect(redis_url) as client:
        cases: list[tuple[Any, ...]] = list(
            itertools.product(range(4), range(4), (None, 0, 1, 2, 3))
        )
        for entry_depth, known_depth, better_depth in cases:
            prefix = f"trio-scrape:rules-{uuid.uuid4().hex[:8]}:"
            known = seen_value(known_depth, handed_out=False)
            await client.hset(prefix + "s:0123", {"456789abcdef": str(known)})
            improved: dict[int, tuple[int, str | None]] = {}
            if better_depth is not None:
                better = json.dumps([better_depth, REFERRER])
                await client.hset(prefix + "better", {DIGEST: better})
                improved[1] = (better_depth, REFERRER)
            queued = CrawlRequest(URL, entry_depth, "http://far/")
            await client.rpush(prefix + "q:" + ORIGIN, [_encode_request(DIGEST, queued)])
            await client.zadd(prefix + "ready", {ORIGIN: 0})
            await client.hset(prefix + "meta", {"queued": "1"})
            args = ["10", "0", "owner", "1", "30000", "0", "0", "100"]
            answer = await client.fcall("ts_lease", [prefix], args)
            leases = answer[0]
            assert len(leases) == 3, (entry_depth, known_depth, better_depth)
            _, lua_request = _decode_request(_text(leases[1]))
            lua_value = int(_text(await client.hget(prefix + "s:0123", "456789abcdef")))

            seen = {1: known}
            request = lease_depth(seen, improved, 1, queued)
            case = (entry_depth, known_depth, better_depth)
            assert (lua_request.depth, lua_request.referrer) == (
                request.depth,
                request.referrer,
            ), case
            assert lua_value == seen[1], case
