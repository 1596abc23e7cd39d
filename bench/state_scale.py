"""``--state`` at scale: pages fetched in a fixed time with and without ``--state`` on a site
that discovers 1,000,000 URLs within seconds, and the time to the first fetch when resuming
that million-URL state.

The site is bench/million.py's: an index linking 1,000 hubs, each linking 1,000 distinct leaf
URLs (nginx answers every leaf with a tiny page), crawled with ``--depth 2``. In-memory and
``--state`` crawls alternate (``--pairs`` of them) on the same server: the machine is shared,
so compare the ratios, not the absolute figures. Then the last state (a million URLs, most
of them still queued) is resumed with ``--deadline`` again. Every crawl is also timed to its
first fetch: its first record's ``fetched_at`` minus the moment the process was started
(Python's start-up included, as a user sees it).

    python bench/state_scale.py                    # 1,000 x 1,000 URLs, 30 s per crawl
    python bench/state_scale.py --hubs 200 --deadline 10 --port 8191
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402
from million import LEAVES, crawl, generate  # noqa: E402


def pages_of(stderr: str) -> int:
    found = re.search(r"trio-scrape: ([\d,]+) pages?", stderr)
    return int(found.group(1).replace(",", "")) if found else 0


def first_fetch_after(output: Path, started: float) -> float:
    """Seconds from ``started`` to the earliest record finished after it."""
    times = []
    for line in output.read_bytes().splitlines():
        stamp = json.loads(line)["fetched_at"]
        at = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        if at >= started:
            times.append(at)
    return min(times) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=run.PORT)
    parser.add_argument("--pairs", type=int, default=2, help="in-memory/--state pairs")
    options = parser.parse_args()
    run.PORT = options.port
    with tempfile.TemporaryDirectory(prefix="trio-scrape-state-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as nobody when started by root
        generate(work / "site", options.hubs, options.fanout)
        server = run.start_server(work / "site", work, extra=LEAVES)
        try:
            seed = f"http://127.0.0.1:{options.port}/index.html"
            timed = [seed, "--depth", "2", "--no-robots", "--deadline", str(options.deadline)]
            state = str(work / "state.db")
            memory = [*timed, "-o", str(work / "a.jsonl")]
            with_state = [*timed, "-o", str(work / "b.jsonl"), "--state", state]
            urls = options.hubs * options.fanout + options.hubs + 1
            print(f"{urls:,} URLs, --depth 2, {options.deadline:g} s crawls")
            print(
                f"{'crawl':<18} {'pages':>8} {'pages/s':>8} {'CPU s':>6} {'CPU us/page':>11}"
                f" {'peak RSS MB':>11} {'first fetch s':>13} {'load':>5}"
            )

            def measure(name: str, args: list[str], output: str) -> tuple[int, float]:
                started, wall, cpu, rss, stderr = crawl(args)
                pages = pages_of(stderr)
                first = first_fetch_after(work / output, started)
                per_page = cpu / max(1, pages) * 1e6
                print(
                    f"{name:<18} {pages:>8,} {pages / wall:>8,.0f} {cpu:>6.1f} {per_page:>11.0f}"
                    f" {rss:>11.0f} {first:>13.2f} {os.getloadavg()[0]:>5.1f}"
                )
                return pages, per_page

            ratios, costs = [], []
            for _ in range(options.pairs):
                in_memory, memory_cost = measure("in memory", memory, "a.jsonl")
                stateful, state_cost = measure("--state", [*with_state, "--state-reset"], "b.jsonl")
                ratios.append(stateful / max(1, in_memory))
                costs.append(state_cost / memory_cost)
            size = os.path.getsize(state)
            measure(f"--state, resumed ({size / 1e6:,.0f} MB)", with_state, "b.jsonl")
            print(
                "--state / in memory, pages in the same time: "
                + ", ".join(f"{ratio:.0%}" for ratio in ratios)
                + f" (median {statistics.median(ratios):.0%}); CPU per page: "
                + ", ".join(f"{cost:.2f}x" for cost in costs)
            )
            print(
                "load: the 1-minute load average as each crawl ended "
                f"({os.cpu_count()} CPUs); pages/s follow it, CPU per page much less"
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
