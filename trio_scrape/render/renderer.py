"""Rendering pages in headless Chromium: a :class:`Fetcher` whose body is the rendered DOM.

:class:`Renderer` implements the same ``fetch(url) -> Response`` seam as the HTTP fetcher, so
the page pipeline (decode, parse, selectors, hooks, links, retries, deadlines) is the same for
a rendered page; only the body differs: the HTML of the DOM once the page has settled.

* The browser is started on the first page to render, once, and replaced if it dies. Its
  processes are killed (whole process group) when the renderer closes, however it closes.
* Up to ``render_tabs`` tabs render at once. Each tab lives in its own browser context
  (cookies, storage, cache) and is replaced after ``render_tab_pages`` pages, after a crash,
  or when a page it was rendering could not be stopped: memory stays flat on long crawls.
* A page is rendered when its ``load`` event has fired and then it has been quiet: nothing
  it started is pending (``fetch``/XHR and the reading of their bodies, scripts it inserted,
  timers of up to 250 ms), its DOM has had no mutation for 10 ms and an animation frame
  has begun since its last mutation (25 ms without a mutation where no frame has come; a
  script installed in every document of the tab counts these); or, with
  ``render_wait="networkidle"``, when
  Chromium reports the network idle (no request for 500 ms); either wait is capped at
  ``render_wait_max``. All of
  it runs inside the caller's page deadline: cancelling ``fetch`` stops the navigation.
* Every request of every page, frame and worker follows the crawl's rules: the address
  guard (no loopback, private or link-local address unless it is a seed's host or
  ``allow_private``), checked on every connection by the guarded SOCKS proxy, on a page's
  own URL before it is navigated to and on a redirect's target at its paused response (with
  a ``proxy``, on every request paused by the browser-wide Fetch domain); no images, media or
  fonts unless ``render_resources`` (paused and failed); the ``headers`` sent to the seeds'
  hosts only (every request paused then). See :func:`fetch_patterns`. The browser's resolver
  is also told to fail private and loopback literals and ``localhost``
  (:func:`resolver_rules`).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import httpx
import trio

from ..http.addresses import AddressGuard, BlockedAddress, resolve
from ..http.fetcher import Fetcher, FetchError, Response, header_fields
from ..model.config import CrawlConfig
from ..model.page import ErrorKind
from ..model.urls import exempt_origins, host_of, origin_text
from ..scraper.browser import BrowserSetup
from .actions import TabActions
from .browser import Browser, find_browser, open_browser
from .capture import NetworkCapture
from .cdp import CdpConnection, CdpError, EventOverflow, Subscription
from .socks import GuardedSocksProxy
from .waits import PageWaits, wait_until_done

__all__ = [
    "RenderStatistics",
    "Renderer",
    "open_page_fetcher",
    "open_renderer",
]

logger = logging.getLogger("trio_scrape")

#: Resource types not downloaded unless ``render_resources``: they cost bandwidth and
#: memory, and change neither the DOM's text nor its links.
BLOCKED_RESOURCES = frozenset({"Image", "Media", "Font"})
#: How long the DOM must stay unchanged after ``load``, with nothing tracked pending (fetch/XHR
#: and their bodies, inserted scripts, short timers), and with an animation frame drawn since
#: its last change, for a page to count as rendered.
QUIET_SECONDS = 0.010
#: How long the DOM must stay unchanged, nothing tracked pending, when no animation frame
#: comes (a page that draws none: the frame rule cannot hold it longer than this). Once a
#: frame has come during the wait, frames are waited for instead (up to the wait's cap).
QUIET_FALLBACK_SECONDS = 0.025
#: Timers (``setTimeout``) of at most this delay are waited for by the quiet wait.
TIMER_HORIZON_SECONDS = 0.25
#: Browser starts allowed in a row without a page rendered in between: a browser that
#: crashes at once keeps failing pages (kind ``browser``) instead of restarting forever.
MAX_FAILED_STARTS = 3
# How long stopping a page (after its deadline) may take before its tab is replaced instead.
_STOP_TIMEOUT = 2.0
# How long a guard decision for a host is re-used (the browser resolves names itself).
_GUARD_TTL = 30.0
_GUARD_CACHE_SIZE = 4096
_MEMORY_INTERVAL = 1.0

# Net error names (Page.navigate's errorText) -> the record's error kind.
_NET_ERRORS: dict[str, ErrorKind] = {
    "ERR_NAME_NOT_RESOLVED": "connect",
    "ERR_CONNECTION_REFUSED": "connect",
    "ERR_ADDRESS_UNREACHABLE": "connect",
    "ERR_CONNECTION_FAILED": "connect",
    "ERR_UNSAFE_PORT": "connect",
    "ERR_INTERNET_DISCONNECTED": "connect",
    "ERR_TIMED_OUT": "timeout",
    "ERR_CONNECTION_TIMED_OUT": "timeout",
    "ERR_CONNECTION_RESET": "network",
    "ERR_CONNECTION_CLOSED": "network",
    "ERR_EMPTY_RESPONSE": "protocol",
    "ERR_INVALID_HTTP_RESPONSE": "protocol",
    "ERR_INVALID_RESPONSE": "protocol",
    "ERR_RESPONSE_HEADERS_TRUNCATED": "protocol",
    "ERR_INCOMPLETE_CHUNKED_ENCODING": "protocol",
    "ERR_CONTENT_LENGTH_MISMATCH": "protocol",
    "ERR_TOO_MANY_REDIRECTS": "too_many_redirects",
    "ERR_CONTENT_DECODING_FAILED": "decode",
    "ERR_INVALID_URL": "invalid_url",
    "ERR_UNKNOWN_URL_SCHEME": "invalid_url",
    "ERR_UNSAFE_REDIRECT": "invalid_url",
}

# Installed in every document of a tab before its own scripts run (quiet wait): counts what
# is still to come (fetch/XHR in flight and their bodies being read, scripts inserted and not
# yet loaded, timers of at most TIMER_HORIZON ms, three generations deep at most) and calls
# `wake` whenever one of them ends. Our own timers use the saved originals.
_TRACKER_SCRIPT = """
(() => {
  if (window.__trioScrapeQuiet) return;
  const horizon = %(horizon)d;
  const s = {pending: 0, wake: null, setTimeout: window.setTimeout.bind(window),
             clearTimeout: window.clearTimeout.bind(window),
             frame: %(frames)s ? window.requestAnimationFrame.bind(window) : null};
  Object.defineProperty(window, "__trioScrapeQuiet", {value: s, enumerable: false});
  const begin = () => { s.pending += 1; };
  const end = () => { s.pending -= 1; if (s.wake) s.wake(); };
  const timers = new Map();
  let generation = 0;
  window.setTimeout = function (callback, delay, ...rest) {
    const ms = Number(delay) || 0;
    const mine = generation + 1;
    if (typeof callback !== "function" || ms > horizon || mine > 3) {
      return s.setTimeout(callback, delay, ...rest);
    }
    begin();
    const id = s.setTimeout(() => {
      timers.delete(id);
      const before = generation;
      generation = mine;
      try { callback(...rest); } finally { generation = before; end(); }
    }, ms);
    timers.set(id, true);
    return id;
  };
  window.clearTimeout = function (id) {
    if (timers.delete(id)) end();
    return s.clearTimeout(id);
  };
  const track = (promise) => {
    begin();
    promise.then(end, end);
    return promise;
  };
  if (window.fetch) {
    const fetch = window.fetch;
    window.fetch = function (...args) { return track(fetch.apply(this, args)); };
  }
  if (window.Response) {
    for (const name of ["json", "text", "arrayBuffer", "blob", "formData"]) {
      const read = Response.prototype[name];
      if (read) Response.prototype[name] = function () { return track(read.call(this)); };
    }
  }
  if (window.XMLHttpRequest) {
    const send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.send = function (...args) {
      begin();
      this.addEventListener("loadend", () => s.setTimeout(end, 0), {once: true});
      try { return send.apply(this, args); } catch (error) { end(); throw error; }
    };
  }
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeName === "SCRIPT" && node.src && !node.noModule) {
          begin();
          node.addEventListener("load", end, {once: true});
          node.addEventListener("error", end, {once: true});
        }
      }
    }
  }).observe(document, {subtree: true, childList: true});
})();
"""
# Installed where the browser draws no frames (``paint_once``: the compositor on the main
# thread runs no animation frames): requestAnimationFrame callbacks run from a timer 16 ms on,
# all those queued by then together, as a frame would run them; with the quiet wait's script
# installed first, that timer is one it waits for.
_FRAME_SCRIPT = """
(() => {
  if (window.__trioScrapeFrames) return;
  Object.defineProperty(window, "__trioScrapeFrames", {value: true, enumerable: false});
  const later = window.setTimeout.bind(window);
  let queue = new Map(), handle = null, next = 1;
  const flush = () => {
    handle = null;
    const run = queue;
    queue = new Map();
    const now = performance.now();
    for (const callback of run.values()) {
      try { callback(now); } catch (error) { queueMicrotask(() => { throw error; }); }
    }
  };
  window.requestAnimationFrame = function (callback) {
    const id = next++;
    queue.set(id, callback);
    if (handle === null) handle = later(flush, 16);
    return id;
  };
  window.cancelAnimationFrame = function (id) { queue.delete(id); };
})();
"""
# Resolves once nothing tracked is pending, the DOM has had no mutation for `quiet` ms and
# the page has drawn an animation frame that began after the last mutation (what a
# requestAnimationFrame callback queued by then adds restarts the wait); or, where no frame
# comes, once it has had no mutation for `fallback` ms; or after `cap` ms at most.
_QUIET_SCRIPT = """
new Promise((resolve) => {
  const s = window.__trioScrapeQuiet;
  const later = s ? s.setTimeout : window.setTimeout.bind(window);
  const cancel = s ? s.clearTimeout : window.clearTimeout.bind(window);
  // The frame rule where frames are drawn; none where they are not (a page's frame callbacks
  // are then timers waited for) or where nothing is tracked (the fallback window only).
  const frame = s ? s.frame : null;
  const window_ms = s ? %(quiet)d : %(fallback)d;
  // seen: a frame came during this wait, so frames do come in this tab: from then on the
  // fallback window no longer ends the wait (a frame late on a loaded machine is waited for,
  // up to the cap), only the frame rule does.
  let timer, fallback, lastChange = 0, drawn = !frame, quiet = false, asked = false;
  let seen = false;
  const done = () => {
    observer.disconnect(); cancel(timer); cancel(fallback); cancel(cap);
    if (s) s.wake = null;
    resolve(true);
  };
  const onFrame = (time) => {
    asked = false;
    if (!seen) { seen = true; cancel(fallback); }
    if (time > lastChange) { drawn = true; if (quiet) done(); } else ask();
  };
  const ask = () => { if (frame && !asked) { asked = true; frame(onFrame); } };
  const check = () => {
    cancel(timer); cancel(fallback); quiet = false;
    if (!s || s.pending <= 0) {
      timer = later(() => { quiet = true; if (drawn) done(); }, window_ms);
      if (!seen) fallback = later(done, %(fallback)d);
    }
  };
  const changed = () => { lastChange = performance.now(); drawn = !frame; ask(); check(); };
  const observer = new MutationObserver(changed);
  observer.observe(
    document, {subtree: true, childList: true, attributes: true, characterData: true}
  );
  if (s) s.wake = check;
  const cap = later(done, %(cap)d);
  changed();
})
"""


def tracker_script(*, frames: bool = True) -> str:
    """The script installed in every document of a tab for the quiet wait (``frames``: the
    browser draws animation frames; without, see :func:`page_scripts`)."""
    return _TRACKER_SCRIPT % {
        "horizon": int(TIMER_HORIZON_SECONDS * 1000),
        "frames": "true" if frames else "false",
    }


def page_scripts(*, quiet: bool, frames: bool) -> str:
    """What is installed in every document of a tab before its own scripts (empty: nothing):
    the quiet wait's tracker (``quiet``), and where the browser draws no animation frames
    (``frames`` false: ``paint_once``), a ``requestAnimationFrame`` that runs its callbacks
    from a timer, so that what a page builds in frame callbacks is built (and waited for)."""
    parts = [tracker_script(frames=frames)] if quiet else []
    if not frames:
        parts.append(_FRAME_SCRIPT)
    return "".join(parts)


def quiet_script(cap_ms: int) -> str:
    """The quiet wait's expression: a promise that resolves when the page is quiet (nothing
    tracked pending and no DOM mutation for :data:`QUIET_SECONDS`) or after ``cap_ms``."""
    return _QUIET_SCRIPT % {
        "quiet": int(QUIET_SECONDS * 1000),
        "fallback": int(QUIET_FALLBACK_SECONDS * 1000),
        "cap": cap_ms,
    }


# The rendered document: its HTML (with its doctype), URL and content type.
_SNAPSHOT_SCRIPT = """
(() => {
  const d = document;
  const doctype = d.doctype ? new XMLSerializer().serializeToString(d.doctype) : "";
  return [d.documentElement ? doctype + d.documentElement.outerHTML : "", d.URL, d.contentType];
})()
"""
# Documents are paused with their response: the main frame's status and headers become the
# record's, a redirect's target is checked by the guard, and a non-HTML body is taken as it is.
_DOCUMENT_RESPONSES = {"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"}


def fetch_patterns(config: CrawlConfig) -> list[dict[str, str]]:
    """The requests the browser-wide Fetch domain pauses for a crawl under ``config``.

    Every request, when the Fetch domain is the address guard's only check on the browser's
    requests (``proxy`` given: connections go to the user's proxy, not through the guarded
    SOCKS proxy) or when the seeds' hosts get ``headers``. Otherwise only what is refused by
    kind (images, media, fonts; none with ``render_resources``): the guarded SOCKS proxy
    judges every connection the browser makes, a page's own address is checked before it is
    navigated to and a redirect's target when its response is paused, so a request paused
    only to be let through would cost a DevTools round trip a request for nothing."""
    patterns: list[dict[str, str]] = []
    if config.proxy is not None or config.headers:
        patterns.append({"urlPattern": "*", "requestStage": "Request"})
    elif not config.render_resources:
        patterns += [
            {"urlPattern": "*", "resourceType": kind, "requestStage": "Request"}
            for kind in sorted(BLOCKED_RESOURCES)
        ]
    patterns.append(_DOCUMENT_RESPONSES)
    return patterns


class RenderStatistics:
    """Counters of a renderer: pages rendered, tabs busy and open, the browser's memory
    (total PSS of its processes, sampled every second; None before it starts), browser
    starts and tabs replaced."""

    __slots__ = (
        "browser_memory",
        "browser_peak_memory",
        "browser_starts",
        "popups_closed",
        "rendered",
        "tabs_in_use",
        "tabs_replaced",
    )

    def __init__(self) -> None:
        self.rendered = 0
        self.tabs_in_use = 0
        self.browser_memory: int | None = None
        self.browser_peak_memory: int | None = None
        self.browser_starts = 0
        self.popups_closed = 0
        self.tabs_replaced = 0


class _Navigation:
    """What the request handler learns about a tab's current page."""

    __slots__ = ("blocked", "document", "raw_body", "redirects", "too_large", "waits")

    def __init__(self) -> None:
        self.document: tuple[str, int, list[tuple[str, str]]] | None = None  # url, status, headers
        self.blocked: str | None = None  # why the guard refused the main document
        self.too_large: str | None = None
        self.raw_body: bytes | None = None  # a main document that is not HTML, as it came
        self.redirects = 0
        self.waits = PageWaits()  # conditions after the quiet / network-idle wait


