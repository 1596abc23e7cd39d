"""Wiring a crawl to its ``--state``: open the SQLite frontier, say what is resumed, and
start the sink where the last committed record ends."""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from ..model.config import CrawlConfig
from ..output.sinks import Sink, complete_sink
from .sqlite import SqliteFrontier, open_sqlite_frontier

if TYPE_CHECKING:
    from .redis import RedisFrontier

__all__ = ["open_fleet", "open_state", "state_settings"]

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
    if resume.finished and config.recrawl:
        await frontier.start_round()
        logger.warning(
            "recrawling %s (round %d): %d pages known, asked for only if they changed",
            name,
            frontier.resume.round,
            frontier.resume.known,
        )
        resume = frontier.resume
    elif resume.finished:
        logger.warning(
            "nothing to do: the crawl in %s has finished (%d pages); "
            "add --recrawl to fetch what changed, or --state-reset to crawl again",
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
    complete_sink(sink).start(resume.output_offset or 0)
    return frontier


async def open_fleet(
    stack: AsyncExitStack,
    config: CrawlConfig,
    *,
    seeds: list[str],
    sitemaps: list[str],
    sink: Sink | None,
) -> RedisFrontier | None:
    """Join the crawl shared through Redis at ``config.frontier`` (left with ``stack``);
    return the frontier, or None when that crawl has finished.

    Raises:
        FrontierError: Redis cannot be used, or the crawl id has other settings.
    """
    from .redis import open_redis_frontier, writer_for  # imports coredis

    assert config.frontier is not None
    settings = state_settings(config, seeds=seeds, sitemaps=sitemaps, sink=sink)
    del settings["output"], settings["format"]  # each process has its own output
    frontier = await stack.enter_async_context(
        open_redis_frontier(
            config.frontier,
            config,
            settings=settings,
            crawl_id=config.crawl_id,
            writer=writer_for(sink),
            lease=config.lease,
        )
    )
    joined = frontier.joined
    if joined.finished and config.recrawl:
        began = await frontier.start_round()
        logger.warning(
            "recrawling the crawl %s (round %d%s): %d pages known, asked for only if they changed",
            frontier.crawl_id,
            frontier.round,
            "" if began else ", begun by another process",
            frontier.known,
        )
        return frontier
    if joined.finished:
        logger.warning(
            "nothing to do: the crawl %s has finished (%d pages); add --recrawl to fetch "
            "what changed (`trio-scrape export` writes its records)",
            frontier.crawl_id,
            joined.done,
        )
        return None
    if not joined.is_new:
        logger.warning(
            "joining the crawl %s: %d pages done, %d queued, %d in flight",
            frontier.crawl_id,
            joined.done,
            joined.queued,
            joined.leased,
        )
    return frontier


def state_settings(
    config: CrawlConfig, *, seeds: list[str], sitemaps: list[str], sink: Sink | None
) -> dict[str, object]:
    """What defines a resumable crawl: its seeds, its scope and where its records go."""
    follow = config.follow
    output = complete_sink(sink)
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
        # Which of a page's links are followed (see docs/reach.md).
        "frames": config.frames,
        "meta_refresh": config.meta_refresh,
        "page_robots": config.page_robots,
        "skip_rel_nofollow": config.skip_rel_nofollow,
        "dedup_canonical": config.dedup_canonical,
        "follow": None if follow is None else f"{follow.__module__}:{follow.__qualname__}",
        "output": output.name,
        "format": output.format,
        "links": config.links,
    }
