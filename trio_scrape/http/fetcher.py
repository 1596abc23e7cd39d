"""The HTTP layer: one URL in, one capped response (or a classified failure) out.

The engine sees only the :class:`Fetcher` protocol, so the HTTP stack can be swapped or tuned
without touching it. :class:`HttpxFetcher` is the implementation: httpx requests and responses
over one shared transport (:class:`CrawlTransport` by default), redirects followed here (so
every hop is counted and checked), and the decoded body streamed and cut at ``max_bytes`` so a
decompression bomb or an endless body costs no more than the cap.

Retry *policy* (which failures are retried, how long to wait) lives here too, as pure
functions; the engine owns the retry loop because each attempt gets its own page deadline.
"""

from __future__ import annotations

import email.utils
import importlib.util
import os
import random
import re
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from ..errors import ConfigError
from ..model.config import CrawlConfig
from ..model.page import ErrorKind
from ..model.urls import exempt_origins, host_of, origin_text, resolve_links
from .addresses import AddressGuard, BlockedAddress, resolve
from .cookies import SessionJar
from .headers import header_dict, headers_from_raw
from .transport import CrawlTransport, serialise_head

__all__ = [
    "RETRY_STATUSES",
    "FetchError",
    "Fetcher",
    "HttpxFetcher",
    "Response",
    "backoff_delay",
    "open_fetcher",
    "parse_retry_after",
]

#: Answers worth another attempt (as Scrapy's RETRY_HTTP_CODES, less 500/408/522/524:
#: a 500 is usually a bug that a retry will not fix).
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NO_TIMEOUTS = {"timeout": {"connect": None, "read": None, "write": None, "pool": None}}
_DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": ", ".join(
        ["gzip", "deflate"]
        + (["br"] if importlib.util.find_spec("brotli") else [])
        + (["zstd"] if importlib.util.find_spec("zstandard") else [])
    ),
}  # (no "Connection: keep-alive": it is HTTP/1.1's default)
# A URL httpx would send exactly as written (checked in the tests): lower-case ASCII host, no
# default port, a path and query of characters it leaves alone. Those take the fetcher's way
# around httpx.Request / httpx.Response; any other URL goes through them.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9.\-]+)(?::([0-9]{1,5}))?"
    r"(/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)"
)
_RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {"timeout", "connect", "network", "protocol", "browser"}
)