class _Tab:
    """One page target in its own browser context."""

    def __init__(self, browser: Browser, context_id: str, target_id: str, session_id: str):
        self.browser = browser
        self.context_id = context_id
        self.target_id = target_id
        self.session_id = session_id
        self.uses = 0
        self.usable = True
        self.scope: trio.CancelScope | None = None  # the render in progress, cancelled on crash
        self.watcher = trio.CancelScope()  # the tab's dialog handler, cancelled with the tab

    def crashed(self) -> None:
        self.usable = False
        if self.scope is not None:
            self.scope.cancel()


# Longer than the ~450 lines a class gets here: tabs, navigations and the browser's
# life share one set of DevTools subscriptions and one lock; see the module's text.
class Renderer:
    """:class:`Fetcher` that renders pages in headless Chromium; make it with
    :func:`open_renderer`.

    ``fetch`` raises :class:`FetchError` as the HTTP fetcher does, plus kind ``browser``
    (retryable) when the tab or the browser crashed during the render or the browser could
    not be started.
    """

    def __init__(
        self,
        config: CrawlConfig,
        nursery: trio.Nursery,
        *,
        executable: str,
        seed_hosts: Iterable[str],
        guard: AddressGuard,
    ) -> None:
        self._config = config
        self._nursery = nursery
        self._executable = executable
        self._seed_hosts = frozenset(h.lower() for h in seed_hosts)
        self._guard = guard
        self._seed_headers = list(config.headers.items())
        self._slots = trio.Semaphore(config.render_tabs)
        self._idle: list[_Tab] = []
        self._tabs: dict[str, _Tab] = {}  # target id -> tab
        self._navigations: dict[str, _Navigation] = {}  # target id -> current page
        self._browser: Browser | None = None
        self._browser_lock = trio.Lock()
        self._browser_scope: trio.CancelScope | None = None
        self._failed_starts = 0
        self._start_error = ""
        self._guard_cache: dict[str, tuple[float, str | None]] = {}
        # No handler acts on a tab and no screenshot is taken: the browser draws no frames
        # (see browser_args), and pages get frame callbacks from timers (page_scripts).
        self._paint_once = config.router is None and config.screenshot is None
        self.statistics = RenderStatistics()

    # ------------------------------------------------------------------------ the browser

    async def _get_browser(self) -> Browser:
        async with self._browser_lock:
            browser = self._browser
            if browser is not None and browser.alive:
                return browser
            if self._failed_starts >= MAX_FAILED_STARTS:
                raise FetchError("browser", f"the browser cannot be started: {self._start_error}")
            self._failed_starts += 1
            try:
                browser = cast(Browser, await self._nursery.start(self._run_browser))
            except OSError as exc:
                self._start_error = str(exc)
                raise FetchError("browser", f"cannot start the browser: {exc}") from exc
            self.statistics.browser_starts += 1
            self._browser = browser
            return browser

    async def _run_browser(self, *, task_status: trio.TaskStatus[Browser]) -> None:
        """Own one browser process: start it, intercept its requests, sample its memory,
        and kill it when the renderer closes or the browser dies."""
        browser_started: Browser | None = None
        try:
            async with trio.open_nursery() as nursery:
                args = resolver_rules(self._guard)
                if self._config.proxy is not None:
                    # The user's proxy connects, on its own network (as for HTTP).
                    args += proxy_args(self._config.proxy)
                else:
                    port = await nursery.start(GuardedSocksProxy(self._guard).serve)
                    args += proxy_args(f"socks5://127.0.0.1:{port}")
                async with open_browser(
                    self._executable,
                    nursery=nursery,
                    user_agent=self._config.user_agent,
                    images=self._config.render_resources,
                    # No handler acts on a tab and no screenshot is taken: see browser_args.
                    paint_once=self._paint_once,
                    extra_args=args,
                ) as browser:
                    browser_started = browser
                    await self._drive(browser, nursery, task_status)
                logger.warning("the browser closed its DevTools connection; restarting it")
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Only OSError (start-up failed) is expected; others are bugs and propagate.
            os_errors, rest = group.split(OSError)
            if rest is not None:
                raise
            assert os_errors is not None
            raise _first_leaf(os_errors) from None
        finally:
            self._forget_tabs_of(browser_started)

    async def _drive(
        self, browser: Browser, nursery: trio.Nursery, task_status: trio.TaskStatus[Browser]
    ) -> None:
        """Intercept the browser's requests and watch its targets until it dies."""
        cdp = browser.cdp
        with (
            cdp.subscribe(["Fetch.requestPaused"]) as paused,
            cdp.subscribe(["Target.targetCrashed", "Target.detachedFromTarget"]) as targets,
            cdp.subscribe(["Target.targetCreated"]) as created,
        ):
            await cdp.call("Fetch.enable", {"patterns": fetch_patterns(self._config)})
            await cdp.call("Target.setDiscoverTargets", {"discover": True})
            # Nothing a page does may write files (a download's body is read in _decide).
            await cdp.call("Browser.setDownloadBehavior", {"behavior": "deny"})
            nursery.start_soon(self._handle_requests, browser, paused)
            nursery.start_soon(self._watch_targets, targets)
            nursery.start_soon(self._close_popups, cdp, created)
            nursery.start_soon(self._sample_memory, browser)
            task_status.started(browser)
            await cdp.wait_closed()

    def _forget_tabs_of(self, browser: Browser | None) -> None:
        """Drop the tabs of a browser that has gone (a new one may be running already)."""
        for tab in [t for t in self._tabs.values() if t.browser is browser]:
            tab.crashed()
            del self._tabs[tab.target_id]
            self._navigations.pop(tab.target_id, None)
        self._idle = [t for t in self._idle if t.browser is not browser]
        if self._browser is browser:
            self.statistics.browser_memory = None

    async def _sample_memory(self, browser: Browser) -> None:
        stats = self.statistics
        while True:
            memory = await trio.to_thread.run_sync(browser.memory)
            stats.browser_memory = memory
            stats.browser_peak_memory = max(memory, stats.browser_peak_memory or 0)
            await trio.sleep(_MEMORY_INTERVAL)

    async def _close_popups(self, cdp: CdpConnection, events: Subscription) -> None:
        """Close every page a page opens (``window.open``, ``target=_blank``): pop-ups are
        never rendered, and a page that opens them without end must not fill the browser."""
        try:
            async for event in events:
                info = event.get("targetInfo", {})
                if info.get("type") == "page" and info.get("openerId"):
                    self.statistics.popups_closed += 1
                    with contextlib.suppress(CdpError):
                        await cdp.call("Target.closeTarget", {"targetId": info["targetId"]})
        except CdpError:
            return  # the browser is gone: _run_browser replaces it

    async def _watch_targets(self, events: Subscription) -> None:
        """Mark a tab whose renderer crashed (or whose target went away) unusable, and
        cancel the render in progress there."""
        try:
            async for event in events:
                target_id = event.get("targetId")
                session_id = event.get("sessionId")
                for tab in list(self._tabs.values()):
                    if tab.target_id == target_id or tab.session_id == session_id:
                        logger.info("tab %s: %s", tab.target_id, event["method"])
                        tab.crashed()
        except CdpError:
            return  # the browser is gone: _run_browser replaces it

    # ----------------------------------------------------------------- request handling

    async def _handle_requests(self, browser: Browser, paused: Subscription) -> None:
        async with trio.open_nursery() as nursery:
            try:
                async for event in paused:
                    nursery.start_soon(self._decide, browser.cdp, event)
            except EventOverflow:
                # Requests left paused would hang every page: a fresh browser instead.
                logger.warning("the browser's requests came faster than handled; restarting it")
                browser.kill()
            except CdpError:
                return  # the browser is gone: _run_browser replaces it

    async def _decide(self, cdp: CdpConnection, event: dict[str, Any]) -> None:
        """Let one paused request (or document response) through, or refuse it."""
        request_id = event["requestId"]
        request = event.get("request", {})
        url = str(request.get("url", ""))
        navigation = self._navigations.get(event.get("frameId", ""))
        main_frame = navigation is not None and event.get("resourceType") == "Document"
        try:
            if "responseStatusCode" in event or "responseErrorReason" in event:
                await self._on_document_response(cdp, event, navigation if main_frame else None)
                return
            if event.get("resourceType") in BLOCKED_RESOURCES and not self._config.render_resources:
                await cdp.call(
                    "Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"}
                )
                return
            refusal = await self._refusal(url)
            if refusal is not None:
                if main_frame:
                    assert navigation is not None
                    navigation.blocked = refusal
                logger.debug("refused %s: %s", url, refusal)
                await cdp.call(
                    "Fetch.failRequest",
                    {"requestId": request_id, "errorReason": "AddressUnreachable"},
                )
                return
            params: dict[str, Any] = {"requestId": request_id}
            if self._seed_headers and host_of(url) in self._seed_hosts:
                headers = dict(request.get("headers", {}))
                headers.update(self._seed_headers)
                params["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
            await cdp.call("Fetch.continueRequest", params)
        except CdpError:
            pass  # the page or the browser went away meanwhile: nothing is waiting for it

    async def _on_document_response(
        self, cdp: CdpConnection, event: dict[str, Any], navigation: _Navigation | None
    ) -> None:
        request_id = event["requestId"]
        status = event.get("responseStatusCode")
        if navigation is None or not isinstance(status, int):
            await cdp.call("Fetch.continueRequest", {"requestId": request_id})
            return
        headers = [(h["name"], h["value"]) for h in event.get("responseHeaders", [])]
        url = str(event.get("request", {}).get("url", ""))
        navigation.document = (url, status, headers)
        fields = {k.lower(): v for k, v in headers}
        if 300 <= status < 400:
            navigation.redirects += 1
            if navigation.redirects > self._config.max_redirects:
                await cdp.call(
                    "Fetch.failRequest", {"requestId": request_id, "errorReason": "Aborted"}
                )
                return
            location = fields.get("location")
            refusal = None if location is None else await self._refusal(urljoin(url, location))
            if refusal is not None:  # the record says why, not a proxy's connection error
                navigation.blocked = refusal
                await cdp.call(
                    "Fetch.failRequest",
                    {"requestId": request_id, "errorReason": "AddressUnreachable"},
                )
                return
        declared = fields.get("content-length", "")
        cap = self._config.max_bytes
        if declared.isdigit() and int(declared) > cap:
            navigation.too_large = f"Content-Length {declared} is over max_bytes={cap}"
            await cdp.call("Fetch.failRequest", {"requestId": request_id, "errorReason": "Aborted"})
            return
        media = fields.get("content-type", "text/html").split(";")[0].strip().lower()
        attachment = fields.get("content-disposition", "").strip().lower().startswith("attachment")
        if not 300 <= status < 400 and (
            attachment or media not in ("text/html", "application/xhtml+xml", "")
        ):
            # Not a page to render (JSON, XML, PDF, text, a download): the body as sent.
            body = await cdp.call("Fetch.getResponseBody", {"requestId": request_id})
            data = body.get("body", "")
            raw = base64.b64decode(data) if body.get("base64Encoded") else data.encode()
            if len(raw) > cap:
                navigation.too_large = f"body is over max_bytes={cap}"
            else:
                navigation.raw_body = raw
            await cdp.call("Fetch.failRequest", {"requestId": request_id, "errorReason": "Aborted"})
            return
        await cdp.call("Fetch.continueRequest", {"requestId": request_id})

    async def _refusal(self, url: str) -> str | None:
        """Why the guard refuses ``url``'s host (None: allowed)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss"):
            return None  # data:, blob:, about: never reach the network
        host = (parts.hostname or "").lower()
        try:
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        except ValueError:
            return f"bad port in {url!r}"
        # Seeds' origins are exempt by scheme, host and port (ws/wss as http/https).
        origin = origin_text(parts.scheme.replace("ws", "http"), host, port)
        if self._guard.allow_private or origin in self._guard.allowed_origins:
            return None
        now = time.monotonic()
        cached = self._guard_cache.get(origin)
        if cached is not None and cached[0] > now:
            return cached[1]
        refusal = None
        try:
            self._guard.check(origin, await resolve(host, port))
        except OSError:
            pass  # a name that does not resolve: the browser's own lookup fails the same way
        except BlockedAddress as exc:
            refusal = str(exc)
        if len(self._guard_cache) >= _GUARD_CACHE_SIZE:
            self._guard_cache.clear()
        self._guard_cache[origin] = (now + _GUARD_TTL, refusal)
        return refusal

    # ----------------------------------------------------------------------------- tabs

    async def _open_tab(self, browser: Browser) -> _Tab:
        cdp = browser.cdp
        context_id = (await cdp.call("Target.createBrowserContext", {"disposeOnDetach": True}))[
            "browserContextId"
        ]
        tab: _Tab | None = None
        try:
            target_id = (
                await cdp.call(
                    "Target.createTarget",
                    {"url": "about:blank", "browserContextId": context_id},
                )
            )["targetId"]
            session_id = (
                await cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
            )["sessionId"]
            tab = _Tab(browser, context_id, target_id, session_id)
            self._tabs[target_id] = tab
            await self._nursery.start(self._dismiss_dialogs, tab)
            await cdp.call("Page.enable", session_id=session_id)
            scripts = page_scripts(
                quiet=self._config.render_wait == "quiet", frames=not self._paint_once
            )
            if scripts:
                await cdp.call(
                    "Page.addScriptToEvaluateOnNewDocument",
                    {"source": scripts},
                    session_id=session_id,
                )
            if self._config.render_wait == "networkidle":
                await cdp.call(
                    "Page.setLifecycleEventsEnabled", {"enabled": True}, session_id=session_id
                )
        except BaseException:
            if tab is not None:
                tab.watcher.cancel()
                self._tabs.pop(tab.target_id, None)
            with trio.CancelScope(shield=True), trio.move_on_after(_STOP_TIMEOUT):
                try:
                    await cdp.call("Target.disposeBrowserContext", {"browserContextId": context_id})
                except CdpError:
                    pass
            raise
        return tab

    async def _dismiss_dialogs(self, tab: _Tab, *, task_status: trio.TaskStatus[None]) -> None:
        """Dismiss every alert, confirm, prompt and beforeunload dialog of a tab: a dialog
        left open blocks the page's scripts, and its load, until the page deadline."""
        cdp = tab.browser.cdp
        with (
            tab.watcher,
            cdp.subscribe(["Page.javascriptDialogOpening"], session_id=tab.session_id) as dialogs,
        ):
            task_status.started()
            try:
                async for _ in dialogs:
                    await cdp.call(
                        "Page.handleJavaScriptDialog",
                        {"accept": False},
                        session_id=tab.session_id,
                    )
            except CdpError:
                return  # the tab or the browser is gone

    async def _close_tab(self, tab: _Tab) -> None:
        tab.watcher.cancel()
        self._tabs.pop(tab.target_id, None)
        self._navigations.pop(tab.target_id, None)
        self.statistics.tabs_replaced += 1
        if not tab.browser.alive:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(_STOP_TIMEOUT) as scope:
            try:
                await tab.browser.cdp.call(
                    "Target.disposeBrowserContext", {"browserContextId": tab.context_id}
                )
            except CdpError:
                pass
        if scope.cancelled_caught:
            # A browser that cannot close a context in 2 s is not well: a fresh one replaces it.
            logger.warning("the browser did not close a tab in time; restarting it")
            tab.browser.kill()

    # ---------------------------------------------------------------------------- fetch

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response:
        """Render ``url`` in a tab and return the rendered document as an HTML response
        (``headers``, a recrawl's validators, are not sent: a browser revalidates on its own).
        A request with another method or a body is not rendered: it goes over HTTP.

        Raises:
            FetchError: as the HTTP fetcher (``connect``, ``timeout``, ``blocked_address``,
                ``too_large``, ...), or ``browser`` when the tab or browser crashed or the
                browser cannot be started.
        """
        async with self.open_page(url) as (response, _):
            return response

    @asynccontextmanager
    async def open_page(
        self,
        url: str,
        setup: BrowserSetup | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[Response, TabActions | None]]:
        """Render ``url`` as :meth:`fetch` does (with ``setup``'s waits and capture, else the
        crawl's; ``headers`` are not sent, as by :meth:`fetch`) and hold its tab until the
        block is left: the response, and the tab's
        actions (None when the page was not rendered: a non-HTML document). Leaving the
        block by an exception (the page deadline's cancellation included) stops the page, or
        replaces the tab, before another page uses it.

        Raises:
            FetchError: as :meth:`fetch` (``render_wait`` too: a wait condition unmet).
        """
        setup = setup or BrowserSetup()
        config = self._config
        waits = PageWaits(
            css=setup.wait_for if setup.wait_for is not None else config.render_wait_for,
            js=setup.wait_js if setup.wait_js is not None else config.render_wait_js,
            delay=setup.delay if setup.delay is not None else config.render_delay,
        )
        async with self._slots:
            browser = await self._get_browser()
            try:
                tab = self._idle.pop() if self._idle else await self._open_tab(browser)
                if tab.browser is not browser or not tab.usable:
                    await self._close_tab(tab)
                    tab = await self._open_tab(browser)
            except CdpError as exc:
                raise FetchError("browser", f"cannot open a tab: {exc}") from exc
            self.statistics.tabs_in_use += 1
            actions: TabActions | None = None
            capture: NetworkCapture | None = None
            try:
                if setup.capture is not None:
                    capture = NetworkCapture(setup)
                    try:
                        await self._nursery.start(capture.run, browser.cdp, tab.session_id)
                    except CdpError as exc:
                        raise FetchError("browser", f"cannot follow the network: {exc}") from exc
                response = await self._render(tab, url, waits)
                self._failed_starts = 0
                self.statistics.rendered += 1
                if response.rendered:
                    actions = TabActions(browser.cdp, tab.session_id, response.final_url, capture)
                try:
                    yield response, actions
                except BaseException:
                    await self._stop_page(tab)
                    raise
                finally:
                    if actions is not None:
                        actions.close()
            finally:
                if capture is not None:
                    capture.stop()
                if capture is not None or (actions is not None and actions.used):
                    # The next page must not run under this one's network settings.
                    with trio.CancelScope(shield=True), trio.move_on_after(_STOP_TIMEOUT):
                        try:
                            await browser.cdp.call("Network.disable", session_id=tab.session_id)
                        except CdpError:
                            tab.usable = False
                self.statistics.tabs_in_use -= 1
                tab.uses += 1
                if tab.usable and tab.browser.alive and tab.uses < self._config.render_tab_pages:
                    self._idle.append(tab)
                else:
                    await self._close_tab(tab)

    async def _render(self, tab: _Tab, url: str, waits: PageWaits) -> Response:
        cdp = tab.browser.cdp
        session = tab.session_id
        navigation = _Navigation()
        navigation.waits = waits
        self._navigations[tab.target_id] = navigation
        try:
            with (
                trio.CancelScope() as tab.scope,
                cdp.subscribe(
                    ["Page.loadEventFired", "Page.lifecycleEvent"], session_id=session
                ) as events,
            ):
                return await self._navigate(cdp, session, tab, navigation, url, events)
            # Only a crash (or the browser's death) cancels tab.scope.
            raise FetchError("browser", "the tab crashed while rendering the page")
        except CdpError as exc:
            if not tab.browser.alive:
                raise FetchError("browser", f"the browser died while rendering: {exc}") from exc
            raise FetchError("network", f"rendering failed: {exc}") from exc
        except trio.Cancelled:
            # The page deadline (or the crawl) ended the render: stop the page, so its tab
            # can be used again; if it cannot be stopped in time the tab is replaced.
            await self._stop_page(tab)
            raise
        finally:
            tab.scope = None
            self._navigations.pop(tab.target_id, None)

    async def _navigate(
        self,
        cdp: CdpConnection,
        session: str,
        tab: _Tab,
        navigation: _Navigation,
        url: str,
        events: Any,
    ) -> Response:
        refusal = await self._refusal(url)
        if refusal is not None:
            raise FetchError("blocked_address", refusal)
        result = await cdp.call("Page.navigate", {"url": url}, session_id=session)
        error_text = result.get("errorText")
        if error_text:
            if navigation.raw_body is not None and navigation.document is not None:
                final_url, status, headers = navigation.document
                return _response(final_url, status, headers, navigation.raw_body, rendered=False)
            raise _navigation_error(url, str(error_text), navigation, self._config.max_redirects)
        idle = False
        loaded = False
        while not loaded:
            event = await events.receive()
            loaded = event["method"] == "Page.loadEventFired"
            idle = idle or _is_network_idle(event, tab.target_id)
        wait_max = self._config.render_wait_max
        snapshot: Any = None
        if self._config.render_wait == "networkidle":
            with trio.move_on_after(wait_max):
                while not idle:
                    idle = _is_network_idle(await events.receive(), tab.target_id)
        else:
            script = quiet_script(int(wait_max * 1000))
            if not navigation.waits:
                # Nothing to wait for after the quiet wait: one evaluate waits and reads.
                script = f"({script}).then(() => {_SNAPSHOT_SCRIPT.strip()})"
            with trio.move_on_after(wait_max + 1):
                snapshot = await _evaluate(cdp, session, script, await_promise=True)
        if navigation.waits:
            await wait_until_done(cdp, session, navigation.waits)
        if not isinstance(snapshot, list):
            snapshot = await _evaluate(cdp, session, _SNAPSHOT_SCRIPT)
        html, final_url, content_type = snapshot
        body = str(html).encode("utf-8", "surrogatepass")
        if len(body) > self._config.max_bytes:
            raise FetchError(
                "too_large", f"rendered HTML is over max_bytes={self._config.max_bytes}"
            )
        if navigation.document is not None:
            _, status, headers = navigation.document
        else:  # served without a network request (a cached or same-document navigation)
            status, headers = 200, []
        headers = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
        media = str(content_type or "text/html")
        headers.append(("content-type", f"{media}; charset=utf-8"))
        return _response(str(final_url or url), status, headers, body, rendered=True)

    async def _stop_page(self, tab: _Tab) -> None:
        cdp = tab.browser.cdp
        with trio.CancelScope(shield=True), trio.move_on_after(_STOP_TIMEOUT) as scope:
            try:
                await cdp.call("Page.stopLoading", session_id=tab.session_id)
                await cdp.call("Page.navigate", {"url": "about:blank"}, session_id=tab.session_id)
                # A renderer busy in a script that never returns (a page's or a handler's
                # ``while (true)``) takes the navigation but answers nothing more: replaced.
                await cdp.call("Runtime.evaluate", {"expression": "1"}, session_id=tab.session_id)
            except CdpError:
                tab.usable = False
        if scope.cancelled_caught:
            tab.usable = False


# Headers that described the server's body, not the serialised DOM that replaces it.
_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding"}
)


