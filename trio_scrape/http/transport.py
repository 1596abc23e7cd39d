"""A crawler-shaped ``httpx`` transport: HTTP/1.1 with llhttp (httptools) over trio sockets.

httpx stays the API (requests, responses, decoding, cookies); this replaces only the
connection pool underneath. httpcore's pool scans every idle connection on every request and
response (``has_expired()`` -> a ``poll()`` system call each), which cost 14% of a crawl's CPU
at 16 workers. A crawler does not need that: each worker holds at most one connection at a
time, so this pool keeps a LIFO stack of idle connections per origin and only ever looks at
the connection it is about to reuse. A keep-alive connection the server has meanwhile closed is
detected when the request fails before any response byte arrives, and the request is sent once
more on a fresh connection (as browsers and urllib3 do for idempotent requests).

Responses are parsed by llhttp, Node's HTTP parser, through httptools (the binding uvicorn
uses): C, strict by default, about a twentieth of h11's CPU per response (measured: see
bench/RESULTS.md). What llhttp leaves to its caller is done here: the response head's size limit,
1xx responses skipped, close-delimited bodies ended at the end of the stream, no reuse of a
connection whose response was followed by unexpected bytes, and HEAD answers taken as having no
body. Requests are serialised here, with header names and values checked as h11 would.
Proxies and HTTP/2 are not handled here: the fetcher uses httpx's standard transport for those.
"""

from __future__ import annotations

import collections
import contextvars
import os
import re
import ssl
import time
from typing import Any, NoReturn

import httptools
import httpx
import trio

from ..model.urls import origin_text
from .addresses import AddressGuard, Resolver, resolve

__all__ = ["PACED", "SEND_AT", "CrawlTransport", "serialise_head"]

#: The ``time.monotonic()`` before which the current task's next request must not be written
#: (0: at once). A worker process sets it for a request to a host with a delay, so the gaps
#: the server sees are the ones the crawler scheduled; it is cleared once the request is sent.
SEND_AT: contextvars.ContextVar[float] = contextvars.ContextVar("send_at", default=0.0)
#: Whether the current task's requests go to a host paced by a delay: each is written at once
#: (no pass through the scheduler first, see ``_Connection.send_all``), so the gaps the server
#: sees are the ones scheduled. A request with a ``SEND_AT`` is written at once too.
PACED: contextvars.ContextVar[bool] = contextvars.ContextVar("paced", default=False)

_READ_SIZE = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Methods safe to send again after a stale connection (and that carry no body to replay).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# RFC 9110 token characters for names; values may not hold CR, LF or NUL.
_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_NO_BODY_STATUSES = frozenset({204, 304})

Origin = tuple[str, str, int]


class _StaleConnection(Exception):
    """A reused connection failed before the response began: try a fresh one."""


class _Message:
    """The parser's callbacks for one exchange: the final response's head and body as they
    arrive (1xx responses before it are dropped)."""

    __slots__ = (
        "body",
        "body_bytes",
        "complete",
        "extra",
        "headers",
        "headers_done",
        "keep_alive",
        "parser",
        "status",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        # Lines that end in a bare LF, as some servers send them: browsers, curl and h11
        # read such answers; llhttp refuses them unless told.
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.extra = False  # bytes came after the response: the connection cannot be reused
        self.keep_alive = False  # read when the response ends (llhttp forgets it after)
        self.body: list[bytes] = []
        self.body_bytes = 0

    # (No on_message_begin or on_status: each callback costs a Python call per response.)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.headers_done:
            self.extra = True  # a second response to one request
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = []
            return  # informational: the final answer follows
        self.status = status
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)
            self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.extra = True  # 101 Switching Protocols: nothing HTTP follows
        except httptools.HttpParserError as exc:
            if self.complete:
                self.extra = True  # garbage after a whole response: drop the connection
            else:
                raise httpx.RemoteProtocolError(f"malformed response: {exc}") from exc

    def detach(self) -> None:
        """Drop the parser once the exchange is over. Its callbacks are this message's bound
        methods: a reference cycle that only the garbage collector would free, ~13 objects a
        page (the collector's passes for them were ~1.7% of a crawl's CPU)."""
        del self.parser

    def delimited_by_close(self, method: str) -> bool:
        """Whether the body ends only when the server closes the connection."""
        if method == "HEAD" or self.status in _NO_BODY_STATUSES:
            return False
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names


