"""Spiders without code: a TOML file (or the same tables from Python) compiled into a
:class:`~trio_scrape.Router` whose handlers do what the file says.

The file has three tables::

    start = ["https://quotes.example/"]   # URLs, requests, or forms to submit

    [options]                              # any option of `run`, as a --config file has it
    max-pages = 1000

    [routes.listing]                       # a route: the pages labelled "listing"...
    match = "*/page/*"                     # ...and the unlabelled pages whose URL matches
    merge_data = true                      # the request's data joined into the items

    [[routes.listing.items]]               # items: one per element `each` matches
    each = "div.quote"
    fields = { text = "span.text", tags = { css = "a.tag", many = true } }
    follow = [{ css = "a.author", label = "author", data = { quote = "{item.text}" } }]

    [routes.listing.pagination]            # the next page: a link, or a page number
    next = "li.next a"

    [routes.author]
    items = { fields = { name = "h3.author-title" } }

Everything is checked when the file is loaded, before anything is fetched: an unknown key, a
value of the wrong type, a CSS selector, a JMESPath expression or a regular expression that
does not compile, a label no route handles; the error (:class:`TomlSpiderError`) is one line
naming the key and its line in the file.

A compiled router runs through the very same engine as a Python one (worker processes find it
again by its file: :meth:`SpiderRouter.reference`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.parse import first_text, normalise_space
from ..model.request import Request, RequestError
from .browser import BrowserSetup
from .handlers import Context, Router

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "SpiderRouter",
    "TomlSpider",
    "TomlSpiderError",
    "load_toml_spider",
    "toml_spider",
]

#: The largest spider file read.
MAX_FILE_BYTES = 1024 * 1024
#: Values one `each` (of a submit rule) or one `pages` range may give on a page.
MAX_EACH = 10_000

Path_ = tuple[str | int, ...]


class TomlSpiderError(ValueError):
    """A spider's tables that cannot be compiled: ``message`` names the key (``path``) and,
    for a file, its ``line``."""

    def __init__(self, message: str, path: Path_ = (), line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        key = f"{dotted(self.path)}: " if self.path else ""
        message = re.sub(r"\s*[\r\n]+\s*", " ", self.message).strip()  # one line, always
        return f"{where}{key}{message}"


def dotted(path: Path_) -> str:
    """``("routes", "a", "items", 0, "each")`` as ``routes.a.items[0].each``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else repr(part)
            text += f".{shown}" if text else shown
    return text


# ----------------------------------------------------------------------- selectors (values)

_PSEUDO = re.compile(r"::(?:(attr|abs|url)\(\s*([^()\s]+)\s*\)|(text))\s*$")
_PROBE: LexborHTMLParser | None = None


def _check_css(css: str, path: Path_) -> None:
    global _PROBE
    from selectolax.lexbor import LexborHTMLParser, SelectolaxError

    if _PROBE is None:
        _PROBE = LexborHTMLParser("<p></p>")
    if not css.strip():
        raise TomlSpiderError("an empty CSS selector", path)
    try:
        _PROBE.css(css)
    except SelectolaxError:
        raise TomlSpiderError(f"bad CSS selector {css!r}", path) from None


def _check_jmes(expression: str, path: Path_) -> Any:
    from ..model.jmes import compile_jmes

    try:
        return compile_jmes(expression)
    except ValueError as exc:
        raise TomlSpiderError(str(exc), path) from None


@dataclasses.dataclass
class Value:
    """One value taken from a page: CSS (text, an attribute, an absolute URL), JMESPath, a
    constant, or the request's data; then a regex capture; first match, or all (``many``)."""

    path: Path_
    css: str | None = None
    pseudo: str = "text"  # text, attr, abs
    attr: str | None = None
    jmes: Any = None  # a compiled JMESPath expression
    constant: Any = None
    has_constant: bool = False
    data: str | None = None
    regex: re.Pattern[str] | None = None
    many: bool = False
    default: Any = None
    normalise: bool = True
    #: what :meth:`take` does without a trace, compiled once for this value's case (see
    #: :meth:`compile`)
    fast: Callable[[Context, Any], Any] | None = None

    @property
    def where(self) -> str:
        return dotted(self.path)

    def compile(self) -> Value:
        """Set :attr:`fast`: the cheapest function that takes this value (the same result
        as :meth:`take`), for the common cases: a CSS selector's text or attribute, a
        JMESPath expression, a constant, with no regex. Other cases go through
        :meth:`take`."""
        self.fast = _fast_taker(self)
        return self

    def take(self, ctx: Context, scope: Any, trace: Trace | None) -> Any:
        fast = self.fast
        if fast is not None and trace is None:
            return fast(ctx, scope)
        found = self._found(ctx, scope)
        if self.regex is not None:
            found = [c for c in (self._capture(v) for v in found) if c is not None]
        if self.normalise:
            found = [normalise_space(v) if isinstance(v, str) else v for v in found]
        if trace is not None:
            trace.saw(self.where, bool(found))
        if self.many:
            return found if found else ([] if self.default is None else self.default)
        return found[0] if found else self.default

    def hrefs(self, ctx: Context, scope: Any, trace: Trace | None) -> list[str] | None:
        """A link value's raw attributes, to be resolved as the page's links are; None when
        this value is not a plain ``::abs(...)`` of a CSS selector (a regex, a default)."""
        if self.pseudo != "abs" or self.css is None or self.regex is not None:
            return None
        if self.default is not None or self.attr is None:
            return None
        root = ctx.page.html if scope is None else scope
        if root is None:
            found: list[str] = []
        else:
            attr = self.attr
            found = [h for node in root.css(self.css) if (h := node.attributes.get(attr))]
        if trace is not None:
            trace.saw(self.where, bool(found))
        return found

    def _found(self, ctx: Context, scope: Any) -> list[Any]:
        if self.has_constant:
            return [self.constant]
        if self.data is not None:
            value = ctx.data.get(self.data)
            if value is None:
                return []
            return list(value) if isinstance(value, list) and self.many else [value]
        if self.jmes is not None:
            from ..model.jmes import jmespath_search

            root = ctx.json() if scope is None else scope
            value = jmespath_search(self.jmes, root)
            if value is None:
                return []
            if self.many:
                return [v for v in value if v is not None] if isinstance(value, list) else [value]
            return [value]
        assert self.css is not None
        if scope is None:
            scope = ctx.page.html
            if scope is None:
                return []
        nodes: list[LexborNode] = (
            scope.css(self.css) if self.many else [n for n in [scope.css_first(self.css)] if n]
        )
        values: list[Any] = []
        for node in nodes:
            if self.pseudo == "text":
                values.append(node.text_lexbor())
                continue
            assert self.attr is not None
            raw = node.attributes.get(self.attr)
            if raw is None:
                continue
            if self.pseudo == "abs":
                try:
                    raw = ctx.urljoin(raw)
                except RequestError:
                    continue  # not an http(s) URL (javascript:, mailto:...)
            values.append(raw)
        return values

    def _capture(self, value: Any) -> Any:
        assert self.regex is not None
        if not isinstance(value, str):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            value = str(value)
        match = self.regex.search(value)
        if match is None:
            return None
        return match.group(1) if self.regex.groups else match.group(0)


