"""A loopback TCP proxy for the fault tests: it forwards 127.0.0.1:<its port> to a target port,
and can be frozen (it stops forwarding in both directions and holds every connection open,
as a network partition does) and thawed (what it held goes on, in order).

Start it in a nursery: ``proxy = await nursery.start(FreezableProxy(port).serve)``.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["FreezableProxy"]

_CHUNK = 65_536


class FreezableProxy:
    """Forward connections to ``127.0.0.1:target``; :meth:`freeze` and :meth:`thaw`.

    While frozen, bytes sent either way are read and held, and new connections are accepted
    but not connected onwards: the client sees a peer that stops answering. A thaw forwards
    what was held, including bytes a client sent just before it closed (a late request
    reaching the server after the partition heals).
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connections = 0  #: connections accepted so far
        self._thawed = trio.Event()
        self._thawed.set()

    @property
    def frozen(self) -> bool:
        return not self._thawed.is_set()

    def url(self, path: str = "/0") -> str:
        return f"redis://127.0.0.1:{self.port}{path}"

    def freeze(self) -> None:
        """Stop forwarding (idempotent)."""
        if not self.frozen:
            self._thawed = trio.Event()

    def thaw(self) -> None:
        """Forward again, starting with what was held."""
        self._thawed.set()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free loopback port until cancelled; ``started`` gives the proxy."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        async with client:
            await self._thawed.wait()
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.target)
            except OSError:
                return  # the target is down: the client sees its connection closed
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await source.receive_some(_CHUNK):
                await self._thawed.wait()
                await sink.send_all(data)
            await self._thawed.wait()  # an end of stream is held like data
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()
