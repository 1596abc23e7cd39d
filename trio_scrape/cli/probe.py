"""Tools for writing selectors: ``trio-scrape shell URL`` and ``trio-scrape parse URL``.

Both fetch one page with the crawl's own pipeline (so ``--header``, ``--user-agent``,
``--proxy``, ``--render``... apply as they do to a crawl) and give a handler's
:class:`~trio_scrape.Context` for it: ``shell`` in an interactive Python session, ``parse`` by
running the route the page gets in a spider and printing, as JSON, what it yields.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from ..http.cookies import SessionJar
from ..model.config import CrawlConfig
from ..model.page import Page
from ..model.request import Request, RequestError
from ..model.urls import LinkResolver
from ..scraper.handlers import Context, Route
from .options import UsageError

__all__ = ["fetch_page", "parse_page", "run_shell"]


class _Capture:
    """A router for one page: runs ``inner``'s route for it (none: no handler), and keeps the
    page's Context."""

    def __init__(self, inner: Any, *, start_up: bool = True) -> None:
        self.inner = inner
        self.start_up = start_up
        self.ctx: Context | None = None
        self.routed = True

    def route(self, label: str | None) -> Any:
        found = self.inner.route(label) if self.inner is not None else None
        if found is None:
            self.routed = self.inner is None
            return Route(label, _nothing, None)
        return found

    def reference(self) -> str | None:
        return None

    def browser_setup_for(self, label: str | None, url: str) -> Any:
        """The inner router's browser settings for the page (its waits and capture)."""
        finder = getattr(self.inner, "browser_setup_for", None)
        return None if finder is None else finder(label, url)

    def startup(self, seeds: list[str]) -> list[Any]:
        """The spider's start-up step (a log-in), so the page is fetched as a crawl would."""
        if self.inner is None or not self.start_up:
            return []
        return list(self.inner.startup(seeds))

    async def run(self, route: Any, ctx: Context) -> None:
        self.ctx = ctx
        if route.handler is not _nothing:
            await self.inner.run(route, ctx)


def _nothing(ctx: Context) -> None:
    return None


@dataclasses.dataclass
class Fetched:
    page: Page
    ctx: Context
    routed: bool  # the spider has a route for the page


