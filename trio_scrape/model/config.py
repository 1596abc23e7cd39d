"""Crawl configuration: one immutable, validated value shared by the CLI and the library."""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import sys
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args
from urllib.parse import unquote, urlsplit

from .._version import __version__
from ..errors import ConfigError
from . import validate as _v
from .parse import Selector
from .validate import Range

if TYPE_CHECKING:
    from .page import Page

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "DEFAULT_WORKERS",
    "LIMITS",
    "MAX_BYTES",
    "MAX_WORKERS",
    "Panel",
    "CrawlConfig",
    "ExtractHook",
    "FollowHook",
    "Option",
    "RenderPredicate",
    "RenderWait",
    "ScopeName",
]

DEFAULT_WORKERS = 16
MAX_PROCESSES = 64
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
#: When a rendered page is done: nothing pending and its DOM quiet for 25 ms, or its network
#: idle for 500 ms.
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


class Routes(Protocol):
    """Handlers by label (a :class:`~trio_scrape.Router`): what a scraper runs on each page."""

    def route(self, label: str | None) -> Any:
        """The route of a page whose request has ``label`` (None: no handler)."""
        ...

    def reference(self) -> str | None:
        """``module:name`` by which another process imports this router (None: it cannot)."""
        ...

    async def run(self, route: Any, ctx: Any) -> None:
        """Run ``route``'s handler on a page's context."""
        ...

    def startup(self, seeds: list[str]) -> list[Any]:
        """The start-up step's requests (a log-in), made before the seeds (none: [])."""
        ...


# ------------------------------------------------------------------- the command-line form
class Panel(enum.StrEnum):
    """The ``run`` command's help groups (rich_help_panel), in the order the help shows them."""

    SCOPE = "Scope"
    REACH = "Links followed (page level)"
    ENGINE = "Concurrency and deadlines"
    PROCESSES = "Worker processes"
    POLITE = "Politeness (per host)"
    FETCH = "Fetching"
    OUTPUT = "Output"
    EXTRACT = "Extraction"
    RENDER = "Rendering JavaScript (headless Chromium)"
    STATE = "Resumable crawls"
    FLEET = "Crawling on several machines (Redis)"
    MONITOR = "Monitoring"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Option:
    """How a :class:`CrawlConfig` field is given on the ``trio-scrape run`` command line.

    Plain data (the model does not import the CLI): ``trio_scrape.cli.options`` builds the
    command's options from the fields' Options and turns what was typed back into the field's
    value. The option's value type comes from the field's annotation (``int``, ``float``,
    ``str``, a ``Literal`` of choices, ``tuple[str, ...]`` for a repeatable option) unless
    ``parse`` names another way.

    help: the option's help text (plain text: brackets are not markup).
    panel: its help group.
    flag: its name; default ``--`` and the field's name with dashes. A ``bool`` field's flag
        sets the opposite of the field's default (``--links``: True; ``--no-frames``: False)
        unless ``negate`` gives the flag for False (``--robots/--no-robots``).
    short: a one-letter form (``-x``), if any.
    metavar: what the help shows for the value (``N``, ``SECONDS``, ``NAME=CSS``), never a
        Python type name; default ``N`` for an integer, the choices for a Literal, nothing for
        a flag; any other option must give one.
    parse: how the typed text becomes the field's value, by name (``trio_scrape.cli.options``
        has them): ``headers`` ('Name: value', repeatable), ``select`` / ``select_all``
        (NAME=CSS, repeatable), ``processes`` (N or auto), ``load`` (a hook, MODULE:FUNC),
        ``path`` (a file-system path).
    """

    help: str
    panel: Panel
    flag: str | None = None
    short: str | None = None
    negate: str | None = None
    metavar: str | None = None
    parse: str | None = None


#: The metadata keys of CrawlConfig's fields: their command-line Options (several for one
#: field: --select and --select-all make ``selectors``), or why a field has none.
OPTIONS = "trio_scrape.options"
NO_OPTION = "trio_scrape.no_option"


def _options(default: Any, *options: Option) -> Any:
    """A field given on the command line by ``options``; ``default`` (a type: a factory)."""
    if isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata={OPTIONS: options})
    return dataclasses.field(default=default, metadata={OPTIONS: options})


def _option(default: Any, panel: Panel, help: str, **option: Any) -> Any:
    """A field given on the command line by one option (see :class:`Option`)."""
    return _options(default, Option(panel=panel, help=help, **option))