class FetchError(Exception):
    """A fetch failed in a way that becomes the page's ``error``: ``kind`` classifies it."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        #: the answer's URL, status and Content-Type when one came but its body failed
        #: (``too_large``, ``decode``): the record says them (None: no answer)
        self.final_url: str | None = None
        self.status: int | None = None
        self.content_type: str | None = None

    def answered(self, url: str, status: int, fields: Mapping[str, str]) -> FetchError:
        """This error, with the answer whose body it is about."""
        self.final_url, self.status = url, status
        self.content_type = fields.get("content-type")
        return self

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE_KINDS


class Response:
    """A fetched response with its whole (decoded, capped) body. ``fields`` holds the headers
    by lower-case name (repeated ones joined with ", "): one dict lookup instead of a scan of
    ``httpx.Headers`` for each header the crawler reads."""

    __slots__ = ("content", "fields", "final_url", "headers", "render_note", "rendered", "status")

    def __init__(
        self,
        final_url: str,
        status: int,
        headers: httpx.Headers,
        content: bytes,
        fields: dict[str, str] | None = None,
    ):
        self.final_url = final_url
        self.status = status
        self.headers = headers
        self.content = content
        self.fields = header_fields(headers) if fields is None else fields
        self.rendered = False  #: the body is a DOM rendered by the browser (see _render)
        #: with ``render_auto``: what was decided and why (the record's ``data.rendered``)
        self.render_note: dict[str, Any] | None = None


def header_fields(headers: httpx.Headers) -> dict[str, str]:
    """Headers as a dict by lower-case name; repeated headers joined with ", "."""
    return header_dict(headers.raw)


class Fetcher(Protocol):
    """Fetches one URL, following redirects.

    ``fetch`` returns the final response whatever its status, and raises :class:`FetchError`
    for everything else (timeouts, connection failures, too many redirects, a body over the
    cap, undecodable content). It may be cancelled at any checkpoint. ``headers`` are added to
    the first request (a recrawl's conditional ``If-None-Match`` / ``If-Modified-Since``, a
    scraper request's own); a fetcher that cannot send them (a browser) ignores them.
    ``method`` and ``body`` make the first request another than ``GET`` (a form post, a JSON
    query); redirects then go as browsers take them: ``303`` (and ``301``/``302`` after a
    ``POST``) continue with a ``GET`` and no body, ``307`` and ``308`` keep both.
    """

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response: ...


class HttpxFetcher:
    """:class:`Fetcher` that sends ``httpx.Request`` s straight to an httpx transport.

    It does what ``httpx.AsyncClient`` would do for a crawler, and no more, because the client's
    per-request machinery (auth flow, redirect flow, event hooks, header merging) cost about a
    sixth of a crawl's CPU: default headers (``Accept``, ``Accept-Encoding`` for every decoder
    installed, ``User-Agent``), cookies kept in an ``httpx.Cookies`` jar (touched only when a
    server sets one), redirects followed here with ``Authorization`` dropped across origins as
    httpx does. Timeouts are left to the caller's page deadline, which bounds every connect,
    write and read.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        headers: Mapping[str, str],
        max_bytes: int,
        max_redirects: int,
        seed_headers: Mapping[str, str] | None = None,
        seed_hosts: Iterable[str] = (),
        guard: AddressGuard | None = None,
        jar: SessionJar | None = None,
    ) -> None:
        self._transport = transport
        self._headers = httpx.Headers({**_DEFAULT_HEADERS, **headers})
        # The user's own headers (credentials, often) go to the seeds' hosts only.
        self._seed_headers = httpx.Headers({**_DEFAULT_HEADERS, **headers, **(seed_headers or {})})
        self._seed_hosts = frozenset(h.lower() for h in seed_hosts)
        self._guard = guard
        #: the cookies (the crawl's jar: see http/cookies.py). Until one was ever set
        #: (``jar.used``), requests skip it: asking the jar (`not jar`) counts its cookies
        #: with a generator, for every request.
        self.jar = jar if jar is not None else SessionJar()
        self._cookies = self.jar.cookies
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        #: whether robots.txt lets a redirect's target be requested (None: not asked): the
        #: crawl checks a page's own URL before it is fetched, and sets this so that each
        #: redirect hop is checked too (a redirect into a disallowed path is not followed)
        self.redirect_allowed: Callable[[str], Awaitable[bool]] | None = None
        # The plain way (see _PLAIN_URL): only over the crawler's own transport, and only
        # with headers it need not touch per request (a Host of the user's own, or
        # credentials that a redirect to another origin must drop, go through httpx).
        self._plain: CrawlTransport | None = None
        if isinstance(transport, CrawlTransport) and not any(
            name in self._seed_headers for name in ("host", "authorization")
        ):
            self._plain = transport
        self._heads = {
            id(self._headers): serialise_head(self._headers.raw),
            id(self._seed_headers): serialise_head(self._seed_headers.raw),
        }

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response:
        origin: tuple[str, str, int | None] | None = None
        extra = headers
        for _ in range(self._max_redirects + 1):
            sent = self._seed_headers if host_of(url) in self._seed_hosts else self._headers
            plain = None
            if (
                self._plain is not None
                and not extra
                and method == "GET"
                and body is None
                and not (self.jar.used and self._cookies.jar)
            ):
                plain = plain_url(url)
            if plain is not None:
                answer = await self._fetch_plain(url, plain, sent)
                if isinstance(answer, Response):
                    return answer
                url = answer  # a redirect
                if self.redirect_allowed is not None:
                    await self._check_redirect(url)
                continue
            if extra:  # the first request only: validators belong to the URL asked for
                # As bytes: a recrawl's validators are a server's own header text (read as
                # latin-1), which httpx would encode as ASCII, and fail on.
                replaced = {name.lower().encode("latin-1") for name in extra}
                raw = [(k, v) for k, v in sent.raw if k.lower() not in replaced]
                raw += [
                    (k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in extra.items()
                ]
                sent = httpx.Headers(raw)
                extra = None
            try:
                request = httpx.Request(
                    method, url, headers=sent, content=body, extensions=_NO_TIMEOUTS
                )
            except (httpx.InvalidURL, ValueError) as exc:
                raise FetchError("invalid_url", f"cannot request {url!r}: {exc}") from exc
            if self._guard is not None:
                await self._check_address(request.url)
            request_origin = (request.url.scheme, request.url.host, request.url.port)
            if origin is None:
                origin = request_origin
            elif request_origin != origin and "authorization" in request.headers:
                del request.headers["authorization"]  # like httpx: not to another origin
            if self._cookies.jar:
                self._cookies.set_cookie_header(request)
            try:
                response = await self._transport.handle_async_request(request)
            except httpx.HTTPError as exc:
                raise _classify(exc) from exc
            response.request = request
            try:
                fields = header_fields(response.headers)
                if "set-cookie" in fields:
                    self.jar.extract(response)
                location = fields.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    url = _redirect_target(str(response.url), location)
                    method, body = redirected_method(response.status_code, method, body)
                    if self.redirect_allowed is not None:
                        await self._check_redirect(url)
                    continue
                stream: Any = response.stream
                final, status = str(response.url), response.status_code
                content = await self._read_capped(stream, final, status, fields)
                return Response(final, status, response.headers, content, fields)
            finally:
                await response.aclose()
        raise FetchError("too_many_redirects", f"more than {self._max_redirects} redirects")

    async def _check_redirect(self, url: str) -> None:
        """Refuse a redirect to a URL that robots.txt disallows (robots.txt itself is always
        allowed, RFC 9309: its own redirects are not asked about).

        Raises:
            FetchError: ``robots``, the target is disallowed (it is not requested).
        """
        assert self.redirect_allowed is not None
        if urlsplit(url).path == "/robots.txt":
            return
        if not await self.redirect_allowed(url):
            raise FetchError("robots", f"redirected to {url}, which robots.txt disallows")

    async def _fetch_plain(
        self, url: str, plain: tuple[str, str, int, str | None, str], sent: httpx.Headers
    ) -> Response | str:
        """One request for a plain URL (see :func:`plain_url`) over the crawler's transport:
        its response, or the URL a redirect points to."""
        assert self._plain is not None
        scheme, host, port, _, _ = plain
        if self._guard is not None:
            await self._check_origin(scheme, host, port)
        data = plain_request(plain, self._heads[id(sent)])
        try:
            status, raw, body = await self._plain.get((scheme, host, port), data)
        except httpx.HTTPError as exc:
            raise _classify(exc) from exc
        try:
            fields = header_dict(raw)
            headers = headers_from_raw(raw)
            if "set-cookie" in fields:
                request = httpx.Request("GET", url)
                self.jar.extract(httpx.Response(status, headers=headers, request=request))
            location = fields.get("location")
            if status in _REDIRECT_STATUSES and location:
                return _redirect_target(url, location)
            content = await self._read_capped(body, url, status, fields)
            return Response(url, status, headers, content, fields)
        finally:
            await body.aclose()

    async def _check_address(self, url: httpx.URL) -> None:
        await self._check_origin(url.scheme, url.host, url.port)

    async def _check_origin(self, scheme: str, host: str, port: int | None) -> None:
        assert self._guard is not None
        try:
            addresses = await resolve(host, port or (443 if scheme == "https" else 80))
        except OSError as exc:
            raise FetchError("connect", f"cannot resolve {host}: {exc}") from exc
        try:
            self._guard.check(origin_text(scheme, host, port), addresses)
        except BlockedAddress as exc:
            raise FetchError("blocked_address", str(exc)) from exc

    async def _read_capped(
        self, stream: AsyncIterable[bytes], url: str, status: int, fields: Mapping[str, str]
    ) -> bytes:
        """The body of the answer (``url``, ``status``, ``fields``), decoded, at most
        ``max_bytes`` of it at every stage.

        The raw body is read from the transport's stream (no httpx decoder or chunker layers:
        a tenth of the CPU per page) and capped; then each Content-Encoding is undone with a
        bound on its output, so no chunk of a compression bomb is ever inflated whole.

        Raises:
            FetchError: ``too_large`` or ``decode`` (with the answer's URL, status and
                Content-Type: :meth:`FetchError.answered`), or the network's error.
        """
        cap = self._max_bytes
        declared = fields.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            error = FetchError("too_large", f"Content-Length {declared} is over max_bytes={cap}")
            raise error.answered(url, status, fields)
        try:
            body = await _read_up_to(stream, cap)
        except httpx.HTTPError as exc:
            raise _classify(exc) from exc
        except FetchError as exc:
            raise exc.answered(url, status, fields) from None
        codings = fields.get("content-encoding")
        if not codings:
            return body
        try:
            return decode_content(body, codings, cap)
        except FetchError as exc:
            raise exc.answered(url, status, fields) from exc.__cause__


def plain_url(url: str) -> tuple[str, str, int, str | None, str] | None:
    """``(scheme, host, port, port as written, path and query)`` of a URL that httpx would
    send exactly as written (see ``_PLAIN_URL``); None for any other URL."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host, port_text, target = match.groups()
    default = 443 if scheme == "https" else 80
    if port_text is None:
        return scheme, host, default, None, target
    port = int(port_text)
    if port == default or not 0 < port < 65536 or port_text != str(port):
        return None  # httpx would write it otherwise
    return scheme, host, port, port_text, target


def plain_request(plain: tuple[str, str, int, str | None, str], head: bytes) -> bytes:
    """The GET request for a :func:`plain_url` as httpx would write it: the request line,
    ``Host`` first, then ``head`` (from ``serialise_head``)."""
    _, host, _, port_text, target = plain
    netloc = host if port_text is None else f"{host}:{port_text}"
    return b"".join(
        (
            b"GET ",
            target.encode("ascii"),
            b" HTTP/1.1\r\nHost: ",
            netloc.encode("ascii"),
            b"\r\n",
            head,
            b"\r\n",
        )
    )


def decode_content(body: bytes, codings: str, cap: int) -> bytes:
    """Undo a ``Content-Encoding`` list (``"gzip"``, ``"gzip, br"``: the last applied first);
    unknown codings are left as they are, as httpx does.

    Raises:
        FetchError: ``too_large`` when a stage's output passes ``cap``; ``decode`` when the
            data is corrupt or its decoder is not installed.
    """
    for coding in reversed([c.strip().lower() for c in codings.split(",")]):
        try:
            if coding in ("gzip", "x-gzip"):
                body = _inflate(body, 16 + zlib.MAX_WBITS, cap)
            elif coding == "deflate":
                try:  # zlib-wrapped, as the RFC says; raw deflate, as some servers send
                    body = _inflate(body, zlib.MAX_WBITS, cap)
                except zlib.error:
                    body = _inflate(body, -zlib.MAX_WBITS, cap)
            elif coding == "br":
                body = _unbrotli(body, cap)
            elif coding == "zstd":
                body = _unzstd(body, cap)
        except FetchError:
            raise
        except Exception as exc:  # zlib.error, brotli.error, zstandard.ZstdError
            raise FetchError("decode", f"cannot decode {coding} content: {exc}") from exc
    return body


def _too_large(coding: str, cap: int) -> FetchError:
    return FetchError("too_large", f"{coding} content decodes past max_bytes={cap}")


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    out = decompressor.decompress(data, cap + 1)
    if len(out) > cap:
        raise _too_large("gzip" if wbits > zlib.MAX_WBITS else "deflate", cap)
    return out


def _unbrotli(data: bytes, cap: int) -> bytes:
    import brotli

    decompressor = brotli.Decompressor()
    out = decompressor.process(data, output_buffer_limit=cap + 1)
    if len(out) > cap:
        raise _too_large("br", cap)
    return bytes(out)


def _unzstd(data: bytes, cap: int) -> bytes:
    import zstandard

    # In pieces: read(n) allocates n bytes up front, which for a cap of 1 GiB is 1 GiB a page.
    chunks: list[bytes] = []
    total = 0
    with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
        while chunk := reader.read(min(cap + 1 - total, _ZSTD_PIECE)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise _too_large("zstd", cap)
    return b"".join(chunks)


_ZSTD_PIECE = 256 * 1024


async def _read_up_to(body: AsyncIterable[bytes], cap: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > cap:
            raise FetchError("too_large", f"body is over max_bytes={cap}")
        chunks.append(chunk)
    return b"".join(chunks)


def redirected_method(status: int, method: str, body: bytes | None) -> tuple[str, bytes | None]:
    """The method and body a browser sends after a redirect with ``status`` (the fetch
    standard's rule): ``303`` turns any method but ``HEAD`` into ``GET`` with no body, and so
    do ``301`` and ``302`` after a ``POST``; ``307`` and ``308`` keep the method and body."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        return "GET", None
    return method, body


def _redirect_target(base: str, location: str) -> str:
    """The URL a browser requests for a redirect's ``Location``: resolved against the URL
    that answered, by the URL standard (ada-url), fragment removed. Header values arrive as
    latin-1 text; a Location's raw bytes that are UTF-8 are read as UTF-8, as browsers do
    (``/café`` sent as UTF-8 is ``/caf%C3%A9``, not ``/caf%C3%83%C2%A9``)."""
    if not location.isascii():
        try:
            location = location.encode("latin-1").decode("utf-8")
        except UnicodeError:  # not UTF-8 bytes (or not from latin-1): as it came
            pass
    links, invalid = resolve_links(base, [location])
    if invalid:
        raise FetchError("invalid_url", f"bad redirect Location {location!r}")
    if not links:
        raise FetchError("invalid_url", f"redirect to a URL that is not http(s): {location!r}")
    return links[0]


def _classify(exc: httpx.HTTPError) -> FetchError:
    kind: ErrorKind
    if isinstance(exc, BlockedAddress):
        kind = "blocked_address"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    elif isinstance(exc, httpx.ConnectError | httpx.ProxyError):
        kind = "connect"
    elif isinstance(exc, httpx.ProtocolError):
        kind = "protocol"
    elif isinstance(exc, httpx.DecodingError):
        kind = "decode"
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        kind = "invalid_url"
    else:  # ReadError, WriteError, CloseError and any transport error still to come
        kind = "network"
    message = str(exc) or type(exc).__name__
    return FetchError(kind, message)


@asynccontextmanager
async def open_fetcher(
    config: CrawlConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    seed_hosts: Iterable[str] = (),
    seed_origins: Iterable[str] = (),
    write_at_once: bool = False,
    jar: SessionJar | None = None,
) -> AsyncIterator[HttpxFetcher]:
    """Open the fetcher for ``config`` and close its connections on exit.

    The transport is :class:`CrawlTransport` (HTTP/1.1, per-origin keep-alive, no pool scan),
    or httpx's standard one when ``proxy`` or ``http2`` is set. A ``transport`` given here
    (``httpx.MockTransport`` in unit tests) replaces the network; it is closed too. With
    ``cache``, hishel's cache transport sits in front of it (2xx GET answers by URL, kept
    ``cache_ttl`` seconds, in an SQLite file in that directory).
    Environment proxy variables are ignored: a crawl goes where its configuration says.

    Connections to origins other than ``seed_origins`` (``scheme://host[:port]``; each
    ``http://host`` with its ``https://host``) must go to public addresses unless
    ``allow_private`` (see :class:`AddressGuard`); ``headers`` go to ``seed_hosts`` only.
    ``write_at_once``: see :class:`CrawlTransport` (worker processes set it). ``jar``: the
    crawl's cookies (default: a jar of the fetcher's own).

    Raises:
        ConfigError: the cache directory cannot be created.
    """
    seed_hosts = frozenset(seed_hosts)
    guard = AddressGuard(exempt_origins(seed_origins), allow_private=config.allow_private)
    precheck = False
    if transport is None:
        if config.proxy is None and not config.http2:
            transport = CrawlTransport(
                max_idle_per_origin=config.workers, guard=guard, write_at_once=write_at_once
            )
        else:
            # httpx's transport connects by name: check the addresses just before (with a
            # proxy, the proxy connects, and its network is not ours to guard).
            precheck = config.proxy is None
            transport = httpx.AsyncHTTPTransport(
                http2=config.http2,
                proxy=config.proxy,
                limits=httpx.Limits(
                    max_connections=config.workers, max_keepalive_connections=config.workers
                ),
            )
    if config.cache is not None:
        transport = _cached(transport, config)
    async with transport:
        yield HttpxFetcher(
            transport,
            headers={"User-Agent": config.user_agent},
            seed_headers=config.headers,
            seed_hosts=seed_hosts,
            max_bytes=config.max_bytes,
            max_redirects=config.max_redirects,
            guard=guard if precheck else None,
            jar=jar,
        )


def _cached(transport: httpx.AsyncBaseTransport, config: CrawlConfig) -> httpx.AsyncBaseTransport:
    # Imported here: hishel and its SQLite driver cost startup time only when used.
    from hishel import AsyncSqliteStorage
    from hishel.httpx import AsyncCacheTransport

    assert config.cache is not None
    directory = os.fspath(config.cache)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError("cache", f"cannot create {directory!r}: {exc.strerror or exc}") from None
    storage = AsyncSqliteStorage(
        database_path=os.path.join(directory, "http-cache.sqlite"), default_ttl=config.cache_ttl
    )
    return AsyncCacheTransport(transport, storage=storage)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay before attempt ``attempt + 1``: exponential back-off with "equal jitter".

    With ``d = min(cap, base * 2**(attempt-1))`` (attempt counts from 1) the delay is drawn
    uniformly from ``[d/2, d]``: always some wait, and workers that failed together do not
    retry together.
    """
    delay = min(cap, base * (2 ** (attempt - 1)))
    return rng.uniform(delay / 2, delay)