class _Connection:
    __slots__ = (
        "at_once",
        "idle_since",
        "max_header_bytes",
        "message",
        "plain",
        "reusable",
        "stream",
    )

    def __init__(
        self, stream: trio.abc.Stream, max_header_bytes: int, *, at_once: bool = False
    ) -> None:
        self.stream = stream
        self.at_once = at_once  # every request written at once (see send_all)
        # A plain TCP connection is written directly (see send_all); TLS through its stream.
        self.plain = stream if isinstance(stream, trio.SocketStream) else None
        self.max_header_bytes = max_header_bytes
        self.idle_since = 0.0
        self.message: _Message | None = None
        self.reusable = True

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def send_all(self, data: bytes, *, at_once: bool = False) -> None:
        """``stream.send_all``, but a request that fits in the socket's buffer (all of them,
        in practice) is written with one ``os.write`` and no trip through the scheduler
        after it (trio's send yields after writing; the caller's next step waits for the
        answer anyway, which lets other tasks run).

        The write waits for the scheduler's next pass (one yield before it, unless
        ``at_once``): the requests of the workers that finished a page in one pass then go
        out together, at the start or end of the next pass, instead of one between each
        two pages' parsing. Measured on the benchmark crawl, 5-8% less CPU per page and
        3-5% less wall time (docs/performance.md): on this VM every write that wakes the
        idle server costs a cross-CPU wake-up, and writes in a row share them. ``at_once``
        is for paced hosts, whose requests must reach the wire when scheduled, and for
        worker processes (``CrawlTransport(write_at_once=True)``): their pages wait on the
        hop to the crawler's process, so a pass more before each request may cost them wall
        time, where one process, busy parsing, loses none (with ``--processes 2`` on the
        shared machine, two paired calls of three were 8-10% slower in wall time with it).

        Raises:
            trio.Cancelled: the enclosing scope was cancelled (checked before writing).
            OSError, trio.BrokenResourceError: the connection broke.
        """
        if self.plain is None:
            await self.stream.send_all(data)
            return
        if at_once:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            await trio.lowlevel.checkpoint()
        fd = self.plain.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the connection was closed")
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await self.stream.send_all(memoryview(data)[sent:])

    async def receive(self, timeout: float | None, *, just_sent: bool = False) -> bytes:
        """The next bytes from the server (``b""``: it closed the connection).

        A plain TCP connection is read directly, with no pass through the scheduler when
        data is there (trio's ``receive_some`` yields after every read; the crawl's worker
        yields before each request it writes, see :meth:`send_all`). ``just_sent``: a
        request was just written, so its answer cannot be there yet; the read comes after one
        pass of the scheduler (the other tasks' turns), by when it nearly always is: on the
        benchmark crawl 92% of them found the answer there, and each saved registering the
        socket with epoll and being woken through it (-4.6% CPU a page, 12 paired rounds).
        Only a read that finds nothing waits for the socket to be readable.

        Raises:
            httpx.ReadTimeout: nothing came for ``timeout`` seconds.
            trio.Cancelled: the enclosing scope was cancelled (checked before reading).
            OSError, trio.BrokenResourceError: the connection broke.
            trio.ClosedResourceError: the connection was closed.
        """
        if timeout is None:
            return await self._receive(just_sent)
        with trio.move_on_after(timeout):
            return await self._receive(just_sent)
        raise httpx.ReadTimeout(f"no data from the server for {timeout:g}s")

    async def _receive(self, just_sent: bool) -> bytes:
        plain = self.plain
        if plain is None:
            return bytes(await self.stream.receive_some(_READ_SIZE))
        sock = plain.socket
        if just_sent:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            fd = sock.fileno()
            if fd < 0:
                raise trio.ClosedResourceError("the connection was closed")
            try:
                return os.read(fd, _READ_SIZE)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)

    async def send_request(self, data: bytes, method: str, timeouts: dict[str, Any]) -> _Message:
        """Send a serialised request and read up to the final response's head.

        Raises:
            _StaleConnection: the connection broke before any response byte arrived.
            httpx.TransportError subclasses for everything else.
        """
        send_at = SEND_AT.get()
        at_once = self.at_once or PACED.get()
        if send_at:  # after connecting: the time a connection takes is not in the gap
            SEND_AT.set(0.0)
            await trio.sleep(max(0.0, send_at - time.monotonic()))
            at_once = True
        write_timeout = timeouts.get("write")
        try:
            if write_timeout is None:
                await self.send_all(data, at_once=at_once)
            else:
                with trio.move_on_after(write_timeout):
                    await self.send_all(data, at_once=at_once)
                    write_timeout = None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise _StaleConnection from exc
        if write_timeout is not None:
            raise httpx.WriteTimeout(f"could not send the request within {write_timeout:g}s")

        message = self.message = _Message()
        received = 0
        read_timeout = timeouts.get("read")
        while not message.headers_done:
            try:
                chunk = await self.receive(read_timeout, just_sent=not received)
            except (trio.BrokenResourceError, OSError) as exc:
                if not received:
                    raise _StaleConnection from exc
                raise httpx.ReadError(f"connection broke: {exc}") from exc
            if not chunk:
                if not received:
                    raise _StaleConnection
                raise httpx.RemoteProtocolError("server closed the connection without a response")
            received += len(chunk)
            message.feed(chunk)
            # llhttp has no size limit: the head is what was read less the body after it.
            if received - message.body_bytes > self.max_header_bytes:
                raise httpx.RemoteProtocolError(
                    f"response head of over {self.max_header_bytes} bytes"
                )
        if method == "HEAD":
            message.complete = True
            self.reusable = False  # llhttp expects the body a Content-Length announced
        return message


