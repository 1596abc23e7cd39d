"""URLs as a browser sees them.

Three forms of a URL, each for one job:

- **the href** as a page wrote it (``../a b.html#top``), resolved the way a browser resolves it:
  by the WHATWG URL standard, with **ada-url** (the parser behind Node's ``URL``), against the
  document's base URL (``<base href>`` included, see :func:`document_base`);
- **the browser URL**, what a browser puts on the wire: ada's serialisation (``href``) with the
  fragment removed (:func:`browser_url`). This is what the crawl requests, queues and records;
- **the canonical key**, what decides "seen before" (:func:`url_key`, :func:`canonicalize`):
  the browser URL with percent-escapes of unreserved characters decoded, other escapes in upper
  case, and the query's arguments sorted (``?b`` and ``?b=`` alike, an empty ``?`` dropped).
  Scheme and host case, IDNA, default ports, dot segments and the encoding of everything a
  browser encodes are already one form in the browser URL. Two spellings of one page have one
  key, so the page is fetched once; the key is never requested.
"""

from __future__ import annotations

import codecs
import fnmatch
import re
from collections.abc import Iterable, Sequence
from typing import Final

from ada_url import URL, idna, join_url

from .config import CrawlConfig
from .validate import url_patterns

__all__ = [
    "MAX_LINKS_PER_PAGE",
    "MAX_URL_LENGTH",
    "LinkResolver",
    "UrlScope",
    "browser_url",
    "canonicalize",
    "document_base",
    "exempt_origins",
    "host_of",
    "origin_of",
    "origin_text",
    "resolve_links",
    "url_key",
]

#: Longer URLs are refused (seeds) or skipped and counted as invalid (links); 2,048 is what
#: sitemaps allow and about what browsers and servers reliably accept.
MAX_URL_LENGTH = 2048
#: Links taken from one page; the rest are ignored (a page of a million links is an attack).
MAX_LINKS_PER_PAGE = 10_000

_HTTP = ("http://", "https://")
# What the URL parser strips from both ends of an href (C0 controls and space, not Unicode
# whitespace) and removes anywhere (tab, LF, CR): WHATWG URL "basic URL parser", first steps.
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_TAB_AND_NEWLINE = str.maketrans("", "", "\t\n\r")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# <base href> with these schemes is ignored by browsers (HTML, "set the frozen base URL").
_IGNORED_BASE_SCHEMES = ("javascript:", "data:")


def browser_url(url: str) -> str:
    """The URL a browser requests for an absolute http(s) URL: WHATWG-parsed (lower-case
    scheme and host, IDNA, IPv4 forms, default port dropped, dot segments resolved, what must
    be percent-encoded encoded), fragment removed.

    Raises:
        ValueError: ``url`` does not parse as an absolute URL, is not http or https, or is
            longer than :data:`MAX_URL_LENGTH` once parsed.
    """
    if len(url) > 4 * MAX_URL_LENGTH:  # no point parsing it: it cannot come out short enough
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        href = URL(url).href
    except ValueError:  # UnicodeEncodeError (a lone surrogate) included
        raise ValueError(f"not a valid URL: {url!r}") from None
    if not href.startswith(_HTTP):
        raise ValueError(f"not an http(s) URL: {url!r}")
    hash_at = href.find("#")
    if hash_at >= 0:
        href = href[:hash_at]
    if len(href) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    return href


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def url_key(url: str) -> str:
    """The canonical key of a browser URL (as :func:`browser_url` returns): the one thing
    frontiers compare to decide whether a URL was seen before.

    On top of the browser URL: ``%XX`` escapes of unreserved characters (letters, digits,
    ``-._~``) are decoded and other escapes upper-cased, in path and query (RFC 3986 6.2.2);
    the query's ``&``-separated arguments are sorted, an argument without ``=`` gets one
    (``?b`` is ``?b=``), empty arguments and an empty query are dropped. ``+`` and ``%20`` stay
    distinct, as do reserved characters and their escapes (``=`` and ``%3D``): servers may
    tell them apart. Never raises; idempotent.
    """
    if "%" not in url and "?" not in url:
        return url  # the common case: nothing to do
    query_at = url.find("?")
    head = url if query_at < 0 else url[:query_at]
    if "%" in head:
        head = _ESCAPE.sub(_escape, head)
    if query_at < 0:
        return head
    query = url[query_at + 1 :]
    if "%" in query:
        query = _ESCAPE.sub(_escape, query)
    arguments = sorted(a if "=" in a else a + "=" for a in query.split("&") if a)
    return head + "?" + "&".join(arguments) if arguments else head


