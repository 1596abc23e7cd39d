"""Is ``--depth N`` exact on a real documentation tree? (issue #12, item 1)

Serves a directory of HTML (e.g. rustdoc's ``std`` docs, whose redirect stubs are meta
refreshes) on a free loopback port, crawls it once without a depth limit to learn the link
graph (``links`` on, the follow rules of a normal crawl), computes every page's shortest
distance from the seed (a link is one hop, a meta refresh with no delay none), then crawls with
``depth=N`` a few times and compares the pages crawled with those within N hops.

    python bench/depth_exact.py DIR [--seed PATH] [--include REGEX] [--depth 2 3] [--runs 3]

Prints, per depth and run: pages expected, crawled, missing, extra, revisits, seconds.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import time
from pathlib import Path

import trio

from trio_scrape import CrawlConfig, Crawler, Page
from trio_scrape.cli.demo import serve_directory


async def crawl(seed: str, config: CrawlConfig) -> tuple[list[Page], float, int]:
    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler([seed], config, sink=send)
    started = time.perf_counter()
    stats = await crawler.run()
    pages = [page async for page in receive]
    return pages, time.perf_counter() - started, stats.revisits


def distances(pages: list[Page], seed: str) -> dict[str, int]:
    """0-1 breadth-first search: links cost a hop, a no-delay meta refresh none."""
    edges: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for page in pages:
        edges[page.url] += [(link, 1) for link in page.links]
        refresh = page.data.get("refresh")
        if refresh and refresh["delay"] == 0:
            edges[page.url].append((refresh["url"], 0))
        if page.final_url and page.final_url != page.url:
            edges[page.url].append((page.final_url, 0))
    best = {seed: 0}
    queue = collections.deque([seed])
    while queue:
        url = queue.popleft()
        for link, cost in edges.get(url, ()):
            distance = best[url] + cost
            if distance < best.get(link, math.inf):
                best[link] = distance
                (queue.appendleft if cost == 0 else queue.append)(link)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--seed", default="/index.html")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--depth", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    async with trio.open_nursery() as nursery:
        base = await nursery.start(functools.partial(serve_directory, args.directory))
        seed = base + args.seed
        common = dict(robots=False, include=tuple(args.include), workers=args.workers)
        full, seconds, _ = await crawl(seed, CrawlConfig(depth=10_000, links=True, **common))
        crawled = {page.url for page in full}
        hops = distances(full, seed)
        print(f"full crawl: {len(full)} pages in {seconds:.1f}s; seed {seed}")
        for depth in args.depth:
            # Pages within N hops, among those a crawl records (not out-of-scope links).
            within = {url for url, d in hops.items() if d <= depth and url in crawled}
            for run in range(args.runs):
                pages, seconds, revisits = await crawl(seed, CrawlConfig(depth=depth, **common))
                got = {page.url for page in pages}
                print(
                    f"depth {depth} run {run + 1}: expected {len(within)}, crawled {len(got)},"
                    f" missing {len(within - got)}, extra {len(got - within)},"
                    f" revisits {revisits}, {seconds:.1f}s"
                )
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
