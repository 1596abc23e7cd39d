"""The scraper benchmark's Scrapy peer (bench/scrape.py runs it): the same items as
bench/scrape_spider.py, the spider written as Scrapy's tutorial writes one (``response.css``,
``yield {...}``, ``response.follow``), a JSON Lines feed, and the settings a benchmark sets:
16 concurrent requests, 8 per host (trio-scrape's default ``--per-host``, and Scrapy's),
robots.txt obeyed (both crawlers' default), no AutoThrottle, no delay, WARNING logs.

    python bench/peers/scrapy_items.py http://127.0.0.1:8091/index.html -o items.jsonl
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess


class ProductsSpider(scrapy.Spider):
    name = "products"
    allowed_domains = ["127.0.0.1"]  # noqa: RUF012  (as the tutorial writes it)

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url

    async def start(self) -> AsyncIterator[scrapy.Request]:
        # Not start_urls: those are dont_filter=True, and the index page would be fetched a
        # second time when a page links it.
        yield scrapy.Request(self.url, callback=self.parse)

    def parse(self, response: Any) -> Iterator[Any]:
        for product in response.css("div.product"):
            yield {
                "sku": product.css("span.sku::text").get(),
                "name": product.css("h2.name::text").get(),
                "price": product.css("span.price::text").get(),
                "rating": int(product.css("span.rating::text").get()),
            }
        for href in response.css("a::attr(href)").getall():
            # response.follow raises ValueError on a mailto: link (trio-scrape's enqueue_links
            # skips hrefs that are not http(s)); off-site links go to allowed_domains.
            if not href.startswith("mailto:"):
                yield response.follow(href, callback=self.parse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.per_host,
            "ROBOTSTXT_OBEY": True,
            "AUTOTHROTTLE_ENABLED": False,
            "DOWNLOAD_DELAY": 0,
            "LOG_LEVEL": "WARNING",
            "TELNETCONSOLE_ENABLED": False,
            "FEEDS": {args.out: {"format": "jsonlines", "overwrite": True}},
        }
    )
    process.crawl(ProductsSpider, url=args.url)
    process.start()


if __name__ == "__main__":
    main()