def canonicalize(url: str) -> str:
    """The canonical key (:func:`url_key`) of any spelling of an absolute http(s) URL.

    Raises:
        ValueError: as :func:`browser_url`.
    """
    return url_key(browser_url(url))


def document_base(document_url: str, base_href: str | None) -> str:
    """The base URL that a page's relative links resolve against, as browsers compute it.

    ``base_href`` is the first ``<base href>``'s value, if any. It is resolved against the
    document's URL; when that fails, or it is a ``javascript:`` or ``data:`` URL, the
    document's URL is the base (HTML, "set the frozen base URL"). Never raises.
    """
    if base_href is None:
        return document_url
    try:
        base = join_url(document_url, base_href)
    except ValueError:
        return document_url
    return document_url if base.startswith(_IGNORED_BASE_SCHEMES) else base


def host_of(url: str) -> str:
    """The host of a browser URL (no userinfo, no port, no brackets around IPv6)."""
    start = url.find("//") + 2
    end = url.find("/", start)
    netloc = url[start:] if end < 0 else url[start:end]
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.partition(":")[0]


def resolve_links(
    base: str, hrefs: Iterable[str], *, encoding: str | None = None
) -> tuple[list[str], int]:
    """Resolve ``hrefs`` against ``base`` into unique browser URLs, in page order.

    A one-off :class:`LinkResolver`; a crawl keeps one resolver for its cache.
    """
    return LinkResolver().resolve(base, hrefs, encoding=encoding)


#: A cached result meaning "not an http(s) URL: skip" (None) or "cannot be parsed" (this).
_INVALID: Final = "\0"
_MISSING: Final = "\1"


