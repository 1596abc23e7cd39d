"""The scraper benchmark's trio-scrape spider (bench/scrape.py runs it): every page of the
items site (bench/scrape_site.py) gives its 10 products as items, and every link is followed.

    trio-scrape crawl bench/scrape_spider.py http://127.0.0.1:8091/index.html -o items.jsonl
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from trio_scrape import Context, Router

router = Router()


@router.default
def products(ctx: Context) -> Iterator[dict[str, Any]]:
    for product in ctx.css("div.product"):
        yield {
            "sku": ctx.text_of(product, "span.sku"),
            "name": ctx.text_of(product, "h2.name"),
            "price": ctx.text_of(product, "span.price"),
            "rating": int(ctx.text_of(product, "span.rating") or 0),
        }
    ctx.enqueue_links("a")
