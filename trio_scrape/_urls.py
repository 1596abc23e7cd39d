"""URLs: canonical form, link resolution and crawl scope.

Canonical form is w3lib's ``canonicalize_url`` (the one Scrapy's dupefilter uses: fragment
dropped, scheme and host lower-cased, IDNA hosts, query arguments sorted, percent-encoding
normalised) plus one thing w3lib keeps: the default port (``:80`` for http, ``:443`` for
https) is dropped. Two spellings of one URL therefore dedupe to one record.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable, Sequence
from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

from ._config import CrawlConfig

__all__ = [
    "MAX_LINKS_PER_PAGE",
    "MAX_URL_LENGTH",
    "LinkResolver",
    "UrlScope",
    "canonicalize",
    "host_of",
    "resolve_links",
]

#: Longer URLs are refused (seeds) or skipped and counted as invalid (links); 2,048 is what
#: sitemaps allow and about what browsers and servers reliably accept.
MAX_URL_LENGTH = 2048
#: Links taken from one page; the rest are ignored (a page of a million links is an attack).
MAX_LINKS_PER_PAGE = 10_000

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a browser strips from hrefs before resolving them (HTML spec: "strip leading and
# trailing ASCII whitespace", and tabs/newlines anywhere are removed by the URL parser).
_HREF_NOISE = re.compile(r"[\t\n\r]")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_HOST = re.compile(r"(?:[a-z0-9_.-]+|\[[0-9a-f:.]+(?:%25[\w.~-]+)?\])(?::[0-9]{1,5})?")


def canonicalize(url: str) -> str:
    """Return the canonical form of an absolute http(s) URL.

    Raises:
        ValueError: the URL is not an absolute http or https URL with a host, cannot be
            parsed (bad port, bad IPv6 literal, bad IDNA label), or its canonical form is
            longer than :data:`MAX_URL_LENGTH`.
    """
    if len(url) > 4 * MAX_URL_LENGTH:  # no point parsing it: it cannot come out short enough
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"not an http(s) URL: {url!r}")
    if not parts.hostname:
        raise ValueError(f"URL has no host: {url!r}")
    parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in range
    try:
        canonical = canonicalize_url(url.strip())
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"cannot canonicalize {url!r}: {exc}") from None
    parts = urlsplit(canonical)
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        netloc = parts.netloc.rsplit(":", 1)[0]
        canonical = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    if len(canonical) > MAX_URL_LENGTH:
        raise ValueError(f"URL longer than {MAX_URL_LENGTH} characters")
    # w3lib passes through what no DNS name can hold (spaces, controls, non-ASCII that is not
    # IDNA): a host must be letters, digits, "-", "_", "." or a bracketed IPv6 literal.
    netloc = parts.netloc.rpartition("@")[2]
    if not canonical.isascii() or _UNSAFE.search(canonical) or not _HOST.fullmatch(netloc):
        raise ValueError(f"not a valid host in {url!r}")
    return canonical


def host_of(url: str) -> str:
    """The host of a canonical URL (no userinfo, no port, no brackets around IPv6)."""
    start = url.find("//") + 2
    end = url.find("/", start)
    netloc = url[start:] if end < 0 else url[start:end]
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.partition(":")[0]


def resolve_links(base: str, hrefs: Iterable[str]) -> tuple[list[str], int]:
    """Resolve ``hrefs`` against ``base`` into unique canonical http(s) URLs, in page order.

    A one-off :class:`LinkResolver`; a crawl keeps one resolver for its cache.

    Returns:
        ``(links, invalid)``: the links, and how many hrefs were http(s)-looking but could
        not be made canonical. Other schemes (mailto:, javascript:, tel:, data:, ...) and
        fragment-only hrefs are skipped silently.
    """
    return LinkResolver().resolve(base, hrefs)


# Characters w3lib's canonicalize_url leaves unchanged in a path (checked by a test).
# (";" is left to w3lib, which treats it as a path-parameter separator: both ways of
# reaching a URL with one must give the same canonical form.)
_PATH_CHARS = r"A-Za-z0-9!$&'()*+,\-.:=@_~/"
# A URL this matches (and whose port is not the default) is already canonical: lower-case
# http(s) scheme and host, no userinfo, query or fragment, only such path characters.
_ALREADY_CANONICAL = re.compile(
    rf"(https?)://[a-z0-9.-]+(:[1-9][0-9]{{0,4}})?(?:/[{_PATH_CHARS}]*)?"
)
# An href that is a plain path (absolute or relative): no scheme, query, fragment or escape.
_PATH_HREF = re.compile(rf"[{_PATH_CHARS.replace(':', '')}]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _is_canonical(url: str) -> bool:
    match = _ALREADY_CANONICAL.fullmatch(url)
    return (
        match is not None
        and "/./" not in url
        and "/../" not in url
        and not url.endswith(("/.", "/.."))
        and match.group(2) != (":80" if match.group(1) == "http" else ":443")
        and (match.group(2) is None or int(match.group(2)[1:]) <= 65535)
    )


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: resolve "." and ".." segments."""
    segments = path.split("/")
    output: list[str] = []
    for segment in segments[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")  # "/a/b/.." is the directory "/a/", not "/a"
    return "/" + "/".join(output)


class LinkResolver:
    """Resolves and canonicalises hrefs, fast.

    The crawl's hot path meets the same hrefs over and over (navigation repeats on every page),
    and most of them are plain relative or absolute paths. So: hrefs that are plain paths are
    joined with string operations (RFC 3986 dot-segment removal included); a URL that is
    already canonical is recognised by one regular expression instead of being re-parsed; and
    results are cached per (base directory, href) in a bounded dict. Everything else goes
    through ``urljoin`` and :func:`canonicalize`. ``tests/test_urls.py`` checks that the fast
    path agrees with the slow one.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._cache: dict[tuple[str, str], str | None] = {}
        self._cache_size = cache_size

    def resolve(self, base: str, hrefs: Iterable[str]) -> tuple[list[str], int]:
        seen: set[str] = set()
        links: list[str] = []
        invalid = 0
        cache = self._cache
        # The base without query and fragment, split at its path: relative hrefs resolve alike
        # for every page of one directory, so the cache is keyed on that directory.
        bare = base.split("#", 1)[0].split("?", 1)[0]
        slash = bare.find("/", bare.find("//") + 2) if "//" in bare else -1
        origin, path = (bare, "/") if slash < 0 else (bare[:slash], bare[slash:])
        directory = sys.intern(origin + path[: path.rfind("/") + 1])
        # Joining a plain-path href to a canonical directory gives a canonical URL: no need
        # to check each result (only dot segments, which the join removes).
        canonical_base = _is_canonical(directory)
        for href in hrefs:
            if len(href) > MAX_URL_LENGTH:
                invalid += 1
                continue
            if "\t" in href or "\n" in href or "\r" in href:
                href = _HREF_NOISE.sub("", href)
            href = href.strip()
            if not href or href[0] == "#":
                continue
            if "#" in href:
                href = href[: href.index("#")]
            key = (directory, href)
            url = cache.get(key, "")
            if url == "":
                try:
                    url, cacheable = self._resolve_one(
                        base, origin, directory, href, canonical_base
                    )
                except ValueError:
                    url, cacheable = "\0", False  # "\0": invalid
                if cacheable:
                    if len(cache) >= self._cache_size:
                        cache.clear()
                    cache[key] = url
            if url is None:
                continue
            if url == "\0" or len(url) > MAX_URL_LENGTH:
                invalid += 1
            elif url not in seen:
                seen.add(url)
                links.append(url)
                if len(links) >= MAX_LINKS_PER_PAGE:
                    break
        return links, invalid

    @staticmethod
    def _resolve_one(
        base: str, origin: str, directory: str, href: str, canonical_base: bool
    ) -> tuple[str | None, bool]:
        """The canonical URL of one href (None for a scheme we skip) and whether the result
        depends only on the base's directory, so may be cached. ValueError if unusable."""
        if _PATH_HREF.fullmatch(href) and not href.startswith("//"):
            if href[0] == "/":
                path = href
            else:
                path = directory[len(origin) :]
                while href.startswith("../"):  # the common "../sibling/page.html"
                    href = href[3:]
                    path = path[: path.rfind("/", 0, -1) + 1] or "/"
                path += href
            if "/." in path:
                path = _remove_dot_segments(path)
            if canonical_base:
                return origin + path, True
            absolute = origin + path
            cacheable = True
        else:
            scheme = _SCHEME.match(href)
            if scheme is not None and href[: scheme.end() - 1].lower() not in _SCHEMES:
                return None, True  # mailto:, javascript:, tel:, data:, ...
            # An absolute URL resolves alone; "//host", "?query" and odd forms need the base.
            cacheable = scheme is not None
            if cacheable and _is_canonical(href):
                return (href + "/" if href.count("/") == 2 else href), True
            absolute = urljoin(base, href)
            if absolute.split(":", 1)[0].lower() not in _SCHEMES:
                return None, cacheable
        if not _is_canonical(absolute):
            return canonicalize(absolute), cacheable
        if absolute.count("/") == 2:  # "http://host" is "http://host/"
            absolute += "/"
        return absolute, cacheable


class UrlScope:
    """Decides which discovered links may be scheduled.

    A link is in scope when its host is allowed (by ``scope`` and ``allow_hosts``), it matches
    an ``include`` pattern (when there are any) and no ``exclude`` pattern. Seeds are always
    fetched; they define the hosts of the ``host`` and ``domain`` scopes.
    """

    def __init__(self, config: CrawlConfig, seeds: Sequence[str]) -> None:
        self._scope = config.scope
        hosts = {host_of(seed) for seed in seeds}
        self._hosts = frozenset(hosts)
        self._domains = tuple(sorted({h.removeprefix("www.") for h in hosts}))
        self._allow = tuple(re.compile(fnmatch.translate(p.lower())) for p in config.allow_hosts)
        self._include = tuple(re.compile(p) for p in config.include)
        self._exclude = tuple(re.compile(p) for p in config.exclude)
        self._host_verdicts: dict[str, bool] = {}

    def allows(self, url: str) -> bool:
        host = host_of(url)
        verdict = self._host_verdicts.get(host)
        if verdict is None:
            verdict = self.allows_host(host)
            if len(self._host_verdicts) >= 65536:  # bounded: a crawl may meet millions of hosts
                self._host_verdicts.clear()
            self._host_verdicts[host] = verdict
        if not verdict:
            return False
        if self._include and not any(p.search(url) for p in self._include):
            return False
        return not any(p.search(url) for p in self._exclude)

    def allows_host(self, host: str) -> bool:
        if self._scope == "any" or host in self._hosts:
            return True
        if self._scope == "domain" and any(
            host == d or host.endswith("." + d) for d in self._domains
        ):
            return True
        return any(p.match(host) for p in self._allow)