class LinkResolver:
    """Resolves hrefs as a browser does (ada-url), fast.

    A page's hrefs are mostly plain paths (``/docs/a.html``, ``../b/c.html``): letters,
    digits and path punctuation that the URL parser neither encodes nor interprets, with no
    ``%``, ``:``, ``?``, ``#``, backslash or whitespace. For those, and only those, the result
    is the base's origin and directory joined with the href and its ``.``/``..`` segments
    resolved, done here with string operations (ada would do exactly that, at the cost of a
    call across the C boundary: half the time of a page's link work).
    ``tests/test_urls.py`` checks that this agrees with ada on generated hrefs and bases.

    Everything else is ada's result, with a cache that saves asking again for an href whose
    result depends only on a part of the base, keyed on exactly that part: nothing for
    ``http(s)://...``, the base's scheme for ``//host/...``, everything before its path for
    ``/path``, the base up to the last ``/`` of its path for a path-relative href (``a?q``).
    Hrefs are first stripped as the URL parser strips them and cut after the ``#`` of their
    fragment (the result's fragment is dropped anyway). Query-only hrefs (``?q``), hrefs
    starting with a backslash, and http(s) spelled otherwise (``HTTP:``, ``http:x``) go to
    ada uncached. Other schemes (``mailto:``, ``javascript:``...) are skipped without
    parsing: they never resolve to http(s).
    """

    def __init__(self, cache_size: int = 8192) -> None:
        self._cache: dict[object, str | None] = {}
        self._cache_size = cache_size

    def resolve(
        self, base: str, hrefs: Iterable[str], *, encoding: str | None = None
    ) -> tuple[list[str], int]:
        """Resolve hrefs against ``base`` (the document's base URL: :func:`document_base`).

        ``encoding`` is the page's character encoding: as in browsers, non-ASCII characters
        in an href's query are percent-encoded in it (UTF-8 when ``None``; UTF-16 pages use
        UTF-8 too).

        Returns:
            ``(links, invalid)``: the unique http(s) browser URLs (fragment removed, at most
            :data:`MAX_LINKS_PER_PAGE`), and how many hrefs could not be parsed or were
            longer than :data:`MAX_URL_LENGTH`. Other schemes (``mailto:``, ``javascript:``,
            ``tel:``, ``data:``...) are skipped silently. An empty or fragment-only href is
            a link to the base URL itself.
        """
        seen: set[str] = set()
        links: list[str] = []
        invalid = 0
        parts = _Base(base, _legacy_codec(encoding))
        origin, directory = parts.origin, parts.directory_path
        plain = _PLAIN_PATH.match if parts.special else _never
        url: str | None
        for href in hrefs:
            size = len(href)
            if size > MAX_URL_LENGTH:
                invalid += 1
                continue
            match = plain(href)
            if match is not None and (
                (end := match.end()) == size or href[end] == "#"
            ):  # a plain path: the common case, joined here
                if end != size:
                    href = href[:end]
                if href[0] == "/":
                    path = href
                else:
                    path = directory
                    while href[0] == ".":  # the common "../sibling.html" and "./page.html"
                        if href.startswith("../"):
                            href = href[3:]
                            path = path[: path.rfind("/", 0, -1) + 1] or "/"
                        elif href.startswith("./"):
                            href = href[2:]
                        else:
                            break
                        if not href:
                            break
                    path += href
                if "/." in path:
                    path = _remove_dot_segments(path)
                url = origin + path
                if len(url) > MAX_URL_LENGTH:
                    url = _INVALID
            else:
                url = self._resolve_other(parts, href)
                if url is None:
                    continue
            if url is _INVALID:
                invalid += 1
            elif url not in seen:
                seen.add(url)
                links.append(url)
                if len(links) >= MAX_LINKS_PER_PAGE:
                    break
        return links, invalid

    def _resolve_other(self, base: _Base, href: str) -> str | None:
        """ada's browser URL for an href that is not a plain path; None to skip it,
        :data:`_INVALID` when it does not parse."""
        if "\t" in href or "\n" in href or "\r" in href:
            href = href.translate(_TAB_AND_NEWLINE)
        if href and (href[0] <= " " or href[-1] <= " "):
            href = href.strip(_C0_AND_SPACE)
        hash_at = href.find("#")
        if hash_at >= 0:  # "#" kept: "/a #x" is "/a%20", while ada strips "/a "
            href = href[: hash_at + 1]
        if base.legacy is not None and not href.isascii():
            href = _encode_query(href, base.legacy)
        first = href[:1]
        if first == "" or first == "#":  # a link to the base itself
            return base.url if base.url.startswith(_HTTP) else base.invalid
        scheme = _SCHEME.match(href) if ":" in href else None
        if scheme is not None and href[: scheme.end() - 1].lower() not in ("http", "https"):
            return None  # mailto:, javascript:, tel:, data:, ...: never http(s)
        if not base.special:
            return _join(base.url, href)
        key: object = None
        if first == "/":
            key = (base.scheme, href) if href[1:2] in ("/", "\\") else (base.origin, href)
        elif first == "h" and href.startswith(_HTTP):
            key = href
        elif first != "?" and first != "\\" and scheme is None:
            key = (base.directory, href)
        if key is None:
            return _join(base.url, href)
        cache = self._cache
        url = cache.get(key, _MISSING)
        if url is _MISSING:
            url = _join(base.url, href)
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[key] = url
        return url


# A plain path (then maybe a fragment, which is dropped): no character that the URL parser
# encodes or interprets (no "%", ":", "?", "\\", whitespace or controls): letters, digits
# and "-._~!$&'()*+,;=@/".
_PLAIN_PATH = re.compile(r"(?!//)[A-Za-z0-9\-._~!$&'()*+,;=@/]+")  # "//host" is not a path


def _never(href: str) -> None:
    return None


def _remove_dot_segments(path: str) -> str:
    """Resolve the "." and ".." segments of an absolute path as the URL parser does for
    http(s) (".." never climbs above the root; a final "." or ".." leaves a trailing "/")."""
    segments = path.split("/")
    output: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


