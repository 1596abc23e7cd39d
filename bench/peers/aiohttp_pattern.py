"""Peer: the classic asyncio crawler: aiohttp + Queue + Semaphore + queue.join().

c worker tasks take URLs from an unbounded asyncio.Queue, fetch under a Semaphore(c) with one
aiohttp ClientSession (TCPConnector(limit=c)), parse with selectolax, and put new same-host
links back; queue.join() ends the crawl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
from selectolax.lexbor import LexborHTMLParser


async def main(start: str, concurrency: int, out: str) -> None:
    host = urlsplit(start).netloc
    queue: asyncio.Queue[str] = asyncio.Queue()
    seen = {start}
    limit = asyncio.Semaphore(concurrency)
    queue.put_nowait(start)
    file = open(out, "w")  # noqa: SIM115

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            url = await queue.get()
            try:
                async with limit, session.get(url) as response:
                    html = await response.text()
                tree = LexborHTMLParser(html)
                node = tree.css_first("title")
                title = node.text(strip=True) if node else None
                links = list(
                    dict.fromkeys(
                        urldefrag(urljoin(url, a.attributes["href"]))[0]
                        for a in tree.css("a[href]")
                        if not a.attributes["href"].startswith(("mailto:", "#", "javascript:"))
                    )
                )
                file.write(json.dumps({"url": url, "title": title, "links": links}) + "\n")
                for link in links:
                    if link not in seen and urlsplit(link).netloc == host:
                        seen.add(link)
                        queue.put_nowait(link)
            except aiohttp.ClientError:
                pass
            finally:
                queue.task_done()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await queue.join()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    file.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("start")
    parser.add_argument("-c", type=int, default=16)
    parser.add_argument("-o", default="/tmp/out_aiohttp.jsonl")
    args = parser.parse_args()
    asyncio.run(main(args.start, args.c, args.o))
