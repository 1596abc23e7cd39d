"""The session tests' spider (a module, so worker processes import its router): the
example log-in spider's start-up step and log-in handler, a listing handler whose items say
which process handled the page, and a handler that follows a page to another origin."""

from __future__ import annotations

import os
from typing import Any

from examples import quotes_login_spider
from trio_scrape import Context, Request, Router

router = Router()
router.on_start(quotes_login_spider.log_in)
router.add("login", quotes_login_spider.login)


@router.default
def listing(ctx: Context) -> Any:
    for item in quotes_login_spider.listing(ctx):
        yield {**item, "pid": os.getpid()} if isinstance(item, dict) else item


@router.handler("hop")
def hop(ctx: Context) -> Any:
    """Say which process fetched the page; go on to ``data["next"]`` (another origin)."""
    yield {"url": ctx.page.url, "pid": os.getpid()}
    if ctx.data.get("next"):
        yield Request(ctx.data["next"], label="hop")


#: A router with no start-up step, for the jar's own tests.
plain = Router()
plain.add("hop", hop)
