"""A crawler process stopped half-way through a crawl on Redis, and what it leaves: the
block tests/test_redis_faults.py and tests/test_redis_cluster.py kill a Redis under."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import trio

from .test_cli import CLI, cli
from .test_redis import WatchedSite, lines

__all__ = ["crawl_command", "ended", "export", "start_half_way"]


def crawl_command(start: str, frontier: str, crawl_id: str, out: Path) -> list[str]:
    """``trio-scrape run`` of a tree site from ``start`` on ``frontier`` (1 s leases, 4
    workers, no robots.txt), its records to ``out``."""
    return [
        *CLI, "run", start, "--depth", "100", "--no-robots", "-q",
        "--frontier", frontier, "--crawl-id", crawl_id, "--lease", "1", "--workers", "4",
        "-o", str(out),
    ]  # fmt: skip


async def start_half_way(command: list[str], site: WatchedSite, pages: int = 150) -> trio.Process:
    """Start ``command``; return it once ``site`` has answered ``pages`` requests, still
    running (its standard error piped)."""
    crawl = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
    while len(site.log) < pages and crawl.poll() is None:
        with trio.move_on_after(1):  # also notice a process that ended by itself
            await site.hit_event.wait()
    assert crawl.poll() is None, "the crawl was too quick to be stopped half-way"
    return crawl


async def ended(crawl: trio.Process) -> tuple[int, bytes]:
    """The process's exit code and all it wrote to its standard error."""
    assert crawl.stderr is not None
    error = b""
    async with crawl.stderr:
        async for chunk in crawl.stderr:
            error += chunk
    return await crawl.wait(), error


async def export(url: str, name: str, path: Path) -> Counter[str]:
    """``trio-scrape export`` of the crawl: how many records it holds per URL."""
    result = await cli("export", "--frontier", url, "--crawl-id", name, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return Counter(r["url"] for r in lines(path))
