"""Peer: an idiomatic Scrapy spider (response.css, a Request per link, Scrapy's dupefilter).

CONCURRENT_REQUESTS(_PER_DOMAIN) = c, no robots.txt, no AutoThrottle, no delay, output through
FEEDS as JSON lines.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import scrapy
from scrapy.crawler import CrawlerProcess


class BenchSpider(scrapy.Spider):
    name = "bench"

    def __init__(self, start_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url
        self.host = urlsplit(start_url).netloc

    async def start(self):  # Scrapy >= 2.13
        yield scrapy.Request(self.start_url)

    def start_requests(self):  # older Scrapy
        yield scrapy.Request(self.start_url)

    def parse(self, response):
        links = list(
            dict.fromkeys(
                response.urljoin(h).split("#", 1)[0]
                for h in response.css("a::attr(href)").getall()
                if not h.startswith(("mailto:", "#", "javascript:"))
            )
        )
        yield {"url": response.url, "title": response.css("title::text").get(), "links": links}
        for link in links:
            if urlsplit(link).netloc == self.host:
                yield scrapy.Request(link, callback=self.parse)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("start")
    parser.add_argument("-c", type=int, default=16)
    parser.add_argument("-o", default="/tmp/out_scrapy.jsonl")
    args = parser.parse_args()
    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": args.c,
            "CONCURRENT_REQUESTS_PER_DOMAIN": args.c,
            "ROBOTSTXT_OBEY": False,
            "AUTOTHROTTLE_ENABLED": False,
            "DOWNLOAD_DELAY": 0,
            "LOG_LEVEL": "WARNING",
            "FEEDS": {args.o: {"format": "jsonlines", "overwrite": True}},
        }
    )
    process.crawl(BenchSpider, start_url=args.start)
    process.start()
