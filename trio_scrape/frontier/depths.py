"""The depth and revisit rules of the Python frontiers, in one place (see :meth:`Frontier.add
<trio_scrape.frontier.base.Frontier.add>`): the memory frontier and the SQLite one (which is
the memory one with a window on its disk) both apply these. The Redis frontier applies the
same rules in Lua (``redis_scripts.lua``: ``ts_add``, ``hand_out``, ``queue_revisits``), since
there they must run atomically on the server; tests/test_depth_rules.py feeds both the same
inputs and checks that they agree.

A seen-set keeps, per URL digest, one integer: ``depth << 1 | handed_out``, the URL's shortest
known depth and whether it was handed out (leased, done, marked seen) or is still queued.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from ..model.page import CrawlRequest

__all__ = ["Nearer", "SeenDepths", "found_again", "lease_depth", "seen_value"]


class SeenDepths(Protocol):
    """A seen-set that knows each URL's ``depth << 1 | handed_out``, by the URL's digest."""

    def get(self, digest: int, /) -> int | None: ...

    def __setitem__(self, digest: int, value: int, /) -> None: ...


def seen_value(depth: int, *, handed_out: bool) -> int:
    """What a seen-set keeps for a URL at ``depth``."""
    return depth << 1 | handed_out


class Nearer(NamedTuple):
    """What changes when a seen URL is found again at a smaller depth."""

    value: int  #: its new seen value: the new depth, handed out or not as before
    shorter: bool  #: still queued: hand it out at the new depth, with the new referrer
    revisit: bool  #: handed out, and a revisit was asked for: queue one at the new depth


def found_again(known: int, depth: int, revisit: bool) -> Nearer | None:
    """A URL seen before (seen value ``known``) found again at ``depth``, with ``revisit``
    asked for or not: what changes, or None when ``depth`` is not smaller than its known
    depth (nothing does)."""
    if known >> 1 <= depth:
        return None
    handed_out = bool(known & 1)
    return Nearer(seen_value(depth, handed_out=handed_out), not handed_out, handed_out and revisit)


def lease_depth(
    seen: SeenDepths,
    improved: dict[int, tuple[int, str | None]],
    digest: int,
    request: CrawlRequest,
) -> CrawlRequest:
    """Mark a request's URL handed out, and hand it out at the smallest depth (with its
    referrer) found while it was queued (``improved``: digest -> that depth and referrer)."""
    if improved:
        better = improved.pop(digest, None)
        if better is not None and better[0] < request.depth:
            request = request._replace(depth=better[0], referrer=better[1])
    known = seen.get(digest)
    depth = request.depth if known is None else min(known >> 1, request.depth)
    seen[digest] = seen_value(depth, handed_out=True)
    return request
