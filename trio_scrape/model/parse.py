"""From response bytes to text, title, hrefs and selected fields. Never raises on what a
server sends.

HTML is parsed with selectolax's lexbor backend (a C HTML5 parser: fast, and as forgiving as a
browser with malformed markup).
"""

from __future__ import annotations

import codecs
import dataclasses
import re
import zlib
from collections.abc import Callable
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from .native import first_text as _native_first_text
from .page import rebuilt_by_fields
from .tree import Tree

__all__ = [
    "browser_codec",
    "ParsedHtml",
    "Selector",
    "Sitemap",
    "css_first_text",
    "decode_body",
    "first_text",
    "is_html",
    "is_json",
    "normalise_space",
    "parse_html",
    "parse_sitemap",
]

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_META_SNIFF_BYTES = 4096
_DETECT_BYTES = 64 * 1024
_HTML_SNIFF = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_SPACE = re.compile(r"\s+")
# ASCII whitespace (TAB, LF, FF, CR, SPACE): all that document.title strips and collapses; a
# no-break space (U+00A0) in a title is kept, as browsers keep it.
_ASCII_WHITESPACE = "\t\n\f\r "
_ASCII_SPACES = re.compile(r"[\t\n\f\r ]+")
_JSON_TYPE = re.compile(r"^\s*application/(?:[\w.+-]*\+)?json\s*(?:;|$)", re.I)


def normalise_space(text: str) -> str:
    """``text`` with every run of whitespace one space, and none at either end (what
    selectors' ``::text`` gives)."""
    # str.split() splits at what \s matches (str.isspace), 4x faster than re.sub + strip.
    return " ".join(text.split())


def first_text(
    node: LexborNode | LexborHTMLParser, query: str, default: str | None = None
) -> str | None:
    """The whitespace-normalised text of the first element ``query`` matches inside ``node``
    (``default`` when nothing matches). A handler's ``ctx.text_of``: compiled, as it runs for
    every field of every item; in C (:mod:`trio_scrape.model.native`) where a wheel built it.

    Raises:
        SelectolaxError: ``query`` does not parse.
    """
    native = _native_first_text
    text = css_first_text(node, query) if native is None else native(node, query)
    return default if text is None else text


def css_first_text(node: LexborNode | LexborHTMLParser, query: str) -> str | None:
    """:func:`first_text` through selectolax's Python API (``css_first``, ``text_lexbor``):
    what the native module matches, and what runs where it is not built."""
    found = node.css_first(query)
    if found is None:
        return None
    return " ".join(found.text_lexbor().split())


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type says JSON (``application/json``, ``application/...+json``)."""
    return content_type is not None and _JSON_TYPE.match(content_type) is not None


def is_html(content_type: str | None, content: bytes) -> bool:
    """HTML by its Content-Type, or, when the server sent none, by the first bytes."""
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        return media in ("text/html", "application/xhtml+xml")
    return bool(_HTML_SNIFF.match(content[:1024]))


# Python codecs for the encodings whose WHATWG definition differs from Python's codec of the
# same name: browsers read (and submit) these labels as the wider Windows code pages.
_BROWSER_CODECS = {
    "ascii": "cp1252",
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gbk",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}


def browser_codec(label: str | None) -> str | None:
    """The Python codec a browser uses for an encoding label (the WHATWG Encoding
    standard's: ``iso-8859-1``, ``latin1`` and ``us-ascii`` are windows-1252), None if
    unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip(_ASCII_WHITESPACE)).name
    except LookupError:
        return None
    return _BROWSER_CODECS.get(name, name)


