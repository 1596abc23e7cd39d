"""A spider for the loopback quotes site (examples/quotes_site.py): its whole data set.

    python examples/quotes_site.py --port 8800 &
    trio-scrape crawl examples/quotes_spider.py http://127.0.0.1:8800/ -o items.jsonl

Every page type in one file: the paginated listing (one item per quote, ten a page), the
author pages (the detail page, joined to the listing's quote through the request's data), the
JSON API behind the infinite-scroll page, and the multi-step search form that posts its hidden
view state back. Items carry a ``type``: ``quote``, ``author``, ``api_quote`` or ``search``.
"""

from __future__ import annotations

from typing import Any

from trio_scrape import Context, Request, Router

router = Router()

#: Options, as a --config file has them (the command line wins).
options = {"workers": 8}


def start() -> list[str]:
    # No start of its own: the site's URL comes from the command line.
    return []


@router.default
def listing(ctx: Context) -> Any:
    """The home page and the listing pages: one item per quote; its author's page (with the
    quote joined through data), the next page, and (from the home page) the API and the
    search form."""
    for quote in ctx.css("div.quote"):
        text = ctx.text_of(quote, "span.text")
        author = ctx.text_of(quote, "small.author")
        tags = [tag.text() for tag in quote.css("a.tag")]
        yield {"type": "quote", "text": text, "author": author, "tags": tags}
        about = quote.css_first("a[href*='/author/']")
        if about is not None and about.attributes.get("href"):
            # Each author's page once: many quotes link it (its key is its URL).
            yield Request(ctx.urljoin(about.attributes["href"] or ""), label="author")
    ctx.enqueue_links("li.next a")
    if ctx.page.url.endswith("/") and ctx.page.url.count("/") == 3:  # the home page
        yield Request(ctx.urljoin("/api/quotes?page=1"), label="api")
        yield Request(ctx.urljoin("/search"), label="search")


@router.handler("author")
def author(ctx: Context) -> dict[str, Any]:
    return {
        "type": "author",
        "name": ctx.text("h3.author-title"),
        "born_date": ctx.text("span.author-born-date"),
        "born_location": ctx.text("span.author-born-location"),
        "description": ctx.text("div.author-description"),
    }


@router.handler("api")
def api(ctx: Context) -> Any:
    """The JSON API: ten quotes a page, and the next page while ``has_next``."""
    answer = ctx.json()
    for quote in answer["quotes"]:
        yield {
            "type": "api_quote",
            "text": quote["text"],
            "author": quote["author"]["name"],
            "tags": quote["tags"],
        }
    if answer["has_next"]:
        yield Request(ctx.urljoin(f"/api/quotes?page={answer['page'] + 1}"), label="api")


@router.handler("search")
def search(ctx: Context) -> Any:
    """The search form, step by step: every author, then every tag of that author; each
    submission posts the page's hidden view state back, as a browser does."""
    step = ctx.data.get("step", 1)
    if step == 1:
        for option in ctx.css("select[name=author] option"):
            name = option.attributes.get("value") or option.text()
            if name and not name.startswith("---"):  # the "----------" placeholder
                yield ctx.form(values={"author": name}, label="search", data={"step": 2})
    elif step == 2:
        author = ctx.css_first("select[name=author] option[selected]")
        chosen = author.attributes.get("value") if author is not None else None
        for option in ctx.css("select[name=tag] option"):
            tag = option.attributes.get("value") or option.text()
            if tag and not tag.startswith("---"):
                yield ctx.form(
                    values={"tag": tag},
                    label="search",
                    data={"step": 3, "author": chosen, "tag": tag},
                )
    else:
        for quote in ctx.css("div.quote"):
            yield {
                "type": "search",
                "author": ctx.data["author"],
                "tag": ctx.data["tag"],
                "text": ctx.text_of(quote, "span.text"),
            }
