"""What flows through a crawl: requests in, pages (records) out."""

from __future__ import annotations

import builtins
import dataclasses
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import httpx
    from selectolax.lexbor import LexborHTMLParser

    from .request import Request

__all__ = ["RECORD_FIELDS", "CrawlRequest", "ErrorKind", "Page", "PageError", "PageMemo"]

#: Every ``error.kind`` a record can carry.
ErrorKind = Literal[
    "timeout",  # the page deadline or an HTTP timeout passed
    "connect",  # the connection could not be made (refused, DNS, proxy)
    "network",  # the connection broke while sending or receiving (reset)
    "protocol",  # the server broke HTTP (malformed response, closed mid-body)
    "http_status",  # the final answer was not 2xx
    "too_large",  # the decoded body passed max_bytes
    "too_many_redirects",
    "decode",  # the Content-Encoding could not be decoded (corrupt gzip, ...)
    "invalid_url",  # a redirect or seed that is not a fetchable http(s) URL
    "robots",  # robots.txt disallows it: never requested
    "extract",  # the extract or follow hook raised
    "cancelled",  # the crawl stopped and the grace period ran out
    "sitemap",  # a sitemap that is not sitemap XML (or has too many entries)
    "blocked_address",  # the host resolves to a private/loopback/link-local address: not sent
    "browser",  # rendering: the tab or the browser crashed, or the browser cannot start
    "render_wait",  # rendering: --render-wait-for / --render-wait-js not met by the deadline
    "crashed",  # the worker process running it died on every attempt (--processes)
]

#: Record fields in output order (``links`` appears only when links are requested).
RECORD_FIELDS: tuple[str, ...] = (
    "url",
    "final_url",
    "status",
    "ok",
    "depth",
    "referrer",
    "method",
    "label",
    "content_type",
    "bytes",
    "elapsed",
    "fetched_at",
    "title",
    "data",
    "links",
    "error",
)


class PageMemo(NamedTuple):
    """What a crawl with a state remembers of a page it fetched, for the next round of a
    recrawl: the HTTP status, the validators to send back (``ETag``, ``Last-Modified``), the
    SHA-256 of the body (hex), and the links it followed (browser URLs), which an unchanged
    page (``304 Not Modified``) yields again as if it had been fetched. A plain tuple of
    JSON values, so that any frontier can store it (SQLite as JSON, Redis as a hash field)."""

    status: int
    etag: str | None = None
    last_modified: str | None = None
    digest: str | None = None
    links: tuple[str, ...] = ()

    def conditional_headers(self) -> dict[str, str]:
        """The headers that ask the server for the page only if it changed."""
        headers = {}
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if self.last_modified is not None:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class CrawlRequest(NamedTuple):
    """A URL scheduled for fetching (its browser URL: what is requested and recorded), link
    depth, where it was found, and the attempts already made (with the trio time of the
    first) when it comes back to retry. ``sitemap`` marks a sitemap to read for URLs;
    ``lastmod`` is the ``<lastmod>`` a sitemap gave this URL. ``revisit`` marks a page
    fetched once more only for its links, because it was found at a smaller depth after it
    had been handed out: it writes no record. ``memo`` is what the last round of a recrawl
    remembers of the page (None: a new page, or not a recrawl). ``request`` is the scraper's
    :class:`~trio_scrape.Request` (method, headers, body, label, data) when it is more than a
    ``GET`` of ``url`` (None: a plain link)."""

    url: str
    depth: int = 0
    referrer: str | None = None
    attempts: int = 0
    first_try: float | None = None
    sitemap: bool = False
    lastmod: str | None = None
    revisit: bool = False
    memo: PageMemo | None = None
    request: Request | None = None


def rebuilt_by_fields(value: Any) -> tuple[type[Any], tuple[Any, ...]]:
    """``__reduce__`` for a frozen dataclass: rebuilt by calling its class with its fields.
    Pickle's and copy's default sets the fields one by one, which a frozen dataclass
    compiled by mypyc (hatch_build.py) refuses; worker processes pickle these values."""
    return type(value), tuple(getattr(value, field.name) for field in dataclasses.fields(value))


@dataclasses.dataclass(frozen=True, slots=True)
class PageError:
    """Why a page failed: ``kind`` is one of :data:`ErrorKind`, ``message`` is for humans."""

    kind: ErrorKind
    message: str

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return rebuilt_by_fields(self)

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclasses.dataclass(slots=True, eq=False)
class Page:
    """One crawled URL: the record written for it, plus the response for hooks to read.

    Exactly one ``Page`` is produced for every URL a worker takes, whether it succeeded or
    not; ``error`` is ``None`` on success. ``content``, ``headers``, ``text`` and ``html``
    are for hooks and library users and are not written to records.
    """

    url: str
    depth: int = 0
    referrer: str | None = None
    method: str = "GET"
    label: str | None = None
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    bytes: int = 0
    elapsed: float = 0.0
    fetched_at: str | None = None
    title: str | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    links: list[str] = dataclasses.field(default_factory=list)
    error: PageError | None = None
    #: the items its handler emitted (a scrape's output; not part of the record)
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    content: builtins.bytes = b""
    headers: httpx.Headers | None = None
    encoding: str | None = None
    text: str | None = None
    html: LexborHTMLParser | None = None

    @property
    def ok(self) -> bool:
        """True when the final answer was 2xx (or a recrawl's ``304 Not Modified``) and
        nothing else failed."""
        status = self.status
        return self.error is None and status is not None and (200 <= status < 300 or status == 304)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON (the message says where it fails).
        """
        import orjson

        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{self.url}: the body is not JSON: {exc}") from None

    def to_record(self, *, links: bool = False) -> dict[str, Any]:
        """The output record, fields in :data:`RECORD_FIELDS` order."""
        record: dict[str, Any] = {
            "url": self.url,
            "final_url": self.final_url,
            "status": self.status,
            "ok": self.ok,
            "depth": self.depth,
            "referrer": self.referrer,
            "method": self.method,
            "label": self.label,
            "content_type": self.content_type,
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 6),
            "fetched_at": self.fetched_at,
            "title": self.title,
            "data": self.data,
        }
        if links:
            record["links"] = self.links
        record["error"] = None if self.error is None else self.error.to_dict()
        return record
