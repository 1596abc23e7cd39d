"""Putting a page pipeline together: the fetcher, the renderer when pages are rendered, and
the :class:`~trio_scrape.engine.pipeline.PagePipeline` over them.

The crawler (with one process) and each worker process (``processes/child.py``) open their
pipeline here, so the two are built the same way.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from ..http.cookies import SessionJar
from ..http.fetcher import Fetcher, HttpxFetcher, open_fetcher
from ..model.config import CrawlConfig
from .pipeline import PagePipeline

if TYPE_CHECKING:
    from ..render.renderer import Renderer

__all__ = ["PageTools", "open_page_pipeline"]


@dataclasses.dataclass(frozen=True)
class PageTools:
    """What :func:`open_page_pipeline` opens."""

    fetcher: HttpxFetcher  #: plain HTTP, never rendered: robots.txt and sitemaps
    pipeline: PagePipeline  #: one attempt at a page: fetch (or render), parse, hooks, links
    renderer: Renderer | None  #: the browser behind the pipeline's fetcher, if it renders


@asynccontextmanager
async def open_page_pipeline(
    config: CrawlConfig,
    *,
    seed_hosts: Iterable[str],
    seed_origins: Iterable[str],
    transport: httpx.AsyncBaseTransport | None = None,
    write_at_once: bool = False,
    rng: random.Random | None = None,
    jar: SessionJar | None = None,
) -> AsyncIterator[PageTools]:
    """Open the fetcher (and, with ``config.rendering`` on, the renderer) for ``config`` and
    the page pipeline over them; close them all on exit.

    ``seed_hosts`` / ``seed_origins`` are exempt from the private-address guard and get the
    crawl's ``headers``; ``transport`` replaces the network (tests); ``write_at_once`` writes
    each request at once instead of in the scheduler's next pass (worker processes, whose
    pages wait on the hop anyway: see ``http/transport.py``); ``jar``, the crawl's cookies
    (default: the fetcher's own jar).

    Raises:
        ConfigError: rendering is on and no browser is installed.
    """
    seeds = {"seed_hosts": list(seed_hosts), "seed_origins": list(seed_origins)}
    async with AsyncExitStack() as stack:
        fetcher = await stack.enter_async_context(
            open_fetcher(config, transport=transport, write_at_once=write_at_once, jar=jar, **seeds)
        )
        page_fetcher: Fetcher = fetcher
        renderer = None
        if config.rendering != "off":
            # Imported only when pages are rendered: the renderer costs start-up time.
            from ..render.renderer import open_page_fetcher

            page_fetcher, renderer = await stack.enter_async_context(
                open_page_fetcher(config, fetcher, **seeds)
            )
        pipeline = PagePipeline(config, page_fetcher, sitemap_fetcher=fetcher, rng=rng)
        yield PageTools(fetcher, pipeline, renderer)
