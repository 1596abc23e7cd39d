"""``render_auto``: fetch pages over HTTP and render in the browser only those that need it,
learning per host and URL pattern whether rendering changes what is extracted.

A page's pattern is its host and the first segment of its path, digits collapsed to ``*``,
followed by ``/*`` when the path goes on (:func:`url_pattern`): ``/app/12`` and ``/app/7/x``
are ``/app/*``, ``/p12.html`` is ``/p*.html``, ``/`` is ``/``. For each pattern the
:class:`AutoFetcher` keeps the outcome of its last :data:`SAMPLES` comparisons, where a
comparison fetches one page both ways (HTTP and rendered) and asks whether rendering changed
what is extracted (:func:`compare`: links added, the title changed, visible text added). A
pattern is

* ``sample`` until it has :data:`SAMPLES` comparisons: every page is fetched both ways, and
  the record gets the rendered body if rendering changed something, the HTTP one otherwise;
* ``render`` when any of its last comparisons found a change: pages go to the browser only
  (no HTTP fetch first, except for a recrawl's conditional request: a ``304`` is not
  rendered);
* ``http`` when none did: pages are fetched over HTTP only.

Every :data:`RECHECK_EVERY`-th page of a decided pattern is compared again, so a pattern
whose pages change kind is learnt again. The state is bounded: at most
:data:`MAX_PATTERNS_PER_HOST` patterns per host (later ones share the host's ``*``) and
:data:`MAX_HOSTS` hosts (the least recently used is forgotten). It lives in the process that
fetches: with worker processes each one learns on its own.
"""

from __future__ import annotations

import contextlib
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..http.fetcher import Fetcher, Response
from ..model.config import CrawlConfig
from ..scraper.browser import BrowserSetup
from .actions import TabActions
from .renderer import Renderer

__all__ = [
    "AUTO_MIN_LINKS",
    "AUTO_MIN_TEXT",
    "MAX_HOSTS",
    "MAX_PATTERNS_PER_HOST",
    "RECHECK_EVERY",
    "SAMPLES",
    "AutoFetcher",
    "Comparison",
    "PatternState",
    "compare",
    "needs_rendering",
    "url_pattern",
]

#: Comparisons a pattern's decision rests on (the last ones made).
SAMPLES = 3
#: A decided pattern's every Nth page is fetched both ways and compared again.
RECHECK_EVERY = 20
#: Patterns remembered per host; pages of further patterns share the host's ``*``.
MAX_PATTERNS_PER_HOST = 64
#: Hosts remembered; the least recently used is forgotten beyond this.
MAX_HOSTS = 10_000
#: Visible words that rendering must add (at least this many, and 10% of the HTTP page's)
#: for the text to count as changed: a cookie notice is not content.
MIN_ADDED_WORDS = 20
MIN_ADDED_SHARE = 0.10


def url_pattern(url: str) -> str:
    """The pattern of ``url``'s path: its first segment with every run of digits made ``*``,
    then ``/*`` if the path goes on (``/app/12`` -> ``/app/*``, ``/p7.html`` -> ``/p*.html``,
    ``/`` -> ``/``)."""
    path = urlsplit(url).path or "/"
    first, slash, _ = path[1:].partition("/")
    out = []
    digits = False
    for char in first:
        if char.isdigit():
            if not digits:
                out.append("*")
            digits = True
        else:
            out.append(char)
            digits = False
    return "/" + "".join(out) + ("/*" if slash else "")


@dataclass(frozen=True)
class Comparison:
    """What rendering changed on one page fetched both ways."""

    added_links: int  #: hrefs in the rendered DOM that the HTTP body lacks
    title_changed: bool  #: the rendered title is set and differs
    added_words: int  #: visible words the rendered DOM has beyond the HTTP body's
    http_words: int  #: visible words of the HTTP body

    @property
    def changed(self) -> bool:
        """Whether rendering changed what is extracted."""
        words = self.added_words >= max(MIN_ADDED_WORDS, MIN_ADDED_SHARE * self.http_words)
        return self.added_links > 0 or self.title_changed or words

    def reason(self) -> str:
        if not self.changed:
            return "rendering changed no link, title or text"
        parts = []
        if self.added_links:
            parts.append(f"{self.added_links} links")
        if self.added_words:
            share = self.added_words / max(self.http_words, 1)
            parts.append(f"{self.added_words} words (+{share:.0%} text)")
        text = "rendering added " + ", ".join(parts) if parts else "rendering"
        return text + (" and set the title" if self.title_changed else "")