def decode_body(content: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode a body to text and return ``(text, encoding)``.

    The encoding is taken from, in order: a byte-order mark, the Content-Type charset, a
    ``<meta charset>`` in the first 4 KiB, strict UTF-8 if the bytes are valid UTF-8, and
    charset-normalizer's detection on the first 64 KiB; windows-1252 when all else fails.
    Undecodable bytes become U+FFFD: a mislabelled page yields replacement characters, not
    an exception.
    """
    for bom, name in _BOMS:
        if content.startswith(bom):
            return content.decode(name, errors="replace"), name
    encoding = None
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        encoding = browser_codec(match.group(1)) if match else None
    if encoding is None:
        meta = _META_CHARSET.search(content[:_META_SNIFF_BYTES])
        encoding = browser_codec(meta.group(1).decode("ascii", "replace")) if meta else None
        # A page cannot be UTF-16 and have an ASCII <meta> saying so: browsers read it as UTF-8.
        if encoding is not None and encoding.startswith("utf-16"):
            encoding = "utf-8"
    if encoding is None:
        try:
            return content.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            encoding = _detect(content[:_DETECT_BYTES])
    try:
        return content.decode(encoding, errors="replace"), encoding
    except (LookupError, ValueError):  # a codec that exists but cannot decode ("rot13" ...)
        return content.decode("utf-8", errors="replace"), "utf-8"


def _detect(sample: bytes) -> str:
    """Guess a legacy encoding with charset-normalizer, leaning to windows-1252.

    windows-1252 is what browsers assume for undeclared pages (WHATWG) and the most common
    legacy encoding on the web; on short Western text the detector finds several single-byte
    code pages equally plausible, so windows-1252 wins when it is nearly as good as the best.
    """
    from charset_normalizer import from_bytes  # only for pages that say nothing: 8 ms to import

    matches = list(from_bytes(sample))
    if not matches:
        return "cp1252"
    best = matches[0]
    for match in matches:
        if match.encoding == "cp1252" and match.percent_chaos <= best.percent_chaos + 10:
            return "cp1252"
    return browser_codec(best.encoding) or "cp1252"


class ParsedHtml:
    """The parts of an HTML page the crawler needs, from one parse.

    ``hrefs`` are the page's links (``<a>``, ``<area>``, and ``<iframe>``/``<frame>`` sources
    when frames are wanted); ``refresh`` is a ``<meta http-equiv=refresh>``'s delay and URL;
    ``robots`` the ``<meta name=robots>`` (or ``name=trio-scrape``) directives, lowercase;
    ``canonical`` the ``<link rel=canonical>`` href.
    """

    __slots__ = ("base", "canonical", "hrefs", "refresh", "robots", "title", "tree")

    def __init__(
        self,
        tree: LexborHTMLParser,
        title: str | None,
        base: str | None,
        hrefs: list[str],
        *,
        refresh: tuple[float, str] | None = None,
        robots: frozenset[str] = frozenset(),
        canonical: str | None = None,
    ) -> None:
        self.tree = tree
        self.title = title
        self.base = base
        self.hrefs = hrefs
        self.refresh = refresh
        self.robots = robots
        self.canonical = canonical


#: The name a page's robots rules may address us by (``<meta name=trio-scrape>``,
#: ``X-Robots-Tag: trio-scrape: nofollow``), besides everyone (``robots``).
ROBOTS_NAME = "trio-scrape"
_LINKS = "a[href], area[href]"
_LINKS_AND_FRAMES = "a[href], area[href], iframe[src], frame[src]"


def parse_html(
    text: str,
    *,
    want_links: bool,
    frames: bool = True,
    skip_rel_nofollow: bool = False,
    want_base: bool = False,
) -> ParsedHtml:
    """Parse HTML: the tree, the whitespace-normalised ``<title>``, page-level robots rules,
    the canonical link and a meta refresh; ``<base href>`` when something is to be resolved
    against it (``want_base``, ``want_links``, a canonical link or a refresh URL); with
    ``want_links`` also the raw
    ``href`` of every ``<a>`` and ``<area>`` (not those with ``rel=nofollow`` when
    ``skip_rel_nofollow``) and the ``src`` of every ``<iframe>`` and ``<frame>`` (when
    ``frames``)."""
    # Elements by tag name, not CSS selectors: each selector query cost ~20 us a page (the
    # five here were a third of the parse); tags() walks the tree in document order.
    tree = Tree(text)
    title = None
    for node in tree.tags("title"):
        title = _ASCII_SPACES.sub(" ", node.text_lexbor()).strip(_ASCII_WHITESPACE)
        break
    base = None
    hrefs: list[str] = []
    refresh = None
    robots: set[str] = set()
    for meta in tree.tags("meta"):
        attributes = meta.attributes
        if "content" not in attributes or not ("name" in attributes or "http-equiv" in attributes):
            continue
        content = attributes.get("content") or ""
        name = (attributes.get("name") or "").strip().lower()
        if name in ("robots", ROBOTS_NAME):
            robots.update(robots_directives(content))
        elif refresh is None and (attributes.get("http-equiv") or "").lower().strip() == "refresh":
            refresh = parse_refresh(content)
    canonical = None
    for link in tree.tags("link"):
        attributes = link.attributes
        if "rel" not in attributes or "href" not in attributes:
            continue
        if "canonical" in (attributes.get("rel") or "").lower().split():
            canonical = (attributes.get("href") or "").strip() or None
            break
    if want_links or want_base or canonical is not None or refresh is not None:
        for node in tree.tags("base"):
            if "href" in node.attributes:
                base = node.attributes.get("href")
                break
    if want_links:
        others = ("area", "iframe", "frame") if frames else ("area",)
        if any(tree.tags(name) for name in others):  # several kinds: in document order
            found = [n.attributes for n in tree.css(_LINKS_AND_FRAMES if frames else _LINKS)]
        else:
            found = [a for a in (n.attributes for n in tree.tags("a")) if "href" in a]
        for attributes in found:
            href = attributes.get("href") if "href" in attributes else attributes.get("src")
            if not href:
                continue
            if skip_rel_nofollow and "nofollow" in (attributes.get("rel") or "").lower().split():
                continue
            hrefs.append(href)
    return ParsedHtml(
        tree, title, base, hrefs, refresh=refresh, robots=frozenset(robots), canonical=canonical
    )


_ROBOTS_DIRECTIVES = frozenset({"noindex", "nofollow", "none", "all", "index", "follow"})
# Directives whose value holds a colon: not a user agent before it.
_VALUED_DIRECTIVES = ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview")


def robots_directives(content: str) -> set[str]:
    """The ``noindex``/``nofollow`` directives in a robots meta content or an X-Robots-Tag
    value (``none`` is both; others are ignored)."""
    found: set[str] = set()
    for token in content.lower().split(","):
        token = token.strip()
        if token == "none":
            found.update(("noindex", "nofollow"))
        elif token in ("noindex", "nofollow"):
            found.add(token)
    return found


def x_robots_directives(values: list[str]) -> set[str]:
    """The directives of ``X-Robots-Tag`` header values that apply to us: unscoped ones, and
    those scoped to ``trio-scrape`` (``X-Robots-Tag: trio-scrape: nofollow``); directives for
    other crawlers (``googlebot: noindex``) are not ours."""
    found: set[str] = set()
    for value in values:
        agent, colon, rest = value.partition(":")
        agent = agent.strip().lower()
        if colon and agent not in _ROBOTS_DIRECTIVES and not agent.startswith(_VALUED_DIRECTIVES):
            if agent == ROBOTS_NAME:
                found.update(robots_directives(rest))
            continue
        found.update(robots_directives(value))
    return found


_REFRESH = re.compile(
    r"""^\s*(\d+(?:\.\d*)?)?\s*[;,]?\s*(?:url\s*=\s*)?(["']?)(.*?)\2\s*$""", re.I | re.S
)


def parse_refresh(content: str) -> tuple[float, str] | None:
    """``(delay, url)`` of a meta refresh's content (``"0; url=/next"``, ``"5;URL='x'"``), or
    None when it names no URL (a plain reload) or does not parse."""
    match = _REFRESH.match(content)
    if match is None or not match.group(3).strip():
        return None
    delay = float(match.group(1)) if match.group(1) else 0.0
    url = match.group(3).strip()
    return delay, url


_PSEUDO = re.compile(r"::(?:(attr|abs|url)\(\s*([^()\s]+)\s*\)|(text))\s*$")
_PROBE = LexborHTMLParser("<p></p>")


@dataclasses.dataclass(frozen=True)
class Selector:
    """A field taken from every page by a selector: ``--select NAME=CSS`` for HTML pages,
    ``--select NAME=jmes:EXPRESSION`` (JMESPath) for JSON answers.

    ``css`` may end in ``::text`` (the default: the element's text, whitespace-normalised),
    ``::attr(NAME)`` (an attribute's value) or ``::abs(NAME)`` / ``::url(NAME)`` (the
    attribute as an absolute URL, resolved as the page's links are: ``absolute`` is set; a
    value that does not resolve to an http(s) URL is no match). With ``many``, every match is
    taken (a list); otherwise the first (``None`` when nothing matches). A JMESPath selector
    (``jmes`` set, ``css`` empty) gives what its expression selects, as JSON values.

    Raises:
        ValueError: the spec has no ``NAME=`` or the CSS does not parse.
    """

    name: str
    css: str
    attr: str | None = None
    many: bool = False
    jmes: str | None = None
    absolute: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a selector needs a name")
        if self.jmes is not None:
            from .jmes import compile_jmes

            compile_jmes(self.jmes)  # raises ValueError, naming the expression
            return
        try:
            _PROBE.css(self.css)
        except SelectolaxError:
            raise ValueError(f"bad CSS selector {self.css!r} for {self.name!r}") from None

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return rebuilt_by_fields(self)

    @classmethod
    def parse(cls, spec: str, *, many: bool = False) -> Selector:
        """``NAME=CSS``, ``NAME=CSS::text``, ``NAME=CSS::attr(ATTRIBUTE)`` or
        ``NAME=CSS::abs(ATTRIBUTE)`` (also ``::url(ATTRIBUTE)``)."""
        name, sep, css = spec.partition("=")
        if not sep or not name.strip() or not css.strip():
            raise ValueError(f"expected NAME=CSS, got {spec!r}")
        if css.lstrip().startswith("jmes:"):
            return cls(name.strip(), "", None, many, css.lstrip()[5:].strip())
        attr = None
        absolute = False
        match = _PSEUDO.search(css)
        if match:
            attr = match.group(2)
            absolute = match.group(1) in ("abs", "url")
            css = css[: match.start()]
        return cls(name.strip(), css.strip(), attr, many, None, absolute)

    def extract_json(self, value: Any) -> Any:
        """What a JMESPath selector selects in a parsed JSON ``value`` (a CSS selector: None,
        or an empty list with ``many``)."""
        if self.jmes is None:
            return [] if self.many else None
        from .jmes import jmespath_search

        found = jmespath_search(self.jmes, value)
        if self.many:
            return [] if found is None else found if isinstance(found, list) else [found]
        return found

    def extract(
        self, tree: LexborHTMLParser, urljoin: Callable[[str], str | None] | None = None
    ) -> str | list[str] | None:
        """The first match's value (every match's, with ``many``) in ``tree``; ``urljoin``
        resolves an ``::abs(NAME)`` value (None: it is not an http(s) URL)."""
        if self.jmes is not None:  # a JSON selector on an HTML page
            return [] if self.many else None
        if self.many:
            values = [self._value(node, urljoin) for node in tree.css(self.css)]
            return [v for v in values if v is not None]
        if self.absolute:  # the first match that resolves
            for match in tree.css(self.css):
                value = self._value(match, urljoin)
                if value is not None:
                    return value
            return None
        node = tree.css_first(self.css)
        return None if node is None else self._value(node, urljoin)

    def _value(
        self, node: LexborNode, urljoin: Callable[[str], str | None] | None = None
    ) -> str | None:
        if self.attr is not None:
            value = node.attributes.get(self.attr)
            if value is None or not self.absolute or urljoin is None:
                return value
            return urljoin(value)
        return _SPACE.sub(" ", node.text_lexbor()).strip()


#: Most entries one sitemap file may list (the sitemaps.org protocol's limit).
SITEMAP_MAX_ENTRIES = 50_000


@dataclasses.dataclass
class Sitemap:
    """What a sitemap lists: page URLs with their ``<lastmod>`` (``urlset``), or further
    sitemaps (``sitemapindex``)."""

    kind: str  # "urlset" or "sitemapindex"
    pages: list[tuple[str, str | None]]
    sitemaps: list[str]


def parse_sitemap(content: bytes, *, max_bytes: int) -> Sitemap:
    """Parse a sitemap (XML, or XML in gzip, decompressed up to ``max_bytes``).

    Uses the standard library's expat parser, which expands no external entities and, from
    expat 2.4, refuses entity-expansion bombs; the input is already capped at ``max_bytes``.

    Raises:
        ValueError: not a sitemap (bad XML, another root element, too many entries, or a
            gzip body that is corrupt or decompresses past ``max_bytes``).
    """
    if content[:2] == b"\x1f\x8b":  # a .xml.gz served as is, without Content-Encoding
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            content = decompressor.decompress(content, max_bytes + 1)
        except zlib.error as exc:
            raise ValueError(f"corrupt gzip sitemap: {exc}") from None
        if len(content) > max_bytes or decompressor.unconsumed_tail:
            raise ValueError(f"gzip sitemap decompresses past max_bytes={max_bytes}")
        if not decompressor.eof:
            raise ValueError("corrupt gzip sitemap: the stream is cut short")
    from xml.etree import ElementTree  # only for sitemaps: not imported at every start

    try:
        root = ElementTree.fromstring(content)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"not a sitemap: the root element is <{kind}>")
    sitemap = Sitemap(kind, [], [])
    entries = 0
    for entry in root:
        if _local(entry.tag) not in ("url", "sitemap"):
            continue
        entries += 1
        if entries > SITEMAP_MAX_ENTRIES:
            raise ValueError(f"more than {SITEMAP_MAX_ENTRIES} entries")
        loc = lastmod = None
        for field in entry:
            name = _local(field.tag)
            if name == "loc" and field.text:
                loc = field.text.strip()
            elif name == "lastmod" and field.text:
                lastmod = field.text.strip()
        if not loc:
            continue
        if kind == "urlset":
            sitemap.pages.append((loc, lastmod))
        else:
            sitemap.sitemaps.append(loc)
    return sitemap


def _local(tag: object) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""
