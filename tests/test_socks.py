"""The guarded SOCKS5 proxy the browser connects through, driven by a raw SOCKS client."""

from __future__ import annotations

import struct

import trio

from trio_scrape.http.addresses import AddressGuard
from trio_scrape.render.socks import GuardedSocksProxy

from .site import Reply, Site


async def open_proxy(nursery: trio.Nursery, guard: AddressGuard) -> tuple[GuardedSocksProxy, int]:
    proxy = GuardedSocksProxy(guard)
    port = await nursery.start(proxy.serve)
    return proxy, port


async def socks_connect(port: int, request: bytes) -> tuple[trio.SocketStream, bytes]:
    """Greet, send a CONNECT ``request`` (address type onwards), return the stream and the
    reply (10 bytes, or fewer if the proxy closed)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"\x05\x01\x00")
    assert await stream.receive_some(2) == b"\x05\x00"
    await stream.send_all(b"\x05\x01\x00" + request)
    reply = b""
    while len(reply) < 10:
        chunk = await stream.receive_some(10 - len(reply))
        if not chunk:
            break
        reply += chunk
    return stream, reply


def by_name(host: str, port: int) -> bytes:
    return b"\x03" + bytes([len(host)]) + host.encode() + struct.pack("!H", port)


def by_ipv4(address: str, port: int) -> bytes:
    return b"\x01" + bytes(int(part) for part in address.split(".")) + struct.pack("!H", port)


async def test_tunnels_to_an_allowed_origin_and_refuses_others(
    site: Site, nursery: trio.Nursery
) -> None:
    site.add("/", Reply(body=b"hello"))
    canary = Site("127.0.0.2")
    await nursery.start(canary.serve)
    proxy, port = await open_proxy(nursery, AddressGuard([site.base]))
    with trio.fail_after(10):
        stream, reply = await socks_connect(port, by_ipv4("127.0.0.1", site.port))
        assert reply[:2] == b"\x05\x00"
        async with stream:
            # Bytes after the handshake pass through unchanged, both ways.
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"hello"):
                answer += await stream.receive_some()
        assert answer.startswith(b"HTTP/1.1 200")

        for request in (
            by_ipv4("127.0.0.2", canary.port),  # a private address
            by_name("localhost", canary.port),  # a name for one
            by_ipv4("127.0.0.1", canary.port),  # the seed's host on another port
        ):
            stream, reply = await socks_connect(port, request)
            await stream.aclose()
            assert reply[:2] == b"\x05\x02"  # connection not allowed by ruleset
    assert canary.paths() == [] and canary.connections == 0
    assert proxy.connections == 1 and proxy.refused == 3


async def test_refuses_what_it_does_not_speak(nursery: trio.Nursery) -> None:
    _, port = await open_proxy(nursery, AddressGuard(allow_private=True))
    with trio.fail_after(10):
        # BIND (command 2) is not supported.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"\x05\x01\x00")
            assert await stream.receive_some(2) == b"\x05\x00"
            await stream.send_all(b"\x05\x02\x00" + by_ipv4("127.0.0.1", 80))
            assert (await stream.receive_some(10))[:2] == b"\x05\x07"
        # Not SOCKS5 at all: the connection is closed, nothing is answered.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\n\r\n")
            assert await stream.receive_some(10) == b""
        # Username/password only: no acceptable method.
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"\x05\x01\x02")
            assert await stream.receive_some(2) == b"\x05\xff"