def _fast_taker(value: Value) -> Callable[[Context, Any], Any] | None:
    """:meth:`Value.take` for ``value``'s case, made once when the spider is loaded (no list
    per value, no pass for a regex or a normalisation it does not ask for); None for the
    cases that go through ``take`` (a regex, ``::abs``, ``data``)."""
    if value.regex is not None:
        return None
    default, many, normalise = value.default, value.many, value.normalise
    if value.has_constant:
        constant = value.constant
        if normalise and isinstance(constant, str):
            constant = normalise_space(constant)
        if many:
            return lambda ctx, scope: [constant]
        return lambda ctx, scope: constant
    if value.jmes is not None:
        return _fast_jmes(value.jmes, many, normalise, default)
    css = value.css
    if css is None or value.pseudo == "abs":
        return None
    if value.pseudo == "text":
        if many:

            def texts(ctx: Context, scope: Any) -> Any:
                root = ctx.page.html if scope is None else scope
                if root is None:
                    return [] if default is None else default
                if normalise:  # one pass: each text normalised as it is read
                    found = [" ".join(node.text_lexbor().split()) for node in root.css(css)]
                else:
                    found = [node.text_lexbor() for node in root.css(css)]
                return found or ([] if default is None else default)

            return texts
        if normalise:

            def text(ctx: Context, scope: Any) -> Any:
                if scope is not None:  # an item's element: the rows' path (model.rows)
                    return ctx.text_of(scope, css, default)
                root = ctx.page.html
                if root is None:
                    return default
                return first_text(root, css, default)

            return text

        def raw_text(ctx: Context, scope: Any) -> Any:
            root = ctx.page.html if scope is None else scope
            node = None if root is None else root.css_first(css)
            return default if node is None else node.text_lexbor()

        return raw_text
    attr = value.attr
    assert attr is not None
    if many:

        def attributes(ctx: Context, scope: Any) -> Any:
            root = ctx.page.html if scope is None else scope
            if root is None:
                return [] if default is None else default
            found = [
                raw for node in root.css(css) if (raw := node.attributes.get(attr)) is not None
            ]
            if normalise:
                found = [" ".join(raw.split()) for raw in found]
            return found or ([] if default is None else default)

        return attributes

    def attribute(ctx: Context, scope: Any) -> Any:
        root = ctx.page.html if scope is None else scope
        node = None if root is None else root.css_first(css)
        raw = None if node is None else node.attributes.get(attr)
        if raw is None:
            return default
        return " ".join(raw.split()) if normalise else raw

    return attribute


def _fast_jmes(
    expression: Any, many: bool, normalise: bool, default: Any
) -> Callable[[Context, Any], Any]:
    from ..model.jmes import jmespath_search

    def jmes(ctx: Context, scope: Any) -> Any:
        found = jmespath_search(expression, ctx.json() if scope is None else scope)
        if found is None:
            return ([] if default is None else default) if many else default
        if many:
            found = [v for v in found if v is not None] if isinstance(found, list) else [found]
            if normalise:
                found = [normalise_space(v) if isinstance(v, str) else v for v in found]
            return found or ([] if default is None else default)
        return normalise_space(found) if normalise and isinstance(found, str) else found

    return jmes


class Trace:
    """Which selectors matched something on a page (``trio-scrape parse``)."""

    def __init__(self) -> None:
        self.matched: dict[str, bool] = {}

    def saw(self, where: str, matched: bool) -> None:
        self.matched[where] = self.matched.get(where, False) or matched

    def unmatched(self) -> list[str]:
        return [where for where, matched in self.matched.items() if not matched]


# -------------------------------------------------------------------------- templates

_TEMPLATE = re.compile(r"\{\{|\}\}|\{(value|item\.[^{}]+|data\.[^{}]+|page\.(?:url|title))\}")


