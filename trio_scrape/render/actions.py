"""The tab a rendered page's handler holds: :class:`TabActions`, the renderer's
:class:`~trio_scrape.scraper.browser.BrowserTab`.

Clicks are real mouse events (``Input.dispatchMouseEvent`` at the element's centre, scrolled
into view), typing is ``Input.insertText``, scripts run by ``Runtime.evaluate`` (promises
awaited, the value returned as JSON). Screenshots are ``Page.captureScreenshot`` beyond the
viewport, PDFs ``Page.printToPDF``. Every call is a DevTools command on the tab's session,
so the page deadline (the handler's cancel scope) cancels it; the renderer then stops the
page, or replaces the tab, before the tab serves another page.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import orjson
import trio

from ..errors import BrowserActionError
from ..scraper.browser import CapturedResponse
from .capture import NetworkCapture
from .cdp import CdpConnection, CdpError, Subscription
from .files import write_whole
from .waits import ScriptFailed, css_check, poll_until, short

__all__ = ["MAX_FILE_BYTES", "MAX_SHOT_HEIGHT", "MAX_SHOT_WIDTH", "TabActions", "take_screenshot"]

#: The tallest screenshot taken, in CSS pixels: a taller page is cut there (Chromium's
#: textures cannot hold an endless page, and a 100,000-pixel PNG helps no one).
MAX_SHOT_HEIGHT = 16_384
#: The widest screenshot taken, in CSS pixels.
MAX_SHOT_WIDTH = 4_096
#: The largest screenshot or PDF kept, in bytes: a larger one is not written.
MAX_FILE_BYTES = 20 * 1024 * 1024

# The centre of the element `selector` matches, scrolled into view (null: none matches).
_CENTRE = """
((selector) => {
  const element = document.querySelector(selector);
  if (element === null) return null;
  element.scrollIntoView({block: "center", inline: "center"});
  const box = element.getBoundingClientRect();
  return [box.left + box.width / 2, box.top + box.height / 2, box.width * box.height];
})(%s)
"""
_FOCUS = """
((selector) => {
  const element = document.querySelector(selector);
  if (element === null) return "none";
  if (!("value" in element)) return "not a field";
  element.focus();
  element.value = "";
  return "ok";
})(%s)
"""
_CHANGED = """
((selector) => {
  const element = document.querySelector(selector);
  if (element !== null) element.dispatchEvent(new Event("change", {bubbles: true}));
})(%s)
"""
_SELECT = """
((selector, value) => {
  const element = document.querySelector(selector);
  if (element === null) return "none";
  if (element.tagName !== "SELECT") return "not a <select>";
  if (![...element.options].some((option) => option.value === value)) return "no such option";
  element.value = value;
  element.dispatchEvent(new Event("input", {bubbles: true}));
  element.dispatchEvent(new Event("change", {bubbles: true}));
  return "ok";
})(%s, %s)
"""
_SIZE = "[document.documentElement.scrollHeight, document.getElementsByTagName('*').length]"
_TO_END = "window.scrollTo(0, document.documentElement.scrollHeight)"
# Resolves once the DOM has had no mutation for `idle` ms (or after `cap` ms).
_QUIET = """
new Promise((resolve) => {
  let timer;
  const done = () => {
    observer.disconnect(); clearTimeout(timer); clearTimeout(cap); resolve();
  };
  const observer = new MutationObserver(() => {
    clearTimeout(timer); timer = setTimeout(done, %d);
  });
  observer.observe(
    document, {subtree: true, childList: true, attributes: true, characterData: true}
  );
  timer = setTimeout(done, %d);
  const cap = setTimeout(done, %d);
})
"""
_IN_FLIGHT_TYPES = frozenset({"XHR", "Fetch", "Script", "Document"})


def _js(value: Any) -> str:
    return orjson.dumps(value).decode()


class TabActions:
    """:class:`~trio_scrape.scraper.browser.BrowserTab` over one held tab; made and closed
    by the renderer (every call after :meth:`close` raises ``BrowserActionError``)."""

    def __init__(
        self,
        cdp: CdpConnection,
        session: str,
        url: str,
        capture: NetworkCapture | None,
    ) -> None:
        self.cdp = cdp
        self.session = session
        self._url = url
        self.capture = capture
        self._closed = False
        self.used = False  #: an action ran: the page may be busy when released

    def record(self) -> dict[str, Any]:
        """What the page's record says of the tab's capture (empty: no capture)."""
        return {} if self.capture is None else self.capture.record()

    def close(self) -> None:
        self._closed = True

    @property
    def url(self) -> str:
        return self._url

    async def _call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._closed:
            raise BrowserActionError("the page's tab is released once its handler returns")
        self.used = True
        try:
            return await self.cdp.call(method, params, session_id=self.session)
        except CdpError as exc:
            raise BrowserActionError(f"{method} failed: {exc.message}") from exc

    async def evaluate(self, expression: str) -> Any:
        result = await self._call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        details = result.get("exceptionDetails")
        if details is not None:
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserActionError(f"the script threw: {short(str(text))}")
        return result.get("result", {}).get("value")

    async def click(self, selector: str) -> None:
        found = await self.evaluate(_CENTRE % _js(selector))
        if found is None:
            raise BrowserActionError(f"click: nothing matches {selector!r}")
        x, y, area = found
        if not area:
            raise BrowserActionError(f"click: {selector!r} is not displayed")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params: dict[str, Any] = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            await self._call("Input.dispatchMouseEvent", params)

    async def fill(self, selector: str, text: str) -> None:
        state = await self.evaluate(_FOCUS % _js(selector))
        if state != "ok":
            reason = "nothing matches" if state == "none" else f"{state}:"
            raise BrowserActionError(f"fill: {reason} {selector!r}")
        if text:
            await self._call("Input.insertText", {"text": text})
        await self.evaluate(_CHANGED % _js(selector))

    async def select(self, selector: str, value: str) -> None:
        state = await self.evaluate(_SELECT % (_js(selector), _js(value)))
        if state != "ok":
            reason = "nothing matches" if state == "none" else f"{state}:"
            raise BrowserActionError(f"select: {reason} {selector!r} (value {value!r})")

    async def wait_for(self, selector: str, *, timeout: float | None = None) -> None:
        if self._closed:
            raise BrowserActionError("the page's tab is released once its handler returns")
        budget = timeout if timeout is not None else _left()
        try:
            met = await poll_until(self.cdp, self.session, css_check(selector), budget)
        except ScriptFailed as exc:
            raise BrowserActionError(f"wait_for: {exc}") from None
        except CdpError as exc:
            raise BrowserActionError(f"wait_for failed: {exc.message}") from exc
        if not met:
            raise BrowserActionError(f"wait_for: nothing matched {selector!r} in {budget:.1f}s")

    async def scroll_to_end(
        self, *, max_scrolls: int = 100, timeout: float | None = None, idle: float = 0.5
    ) -> int:
        if max_scrolls < 1 or idle <= 0:
            raise ValueError("scroll_to_end: max_scrolls must be at least 1, idle over 0")
        scrolls = 0
        with (
            trio.move_on_after(math.inf if timeout is None else timeout),
            self.cdp.subscribe(
                ["Network.requestWillBeSent", "Network.loadingFinished", "Network.loadingFailed"],
                session_id=self.session,
            ) as events,
        ):
            if self.capture is None:
                await self._call("Network.enable")
            in_flight: set[str] = set()
            try:
                size = await self.evaluate(_SIZE)
                while scrolls < max_scrolls:
                    await self.evaluate(_TO_END)
                    scrolls += 1
                    await self._settle(events, in_flight, idle)
                    now = await self.evaluate(_SIZE)
                    if now == size:
                        break
                    size = now
            finally:
                if self.capture is None and not self._closed:
                    with trio.CancelScope(shield=True), trio.move_on_after(2):
                        try:
                            await self.cdp.call("Network.disable", session_id=self.session)
                        except CdpError:
                            pass
        return scrolls

    async def _settle(self, events: Subscription, in_flight: set[str], idle: float) -> None:
        """Wait until the page's requests are answered and its DOM has been quiet ``idle``
        seconds. A request still unanswered after ``20 * idle`` seconds (a long poll, a
        stream) is waited for no more."""
        idle_ms = int(idle * 1000)
        while True:
            await self.evaluate(_QUIET % (idle_ms, idle_ms, idle_ms * 20))
            _note(events, in_flight)
            if not in_flight:
                return
            with trio.move_on_after(idle * 20) as waited:
                while in_flight:
                    try:
                        event = await events.receive()
                    except CdpError as exc:
                        raise BrowserActionError(f"scroll_to_end: {exc.message}") from exc
                    _apply(event, in_flight)
            if waited.cancelled_caught:
                in_flight.clear()  # those never end: the DOM's quiet decides
                await self.evaluate(_QUIET % (idle_ms, idle_ms, idle_ms * 20))
                return

    async def content(self) -> str:
        html = await self.evaluate(
            "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '')"
            " + (document.documentElement ? document.documentElement.outerHTML : '')"
        )
        return str(html or "")

    async def captured(self) -> list[CapturedResponse]:
        if self.capture is None:
            raise BrowserActionError("captured: the page's route has no capture pattern")
        await self.capture.wait_settled()
        return list(self.capture.responses)

    async def screenshot(self, path: str | Path | None = None) -> bytes:
        if self._closed:
            raise BrowserActionError("the page's tab is released once its handler returns")
        self.used = True
        data, _ = await take_screenshot(self.cdp, self.session)
        if path is not None:
            await _write(path, data)
        return data

    async def pdf(self, path: str | Path | None = None) -> bytes:
        answer = await self._call("Page.printToPDF", {"printBackground": True})
        data = base64.b64decode(answer.get("data", ""))
        if len(data) > MAX_FILE_BYTES:
            raise BrowserActionError(f"pdf: {len(data):,} bytes, over {MAX_FILE_BYTES:,}")
        if path is not None:
            await _write(path, data)
        return data


async def _write(path: str | Path, data: bytes) -> None:
    try:
        await write_whole(path, data)
    except OSError as exc:
        raise BrowserActionError(f"cannot write {path}: {exc}") from exc


def _note(events: Subscription, in_flight: set[str]) -> None:
    try:
        while (event := events.receive_nowait()) is not None:
            _apply(event, in_flight)
    except CdpError as exc:
        raise BrowserActionError(f"scroll_to_end: {exc.message}") from exc


def _apply(event: dict[str, Any], in_flight: set[str]) -> None:
    request_id = str(event.get("requestId", ""))
    if event["method"] == "Network.requestWillBeSent":
        if event.get("type") in _IN_FLIGHT_TYPES:
            in_flight.add(request_id)
    else:
        in_flight.discard(request_id)


def _left() -> float:
    deadline = trio.current_effective_deadline()
    return 30.0 if math.isinf(deadline) else max(0.0, deadline - trio.current_time())


async def take_screenshot(cdp: CdpConnection, session: str) -> tuple[bytes, bool]:
    """A PNG of the whole page, at most :data:`MAX_SHOT_WIDTH` x :data:`MAX_SHOT_HEIGHT`
    CSS pixels, and whether the page was cut to fit.

    Raises:
        BrowserActionError: the PNG is over :data:`MAX_FILE_BYTES`, or the tab failed.
    """
    try:
        metrics = await cdp.call("Page.getLayoutMetrics", session_id=session)
        size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
        width = max(1, math.ceil(float(size.get("width", 800))))
        height = max(1, math.ceil(float(size.get("height", 600))))
        clipped = width > MAX_SHOT_WIDTH or height > MAX_SHOT_HEIGHT
        clip = {
            "x": 0,
            "y": 0,
            "width": min(width, MAX_SHOT_WIDTH),
            "height": min(height, MAX_SHOT_HEIGHT),
            "scale": 1,
        }
        answer = await cdp.call(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session_id=session,
        )
    except CdpError as exc:
        raise BrowserActionError(f"screenshot failed: {exc.message}") from exc
    data = base64.b64decode(answer.get("data", ""))
    if len(data) > MAX_FILE_BYTES:
        raise BrowserActionError(f"screenshot: {len(data):,} bytes, over {MAX_FILE_BYTES:,}")
    return data, clipped
