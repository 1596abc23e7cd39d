"""A small Trio-native client for the Chrome DevTools Protocol (CDP).

It speaks CDP over any pair of Trio byte streams carrying NUL-terminated JSON messages: the
framing of Chromium's ``--remote-debugging-pipe`` (the browser reads commands on its fd 3 and
writes replies and events on its fd 4). A pipe has no port to find or guard and no message
size limit, so a 20 MB DOM comes back as one message.

* :meth:`CdpConnection.call` sends a command and waits for the reply with the same ``id``;
  a ``session_id`` scopes it to one target (flat sessions, ``Target.attachToTarget`` with
  ``flatten: true``), so one connection drives every tab.
* :meth:`CdpConnection.subscribe` routes events (plain dicts: the message's ``params``) of
  the given methods and session to a bounded channel; leaving its ``with`` block, however it
  is left, removes the subscription. Events nobody subscribed to are dropped, so events added
  to the protocol after this code was written are never fatal.
* When the browser dies (the pipe closes) every pending call fails with
  :class:`BrowserClosed`, and every subscriber's channel ends with it too.

No maintained Trio CDP library exists (``trio-chrome-devtools-protocol`` pins trio < 0.14 and
rejects events it does not know), hence this one: about 200 lines, no generated bindings.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import trio

__all__ = ["BrowserClosed", "CdpConnection", "CdpError", "EventOverflow", "Subscription"]

logger = logging.getLogger("trio_scrape")

#: Events a subscriber may leave unread before its subscription is ended with an error: a
#: subscriber that stops reading must not stall every other tab's replies.
EVENT_BUFFER = 1024
_READ_SIZE = 1 << 18


class CdpError(Exception):
    """The browser answered a command with an error (``code`` and ``message`` from CDP)."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} ({code})")
        self.method = method
        self.code = code
        self.message = message


class BrowserClosed(CdpError):
    """The connection to the browser ended (it exited, crashed or was killed) before the
    reply or event came."""

    def __init__(self, reason: str = "the browser closed the DevTools connection") -> None:
        Exception.__init__(self, reason)
        self.method = ""
        self.code = -1
        self.message = reason


class EventOverflow(CdpError):
    """A subscriber left more than ``EVENT_BUFFER`` events unread; its subscription ended."""

    def __init__(self) -> None:
        Exception.__init__(self, f"more than {EVENT_BUFFER} unread DevTools events")
        self.method = ""
        self.code = -1
        self.message = str(self)


class Subscription:
    """Events for one subscriber: ``async for event in subscription`` (plain ``params``
    dicts, each with its method added under ``"method"``), or :meth:`receive`.

    Iteration ends, raising :class:`BrowserClosed` or :class:`EventOverflow`, when the
    connection dies or the subscriber fell too far behind."""

    def __init__(self, methods: frozenset[str], session_id: str | None) -> None:
        self.methods = methods
        self.session_id = session_id
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](EVENT_BUFFER)
        self._error: CdpError | None = None

    def _deliver(self, event: dict[str, Any]) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self._end(EventOverflow())
        except trio.ClosedResourceError:
            pass

    def _end(self, error: CdpError) -> None:
        if self._error is None:
            self._error = error
        self._send.close()

    async def receive(self) -> dict[str, Any]:
        """The next event.

        Raises:
            BrowserClosed: the connection ended.
            EventOverflow: too many events went unread.
        """
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._error or BrowserClosed("the subscription has ended") from None

    def receive_nowait(self) -> dict[str, Any] | None:
        """The next event if one is waiting (None: none is).

        Raises:
            BrowserClosed: the connection ended.
            EventOverflow: too many events went unread.
        """
        try:
            return self._receive.receive_nowait()
        except trio.WouldBlock:
            return None
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._error or BrowserClosed("the subscription has ended") from None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.receive()


