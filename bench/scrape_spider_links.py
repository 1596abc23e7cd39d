"""bench/scrape_spider.py without its items: every link followed with ``ctx.enqueue_links``,
nothing else. bench/scrape.py's ``links`` run, which splits the scraper's cost per page
between following links as a spider does and extracting items."""

from __future__ import annotations

from trio_scrape import Context, Router

router = Router()


@router.default
def links(ctx: Context) -> None:
    ctx.enqueue_links("a")
