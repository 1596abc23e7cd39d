"""Waiting for a rendered page to be done: a CSS selector that matches, a JavaScript predicate
that becomes truthy, a fixed delay.

These run after the renderer's own wait (quiet DOM or network idle), in this order, each
until the page deadline less :data:`DEADLINE_MARGIN`: a condition still unmet then is a
:class:`~trio_scrape.http.fetcher.FetchError` of kind ``render_wait`` (the page's record says
which condition), never an empty page that claims to be done. The check runs in the page
(a ``MutationObserver`` and a 50 ms poll, awaited by one ``Runtime.evaluate``), so no DevTools
traffic flows while the page works.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
import trio

from ..http.fetcher import FetchError
from .cdp import CdpConnection, CdpError

__all__ = [
    "DEADLINE_MARGIN",
    "PageWaits",
    "ScriptFailed",
    "css_check",
    "poll_until",
    "short",
    "wait_until_done",
]

#: What is kept of the page deadline for serialising the page and writing its record: a
#: condition is given up this long before the deadline (or a tenth of what is left, if less).
DEADLINE_MARGIN = 0.5
#: How long a condition is waited for when no deadline bounds the render (library use).
_NO_DEADLINE_WAIT = 30.0

# Resolves true once `check()` is truthy, false after `ms`; a check that throws rejects.
_POLL_SCRIPT = """
new Promise((resolve, reject) => {
  const check = %s;
  let done = false, busy = false;
  const finish = (value, error) => {
    if (done) return;
    done = true; observer.disconnect(); clearInterval(poll); clearTimeout(cap);
    if (error !== undefined) reject(error); else resolve(value);
  };
  const test = async () => {
    if (done || busy) return;
    busy = true;
    try { if (await check()) finish(true); } catch (error) { finish(false, error); }
    busy = false;
  };
  const observer = new MutationObserver(test);
  observer.observe(document, {subtree: true, childList: true, attributes: true});
  const poll = setInterval(test, 50);
  const cap = setTimeout(() => finish(false), %d);
  test();
})
"""


@dataclasses.dataclass(frozen=True, slots=True)
class PageWaits:
    """The conditions for a rendered page to be done (None / 0: none)."""

    css: str | None = None  #: a CSS selector that must match
    js: str | None = None  #: a JavaScript expression that must be truthy
    delay: float = 0.0  #: seconds more, after the others

    def __bool__(self) -> bool:
        return self.css is not None or self.js is not None or self.delay > 0


def _budget() -> float:
    """Seconds a condition may take: up to the page deadline less the margin."""
    deadline = trio.current_effective_deadline()
    if math.isinf(deadline):
        return _NO_DEADLINE_WAIT
    left = deadline - trio.current_time()
    return max(0.0, left - min(DEADLINE_MARGIN, left / 10))


async def wait_until_done(cdp: CdpConnection, session: str, waits: PageWaits) -> None:
    """Wait for ``waits`` in the tab of ``session``.

    Raises:
        FetchError: kind ``render_wait``: a condition was still unmet near the page deadline,
            the browser refused the CSS selector, or the expression threw.
        CdpError: the tab or the browser went away.
    """
    if waits.css is not None:
        await _poll(
            cdp,
            session,
            css_check(waits.css),
            f"nothing matched the CSS selector {waits.css!r}",
            f"the browser refused the CSS selector {waits.css!r}",
        )
    if waits.js is not None:
        check = f"async () => ({waits.js})"
        unmet = f"the expression {short(waits.js)} stayed false"
        await _poll(cdp, session, check, unmet, f"the expression {short(waits.js)} threw")
    if waits.delay > 0:
        await trio.sleep(waits.delay)


class ScriptFailed(Exception):
    """A check threw in the page (an invalid selector, an expression that throws)."""


async def poll_until(cdp: CdpConnection, session: str, check: str, budget: float) -> bool:
    """Whether the JavaScript function ``check`` (text) returned truthy within ``budget``
    seconds (polled in the page).

    Raises:
        ScriptFailed: ``check`` threw.
        CdpError: the tab or the browser went away, or the page navigated meanwhile.
    """
    script = _POLL_SCRIPT % (check, int(max(budget, 0.0) * 1000))
    result: dict[str, Any] = await cdp.call(
        "Runtime.evaluate",
        {"expression": script, "returnByValue": True, "awaitPromise": True},
        session_id=session,
    )
    details = result.get("exceptionDetails")
    if details is not None:
        text = details.get("exception", {}).get("description") or details.get("text")
        raise ScriptFailed(short(str(text)))
    return result.get("result", {}).get("value") is True


def css_check(selector: str) -> str:
    """The JavaScript function that is true once ``selector`` matches."""
    return f"() => document.querySelector({orjson.dumps(selector).decode()}) !== null"


async def _poll(cdp: CdpConnection, session: str, check: str, unmet: str, failed: str) -> None:
    budget = _budget()
    try:
        met = await poll_until(cdp, session, check, budget)
    except ScriptFailed as exc:
        raise FetchError("render_wait", f"{failed}: {exc}") from None
    except CdpError as exc:
        if "context" in exc.message.lower():  # the page navigated meanwhile
            raise FetchError("render_wait", f"the page navigated while waiting: {unmet}") from exc
        raise
    if not met:
        raise FetchError("render_wait", f"{unmet} within {budget:.1f}s")


def short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