class _Base:
    """A base URL in the parts link resolution needs."""

    __slots__ = ("directory", "directory_path", "invalid", "legacy", "origin", "scheme",
                 "special", "url")  # fmt: skip

    def __init__(self, base: str, legacy: str | None) -> None:
        self.legacy = legacy
        self.special = False
        self.scheme = self.origin = self.directory = self.directory_path = ""
        self.invalid: str | None = None
        if _is_normalised(base):  # most bases: the page's own URL, a browser URL already
            url = self.url = base
        else:
            try:
                self.url = URL(base).href
            except ValueError:  # then relative hrefs cannot be resolved: invalid links
                self.url, self.invalid = "", _INVALID
                return
            if not self.url.startswith(_HTTP):
                return  # an ftp: or other <base href>: ada alone
            url = self.url = self.url.partition("#")[0]
        self.special = True
        path_at = url.index("/", url.index("//") + 2)  # an http(s) URL always has a path
        query_at = url.find("?", path_at)
        last_slash = url.rindex("/", path_at, None if query_at < 0 else query_at) + 1
        self.scheme = url[: url.index(":") + 1]
        self.origin = url[:path_at]
        self.directory = url[:last_slash]
        self.directory_path = url[path_at:last_slash]


# An http(s) URL that ada's parser gives back exactly as it is: a lower-case host name whose
# last label begins with a letter (one ending in a number is an IPv4 address, which ada
# rewrites: "127.1" -> "127.0.0.1") or a dotted-quad address in its canonical form; a port
# with no leading zero; a path of characters the parser neither encodes nor interprets; no
# query, fragment or user info. (Hyphens only between letters or digits, so no "xn--" label
# that IDNA would have to check.) _is_normalised also refuses dot segments and default ports.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_NORMALISED = re.compile(
    r"(https?)://"
    r"(?:(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)*[a-z][a-z0-9]*(?:-[a-z0-9]+)*"
    rf"|{_OCTET}(?:\.{_OCTET}){{3}})"
    r"(?::([1-9][0-9]{0,4}))?"
    r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*"
)
_DEFAULT_PORT = {"http": "80", "https": "443"}


def _is_normalised(url: str) -> bool:
    """Whether ``url`` is an http(s) URL that ada would serialise unchanged (see
    ``_NORMALISED``): then it need not be parsed (~2.5 us, 1.3% of a page's CPU).
    tests/test_urls.py checks that ada agrees on generated URLs."""
    if len(url) > MAX_URL_LENGTH:
        return False
    match = _NORMALISED.fullmatch(url)
    if match is None or "/." in url:
        return False
    port = match.group(2)
    return port is None or (int(port) < 65536 and port != _DEFAULT_PORT[match.group(1)])


def _join(base: str, href: str) -> str | None:
    """ada's resolution of ``href`` against ``base``: the browser URL, None if it is not
    http(s), :data:`_INVALID` if it does not parse or is too long."""
    try:
        url = join_url(base, href) if base else URL(href).href
    except ValueError:
        return _INVALID
    if not url.startswith(_HTTP):
        return None
    hash_at = url.find("#")
    if hash_at >= 0:
        url = url[:hash_at]
    return _INVALID if len(url) > MAX_URL_LENGTH else url


def _legacy_codec(encoding: str | None) -> str | None:
    """The codec to percent-encode queries with, for a page's encoding; None for UTF-8 (what
    ada does), unknown encodings and UTF-16/32 (WHATWG: their pages use UTF-8 for URLs)."""
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return None
    if name.startswith(("utf-8", "utf-16", "utf-32")):
        return None
    return name


# The WHATWG special-query percent-encode set, for the ASCII part of a legacy-encoded query:
# C0 controls, space, '"', '#', "'", '<', '>' and DEL are escaped; the rest is kept.
_QUERY_KEEP = frozenset(chr(c) for c in range(0x21, 0x7F)) - set("\"#'<>")


def _encode_query(href: str, codec: str) -> str:
    """Percent-encode the non-ASCII characters of an href's query in the page's legacy
    encoding, as browsers do (a character the encoding lacks becomes ``&#N;``, encoded)."""
    query_at = href.find("?")
    if query_at < 0 or href[query_at:].isascii():
        return href
    out = []
    for char in href[query_at + 1 :]:
        if char in _QUERY_KEEP:
            out.append(char)
            continue
        try:
            data = char.encode(codec) if not char.isascii() else char.encode("ascii")
        except UnicodeEncodeError:
            out.append(f"%26%23{ord(char)}%3B")
            continue
        out.append("".join(f"%{byte:02X}" for byte in data))
    return href[: query_at + 1] + "".join(out)


