"""What a handler of a rendered page may ask of the browser: the route's browser settings
(waits, network capture) and the tab it holds while it runs (:class:`BrowserTab`).

The tab itself is the renderer's (``trio_scrape.render.actions``); this module is the
contract the scraper layer sees, so that handlers are typed without importing the browser.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..model.config import css_problem

__all__ = [
    "DEFAULT_CAPTURE_BYTES",
    "DEFAULT_CAPTURE_COUNT",
    "BrowserSetup",
    "BrowserTab",
    "CapturedResponse",
]

#: Answers one page's capture keeps at most.
DEFAULT_CAPTURE_COUNT = 100
#: Bytes of answers one page's capture keeps at most (bodies as the server sent them, decoded).
DEFAULT_CAPTURE_BYTES = 10 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class BrowserSetup:
    """A route's browser settings, for its rendered pages (None: the crawl's own).

    Args:
        wait_for: a CSS selector the page must match before it is done (``render_wait``
            error when it does not by the page deadline).
        wait_js: a JavaScript expression that must be truthy before the page is done.
        delay: seconds more to wait after those.
        capture: a regular expression: the answers to the page's own XHR/``fetch`` requests
            whose URL it matches (``re.search``) are kept, for :meth:`BrowserTab.captured`.
        capture_max: answers kept at most (the record says ``data.capture_capped`` past it).
        capture_max_bytes: bytes of answers kept at most (likewise).

    Raises:
        ValueError: a selector, expression or pattern that cannot be used.
    """

    wait_for: str | None = None
    wait_js: str | None = None
    delay: float | None = None
    capture: str | None = None
    capture_max: int = DEFAULT_CAPTURE_COUNT
    capture_max_bytes: int = DEFAULT_CAPTURE_BYTES

    def __post_init__(self) -> None:
        if self.wait_for is not None:
            problem = css_problem(self.wait_for) if isinstance(self.wait_for, str) else "not text"
            if problem is not None:
                raise ValueError(f"render_wait_for: {problem}")
        if self.wait_js is not None and (not isinstance(self.wait_js, str) or not self.wait_js):
            raise ValueError("render_wait_js: must be a JavaScript expression")
        if self.delay is not None and not (
            isinstance(self.delay, int | float) and 0 <= self.delay <= 60
        ):
            raise ValueError("render_delay: must be 0 to 60 seconds")
        if self.capture is not None:
            try:
                re.compile(self.capture)
            except (re.error, TypeError) as exc:
                raise ValueError(f"capture: not a regular expression: {exc}") from None
        if not isinstance(self.capture_max, int) or not 1 <= self.capture_max <= 10_000:
            raise ValueError("capture_max: must be 1 to 10,000")
        if not isinstance(self.capture_max_bytes, int) or not 1 <= self.capture_max_bytes <= (
            1 << 30
        ):
            raise ValueError("capture_max_bytes: must be 1 byte to 1 GiB")

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.wait_for, self.wait_js, self.delay, self.capture))


@dataclasses.dataclass(frozen=True, slots=True)
class CapturedResponse:
    """One answer to a page's own XHR or ``fetch`` request, as the browser received it."""

    url: str
    status: int
    mime_type: str
    body: bytes

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON.
        """
        return orjson.loads(self.body)


class BrowserTab(Protocol):
    """The tab a rendered page's handler holds while it runs (``ctx.browser``).

    Every call runs inside the page's deadline: cancelled with the page, after which the tab
    is stopped (or replaced) before another page uses it. A call that fails raises
    :class:`~trio_scrape.BrowserActionError`; uncaught, it is the page's ``extract`` error.
    After actions that change the page, :meth:`~trio_scrape.Context.refresh` makes the
    context's selectors read the new DOM.
    """

    @property
    def url(self) -> str:
        """The URL the tab shows now."""
        ...

    async def click(self, selector: str) -> None:
        """Click the first element ``selector`` matches (scrolled into view; a real mouse
        press and release at its centre)."""
        ...

    async def fill(self, selector: str, text: str) -> None:
        """Replace the value of the input or textarea ``selector`` matches with ``text``, as
        typed (``input`` and ``change`` events fire)."""
        ...

    async def select(self, selector: str, value: str) -> None:
        """Choose the option whose value is ``value`` in the ``<select>`` ``selector``
        matches (``input`` and ``change`` events fire)."""
        ...

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (a promise is awaited)."""
        ...

    async def wait_for(self, selector: str, *, timeout: float | None = None) -> None:
        """Wait until ``selector`` matches (``timeout`` seconds at most; None: the page
        deadline bounds it)."""
        ...

    async def scroll_to_end(
        self, *, max_scrolls: int = 100, timeout: float | None = None, idle: float = 0.5
    ) -> int:
        """Scroll to the bottom again and again, as infinite-scroll pages want, until no new
        content appears (the page's height and element count unchanged ``idle`` seconds after
        a scroll, with no request of the page in flight), ``max_scrolls`` scrolls, or
        ``timeout`` seconds; returns the scrolls made."""
        ...

    async def content(self) -> str:
        """The document's HTML now."""
        ...

    async def captured(self) -> list[CapturedResponse]:
        """The answers kept by the route's ``capture`` so far, in the order they finished
        (waiting for the matching ones still in flight)."""
        ...

    async def screenshot(self, path: str | Path | None = None) -> bytes:
        """A full-page PNG (capped in height and bytes as ``--screenshot``'s); written to
        ``path`` too when given (whole or not at all: a temporary name, then renamed)."""
        ...

    async def pdf(self, path: str | Path | None = None) -> bytes:
        """The page printed to PDF; written to ``path`` too when given (as
        :meth:`screenshot`)."""
        ...