def serialise_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header fields as they go on the wire after the request line, checked as
    :func:`_serialise` checks them (no blank line after them).

    Raises:
        httpx.LocalProtocolError: a header name or value that cannot be sent.
    """
    parts: list[bytes] = []
    for name, value in headers:
        if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"illegal header {name!r}: {value!r}")
        parts += (name, b": ", value, b"\r\n")
    return b"".join(parts)


async def _serialise(request: httpx.Request) -> bytes:
    """The request as HTTP/1.1 bytes (a body framed by its Content-Length, or chunked).

    Raises:
        httpx.LocalProtocolError: a header name or value that cannot be sent.
    """
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    framed = False
    for name, value in request.headers.raw:
        if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"illegal header {name!r}: {value!r}")
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = value.strip().lower() == b"chunked"
            framed = True
        elif lowered == b"content-length":
            framed = True
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if framed:  # (a GET has neither header: its empty body stream is not worth iterating)
        async for chunk in request.stream:  # type: ignore[union-attr]
            if not chunk:
                continue
            if chunked:
                parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
            else:
                parts.append(chunk)
        if chunked:
            parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class _Body(httpx.AsyncByteStream):
    """The response body, read from the connection as httpx iterates it.

    A real async iterator rather than an async generator, so abandoning it early (a body over
    the crawler's size cap) leaves nothing for the garbage collector to finalize.
    """

    def __init__(
        self,
        transport: CrawlTransport,
        conn: _Connection,
        origin: Origin,
        timeout: float | None,
        method: str,
    ) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._origin = origin
        self._timeout = timeout
        self._method = method  # whether the body ends at the close is asked only then

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        message = conn.message
        assert message is not None
        while True:
            if message.body:
                data = message.body[0] if len(message.body) == 1 else b"".join(message.body)
                message.body = []
                return data
            if message.complete:
                self._conn = None
                await self._transport._release(self._origin, conn)
                raise StopAsyncIteration
            try:
                chunk = await conn.receive(self._timeout)
            except (trio.BrokenResourceError, OSError) as exc:
                await self.aclose()
                raise httpx.ReadError(f"connection broke: {exc}") from exc
            except BaseException:
                await self.aclose()
                raise
            if not chunk:
                if message.delimited_by_close(self._method):
                    message.complete = True
                    conn.reusable = False
                    continue
                await self.aclose()
                raise httpx.RemoteProtocolError("server closed the connection mid-body")
            try:
                message.feed(chunk)
            except httpx.RemoteProtocolError:
                await self.aclose()
                raise

    async def aclose(self) -> None:
        # Closed before the end of the body: the connection cannot be reused.
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class CrawlTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for http and https URLs, with per-origin keep-alive.

    Args:
        max_idle_per_origin: idle connections kept per (scheme, host, port).
        max_idle: idle connections kept in all; the least recently used origin loses first.
        keepalive_expiry: seconds an idle connection is kept.
        ssl_context: for https (default: httpx's, with certifi's CA bundle).
        max_header_bytes: the largest response head accepted.
        guard: where connections may go (checked on resolved addresses, just before
            connecting); None allows everything.
        resolver: ``resolver(host, port)`` -> addresses (default: the system's); tests stub it.
        write_at_once: write every request as soon as it is ready, instead of in the
            scheduler's next pass (see ``_Connection.send_all``); for worker processes.

    Honours the ``timeout`` request extension that httpx sets (connect, read, write).
    """

    def __init__(
        self,
        *,
        max_idle_per_origin: int = 16,
        max_idle: int = 256,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
        max_header_bytes: int = 64 * 1024,
        guard: AddressGuard | None = None,
        resolver: Resolver = resolve,
        write_at_once: bool = False,
    ) -> None:
        self._write_at_once = write_at_once
        self._guard = guard
        self._resolver = resolver
        self._idle: collections.OrderedDict[Origin, list[_Connection]] = collections.OrderedDict()
        self._idle_count = 0
        self._max_idle_per_origin = max_idle_per_origin
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._max_header_bytes = max_header_bytes
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        if not url.host:
            raise httpx.UnsupportedProtocol("the URL has no host")
        origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        data = await _serialise(request)
        head, body = await self._exchange(origin, data, request.method, timeouts)
        version = head.parser.get_http_version().encode("ascii")
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=body,
            extensions={
                "http_version": b"HTTP/" + version,
                "reason_phrase": httpx.codes.get_reason_phrase(head.status).encode("ascii"),
            },
        )

    async def get(
        self, origin: Origin, data: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], _Body]:
        """A GET request already serialised (request line and head, as :func:`_serialise`
        would write it): its status, header fields and body stream (to iterate, then close).
        The fetcher's way for plain URLs: no ``httpx.Request`` or ``httpx.Response`` to build
        (their URL parsing and header handling were a twentieth of a page's CPU). No timeouts:
        the caller's page deadline bounds it.

        Raises:
            httpx.TransportError subclasses, as :meth:`handle_async_request`.
        """
        head, body = await self._exchange(origin, data, "GET", {})
        return head.status, head.headers, body

    async def _exchange(
        self, origin: Origin, data: bytes, method: str, timeouts: dict[str, Any]
    ) -> tuple[_Message, _Body]:
        """Send ``data`` on an idle connection to ``origin`` (once more on a fresh one if that
        connection turns out closed, for an idempotent method) or a new one; read the head."""
        conn = await self._take_idle(origin)
        if conn is not None:
            try:
                head = await conn.send_request(data, method, timeouts)
            except _StaleConnection:
                await conn.close()
                conn = None
                if method not in _IDEMPOTENT:
                    raise httpx.RemoteProtocolError(
                        "the server closed an idle connection"
                    ) from None
            except BaseException:
                await conn.close()
                raise
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"))
            try:
                head = await conn.send_request(data, method, timeouts)
            except _StaleConnection as exc:
                await conn.close()
                cause = exc.__cause__
                if cause is None:
                    raise httpx.RemoteProtocolError(
                        "server disconnected without sending a response"
                    ) from None
                raise httpx.ReadError(f"connection broke: {cause}") from cause
            except BaseException:
                await conn.close()
                raise
        body = _Body(self, conn, origin, timeouts.get("read"), method)
        return head, body

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        stream: trio.abc.Stream | None = None
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
                stream = await self._open_tcp(scheme, host, port)
                if scheme == "https":
                    stream = trio.SSLStream(
                        stream, self._ssl(), server_hostname=host, https_compatible=True
                    )
                    await stream.do_handshake()
                return _Connection(stream, self._max_header_bytes, at_once=self._write_at_once)
        except (OSError, trio.BrokenResourceError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            _raise_connect_error(exc, origin)
        except BaseException:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        if stream is not None:
            await trio.aclose_forcefully(stream)
        assert scope.cancelled_caught
        raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout:g}s")

    async def _open_tcp(self, scheme: str, host: str, port: int) -> trio.SocketStream:
        addresses = await self._resolver(host, port)
        if self._guard is not None:
            addresses = self._guard.check(origin_text(scheme, host, port), addresses)
        error: OSError | None = None
        for address in addresses:  # the checked addresses, not a second lookup of the name
            try:
                return await trio.open_tcp_stream(address, port)
            except OSError as exc:
                error = exc
        raise error or OSError(f"{host} resolves to no address")

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        return self._ssl_context

    async def _take_idle(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        now = trio.current_time()
        while stack:
            conn = stack.pop()
            self._idle_count -= 1
            if now - conn.idle_since <= self._keepalive_expiry:
                return conn
            await conn.close()  # expired; older ones below it are older still
        return None

    async def _release(self, origin: Origin, conn: _Connection) -> None:
        message = conn.message
        if message is not None:
            message.detach()
        if (
            self._closed
            or not conn.reusable
            or message is None
            or not message.complete
            or message.extra
            or not message.keep_alive
        ):
            await conn.close()
            return
        conn.message = None
        conn.idle_since = trio.current_time()
        stack = self._idle.get(origin)
        if stack is None:
            stack = self._idle[origin] = []
        else:
            self._idle.move_to_end(origin)
        if len(stack) >= self._max_idle_per_origin:
            await conn.close()
            return
        stack.append(conn)
        self._idle_count += 1
        while self._idle_count > self._max_idle:
            oldest_origin, oldest = next(iter(self._idle.items()))
            if not oldest:
                del self._idle[oldest_origin]
                continue
            self._idle_count -= 1
            await oldest.pop(0).close()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, collections.OrderedDict()
        self._idle_count = 0
        for stack in idle.values():
            for conn in stack:
                await conn.close()


def _raise_connect_error(exc: BaseException, origin: Origin) -> NoReturn:
    _, host, port = origin
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
    raise httpx.ConnectError(f"cannot connect to {host}:{port}: {cause or exc}") from exc