def _library_only(default: Any, why: str) -> Any:
    """A field with no command-line option, and the reason."""
    return dataclasses.field(default=default, metadata={NO_OPTION: why})


def options_of(field: dataclasses.Field[Any]) -> tuple[Option, ...]:
    """The command-line Options of one of CrawlConfig's fields (none: library only)."""
    return tuple(field.metadata.get(OPTIONS, ()))


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
        frames: follow ``<iframe src>`` and ``<frame src>`` as links.
        meta_refresh: follow ``<meta http-equiv=refresh>`` targets (a delay of 0 counts as a
            redirect: the target is queued at the page's own depth; else as a link).
        page_robots: obey ``nofollow`` from ``<meta name=robots|trio-scrape>`` and the
            ``X-Robots-Tag`` header (the page's links are not followed); the directives are
            recorded in ``data.robots`` either way.
        skip_rel_nofollow: do not follow links marked ``rel="nofollow"``.
        dedup_canonical: a page's ``<link rel=canonical>`` (always in ``data.canonical``)
            deduplicates: the canonical URL counts as crawled, and a page whose canonical
            URL was already crawled is marked ``data.duplicate_of`` and its links not followed.

    Engine:
        workers: worker tasks (each fetches one page at a time): the pages in flight at once,
            in all processes together.
        processes: run the page pipeline (fetch, parse, selectors, hooks, link resolution) in
            this many worker processes, each with its own Trio loop; ``1`` (the default) runs
            it in the crawler's process; ``"auto"``: one per CPU this process may use (1 on
            2 CPUs or fewer). The
            frontier, politeness, robots.txt, ``max_pages``, the sink and the state stay in
            the crawler's process. With more than one, ``extract`` and ``follow`` must be
            importable by module path (module-level functions).
        buffer: size of the job and record channels (None: same as ``workers``).
        timeout: the page deadline in seconds, for each attempt: request, body, parse and the
            extract hook.
        deadline: the crawl deadline in seconds (None: none), counted from the first dispatch
            (after start-up). When it passes, dispatching stops, pages in flight get ``grace``
            seconds, and the crawl returns normally.
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
        recrawl: when the crawl in ``state`` has finished, start a new round of it from the
            seeds, asking the server for each page it knows only if it changed (its stored
            ``ETag`` / ``Last-Modified``); an unfinished round is resumed. Needs ``state``
            or ``frontier`` (then the round is the whole fleet's).
        frontier: ``redis://HOST:PORT/DB`` of a Redis (7.0 or later) holding the frontier
            shared by every process of one crawl, on any number of machines, or
            ``redis+cluster://HOST:PORT[,HOST:PORT...]/0`` of a Redis Cluster, with
            ``?shards=N`` to spread a new crawl's hosts over N shards of it (None: this
            process alone). Not with ``state``.
        crawl_id: the shared crawl's name in that Redis (None: derived from the seeds and
            scope, so the same command joins the same crawl); needs ``frontier``.
        lease: seconds a leased request stays with a process that stops renewing it (killed,
            cut off): then it goes back to the queue for the others.

    Monitoring (see docs/metrics.md):
        metrics: ``HOST:PORT`` (``[IPv6]:PORT``) to serve the crawl's Prometheus metrics on,
            at ``/metrics``, while it runs (None: no endpoint); port 0 picks a free one.
        metrics_linger: once the crawl has ended, keep serving until one scrape has read the
            final figures, for at most this many seconds (0: stop at once).

    Rendering (headless Chromium; see docs/rendering.md):
        render: fetch every page with the browser; the record's ``data.rendered`` is true.
        render_auto: render only the pages whose rendering changes what is extracted, as
            learnt per host and URL pattern from pages fetched both ways (see
            ``trio_scrape/render/auto.py``), or those ``render_if(final_url, body)`` picks
            when it is given.
        render_tabs: tabs rendering at once (each page needs one; with ``render`` the crawl
            runs at most this many workers).
        render_tab_pages: pages a tab renders before its browser context is replaced.
        render_resources: also download images, media and fonts.
        render_wait: ``"quiet"`` (after ``load``, nothing pending and the DOM unchanged for
            25 ms) or ``"networkidle"`` (after ``load``, no request for 500 ms).
        render_wait_max: cap in seconds on that wait (the page deadline still bounds all).
        render_wait_for: a CSS selector: the page is done only once it matches (checked by
            selectolax here and by the browser when used); no match before the page deadline
            gives the page a ``render_wait`` error.
        render_wait_js: a JavaScript expression: the page is done only once it is truthy
            (awaited if it is a promise); as ``render_wait_for`` otherwise.
        render_delay: seconds more to wait after the other waits (at most 60).
        screenshot: a directory: one full-page PNG of each rendered page goes there, named
            from its URL's SHA-256, its path in the record's ``data.screenshot``.
        browser: the Chromium executable (None: chromium-headless-shell or chromium,
            looked up in /usr/lib/chromium/ and on PATH).

    Output and hooks:
        links: put the page's links in each record.
        selectors: :class:`Selector` s whose values go into each HTML page's ``data`` (before
            the extract hook runs, so the hook may change them).
        extract: ``extract(page)`` -> mapping merged into ``data`` (sync or async).
        follow: ``follow(page)`` -> the URLs to enqueue instead of all the page's links
            (still subject to scope, include/exclude and depth).
        router: a scraper's handlers by label (a :class:`~trio_scrape.Router`): each page
            goes to its request's handler, which emits items and enqueues requests; the
            page's links are then followed only as its handler enqueues them.

    Every number has a lower and an upper bound (:data:`LIMITS`, the limits table in docs/cli.md);
    headers and the user agent must be what HTTP can carry (printable ASCII), regular
    expressions must compile, a proxy must be a URL httpx can use.

    Raises:
        ConfigError: a value has the wrong type, is out of range or unusable; ``field``
            names it, and the message shows the value (shortened) on one line.
    """

    # Each field's command-line form is its Option (see above): the `run` command's
    # options are built from these, so adding an option is adding a field (and its check).
    depth: int = _option(0, Panel.SCOPE, "Link hops to follow from the seeds.")
    max_pages: int | None = _option(None, Panel.SCOPE, "Schedule at most this many URLs.")
    scope: ScopeName = _option(
        "host",
        Panel.SCOPE,
        "Where links may lead: the seeds' origins (scheme, host, port), their hosts "
        "(any port), their domains, or anywhere.",
    )
    allow_hosts: tuple[str, ...] = _option(
        (),
        Panel.SCOPE,
        "Also allow this host (glob, repeatable).",
        flag="--allow-host",
        metavar="HOST",
    )
    include: tuple[str, ...] = _option(
        (), Panel.SCOPE, "Only follow links matching this regex (repeatable).", metavar="REGEX"
    )
    exclude: tuple[str, ...] = _option(
        (), Panel.SCOPE, "Never follow links matching this regex (repeatable).", metavar="REGEX"
    )
    sitemaps: tuple[str, ...] = _option(
        (),
        Panel.SCOPE,
        "Read this sitemap (index, gzip) and crawl the pages it lists (repeatable).",
        flag="--sitemap",
        metavar="URL",
    )
    sitemaps_from_robots: bool = _option(
        False, Panel.SCOPE, "Also read the sitemaps listed in the seeds' robots.txt."
    )
    frames: bool = _option(
        True, Panel.REACH, "Do not follow <iframe src> and <frame src>.", flag="--no-frames"
    )
    meta_refresh: bool = _option(
        True,
        Panel.REACH,
        "Do not follow <meta http-equiv=refresh> targets.",
        flag="--no-meta-refresh",
    )
    page_robots: bool = _option(
        True,
        Panel.REACH,
        "Follow the links of pages whose meta robots or X-Robots-Tag say nofollow.",
        flag="--ignore-page-robots",
    )
    skip_rel_nofollow: bool = _option(
        False, Panel.REACH, 'Do not follow links marked rel="nofollow".'
    )
    dedup_canonical: bool = _option(
        False,
        Panel.REACH,
        "Treat <link rel=canonical> as the page's identity: no second crawl of it.",
    )

    workers: int = _option(DEFAULT_WORKERS, Panel.ENGINE, "Concurrent worker tasks.")
    processes: int | Literal["auto"] = _option(
        1,
        Panel.PROCESSES,
        "Run fetch, parse and hooks in N worker processes (auto: one per CPU); "
        "1 keeps them in this process.",
        metavar="N|auto",
        parse="processes",
    )
    buffer: int | None = _option(
        None, Panel.ENGINE, "Job and record channel size [default: workers]."
    )
    per_host: int = _option(
        DEFAULT_PER_HOST, Panel.POLITE, "Requests in flight to one host at most."
    )
    delay: float = _option(
        0.0, Panel.POLITE, "Seconds between request starts to one host.", metavar="SECONDS"
    )
    delay_jitter: float = _option(
        0.0, Panel.POLITE, "Scale each delay by a random 1 +- this fraction.", metavar="FRACTION"
    )
    autothrottle: bool = _option(False, Panel.POLITE, "Adapt per-host concurrency to the server.")
    robots: bool = _option(True, Panel.POLITE, "Fetch and obey robots.txt.", negate="--no-robots")
    timeout: float = _option(
        DEFAULT_TIMEOUT, Panel.ENGINE, "Page deadline in seconds, per attempt.", metavar="SECONDS"
    )
    deadline: float | None = _option(
        None, Panel.ENGINE, "Crawl deadline in seconds.", metavar="SECONDS"
    )
    grace: float = _option(
        DEFAULT_GRACE,
        Panel.ENGINE,
        "Seconds in-flight pages get once the crawl stops.",
        metavar="SECONDS",
    )

    retries: int = _option(DEFAULT_RETRIES, Panel.FETCH, "Retries per page.")
    backoff: float = _library_only(DEFAULT_BACKOFF, "tuned in code: no crawl has needed it yet")
    max_backoff: float = _library_only(DEFAULT_MAX_BACKOFF, "as backoff")
    max_retry_after: float = _option(
        DEFAULT_MAX_RETRY_AFTER,
        Panel.POLITE,
        "Longest Retry-After honoured; a longer one fails the page.",
        metavar="SECONDS",
    )
    max_bytes: int = _option(
        DEFAULT_MAX_BYTES, Panel.FETCH, "Cap on a decoded body.", metavar="BYTES"
    )
    max_redirects: int = _option(DEFAULT_MAX_REDIRECTS, Panel.FETCH, "Redirects to follow.")
    headers: Mapping[str, str] = _option(
        dict,
        Panel.FETCH,
        "Extra request header 'Name: value' (repeatable).",
        flag="--header",
        metavar="'NAME: VALUE'",
        parse="headers",
    )
    user_agent: str = _option(DEFAULT_USER_AGENT, Panel.FETCH, "User-Agent header.", metavar="TEXT")
    http2: bool = _option(False, Panel.FETCH, "Use HTTP/2 where offered.")
    proxy: str | None = _option(None, Panel.FETCH, "Proxy URL.", metavar="URL")
    allow_private: bool = _option(
        False, Panel.FETCH, "Let links and redirects lead to loopback/private/link-local addresses."
    )
    cache: str | os.PathLike[str] | None = _option(
        None,
        Panel.FETCH,
        "Keep 2xx responses in this directory and re-use them (for development).",
        metavar="DIR",
        parse="path",
    )
    cache_ttl: float | None = _option(
        None,
        Panel.FETCH,
        "Seconds a cached response is re-used [default: forever].",
        metavar="SECONDS",
    )

    state: str | os.PathLike[str] | None = _option(
        None,
        Panel.STATE,
        "SQLite file holding the crawl's state: the same command resumes it.",
        metavar="FILE",
        parse="path",
    )
    state_reset: bool = _option(False, Panel.STATE, "Empty the --state file and start over.")
    recrawl: bool = _option(
        False,
        Panel.STATE,
        "Crawl a finished --state (or --frontier crawl) again, fetching only what changed "
        "(conditional requests); an unfinished round resumes.",
    )
    frontier: str | None = _option(
        None,
        Panel.FLEET,
        "Share the crawl through this Redis: redis://HOST:PORT/DB (or a Redis Cluster: "
        "redis+cluster://HOST:PORT[,HOST:PORT...]/0, ?shards=N to spread a new crawl over "
        "N shards). Run the same command on "
        "every machine (each with its own -o file).",
        metavar="URL",
    )
    crawl_id: str | None = _option(
        None,
        Panel.FLEET,
        "Name of the shared crawl [default: derived from the seeds and scope].",
        metavar="NAME",
    )
    lease: float = _option(
        30.0,
        Panel.FLEET,
        "Seconds before a silent process's pages go back to the queue.",
        metavar="SECONDS",
    )

    metrics: str | None = _option(
        None,
        Panel.MONITOR,
        "Serve Prometheus metrics at http://HOST:PORT/metrics while the crawl runs.",
        metavar="HOST:PORT",
    )
    metrics_linger: float = _option(
        0.0,
        Panel.MONITOR,
        "Once the crawl ends, keep --metrics up until one scrape has read the final figures, "
        "at most this long.",
        metavar="SECONDS",
    )

    render: bool = _option(False, Panel.RENDER, "Render every page in headless Chromium.")
    render_auto: bool = _option(
        False,
        Panel.RENDER,
        "Render only where rendering changes what is extracted (learnt per URL pattern).",
    )
    render_if: RenderPredicate | None = _option(
        None,
        Panel.RENDER,
        "With --render-auto: MODULE:FUNC(url, body) -> bool decides instead.",
        metavar="MODULE:FUNC",
        parse="load",
    )
    render_tabs: int = _option(DEFAULT_RENDER_TABS, Panel.RENDER, "Tabs rendering at once.")
    render_tab_pages: int = _option(
        DEFAULT_RENDER_TAB_PAGES,
        Panel.RENDER,
        "Pages a tab renders before its browser context is replaced.",
    )
    render_resources: bool = _option(False, Panel.RENDER, "Also download images, media and fonts.")
    render_wait: RenderWait = _option(
        "quiet",
        Panel.RENDER,
        "After load: nothing pending and DOM quiet 25 ms, or network idle 500 ms.",
    )
    render_wait_max: float = _option(
        DEFAULT_RENDER_WAIT_MAX, Panel.RENDER, "Cap in seconds on that wait.", metavar="SECONDS"
    )
    render_wait_for: str | None = _option(
        None,
        Panel.RENDER,
        "Wait until this CSS selector matches (no match by the deadline: a render_wait error).",
        metavar="CSS",
    )
    render_wait_js: str | None = _option(
        None,
        Panel.RENDER,
        "Wait until this JavaScript expression is truthy (a promise is awaited).",
        metavar="EXPR",
    )
    render_delay: float = _option(
        0.0, Panel.RENDER, "Seconds more to wait after the other waits.", metavar="SECONDS"
    )
    screenshot: str | os.PathLike[str] | None = _option(
        None,
        Panel.RENDER,
        "Write a full-page PNG of each rendered page into this directory.",
        metavar="DIR",
        parse="path",
    )
    browser: str | os.PathLike[str] | None = _option(
        None,
        Panel.RENDER,
        "Chromium executable [default: chromium-headless-shell, else chromium].",
        metavar="PATH",
    )

    links: bool = _option(False, Panel.OUTPUT, "Put each page's links in its record.")
    selectors: tuple[Selector, ...] = _options(
        (),
        Option(
            panel=Panel.EXTRACT,
            help="Put NAME=CSS's first match in data (CSS::text, CSS::attr(x); repeatable).",
            flag="--select",
            metavar="NAME=CSS",
            parse="select",
        ),
        Option(
            panel=Panel.EXTRACT,
            help="Put every match of NAME=CSS in data, as a list (repeatable).",
            flag="--select-all",
            metavar="NAME=CSS",
            parse="select_all",
        ),
    )
    extract: ExtractHook | None = _option(
        None,
        Panel.EXTRACT,
        "Extract hook MODULE:FUNC (sync or async; returns a dict).",
        metavar="MODULE:FUNC",
        parse="load",
    )
    follow: FollowHook | None = _option(
        None,
        Panel.EXTRACT,
        "Follow hook MODULE:FUNC (returns the links to enqueue).",
        metavar="MODULE:FUNC",
        parse="load",
    )
    router: Routes | None = _library_only(
        None, "a scraper's handlers come from its spider file (trio-scrape crawl SPIDER)"
    )

    def __post_init__(self) -> None:
        # Every field has its check in _CHECKS (below the class): one table to read, and one
        # place to add a line when a field is added (test_config checks none is missing).
        for field in dataclasses.fields(self):
            check = _CHECKS.get(field.name)
            if check is None:  # a bug in trio-scrape, not a user's mistake
                raise TypeError(f"CrawlConfig.{field.name} has no check in _config._CHECKS")
            value = check(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        names = [s.name for s in self.selectors]
        if len(set(names)) != len(names):
            raise ConfigError("selectors", f"two selectors share a name: {names}")
        if self.frontier is not None and self.state is not None:
            raise ConfigError("frontier", "cannot be used with state (one or the other)")
        if self.recrawl and self.state is None and self.frontier is None:
            raise ConfigError("recrawl", "needs state or frontier (the pages to look at again)")
        if self.crawl_id is not None and self.frontier is None:
            raise ConfigError("crawl_id", "needs frontier")
        if self.render and (self.render_auto or self.render_if is not None):
            raise ConfigError(
                "render_auto", "renders only some pages: it cannot be combined with render"
            )
        for name in HOOKS:
            hook = getattr(self, name)
            if hook is not None and self.processes != 1 and hook_reference(hook) is None:
                raise ConfigError(
                    name,
                    f"{hook!r} cannot run in worker processes (processes={self.processes!r}): "
                    "it must be importable by module path (a module-level function)",
                )

    @property
    def process_count(self) -> int:
        """Worker processes to run: ``processes``, with ``"auto"`` resolved to the CPUs this
        process may use (at most ``workers``: a process with no page to work on is wasted),
        or to 1 (the crawler's own process) on 2 CPUs or fewer, where one process was faster
        than worker processes in every measurement (docs/performance.md)."""
        if self.processes == "auto":
            cpus = usable_cpus()
            if cpus <= 2:
                return 1
            return max(1, min(cpus, self.workers, MAX_PROCESSES))
        return self.processes

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


# ----------------------------------------------------------------------------------- checks
# The limits of every number a user can set. Generous for real crawls, and small enough that
# nothing is sized by them: a bound keeps a typo (or 10**30) from reaching trio, httpx, zlib
# or SQLite, which would raise, hang or run out of memory. docs/cli.md's limits table lists them.
DAY = 86_400.0
YEAR = 365 * DAY
MAX_WORKERS = 10_000
MAX_BYTES = 1 << 30

LIMITS: Mapping[str, Range] = types.MappingProxyType({
    "depth": Range(0, 1_000_000, integer=True),
    "max_pages": Range(1, 10**12, integer=True, optional=True),
    "workers": Range(1, MAX_WORKERS, integer=True),
    "buffer": Range(0, 10 * MAX_WORKERS, integer=True, optional=True),
    "per_host": Range(1, MAX_WORKERS, integer=True),
    "delay": Range(0, DAY, unit="seconds"),
    "delay_jitter": Range(0, 1),
    "timeout": Range(0, DAY, open_low=True, unit="seconds"),
    "deadline": Range(0, YEAR, open_low=True, optional=True, unit="seconds"),
    "grace": Range(0, DAY, unit="seconds"),
    "retries": Range(0, 100, integer=True),
    "backoff": Range(0, DAY, unit="seconds"),
    "max_backoff": Range(0, DAY, unit="seconds"),
    "max_retry_after": Range(0, DAY, unit="seconds"),
    "max_bytes": Range(1, MAX_BYTES, integer=True),
    "max_redirects": Range(0, 100, integer=True),
    "cache_ttl": Range(0, YEAR, open_low=True, optional=True, unit="seconds"),
    "render_tabs": Range(1, 64, integer=True),
    "render_tab_pages": Range(1, 100_000, integer=True),
    "render_wait_max": Range(0, 60, open_low=True, unit="seconds"),
    "render_delay": Range(0, 60, unit="seconds"),
    "lease": Range(1, DAY, unit="seconds"),
    "metrics_linger": Range(0, DAY, unit="seconds"),
})  # fmt: skip


#: The fields that hold callables: worker processes import them by module path.
HOOKS = ("extract", "follow", "render_if", "router")

#: ``processes``: "auto", or a number of worker processes in this range.
PROCESSES = Range(1, MAX_PROCESSES, integer=True)


def _processes(name: str, value: Any) -> Any:
    if isinstance(value, str) and value == "auto":
        return value
    try:
        return PROCESSES(name, value)
    except ConfigError as exc:
        raise ConfigError(name, f'{exc.message} (or "auto")') from None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def hook_reference(hook: Callable[..., Any]) -> str | None:
    """``module:qualname`` by which another process can import ``hook``, or None when it
    cannot (a lambda, a closure, a bound method, anything defined in ``__main__``). An
    object that knows its own reference (a router) says it."""
    reference = getattr(hook, "reference", None)
    if callable(reference) and not isinstance(hook, type):
        found_reference = reference()
        return found_reference if isinstance(found_reference, str) else None
    module_name = getattr(hook, "__module__", None)
    qualname = getattr(hook, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module_name}:{qualname}" if found is hook else None


def _routes(name: str, value: Any) -> Any:
    if value is not None and not callable(getattr(value, "route", None)):
        raise ConfigError(name, f"must be a Router, not {type(value).__name__}")
    return value


def _cache_dir(name: str, value: Any) -> Any:
    value = _v.path_or_none(name, value, what="a directory path")
    if value is not None and os.path.exists(value) and not os.path.isdir(value):
        raise ConfigError(name, f"{os.fspath(value)!r} is not a directory")
    return value


def _state_file(name: str, value: Any) -> Any:
    value = _v.path_or_none(name, value, what="a file path")
    if value is not None and os.path.isdir(value):
        raise ConfigError(name, f"{os.fspath(value)!r} is a directory")
    return value


def _frontier_url(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a redis:// URL, not {_v.shorten(value)}")
    try:
        parse_redis_url(value)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    return value


def _crawl_id(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, not {_v.shorten(value)}")
    try:
        return check_crawl_id(value)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None


def _metrics(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be HOST:PORT, not {_v.shorten(value)}")
    try:
        parse_host_port(value)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    return value


_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\]")


def parse_host_port(address: str) -> tuple[str, int]:
    """Check a ``HOST:PORT`` (``[IPv6]:PORT``) address to listen on; return its parts.

    Raises:
        ValueError: it is not one (no port, a port out of 0-65535, an odd host).
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, not {_v.shorten(address)}")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65_535:
        raise ValueError(f"the port must be a number from 0 to 65535: {_v.shorten(address)}")
    bracketed = _BRACKETED.fullmatch(host)
    if bracketed is not None:
        host = bracketed.group(1)
    elif ":" in host or not _REDIS_HOST.fullmatch(host):
        raise ValueError(
            f"not a host name or IP address (an IPv6 one in brackets): {_v.shorten(address)}"
        )
    return host, int(port_text)


@dataclasses.dataclass(frozen=True)
class RedisLocation:
    """Where a shared frontier lives: ``redis://HOST:PORT/DB``, or a Redis Cluster given by
    one or more of its nodes, ``redis+cluster://HOST:PORT[,HOST:PORT...][/0]``."""

    url: str
    host: str  #: the (first) node's host
    port: int
    db: int
    #: every node named (one for ``redis://``); a cluster's other nodes are found from them
    nodes: tuple[tuple[str, int], ...] = ()
    password: str | None = None
    cluster: bool = False
    #: a new crawl's shards on a cluster (``?shards=N``; 1: one hash tag, one node)
    shards: int = 1


_REDIS_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a name, IPv4, or IPv6 (unbracketed)


def parse_redis_url(url: str) -> RedisLocation:
    """Check a ``redis://[:password@]HOST[:PORT][/DB]`` URL.

    Raises:
        ValueError: it is not one.
    """
    # urlsplit drops tabs and newlines and keeps spaces: refuse them before, and check the
    # host after (a name or an IP address), so nothing odd is ever looked up in DNS.
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError(f"not a redis:// URL: {_v.shorten(url)}")
    if url.startswith("redis+cluster://"):
        return _parse_cluster_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port or 6379
    except ValueError as exc:
        raise ValueError(f"not a redis:// URL: {_v.shorten(url)} ({exc})") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"expected redis://HOST:PORT/DB, not {_v.shorten(url)}")
    if not _REDIS_HOST.fullmatch(parts.hostname):
        raise ValueError(f"not a host name or IP address: {_v.shorten(parts.hostname)}")
    path = parts.path.strip("/")
    if parts.query or parts.fragment:
        raise ValueError(
            f"expected redis://HOST:PORT/DB with nothing after the DB: {_v.shorten(url)}"
        )
    if path and not (path.isascii() and path.isdigit()):
        raise ValueError(f"the database must be a number: {_v.shorten(url)}")
    db = int(path or 0)
    if db > 65_535:
        raise ValueError(f"database {db} is over 65535")
    return RedisLocation(url, parts.hostname, port, db, ((parts.hostname, port),), parts.password)