def _extract(body: bytes) -> tuple[set[str], str, Counter[str]]:
    from ..model.tree import Tree  # here: only auto mode needs it

    tree = Tree(body)
    links = {str(node.attributes.get("href") or "").strip() for node in tree.css("a[href]")}
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    text = tree.body.text(separator=" ", strip=True) if tree.body is not None else ""
    return links, title, Counter(text.split())


def compare(http_body: bytes, rendered_body: bytes) -> Comparison:
    """Compare a page's HTTP body with its rendered DOM: links (``a[href]``), title, and
    visible words (outside scripts, styles, ``noscript`` and templates)."""
    http_links, http_title, http_words = _extract(http_body)
    links, title, words = _extract(rendered_body)
    return Comparison(
        added_links=len(links - http_links),
        title_changed=bool(title) and title != http_title,
        added_words=sum((words - http_words).values()),
        http_words=sum(http_words.values()),
    )


class PatternState:
    """The last :data:`SAMPLES` comparisons of one pattern, and pages since the last."""

    __slots__ = ("pages", "reason", "window")

    def __init__(self) -> None:
        self.window: deque[bool] = deque(maxlen=SAMPLES)
        self.pages = 0
        self.reason = ""

    @property
    def decision(self) -> str:
        """``render``, ``http`` or ``sample`` (not enough comparisons yet)."""
        if any(self.window):
            return "render"
        return "http" if len(self.window) == SAMPLES else "sample"

    def due(self) -> bool:
        """Count a page of the decided pattern; true for every :data:`RECHECK_EVERY`-th."""
        self.pages += 1
        return self.pages % RECHECK_EVERY == 0

    def observe(self, comparison: Comparison) -> None:
        changed = comparison.changed
        if changed or not any(self.window):
            self.reason = comparison.reason()
        self.window.append(changed)


