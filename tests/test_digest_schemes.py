"""The three URL digest schemes (frontier/digests.py). The two stable ones are stored (state
files, Redis keys): their values are pinned here, so a change to either fails loudly."""

from __future__ import annotations

from trio_scrape import MemoryFrontier
from trio_scrape.frontier import redis
from trio_scrape.frontier.digests import (
    DigestSet,
    memory_digest,
    redis_digest,
    state_digest,
    url_digest,
)
from trio_scrape.model.urls import url_key

URL = "http://x.test/a?b=1&a=2"
SAME_PAGE = "http://x.test/a?a=2&b=1"  # another spelling: one key, one digest


def test_the_fleet_digest_is_pinned() -> None:
    assert url_digest(URL) == -7318668573364221429
    assert redis_digest(URL) == "9a6eddb55fcf8a0b"
    assert redis_digest(URL) == format(url_digest(URL) & (1 << 64) - 1, "016x")
    assert redis._digest is redis_digest  # what the Redis frontier keys by


def test_the_state_digest_is_pinned_and_seeded() -> None:
    assert state_digest(URL, 42) == 11108875098653861643
    assert DigestSet(42).digest(URL) == state_digest(URL, 42)
    assert state_digest(URL, 43) != state_digest(URL, 42)


def test_every_scheme_keys_by_the_canonical_key() -> None:
    for digest in (memory_digest, url_digest, redis_digest, lambda u: state_digest(u, 7)):
        assert digest(URL) == digest(SAME_PAGE)
    assert memory_digest(URL) == hash(url_key(URL))


async def test_the_memory_frontier_inlines_memory_digest() -> None:
    frontier = MemoryFrontier()
    await frontier.add([URL, "http://x.test/plain"], depth=0, referrer=None)
    assert frontier._seen.keys() == {memory_digest(URL), memory_digest("http://x.test/plain")}
