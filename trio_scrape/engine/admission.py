"""What a page adds to the frontier: its links, a meta refresh, a sitemap's entries, and the
URLs that count as crawled with it (a redirect's target, its canonical URL).

:class:`Admission` decides which never-seen URL is scheduled (the scope, then ``max_pages``)
and at what depth, and hands the rest to the frontier, which keeps the seen-set and the
depth and revisit rules. It holds no per-page state: every worker calls it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence

from ..frontier.base import CompleteFrontier
from ..model.config import CrawlConfig
from ..model.page import CrawlRequest, Page, PageMemo
from ..model.request import Request
from ..model.urls import UrlScope, host_of, url_key
from .pipeline import Outcome
from .stats import Counters

__all__ = ["Admission"]

logger = logging.getLogger("trio_scrape")


class Admission:
    """Adds what an attempt found to ``frontier`` under ``config``'s scope and limits.

    ``scheduled`` URLs were scheduled before (a resumed crawl's count); with
    ``fleet_pages`` the frontier counts ``max_pages`` for the whole fleet itself.
    ``max_pages_reached()`` is called the first time ``max_pages`` refuses a URL;
    ``remember(request, memo)`` (a recrawl's frontier) keeps what a page was this round.
    """

    def __init__(
        self,
        config: CrawlConfig,
        frontier: CompleteFrontier,
        scope: UrlScope,
        counts: Counters,
        *,
        scheduled: int = 0,
        fleet_pages: bool = False,
        max_pages_reached: Callable[[], None],
        remember: Callable[[CrawlRequest, PageMemo], None] | None = None,
    ) -> None:
        self._config = config
        self._depth = config.depth
        self._frontier = frontier
        self._scope = scope
        self._counts = counts
        self.scheduled = scheduled
        self._limit = None if fleet_pages else config.max_pages
        self._max_pages_reached = max_pages_reached
        self._remember = remember
        self._canonical_keys: set[int] = set()  # dedup_canonical: hash(url_key) recorded
        self._refused_hosts: set[str] = set()  # hosts a handler's request was refused for

    async def seeds(self, urls: list[str], requests: Sequence[Request] = ()) -> None:
        """The crawl's seeds (URLs, and a scraper's start requests), at depth 0 (within
        ``max_pages``, whatever their scope)."""
        await self._frontier.add(urls, depth=0, referrer=None, keep=self.within_max_pages)
        if requests:
            await self._frontier.add_requests(
                requests, depth=0, referrer=None, keep=self.within_max_pages
            )

    async def sitemaps(self, urls: list[str], *, depth: int, referrer: str | None) -> None:
        """Sitemaps to read; they may be on any host (the pages they list are scope-checked)."""
        if urls:
            await self._frontier.add(
                urls, depth=depth, referrer=referrer, keep=self.within_max_pages, sitemap=True
            )

    async def outcome(self, request: CrawlRequest, outcome: Outcome, page: Page) -> None:
        """Add what a finished attempt at ``request`` found (``page`` is its record)."""
        frontier = self._frontier
        revisit = request.depth < self._depth  # see Frontier.add: keeps --depth exact
        if outcome.seen is not None:
            # Before the page's links: a link to the redirect's target (the page itself, as
            # its href="#top") is then seen, not queued and fetched a second time.
            await frontier.mark_seen([outcome.seen], depth=request.depth)
        if outcome.sitemap is not None:
            await self._sitemap_entries(request, outcome, page)
        if self._config.dedup_canonical and page.ok:
            await self._dedup_canonical(request, page, outcome)
        if outcome.refresh is not None:
            # A meta refresh with no delay is a redirect: no hop spent, even at the limit.
            await frontier.add(
                [outcome.refresh],
                depth=request.depth,
                referrer=request.url,
                keep=self.schedules,
                revisit=revisit,
            )
        if outcome.links:
            # A link already handed out at a larger depth gets a revisit when its own links
            # would now be followed. (A fleet adds them with the page's completion.)
            await frontier.add_links(
                request,
                outcome.links,
                depth=outcome.links_depth,
                keep=self.schedules,
                revisit=outcome.links_depth < self._depth,
            )
        if outcome.requests:  # what the page's handler enqueued
            # A plain GET (no label, data, headers, body or key of its own) is a link: it
            # takes the links' path (a frontier's cheapest), and is the same page as one.
            plain = [r.url for r in outcome.requests if r.is_plain]
            if plain:
                await frontier.add_links(
                    request,
                    plain,
                    depth=outcome.links_depth,
                    keep=self.schedules,
                    revisit=outcome.links_depth < self._depth,
                )
            if len(plain) < len(outcome.requests):
                await frontier.add_requests(
                    [r for r in outcome.requests if not r.is_plain],
                    depth=outcome.links_depth,
                    referrer=request.url,
                    keep=self._schedules_request,
                )
        memo = outcome.memo if outcome.memo is not None else request.memo
        if memo is not None and self._remember is not None and not request.revisit:
            self._remember(request, memo)  # before its done mark; a failure keeps the last memo

    async def _sitemap_entries(self, request: CrawlRequest, outcome: Outcome, page: Page) -> None:
        entries = outcome.sitemap
        assert entries is not None
        out_of_scope: collections.Counter[str] = collections.Counter()

        def keep(url: str) -> bool:
            if not self._scope.allows(url):
                out_of_scope[host_of(url)] += 1
                return False
            return self.within_max_pages(url)

        await self._frontier.add(
            entries.pages,
            depth=request.depth,
            referrer=request.url,
            keep=keep,
            lastmods=entries.lastmods,
            revisit=request.depth < self._depth,
        )
        if out_of_scope:
            _warn_out_of_scope(request.url, len(entries.pages), out_of_scope)
            if isinstance(page.data.get("sitemap"), dict):
                page.data["sitemap"]["out_of_scope"] = out_of_scope.total()
        await self.sitemaps(entries.sitemaps, depth=request.depth, referrer=request.url)

    async def _dedup_canonical(self, request: CrawlRequest, page: Page, outcome: Outcome) -> None:
        """With ``dedup_canonical``: a page's canonical URL counts as crawled; a page whose
        canonical URL was crawled already (or declared by a page before) is a duplicate:
        ``data.duplicate_of`` says of what, and its links are not followed."""
        canonical = outcome.canonical
        own = hash(url_key(request.url))
        if canonical is not None:
            key = hash(url_key(canonical))
            if key != own:
                if key in self._canonical_keys:
                    page.data["duplicate_of"] = canonical
                    outcome.links = []
                else:
                    self._canonical_keys.add(key)
                    await self._frontier.mark_seen([canonical], depth=request.depth)
        self._canonical_keys.add(own)

    def schedules(self, url: str) -> bool:
        """Whether a never-seen link is scheduled: in scope, and within ``max_pages``."""
        return self._scope.allows(url) and self.within_max_pages(url)

    def _schedules_request(self, url: str) -> bool:
        """:meth:`schedules` for a request a handler made (not a link): one out of scope is
        logged (at debug level, once per host, as Scrapy's offsite filter does), since a
        handler asked for it by name."""
        if self._scope.allows(url):
            return self.within_max_pages(url)
        host = host_of(url)
        if host not in self._refused_hosts and len(self._refused_hosts) < _REFUSED_HOSTS:
            self._refused_hosts.add(host)
            logger.debug(
                "a handler's request to %s is out of the crawl's scope, not queued (and no "
                "more are logged for %s): --scope, --allow-host, --include and --exclude "
                "decide the scope",
                url,
                host,
            )
        return False

    def within_max_pages(self, url: str) -> bool:
        """Whether a never-seen URL is scheduled under ``max_pages`` (and count it if so).

        ``max_pages`` limits the URLs scheduled, not dispatches: so a page's retries and its
        record are never cut off, and the crawl ends by itself once those pages are done."""
        limit = self._limit
        if limit is None:
            return True
        if self.scheduled >= limit:
            self._max_pages_reached()
            self._counts.refused.add(hash(url))
            return False
        self.scheduled += 1
        return True


#: Hosts whose refused requests are logged, at most (a handler's every request may be to a
#: new host).
_REFUSED_HOSTS = 1000


def _warn_out_of_scope(sitemap: str, listed: int, hosts: collections.Counter[str]) -> None:
    """Say that a sitemap's pages were left out by the scope: a staging copy whose sitemap
    names the production host would otherwise crawl nothing and say nothing."""
    shown = ", ".join(f"{host} ({count:,})" for host, count in hosts.most_common(5))
    more = f" and {len(hosts) - 5:,} more hosts" if len(hosts) > 5 else ""
    logger.warning(
        "sitemap %s: %s of its %s pages are out of scope and not crawled: %s%s "
        "(--scope, --allow-host, --include and --exclude decide the scope)",
        sitemap,
        f"{hosts.total():,}",
        f"{listed:,}",
        shown,
        more,
    )
