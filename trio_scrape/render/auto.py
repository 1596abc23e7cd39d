"""``render_auto``: fetch pages over HTTP and render in the browser only those that need it."""

from __future__ import annotations

from collections.abc import Mapping

from ..http.fetcher import Fetcher, Response
from ..model.config import CrawlConfig
from .renderer import Renderer

__all__ = ["AUTO_MIN_LINKS", "AUTO_MIN_TEXT", "AutoFetcher", "needs_rendering"]


class AutoFetcher:
    """:class:`Fetcher` for ``render_auto``: fetch over HTTP, and render only the HTML pages
    that need it (:func:`needs_rendering`, or the ``render_if`` predicate)."""

    def __init__(self, http: Fetcher, renderer: Renderer, config: CrawlConfig) -> None:
        self._http = http
        self._renderer = renderer
        self._predicate = config.render_if

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response:
        response = await self._http.fetch(url, headers=headers, method=method, body=body)
        if method != "GET" or body is not None:
            return response  # a form post or an API query: not rendered
        if not 200 <= response.status < 300:
            return response
        if self._predicate is not None:
            render = self._predicate(response.final_url, response.content)
        else:
            render = needs_rendering(response.fields.get("content-type"), response.content)
        if not render:
            return response
        return await self._renderer.fetch(response.final_url)


#: A page with less visible text than this (characters) and fewer links than
#: :data:`AUTO_MIN_LINKS` is "almost empty" for :func:`needs_rendering`.
AUTO_MIN_TEXT = 200
AUTO_MIN_LINKS = 2


def needs_rendering(content_type: str | None, body: bytes) -> bool:
    """Whether an HTML page fetched over HTTP probably builds its content in JavaScript: it
    has a ``<script>`` and almost nothing else (under 200 characters of visible text and
    fewer than 2 links)."""
    from ..model.parse import is_html  # here: _parse is heavy and only auto mode needs it

    if not is_html(content_type, body) or b"<script" not in body.lower():
        return False
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(body)
    links = len(tree.css("a[href]"))
    if links >= AUTO_MIN_LINKS:
        return False
    for node in tree.css("script, style, noscript, template"):
        node.decompose()
    text = tree.body.text(separator=" ", strip=True) if tree.body is not None else ""
    return len(text) < AUTO_MIN_TEXT
