from __future__ import annotations

import pytest
import trio

from .site import Site


@pytest.fixture
async def site(nursery: trio.Nursery) -> Site:
    """A fresh loopback HTTP server for one test; it stops when the test ends."""
    server = Site()
    await nursery.start(server.serve)
    return server