class CdpConnection:
    """One DevTools connection: run :meth:`serve` in a task (``await nursery.start(...)``),
    then :meth:`call` and :meth:`subscribe` from any task."""

    def __init__(self, send_stream: trio.abc.SendStream, receive_stream: trio.abc.ReceiveStream):
        self._send_stream = send_stream
        self._receive_stream = receive_stream
        self._send_lock = trio.Lock()
        self._ids = itertools.count(1)
        # id -> [method, event set on reply, reply message]
        self._pending: dict[int, list[Any]] = {}
        self._subscriptions: dict[tuple[str | None, str], set[Subscription]] = {}
        self._closed: BrowserClosed | None = None
        self._closed_event = trio.Event()

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read messages until the browser closes the connection (or this task is cancelled),
        then fail everything still waiting with :class:`BrowserClosed`."""
        task_status.started()
        reason = "the browser closed the DevTools connection"
        try:
            # A large message arrives piece by piece: joined once, not with a quadratic +=.
            partial: list[bytes | bytearray] = []
            while True:
                try:
                    chunk = await self._receive_stream.receive_some(_READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    reason = f"the DevTools connection broke: {exc}"
                    return
                if not chunk:
                    return
                if b"\0" not in chunk:
                    partial.append(chunk)
                    continue
                partial.append(chunk)
                messages = b"".join(partial).split(b"\0")
                rest = messages.pop()  # what follows the last NUL: the next message's start
                partial = [rest] if rest else []
                for message in messages:
                    self._dispatch(message)
        finally:
            self._close(BrowserClosed(reason))

    def _dispatch(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a DevTools message that is not JSON: %.80r", raw)
            return
        if not isinstance(message, dict):
            return
        message_id = message.get("id")
        if message_id is not None:
            waiter = self._pending.pop(message_id, None)
            if waiter is not None:
                waiter[2] = message
                waiter[1].set()
            return
        method = message.get("method")
        if not isinstance(method, str):
            return
        subscribers = self._subscriptions.get((message.get("sessionId"), method))
        if subscribers:
            params = message.get("params")
            event = dict(params) if isinstance(params, dict) else {}
            event["method"] = method
            for subscriber in list(subscribers):
                subscriber._deliver(event)

    def _close(self, error: BrowserClosed) -> None:
        if self._closed is not None:
            return
        self._closed = error
        self._closed_event.set()
        for waiter in self._pending.values():
            waiter[1].set()  # no reply: call() raises the connection's error
        self._pending.clear()
        for subscribers in self._subscriptions.values():
            for subscriber in subscribers:
                subscriber._end(error)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send a command and return its ``result``.

        Raises:
            CdpError: the browser answered with an error.
            BrowserClosed: the connection ended before the reply came.
        """
        if self._closed is not None:
            raise self._closed
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method}
        if params:
            message["params"] = params
        if session_id is not None:
            message["sessionId"] = session_id
        waiter: list[Any] = [method, trio.Event(), None]
        self._pending[message_id] = waiter
        try:
            data = orjson.dumps(message) + b"\0"
            async with self._send_lock:
                try:
                    await self._send_stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._close(BrowserClosed(f"the DevTools connection broke: {exc}"))
            await waiter[1].wait()
        finally:
            self._pending.pop(message_id, None)
        reply = waiter[2]
        if reply is None:
            assert self._closed is not None
            raise self._closed
        error = reply.get("error")
        if error is not None:
            raise CdpError(method, int(error.get("code", 0)), str(error.get("message", error)))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    @contextmanager
    def subscribe(
        self, methods: Iterable[str], *, session_id: str | None = None
    ) -> Iterator[Subscription]:
        """Route the events named in ``methods`` (for ``session_id``; None: the browser's
        own) to a :class:`Subscription` until the block is left."""
        subscription = Subscription(frozenset(methods), session_id)
        if self._closed is not None:
            subscription._end(self._closed)
        keys = [(session_id, method) for method in subscription.methods]
        for key in keys:
            self._subscriptions.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            for key in keys:
                subscribers = self._subscriptions.get(key)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._subscriptions[key]
            subscription._send.close()
            subscription._receive.close()

    async def wait_closed(self) -> None:
        """Return once the connection has ended."""
        await self._closed_event.wait()

    def subscriber_count(self) -> int:
        """Subscriptions alive (for tests: none may outlive its ``with`` block)."""
        return sum(len(s) for s in self._subscriptions.values())

    def pending_count(self) -> int:
        """Calls waiting for a reply."""
        return len(self._pending)

    async def aclose(self) -> None:
        """Close both streams; pending calls fail with :class:`BrowserClosed`."""
        self._close(BrowserClosed("the DevTools connection was closed"))
        with trio.CancelScope(shield=True):
            await self._send_stream.aclose()
            await self._receive_stream.aclose()