def fetch_page(
    request: Request,
    config: CrawlConfig,
    router: Any = None,
    *,
    jar: SessionJar | None = None,
    start_up: bool = True,
) -> Fetched:
    """Fetch one page as a crawl does (nothing followed) and run ``router``'s route on it;
    with ``jar``, the page is fetched with its cookies and the cookies it sets are kept in
    it (a session across fetches); ``start_up``: run the router's start-up step (a log-in)
    first."""
    from ..engine.crawler import Crawler

    capture = _Capture(router, start_up=start_up)
    config = dataclasses.replace(
        config,
        router=capture,
        depth=0,
        max_pages=1,
        processes=1,
        state=None,
        frontier=None,
        recrawl=False,
        state_reset=False,
    )
    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler([request], config, sink=send)
    if jar is not None:
        crawler.jar = jar
    trio.run(crawler.run)
    pages = []
    with receive:
        while True:  # the crawl sent its pages and closed the channel
            try:
                pages.append(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
    if not pages:
        raise UsageError(f"{request.url}: not fetched (robots.txt, or out of scope)")
    page = pages[0]
    ctx = capture.ctx
    if ctx is None:  # the page failed: a Context all the same, to look at what came back
        ctx = Context(page, request, base=page.final_url or page.url, resolver=LinkResolver())
    return Fetched(page, ctx, capture.routed)


def _request(url: str, label: str | None) -> Request:
    try:
        return Request(url, label=label)
    except RequestError as exc:
        raise UsageError(f"URL: {exc}") from None


# --------------------------------------------------------------------------------- parse


def parse_page(
    url: str, config: CrawlConfig, spider_path: Path, label: str | None
) -> dict[str, Any]:
    """What the spider's route yields for the page at ``url``, as a JSON object: its items,
    its requests, its ``error`` (the page's, or no route for it), and (a TOML route) the
    selectors that matched nothing."""
    from ..scraper.toml_spider import SpiderRouter, Trace
    from .spider import load_spider

    spider = load_spider(spider_path)
    router = spider.router
    trace = None
    if isinstance(router, SpiderRouter):
        trace = router.trace = Trace()
    fetched = fetch_page(_request(url, label), config, router)
    page = fetched.page
    route_name: str | None = label
    if isinstance(router, SpiderRouter):
        found = router.route_for(label, page.url)
        route_name = found.name if found is not None else None
    elif not fetched.routed:
        route_name = None  # no handler for the label
    report: dict[str, Any] = {
        "url": page.url,
        "status": page.status,
        "label": label,
        "route": route_name,
        "error": None if page.error is None else f"{page.error.kind}: {page.error.message}",
        "items": page.items,
        "requests": [r.to_json() for r in fetched.ctx.requests],
    }
    if not fetched.routed:
        what = "unlabelled pages" if label is None else f"label {label!r}"
        report["error"] = report["error"] or f"the spider has no handler for {what}"
    if trace is not None:
        report["unmatched"] = trace.unmatched()
    if page.data.get("item_errors"):
        report["item_errors"] = page.data["item_errors"]
    return report


# --------------------------------------------------------------------------------- shell

_BANNER = """trio-scrape shell: {url} ({status})
  page        the page (status, headers, text, html, json(), items...)
  ctx         a handler's Context: ctx.css(q), ctx.text(q), ctx.texts(q), ctx.json(),
              ctx.jmes(expr), ctx.urljoin(href), ctx.form(selector, values=...)
  fetch(url)  fetch another page into page and ctx (label= for a spider's route)"""


def run_shell(
    url: str,
    config: CrawlConfig,
    router: Any = None,
    *,
    interact: Callable[[dict[str, Any], str], None] | None = None,
) -> None:
    """Fetch ``url`` and open a Python session with ``page``, ``ctx`` and ``fetch``:
    IPython when installed, else the standard library's console; with stdin not a terminal,
    its lines are run as a console would (no prompts), for scripts and tests. With a
    spider's ``router``, each page fetched gets its route (its items in ``page.items``)."""
    namespace: dict[str, Any] = {}
    jar = SessionJar()  # one session: the cookies a page sets go with the next fetch

    def fetch(target: str | Request, label: str | None = None) -> None:
        """Fetch ``target`` (a URL, relative to the current page, or a Request such as
        ``ctx.form(...)`` builds) into ``page`` and ``ctx``, with the session's cookies."""
        if isinstance(target, Request):
            request = target if label is None else dataclasses.replace(target, label=label)
        else:
            url = target
            if "page" in namespace and "://" not in url:
                url = namespace["ctx"].urljoin(url)
            request = _request(url, label)
        first = "page" not in namespace  # a spider's log-in runs before the first page only
        fetched = fetch_page(request, config, router, jar=jar, start_up=first)
        namespace["page"], namespace["ctx"] = fetched.page, fetched.ctx
        page = fetched.page
        said = page.status if page.error is None else f"{page.error.kind}: {page.error.message}"
        print(f"fetched {page.url} ({said})", file=sys.stderr)

    fetch(url)
    namespace["fetch"] = fetch
    namespace["Request"] = Request
    page: Page = namespace["page"]
    banner = _BANNER.format(url=page.url, status=page.status or page.error)
    namespace["__doc__"] = banner
    (interact or _interact)(namespace, banner)


def _interact(namespace: dict[str, Any], banner: str) -> None:
    import code

    if not sys.stdin.isatty():
        console = code.InteractiveConsole(namespace)
        more = False
        for line in sys.stdin:
            more = console.push(line.rstrip("\r\n"))
        if more:
            console.push("")
        return
    print(banner, file=sys.stderr)
    try:
        from IPython import start_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        code.interact(banner="", local=namespace, exitmsg="")
        return
    start_ipython(argv=[], user_ns=namespace, display_banner=False)
