"""Crawl configuration: one immutable, validated value shared by the CLI and the library."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args

from ._exceptions import ConfigError
from ._parse import Selector
from ._version import __version__

if TYPE_CHECKING:
    from ._page import Page

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "DEFAULT_WORKERS",
    "CrawlConfig",
    "ExtractHook",
    "FollowHook",
    "RenderPredicate",
    "RenderWait",
    "ScopeName",
]

DEFAULT_WORKERS = 16
DEFAULT_PER_HOST = 8
DEFAULT_TIMEOUT = 10.0
DEFAULT_GRACE = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0
DEFAULT_MAX_RETRY_AFTER = 60.0
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_REDIRECTS = 10
PROJECT_URL = "https://github.com/trio-scrape/trio-scrape"
DEFAULT_USER_AGENT = f"trio-scrape/{__version__} (+{PROJECT_URL})"

ScopeName = Literal["origin", "host", "domain", "any"]
#: When a rendered page is done: its DOM quiet for 150 ms, or its network idle for 500 ms.
RenderWait = Literal["quiet", "networkidle"]
DEFAULT_RENDER_TABS = 4
DEFAULT_RENDER_TAB_PAGES = 50
DEFAULT_RENDER_WAIT_MAX = 3.0

#: ``extract(page)`` returns a mapping merged into the record's ``data`` (sync or async).
ExtractHook = Callable[["Page"], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]
#: ``follow(page)`` returns the links to enqueue, in place of every link on the page.
FollowHook = Callable[["Page"], Iterable[str]]
#: ``render_if(final_url, body)``: whether a page fetched over HTTP is to be rendered.
RenderPredicate = Callable[[str, bytes], bool]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CrawlConfig:
    """Everything that shapes a crawl, validated at construction.

    Every field is keyword-only and has a default, so ``CrawlConfig()`` crawls just the seeds.
    Use :func:`dataclasses.replace` to derive a variant.

    Scope (which URLs are scheduled):
        depth: link hops followed from the seeds; 0 fetches only the seeds.
        max_pages: schedule at most this many URLs, seeds included (None: no limit); each
            gets its record, retries included.
        scope: ``"origin"`` (the seeds' scheme, host and port; ``http://h`` also admits
            ``https://h``), ``"host"`` (the seeds' host names, any port or scheme),
            ``"domain"`` (the seeds' hosts without a leading ``www.`` and all their
            subdomains, any port or scheme) or ``"any"``.
        allow_hosts: extra hosts in scope; shell-style patterns such as ``*.example.org``.
        include / exclude: regular expressions searched in the canonical key of a discovered
            link (see ``canonicalize``); with ``include`` a link must match one of them, and
            must match no ``exclude``.
        sitemaps: sitemap URLs to read (index files and gzip included); the pages they list
            are scheduled at depth 0 like seeds (in scope: the seeds' and sitemaps' hosts), with
            their ``<lastmod>`` in the record's ``data``.
        sitemaps_from_robots: also read the sitemaps named in the seeds' hosts' robots.txt.

    Engine:
        workers: worker tasks (each fetches one page at a time).
        buffer: size of the job and record channels (None: same as ``workers``).
        timeout: the page deadline in seconds, for each attempt: request, body, parse and the
            extract hook.
        deadline: the crawl deadline in seconds (None: none). When it passes, dispatching stops,
            pages in flight get ``grace`` seconds, and the crawl returns normally.
        grace: seconds in-flight pages may still take once the crawl is stopped.

    Politeness (per host, i.e. per scheme, host and port):
        per_host: requests in flight to one host at most.
        delay: minimum seconds between two request starts to one host (robots.txt's
            Crawl-delay raises it for that host).
        delay_jitter: each delay is scaled by a random factor in ``1 +- delay_jitter``.
        autothrottle: adapt each host's concurrency (up to ``per_host``) to its latency and
            errors (AIMD).
        robots: fetch and obey robots.txt (with ``user_agent``).

    Fetching:
        retries: further attempts after a connect error, timeout, protocol error or a
            429/502/503/504 answer, with exponential back-off and jitter; meanwhile the host
            is paused (its other pages wait too) and the worker moves on.
        backoff / max_backoff: first back-off delay and its cap, in seconds.
        max_retry_after: the longest ``Retry-After`` honoured; a longer one fails the page.
        max_bytes: cap on the decoded body; a longer body fails with ``too_large``.
        max_redirects: redirects followed before failing with ``too_many_redirects``.
        headers: extra request headers, sent only to the seeds' hosts (never to a host that
            links or redirects lead to: they often hold credentials).
        user_agent, http2, proxy: passed to the HTTP client.
        allow_private: let links and redirects lead to loopback, private and link-local
            addresses (the seeds' own hosts may always be on such addresses).
        cache: a directory for an HTTP cache of successful (2xx) responses, for development:
            a re-run with new selectors or hooks re-uses them instead of fetching (None: off).
        cache_ttl: seconds a cached response is served (None: until the cache is deleted).

    State:
        state: path of an SQLite database holding the crawl's frontier, seen-set and leases
            (None: all in memory). Running the same crawl with the same state resumes it,
            after any stop or crash; a file sink's output is then exactly-once.
        state_reset: empty the state first, instead of refusing a state made by a crawl
            with other scope or output settings.

    Rendering (headless Chromium; see README, Rendering JavaScript pages):
        render: fetch every page with the browser; the record's ``data.rendered`` is true.
        render_auto: fetch over HTTP first and render only the HTML pages that look built by
            JavaScript (a ``<script>``, under 200 characters of text and under 2 links), or
            those ``render_if(final_url, body)`` picks when it is given.
        render_tabs: tabs rendering at once (each page needs one; with ``render`` the crawl
            runs at most this many workers).
        render_tab_pages: pages a tab renders before its browser context is replaced.
        render_resources: also download images, media and fonts.
        render_wait: ``"quiet"`` (after ``load``, the DOM unchanged for 150 ms) or
            ``"networkidle"`` (after ``load``, no request for 500 ms).
        render_wait_max: cap in seconds on that wait (the page deadline still bounds all).
        browser: the Chromium executable (None: chromium-headless-shell or chromium,
            looked up in /usr/lib/chromium/ and on PATH).

    Output and hooks:
        links: put the page's links in each record.
        selectors: :class:`Selector` s whose values go into each HTML page's ``data`` (before
            the extract hook runs, so the hook may change them).
        extract: ``extract(page)`` -> mapping merged into ``data`` (sync or async).
        follow: ``follow(page)`` -> the URLs to enqueue instead of all the page's links
            (still subject to scope, include/exclude and depth).

    Raises:
        ConfigError: a value is out of range; ``field`` names it.
    """

    depth: int = 0
    max_pages: int | None = None
    scope: ScopeName = "host"
    allow_hosts: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    sitemaps_from_robots: bool = False

    workers: int = DEFAULT_WORKERS
    buffer: int | None = None
    per_host: int = DEFAULT_PER_HOST
    delay: float = 0.0
    delay_jitter: float = 0.0
    autothrottle: bool = False
    robots: bool = True
    timeout: float = DEFAULT_TIMEOUT
    deadline: float | None = None
    grace: float = DEFAULT_GRACE

    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    user_agent: str = DEFAULT_USER_AGENT
    http2: bool = False
    proxy: str | None = None
    allow_private: bool = False
    cache: str | os.PathLike[str] | None = None
    cache_ttl: float | None = None

    state: str | os.PathLike[str] | None = None
    state_reset: bool = False

    render: bool = False
    render_auto: bool = False
    render_if: RenderPredicate | None = None
    render_tabs: int = DEFAULT_RENDER_TABS
    render_tab_pages: int = DEFAULT_RENDER_TAB_PAGES
    render_resources: bool = False
    render_wait: RenderWait = "quiet"
    render_wait_max: float = DEFAULT_RENDER_WAIT_MAX
    browser: str | os.PathLike[str] | None = None

    links: bool = False
    selectors: tuple[Selector, ...] = ()
    extract: ExtractHook | None = None
    follow: FollowHook | None = None

    def __post_init__(self) -> None:
        _check_int(self, "depth", minimum=0)
        _check_int(self, "workers", minimum=1)
        _check_int(self, "per_host", minimum=1)
        _check_seconds(self, "delay", positive=False)
        if not isinstance(self.delay_jitter, int | float) or not 0 <= self.delay_jitter <= 1:
            raise ConfigError(
                "delay_jitter", f"must be a fraction from 0 to 1, not {self.delay_jitter!r}"
            )
        _check_int(self, "retries", minimum=0)
        _check_int(self, "max_redirects", minimum=0)
        _check_int(self, "max_bytes", minimum=1)
        if self.max_pages is not None:
            _check_int(self, "max_pages", minimum=1)
        if self.buffer is not None:
            _check_int(self, "buffer", minimum=0)
        _check_seconds(self, "timeout", positive=True)
        _check_seconds(self, "grace", positive=False)
        _check_seconds(self, "backoff", positive=False)
        _check_seconds(self, "max_backoff", positive=False)
        _check_seconds(self, "max_retry_after", positive=False)
        if self.deadline is not None:
            _check_seconds(self, "deadline", positive=True)
        if self.scope not in get_args(ScopeName):
            raise ConfigError(
                "scope", f"must be one of origin, host, domain, any, not {self.scope!r}"
            )
        for name in ("allow_hosts", "include", "exclude", "sitemaps"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(name, "must be a sequence of strings")
            object.__setattr__(self, name, tuple(value))
        for name in ("include", "exclude"):
            for pattern in getattr(self, name):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ConfigError(name, f"bad regular expression {pattern!r}: {exc}") from None
        headers = dict(self.headers)
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key.strip():
                raise ConfigError("headers", f"bad header {key!r}: {value!r}")
            if "\n" in key + value or "\r" in key + value or ":" in key:
                raise ConfigError("headers", f"bad header {key!r}: {value!r}")
        object.__setattr__(self, "headers", types.MappingProxyType(headers))
        if not self.user_agent or "\n" in self.user_agent or "\r" in self.user_agent:
            raise ConfigError("user_agent", "must be a non-empty single line")
        if self.proxy is not None and not re.match(r"(?i)^(https?|socks5h?)://", self.proxy):
            raise ConfigError(
                "proxy", f"must be an http://, https:// or socks5:// URL: {self.proxy}"
            )
        if self.cache is not None:
            if not isinstance(self.cache, str | os.PathLike) or not os.fspath(self.cache):
                raise ConfigError("cache", f"must be a directory path, not {self.cache!r}")
            if os.path.exists(self.cache) and not os.path.isdir(self.cache):
                raise ConfigError("cache", f"{os.fspath(self.cache)!r} is not a directory")
        if self.cache_ttl is not None:
            _check_seconds(self, "cache_ttl", positive=True)
        if self.state is not None:
            if not isinstance(self.state, str | os.PathLike) or not os.fspath(self.state):
                raise ConfigError("state", f"must be a file path, not {self.state!r}")
            if os.path.isdir(self.state):
                raise ConfigError("state", f"{os.fspath(self.state)!r} is a directory")
        if isinstance(self.selectors, Selector) or not all(
            isinstance(s, Selector) for s in self.selectors
        ):
            raise ConfigError("selectors", "must be a sequence of Selector")
        object.__setattr__(self, "selectors", tuple(self.selectors))
        names = [s.name for s in self.selectors]
        if len(set(names)) != len(names):
            raise ConfigError("selectors", f"two selectors share a name: {names}")
        for name in ("extract", "follow", "render_if"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise ConfigError(name, "must be callable")
        self._check_rendering()

    def _check_rendering(self) -> None:
        for name in ("render", "render_auto", "render_resources"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, f"must be true or false, not {getattr(self, name)!r}")
        if self.render and (self.render_auto or self.render_if is not None):
            raise ConfigError(
                "render_auto", "renders only some pages: it cannot be combined with render"
            )
        _check_int(self, "render_tabs", minimum=1, maximum=64)
        _check_int(self, "render_tab_pages", minimum=1, maximum=100_000)
        if self.render_wait not in get_args(RenderWait):
            raise ConfigError(
                "render_wait", f"must be quiet or networkidle, not {self.render_wait!r}"
            )
        _check_seconds(self, "render_wait_max", positive=True)
        if self.render_wait_max > 60:
            raise ConfigError("render_wait_max", f"must be at most 60, not {self.render_wait_max}")
        if self.browser is not None and (
            not isinstance(self.browser, str | os.PathLike) or not os.fspath(self.browser)
        ):
            raise ConfigError("browser", f"must be an executable's path, not {self.browser!r}")

    @property
    def rendering(self) -> Literal["off", "always", "auto"]:
        """How pages are fetched: over HTTP (``off``), by the browser (``always``), or over
        HTTP then by the browser when needed (``auto``)."""
        if self.render:
            return "always"
        if self.render_auto or self.render_if is not None:
            return "auto"
        return "off"

    @property
    def channel_buffer(self) -> int:
        """The buffer of the job and record channels: ``buffer``, or ``workers`` when unset."""
        return self.workers if self.buffer is None else self.buffer


def _check_int(config: CrawlConfig, name: str, *, minimum: int, maximum: int | None = None) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, not {value}")


def _check_seconds(config: CrawlConfig, name: str, *, positive: bool) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(name, f"must be a number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(
            name, f"must be {'positive' if positive else 'zero or more'}, not {value}"
        )
    if math.isinf(value):
        raise ConfigError(name, "must be finite")
