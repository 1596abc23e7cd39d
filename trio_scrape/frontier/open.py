"""Opening a crawl's frontier: in memory, from its ``--state`` (SQLite) or by joining its fleet
(Redis); say what is resumed or joined, start the sink where the last committed record ends,
and give the engine the frontier, complete (:func:`~trio_scrape.frontier.base.complete`), with
one :class:`~trio_scrape.frontier.base.FrontierOpened` whatever it is."""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from ..model.config import CrawlConfig
from ..output.items import ScrapeSink
from ..output.sinks import CompleteSink, Sink, complete_sink
from .base import CompleteFrontier, Frontier, FrontierOpened, complete
from .memory import MemoryFrontier

if TYPE_CHECKING:
    pass

__all__ = ["open_frontier", "state_settings"]

logger = logging.getLogger("trio_scrape")


async def open_frontier(
    stack: AsyncExitStack,
    config: CrawlConfig,
    *,
    seeds: list[str],
    sitemaps: list[str],
    sink: Sink | None,
    frontier: Frontier | None = None,
) -> tuple[CompleteFrontier, FrontierOpened] | None:
    """Open the crawl's frontier (closed with ``stack``): ``frontier`` if given, else the
    Redis of ``config.frontier``, the state at ``config.state``, or a new
    :class:`~trio_scrape.frontier.memory.MemoryFrontier`. Return it, complete, with what it
    held; or None when its crawl has finished (and ``config.recrawl`` does not begin the next
    round). A state's sink is started where the state left it; attach the sink with the
    returned frontier's ``attach_sink`` (a fleet's records go out once committed).

    Raises:
        StateError: the state cannot be opened or belongs to a crawl with other settings.
        FrontierError: Redis cannot be used, or the crawl id has other settings.
        OutputError: the state's output is shorter than the state says (it was changed).
    """
    if frontier is not None or (config.state is None and config.frontier is None):
        view = complete(frontier if frontier is not None else MemoryFrontier())
        return view, FrontierOpened(new=True, scheduled=0, done=0, queued=0)
    if config.frontier is not None:
        return await _open_fleet(stack, config, seeds=seeds, sitemaps=sitemaps, sink=sink)
    return await _open_state(stack, config, seeds=seeds, sitemaps=sitemaps, sink=sink)


async def _open_state(
    stack: AsyncExitStack,
    config: CrawlConfig,
    *,
    seeds: list[str],
    sitemaps: list[str],
    sink: Sink | None,
) -> tuple[CompleteFrontier, FrontierOpened] | None:
    from .sqlite import open_sqlite_frontier

    assert config.state is not None
    frontier = await stack.enter_async_context(
        open_sqlite_frontier(
            config.state,
            settings=state_settings(config, seeds=seeds, sitemaps=sitemaps, sink=sink),
            reset=config.state_reset,
            new_output=config.recrawl,
        )
    )
    opened = frontier.opened
    name = os.fspath(config.state)
    if opened.finished and config.recrawl:
        await frontier.start_round()
        opened = frontier.opened
        logger.warning(
            "recrawling %s (round %d): %d pages known, asked for only if they changed",
            name,
            opened.round,
            opened.known,
        )
    elif opened.finished:
        logger.warning(
            "nothing to do: the crawl in %s has finished (%d pages); "
            "add --recrawl to fetch what changed, or --state-reset to crawl again",
            name,
            opened.done,
        )
        return None
    if not opened.new:
        logger.warning(
            "resuming the crawl in %s: %s done, %d to do (%d were in flight)",
            name,
            _pages(opened.done),
            opened.queued,
            opened.requeued,
        )
    complete_sink(sink).start(opened.output_offset or 0)
    return complete(frontier), opened


async def _open_fleet(
    stack: AsyncExitStack,
    config: CrawlConfig,
    *,
    seeds: list[str],
    sitemaps: list[str],
    sink: Sink | None,
) -> tuple[CompleteFrontier, FrontierOpened] | None:
    from .redis import RedisFrontier, writer_for
    from .sharded import open_fleet_frontier

    assert config.frontier is not None
    settings = state_settings(config, seeds=seeds, sitemaps=sitemaps, sink=sink)
    del settings["output"], settings["format"]  # each process has its own output
    settings.pop("records", None)
    frontier = await stack.enter_async_context(
        open_fleet_frontier(
            config.frontier,
            config,
            settings=settings,
            crawl_id=config.crawl_id,
            writer=writer_for(sink),
            lease=config.lease,
        )
    )
    opened = frontier.opened
    if opened.finished and config.recrawl and isinstance(frontier, RedisFrontier):
        began = await frontier.start_round()
        logger.warning(
            "recrawling the crawl %s (round %d%s): %d pages known, asked for only if they changed",
            frontier.crawl_id,
            frontier.round,
            "" if began else ", begun by another process",
            frontier.known,
        )
        stats = frontier.statistics()
        opened = FrontierOpened(
            new=True,
            scheduled=0,
            done=frontier.done_total,
            queued=stats.queued,
            leased=stats.leased,
            round=frontier.round,
            known=frontier.known,
        )
        return complete(frontier), opened
    if opened.finished:
        logger.warning(
            "nothing to do: the crawl %s has finished (%d pages); add --recrawl to fetch "
            "what changed (`trio-scrape export` writes its records)",
            frontier.crawl_id,
            opened.done,
        )
        return None
    if not opened.new:
        logger.warning(
            "joining the crawl %s: %s done, %d queued, %d in flight",
            frontier.crawl_id,
            _pages(opened.done),
            opened.queued,
            opened.leased,
        )
    return complete(frontier), opened


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
        # A scrape's page records (--records): only when written, so that the states of
        # crawls without them stay the same.
        **({"records": records} if (records := _records_of(output)) is not None else {}),
    }


def _records_of(output: CompleteSink) -> str | None:
    """Where a scrape's sink writes its page records, besides its items (None: nowhere)."""
    sink = output.sink
    return sink.records_name if isinstance(sink, ScrapeSink) else None


def _pages(count: int) -> str:
    return f"{count} page" if count == 1 else f"{count} pages"
