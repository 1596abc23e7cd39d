"""trio-scrape as one more task in an existing Trio program.

The crawl runs in the program's own nursery beside a task that consumes its pages through
a channel and another that reports progress from ``crawler.statistics()``. Cancelling the
nursery would stop all three cleanly; here the crawl ends by itself, the consumer ends when
the crawl closes its channel, and the reporter is cancelled once the crawl is over.

    python examples/in_program.py http://127.0.0.1:8765/

with the demo site served there (in another terminal, from the repository's root)::

    python3 -m http.server 8765 --bind 127.0.0.1 --directory examples/site
"""

from __future__ import annotations

import sys

import trio

from trio_scrape import CrawlConfig, Crawler, CrawlStatistics, Page


async def consume(pages: trio.MemoryReceiveChannel[Page], titles: list[str]) -> None:
    async with pages:
        async for page in pages:  # ends when the crawl closes the channel
            titles.append(page.title or page.url)
            print(f"{page.status} {page.url} {page.title!r}")


async def report(crawler: Crawler, every: float) -> None:
    while True:
        await trio.sleep(every)
        stats = crawler.statistics()
        print(
            f"... {stats.pages} pages, {stats.in_flight} in flight, {stats.queued} queued",
            file=sys.stderr,
        )


async def main(seed: str, *, every: float = 0.5) -> tuple[list[str], CrawlStatistics]:
    send, receive = trio.open_memory_channel[Page](0)
    crawler = Crawler([seed], CrawlConfig(depth=2, workers=4, deadline=60), sink=send)
    titles: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume, receive, titles)
        nursery.start_soon(report, crawler, every)
        # Any other task of your program can run in this nursery too.
        stats = await crawler.run()
        # Every page has been received by now (the channel is unbuffered): stop the reporter.
        nursery.cancel_scope.cancel()
    print(f"done: {stats.pages} pages in {stats.elapsed:.2f}s", file=sys.stderr)
    return titles, stats


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765/")
