"""Wiring a crawl to its ``--state``: open the SQLite frontier, say what is resumed, and
start the sink where the last committed record ends."""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack

from ._config import CrawlConfig
from ._sinks import Sink
from ._state import SqliteFrontier, open_sqlite_frontier

__all__ = ["open_state", "state_settings"]

logger = logging.getLogger("trio_scrape")


async def open_state(
    stack: AsyncExitStack,
    config: CrawlConfig,
    *,
    seeds: list[str],
    sitemaps: list[str],
    sink: Sink | None,
) -> SqliteFrontier | None:
    """Open the state at ``config.state`` (closed with ``stack``) and start ``sink`` where
    the state left it; return the frontier, or None when the crawl there has finished.

    Raises:
        StateError: the state cannot be opened or belongs to a crawl with other settings.
    """
    assert config.state is not None
    frontier = await stack.enter_async_context(
        open_sqlite_frontier(
            config.state,
            settings=state_settings(config, seeds=seeds, sitemaps=sitemaps, sink=sink),
            reset=config.state_reset,
        )
    )
    resume = frontier.resume
    name = os.fspath(config.state)
    if resume.finished:
        logger.warning(
            "nothing to do: the crawl in %s has finished (%d pages); "
            "add --state-reset to crawl again",
            name,
            resume.done,
        )
        return None
    if not resume.is_new:
        logger.warning(
            "resuming the crawl in %s: %d pages done, %d to do (%d were in flight)",
            name,
            resume.done,
            resume.queued,
            resume.requeued,
        )
    start = getattr(sink, "start", None)
    if start is not None:
        start(resume.output_offset or 0)
    return frontier


def state_settings(
    config: CrawlConfig, *, seeds: list[str], sitemaps: list[str], sink: Sink | None
) -> dict[str, object]:
    """What defines a resumable crawl: its seeds, its scope and where its records go."""
    follow = config.follow
    return {
        "seeds": sorted(set(seeds)),
        "depth": config.depth,
        "max_pages": config.max_pages,
        "scope": config.scope,
        "allow_hosts": list(config.allow_hosts),
        "include": list(config.include),
        "exclude": list(config.exclude),
        "sitemaps": sorted(set(sitemaps)),
        "sitemaps_from_robots": config.sitemaps_from_robots,
        "follow": None if follow is None else f"{follow.__module__}:{follow.__qualname__}",
        "output": getattr(sink, "name", None),
        "format": getattr(sink, "format", None),
        "links": config.links,
    }
