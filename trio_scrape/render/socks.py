"""A SOCKS5 proxy on 127.0.0.1 through which the browser makes every connection, so that the
address guard judges the address each connection *actually goes to*.

The Fetch domain sees requests, not connections: it cannot see WebSockets, and Chromium
resolves a name again after it was checked (DNS rebinding). Chromium sends SOCKS5 proxies the
host *name* (it does not resolve it itself), so here the name is resolved once, the addresses
are checked (:class:`AddressGuard`, by origin: the seeds' scheme, host and port are exempt),
and the connection goes to a checked address. Everything after the handshake is copied both
ways unchanged (TLS stays end to end).

Only CONNECT, without authentication, from the loopback listener the browser was given.
"""

from __future__ import annotations

import ipaddress
import logging
import struct

import trio

from ..http.addresses import AddressGuard, BlockedAddress, resolve
from ..model.urls import origin_text

__all__ = ["GuardedSocksProxy"]

logger = logging.getLogger("trio_scrape")

_HANDSHAKE_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 10.0
_CHUNK = 65536
# Replies (RFC 1928, section 6).
_SUCCEEDED = 0
_NOT_ALLOWED = 2
_HOST_UNREACHABLE = 4
_REFUSED = 5
_COMMAND_NOT_SUPPORTED = 7
_ADDRESS_NOT_SUPPORTED = 8


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class GuardedSocksProxy:
    """Run with ``port = await nursery.start(proxy.serve)``; cancelling the nursery closes the
    listener and every tunnel. ``connections`` and ``refused`` count what it did."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self.connections = 0
        self.refused = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            await trio.serve_listeners(self._tunnel, listeners, handler_nursery=nursery)

    async def _tunnel(self, client: trio.SocketStream) -> None:
        async with client:
            buffer = _Buffer(client)
            try:
                with trio.fail_after(_HANDSHAKE_TIMEOUT):
                    host, port = await self._handshake(buffer)
                upstream = await self._connect(host, port)
            except _Refused as exc:
                await _reply(client, exc.code)
                return
            except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
            self.connections += 1
            async with upstream:
                try:
                    await _reply(client, _SUCCEEDED)
                    if buffer.data:
                        await upstream.send_all(buffer.data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_copy, client, upstream, nursery.cancel_scope)
                    nursery.start_soon(_copy, upstream, client, nursery.cancel_scope)

    async def _handshake(self, buffer: _Buffer) -> tuple[str, int]:
        version, count = await buffer.read(2)
        if version != 5:
            raise OSError("not SOCKS5")
        methods = await buffer.read(count)
        if 0 not in methods:  # "no authentication" is the only method offered here
            await buffer.stream.send_all(b"\x05\xff")
            raise OSError("no acceptable method")
        await buffer.stream.send_all(b"\x05\x00")
        version, command, _, kind = await buffer.read(4)
        if version != 5:
            raise OSError("not SOCKS5")
        if kind == 1:
            host = str(ipaddress.IPv4Address(bytes(await buffer.read(4))))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(bytes(await buffer.read(16))))
        elif kind == 3:
            (length,) = await buffer.read(1)
            host = bytes(await buffer.read(length)).decode("idna").lower()
        else:
            raise _Refused(_ADDRESS_NOT_SUPPORTED)
        (port,) = struct.unpack("!H", bytes(await buffer.read(2)))
        if command != 1:
            raise _Refused(_COMMAND_NOT_SUPPORTED)
        return host, port

    async def _connect(self, host: str, port: int) -> trio.SocketStream:
        """A connection to a permitted address of ``host``.

        Raises:
            _Refused: the guard refuses every address, or none answers.
        """
        # The exemption is by origin; SOCKS carries no scheme, so either scheme's will do.
        origins = [origin_text(scheme, host, port) for scheme in ("http", "https")]
        origin = next((o for o in origins if o in self._guard.allowed_origins), origins[0])
        try:
            addresses = await resolve(host, port)
        except OSError:
            raise _Refused(_HOST_UNREACHABLE) from None
        try:
            allowed = self._guard.check(origin, addresses)
        except BlockedAddress as exc:
            self.refused += 1
            logger.debug("proxy refused %s:%d: %s", host, port, exc)
            raise _Refused(_NOT_ALLOWED) from None
        for address in allowed:
            try:
                with trio.fail_after(_CONNECT_TIMEOUT):
                    return await trio.open_tcp_stream(address, port)
            except (OSError, trio.TooSlowError):
                continue
        raise _Refused(_REFUSED)


class _Buffer:
    """Exact-size reads over a stream; bytes read past the handshake are kept in ``data``."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.data = bytearray()

    async def read(self, size: int) -> bytearray:
        while len(self.data) < size:
            chunk = await self.stream.receive_some(_CHUNK)
            if not chunk:
                raise trio.BrokenResourceError("closed during the SOCKS handshake")
            self.data += chunk
        head = self.data[:size]
        del self.data[:size]
        return head


async def _reply(client: trio.SocketStream, code: int) -> None:
    try:
        await client.send_all(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _copy(
    source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
) -> None:
    """Copy until the source's end of file (then half-close the sink); on any error, end
    the whole tunnel."""
    try:
        while True:
            chunk = await source.receive_some(_CHUNK)
            if not chunk:
                break
            await sink.send_all(chunk)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        scope.cancel()
