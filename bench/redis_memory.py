"""Redis memory per URL for a shared crawl (``--frontier``), measured at 1,000,000 URLs.

Starts a throwaway redis-server on 127.0.0.1 (no persistence), adds URLs to a Redis frontier
in pages of 100 links (as a crawl would), and prints ``INFO memory``'s ``used_memory`` per
URL: with every URL queued, then with every URL handed out and completed (no records: the
seen-set and the per-host state alone), and ``MEMORY USAGE`` of one seen-set bucket. Each
completed page also stores its recrawl memo (``PageMemo``: status, ETag, Last-Modified,
SHA-256 and ``--memo-links`` links of about 60 characters), as every crawl with a Redis
frontier does; their share (the ``pages`` hash) is printed apart.

    python bench/redis_memory.py                 # 1,000,000 URLs on 1,000 hosts
    python bench/redis_memory.py --urls 200000 --memo-links 0
    python bench/redis_memory.py --cluster       # the same on a 3-node Redis Cluster
    python bench/redis_memory.py --cluster --shards 3   # one crawl in 3 shards (no memos:
                                                        # a sharded crawl keeps none)
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import coredis
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_cluster import RedisClusterNodes
from trio_scrape import CrawlConfig
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.redis import RedisFrontier
from trio_scrape.frontier.sharded import ShardedRedisFrontier, open_fleet_frontier
from trio_scrape.model.page import PageMemo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def used_memory(ports: list[int]) -> int:
    """``used_memory`` summed over the servers (one, or a cluster's nodes)."""
    total = 0
    for port in ports:
        async with coredis.Redis(port=port) as node:
            total += int((await node.info("memory"))["used_memory"])
    return total


async def memory_usage(frontier: RedisFrontier, key: str) -> int:
    return int(
        await frontier._command("MEMORY", "USAGE", frontier._prefix + key, "SAMPLES", 0) or 0
    )


async def measure(url: str, ports: list[int], urls: int, hosts: int, memo_links: int) -> None:
    config = CrawlConfig(per_host=10_000, robots=False, workers=64)
    limiter = HostLimiter(config)
    async with open_fleet_frontier(url, config, settings={}, crawl_id="memory") as frontier:
        shards = frontier.shards if isinstance(frontier, ShardedRedisFrontier) else [frontier]

        base = await used_memory(ports)
        started = time.perf_counter()
        per_page = 100
        for page in range(urls // per_page):
            host = page % hosts
            links = [
                f"https://host{host}.example/section/{page}/item-{i}.html" for i in range(per_page)
            ]
            await frontier.add(links, depth=1, referrer=f"https://host{host}.example/")
        added = time.perf_counter() - started
        queued = await used_memory(ports) - base
        print(f"{urls:,} URLs queued in {added:.1f}s: {queued / urls:.1f} bytes/URL in Redis")
        bucket = await memory_usage(shards[0], "s:0000")
        print(f"one seen-set bucket (of 65,536 per shard, {len(shards)} shard(s)): {bucket} bytes")
        started = time.perf_counter()
        done = 0
        while True:
            batch = []
            for _ in range(64):
                request = await frontier.get(limiter)
                if request is None:
                    break
                batch.append(request)
                links = tuple(f"{request.url[:-5]}/link-{i}.html" for i in range(memo_links))
                etag, modified = '"5f3a-1a2b3c4d"', "Sun, 29 Nov 2026 10:00:00 GMT"
                if isinstance(frontier, RedisFrontier):  # a sharded crawl keeps no memos
                    memo = PageMemo(200, etag, modified, "ab" * 32, links)
                    frontier.remember(request, memo)
                if frontier.statistics().queued == 0:
                    break  # get() would wait for these leases to end
            if not batch:
                break
            await frontier.done(batch)
            done += len(batch)
        took = time.perf_counter() - started
        after = await used_memory(ports) - base
        print(f"{done:,} leased and completed in {took:.1f}s ({done / took:,.0f}/s)")
        memos = sum([await memory_usage(shard, "pages") for shard in shards])
        print(f"after the crawl: {after / urls:.1f} bytes/URL in all")
        print(f"  recrawl memos with {memo_links} links each: {memos / urls:.1f} bytes/URL")
        print(f"  seen-set and host state: {(after - memos) / urls:.1f} bytes/URL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--memo-links", type=int, default=10)
    parser.add_argument(
        "--cluster", action="store_true", help="on a 3-node Redis Cluster (summed over nodes)"
    )
    parser.add_argument("--shards", type=int, default=1, help="with --cluster: the crawl's shards")
    args = parser.parse_args()
    if args.cluster:
        with tempfile.TemporaryDirectory() as directory:
            nodes = RedisClusterNodes(Path(directory), aof=False)
            url = nodes.url + (f"?shards={args.shards}" if args.shards > 1 else "")
            try:
                trio.run(measure, url, nodes.ports, args.urls, args.hosts, args.memo_links)
            finally:
                nodes.stop()
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            url = f"redis://127.0.0.1:{port}/0"
            trio.run(measure, url, [port], args.urls, args.hosts, args.memo_links)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
