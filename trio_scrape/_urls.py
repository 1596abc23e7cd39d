"""URLs: canonical form, link resolution and crawl scope.

Canonical form is w3lib's ``canonicalize_url`` (the one Scrapy's dupefilter uses: fragment
dropped, scheme and host lower-cased, IDNA hosts, query arguments sorted, percent-encoding
normalised) plus one thing w3lib keeps: the default port (``:80`` for http, ``:443`` for
https) is dropped. Two spellings of one URL therefore dedupe to one record.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

from ._config import CrawlConfig

__all__ = ["UrlScope", "canonicalize", "host_of", "resolve_links"]

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a browser strips from hrefs before resolving them (HTML spec: "strip leading and
# trailing ASCII whitespace", and tabs/newlines anywhere are removed by the URL parser).
_HREF_NOISE = re.compile(r"[\t\n\r]")


def canonicalize(url: str) -> str:
    """Return the canonical form of an absolute http(s) URL.

    Raises:
        ValueError: the URL is not an absolute http or https URL with a host, or cannot be
            parsed (bad port, bad IPv6 literal, bad IDNA label).
    """
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
    return canonical


def host_of(url: str) -> str:
    """The lower-case host of a canonical URL (no port, no brackets around IPv6)."""
    return urlsplit(url).hostname or ""


def resolve_links(base: str, hrefs: Iterable[str]) -> tuple[list[str], int]:
    """Resolve ``hrefs`` against ``base`` into unique canonical http(s) URLs, in page order.

    Returns:
        ``(links, invalid)``: the links, and how many hrefs were http(s)-looking but could
        not be made canonical. Other schemes (mailto:, javascript:, tel:, data:, ...) and
        fragment-only hrefs are skipped silently.
    """
    seen: set[str] = set()
    links: list[str] = []
    invalid = 0
    for href in hrefs:
        href = _HREF_NOISE.sub("", href).strip()
        if not href or href.startswith("#"):
            continue
        try:
            absolute = urljoin(base, href)
        except ValueError:
            invalid += 1
            continue
        scheme = absolute.split(":", 1)[0].lower()
        if scheme not in _SCHEMES:
            continue
        try:
            url = canonicalize(absolute)
        except ValueError:
            invalid += 1
            continue
        if url not in seen:
            seen.add(url)
            links.append(url)
    return links, invalid


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

    def allows(self, url: str) -> bool:
        if not self.allows_host(host_of(url)):
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
