"""What exact ``--depth`` costs on its worst case: a chain of pages each linking the next few.

Writes ``PAGES`` HTML files (page i links pages i+1 .. i+FANOUT and the first page) to a
temporary directory, serves them on a free loopback port, and crawls from the first page
with each depth given: prints pages crawled, pages expected (those within the depth),
revisits and fetches per page.

    python bench/depth_chain.py [--pages 6000] [--fanout 5] [--workers 8] [--depth 1000 10000]
"""

from __future__ import annotations

import argparse
import functools
import math
import tempfile
from pathlib import Path

import trio

from trio_scrape import CrawlConfig, Crawler, Page
from trio_scrape.cli.demo import serve_directory


def write_chain(directory: Path, pages: int, fanout: int) -> None:
    for i in range(pages):
        links = [f"p{j}.html" for j in range(i + 1, min(i + 1 + fanout, pages))] + ["p0.html"]
        anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
        html = f"<!doctype html><title>Page {i}</title><body>{anchors}</body>"
        (directory / f"p{i}.html").write_text(html)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=6000)
    parser.add_argument("--fanout", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--depth", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_chain(directory, args.pages, args.fanout)
        async with trio.open_nursery() as nursery:
            base = await nursery.start(functools.partial(serve_directory, directory))
            for depth in args.depth:
                expected = min(args.pages, depth * args.fanout + 1)  # page i is ceil(i/F) away
                send, receive = trio.open_memory_channel[Page](math.inf)
                config = CrawlConfig(depth=depth, workers=args.workers, robots=False)
                stats = await Crawler([base + "/p0.html"], config, sink=send).run()
                pages = [page async for page in receive]
                fetches = len(pages) + stats.revisits
                print(
                    f"depth {depth}: {len(pages)} pages (expected {expected}),"
                    f" {stats.revisits} revisits, {fetches / len(pages):.2f} fetches per page,"
                    f" {stats.elapsed:.1f}s"
                )
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
