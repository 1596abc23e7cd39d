"""A real HTTP/1.1 test server on 127.0.0.1 that can misbehave in every way a crawler meets.

It speaks plain HTTP/1.1 over trio sockets with keep-alive, so the crawler under test uses
its real network stack. Routes map a path to either a :class:`Reply` (a well-formed answer)
or a raw handler that gets the socket stream and may trickle, stall, reset or lie.
Every request is logged (path, time, headers) so tests can assert what the server saw.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
import trio.lowlevel

__all__ = ["Reply", "Request", "Site", "html_page"]


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    at: float
    stream: trio.SocketStream  # the TCP stream
    io: Any = None  # what to write answers to: the TLS stream for https, else the TCP stream
    leftover: bytes = b""  # bytes read past the head (a body's start); raw handlers may take

    def __post_init__(self) -> None:
        if self.io is None:
            self.io = self.stream


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    content_type: str | None = "text/html; charset=utf-8"


# A raw handler writes the whole answer itself; returning False closes the connection.
RawHandler = Callable[[Request], Awaitable[bool]]
Handler = Reply | Callable[[Request], Reply] | Callable[[Request], Awaitable[Reply]]

_REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def html_page(title: str, links: Sequence[str] = (), body: str = "") -> bytes:
    anchors = "".join(f'<a href="{href}">link</a>\n' for href in links)
    return (
        f"<!doctype html><html><head><title>{title}</title></head>"
        f"<body>{body}{anchors}</body></html>"
    ).encode()


def encode_reply(reply: Reply) -> bytes:
    headers = {"Content-Length": str(len(reply.body)), **reply.headers}
    if reply.content_type is not None:
        headers.setdefault("Content-Type", reply.content_type)
    head = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Whatever')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + reply.body


class Site:
    """Routes, a request log, and a server to run with ``await nursery.start(site.serve)``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.routes: dict[str, Handler] = {}
        self.raw_routes: dict[str, RawHandler] = {}
        self.fallback: Callable[[str], Reply | None] | None = None
        self.log: list[Request] = []
        self.robots_log: list[Request] = []
        self.hits: Counter[str] = Counter()
        self.hit_event = trio.Event()
        self.connections = 0
        self.close_idle = False  # close each connection after one answer, without saying so
        self.ssl_context: ssl.SSLContext | None = None
        self.latency = 0.0  # seconds each answer waits before it is sent (a slow server)

    @property
    def base(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def add_raw(self, path: str, handler: RawHandler) -> None:
        self.raw_routes[path] = handler

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, socket_stream: trio.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        stream: Any = socket_stream
        if self.ssl_context is not None:
            stream = trio.SSLStream(socket_stream, self.ssl_context, server_side=True)
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Request(
                    method, target, headers, trio.current_time(), socket_stream, stream
                )
                if target.endswith("/robots.txt"):  # counted apart: page counts stay exact
                    self.robots_log.append(request)
                else:
                    self.log.append(request)
                    self.hits[target] += 1
                self.hit_event.set()
                self.hit_event = trio.Event()
                request.leftover, buffer = buffer, b""
                keep_open = await self._answer(request)
                buffer = request.leftover
                if not keep_open or self.close_idle:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _answer(self, request: Request) -> bool:
        if self.latency:
            await trio.sleep(self.latency)
        raw = self.raw_routes.get(request.path)
        if raw is not None:
            return await raw(request)
        handler = self.routes.get(request.path) or self.routes.get(request.path.split("?")[0])
        reply: Reply | None
        if handler is None:
            reply = self.fallback(request.path) if self.fallback else None
            reply = reply or Reply(404, b"<html><title>Not found</title></html>")
        elif isinstance(handler, Reply):
            reply = handler
        else:
            result = handler(request)
            reply = await result if isinstance(result, Awaitable) else result
        await request.io.send_all(encode_reply(reply))
        return True

    def paths(self) -> list[str]:
        return [r.path for r in self.log]

    async def kill_at(self, command: Sequence[str], requests: int) -> bool:
        """Run ``command`` and SIGKILL it once this site has logged ``requests`` requests;
        return whether it was killed (False: it ended by itself first)."""
        process = await trio.lowlevel.open_process(list(command), stderr=subprocess.DEVNULL)
        while len(self.log) < requests and process.poll() is None:
            with trio.move_on_after(1):  # also notice a process that ended by itself
                await self.hit_event.wait()
        killed = process.poll() is None
        if killed:
            process.kill()
        await process.wait()
        return killed


async def reset_connection(request: Request) -> bool:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed server would."""
    sock = request.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    return False


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
