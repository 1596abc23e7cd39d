"""Peer: the naive trio + httpx worker pool a Trio user writes first.

Workers read URLs from an unbuffered channel and send (url, title, links) back on an unbounded
one; the main task owns the frontier (deque + seen set) and counts pages in flight to know when
to stop. One shared httpx.AsyncClient; selectolax for HTML; urljoin/urldefrag for links.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
from urllib.parse import urldefrag, urljoin, urlsplit

import httpx
import trio
from selectolax.lexbor import LexborHTMLParser


async def worker(client, jobs, results):
    async with jobs, results:
        async for url in jobs:
            try:
                response = await client.get(url)
                tree = LexborHTMLParser(response.text)
                node = tree.css_first("title")
                title = node.text(strip=True) if node else None
                links = list(
                    dict.fromkeys(
                        urldefrag(urljoin(url, a.attributes["href"]))[0]
                        for a in tree.css("a[href]")
                        if not a.attributes["href"].startswith(("mailto:", "#", "javascript:"))
                    )
                )
            except httpx.HTTPError:
                title, links = None, []
            await results.send((url, title, links))


async def main(start: str, concurrency: int, out: str) -> None:
    host = urlsplit(start).netloc
    jobs_send, jobs_recv = trio.open_memory_channel(0)
    results_send, results_recv = trio.open_memory_channel(math.inf)
    frontier, seen, in_flight = collections.deque([start]), {start}, 0
    limits = httpx.Limits(max_connections=concurrency)
    async with (
        httpx.AsyncClient(limits=limits, timeout=30) as client,
        trio.open_nursery() as nursery,
    ):
        for _ in range(concurrency):
            nursery.start_soon(worker, client, jobs_recv.clone(), results_send.clone())
        jobs_recv.close()
        results_send.close()
        with open(out, "w") as file:
            while frontier or in_flight:
                while frontier and in_flight < concurrency:
                    await jobs_send.send(frontier.popleft())
                    in_flight += 1
                url, title, links = await results_recv.receive()
                in_flight -= 1
                file.write(json.dumps({"url": url, "title": title, "links": links}) + "\n")
                for link in links:
                    if link not in seen and urlsplit(link).netloc == host:
                        seen.add(link)
                        frontier.append(link)
        await jobs_send.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("start")
    parser.add_argument("-c", type=int, default=16)
    parser.add_argument("-o", default="/tmp/out_trio_httpx.jsonl")
    args = parser.parse_args()
    trio.run(main, args.start, args.c, args.o)
