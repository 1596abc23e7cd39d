"""The page pipeline: one attempt at a request in, one :class:`Outcome` out.

An attempt is everything a page costs apart from the crawl's bookkeeping: fetch (transport,
redirects, decoding), charset, HTML parse, selectors, the extract and follow hooks, link
resolution (browser URLs), sitemap reading, and the retry decision with its back-off.
It runs under its own page deadline (``config.timeout``).

The pipeline touches no shared state: no frontier, no host limiter, no statistics, no sink.
What the attempt means for those is in the :class:`Outcome`, a plain value the
:class:`~trio_scrape.Crawler` applies (links to queue, a redirect target to mark seen, the
host's pause before a retry, whether the attempt counts against its host). So the same
pipeline runs in the crawler's process or in a worker process, and any :class:`Fetcher`
(HTTP, a browser) can sit under it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import itertools
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import httpx
import trio

from ..errors import BrowserActionError, LoginFailed
from ..http.fetcher import (
    RETRY_STATUSES,
    Fetcher,
    FetchError,
    Response,
    backoff_delay,
    parse_retry_after,
)
from ..http.transport import PACED
from ..model.config import CrawlConfig, ExtractHook, Routes
from ..model.page import CrawlRequest, Page, PageError, PageMemo
from ..model.parse import (
    ParsedHtml,
    decode_body,
    is_html,
    is_json,
    parse_html,
    parse_sitemap,
    x_robots_directives,
)
from ..model.request import Request
from ..model.urls import MAX_LINKS_PER_PAGE, LinkResolver, browser_url, document_base
from ..model.validate import shorten
from ..render.actions import TabActions, take_screenshot
from ..render.files import file_name, open_directory, write_whole
from ..scraper.browser import BrowserSetup
from ..scraper.handlers import Context

__all__ = ["AttemptLost", "Outcome", "PagePipeline", "Pipeline", "SitemapEntries", "failed_page"]

#: How many refused items' reasons a record shows (``data.item_errors``).
_ITEM_ERRORS_SHOWN = 5

logger = logging.getLogger("trio_scrape")


class SitemapEntries(NamedTuple):
    """What a sitemap listed, as browser URLs (queued at the sitemap's own depth)."""

    pages: list[str]  #: page URLs
    lastmods: dict[str, str]  #: ``<lastmod>`` by page URL, where given
    sitemaps: list[str]  #: child sitemaps (of a sitemap index)


@dataclasses.dataclass(slots=True)
class Outcome:
    """What one attempt at a request produced, for the crawler to apply.

    Either ``page`` is the request's record, or it is ``None`` and the request is to be tried
    again after its host has paused ``retry_after`` seconds (``retry_reason`` says why).
    """

    page: Page | None = None
    retry_after: float = 0.0
    retry_reason: str = ""
    #: links (browser URLs) to queue at ``links_depth``, with the request's URL as referrer
    links: list[str] = dataclasses.field(default_factory=list)
    links_depth: int = 0
    sitemap: SitemapEntries | None = None
    #: the final URL of a redirect (browser URL), to mark seen (it was crawled)
    seen: str | None = None
    #: a meta refresh target with no delay: a redirect, queued at the request's own depth
    refresh: str | None = None
    #: the page's ``<link rel=canonical>`` (browser URL), for ``dedup_canonical``
    canonical: str | None = None
    #: seconds from sending the request to its answer or failure (None: nothing was sent)
    latency: float | None = None
    #: whether the attempt counts against its host (errors, autothrottle)
    failed: bool = False
    #: hrefs and sitemap entries that do not parse as http(s) URLs (or are too long)
    invalid_links: int = 0
    #: what a state remembers of the page for the next round of a recrawl (None: nothing new)
    memo: PageMemo | None = None
    #: requests a handler enqueued (queued at ``links_depth``, with the page as referrer)
    requests: list[Request] = dataclasses.field(default_factory=list)
    #: why the page's handler said the log-in failed (it raised ``LoginFailed``): the crawl
    #: stops (None: it did not)
    login_failed: str | None = None
    #: in a worker process, the ``Set-Cookie`` headers its responses carried, as
    #: ``(url, values)``, for the crawler's jar (None: none; see http/cookies.py)
    cookies: list[tuple[str, list[str]]] | None = None


class AttemptLost(Exception):
    """The worker process running an attempt died: its outcome is unknown (the attempt is
    counted, and the request may be tried again)."""


class Pipeline(Protocol):
    """Runs attempts at requests: :class:`PagePipeline` in this process, or a pool of worker
    processes each running one (``_processes.ProcessPipeline``)."""

    async def attempt(self, request: CrawlRequest, *, paced: bool = False) -> Outcome:
        """One attempt at ``request``; see :meth:`PagePipeline.attempt`. ``paced``: its host
        spaces requests by a delay, so the time from this call to the request reaching the
        wire must not vary (or the server would see a shorter gap than was scheduled).

        Raises:
            AttemptLost: the process running it died.
        """
        ...


class PagePipeline:
    """Makes one attempt at a request: fetch, parse, extract, resolve links.

    ``fetcher`` fetches (see :class:`Fetcher`: HTTP, or a browser that renders);
    ``sitemap_fetcher`` (default: ``fetcher``) fetches sitemaps, which are never rendered;
    ``resolver`` turns hrefs into browser URLs; ``rng`` draws back-off jitter. The
    pipeline holds no crawl state of its own beyond the resolver's cache, so one instance
    serves every worker task of a process.
    """

    def __init__(
        self,
        config: CrawlConfig,
        fetcher: Fetcher,
        *,
        sitemap_fetcher: Fetcher | None = None,
        resolver: LinkResolver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        # Handlers and ::abs() selectors resolve URLs as the page's links: from <base href>.
        self._want_base = config.router is not None or any(s.absolute for s in config.selectors)
        self._fetcher = fetcher
        self._sitemap_fetcher = fetcher if sitemap_fetcher is None else sitemap_fetcher
        self._rendering = config.rendering != "off"
        self._resolver = resolver if resolver is not None else LinkResolver()
        self._rng = rng if rng is not None else random.Random()
        # A renderer holds a page's tab through its handler (and its screenshot).
        open_page = getattr(fetcher, "open_page", None)
        self._holds = open_page is not None and (
            config.router is not None or config.screenshot is not None
        )
        self._open_page: Any = open_page
        if config.screenshot is not None and self._holds:
            open_directory(config.screenshot, "screenshot")

    async def attempt(self, request: CrawlRequest, *, paced: bool = False) -> Outcome:
        """One attempt at ``request`` under the page deadline (``paced``: its request is
        written as soon as the connection is ready, with no pass through the scheduler).

        ``request.first_try`` (trio time of this process; None: now) is when the first
        attempt began: a record's ``elapsed`` counts from it. Page failures are outcomes,
        never exceptions; cancellation propagates (the caller owns the request then).
        """
        config = self._config
        PACED.set(paced)  # a paced host's request is written at once (see _transport.PACED)
        started = trio.current_time()
        first_try = started if request.first_try is None else request.first_try
        attempt = request.attempts + 1
        outcome = Outcome(links_depth=request.depth + 1)
        error: FetchError | None = None
        response: Response | None = None
        retry_after: float | None = None
        page: Page | None = None
        with trio.move_on_after(config.timeout) as page_deadline:
            # Sitemaps are always read whole, and so is a scraper's every page: a 304 has no
            # body for its handler to take items and requests from (the output of a round
            # starts afresh). The memo still says how the page changed (_remember).
            scraping = config.router is not None
            memo = None if request.sitemap or scraping else request.memo
            spec = request.request
            # A rendered page's tab is held (``held``) while its handler runs.
            async with contextlib.AsyncExitStack() as held:
                tab: TabActions | None = None
                try:
                    if spec is None and request.sitemap:
                        validators = memo.conditional_headers() if memo is not None else None
                        response = await self._sitemap_fetcher.fetch(
                            request.url, headers=validators
                        )
                    elif self._holds and (
                        spec is None or (spec.method == "GET" and spec.body is None)
                    ):
                        # A request's own headers and a recrawl's validators go with it (over
                        # HTTP, where --render-auto fetches the page so; a browser sends none).
                        headers = dict(spec.headers) if spec is not None and spec.headers else {}
                        if memo is not None:
                            headers.update(memo.conditional_headers())
                        response, tab = await held.enter_async_context(
                            self._open_page(
                                request.url,
                                self._setup(request.url, spec),
                                headers=headers or None,
                            )
                        )
                    elif spec is None:
                        validators = memo.conditional_headers() if memo is not None else None
                        response = await self._fetcher.fetch(request.url, headers=validators)
                    else:
                        response = await self._fetch_request(spec, memo)
                except FetchError as exc:
                    error = exc
                outcome.latency = trio.current_time() - started
                outcome.failed = attempt_failed(response, error)
                if response is not None:
                    if response.status in RETRY_STATUSES and attempt <= config.retries:
                        retry_after = parse_retry_after(response.fields.get("retry-after"))
                    elif response.status == 304 and memo is not None:
                        page = self._new_page(request, response)
                        self._unchanged(page, request, memo, response, outcome)
                    else:
                        page = self._new_page(request, response)
                        if tab is not None and config.screenshot is not None:
                            await self._screenshot(page, tab)
                        await self._process(page, request, outcome, response.fields, tab)
                        if tab is not None:
                            page.data.update(tab.record())
                        if (config.state or config.frontier) is not None and not request.sitemap:
                            self._remember(page, request, response, outcome)

        if outcome.latency is None:  # the deadline passed before the fetch ended
            outcome.latency = trio.current_time() - started
            outcome.failed = True
        if page is not None:
            page.elapsed = trio.current_time() - first_try
            if page_deadline.cancelled_caught:  # the deadline passed in parse or hooks
                page.error = PageError(
                    "timeout", f"page deadline of {config.timeout:g}s passed in extraction"
                )
                if config.router is None:  # a handler's plain GETs are kept, as its requests
                    outcome.links = []
                outcome.sitemap = None
            elif page.final_url and page.final_url != request.url:
                # A redirect's target counts as crawled: a later link to it is not fetched
                # again (site-wide http -> https redirects would otherwise double every page).
                try:
                    outcome.seen = browser_url(page.final_url)
                except ValueError:
                    pass
            outcome.page = page
            return outcome

        if page_deadline.cancelled_caught:
            error = FetchError("timeout", f"page deadline of {config.timeout:g}s passed")
        retryable = response is not None or (error is not None and error.retryable)
        delay = backoff_delay(attempt, base=config.backoff, cap=config.max_backoff, rng=self._rng)
        elapsed = trio.current_time() - first_try
        if retry_after is not None:
            if retry_after > config.max_retry_after:
                assert response is not None
                outcome.page = failed_page(
                    request,
                    PageError(
                        "http_status",
                        f"HTTP {response.status} with Retry-After {retry_after:g}s, "
                        f"over max_retry_after={config.max_retry_after:g}s",
                    ),
                    elapsed=elapsed,
                    response=response,
                )
                return outcome
            delay = max(delay, retry_after)
        if not retryable or attempt > config.retries:
            assert error is not None
            outcome.page = page = failed_page(
                request, PageError(error.kind, error.message), elapsed=elapsed
            )
            if error.status is not None:  # an answer came, and its body failed
                page.final_url, page.status = error.final_url, error.status
                page.content_type = error.content_type
            return outcome
        outcome.retry_after = delay
        outcome.retry_reason = (
            error.message if error else f"HTTP {response.status if response else '?'}"
        )
        return outcome

    def _setup(self, url: str, spec: Request | None) -> BrowserSetup | None:
        """The browser settings of the route a page's request goes to (None: the crawl's)."""
        finder = getattr(self._config.router, "browser_setup_for", None)
        if finder is None:
            return None
        setup = finder(None if spec is None else spec.label, url)
        return setup if isinstance(setup, BrowserSetup) else None

    async def _screenshot(self, page: Page, tab: TabActions) -> None:
        """``--screenshot``: the page's PNG into the directory, its path into ``data``."""
        assert self._config.screenshot is not None
        path = os.path.join(self._config.screenshot, file_name(page.url, ".png"))
        try:
            data, clipped = await take_screenshot(tab.cdp, tab.session)
            await write_whole(path, data)
        except (BrowserActionError, OSError) as exc:
            page.data["screenshot_error"] = str(exc)
            return
        page.data["screenshot"] = path
        if clipped:
            page.data["screenshot_clipped"] = True

    async def _fetch_request(self, spec: Request, memo: PageMemo | None) -> Response:
        """A scraper's request: its method, headers and body. One with a body, or another
        method than GET, goes over plain HTTP (a browser renders GETs only) and is never
        conditional (a recrawl sends a POST again)."""
        headers = dict(spec.headers) if spec.headers else {}
        if spec.method == "GET" and spec.body is None:
            if memo is not None:
                headers.update(memo.conditional_headers())
            return await self._fetcher.fetch(spec.url, headers=headers or None)
        return await self._sitemap_fetcher.fetch(
            spec.url, headers=headers or None, method=spec.method, body=spec.body
        )

    def _new_page(self, request: CrawlRequest, response: Response) -> Page:
        status = response.status
        spec = request.request
        page = Page(
            url=request.url,
            depth=request.depth,
            referrer=request.referrer,
            method="GET" if spec is None else spec.method,
            label=None if spec is None else spec.label,
            final_url=response.final_url,
            status=status,
            content_type=response.fields.get("content-type"),
            bytes=len(response.content),
            fetched_at=utc_now(),
            content=response.content,
            headers=response.headers,
        )
        if request.lastmod is not None:
            page.data["lastmod"] = request.lastmod
        if self._rendering:
            note = response.render_note
            page.data["rendered"] = response.rendered if note is None else note
        if not (200 <= status < 300 or (status == 304 and request.memo is not None)):
            reason = httpx.codes.get_reason_phrase(status)
            page.error = PageError("http_status", f"HTTP {status} {reason}".rstrip())
        return page

    async def _process(
        self,
        page: Page,
        request: CrawlRequest,
        outcome: Outcome,
        fields: Mapping[str, str],
        tab: TabActions | None = None,
    ) -> None:
        """Parse the page and run the hooks; put the links to follow (or a
        sitemap's entries) in ``outcome``. ``fields``: the response's headers by name."""
        config = self._config
        if request.sitemap:
            if page.ok:
                self._read_sitemap(page, outcome)
            return
        follow = page.ok and request.depth < config.depth
        base = page.final_url or page.url  # the document's base URL; <base href> below
        html = is_html(page.content_type, page.content)
        robots: set[str] = set()
        # Asked of the dict: `in` on httpx.Headers first decodes every header (~2 us a page).
        if "x-robots-tag" in fields and page.headers is not None:
            robots = x_robots_directives(page.headers.get_list("x-robots-tag"))
        if html or _is_textual(page.content_type):
            page.text, page.encoding = decode_body(page.content, page.content_type)
        if html and page.text is not None:
            # A scraper's handlers enqueue what they follow: the page's own links are
            # resolved only when records list them or a follow hook reads them.
            want_links = page.ok and (
                config.links or config.follow is not None or (follow and config.router is None)
            )
            parsed = parse_html(
                page.text,
                want_links=want_links,
                frames=config.frames,
                skip_rel_nofollow=config.skip_rel_nofollow,
                want_base=self._want_base,
            )
            page.html = parsed.tree
            page.title = parsed.title
            base = document_base(base, parsed.base)
            if want_links:
                page.links, invalid = self._resolver.resolve(
                    base, parsed.hrefs, encoding=page.encoding
                )
                outcome.invalid_links += invalid
            robots |= parsed.robots
            if page.ok:
                self._page_level_links(page, parsed, base, follow, outcome)
        if robots:
            page.data["robots"] = sorted(robots)
            if config.page_robots and "nofollow" in robots:
                follow = False  # the page asks that its links not be followed
        if not page.ok:
            return
        if config.selectors:
            self._select(page, base)
        if config.extract is not None and not request.revisit:  # no record: no extraction
            await _run_extract(config.extract, page)
        if config.router is not None:
            if not request.revisit:  # a revisit writes no record and no items
                await self._handle(config.router, page, request, base, outcome, follow, tab)
            return
        if not follow:
            return
        if config.follow is None:
            outcome.links = page.links
            return
        try:
            chosen = _chosen_links(config.follow(page))
        except _HookResultError as exc:
            if page.error is None:
                page.error = PageError("extract", str(exc))
            return
        except Exception as exc:
            if page.error is None:
                page.error = PageError("extract", f"follow hook raised {_describe(exc)}")
            return
        # Relative links a hook returns resolve as the page's own hrefs do.
        outcome.links, invalid = self._resolver.resolve(base, chosen, encoding=page.encoding)
        outcome.invalid_links += invalid

    def _select(self, page: Page, base: str) -> None:
        """``selectors`` into ``data``: CSS on an HTML page (``::abs(href)`` resolved as
        the page's links are, from ``base``), JMESPath on a JSON answer."""
        selectors = self._config.selectors
        if page.html is not None:
            resolver = self._resolver

            def urljoin(href: str) -> str | None:
                resolved, _ = resolver.resolve(base, [href], encoding=page.encoding)
                return resolved[0] if resolved else None

            for selector in selectors:
                page.data[selector.name] = selector.extract(page.html, urljoin)
        elif is_json(page.content_type):
            try:
                value = page.json()
            except ValueError:
                return  # not JSON after all: no field can be taken
            for selector in selectors:
                page.data[selector.name] = selector.extract_json(value)

    async def _handle(
        self,
        router: Routes,
        page: Page,
        request: CrawlRequest,
        base: str,
        outcome: Outcome,
        follow: bool,
        tab: TabActions | None = None,
    ) -> None:
        """Run the page's handler (by its request's label): its items go with the page, its
        requests (when the page's links may be followed) into ``outcome``. A failure is the
        page's ``extract`` error; what the handler emitted before it is kept."""
        # A plain GET: its URL is a browser URL already (the frontier holds no other).
        spec = request.request or Request.link(request.url)
        route = router.route(spec.label)
        if route is None:
            if page.error is None:
                what = "unlabelled pages" if spec.label is None else f"label {spec.label!r}"
                page.error = PageError("extract", f"no handler for {what}")
            return
        ctx = Context(
            page, spec, base=base, resolver=self._resolver, item_type=route.item_type, browser=tab
        )
        try:
            await router.run(route, ctx)
        except trio.Cancelled:
            raise
        except LoginFailed as exc:
            outcome.login_failed = str(exc) or "the handler raised LoginFailed"
            if page.error is None:
                page.error = PageError("extract", f"log-in failed: {outcome.login_failed}")
        except Exception as exc:
            if page.error is None:
                page.error = PageError("extract", f"handler raised {_describe(exc)}")
        finally:
            page.items = ctx.items
            if ctx.item_errors:  # refused items: counted and said, never written
                page.data["invalid_items"] = len(ctx.item_errors)
                page.data["item_errors"] = ctx.item_errors[:_ITEM_ERRORS_SHOWN]
                logger.warning(
                    "%s: %d item(s) not written: %s",
                    page.url,
                    len(ctx.item_errors),
                    ctx.item_errors[0],
                )
            requests, links = ctx.enqueued()
            if follow:
                outcome.requests = requests
                if links:
                    outcome.links = links  # plain GETs: the links' path
            elif requests or links:
                page.data["requests_beyond_depth"] = len(requests) + len(links)

    def _page_level_links(
        self, page: Page, parsed: ParsedHtml, base: str, follow: bool, outcome: Outcome
    ) -> None:
        """The canonical link (into ``data.canonical``) and a meta refresh: with no delay, a
        redirect (``outcome.refresh``); with one, a link like the others."""
        config = self._config
        if parsed.canonical is not None:
            canonical, _ = self._resolver.resolve(base, [parsed.canonical], encoding=page.encoding)
            if canonical:
                page.data["canonical"] = outcome.canonical = canonical[0]
        if parsed.refresh is not None and config.meta_refresh:
            delay, href = parsed.refresh
            target, invalid = self._resolver.resolve(base, [href], encoding=page.encoding)
            outcome.invalid_links += invalid
            if target and target[0] != page.url:
                page.data["refresh"] = {"url": target[0], "delay": delay}
                if delay == 0:
                    outcome.refresh = target[0]
                elif follow and target[0] not in page.links:
                    page.links.append(target[0])

    def _unchanged(
        self,
        page: Page,
        request: CrawlRequest,
        memo: PageMemo,
        response: Response,
        outcome: Outcome,
    ) -> None:
        """A recrawl's ``304 Not Modified``: the page is as the last round fetched it, so the
        links it had are followed again as if it had been fetched."""
        page.data["change"] = "unchanged"
        page.data["sha256"] = memo.digest
        page.links = list(memo.links)
        if request.depth < self._config.depth:
            outcome.links = list(memo.links)
        fields = response.fields  # a 304 may carry fresher validators
        outcome.memo = memo._replace(
            etag=fields.get("etag", memo.etag),
            last_modified=fields.get("last-modified", memo.last_modified),
        )

    def _remember(
        self, page: Page, request: CrawlRequest, response: Response, outcome: Outcome
    ) -> None:
        """What the state keeps of a fetched page (its validators, the SHA-256 of its body,
        the links it followed), and, in a recrawl, how the page changed since the last round."""
        digest = hashlib.sha256(response.content).hexdigest()
        page.data["sha256"] = digest
        fields = response.fields
        outcome.memo = PageMemo(
            response.status,
            fields.get("etag"),
            fields.get("last-modified"),
            digest,
            # A scraper's pages are fetched whole every round (a handler's links: not kept).
            tuple(outcome.links) if self._config.router is None else (),
        )
        if not self._config.recrawl or request.revisit:
            return
        memo = request.memo
        if memo is None:
            change = "new"
        elif response.status in (404, 410):
            change = "gone"
        elif response.status == memo.status and digest == memo.digest:
            change = "unchanged"  # a server without validators, or with wrong ones
        else:
            change = "changed"
        page.data["change"] = change

    def _read_sitemap(self, page: Page, outcome: Outcome) -> None:
        """Read what a fetched sitemap lists; its record says how much (``data.sitemap``)."""
        try:
            sitemap = parse_sitemap(page.content, max_bytes=self._config.max_bytes)
        except ValueError as exc:
            page.error = PageError("sitemap", f"cannot read the sitemap: {exc}")
            return
        lastmods: dict[str, str] = {}
        pages: list[str] = []
        for loc, lastmod in sitemap.pages:
            try:
                url = browser_url(loc)
            except ValueError:
                outcome.invalid_links += 1
                continue
            if lastmod:
                lastmods[url] = lastmod
            pages.append(url)
        children, invalid = browser_urls(sitemap.sitemaps)
        outcome.invalid_links += invalid
        outcome.sitemap = SitemapEntries(pages, lastmods, children)
        page.data["sitemap"] = {
            "kind": sitemap.kind,
            "pages": len(sitemap.pages),
            "sitemaps": len(sitemap.sitemaps),
        }


def browser_urls(urls: list[str]) -> tuple[list[str], int]:
    """The browser URLs of URLs a sitemap or robots.txt gave, and how many are not http(s)
    URLs (they are left out)."""
    valid = []
    invalid = 0
    for url in urls:
        try:
            valid.append(browser_url(url))
        except ValueError:
            invalid += 1
    return valid, invalid


def failed_page(
    request: CrawlRequest,
    error: PageError,
    *,
    elapsed: float = 0.0,
    response: Response | None = None,
) -> Page:
    """The record of a request that failed (``elapsed``: since its first attempt began): like a
    fetched page's, it says which request it was (method, label)."""
    spec = request.request
    page = Page(
        url=request.url,
        depth=request.depth,
        referrer=request.referrer,
        method="GET" if spec is None else spec.method,
        label=None if spec is None else spec.label,
        fetched_at=utc_now(),
        elapsed=elapsed,
        error=error,
    )
    if response is not None:
        page.final_url = response.final_url
        page.status = response.status
        page.content_type = response.fields.get("content-type")
        page.bytes = len(response.content)
    return page


def attempt_failed(response: Response | None, error: FetchError | None) -> bool:
    """Whether an attempt counts against its host (errors, pauses, autothrottle): no answer in
    time, a failed connection, or a 429/5xx answer; a 404 or a too-large body does not."""
    if response is not None:
        return response.status in RETRY_STATUSES or response.status >= 500
    return error is None or error.retryable


_second_text: tuple[int, str] = (-1, "")


def utc_now() -> str:
    """The time now as ``2026-11-24T22:43:05.123Z``; the text up to the second is formatted
    once per second (it cost 2% of a crawl's CPU formatted for every page)."""
    global _second_text
    now = time.time()
    second = int(now)
    if second != _second_text[0]:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_text = (second, text)
    return f"{_second_text[1]}.{int((now - second) * 1000):03d}Z"


def _is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media.endswith(("json", "xml"))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _run_extract(extract: ExtractHook, page: Page) -> None:
    """Merge what the extract hook returns into ``page.data``; a hook that raises, or returns
    something other than a mapping (or None), gives the page an ``extract`` error."""
    try:
        data = extract(page)
        if inspect.isawaitable(data):
            data = await data
        if data is not None and not isinstance(data, Mapping):
            page.error = PageError("extract", f"extract hook returned {shorten(data)}, not a dict")
            return
        if data:
            page.data.update(data)
    except Exception as exc:
        page.error = PageError("extract", f"extract hook raised {_describe(exc)}")


class _HookResultError(Exception):
    """A hook returned something it may not: the page gets an ``extract`` error."""


def _chosen_links(result: object) -> list[str]:
    """The URLs a follow hook returned, at most ``MAX_LINKS_PER_PAGE`` of them (as for a
    page's own links; a hook may return an endless generator).

    Raises:
        _HookResultError: the result is not an iterable of strings (a string itself would
            be followed letter by letter).
    """
    if inspect.iscoroutine(result):
        result.close()  # an async follow hook: never awaited, so say so without a warning
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise _HookResultError(f"follow hook returned {shorten(result)}, not a list of URLs")
    links = []
    for item in itertools.islice(result, MAX_LINKS_PER_PAGE):
        if not isinstance(item, str):
            raise _HookResultError(f"follow hook returned {shorten(item)} among its URLs")
        links.append(item)
    return links
