"""The scraper's request: a URL with a method, headers, a body, a label and data.

A :class:`Request` is what a handler enqueues, what a spider starts from, and what a form
submission becomes. The crawl carries it inside the frontier's
:class:`~trio_scrape.CrawlRequest` (its ``request`` field), through every frontier, worker
process, retry and redirect, to the page it makes, whose handler sees it again.

Its **dedup key** decides whether it was seen before: by default the canonical URL key
(:func:`~trio_scrape.canonicalize`'s) for a ``GET`` or ``HEAD`` with no ``data``, so a
labelled request and a plain link to the same page are one page; otherwise
``METHOD key digest``, the digest being of the body and the data. So two searches posting
different forms to one URL are two requests, and the same search twice is one; and a list
page's items joined to the detail page they link (the data carrying the list's fields) each
get their request, even when several link the same detail page (where a dupefilter on the
URL alone would silently drop all but the first join). ``dedup_key`` replaces the default;
``dont_dedup`` makes the request new every time it is enqueued (still once per enqueue:
exactly once, like every request).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..errors import ConfigError
from . import validate
from .urls import browser_url, url_key

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DATA_BYTES",
    "MAX_LABEL_LENGTH",
    "Request",
    "RequestError",
    "request_key",
]

#: The largest request body (bytes): a form post or a JSON query, not an upload.
MAX_BODY_BYTES = 1024 * 1024
#: The largest ``data`` a request carries, as JSON (it is stored with the request in a state
#: or a fleet, once per queued request).
MAX_DATA_BYTES = 64 * 1024
#: The longest label.
MAX_LABEL_LENGTH = 200

_METHOD = re.compile(r"[A-Z][A-Z0-9_-]{0,19}")
_BODYLESS = ("GET", "HEAD")
_new = object.__new__
_set = object.__setattr__


class RequestError(ValueError):
    """A request that cannot be made as given: the message names the field and why."""


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Request:
    """A request to make, with what it is for.

    Args:
        url: an absolute http(s) URL (or, in a handler, one relative to the page: see
            ``Context.request``); kept as a browser would request it.
        method: the HTTP method, upper case (``GET``, ``POST``, ``PUT``...).
        headers: extra request headers (the crawl's own ``headers`` and cookies apply too).
        body: the raw body (at most :data:`MAX_BODY_BYTES`); see :meth:`form` and
            :meth:`json` for the usual ones.
        label: the page type: which handler gets the page (None: the default handler).
        data: the user's JSON-serialisable values, travelling with the request to its page
            (at most :data:`MAX_DATA_BYTES` as JSON).
        dedup_key: the key that decides "seen before", instead of the default (see the
            module's text).
        dont_dedup: never deduplicate this one.

    Raises:
        RequestError: a field is not valid (the message names it).
    """

    url: str
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: bytes | None = None
    label: str | None = None
    data: Mapping[str, Any] | None = None
    dedup_key: str | None = None
    dont_dedup: bool = False

    def __post_init__(self) -> None:
        try:
            url = browser_url(self.url)
        except (ValueError, TypeError) as exc:
            raise RequestError(f"url: {exc}") from None
        if url != self.url:
            object.__setattr__(self, "url", url)
        if not isinstance(self.method, str) or not _METHOD.fullmatch(self.method):
            raise RequestError(f"method: not an HTTP method in upper case: {self.method!r}")
        if self.headers is not None:
            _check_headers(self.headers)
        if self.body is not None:
            if not isinstance(self.body, bytes):
                raise RequestError(f"body: must be bytes, not {type(self.body).__name__}")
            if len(self.body) > MAX_BODY_BYTES:
                raise RequestError(
                    f"body: {len(self.body):,} bytes, over the limit of {MAX_BODY_BYTES:,}"
                )
        if self.label is not None and (
            not isinstance(self.label, str) or not 0 < len(self.label) <= MAX_LABEL_LENGTH
        ):
            raise RequestError(
                f"label: must be a non-empty string of at most {MAX_LABEL_LENGTH} characters"
            )
        if self.data is not None:
            _check_data(self.data)
        if self.dedup_key is not None and not isinstance(self.dedup_key, str):
            raise RequestError("dedup_key: must be a string")

    # ------------------------------------------------------------------------ constructors

    @classmethod
    def form(
        cls,
        url: str,
        fields: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        method: str = "POST",
        **more: Any,
    ) -> Request:
        """A form submission: ``fields`` urlencoded in the body (POST) or the query (GET).

        To submit a form of a page as a browser would (hidden inputs, the clicked button,
        the page's encoding), use ``Context.form`` instead."""
        pairs = list(fields.items() if isinstance(fields, Mapping) else fields)
        encoded = urllib.parse.urlencode(pairs)
        if method in _BODYLESS:
            parts = urllib.parse.urlsplit(url)
            return cls(parts._replace(query=encoded).geturl(), method=method, **more)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **more.pop("headers", {})}
        return cls(url, method=method, headers=headers, body=encoded.encode(), **more)

    @classmethod
    def json(cls, url: str, value: Any, *, method: str = "POST", **more: Any) -> Request:
        """A JSON body (``Content-Type: application/json``)."""
        try:
            body = orjson.dumps(value)
        except TypeError as exc:
            raise RequestError(f"body: not JSON-serialisable: {exc}") from None
        headers = {"Content-Type": "application/json", **more.pop("headers", {})}
        return cls(url, method=method, headers=headers, body=body, **more)

    # ---------------------------------------------------------------------------- queries

    @property
    def is_plain(self) -> bool:
        """Whether this is just a link: a GET of its URL with no label, data, headers, body
        or dedup rule of its own."""
        return (
            self.method == "GET"
            and self.label is None
            and self.data is None
            and self.body is None
            and not self.headers
            and self.dedup_key is None
            and not self.dont_dedup
        )

    @property
    def key(self) -> str:
        """The dedup key (see the module's text)."""
        if self.dedup_key is not None:
            return self.dedup_key
        return request_key(self.url, self.method, self.body, self.data)

    def with_browser_url(self, url: str) -> Request:
        """This request for another URL that is a browser URL already (one a page's links
        resolved to): nothing else is checked again, so a page's links cost one check of
        their label and data, not one per link."""
        copy: Request = _new(Request)
        _set(copy, "url", url)
        _set(copy, "method", self.method)
        _set(copy, "headers", self.headers)
        _set(copy, "body", self.body)
        _set(copy, "label", self.label)
        _set(copy, "data", self.data)
        _set(copy, "dedup_key", self.dedup_key)
        _set(copy, "dont_dedup", self.dont_dedup)
        return copy

    @classmethod
    def link(cls, url: str) -> Request:
        """A plain GET of ``url``, a browser URL already (one a page's links resolved to),
        made without checking it again."""
        plain: Request = _new(cls)
        _set(plain, "url", url)
        _set(plain, "method", "GET")
        _set(plain, "headers", None)
        _set(plain, "body", None)
        _set(plain, "label", None)
        _set(plain, "data", None)
        _set(plain, "dedup_key", None)
        _set(plain, "dont_dedup", False)
        return plain

    def replace(self, **changes: Any) -> Request:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The request as JSON values (the body as latin-1 text), for a state or a fleet."""
        value: dict[str, Any] = {"url": self.url}
        if self.method != "GET":
            value["method"] = self.method
        if self.headers:
            value["headers"] = dict(self.headers)
        if self.body is not None:
            value["body"] = self.body.decode("latin-1")
        if self.label is not None:
            value["label"] = self.label
        if self.data is not None:
            value["data"] = self.data
        if self.dedup_key is not None:
            value["dedup_key"] = self.dedup_key
        if self.dont_dedup:
            value["dont_dedup"] = True
        return value

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Request:
        """The request :meth:`to_json` gave."""
        body = value.get("body")
        return cls(
            value["url"],
            method=value.get("method", "GET"),
            headers=value.get("headers"),
            body=None if body is None else body.encode("latin-1"),
            label=value.get("label"),
            data=value.get("data"),
            dedup_key=value.get("dedup_key"),
            dont_dedup=value.get("dont_dedup", False),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.url, self.method, self.body, self.label, self.dedup_key))

    def __repr__(self) -> str:
        parts = [repr(self.url)]
        if self.method != "GET":
            parts.append(f"method={self.method!r}")
        if self.label is not None:
            parts.append(f"label={self.label!r}")
        if self.body is not None:
            parts.append(f"body=<{len(self.body)} bytes>")
        return f"Request({', '.join(parts)})"


def request_key(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """The default dedup key of a request (``url`` a browser URL): the canonical URL key for
    a ``GET`` or ``HEAD`` with no body and no data; else the method, the key and a digest of
    the body and the data (its JSON with sorted keys)."""
    key = url_key(url)
    if method in _BODYLESS and not body and not data:
        return key
    digest = hashlib.blake2b(body or b"", digest_size=12)
    if data:
        digest.update(b"\0" + orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    return f"{method} {key} {digest.hexdigest()}"


def _check_headers(headers: Mapping[str, str]) -> None:
    """The rules of the crawl's own ``headers`` (names that are tokens, values of printable
    ASCII as HTTP sends them, none the HTTP client sets itself, such as ``Connection``)."""
    if not isinstance(headers, Mapping):
        raise RequestError("headers: must be a mapping of names to values")
    try:
        validate.headers("headers", headers)
    except ConfigError as exc:
        raise RequestError(f"headers: {exc.message}") from None


def _check_data(data: Mapping[str, Any]) -> None:
    if not isinstance(data, Mapping):
        raise RequestError(f"data: must be a mapping, not {type(data).__name__}")
    try:
        size = len(orjson.dumps(data))
    except TypeError as exc:
        raise RequestError(f"data: not JSON-serialisable: {exc}") from None
    if size > MAX_DATA_BYTES:
        raise RequestError(f"data: {size:,} bytes as JSON, over the limit of {MAX_DATA_BYTES:,}")
