"""Soak benchmark for rendering: a long crawl of JavaScript-built pages in headless Chromium.

Generates a site of N pages (default 2,000) whose titles and links exist only once their
script has run (title set at once, three child links inserted synchronously, one more after a
20 ms timer), serves it on 127.0.0.1 (nginx when installed, as bench/run.py does), then:

1. crawls it with ``--render`` from the home page, following the script-built links, and
   samples every few seconds the pages done and the browser's total PSS (all its processes);
2. fetches the same N URLs over HTTP (given as seeds: over HTTP the pages have no links), for
   the ratio of the two on the same machine in the same run.

It prints pages/s, the PSS samples, and the mean PSS of the first and last quarter of the
crawl: flat memory means those two are close. Not a test; loopback only.

    python bench/render_soak.py --pages 2000 --tabs 4
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench_run  # noqa: E402

import trio_scrape  # noqa: E402

PORT = 8093  # not bench/run.py's port: the two may run at once on a shared machine


def page_html(i: int, pages: int) -> str:
    children = [c for c in (3 * i + 1, 3 * i + 2, 3 * i + 3) if c < pages]
    later = (i + 1) % pages
    links = "".join(
        f"{{const a=document.createElement('a');a.href='/p{c}.html';a.textContent='page {c}';"
        f"document.getElementById('nav').append(a);}}"
        for c in children
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>loading</title></head>"
        '<body><div id="app">loading...</div><nav id="nav"></nav><script>'
        f"document.title='Page {i}';"
        f"document.getElementById('app').innerHTML='<h1>Page {i}</h1><p>'"
        f"+'Rendered text for page {i}. '.repeat(40)+'</p>';"
        f"{links}"
        f"setTimeout(()=>{{const a=document.createElement('a');a.href='/p{later}.html';"
        "document.getElementById('nav').append(a);},20);"
        "</script></body></html>"
    )


def generate(root: Path, pages: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(pages):
        (root / f"p{i}.html").write_text(page_html(i, pages))
    (root / "index.html").write_text(page_html(0, pages))


async def render_crawl(
    start: str, pages: int, tabs: int, interval: float
) -> tuple[float, list[tuple[float, int, int | None]], trio_scrape.CrawlStatistics, int]:
    config = trio_scrape.CrawlConfig(
        render=True,
        render_tabs=tabs,
        depth=1_000_000,
        max_pages=pages,
        robots=False,
        timeout=30,
    )
    samples: list[tuple[float, int, int | None]] = []
    titled = 0
    send, receive = trio.open_memory_channel[trio_scrape.Page](64)
    crawler = trio_scrape.Crawler([start], config, sink=send)
    began = time.monotonic()
    async with trio.open_nursery() as nursery:

        async def sample() -> None:
            while True:
                stats = crawler.statistics()
                samples.append((time.monotonic() - began, stats.pages, stats.browser_memory))
                await trio.sleep(interval)

        async def drain() -> None:
            nonlocal titled
            async with receive:
                async for page in receive:
                    titled += page.title is not None and page.title.startswith("Page ")

        nursery.start_soon(sample)
        nursery.start_soon(drain)
        stats = await crawler.run()
        nursery.cancel_scope.cancel()
    return time.monotonic() - began, samples, stats, titled


async def http_crawl(urls: list[str]) -> tuple[float, trio_scrape.CrawlStatistics]:
    config = trio_scrape.CrawlConfig(robots=False, timeout=30)
    send, receive = trio.open_memory_channel[trio_scrape.Page](64)
    crawler = trio_scrape.Crawler(urls, config, sink=send)
    began = time.monotonic()
    async with trio.open_nursery() as nursery:

        async def drain() -> None:
            async with receive:
                async for _ in receive:
                    pass

        nursery.start_soon(drain)
        stats = await crawler.run()
    return time.monotonic() - began, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--tabs", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    bench_run.PORT = PORT
    with tempfile.TemporaryDirectory(prefix="trio-scrape-render-soak-") as workdir:
        Path(workdir).chmod(0o755)  # nginx's worker runs as another user: let it read
        root = Path(workdir) / "www"
        generate(root, args.pages)
        server = bench_run.start_server(root, Path(workdir))
        try:
            base = f"http://127.0.0.1:{PORT}"
            wall, samples, stats, titled = trio.run(
                render_crawl, f"{base}/index.html", args.pages, args.tabs, args.interval
            )
            urls = [f"{base}/p{i}.html" for i in range(args.pages)]
            http_wall, http_stats = trio.run(http_crawl, urls)
        finally:
            server.terminate()
            server.wait()
    print(f"rendered crawl: {stats.pages} pages ({stats.ok} ok, {titled} with their JS title,")
    print(f"  errors {dict(stats.errors)}, retries {stats.retries}) in {wall:.1f} s:")
    print(f"  {stats.pages / wall:.1f} pages/s with {args.tabs} tabs")
    http_rate = http_stats.pages / http_wall
    print(f"HTTP, same {http_stats.pages} URLs as seeds: {http_rate:.0f} pages/s")
    print(f"  (rendering costs {http_stats.pages / http_wall / (stats.pages / wall):.0f}x)")
    print("samples: seconds, pages done, browser PSS MB")
    for at, done, memory in samples:
        shown = "-" if memory is None else f"{memory / 1e6:.0f}"
        print(f"  {at:7.1f} {done:6d} {shown:>6}")
    measured = [m for _, _, m in samples if m is not None]
    if len(measured) >= 4:
        quarter = len(measured) // 4
        first = statistics.mean(measured[:quarter]) / 1e6
        last = statistics.mean(measured[-quarter:]) / 1e6
        print(f"browser PSS: first quarter {first:.0f} MB, last quarter {last:.0f} MB, ", end="")
        print(f"peak {max(measured) / 1e6:.0f} MB")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"crawler process peak RSS: {own:.0f} MB")


if __name__ == "__main__":
    main()
