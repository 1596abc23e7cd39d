"""A spider that logs in to the loopback quotes site (examples/quotes_site.py) first, then
scrapes its listing as a logged-in user sees it (each quote with its private Goodreads link).

    python examples/quotes_site.py --port 8800 &
    trio-scrape crawl examples/quotes_login_spider.py http://127.0.0.1:8800/ -o items.jsonl

The log-in is the router's start-up step (``@router.on_start``): the site's log-in form is
fetched, posted back with its per-visit CSRF token, and the page it leads to must show a
Logout link, all before the first seed is fetched. A wrong password (``QUOTES_PASSWORD``)
stops the crawl with exit code 4 and one line, instead of scraping logged-out pages; so does
a listing page that no longer shows the Logout link (the session ended mid-crawl).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urljoin

from trio_scrape import Context, Request, Router

router = Router()

#: Options, as a --config file has them (the command line wins).
options = {"workers": 8}


@router.on_start
def log_in(seeds: list[str]) -> Request:
    """The start-up step: the site's log-in form (the credentials travel in its data)."""
    credentials = {
        "username": os.environ.get("QUOTES_USER", "ada"),
        "password": os.environ.get("QUOTES_PASSWORD", "secret"),
    }
    return Request(urljoin(seeds[0], "/login"), label="login", data=credentials)


@router.handler("login")
def login(ctx: Context) -> Any:
    if ctx.request.method == "GET":  # the form: posted back with its hidden CSRF token
        return ctx.form(
            values={"username": ctx.data["username"], "password": ctx.data["password"]},
            label="login",
        )
    # The post redirects to the home page when it worked; it shows the form again otherwise.
    ctx.require("a[href='/logout']", ctx.text(".error") or "no Logout link after logging in")
    return None


@router.default
def listing(ctx: Context) -> Any:
    """A listing page: one item per quote, with its Goodreads link (logged in only)."""
    ctx.require("a[href='/logout']", f"logged out at {ctx.page.url}")
    for quote in ctx.css("div.quote"):
        goodreads = quote.css_first("a.goodreads")
        yield {
            "text": ctx.text_of(quote, "span.text"),
            "author": ctx.text_of(quote, "small.author"),
            "goodreads": None if goodreads is None else goodreads.attributes.get("href"),
        }
    ctx.enqueue_links("li.next a")