def _parse_cluster_url(url: str) -> RedisLocation:
    """``redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...][/0]``: a Redis Cluster, found
    from the nodes named (a cluster has database 0 only)."""
    rest = url[len("redis+cluster://") :]
    rest, _, query = rest.partition("?")
    shards = 1
    if query:
        name, equals, value = query.partition("=")
        if name != "shards" or not equals or not (value.isascii() and value.isdigit()):
            raise ValueError(f"the only query a cluster URL takes is ?shards=N: {_v.shorten(url)}")
        shards = int(value)
        if not 1 <= shards <= _MAX_SHARDS:
            raise ValueError(f"shards must be 1-{_MAX_SHARDS}, not {shards}")
    netloc, _, path = rest.partition("/")
    extra = "#" in rest
    password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        password = unquote(userinfo.partition(":")[2]) or None
    if extra:
        raise ValueError(
            f"expected redis+cluster://HOST:PORT[,HOST:PORT...]/0[?shards=N] with nothing "
            f"after it: {_v.shorten(url)}"
        )
    nodes: list[tuple[str, int]] = []
    for node in netloc.split(","):
        host, colon, port_text = node.rpartition(":")
        if not colon:
            host, port_text = node, "6379"
        host = host.removeprefix("[").removesuffix("]")
        if not host or not _REDIS_HOST.fullmatch(host):
            raise ValueError(f"not a host name or IP address: {_v.shorten(host or node)}")
        if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65_536):
            raise ValueError(f"not a port: {_v.shorten(port_text)} in {_v.shorten(url)}")
        nodes.append((host, int(port_text)))
    if path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only: {_v.shorten(url)}")
    (host, port), *_ = nodes
    return RedisLocation(url, host, port, 0, tuple(nodes), password, cluster=True, shards=shards)


