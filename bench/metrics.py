"""Metrics benchmark: what does ``--metrics`` cost the crawl?

On bench/run.py's generated site, served by nginx as bench/run.py serves it, trio-scrape
crawls three ways in every round (paired runs: a loaded machine slows them alike; the order
reverses every other round), after one warm-up round:

- off: ``trio-scrape run URL --depth 1000 --links --workers 16 --processes 1 -q -o FILE``;
- served: the same with ``--metrics 127.0.0.1:PORT`` and nobody scraping it (the import of
  prometheus-client, the server's thread waiting);
- scraped: the same, scraped by this script every ``--scrape-interval`` seconds (0.2 s by
  default: 75 times Prometheus's default of 15 s) from a thread, for as long as the crawl
  runs; the number of scrapes answered is printed.

Every run's output is checked against the site (each page once, with its title). Prints
pages/s (median wall), CPU ms/page (user+sys of the crawler, child processes included), and
the per-round ratios to "off" (median: the paired figure, robust to load that changes between
rounds).

    python bench/metrics.py                   # 5,000 pages, 5 rounds
    python bench/metrics.py --pages 2000 --rounds 3 --processes 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape_while(url: str, interval: float, stop: threading.Event, answered: list[int]) -> None:
    """Scrape ``url`` every ``interval`` seconds until ``stop``; count the answers."""
    while not stop.wait(interval):
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if b"trio_scrape_pages_total" in reply.read():
                    answered[0] += 1
        except OSError:
            pass  # not serving yet, or already stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--processes", default="1")
    parser.add_argument("--scrape-interval", type=float, default=0.2)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-metrics"
    )
    parser.add_argument("--port", type=int, default=0, help="the site's port (0: a free one)")
    args = parser.parse_args()
    run.PORT = args.port or free_port()

    expected = run.prepare_site(args.site, args.pages, run.PORT)
    start = f"http://127.0.0.1:{run.PORT}/index.html"
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-bench-metrics-"))
    server = run.start_server(args.site / "www", workdir)
    out = str(workdir / "out.jsonl")
    base = [sys.executable, "-P", "-m", "trio_scrape", "run", start, "--depth", "1000", "--links"]
    base += ["--workers", str(args.concurrency), "--processes", args.processes, "-q", "-o", out]
    names = ("off", "served", "scraped")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    checked: dict[str, str] = {}
    scrapes: list[int] = []
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up
            print(f"round {round_}/{args.rounds}", file=sys.stderr)
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                command = list(base)
                stop = threading.Event()
                answered = [0]
                scraper = None
                if name != "off":
                    port = free_port()
                    command += ["--metrics", f"127.0.0.1:{port}"]
                    if name == "scraped":
                        scraper = threading.Thread(
                            target=scrape_while,
                            args=(
                                f"http://127.0.0.1:{port}/metrics",
                                args.scrape_interval,
                                stop,
                                answered,
                            ),
                            daemon=True,
                        )
                        scraper.start()
                wall, cpu, _, code = run.measure(command, run.bytecode_env(workdir))
                stop.set()
                if scraper is not None:
                    scraper.join()
                    if round_:
                        scrapes.append(answered[0])
                checked[name] = run.verify(out, expected) if code == 0 else f"exit {code}"
                if round_:
                    results[name].append((wall, cpu))
    finally:
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{args.pages} pages, concurrency {args.concurrency}, --processes {args.processes}, "
        f"median of {args.rounds} paired rounds after a warm-up round, {os.cpu_count()} CPUs; "
        f"{run.trio_scrape_build()} build; scraped every {args.scrape_interval:g} s "
        f"({statistics.median(scrapes):.0f} scrapes answered a run, median)\n"
    )
    print(
        "| run | pages/s | wall s min-max | CPU ms/page | CPU ms/page min-max | "
        "pages/s vs off (per round: median, min-max) | CPU/page vs off (same) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    off = results["off"]
    for name in names:
        runs = results[name]
        walls = [w for w, _ in runs]
        cpus = [c / args.pages * 1000 for _, c in runs]
        rate = args.pages / statistics.median(walls)
        speed = [o[0] / r[0] for o, r in zip(off, runs, strict=True)]
        cost = [r[1] / o[1] for o, r in zip(off, runs, strict=True)]
        print(
            f"| {name} ({checked[name]}) | {rate:,.0f} | {min(walls):.2f}-{max(walls):.2f} | "
            f"{statistics.median(cpus):.3f} | {min(cpus):.3f}-{max(cpus):.3f} | "
            f"{statistics.median(speed):.3f}x ({min(speed):.2f}-{max(speed):.2f}) | "
            f"{statistics.median(cost):.3f}x ({min(cost):.2f}-{max(cost):.2f}) |"
        )


if __name__ == "__main__":
    main()
