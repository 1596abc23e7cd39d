"""robots.txt: fetched once per origin before its first page, obeyed, and its ``Crawl-delay``
handed to the frontier's per-host pacing (:class:`~trio_scrape.frontier.pacing.HostLimiter`)."""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio
from protego import Protego

from ..frontier.pacing import HostLimiter
from ..http.fetcher import Fetcher, FetchError, backoff_delay
from ..model.config import CrawlConfig
from ..model.urls import origin_of

__all__ = ["ROBOTS_MAX_BYTES", "RobotsCache", "SharedRobots"]

logger = logging.getLogger("trio_scrape")

#: The most of a robots.txt that is read (Google reads 500 KiB).
ROBOTS_MAX_BYTES = 500 * 1024
_ROBOTS_ATTEMPTS = 3


class SharedRobots(Protocol):
    """robots.txt texts shared by the processes of one crawl."""

    async def robots(
        self, origin: str, fetch: Callable[[str], Awaitable[str | None]]
    ) -> str | None:
        """The text of ``origin``'s robots.txt (None: allow everything): the one stored for
        the crawl, or ``fetch(origin)``'s, stored for the others, when no one has it."""
        ...


class RobotsCache:
    """robots.txt, fetched once per origin before its first page, and obeyed.

    * 2xx: parsed with Protego (Google's matching rules) and obeyed for ``user_agent``; its
      ``Crawl-delay`` becomes the host's minimum delay in the :class:`HostLimiter`.
    * 4xx (no robots.txt, or forbidden): everything is allowed (what Google and RFC 9309 do).
    * 5xx, a connection failure or a timeout: tried again twice with back-off; then everything
      is allowed, with a warning. RFC 9309 would have a crawler assume "disallow all" while
      the server errs; a crawl run by a person at a terminal is better served by going on and
      saying so than by silently recording every page of the host as refused.

    Only the first ``ROBOTS_MAX_BYTES`` are read. Several workers meeting a new host at once
    wait for one fetch. The cache holds ``max_hosts`` origins (least recently used go first).
    With ``shared`` (a crawl shared by several processes), one process fetches each robots.txt
    and the others read its text from there.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        hosts: HostLimiter,
        config: CrawlConfig,
        *,
        rng: random.Random | None = None,
        max_hosts: int = 10_000,
        shared: SharedRobots | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._shared = shared
        self._hosts = hosts
        self._user_agent = config.user_agent
        self._timeout = config.timeout
        self._backoff = config.backoff
        self._rng = rng or random.Random()
        self._rules: collections.OrderedDict[str, Protego | None] = collections.OrderedDict()
        self._pending: dict[str, trio.Event] = {}
        self._max_hosts = max_hosts
        self.fetches = 0

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets ``user_agent`` fetch ``url`` (fetching it if need be)."""
        origin = origin_of(url)
        while origin not in self._rules:
            pending = self._pending.get(origin)
            if pending is not None:
                await pending.wait()
                continue
            self._pending[origin] = event = trio.Event()
            rules = None
            try:
                rules = await self._load(origin)
                self._rules[origin] = rules
                if len(self._rules) > self._max_hosts:
                    self._rules.popitem(last=False)
            finally:
                if rules is None:  # allow-all, or the fetch was cancelled: stop holding back
                    self._hosts.robots_loaded(origin, None)
                del self._pending[origin]
                event.set()
            break
        self._rules.move_to_end(origin)
        rules = self._rules[origin]
        if not self._hosts.robots_known(origin):  # the limiter forgot the host meanwhile
            delay = rules.crawl_delay(self._user_agent) if rules is not None else None
            self._hosts.robots_loaded(origin, float(delay) if delay else None)
        return rules is None or bool(rules.can_fetch(url, self._user_agent))

    async def sitemaps(self, origin: str) -> list[str]:
        """The ``Sitemap:`` URLs in ``origin``'s robots.txt (fetching it if need be)."""
        await self.allowed(origin + "/")
        rules = self._rules.get(origin)
        return [] if rules is None else list(rules.sitemaps)

    async def _load(self, origin: str) -> Protego | None:
        """Parsed rules, or None for "allow everything"; fetched once for the whole fleet
        when the crawl shares robots.txt (a frontier in Redis)."""
        if self._shared is not None:
            text = await self._shared.robots(origin, self._fetch_text)
        else:
            text = await self._fetch_text(origin)
        if text is None:
            return None
        rules = Protego.parse(text)
        delay = rules.crawl_delay(self._user_agent)
        self._hosts.robots_loaded(origin, float(delay) if delay else None)
        return rules

    async def _fetch_text(self, origin: str) -> str | None:
        """The robots.txt text, or None for "allow everything"."""
        self.fetches += 1
        problem = ""
        for attempt in range(1, _ROBOTS_ATTEMPTS + 1):
            with trio.move_on_after(self._timeout):
                try:
                    response = await self._fetcher.fetch(origin + "/robots.txt")
                except FetchError as exc:
                    if exc.kind in ("too_large", "blocked_address"):
                        return None  # not a robots.txt, or a host we will not fetch anyway
                    problem = f"{exc.kind}: {exc.message}"
                else:
                    if 200 <= response.status < 300:
                        return response.content[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")
                    if response.status < 500:
                        return None
                    problem = f"HTTP {response.status}"
            if not problem:
                problem = f"no answer within {self._timeout:g}s"
            if attempt < _ROBOTS_ATTEMPTS:
                await trio.sleep(backoff_delay(attempt, base=self._backoff, cap=10, rng=self._rng))
        logger.warning(
            "%s/robots.txt failed (%s): crawling %s as if it allowed everything",
            origin,
            problem,
            origin,
        )
        return None
