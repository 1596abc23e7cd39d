"""An extract hook: pull fields out of each page with CSS selectors.

Use it from the shell (run from the repository root so ``examples`` is importable)::

    trio-scrape run http://127.0.0.1:8765/ --depth 2 --extract examples.extract_hook:extract

with the demo site served there (in another terminal, from the repository's root)::

    python3 -m http.server 8765 --bind 127.0.0.1 --directory examples/site

or from Python: ``CrawlConfig(extract=extract)``. The hook gets the :class:`trio_scrape.Page`
(with ``page.html``, a selectolax tree) and returns a dict merged into the record's ``data``.
It may also be ``async``; its awaits run under the page's deadline. If it raises, the record
gets ``error.kind = "extract"`` and the crawl goes on.
"""

from __future__ import annotations

from typing import Any

from trio_scrape import Page


def extract(page: Page) -> dict[str, Any]:
    if page.html is None:  # not HTML
        return {}
    headline = page.html.css_first("h1.headline")
    if headline is None:  # not an article: nothing to add
        return {}
    author = page.html.css_first(".byline .author")
    published = page.html.css_first("time[datetime]")
    return {
        "headline": headline.text(strip=True),
        "author": author.text(strip=True) if author else None,
        "published": published.attributes.get("datetime") if published else None,
        "tags": [node.text(strip=True) for node in page.html.css("a.tag")],
    }
