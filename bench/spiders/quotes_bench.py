"""bench/toml_spider.py's Python spider: bench/spiders/quotes_bench.toml in Python."""

from __future__ import annotations

from typing import Any

from trio_scrape import Context, Router

router = Router()
start: list[str] = []


@router.default
def listing(ctx: Context) -> Any:
    for quote in ctx.css("div.quote"):
        yield {
            "text": ctx.text_of(quote, "span.text"),
            "author": ctx.text_of(quote, "small.author"),
            "tags": [tag.text(deep=True).strip() for tag in quote.css("a.tag")],
        }
    ctx.enqueue_links("div.quote a[href*='/author/']", label="author")
    ctx.enqueue_links("li.next a")


@router.handler("author")
def author(ctx: Context) -> dict[str, Any]:
    return {
        "name": ctx.text("h3.author-title"),
        "born_date": ctx.text("span.author-born-date"),
        "born_location": ctx.text("span.author-born-location"),
    }