_MAX_SHARDS = 256


_CRAWL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_crawl_id(crawl_id: str) -> str:
    """Raises ValueError unless ``crawl_id`` is 1-100 letters, digits, '.', '_' or '-'."""
    if not _CRAWL_ID.fullmatch(crawl_id):
        raise ValueError(
            f"must be 1-100 letters, digits, '.', '_' or '-' (starting with a letter or digit),"
            f" not {_v.shorten(crawl_id)}"
        )
    return crawl_id


def _css_selector(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a CSS selector, not {_v.shorten(value)}")
    problem = css_problem(value)
    if problem is not None:
        raise ConfigError(name, problem)
    return value


def css_problem(selector: str) -> str | None:
    """Why ``selector`` is not a CSS selector (None: it is one), as selectolax (lexbor) parses
    it. Lexbor accepts a few selectors Chromium refuses (and the other way round): the
    browser's verdict comes when the selector is used (a ``render_wait`` error)."""
    from selectolax.lexbor import LexborHTMLParser, SelectolaxError

    if not selector.strip() or len(selector) > 2000:
        return f"not a CSS selector: {_v.shorten(selector)}"
    try:
        LexborHTMLParser("<p></p>").css_first(selector)
    except SelectolaxError:
        return f"not a CSS selector: {_v.shorten(selector)}"
    return None


def _script(name: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 100_000:
        raise ConfigError(name, f"must be a JavaScript expression, not {_v.shorten(value)}")
    return value


def _browser(name: str, value: Any) -> Any:
    return _v.path_or_none(name, value, what="an executable's path")


def _selectors(name: str, value: Any) -> tuple[Selector, ...]:
    try:
        selectors = () if isinstance(value, Selector | str) else tuple(value)
    except TypeError:
        selectors = None
    if selectors is None or isinstance(value, Selector | str):
        raise ConfigError(name, f"must be a sequence of Selector, not {_v.shorten(value)}")
    if not all(isinstance(s, Selector) for s in selectors):
        raise ConfigError(name, f"must be a sequence of Selector, not {_v.shorten(value)}")
    return selectors


#: How each field of CrawlConfig is checked, in field order. Adding a field? Add its check
#: here (a number: a line in LIMITS); CrawlConfig() raises TypeError until you do.
_CHECKS: Mapping[str, _v.Check] = {
    **LIMITS,
    "processes": _processes,
    "scope": _v.choice(get_args(ScopeName)),
    "allow_hosts": _v.strings,
    "include": _v.regexes,
    "exclude": _v.regexes,
    "sitemaps": _v.strings,
    "sitemaps_from_robots": _v.flag,
    "frames": _v.flag,
    "meta_refresh": _v.flag,
    "page_robots": _v.flag,
    "skip_rel_nofollow": _v.flag,
    "dedup_canonical": _v.flag,
    "autothrottle": _v.flag,
    "robots": _v.flag,
    "headers": _v.headers,
    "user_agent": _v.user_agent,
    "http2": _v.flag,
    "proxy": _v.proxy_url,
    "allow_private": _v.flag,
    "cache": _cache_dir,
    "state": _state_file,
    "state_reset": _v.flag,
    "recrawl": _v.flag,
    "frontier": _frontier_url,
    "crawl_id": _crawl_id,
    "metrics": _metrics,
    "links": _v.flag,
    "selectors": _selectors,
    "extract": _v.callable_or_none,
    "follow": _v.callable_or_none,
    "router": _routes,
    "render": _v.flag,
    "render_auto": _v.flag,
    "render_if": _v.callable_or_none,
    "render_resources": _v.flag,
    "render_wait": _v.choice(get_args(RenderWait)),
    "render_wait_for": _css_selector,
    "render_wait_js": _script,
    "screenshot": _cache_dir,
    "browser": _browser,
}
