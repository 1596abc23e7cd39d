"""Keeping the answers to a page's own XHR and ``fetch`` requests (a route's ``capture``).

The tab's Network domain reports each response; those of type XHR or Fetch whose URL the
route's pattern matches (``re.search``) have their body read with ``Network.getResponseBody``
once loaded. Only observed: every request is still paused and checked by the renderer's
Fetch domain (the address guard) before it leaves the browser, so a capture never lets
anything through that the crawl would refuse.

Bounded twice: at most ``capture_max`` answers and ``capture_max_bytes`` bytes a page. An
answer past either cap (a pattern matching a huge or endless stream included: its bytes are
counted as they arrive) is not kept and :attr:`NetworkCapture.capped` says why; the browser's
own buffer is capped at the same size (``Network.enable``'s ``maxResourceBufferSize``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import trio

from ..scraper.browser import BrowserSetup, CapturedResponse
from .cdp import CdpConnection, CdpError, Subscription

__all__ = ["NetworkCapture"]

_TYPES = frozenset({"XHR", "Fetch"})
_EVENTS = (
    "Network.responseReceived",
    "Network.dataReceived",
    "Network.loadingFinished",
    "Network.loadingFailed",
)


class NetworkCapture:
    """The answers a page's capture kept; :meth:`run` fills it (``nursery.start``)."""

    def __init__(self, setup: BrowserSetup) -> None:
        assert setup.capture is not None
        self._pattern = re.compile(setup.capture)
        self._max = setup.capture_max
        self._max_bytes = setup.capture_max_bytes
        self.responses: list[CapturedResponse] = []
        self.bytes = 0
        #: why an answer was not kept (None: none was left out)
        self.capped: str | None = None
        # requestId -> [url, status, mime type, bytes received]
        self._pending: dict[str, list[Any]] = {}
        self._quiet = trio.Event()
        self._quiet.set()
        self._scope = trio.CancelScope()

    async def run(
        self, cdp: CdpConnection, session: str, *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Follow the tab's network until :meth:`stop` (enabled before ``started``)."""
        with self._scope, cdp.subscribe(_EVENTS, session_id=session) as events:
            cap = self._max_bytes
            await cdp.call(
                "Network.enable",
                {"maxResourceBufferSize": cap, "maxTotalBufferSize": max(cap * 2, 1 << 20)},
                session_id=session,
            )
            task_status.started()
            try:
                await self._follow(cdp, session, events)
            except CdpError:
                return  # the tab or the browser went away
            finally:
                self._pending.clear()
                self._quiet.set()

    async def _follow(self, cdp: CdpConnection, session: str, events: Subscription) -> None:
        async for event in events:
            method = event["method"]
            request_id = str(event.get("requestId", ""))
            if method == "Network.responseReceived":
                response = event.get("response", {})
                url = str(response.get("url", ""))
                if event.get("type") not in _TYPES or not self._pattern.search(url):
                    continue
                if len(self.responses) + len(self._pending) >= self._max:
                    self.capped = f"more than {self._max} answers matched; the rest not kept"
                    continue
                status = int(response.get("status", 0))
                self._pending[request_id] = [url, status, str(response.get("mimeType", "")), 0]
                self._quiet = trio.Event()
            elif request_id not in self._pending:
                continue
            elif method == "Network.dataReceived":
                pending = self._pending[request_id]
                pending[3] += int(event.get("dataLength", 0))
                if self.bytes + pending[3] > self._max_bytes:
                    self._drop(request_id, f"over {self._max_bytes:,} bytes")
            elif method == "Network.loadingFailed":
                self._drop(request_id, None)
            elif method == "Network.loadingFinished":
                await self._keep(cdp, session, request_id)

    async def _keep(self, cdp: CdpConnection, session: str, request_id: str) -> None:
        try:
            answer = await cdp.call(
                "Network.getResponseBody", {"requestId": request_id}, session_id=session
            )
        except CdpError:  # evicted from the browser's buffer (over its cap)
            self._drop(request_id, f"over {self._max_bytes:,} bytes")
            return
        data = answer.get("body", "")
        body = base64.b64decode(data) if answer.get("base64Encoded") else str(data).encode()
        if self.bytes + len(body) > self._max_bytes:
            self._drop(request_id, f"over {self._max_bytes:,} bytes")
            return
        url, status, mime_type, _ = self._pending.pop(request_id)
        self.responses.append(CapturedResponse(url, status, mime_type, body))
        self.bytes += len(body)
        self._settle()

    def _drop(self, request_id: str, why: str | None) -> None:
        pending = self._pending.pop(request_id, None)
        if why is not None and pending is not None:
            self.capped = f"an answer {why} was not kept ({pending[0][:200]})"
        self._settle()

    def _settle(self) -> None:
        if not self._pending:
            self._quiet.set()

    def stop(self) -> None:
        """End :meth:`run` (the page is released)."""
        self._scope.cancel()
        self._quiet.set()

    async def wait_settled(self) -> None:
        """Return once no matching answer is still loading."""
        while not self._quiet.is_set():
            await self._quiet.wait()

    def record(self) -> dict[str, Any]:
        """What the page's record says of the capture (``data.captured``, and
        ``data.capture_capped`` when an answer was left out)."""
        data: dict[str, Any] = {"captured": len(self.responses)}
        if self.capped is not None:
            data["capture_capped"] = self.capped
        return data
