"""A crawl of a synthetic link graph straight through the SQLite frontier, with a window small
enough that most of the queue is on disk. test_state.py runs it in a subprocess and kills it.

Each "page" i links to the next ``FANOUT`` pages of a tree of ``PAGES`` pages, to page 0 and
to its parent, so most links are already seen. Records are lines appended to the output, and
the output's length is committed with the done marks, as the crawler's file sink does: on
resume the output is cut back to the committed length. Each record also goes to stdout, so
that the test sees the progress.

    python -m tests.state_crawl STATE OUTPUT WINDOW
"""

from __future__ import annotations

import os
import sys

import trio
import trio.lowlevel

from trio_scrape import CrawlConfig
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sqlite import open_sqlite_frontier
from trio_scrape.model.urls import origin_of

PAGES = 4000
FANOUT = 5


def url(page: int) -> str:
    return f"http://x.test/{page}"


def links(page: int) -> list[str]:
    children = range(page * FANOUT + 1, min(page * FANOUT + FANOUT + 1, PAGES))
    return [url(child) for child in children] + [url(0), url(page // 2)]


async def crawl(state: str, output: str, window: int) -> None:
    hosts = HostLimiter(CrawlConfig(per_host=1000, robots=False))
    settings = {"pages": PAGES}
    async with open_sqlite_frontier(state, settings=settings, window=window) as frontier:
        size = frontier.resume.output_offset or 0
        fd = os.open(output, os.O_WRONLY | os.O_CREAT, 0o644)
        os.ftruncate(fd, size)
        os.lseek(fd, size, os.SEEK_SET)
        if frontier.resume.is_new:
            await frontier.add([url(0)], depth=0, referrer=None)

        async def worker() -> None:
            nonlocal size
            while (request := await frontier.get(hosts)) is not None:
                page = int(request.url.rsplit("/", 1)[1])
                await trio.lowlevel.checkpoint()  # let the workers interleave
                await frontier.add(links(page), depth=request.depth + 1, referrer=request.url)
                line = f"{request.url}\n".encode()
                size += os.write(fd, line)
                os.write(1, line)  # progress, for the test that kills us
                hosts.finish(origin_of(request.url), latency=None, failed=False)
                await frontier.done([request], output_offset=size)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(worker)
        os.close(fd)


if __name__ == "__main__":
    trio.run(crawl, sys.argv[1], sys.argv[2], int(sys.argv[3]))
