"""A lean Redis client for the fleet's hot path: commands written and answers read as RESP2,
nothing else.

Why not coredis for these calls: coredis (the fleet's client for everything else) spends about
0.38 ms of CPU per ``FCALL`` on its per-call machinery (a request object, anyio memory streams
to each connection's reader and writer tasks, a response callback), against about 0.07 ms for
the same call written and read here (measured on a 2-core machine, 2 KB of arguments); a
crawler process makes about one call per two pages, so that difference was a third of its CPU
per page. It does one thing: send a command, read its answer. No retries (a retried function
call could run twice), no pub/sub, no cluster routing, no RESP3.

Every call takes an idle connection (or opens one: at most one per concurrent caller), writes
the command, reads the one answer and gives the connection back. A plain TCP connection is
written and read with the socket's own non-blocking calls, the task waiting (one pass of
Trio's scheduler) only when the socket cannot go on; a TLS one (``rediss://``) through Trio's
SSL stream. The command is encoded into one buffer, with the head of each function call
(``FCALL name 1 key``) encoded once (:class:`Prefix`). ``python bench/resp_client.py``
measures a call's CPU. A call interrupted before its
answer was read (cancelled, timed out, the socket broke) closes its connection instead, so an
answer never reaches the wrong caller.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import trio

__all__ = ["BULK", "Prefix", "RespError", "RespPool"]


class RespError(Exception):
    """Redis answered a command with an error (the message is Redis's)."""


class _Incomplete(Exception):
    """The buffer holds only part of an answer."""


_CRLF = b"\r\n"


def _bulk(part: str | bytes | int) -> bytes:
    data = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogateescape")
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Prefix:
    """The first parts of a command, encoded once (``FCALL name 1 key``): a call with it
    encodes only its own arguments."""

    __slots__ = ("count", "data", "name")

    def __init__(self, *parts: str | bytes | int) -> None:
        self.count = len(parts)
        self.data = b"".join(_bulk(part) for part in parts)
        #: what a failed call names (``FCALL ts_lease``: the function)
        self.name = str(parts[1] if len(parts) > 1 and parts[0] == "FCALL" else parts[0])


#: One bulk string's template: ``BULK * n % (len(a), a, ...)`` encodes n arguments with one
#: ``%``, as a call's ``encoded`` arguments (:meth:`RespPool.call`) are.
BULK = b"$%d\r\n%b\r\n"


def _encode(
    prefix: Prefix | None,
    parts: Sequence[str | bytes | int],
    encoded: Sequence[bytes] = (),
    encoded_count: int = 0,
) -> bytes:
    """``prefix``, ``parts`` and then ``encoded`` (``encoded_count`` arguments encoded
    already, see :data:`BULK`) as one RESP2 array of bulk strings: each part formatted whole
    (``$len CRLF data CRLF`` in one ``%``), the pieces joined once."""
    count = len(parts) + encoded_count + (0 if prefix is None else prefix.count)
    chunks = [b"*%d\r\n" % count]
    if prefix is not None:
        chunks.append(prefix.data)
    append = chunks.append
    for part in parts:
        data = part
        if data.__class__ is not bytes:
            if isinstance(part, str):
                data = part.encode("utf-8", "surrogateescape")
            elif not isinstance(part, bytes):
                data = str(part).encode("utf-8", "surrogateescape")
        append(BULK % (len(data), data))  # type: ignore[arg-type]
    if encoded:
        chunks += encoded
    return b"".join(chunks)


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 value at ``pos``: (value, the position after it). Bulk strings come as bytes,
    integers as int, a nil as None, an error as a RespError (not raised: it may sit in an array).

    Raises:
        _Incomplete: the value does not end within ``buf``.
        RespError: the bytes are not RESP2.
    """
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        start = end + 2
        if len(buf) < start + size + 2:
            raise _Incomplete
        return bytes(buf[start : start + size]), start + size + 2
    if kind == 42:  # * array: its bulk strings and integers read here, not by a call each
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        pos = end + 2
        items: list[Any] = []
        append = items.append
        find = buf.find
        length = len(buf)
        for _ in range(count):
            if pos >= length:
                raise _Incomplete
            kind = buf[pos]
            if kind == 36:
                end = find(_CRLF, pos)
                if end < 0:
                    raise _Incomplete
                size = int(buf[pos + 1 : end])
                if size < 0:
                    append(None)
                    pos = end + 2
                    continue
                start = end + 2
                pos = start + size + 2
                if length < pos:
                    raise _Incomplete
                append(bytes(buf[start : pos - 2]))
            elif kind == 58:
                end = find(_CRLF, pos)
                if end < 0:
                    raise _Incomplete
                append(int(buf[pos + 1 : end]))
                pos = end + 2
            else:
                item, pos = _parse(buf, pos)
                append(item)
        return items, pos
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return RespError(buf[pos + 1 : end].decode("utf-8", "replace")), end + 2
    raise RespError(f"not a RESP2 answer: {bytes(buf[pos : pos + 20])!r}")


class _Connection:
    """One connection: a plain TCP socket used directly (``sock``), or a TLS stream."""

    __slots__ = ("buf", "sock", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.buf = bytearray()
        self.sock: socket.socket | None = None
        self.stream: trio.abc.Stream | None = stream
        if isinstance(stream, trio.SocketStream):
            # Plain TCP: written and read with the socket's own non-blocking calls, waiting
            # (one scheduler pass) only when it cannot go on. A trio stream's send_all and
            # receive_some each add a pass of their own and their checks: about 50 us of CPU
            # per call on a 2-core machine, twice what the rest of a call costs.
            self.sock = socket.socket(fileno=stream.socket.detach())
            self.sock.setblocking(False)
            self.stream = None

    async def command(self, data: bytes | bytearray) -> Any:
        sock = self.sock
        if sock is None:
            assert self.stream is not None
            await self.stream.send_all(data)
        else:
            view = memoryview(data)
            sent = 0
            while sent < len(view):
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
        buf = self.buf
        # The answer is hardly ever there the moment the command is written (Redis runs in
        # another process): the first read waits for the socket instead of trying it first
        # (a system call and an exception, for nothing, per call).
        waiting = sock is not None
        while True:
            if buf:
                try:
                    value, end = _parse(buf, 0)
                except _Incomplete:
                    pass
                else:
                    del buf[:end]
                    if isinstance(value, RespError):
                        raise value
                    return value
            if sock is None:
                assert self.stream is not None
                chunk = await self.stream.receive_some(65_536)
            else:
                if waiting:
                    waiting = False
                    await trio.lowlevel.wait_readable(sock)
                try:
                    chunk = sock.recv(65_536)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
                    continue
            if not chunk:
                raise ConnectionResetError("Redis closed the connection")
            buf += chunk

    async def aclose(self) -> None:
        if self.sock is not None:
            if self.sock.fileno() != -1:
                trio.lowlevel.notify_closing(self.sock)
                self.sock.close()
            await trio.lowlevel.checkpoint()
        elif self.stream is not None:
            await self.stream.aclose()


class RespPool:
    """Connections to the Redis at a ``redis://`` (or ``rediss://``) URL, made as they are
    needed and kept while idle. Close it with :meth:`aclose`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._tls = parts.scheme == "rediss"
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._db = int(parts.path.strip("/") or 0)
        self._idle: list[_Connection] = []
        self._closed = False

    async def _open(self) -> _Connection:
        if self._tls:
            stream: trio.abc.Stream = await trio.open_ssl_over_tcp_stream(
                self._host, self._port, ssl_context=ssl.create_default_context()
            )
        else:
            stream = await trio.open_tcp_stream(self._host, self._port)
        connection = _Connection(stream)
        try:
            if self._password is not None:
                auth: list[str] = ["AUTH", self._password]
                if self._username:
                    auth.insert(1, self._username)
                await connection.command(_encode(None, auth))
            if self._db:
                await connection.command(_encode(None, ["SELECT", self._db]))
        except BaseException:
            with trio.CancelScope(shield=True):
                await connection.aclose()
            raise
        return connection

    async def command(self, *parts: str | bytes | int) -> Any:
        """Send one command and return its answer.

        Raises:
            RespError: Redis answered with an error.
            OSError: the connection could not be made, or broke.
            trio.BrokenResourceError: the connection broke while writing.
        """
        return await self.call(None, parts)

    async def call(
        self,
        prefix: Prefix | None,
        parts: Sequence[str | bytes | int],
        encoded: Sequence[bytes] = (),
        encoded_count: int = 0,
    ) -> Any:
        """Send one command, ``prefix`` (encoded once, see :class:`Prefix`), ``parts``, then
        ``encoded_count`` more arguments already encoded (``encoded``, see :data:`BULK`),
        and return its answer.

        Raises:
            RespError: Redis answered with an error.
            OSError: the connection could not be made, or broke.
            trio.BrokenResourceError: the connection broke while writing.
        """
        if self._closed:
            raise ConnectionResetError("the Redis connections are closed")
        data = _encode(prefix, parts, encoded, encoded_count)
        connection = self._idle.pop() if self._idle else await self._open()
        try:
            answer = await connection.command(data)
        except RespError:
            self._idle.append(connection)  # the answer was read whole: the connection is fine
            raise
        except BaseException:
            with trio.CancelScope(shield=True):
                await connection.aclose()
            raise
        if self._closed:
            await connection.aclose()
        else:
            self._idle.append(connection)
        return answer

    async def aclose(self) -> None:
        """Close the idle connections (a call still running closes its own when it ends)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.aclose()
