"""A sitemap crawl from Python: read the demo site's sitemap index, fetch exactly the pages it
lists (``depth=0``: no link following), and print each with its ``<lastmod>``.

The same from the shell::

    trio-scrape run --sitemap http://127.0.0.1:8765/sitemap.xml -o pages.jsonl

    python examples/sitemap_crawl.py http://127.0.0.1:8765/sitemap.xml

with the demo site served there (in another terminal, from the repository's root)::

    python3 -m http.server 8765 --bind 127.0.0.1 --directory examples/site
"""

from __future__ import annotations

import sys

import trio

from trio_scrape import CrawlConfig, Page, open_crawl


async def main(sitemap: str) -> list[Page]:
    config = CrawlConfig(sitemaps=(sitemap,), depth=0, workers=4, deadline=60)
    articles = []
    async with open_crawl([], config) as pages:
        async for page in pages:
            if "sitemap" in page.data:  # the sitemap files themselves have records too
                print(f"sitemap {page.url}: {page.data['sitemap']}", file=sys.stderr)
                continue
            articles.append(page)
            print(f"{page.data.get('lastmod', '?'):<12} {page.status} {page.title}")
    return articles


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765/sitemap.xml")