@dataclasses.dataclass
class Template:
    """A text with ``{item.NAME}``, ``{data.NAME}``, ``{value}``, ``{page.url}``; a text that
    is one reference alone gives the value as it is (a list stays a list)."""

    text: str
    refs: list[str]

    @classmethod
    def parse(cls, text: str, path: Path_, *, items: Iterable[str] | None, value: bool) -> Template:
        refs = []
        for match in _TEMPLATE.finditer(text):
            ref = match.group(1)
            if ref is None:
                continue
            if ref == "value" and not value:
                raise TomlSpiderError("{value} is given only by a rule with `each`", path)
            if ref.startswith("item."):
                if items is None:
                    raise TomlSpiderError(f"{{{ref}}}: there is no item here", path)
                if ref[5:] not in items:
                    raise TomlSpiderError(f"{{{ref}}}: the item has no field {ref[5:]!r}", path)
            refs.append(ref)
        rest = _TEMPLATE.sub("", text)
        if "{" in rest or "}" in rest:
            raise TomlSpiderError(
                f"{text!r}: a brace that is not {{item.NAME}}, {{data.NAME}}, {{value}} or "
                "{page.url} (write {{ or }} for a brace)",
                path,
            )
        return cls(text, refs)

    def render(self, ctx: Context, item: Mapping[str, Any] | None, value: Any) -> Any:
        if not self.refs:
            return self.text.replace("{{", "{").replace("}}", "}")
        single = _TEMPLATE.fullmatch(self.text)
        if single is not None and single.group(1) is not None:
            return self._lookup(single.group(1), ctx, item, value)

        def one(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return match.group(0)[0]
            found = self._lookup(match.group(1), ctx, item, value)
            return "" if found is None else str(found)

        return _TEMPLATE.sub(one, self.text)

    @staticmethod
    def _lookup(ref: str, ctx: Context, item: Mapping[str, Any] | None, value: Any) -> Any:
        if ref == "value":
            return value
        if ref == "page.url":
            return ctx.page.url
        if ref == "page.title":
            return ctx.page.title
        kind, _, name = ref.partition(".")
        source: Mapping[str, Any] = (item or {}) if kind == "item" else ctx.data
        return source.get(name)


# ------------------------------------------------------------------------ compiled rules


@dataclasses.dataclass
class DataSpec:
    """What a rule passes along as the new request's data."""

    templates: dict[str, Template]

    def render(self, ctx: Context, item: Mapping[str, Any] | None, value: Any) -> dict[str, Any]:
        if not self.templates:
            return {}
        return {name: t.render(ctx, item, value) for name, t in self.templates.items()}


@dataclasses.dataclass
class Follow:
    path: Path_
    links: Value | None  # the links: a CSS value (href by default)
    url: Template | None
    label: str | None
    data: DataSpec

    def apply(self, ctx: Context, scope: Any, item: Mapping[str, Any] | None, trace: Any) -> None:
        data = self.data.render(ctx, item, None) or None
        if self.url is not None:
            url = self.url.render(ctx, item, None)
            if url:
                ctx.enqueue(str(url), label=self.label, data=data)
            return
        assert self.links is not None
        hrefs = self.links.hrefs(ctx, scope, trace)
        if hrefs is not None:  # links as the page has them: resolved in one pass
            ctx.enqueue_hrefs(hrefs, label=self.label, data=data)
            return
        urls = self.links.take(ctx, scope, trace)
        ctx.enqueue([u for u in urls if isinstance(u, str)], label=self.label, data=data)


@dataclasses.dataclass
class Submit:
    path: Path_
    form: str | None
    each: Value | None
    values: dict[str, Template]
    clicked: str | None
    label: str | None
    data: DataSpec

    def apply(self, ctx: Context, trace: Trace | None) -> None:
        if self.each is None:
            choices: list[Any] = [None]
        else:
            taken = self.each.take(ctx, None, trace)
            choices = [v for v in taken if v not in (None, "")][:MAX_EACH]
        for choice in choices:
            values = {
                name: "" if (v := t.render(ctx, None, choice)) is None else str(v)
                for name, t in self.values.items()
            }
            ctx.enqueue(
                ctx.form(
                    self.form,
                    values=values,
                    clicked=self.clicked,
                    label=self.label,
                    data=self.data.render(ctx, None, choice) or None,
                )
            )


@dataclasses.dataclass
class Pagination:
    path: Path_
    next: Value | None
    param: str | None
    start: int
    max: int | None
    has_next: Value | None

    def apply(self, ctx: Context, produced: int, trace: Trace | None) -> None:
        data = dict(ctx.data)
        if self.next is not None:
            number = int(data.get("_page", 1)) if isinstance(data.get("_page", 1), int) else 1
            if self.max is not None and number >= self.max:
                return
            if self.max is not None:
                data["_page"] = number + 1
            hrefs = self.next.hrefs(ctx, None, trace)
            if hrefs is not None:  # the first that is an http(s) URL, resolved as links are
                for href in hrefs:
                    if ctx.enqueue_hrefs([href], label=ctx.label, data=data or None):
                        break
                return
            links = [u for u in self.next.take(ctx, None, trace) if isinstance(u, str)][:1]
            if links:
                ctx.enqueue(links[0], label=ctx.label, data=data or None)
            return
        assert self.param is not None
        url = ctx.request.url
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        current = next((v for k, v in query if k == self.param), None)
        number = int(current) if current is not None and current.isdigit() else self.start
        if self.max is not None and number >= self.max:
            return
        more = bool(self.has_next.take(ctx, None, trace)) if self.has_next else produced > 0
        if not more:
            return
        query = [(k, v) for k, v in query if k != self.param] + [(self.param, str(number + 1))]
        following = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        ctx.enqueue(following, label=ctx.label, data=data or None)


@dataclasses.dataclass
class Items:
    path: Path_
    each: Value | None
    fields: dict[str, Value]
    follow: list[Follow]


@dataclasses.dataclass
class SpiderRoute:
    name: str
    path: Path_
    match: list[Callable[[str], bool]]
    items: list[Items]
    follow: list[Follow]
    submit: list[Submit]
    pagination: Pagination | None
    merge_data: bool
    browser: BrowserSetup | None = None
    scroll: int = 0

    async def prepare(self, ctx: Context) -> None:
        """On a rendered page: scroll it to the end (``scroll``), and with ``capture`` make
        ``jmes:`` read the list of the captured JSON answers (in the order they came)."""
        if ctx.browser is None:
            return
        if self.scroll:
            await ctx.browser.scroll_to_end(max_scrolls=self.scroll)
            await ctx.refresh()
        if self.browser is not None and self.browser.capture is not None:
            answers = []
            for answer in await ctx.browser.captured():
                try:
                    answers.append(answer.json())
                except ValueError:
                    continue
            ctx.use_json(answers)

    def handle(self, ctx: Context, trace: Trace | None) -> None:
        produced = 0
        merged = (
            {k: v for k, v in ctx.data.items() if not k.startswith("_")} if self.merge_data else {}
        )
        for block in self.items:
            if block.each is None:
                scopes: list[Any] = [None]
            else:
                scopes = _scopes(block.each, ctx, trace)
            fields = block.fields.items()
            for scope in scopes:
                item = dict(merged)
                for name, value in fields:
                    fast = value.fast
                    if fast is not None and trace is None:
                        item[name] = fast(ctx, scope)
                    else:
                        item[name] = value.take(ctx, scope, trace)
                ctx.push(item)
                produced += 1
                for rule in block.follow:
                    rule.apply(ctx, scope, item, trace)
        for rule in self.follow:
            rule.apply(ctx, None, None, trace)
        for submit in self.submit:
            submit.apply(ctx, trace)
        if self.pagination is not None:
            self.pagination.apply(ctx, produced, trace)


def _scopes(each: Value, ctx: Context, trace: Trace | None) -> list[Any]:
    """The elements (or JSON values) one item each is taken from."""
    if each.jmes is not None:
        from ..model.jmes import jmespath_search

        found = jmespath_search(each.jmes, ctx.json())
        scopes = [] if found is None else found if isinstance(found, list) else [found]
    else:
        scopes = [] if each.css is None else ctx.css(each.css)
    if trace is not None:
        trace.saw(each.where, bool(scopes))
    return scopes


# --------------------------------------------------------------------------- the router


class SpiderRouter(Router):
    """The router a spider's tables compile to: a handler per route (by label), and for
    unlabelled pages the first route whose ``match`` takes the page's URL.

    ``trace``: when set, which selectors matched (``trio-scrape parse`` sets it)."""

    def __init__(self, routes: list[SpiderRoute], source: Path | None, digest: str) -> None:
        super().__init__()
        self.routes = {route.name: route for route in routes}
        self.source = source
        self.digest = digest
        self.trace: Trace | None = None
        for route in routes:
            self.add(route.name, self._handler(route))
        self.matching = [route for route in routes if route.match]
        if self.matching:
            # A plain function unless a route may need the browser first (no coroutine a
            # page where none is awaited).
            plain = all(route.browser is None and not route.scroll for route in self.matching)
            self.add(None, self._unlabelled_plain if plain else self._unlabelled)

    def browser_only(self) -> list[str]:
        """The routes that cannot run without the browser (``--render``): those that scroll
        or capture the page's own answers."""
        return [
            name
            for name, route in self.routes.items()
            if route.scroll or (route.browser is not None and route.browser.capture is not None)
        ]

    def _handler(self, route: SpiderRoute) -> Callable[[Context], Any]:
        if route.browser is None and not route.scroll:

            def handler(ctx: Context) -> None:
                route.handle(ctx, self.trace)

        else:

            async def handler(ctx: Context) -> None:  # type: ignore[misc]
                await route.prepare(ctx)
                route.handle(ctx, self.trace)

        handler.__qualname__ = f"route {route.name}"
        return handler

    def browser_setup_for(self, label: str | None, url: str) -> BrowserSetup | None:
        route = self.route_for(label, url)
        return None if route is None else route.browser

    def route_for(self, label: str | None, url: str) -> SpiderRoute | None:
        """The route a page gets: by its label, else the first whose ``match`` takes
        ``url``."""
        if label is not None:
            return self.routes.get(label)
        return next((r for r in self.matching if any(m(url) for m in r.match)), None)

    def _unlabelled_route(self, ctx: Context) -> SpiderRoute:
        route = self.route_for(None, ctx.page.url)
        if route is None:
            raise LookupError(f"no route's `match` takes {ctx.page.url}")
        return route

    async def _unlabelled(self, ctx: Context) -> None:
        route = self._unlabelled_route(ctx)
        await route.prepare(ctx)
        route.handle(ctx, self.trace)

    def _unlabelled_plain(self, ctx: Context) -> None:
        self._unlabelled_route(ctx).handle(ctx, self.trace)

    def reference(self) -> str | None:
        """How a worker process loads this router again: from its file (checked to be the
        same text), or from the module that holds it by name."""
        if self.source is not None:
            encoded = str(self.source.resolve()).encode("utf-8", "surrogateescape").hex()
            return f"{__name__}:FILE_{encoded}_{self.digest}"
        for name, module in list(sys.modules.items()):
            if module is None or name == "__main__":
                continue
            for attribute, value in list(vars(module).items()):
                if value is self:
                    return f"{name}:{attribute}"
                if isinstance(value, TomlSpider) and value.router is self:
                    return f"{name}:{attribute}.router"
        return None


def __getattr__(name: str) -> Any:
    """``FILE_<path in hex>_<digest>``: the router of that spider file (a worker process's
    way to it: see :meth:`SpiderRouter.reference`)."""
    match = re.fullmatch(r"FILE_([0-9a-f]+)_([0-9a-f]+)", name)
    if match is None:
        raise AttributeError(name)
    path = Path(bytes.fromhex(match.group(1)).decode("utf-8", "surrogateescape"))
    spider = load_toml_spider(path)
    if spider.router.digest != match.group(2):
        raise TomlSpiderError(f"{path} changed since the crawl started")
    return spider.router


# ------------------------------------------------------------------------------ loading


@dataclasses.dataclass(frozen=True)
class TomlSpider:
    """What a spider's tables define: its router, its start requests, its options."""

    router: SpiderRouter
    start: tuple[str | Request, ...]
    options: dict[str, Any]
    #: the line of each key of ``options`` in the TOML text (none: tables given as a dict)
    option_lines: dict[str, int] = dataclasses.field(default_factory=dict)


def load_toml_spider(path: Path) -> TomlSpider:
    """Read and compile the spider file at ``path``.

    Raises:
        TomlSpiderError: it cannot be read, is not TOML, or does not compile (one line:
            the key and its line).
    """
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TomlSpiderError(f"cannot read it: {exc.strerror or exc}") from None
    except ValueError:
        raise TomlSpiderError("not a file name") from None
    if len(raw) > MAX_FILE_BYTES:
        raise TomlSpiderError(f"larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TomlSpiderError("not UTF-8 text") from None
    return toml_spider(text, source=path)


def toml_spider(spider: str | Mapping[str, Any], *, source: Path | None = None) -> TomlSpider:
    """Compile a spider from TOML text, or from its tables (a dict, as ``tomllib`` gives).

    Raises:
        TomlSpiderError: it does not compile (one line: the key, and with TOML text its
            line).
    """
    import tomllib

    text = spider if isinstance(spider, str) else None
    if isinstance(spider, str):
        try:
            tables: Mapping[str, Any] = tomllib.loads(spider)
        except RecursionError:
            raise TomlSpiderError("nested too deeply") from None
        except ValueError as exc:  # TOMLDecodeError, or an integer too long
            message = " ".join(str(exc).split())
            raise TomlSpiderError(f"not valid TOML: {message}") from None
    else:
        tables = spider
    digest = hashlib.sha256((text or repr(tables)).encode("utf-8", "surrogateescape"))
    try:
        compiled = _compile(tables, source, digest.hexdigest()[:16])
        if text is None:
            return compiled
        lines = {key: line_of(text, ("options", key)) for key in compiled.options}
        found = {key: line for key, line in lines.items() if line is not None}
        return dataclasses.replace(compiled, option_lines=found)
    except TomlSpiderError as exc:
        if text is not None and exc.path:
            exc.line = line_of(text, exc.path)
        raise
    except RecursionError:
        raise TomlSpiderError("nested too deeply") from None


_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def _compile(tables: Mapping[str, Any], source: Path | None, digest: str) -> TomlSpider:
    if not isinstance(tables, Mapping):
        raise TomlSpiderError("expected a table")
    _keys(tables, (), {"start", "options", "routes"})
    options = _get(tables, (), "options", dict, {})
    routes_table = _get(tables, (), "routes", dict, None)
    if not routes_table:
        raise TomlSpiderError("no [routes]: a spider needs at least one route", ("routes",))
    names = set(routes_table)
    for name in routes_table:
        if not isinstance(name, str) or not _LABEL.fullmatch(name):
            raise TomlSpiderError(
                "a route's name (its label) is letters, digits, _ . - (not first)",
                ("routes", name),
            )
    unlabelled = any(
        isinstance(table, Mapping) and "match" in table for table in routes_table.values()
    )
    labels = _Labels(names, unlabelled)
    routes = [_route(name, table, ("routes", name), labels) for name, table in routes_table.items()]
    start, form_routes = _start(tables.get("start", []), labels)
    return TomlSpider(SpiderRouter(routes + form_routes, source, digest), start, dict(options))


@dataclasses.dataclass
class _Labels:
    names: set[str]
    unlabelled: bool  # some route takes unlabelled pages

    def check(self, table: Mapping[str, Any], path: Path_) -> str | None:
        label = _get(table, path, "label", str, None)
        if label is None:
            if not self.unlabelled:
                raise TomlSpiderError(
                    "no `label`, and no route has a `match` for unlabelled pages", path
                )
            return None
        if label not in self.names:
            known = ", ".join(sorted(self.names))
            raise TomlSpiderError(
                f"no route for label {label!r} (routes: {known})", (*path, "label")
            )
        return str(label)


_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    dict: "a table",
    list: "an array",
}


def _get(table: Mapping[str, Any], path: Path_, key: str, kind: type, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TomlSpiderError(f"expected {_TYPE_NAMES[kind]}, not {_kind(value)}", (*path, key))
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {
        str: "a string",
        int: "an integer",
        float: "a float",
        dict: "a table",
        list: "an array",
    }
    return names.get(type(value), type(value).__name__)


def _keys(table: Mapping[str, Any], path: Path_, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise TomlSpiderError(
                f"unknown key (expected one of {', '.join(sorted(allowed))})", (*path, key)
            )


def _tables(value: Any, path: Path_) -> list[tuple[Mapping[str, Any], Path_]]:
    """A table or an array of tables, each with its path."""
    if isinstance(value, Mapping):
        return [(value, path)]
    if isinstance(value, list):
        found = []
        for index, one in enumerate(value):
            if not isinstance(one, Mapping):
                raise TomlSpiderError(f"expected a table, not {_kind(one)}", (*path, index))
            found.append((one, (*path, index)))
        return found
    raise TomlSpiderError(f"expected a table or an array of tables, not {_kind(value)}", path)


def _route(name: str, table: Any, path: Path_, labels: _Labels) -> SpiderRoute:
    if not isinstance(table, Mapping):
        raise TomlSpiderError(f"expected a table, not {_kind(table)}", path)
    _keys(
        table,
        path,
        {"match", "items", "follow", "submit", "pagination", "merge_data", *_BROWSER_KEYS},
    )
    items = [_items(t, p, labels) for t, p in _tables(table.get("items", []), (*path, "items"))]
    follow = [
        _follow(t, p, labels, None) for t, p in _tables(table.get("follow", []), (*path, "follow"))
    ]
    submit = [_submit(t, p, labels) for t, p in _tables(table.get("submit", []), (*path, "submit"))]
    pagination = None
    if "pagination" in table:
        pagination = _pagination(_get(table, path, "pagination", dict, {}), (*path, "pagination"))
    return SpiderRoute(
        name,
        path,
        _match(table.get("match"), (*path, "match")) if "match" in table else [],
        items,
        follow,
        submit,
        pagination,
        _get(table, path, "merge_data", bool, False),
        _browser_setup(table, path),
        _scroll(table, path),
    )


#: A route's keys for its rendered pages (``--render``): waits, capture, infinite scroll.
_BROWSER_KEYS = (
    "render_wait_for",
    "render_wait_js",
    "render_delay",
    "capture",
    "capture_max",
    "capture_max_bytes",
    "scroll",
)


def _browser_setup(table: Mapping[str, Any], path: Path_) -> BrowserSetup | None:
    values: dict[str, Any] = {}
    for key, kind, name in (
        ("render_wait_for", str, "wait_for"),
        ("render_wait_js", str, "wait_js"),
        ("render_delay", (int, float), "delay"),
        ("capture", str, "capture"),
        ("capture_max", int, "capture_max"),
        ("capture_max_bytes", int, "capture_max_bytes"),
    ):
        if key in table:
            value = table[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise TomlSpiderError(
                    f"expected a {_type_name(kind)}, not {_kind(value)}", (*path, key)
                )
            values[name] = value
    try:
        setup = BrowserSetup(**values)
    except ValueError as exc:
        key = str(exc).split(":", 1)[0]
        where = (*path, key if key in table else next(iter(table)))
        raise TomlSpiderError(str(exc).split(": ", 1)[-1], where) from None
    return setup or None


def _type_name(kind: Any) -> str:
    return "number" if isinstance(kind, tuple) else {str: "string", int: "integer"}[kind]


def _scroll(table: Mapping[str, Any], path: Path_) -> int:
    """``scroll = true`` (up to 100 scrolls) or ``scroll = N``: 0 when absent."""
    value = table.get("scroll", False)
    if value is True:
        return 100
    if value is False:
        return 0
    if not isinstance(value, int) or not 1 <= value <= 10_000:
        raise TomlSpiderError("expected true, false or 1 to 10000 scrolls", (*path, "scroll"))
    return value


def _match(value: Any, path: Path_) -> list[Callable[[str], bool]]:
    """URL patterns: globs (``*/page/*``), or ``{ re = "..." }`` / ``{ glob = "..." }``."""
    patterns = value if isinstance(value, list) else [value]
    found: list[Callable[[str], bool]] = []
    for index, pattern in enumerate(patterns):
        where = (*path, index) if isinstance(value, list) else path
        if isinstance(pattern, str):
            pattern = {"glob": pattern}
        if not isinstance(pattern, Mapping) or len(pattern) != 1:
            raise TomlSpiderError("expected a glob, or a table with `re` or `glob`", where)
        _keys(pattern, where, {"re", "glob"})
        [(kind, text)] = pattern.items()
        if not isinstance(text, str):
            raise TomlSpiderError(f"expected a string, not {_kind(text)}", (*where, kind))
        if kind == "glob":
            if text == "*":  # every URL: no regex to run
                found.append(_every_url)
                continue
            text = fnmatch.translate(text)
        compiled = _regex(text, (*where, kind))
        found.append(_Matcher(compiled))
    return found


def _every_url(url: str) -> bool:
    return True


class _Matcher:
    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def __call__(self, url: str) -> bool:
        return self.pattern.search(url) is not None


def _regex(text: str, path: Path_) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise TomlSpiderError(f"bad regular expression {text!r}: {exc}", path) from None


def _value(spec: Any, path: Path_, *, json_scope: bool = False) -> Value:
    """A field: ``"CSS[::text|::attr(x)|::abs(x)]"``, ``"jmes:EXPR"``, or a table with one
    of ``css``, ``jmes``, ``value``, ``data`` and the modifiers ``re``, ``many``,
    ``default``, ``normalise``."""
    short = isinstance(spec, str)  # its errors name the field itself
    if isinstance(spec, str):
        jmes = spec.lstrip().startswith("jmes:")
        spec = {"jmes": spec.lstrip()[5:]} if jmes else {"css": spec}
    if not isinstance(spec, Mapping):
        raise TomlSpiderError(f"expected a selector (a string) or a table, not {_kind(spec)}", path)
    _keys(spec, path, {"css", "jmes", "value", "data", "re", "many", "default", "normalise"})
    sources = [k for k in ("css", "jmes", "value", "data") if k in spec]
    if len(sources) != 1:
        raise TomlSpiderError("give one of css, jmes, value, data", path)
    value = Value(path)
    [source] = sources
    if source == "value":
        value.constant, value.has_constant = spec["value"], True
    elif source == "data":
        value.data = _get(spec, path, "data", str, None)
    elif source == "jmes":
        expression = _get(spec, path, "jmes", str, None)
        value.jmes = _check_jmes(expression, path if short else (*path, "jmes"))
    else:
        css = _get(spec, path, "css", str, None)
        if json_scope:
            raise TomlSpiderError(
                "a CSS selector inside a JMESPath `each` (use jmes:)",
                path if short else (*path, "css"),
            )
        match = _PSEUDO.search(css)
        if match is not None:
            css = css[: match.start()]
            if match.group(1):
                value.pseudo = "attr" if match.group(1) == "attr" else "abs"
                value.attr = match.group(2)
        _check_css(css, path if short else (*path, "css"))
        value.css = css
    if "re" in spec:
        value.regex = _regex(_get(spec, path, "re", str, None), (*path, "re"))
    value.many = _get(spec, path, "many", bool, False)
    value.normalise = _get(spec, path, "normalise", bool, True)
    value.default = spec.get("default")
    return value.compile()


def _items(table: Mapping[str, Any], path: Path_, labels: _Labels) -> Items:
    _keys(table, path, {"each", "fields", "follow"})
    each = None
    if "each" in table:
        each = _value(table["each"], (*path, "each"))
        if not (each.css or each.jmes) or each.regex is not None or each.has_constant:
            raise TomlSpiderError(
                "`each` is a CSS selector or a JMESPath expression", (*path, "each")
            )
    json_scope = each is not None and each.jmes is not None
    fields_table = _get(table, path, "fields", dict, None)
    if not fields_table:
        raise TomlSpiderError("no `fields`: an item needs at least one", (*path, "fields"))
    fields = {
        name: _value(spec, (*path, "fields", name), json_scope=json_scope)
        for name, spec in fields_table.items()
    }
    follow = [
        _follow(t, p, labels, fields, json_scope=json_scope)
        for t, p in _tables(table.get("follow", []), (*path, "follow"))
    ]
    return Items(path, each, fields, follow)


def _data(
    table: Mapping[str, Any], path: Path_, items: Iterable[str] | None, value: bool
) -> DataSpec:
    """``data = { author = "{item.author}" }``, or ``data = ["author", "text"]`` (fields of
    the item, or of the request's data outside an item)."""
    spec = table.get("data", {})
    if isinstance(spec, list):
        names = {}
        for index, name in enumerate(spec):
            if not isinstance(name, str):
                raise TomlSpiderError(
                    f"expected a field name, not {_kind(name)}", (*path, "data", index)
                )
            names[name] = f"{{item.{name}}}" if items is not None else f"{{data.{name}}}"
        spec = names
    if not isinstance(spec, Mapping):
        raise TomlSpiderError(
            f"expected a table or an array of names, not {_kind(spec)}", (*path, "data")
        )
    templates = {}
    for name, text in spec.items():
        where = (*path, "data", name)
        if not isinstance(text, str):
            raise TomlSpiderError(f"expected a string, not {_kind(text)}", where)
        templates[name] = Template.parse(text, where, items=items, value=value)
    return DataSpec(templates)


def _follow(
    table: Mapping[str, Any],
    path: Path_,
    labels: _Labels,
    items: Iterable[str] | None,
    *,
    json_scope: bool = False,
) -> Follow:
    _keys(table, path, {"css", "url", "label", "data"})
    if ("css" in table) == ("url" in table):
        raise TomlSpiderError("give one of css (the links) or url", path)
    links = url = None
    if "css" in table:
        css = _get(table, path, "css", str, None)
        if not _PSEUDO.search(css):
            css += "::abs(href)"
        links = _link(css, (*path, "css"), json_scope=json_scope)
    else:
        text = _get(table, path, "url", str, None)
        url = Template.parse(text, (*path, "url"), items=items, value=False)
    label = labels.check(table, path)
    return Follow(path, links, url, label, _data(table, path, items, False))


def _link(css: str, path: Path_, *, json_scope: bool) -> Value:
    """Links: a CSS selector's ``href`` (or the attribute it names), resolved as the page's
    links are."""
    link = _value({"css": css, "many": True}, path, json_scope=json_scope)
    if link.attr is None:
        raise TomlSpiderError("a link is an attribute: ::attr(NAME) or ::abs(NAME)", path)
    link.pseudo = "abs"
    return link


def _submit(table: Mapping[str, Any], path: Path_, labels: _Labels) -> Submit:
    _keys(table, path, {"form", "each", "values", "clicked", "label", "data"})
    form = _get(table, path, "form", str, None)
    if form is not None:
        _check_css(form, (*path, "form"))
    clicked = _get(table, path, "clicked", str, None)
    if clicked is not None:
        _check_css(clicked, (*path, "clicked"))
    each = None
    if "each" in table:
        each = _value(table["each"], (*path, "each"))
        each.many = True
        each.compile()
    values_table = _get(table, path, "values", dict, {})
    values = {}
    for name, text in values_table.items():
        where = (*path, "values", name)
        if not isinstance(text, str):
            raise TomlSpiderError(f"expected a string, not {_kind(text)}", where)
        values[name] = Template.parse(text, where, items=None, value=each is not None)
    label = labels.check(table, path)
    data = _data(table, path, None, each is not None)
    return Submit(path, form, each, values, clicked, label, data)


def _pagination(table: Mapping[str, Any], path: Path_) -> Pagination:
    _keys(table, path, {"next", "pages", "has_next", "max"})
    if ("next" in table) == ("pages" in table):
        raise TomlSpiderError("give one of next (a link) or pages (a page number)", path)
    cap = _get(table, path, "max", int, None)
    if cap is not None and cap < 1:
        raise TomlSpiderError("must be at least 1", (*path, "max"))
    if "next" in table:
        if "has_next" in table:
            raise TomlSpiderError("only with `pages`", (*path, "has_next"))
        css = _get(table, path, "next", str, None)
        if not _PSEUDO.search(css):
            css += "::abs(href)"
        link = _link(css, (*path, "next"), json_scope=False)
        return Pagination(path, link, None, 1, cap, None)
    pages = _get(table, path, "pages", dict, {})
    where = (*path, "pages")
    _keys(pages, where, {"param", "start", "max"})
    param = _get(pages, where, "param", str, None)
    if not param:
        raise TomlSpiderError("`param` (the query parameter of the page number) is needed", where)
    start = _get(pages, where, "start", int, 1)
    cap = _get(pages, where, "max", int, cap)
    if cap is not None and cap < start:
        raise TomlSpiderError("below `start`", (*where, "max"))
    has_next = _value(table["has_next"], (*path, "has_next")) if "has_next" in table else None
    return Pagination(path, None, param, start, cap, has_next)


def _start(value: Any, labels: _Labels) -> tuple[tuple[str | Request, ...], list[SpiderRoute]]:
    """The start requests, and a route for each form to submit at the start."""
    path: Path_ = ("start",)
    entries = [value] if isinstance(value, str | Mapping) else value
    if not isinstance(entries, list):
        raise TomlSpiderError(f"expected URLs or tables, not {_kind(value)}", path)
    start: list[str | Request] = []
    routes: list[SpiderRoute] = []
    for index, entry in enumerate(entries):
        where = (*path, index) if isinstance(value, list) else path
        if isinstance(entry, str):
            start.append(_request(where, url=entry, whole=True))
            continue
        if not isinstance(entry, Mapping):
            raise TomlSpiderError(f"expected a URL or a table, not {_kind(entry)}", where)
        if "form" in entry:
            _keys(entry, where, {"form", "label", "data"})
            form = _get(entry, where, "form", dict, {})
            form_path = (*where, "form")
            _keys(form, form_path, {"url", "selector", "values", "clicked"})
            url = _get(form, form_path, "url", str, None)
            if url is None:
                raise TomlSpiderError("`url` (the page with the form) is needed", form_path)
            internal = f":start-form:{index}"
            submit_table = {k: form[k] for k in ("values", "clicked") if k in form}
            if "selector" in form:
                submit_table["form"] = form["selector"]
            submit_table.update({k: entry[k] for k in ("label", "data") if k in entry})
            submit = _submit(submit_table, where, labels)
            routes.append(SpiderRoute(internal, where, [], [], [], [submit], None, False))
            start.append(_request((*form_path, "url"), url=url, label=internal))
            continue
        _keys(entry, where, {"url", "method", "headers", "body", "label", "data"})
        url = _get(entry, where, "url", str, None)
        if url is None:
            raise TomlSpiderError("`url` is needed", where)
        label = labels.check(entry, where) if "label" in entry else None
        body = _get(entry, where, "body", str, None)
        headers = _get(entry, where, "headers", dict, None)
        start.append(
            _request(
                where,
                url=url,
                method=_get(entry, where, "method", str, "GET"),
                headers=headers,
                body=None if body is None else body.encode(),
                label=label,
                data=_get(entry, where, "data", dict, None),
            )
        )
    return tuple(start), routes


def _request(path: Path_, *, whole: bool = False, **fields: Any) -> Request:
    """The request, or its error naming the key (``whole``: the URL is ``path`` itself)."""
    try:
        return Request(**fields)
    except RequestError as exc:
        field, _, message = str(exc).partition(": ")
        at = path if whole or (path[-1] == "url" and field == "url") else (*path, field)
        raise TomlSpiderError(message or str(exc), at) from None


# --------------------------------------------------------------------- finding the line

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\s]+)', text)
    return [a or b or c for a, b, c in parts]


def line_of(text: str, path: Path_) -> int | None:
    """The line (from 1) of the key at ``path`` in the TOML ``text``: the table whose header
    is the longest prefix of the path, then each further key searched for in turn from
    there (tomllib gives no positions)."""
    lines = text.splitlines()
    sections: list[tuple[Path_, int]] = [((), 0)]
    arrays: dict[Path_, int] = {}
    for number, line in enumerate(lines):
        header = _HEADER.match(line)
        if header is None:
            continue
        keys = _split_key(header.group(2))
        indexed: list[str | int] = []
        for position, key in enumerate(keys):
            indexed.append(key)
            prefix = tuple(indexed)
            if position == len(keys) - 1 and header.group(1) == "[[":
                arrays[prefix] = arrays.get(prefix, -1) + 1
                indexed.append(arrays[prefix])
            elif prefix in arrays:
                indexed.append(arrays[prefix])
        sections.append((tuple(indexed), number))
    best: Path_ = ()
    start = 0
    for index, (section, _number) in enumerate(sections):
        if len(section) >= len(best) and path[: len(section)] == section:
            best, start = section, index
    begin = sections[start][1]
    end = sections[start + 1][1] if start + 1 < len(sections) else len(lines)
    found = begin
    position = begin + (1 if best else 0)
    for part in path[len(best) :]:
        if isinstance(part, int):
            continue
        key = part
        pattern = re.compile(r"(?:^|[\s{,.])(?:\"|')?" + re.escape(key) + r"(?:\"|')?\s*[=.]")
        for number in range(position, end):
            if pattern.search(lines[number]):
                found = position = number
                break
    return found + 1 if lines else None
