from __future__ import annotations

import os

import pytest
import trio

from .site import Site


@pytest.fixture
async def site(nursery: trio.Nursery) -> Site:
    """A fresh loopback HTTP server for one test; it stops when the test ends."""
    server = Site()
    await nursery.start(server.serve)
    return server


def examples(default: int) -> int:
    """Hypothesis examples for a fuzz-style test: ``default`` in the suite (a few seconds),
    or ``FUZZ_EXAMPLES`` for a long session (see docs/hardening.md)."""
    return int(os.environ.get("FUZZ_EXAMPLES", default))


from .redis_server import redis_url as redis_url  # noqa: E402  (a session fixture)