class AutoFetcher:
    """:class:`Fetcher` for ``render_auto``: fetch over HTTP or render, as learnt per host
    and URL pattern (see the module's text), or as the ``render_if`` predicate says.

    Each response's ``render_note`` (the record's ``data.rendered``) says what was decided
    and why: ``{"decision": "render" | "http", "pattern": ..., "reason": ...}``, with
    ``"sampled": true`` when the page was fetched both ways. With ``render_if`` the note is
    not set (``data.rendered`` is then true or false).

    ``fetch`` raises what the HTTP fetcher or the renderer raises.
    """

    def __init__(self, http: Fetcher, renderer: Renderer, config: CrawlConfig) -> None:
        self._http = http
        self._renderer = renderer
        self._predicate = config.render_if
        self._hosts: OrderedDict[str, dict[str, PatternState]] = OrderedDict()

    def state(self, url: str) -> tuple[str, PatternState]:
        """The pattern of ``url`` and its state (made if new), within the bounds."""
        parts = urlsplit(url)
        host = parts.netloc.lower()
        patterns = self._hosts.get(host)
        if patterns is None:
            patterns = self._hosts[host] = {}
            if len(self._hosts) > MAX_HOSTS:
                self._hosts.popitem(last=False)
        else:
            self._hosts.move_to_end(host)
        pattern = url_pattern(url)
        state = patterns.get(pattern)
        if state is None:
            if len(patterns) >= MAX_PATTERNS_PER_HOST:
                pattern = "*"
                state = patterns.get(pattern)
            if state is None:
                state = patterns[pattern] = PatternState()
        return pattern, state

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response:
        if method != "GET" or body is not None:
            # A form post or an API query: never rendered.
            return await self._http.fetch(url, headers=headers, method=method, body=body)
        async with self.open_page(url, headers=headers) as (response, _):
            return response

    @asynccontextmanager
    async def open_page(
        self,
        url: str,
        setup: BrowserSetup | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[Response, TabActions | None]]:
        """Fetch ``url`` (a GET) as :meth:`fetch` does and, when the page was rendered, hold
        its tab until the block is left, as :meth:`Renderer.open_page` does (``setup``: the
        route's waits and capture): the response, and the tab's actions; None for a page
        fetched over HTTP only (and for a sampled page whose rendering changed nothing: its
        record is the HTTP body, and its tab is let go before the block). ``headers`` (a
        scraper request's own, a recrawl's validators) go with the HTTP request; the browser
        sends none of them.

        Raises:
            FetchError: as :meth:`fetch`.
        """
        async with contextlib.AsyncExitStack() as held:
            yield await self._open(held, url, setup, headers)

    async def _render(
        self, held: contextlib.AsyncExitStack, url: str, setup: BrowserSetup | None
    ) -> tuple[Response, TabActions | None]:
        return await held.enter_async_context(self._renderer.open_page(url, setup))

    async def _open(
        self,
        held: contextlib.AsyncExitStack,
        url: str,
        setup: BrowserSetup | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[Response, TabActions | None]:
        if self._predicate is not None:
            return await self._by_predicate(held, url, setup, headers)
        pattern, state = self.state(url)
        decision = state.decision
        check = decision == "sample" or state.due()
        if decision == "render" and not check:
            if _conditional(headers):
                # A recrawl's revalidation: the browser cannot send it, so HTTP asks first
                # and only a changed page is rendered.
                checked = await self._http.fetch(url, headers=headers)
                if not 200 <= checked.status < 300:
                    return _noted(checked, "http", pattern, f"HTTP {checked.status}"), None
                url = checked.final_url
            response, tab = await self._render(held, url, setup)
            if not response.rendered:  # the browser took it as it came (not HTML)
                return _noted(response, "http", pattern, "not an HTML page"), tab
            return _noted(response, "render", pattern, state.reason), tab
        response = await self._http.fetch(url, headers=headers)
        if not 200 <= response.status < 300:
            return _noted(response, "http", pattern, f"HTTP {response.status}"), None
        from ..model.parse import is_html  # here: _parse is heavy and only auto mode needs it

        if not is_html(response.fields.get("content-type"), response.content):
            return _noted(response, "http", pattern, "not an HTML page"), None
        if not check:
            return _noted(response, "http", pattern, state.reason), None
        async with contextlib.AsyncExitStack() as trial:
            rendered, tab = await self._render(trial, response.final_url, setup)
            if not rendered.rendered:  # the browser took it as it came (not HTML after all)
                return _noted(response, "http", pattern, "not an HTML page", sampled=True), None
            comparison = compare(response.content, rendered.content)
            state.observe(comparison)
            if comparison.changed:
                held.push_async_exit(trial.pop_all())  # the tab is held with the page
                return _noted(rendered, "render", pattern, comparison.reason(), sampled=True), tab
        return _noted(response, "http", pattern, comparison.reason(), sampled=True), None

    async def _by_predicate(
        self,
        held: contextlib.AsyncExitStack,
        url: str,
        setup: BrowserSetup | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[Response, TabActions | None]:
        assert self._predicate is not None
        response = await self._http.fetch(url, headers=headers)
        if not 200 <= response.status < 300:
            return response, None
        if not self._predicate(response.final_url, response.content):
            return response, None
        return await self._render(held, response.final_url, setup)


_CONDITIONAL = frozenset({"if-none-match", "if-modified-since"})


def _conditional(headers: Mapping[str, str] | None) -> bool:
    return headers is not None and any(name.lower() in _CONDITIONAL for name in headers)


def _noted(
    response: Response, decision: str, pattern: str, reason: str, *, sampled: bool = False
) -> Response:
    note: dict[str, Any] = {"decision": decision, "pattern": pattern, "reason": reason}
    if sampled:
        note["sampled"] = True
    response.render_note = note
    return response


#: A page with less visible text than this (characters) and fewer links than
#: :data:`AUTO_MIN_LINKS` is "almost empty" for :func:`needs_rendering`.
AUTO_MIN_TEXT = 200
AUTO_MIN_LINKS = 2


def needs_rendering(content_type: str | None, body: bytes) -> bool:
    """Whether an HTML page fetched over HTTP probably builds its content in JavaScript: it
    has a ``<script>`` and almost nothing else (under 200 characters of visible text and
    fewer than 2 links). Kept for ``render_if`` predicates that want the old rule."""
    from ..model.parse import is_html  # here: _parse is heavy and only auto mode needs it

    if not is_html(content_type, body) or b"<script" not in body.lower():
        return False
    from ..model.tree import Tree

    tree = Tree(body)
    links = len(tree.css("a[href]"))
    if links >= AUTO_MIN_LINKS:
        return False
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    text = tree.body.text(separator=" ", strip=True) if tree.body is not None else ""
    return len(text) < AUTO_MIN_TEXT
