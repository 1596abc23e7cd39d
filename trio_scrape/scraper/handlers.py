"""Handlers: a function per page type, chosen by the label of the request that made the page.

A :class:`Router` maps labels to handlers (and a default for unlabelled pages); each page's
handler gets a :class:`Context` with the page, its request (label, data), selectors,
``json()``, URL resolution exactly as the page's own links are resolved, and the two ways
out: :meth:`Context.push` for items and :meth:`Context.enqueue` for requests. A handler is a
plain function or an ``async`` one; it may also ``return`` or ``yield`` items and
:class:`~trio_scrape.Request` values (the Scrapy style) instead of calling those::

    router = Router()

    @router.default
    def listing(ctx: Context) -> None:
        for quote in ctx.css(".quote"):
            ctx.push({"text": quote.css_first(".text").text()})
        ctx.enqueue_links("li.next a")
        ctx.enqueue_links(".quote a[href*=author]", label="author")

    @router.handler("author")
    async def author(ctx: Context) -> None:
        ctx.push({"name": ctx.text("h3.author-title")})

Handlers run in the page pipeline, inside the page's deadline (its cancel scope): an
``await`` in a handler is cancelled with the page. An exception in a handler becomes the
page's ``extract`` error; items pushed before it are kept. :class:`~trio_scrape.LoginFailed`
(raised by a handler, or by :meth:`Context.require`) stops the crawl instead.

A log-in (the *start-up step*): ``@router.on_start`` names a function of the seeds that
returns the requests to make first. They, and every request their pages' handlers enqueue,
are made one at a time, in order, before any seed is dispatched; their pages are not
records. Any failure in the step (a handler raising ``LoginFailed``, an HTTP error, a fetch
that fails after its retries) stops the crawl::

    @router.on_start
    def log_in(seeds: list[str]) -> Request:
        return Request(urljoin(seeds[0], "/login"), label="login")

    @router.handler("login")
    def login(ctx: Context) -> Any:
        if ctx.page.method == "GET":  # the form: post it back with its CSRF token
            return ctx.form(values={"username": "ada", "password": "secret"}, label="login")
        ctx.require("a[href='/logout']", "wrong user name or password")  # logged in?
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from orjson import dumps as _dumps

from ..errors import BrowserActionError, LoginFailed
from ..model.page import Page
from ..model.parse import normalise_space
from ..model.request import Request, RequestError
from ..model.rows import RowIndex
from ..model.urls import LinkResolver
from .browser import DEFAULT_CAPTURE_BYTES, DEFAULT_CAPTURE_COUNT, BrowserSetup, BrowserTab
from .items import ItemError, Items, encode_item

if TYPE_CHECKING:
    import jmespath.parser
    from selectolax.lexbor import LexborNode

    from .forms import FieldValues

__all__ = ["Context", "Handler", "Route", "Router"]

#: A handler: ``handler(ctx)``, plain or ``async``, a generator or an async generator.
Handler = Callable[["Context"], Any]

#: Items one page may emit (a bound, like every other in trio-scrape: a handler in a loop
#: fails its page instead of exhausting memory).
MAX_ITEMS_PER_PAGE = 100_000
#: Requests one page may enqueue.
MAX_REQUESTS_PER_PAGE = 100_000


class Route:
    """A handler with the item type it declares (None: any item) and the browser settings of
    its rendered pages (None: the crawl's)."""

    __slots__ = ("browser", "handler", "item_type", "label")

    def __init__(
        self,
        label: str | None,
        handler: Handler,
        item_type: type[Any] | None,
        browser: BrowserSetup | None = None,
    ) -> None:
        self.label = label
        self.handler = handler
        self.item_type = item_type
        self.browser = browser


class Router:
    """Handlers by label: ``@router.handler("LABEL")``, and ``@router.default`` for pages
    whose request has no label (or a label with no handler of its own, when
    ``default_for_unknown`` is true).

    ``item=`` declares the type of the items a handler emits (a dataclass, a TypedDict, a
    pydantic model, a msgspec struct): an item that does not fit is reported and not written.

    Raises:
        ValueError: a label gets a second handler.
    """

    def __init__(self, *, default_for_unknown: bool = False) -> None:
        self._routes: dict[str | None, Route] = {}
        self.default_for_unknown = default_for_unknown
        self._on_start: Callable[[list[str]], Any] | None = None

    def on_start(self, function: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
        """Register the decorated function as the crawl's start-up step (a log-in):
        ``function(seeds)`` (the crawl's seed URLs) returns the requests to make before
        any seed (a :class:`~trio_scrape.Request`, a URL, several, or None). See the
        module's text.

        Raises:
            ValueError: the router already has a start-up step.
        """
        if self._on_start is not None:
            raise ValueError("the router already has a start-up step")
        if not callable(function):
            raise TypeError(f"on_start needs a function, not {type(function).__name__}")
        self._on_start = function
        return function

    def startup(self, seeds: list[str]) -> list[Request]:
        """The start-up step's requests for ``seeds`` (none without ``on_start``).

        Raises:
            RequestError: the function returned something that is not a request or a URL.
        """
        if self._on_start is None:
            return []
        result = self._on_start(list(seeds))
        if result is None:
            return []
        if isinstance(result, Request | str) or not isinstance(result, Iterable):
            result = [result]
        requests = []
        for value in result:
            if isinstance(value, str):
                value = Request(value)
            if not isinstance(value, Request):
                raise RequestError(
                    f"on_start: returned {type(value).__name__}, not a Request or a URL"
                )
            requests.append(value)
        return requests

    def handler(
        self,
        label: str | None = None,
        *,
        item: type[Any] | None = None,
        render_wait_for: str | None = None,
        render_wait_js: str | None = None,
        render_delay: float | None = None,
        capture: str | None = None,
        capture_max: int = DEFAULT_CAPTURE_COUNT,
        capture_max_bytes: int = DEFAULT_CAPTURE_BYTES,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of ``label`` (None: default).

        With ``--render``, the route's pages wait for ``render_wait_for`` (CSS),
        ``render_wait_js`` and ``render_delay`` instead of the crawl's waits, and
        ``capture`` (a regular expression) keeps the answers to the page's own XHR/``fetch``
        requests whose URL it matches (``ctx.browser.captured()``); see
        :class:`~trio_scrape.scraper.browser.BrowserSetup`.

        Raises:
            ValueError: a selector, expression or pattern that cannot be used.
        """
        setup = BrowserSetup(
            wait_for=render_wait_for,
            wait_js=render_wait_js,
            delay=render_delay,
            capture=capture,
            capture_max=capture_max,
            capture_max_bytes=capture_max_bytes,
        )

        def register(function: Handler) -> Handler:
            self.add(label, function, item=item, browser=setup or None)
            return function

        return register

    def default(self, function: Handler) -> Handler:
        """Register the decorated function as the handler of unlabelled pages."""
        self.add(None, function)
        return function

    def add(
        self,
        label: str | None,
        function: Handler,
        *,
        item: type[Any] | None = None,
        browser: BrowserSetup | None = None,
    ) -> None:
        """Register ``function`` for ``label`` (None: the default handler), with the browser
        settings of its rendered pages (``browser``)."""
        if label in self._routes:
            name = "the default handler" if label is None else f"label {label!r}"
            raise ValueError(f"{name} already has a handler")
        if not callable(function):
            raise TypeError(f"a handler must be callable, not {type(function).__name__}")
        self._routes[label] = Route(label, function, item, browser)

    @property
    def labels(self) -> frozenset[str]:
        """The labels with a handler of their own."""
        return frozenset(label for label in self._routes if label is not None)

    def reference(self) -> str | None:
        """``module:name`` of this router in the module of one of its handlers (how a worker
        process finds it), or None when no module holds it by name."""
        for route in self._routes.values():
            module = sys.modules.get(getattr(route.handler, "__module__", None) or "")
            if module is None or module.__name__ == "__main__":
                continue
            for name, value in vars(module).items():
                if value is self:
                    return f"{module.__name__}:{name}"
        return None

    def browser_setup_for(self, label: str | None, url: str) -> BrowserSetup | None:
        """The browser settings for a page of ``url`` whose request has ``label`` (None:
        the crawl's)."""
        route = self.route(label)
        return None if route is None else route.browser

    def route(self, label: str | None) -> Route | None:
        """The route of a page whose request has ``label``; None: no handler for it."""
        found = self._routes.get(label)
        if found is None and label is not None and self.default_for_unknown:
            return self._routes.get(None)
        return found

    async def run(self, route: Route, ctx: Context) -> None:
        """Run ``route``'s handler on ``ctx``; what it returns or yields goes to ``ctx``."""
        result = route.handler(ctx)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return
        if inspect.isasyncgen(result):
            await _drain_async(result, ctx)
            return
        if isinstance(result, Request | str | Mapping) or not isinstance(result, Iterable):
            ctx.emit(result)
            return
        push = ctx.push
        for value in result:
            if isinstance(value, _TARGETS):
                ctx.enqueue(value)
            else:
                push(value)


async def _drain_async(results: AsyncIterator[Any], ctx: Context) -> None:
    async for value in results:
        ctx.emit(value)


class Context:
    """What a handler has at hand for one page.

    Attributes:
        page: the page (its record: ``status``, ``title``, ``data``...; and the response:
            ``content``, ``text``, ``html``, ``headers``).
        request: the request that made the page (its ``label``, ``data``, ``method``).
        items: the items emitted so far (JSON objects, in order).
        item_errors: why each item refused so far was refused (see :meth:`push`).
        browser: the tab of a rendered page, held while the handler runs (click, fill,
            select, scroll, evaluate, captured answers, screenshots: see
            :class:`~trio_scrape.scraper.browser.BrowserTab`); None for a page that was not
            rendered (without ``--render``, or a non-HTML document).
    """

    def __init__(
        self,
        page: Page,
        request: Request,
        *,
        base: str,
        resolver: LinkResolver,
        item_type: type[Any] | None = None,
        browser: BrowserTab | None = None,
    ) -> None:
        self.page = page
        self.browser = browser
        self.request = request
        self.items = Items()
        self.item_errors: list[str] = []
        # What the page enqueued, in order: a plain GET as its URL (a browser URL), which
        # takes the links' path (no Request made, nothing checked again).
        self._queued: list[str | Request] = []
        self._links_only = True  # nothing but plain GETs in _queued
        self._base = base
        self._resolver = resolver
        self._item_type = item_type
        self._json: Any = _UNREAD
        # The css() selections, as rows: text_of reads a field of every row with one query.
        self._rows = RowIndex()

    # --------------------------------------------------------------------------- reading

    @property
    def label(self) -> str | None:
        """The page's label (its request's)."""
        return self.request.label

    @property
    def data(self) -> Mapping[str, Any]:
        """The data its request carried (empty when none)."""
        return self.request.data or {}

    def css(self, query: str) -> list[LexborNode]:
        """Every element ``query`` matches (none on a page that is not HTML)."""
        html = self.page.html
        if html is None:
            return []
        nodes = html.css(query)
        self._rows.add(nodes)
        return nodes

    def css_first(self, query: str) -> LexborNode | None:
        """The first element ``query`` matches, or None."""
        html = self.page.html
        return None if html is None else html.css_first(query)

    def text(self, query: str, default: str | None = None) -> str | None:
        """The whitespace-normalised text of the first match of ``query`` (``default``
        when nothing matches)."""
        node = self.css_first(query)
        return default if node is None else normalise_space(node.text_lexbor())

    def text_of(self, node: LexborNode, query: str, default: str | None = None) -> str | None:
        """The whitespace-normalised text of the first match of ``query`` inside ``node``
        (``node`` itself included; ``default`` when nothing matches).

        For the elements of one :meth:`css` selection that are siblings (the items of a
        list), a field is asked once for all of them, not once per element (see
        :mod:`trio_scrape.model.rows`): the loop ``for row in ctx.css(...)`` reading
        ``ctx.text_of(row, ...)`` costs one query per field. A field's texts are read the
        first time it is asked for: change the tree (``decompose``...) before, not between.
        """
        return self._rows.text(node, query, default)

    def texts(self, query: str) -> list[str]:
        """The whitespace-normalised text of every match of ``query``."""
        return [normalise_space(node.text_lexbor()) for node in self.css(query)]

    def require(self, query: str, message: str | None = None) -> LexborNode:
        """The first element ``query`` matches; when none does, the log-in failed: raise
        :class:`~trio_scrape.LoginFailed` (with ``message``, or one naming ``query``),
        which stops the crawl. For a log-in handler's check ("a Logout link is there"), or a
        page handler's ("still logged in")."""
        node = self.css_first(query)
        if node is None:
            raise LoginFailed(message or f"nothing matches {query!r} on {self.page.url}")
        return node

    def json(self) -> Any:
        """The body parsed as JSON (read once).

        Raises:
            ValueError: the body is not JSON.
        """
        if self._json is _UNREAD:
            self._json = self.page.json()
        return self._json

    def use_json(self, value: Any) -> None:
        """Make :meth:`json` (and :meth:`jmes`) read ``value`` instead of the body (a TOML
        route's captured answers)."""
        self._json = value

    def jmes(self, expression: str | jmespath.parser.ParsedResult) -> Any:
        """A JMESPath expression over :meth:`json` (None when it selects nothing)."""
        from ..model.jmes import jmespath_search

        return jmespath_search(expression, self.json())

    def urljoin(self, href: str) -> str:
        """``href`` resolved as the page's own links are (its URL, ``<base href>``, its
        encoding for the query), as a browser URL.

        Raises:
            RequestError: ``href`` does not resolve to an http(s) URL.
        """
        resolved, _ = self._resolver.resolve(self._base, [href], encoding=self.page.encoding)
        if not resolved:
            raise RequestError(f"url: {href!r} does not resolve to an http(s) URL")
        return resolved[0]

    @property
    def requests(self) -> list[Request]:
        """The requests enqueued so far, in order (a new list: enqueue with
        :meth:`enqueue`)."""
        link = Request.link
        return [link(one) if isinstance(one, str) else one for one in self._queued]

    def enqueued(self) -> tuple[list[Request], list[str]]:
        """What the page enqueued, for the crawl: ``(requests, links)``. When every one is a
        plain GET (no label, data, headers, body or key), they are ``links`` (their URLs, the
        frontier's cheapest path) and ``requests`` is empty; otherwise all are ``requests``,
        in order."""
        if self._links_only:
            return [], self._queued  # type: ignore[return-value]  # only str in it
        return self.requests, []

    async def refresh(self) -> None:
        """Read the rendered page's DOM again (after browser actions changed it): the
        selectors, ``page.html`` and ``page.text`` see it from then on.

        Raises:
            BrowserActionError: the page was not rendered, or its tab failed.
        """
        if self.browser is None:
            raise BrowserActionError("refresh: the page was not rendered (no --render)")
        from ..model.parse import parse_html

        text = await self.browser.content()
        self.page.text = text
        self.page.html = parse_html(text, want_links=False, want_base=False).tree
        self._json = _UNREAD
        self._rows.clear()

    # ------------------------------------------------------------------------------- out

    def push(self, item: Any) -> bool:
        """Emit an item (a dict, a dataclass, a pydantic model, a msgspec struct); returns
        whether it was taken. One that is not an item, not JSON-serialisable or not of the
        handler's item type is not written: the reason (naming the field) goes to
        :attr:`item_errors`, the page's record counts it (``data.invalid_items``), and the
        handler goes on.

        Raises:
            ItemError: the page emitted more than ``MAX_ITEMS_PER_PAGE`` items (a handler
                in a loop).
        """
        items = self.items
        if len(items) >= MAX_ITEMS_PER_PAGE:
            raise ItemError(f"more than {MAX_ITEMS_PER_PAGE:,} items from one page")
        if type(item) is dict and self._item_type is None:  # the common case, inline
            try:
                items.lines.append(_dumps(item))
                items.append(item)
                return True
            except TypeError:
                pass  # not JSON: encode_item says why
        try:
            taken, line = encode_item(item, self._item_type)
        except ItemError as exc:
            self.item_errors.append(str(exc))
            return False
        items.append(taken)
        items.lines.append(line)
        return True

    def enqueue(
        self,
        target: str | Request | Iterable[str | Request],
        *,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
        **more: Any,
    ) -> None:
        """Enqueue requests: a URL (relative ones resolve as the page's links), a
        :class:`~trio_scrape.Request`, or several. ``label`` and ``data`` (and ``method``,
        ``headers``, ``body``, ``dedup_key``, ``dont_dedup``) apply to URLs given as text.
        They are still subject to the crawl's scope, include/exclude, depth and dedup.

        Raises:
            RequestError: a URL or a field is not valid (the message names it).
        """
        targets = [target] if isinstance(target, _TARGETS) else list(target)
        queued = self._queued
        if len(queued) + len(targets) > MAX_REQUESTS_PER_PAGE:
            raise RequestError(f"more than {MAX_REQUESTS_PER_PAGE:,} requests from one page")
        plain = label is None and data is None and not more
        for one in targets:
            if isinstance(one, Request):
                queued.append(one)
                self._links_only = False
            elif plain:
                queued.append(self.urljoin(one))
            else:
                queued.append(Request(self.urljoin(one), label=label, data=data, **more))
                self._links_only = False

    def enqueue_links(
        self,
        selector: str = "a[href]",
        *,
        attr: str = "href",
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Enqueue the URLs in ``attr`` of every element ``selector`` matches (resolved as
        the page's links); returns how many. Hrefs that are not http(s) URLs are skipped."""
        html = self.page.html
        if html is None:
            return 0
        # All <a> elements by tag name: the same elements, in the same order, as CSS "a"
        # (svg's and MathML's included), without a selector query (~3 us a page).
        nodes = html.tags("a") if attr == "href" and selector in _ALL_LINKS else html.css(selector)
        hrefs = [href for node in nodes if (href := node.attributes.get(attr))]
        return self.enqueue_hrefs(hrefs, label=label, data=data)

    def enqueue_hrefs(
        self,
        hrefs: list[str],
        *,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Enqueue ``hrefs`` resolved as the page's links are, in one pass (the label and
        data are checked once); returns how many. Hrefs that are not http(s) URLs are
        skipped.

        Raises:
            RequestError: the label or data is not valid.
        """
        urls, _ = self._resolver.resolve(self._base, hrefs, encoding=self.page.encoding)
        if not urls:
            return 0
        queued = self._queued
        if len(queued) + len(urls) > MAX_REQUESTS_PER_PAGE:
            raise RequestError(f"more than {MAX_REQUESTS_PER_PAGE:,} requests from one page")
        if label is None and data is None:
            queued += urls  # plain GETs: their URLs
            return len(urls)
        first = Request(urls[0], label=label, data=data)
        queued.append(first)
        queued += [first.with_browser_url(url) for url in urls[1:]]
        self._links_only = False
        return len(urls)

    def form(
        self,
        selector: str | None = None,
        *,
        index: int = 0,
        values: Mapping[str, FieldValues] | Iterable[tuple[str, FieldValues]] | None = None,
        clicked: str | None = None,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Request:
        """The request a browser would submit for a form of this page (chosen by CSS
        ``selector`` or position ``index``), with ``values`` filled in and the ``clicked``
        submit button (CSS; default: the first): hidden inputs, defaults, the page's
        encoding and ``<base href>`` included (HTML's form submission algorithm). Enqueue it
        with :meth:`enqueue`. ``options`` go to ``form_submission``.

        Raises:
            FormError: no form matches, or the values or button do not fit it.
        """
        from .forms import form_submission

        submission = form_submission(
            self.page, selector=selector, index=index, values=values, clicked=clicked, **options
        )
        return Request(
            submission.url,
            method=submission.method,
            headers=submission.headers or None,
            body=submission.body,
            label=label,
            data=data,
        )

    def emit(self, value: Any) -> None:
        """What a handler returned or yielded: a request (or URL text) to enqueue, or an
        item to push."""
        if isinstance(value, _TARGETS):
            self.enqueue(value)
        else:
            self.push(value)


_TARGETS = (Request, str)
_ALL_LINKS = frozenset({"a", "a[href]"})


class _Unread:
    pass


_UNREAD: Any = _Unread()
