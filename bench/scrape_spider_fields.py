"""The scraper benchmark's spider without its items (bench/scrape.py's ``fields`` run): every
page's 10 products' 4 fields are read as bench/scrape_spider.py reads them, none is emitted,
and every link is followed. Against the ``links`` run it is what reading the fields costs;
against ``scrape``, what emitting and writing the items costs.
"""

from __future__ import annotations

from trio_scrape import Context, Router

router = Router()


@router.default
def fields(ctx: Context) -> None:
    for product in ctx.css("div.product"):
        ctx.text_of(product, "span.sku")
        ctx.text_of(product, "h2.name")
        ctx.text_of(product, "span.price")
        int(ctx.text_of(product, "span.rating") or 0)
    ctx.enqueue_links("a")