#: Literal hosts the browser's own resolver refuses (``--host-resolver-rules``), as a second
#: wall behind the Fetch domain: WebSockets are not paused by the Fetch domain, so without it
#: a script could open one to 127.0.0.1 or 169.254.169.254. IPv6 patterns hold a ":", which
#: no host name can.
_PRIVATE_LITERALS = (
    ["localhost", "*.localhost", "0.*", "10.*", "127.*", "169.254.*", "192.168.*"]
    + [f"172.{n}.*" for n in range(16, 32)]
    + [f"100.{n}.*" for n in range(64, 128)]
    + ["198.18.*", "198.19.*", "::", "::1", "::ffff:*", "fc*:*", "fd*:*", "fe80:*"]
)


def proxy_args(proxy: str) -> list[str]:
    """Switches that send all the browser's connections through ``proxy``, loopback included
    (Chromium bypasses a proxy for loopback unless told otherwise)."""
    server = "socks5://" + proxy[len("socks5h://") :] if proxy.startswith("socks5h://") else proxy
    return [f"--proxy-server={server}", "--proxy-bypass-list=<-loopback>"]


def resolver_rules(guard: AddressGuard) -> list[str]:
    """Browser switches that make its resolver fail for private and loopback literals (and
    ``localhost``) other than the seeds' hosts; none with ``allow_private``."""
    if guard.allow_private:
        return []
    rules = [f"EXCLUDE {host}" for host in sorted(guard.allowed_hosts)]
    rules += [f"MAP {pattern} ~NOTFOUND" for pattern in _PRIVATE_LITERALS]
    rules += [f"MAP [{p}] ~NOTFOUND" for p in _PRIVATE_LITERALS if ":" in p]
    return ["--host-resolver-rules=" + ", ".join(rules)]


