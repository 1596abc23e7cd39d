"""The TOML spider against the same spider written as Python handlers, paired.

Serves examples/quotes_site.py (as a process, on a free loopback port) and runs
``trio-scrape crawl`` with bench/spiders/quotes_bench.py and bench/spiders/quotes_bench.toml
(the same spider: the listing's quotes and every author page) in turns, after one warm-up;
prints pages/s and CPU ms per page (the crawler's process tree) for each, and the TOML
spider's ratio to the Python one per pair.

    python bench/toml_spider.py                 # 2,000 quotes, 5 rounds
    python bench/toml_spider.py --quotes 500 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPIDERS = {
    "python": ROOT / "bench" / "spiders" / "quotes_bench.py",
    "toml": ROOT / "bench" / "spiders" / "quotes_bench.toml",
}


def crawl(spider: Path, base: str, out: Path) -> dict[str, float]:
    """One crawl: wall seconds, CPU seconds of its process tree, pages and items."""
    records = out.with_suffix(".records.jsonl")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [
            *(sys.executable, "-P", "-m", "trio_scrape", "crawl", str(spider), base + "/", "-q"),
            *("-o", str(out), "--records", str(records), "--no-robots"),
        ],
        check=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    pages = sum(1 for _ in records.open())
    items = sum(1 for _ in out.open())
    return {"wall": wall, "cpu": cpu, "pages": pages, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    site = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "quotes_site.py"), "--quotes", str(args.quotes)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert site.stdout is not None
        base = site.stdout.readline().strip()
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in SPIDERS}
        with tempfile.TemporaryDirectory() as tmp:
            order = list(SPIDERS)
            for round_ in range(args.rounds + 1):  # round 0 warms up
                for name in order if round_ % 2 == 0 else reversed(order):
                    result = crawl(SPIDERS[name], base, Path(tmp) / f"{name}.jsonl")
                    if round_:
                        runs[name].append(result)
        report(runs)
    finally:
        os.kill(site.pid, signal.SIGTERM)
        site.wait(timeout=10)


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    rows = {}
    for name, results in runs.items():
        pages_per_s = [r["pages"] / r["wall"] for r in results]
        cpu_ms = [1000 * r["cpu"] / r["pages"] for r in results]
        rows[name] = pages_per_s
        print(
            f"{name:7} pages {int(results[0]['pages']):5} items {int(results[0]['items']):5}  "
            f"pages/s median {statistics.median(pages_per_s):7.1f} "
            f"({min(pages_per_s):.1f}-{max(pages_per_s):.1f})  "
            f"CPU ms/page median {statistics.median(cpu_ms):.3f}"
        )
    ratios = [t / p for t, p in zip(rows["toml"], rows["python"], strict=True)]
    print(
        f"toml / python pages/s per pair: median {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f}-{max(ratios):.3f})"
    )
    print(json.dumps({"ratios": ratios}))


if __name__ == "__main__":
    main()
