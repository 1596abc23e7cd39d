"""Autothrottle, Python vs Lua: HostLimiter._adapt (one process) and redis_scripts.lua's
``adapt`` (a fleet) fed one latency sequence reach the same concurrency limit at every step.

The Lua side runs through the frontier's own function, ``ts_lease``, on test keys: each
step frees one fetch with its latency (ms) and failure flag, as RedisFrontier sends them.
Needs redis-server (the ``redis_url`` fixture skips, saying so, when it is absent).
"""

from __future__ import annotations

import random
import uuid

import pytest

from trio_scrape import CrawlConfig
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.redis import _text
from trio_scrape.frontier.redis_open import connect

ORIGIN = "http://x.test"
PER_HOST = 8

Step = tuple[int, bool]  # (latency in ms, failed)

FIXED: dict[str, list[Step]] = {
    "fast": [(20, False)] * 40,
    "fast then slow": [(20, False)] * 30 + [(500, False)] * 20,
    "failures": [(20, False)] * 20 + [(20, True)] * 10 + [(20, False)] * 20,
    # Exactly twice the best plus 50 ms is not "over" it (the docstrings): still fast.
    "on the edge": [(10, False)] * 10 + [(70, False)] * 10 + [(71, False)] * 10,
    "edges everywhere": [(b, False) for b in (20, 90, 91, 90)] * 10
    + [(30, False), (110, False), (111, False)] * 10,
    "getting faster": [(400 - 10 * i, False) for i in range(35)],
}


def _random_sequences(count: int, length: int) -> dict[str, list[Step]]:
    rng = random.Random(20240601)
    latencies = [5, 10, 20, 49, 50, 51, 70, 90, 100, 150, 250, 1000, 3000]
    return {
        f"random-{i}": [(rng.choice(latencies), rng.random() < 0.1) for _ in range(length)]
        for i in range(count)
    }


SEQUENCES = {**FIXED, **_random_sequences(12, 40)}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
async def test_python_and_lua_autothrottle_agree(name: str, redis_url: str) -> None:
    sequence = SEQUENCES[name]
    limiter = HostLimiter(CrawlConfig(autothrottle=True, per_host=PER_HOST, robots=False))
    prefix = f"trio-scrape:throttle-{uuid.uuid4().hex[:8]}:"
    async with connect(redis_url) as client:
        for step, (latency_ms, failed) in enumerate(sequence):
            limiter.start(ORIGIN)
            limiter.finish(ORIGIN, latency=latency_ms / 1000, failed=failed)
            python = limiter.statistics()[ORIGIN].concurrency

            # ts_lease frees one fetch: digest, token, origin, latency ms, failed.
            args = [str(PER_HOST), "0a", "owner", "1", "30000", "0", "0", "100"]
            args += ["f" * 16, "token", ORIGIN, str(latency_ms), "1" if failed else "0"]
            await client.fcall("ts_lease", [prefix], args)
            lim = float(_text(await client.hget(prefix + "h:" + ORIGIN, "lim")))
            lua = min(PER_HOST, int(lim))
            assert python == lua, f"{name}: after step {step} ({latency_ms} ms, {failed})"