# Origins: the unit politeness and the address guard apply to.


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a browser URL: the unit politeness applies to."""
    end = url.find("/", url.find("//") + 2)
    return url if end < 0 else url[:end]


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_text(scheme: str, host: str, port: int | None = None) -> str:
    """``scheme://host[:port]`` as ``origin_of`` gives it for a canonical URL: lowercase, the
    default port left out, an IPv6 address in brackets."""
    scheme = scheme.lower()
    host = host.lower().strip("[]")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def exempt_origins(origins: Iterable[str]) -> frozenset[str]:
    """The origins (``scheme://host[:port]``) of the seeds, each ``http://host`` on port 80
    with its ``https://host`` (the same site, upgraded by a redirect)."""
    exempt = set(origins)
    for origin in list(exempt):
        if origin.startswith("http://"):
            host = origin[7:]
            has_port = "]:" in host if host.startswith("[") else ":" in host
            if not has_port:
                exempt.add("https://" + host)
    return frozenset(exempt)


class UrlScope:
    """Decides which discovered links may be scheduled.

    A link is in scope when its host is allowed (by ``scope`` and ``allow_hosts``), its
    canonical key (:func:`url_key`) matches an ``include`` pattern (when there are any) and no
    ``exclude`` pattern: the key, so that the verdict is the same for every spelling of a
    page. Seeds are always fetched; they define the origins, hosts and domains of the
    ``origin``, ``host`` and ``domain`` scopes. ``host`` and ``domain`` compare host names
    only (any scheme, any port); ``origin`` compares scheme, host and port (``http://h``
    admits ``https://h``).
    """

    def __init__(self, config: CrawlConfig, seeds: Sequence[str]) -> None:
        self._scope = config.scope
        self._origins = exempt_origins(_origin(seed) for seed in seeds)
        hosts = {host_of(seed) for seed in seeds}
        self._hosts = frozenset(hosts)
        self._domains = tuple(sorted({h.removeprefix("www.") for h in hosts}))
        self._allow = tuple(
            re.compile(fnmatch.translate(_ascii_host_pattern(p))) for p in config.allow_hosts
        )
        # RE2 sets, not Python's re: matching takes linear time whatever the pattern.
        self._include = url_patterns(config.include)
        self._exclude = url_patterns(config.exclude)
        self._host_verdicts: dict[str, bool] = {}

    def allows(self, url: str) -> bool:
        if self._scope == "origin" and _origin(url) not in self._origins:
            host = host_of(url)
            if not any(p.match(host) for p in self._allow):
                return False
        host = host_of(url)
        verdict = self._host_verdicts.get(host)
        if verdict is None:
            verdict = self.allows_host(host)
            if len(self._host_verdicts) >= 65536:  # bounded: a crawl may meet millions of hosts
                self._host_verdicts.clear()
            self._host_verdicts[host] = verdict
        if not verdict:
            return False
        include, exclude = self._include, self._exclude
        if include is None and exclude is None:
            return True
        key = url_key(url)
        if include is not None and include(key) is None:
            return False
        return exclude is None or exclude(key) is None

    def allows_host(self, host: str) -> bool:
        if self._scope in ("any", "origin") or host in self._hosts:  # origin: see allows()
            return True
        if self._scope == "domain" and any(
            host == d or host.endswith("." + d) for d in self._domains
        ):
            return True
        return any(p.match(host) for p in self._allow)


def _ascii_host_pattern(pattern: str) -> str:
    """A host pattern as hosts appear in browser URLs: lower case, internationalised labels
    in their IDNA (punycode) form (``*.bücher.de`` matches ``www.xn--bcher-kva.de``). A label
    that is not plain ASCII and holds a wildcard is left as written."""
    labels = pattern.lower().split(".")
    for i, label in enumerate(labels):
        if not label.isascii() and "*" not in label and "?" not in label:
            labels[i] = idna.encode(label).decode("ascii") or label
    return ".".join(labels)


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a browser URL."""
    end = url.find("/", url.find("//") + 2)
    return url if end < 0 else url[:end]