def _response(
    url: str, status: int, headers: list[tuple[str, str]], body: bytes, *, rendered: bool
) -> Response:
    http_headers = httpx.Headers(headers)
    response = Response(url, status, http_headers, body, header_fields(http_headers))
    response.rendered = rendered
    return response


async def _evaluate(
    cdp: CdpConnection, session: str, expression: str, *, await_promise: bool = False
) -> Any:
    result = await cdp.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        session_id=session,
    )
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        text = details.get("exception", {}).get("description") or details.get("text")
        raise CdpError("Runtime.evaluate", 0, f"script failed: {text}")
    return result.get("result", {}).get("value")


def _is_network_idle(event: dict[str, Any], frame_id: str) -> bool:
    return (
        event["method"] == "Page.lifecycleEvent"
        and event.get("name") == "networkIdle"
        and event.get("frameId") == frame_id
    )


def _navigation_error(
    url: str, error_text: str, navigation: _Navigation, max_redirects: int
) -> FetchError:
    if navigation.blocked is not None:
        return FetchError("blocked_address", navigation.blocked)
    if navigation.too_large is not None:
        return FetchError("too_large", navigation.too_large)
    if navigation.redirects > max_redirects:
        return FetchError("too_many_redirects", f"more than {max_redirects} redirects")
    name = error_text.removeprefix("net::")
    kind = _NET_ERRORS.get(name)
    if kind is None:
        # TLS failures (a bad certificate, no common cipher) are connection failures, as in
        # the HTTP fetcher; anything else broke mid-exchange.
        kind = "connect" if name.startswith(("ERR_CERT_", "ERR_SSL_")) else "network"
    return FetchError(kind, f"{error_text} loading {url}")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_renderer(
    config: CrawlConfig, *, seed_hosts: Iterable[str] = (), seed_origins: Iterable[str] = ()
) -> AsyncIterator[Renderer]:
    """A :class:`Renderer` for ``config``; the browser starts with the first page rendered
    and is stopped (its whole process group killed) when the block is left.

    Raises:
        ConfigError: no browser is installed, or ``config.browser`` is not an executable
            (raised here, before anything runs).
    """
    executable = find_browser(config.browser)
    seed_hosts = frozenset(seed_hosts)
    guard = AddressGuard(exempt_origins(seed_origins), allow_private=config.allow_private)
    async with trio.open_nursery() as nursery:
        renderer = Renderer(
            config, nursery, executable=executable, seed_hosts=seed_hosts, guard=guard
        )
        try:
            yield renderer
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_page_fetcher(
    config: CrawlConfig,
    http: Fetcher,
    *,
    seed_hosts: Iterable[str] = (),
    seed_origins: Iterable[str] = (),
) -> AsyncIterator[tuple[Fetcher, Renderer | None]]:
    """The fetcher for pages under ``config`` and the renderer behind it: ``http`` itself
    (no renderer) unless ``config.rendering`` is ``always`` (the renderer) or ``auto`` (an
    :class:`AutoFetcher`). Wherever a page pipeline runs, this is how it gets its fetcher.

    Raises:
        ConfigError: rendering is on and no browser is installed.
    """
    if config.rendering == "off":
        yield http, None
        return
    async with open_renderer(config, seed_hosts=seed_hosts, seed_origins=seed_origins) as renderer:
        if config.rendering == "always":
            yield renderer, renderer
        else:
            from .auto import AutoFetcher

            yield AutoFetcher(http, renderer, config), renderer
