"""What driving the browser costs per page: rendered pages with nothing more, with a handler
holding the tab, with a handler's script, with ``--screenshot``, with a capture pattern.

Generates bench/render_soak.py's site of N script-built pages (default 300), serves it on
127.0.0.1 (nginx when installed, as bench/run.py does), and crawls the N URLs as seeds (depth
0) once per variant, the variants alternated ``--rounds`` times in one run so that they share
the machine's load. Prints pages/s for each round and the median, and the screenshots' mean
size. Not a test; loopback only.

    python bench/render_actions.py --pages 300 --tabs 4 --rounds 2
"""

from __future__ import annotations

import argparse
import math
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import render_soak  # noqa: E402
import run as bench_run  # noqa: E402

import trio_scrape  # noqa: E402
from trio_scrape import Context, Router  # noqa: E402


def free_port() -> int:
    """A port nothing listens on now (a fixed one may still be held by an earlier run's
    nginx, which then answers instead of this run's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _router(action: Callable[[Context], Any] | None = None, **route: Any) -> Router:
    router = Router()

    @router.handler(None, **route)
    async def handle(ctx: Context) -> None:
        if action is not None:
            await action(ctx)
        ctx.push({"title": ctx.page.title})

    return router


async def _title(ctx: Context) -> None:
    assert ctx.browser is not None
    await ctx.browser.evaluate("document.title")
    await ctx.browser.click("h1")


def variants(shots: Path) -> dict[str, dict[str, Any]]:
    return {
        "render": {},
        "render + handler (tab held)": {"router": _router()},
        "render + handler: evaluate, click": {"router": _router(_title)},
        "render + --screenshot": {"screenshot": str(shots)},
        "render + handler with capture": {"router": _router(capture=r"/api/")},
    }


async def crawl(
    urls: list[str], tabs: int, options: dict[str, Any]
) -> tuple[float, int, int, dict[str, int]]:
    config = trio_scrape.CrawlConfig(
        render=True, render_tabs=tabs, robots=False, timeout=30, processes=1, **options
    )
    send, receive = trio.open_memory_channel[trio_scrape.Page](64)
    crawler = trio_scrape.Crawler(urls, config, sink=send)
    ok = 0
    errors: dict[str, int] = {}
    began = time.monotonic()
    async with trio.open_nursery() as nursery:

        async def drain() -> None:
            nonlocal ok
            async with receive:
                async for page in receive:
                    ok += page.ok
                    if page.error is not None:
                        key = f"{page.error.kind}: {page.error.message[:60]}"
                        errors[key] = errors.get(key, 0) + 1

        nursery.start_soon(drain)
        stats = await crawler.run()
    return time.monotonic() - began, stats.pages, ok, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--tabs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", help="run only the variants whose name holds this")
    args = parser.parse_args()
    port = bench_run.PORT = free_port()
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="trio-scrape-render-actions-") as workdir:
        Path(workdir).chmod(0o755)  # nginx's worker runs as another user: let it read
        root = Path(workdir) / "www"
        render_soak.generate(root, args.pages)
        shots = Path(workdir) / "shots"
        server = bench_run.start_server(root, Path(workdir))
        try:
            urls = [f"http://127.0.0.1:{port}/p{i}.html" for i in range(args.pages)]
            for round_ in range(args.rounds):
                for name, options in variants(shots).items():
                    if args.only is not None and args.only not in name:
                        continue
                    wall, pages, ok, errors = trio.run(crawl, urls, args.tabs, options)
                    rates.setdefault(name, []).append(pages / wall)
                    print(f"round {round_ + 1}: {name}: {pages} pages ({ok} ok) in {wall:.1f} s")
                    for error, count in errors.items():
                        print(f"  {count} x {error}")
            sizes = [p.stat().st_size for p in shots.glob("*.png")]
        finally:
            server.terminate()
            server.wait()
    print(f"pages/s ({args.pages} pages, {args.tabs} tabs, median of {args.rounds} rounds):")
    base = statistics.median(rates.get("render", [math.nan]))
    for name, values in rates.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:36} {median:6.1f}  ({shown}; {median / base:.2f}x plain render)")
    if sizes:
        print(f"screenshots: {len(sizes)} files, mean {statistics.mean(sizes) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
