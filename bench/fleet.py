"""Crawling with a shared Redis frontier: CPU per page against the in-memory path, and pages/s
with 1, 2 and 4 processes on one Redis.

Serves the benchmark site (bench/sitegen.py) with nginx as bench/run.py does (on a free port),
starts a throwaway redis-server on 127.0.0.1 (no persistence), and prints two tables:

- **paired runs** (``--pairs``): one process in memory, then one process on Redis, in turns,
  each with its CPU ms per page (user+sys of the crawler process, from ``wait4``'s rusage: far
  less noisy than wall time on a shared machine), and the ratio of the two in each pair;
- **scaling** (``--processes``): that many ``trio-scrape run --frontier ...`` processes on
  one crawl, each with its own -o file: wall time from the first start to the last exit,
  pages/s, each process's pages and CPU ms per page, Redis round trips per page (FCALLs and
  plain commands, from ``INFO commandstats``), Redis CPU ms per page (utime+stime of
  redis-server from /proc/PID/stat), and whether the fleet's output (``trio-scrape export``)
  holds every page exactly once; then what one Redis core sustains, from these figures.

    python bench/fleet.py                      # 10,000 pages; 3 pairs; 1, 2 and 4 processes
    python bench/fleet.py --pages 5000 --pairs 5 --processes 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

# -P: the build this Python has installed, never a trio_scrape/ in the working directory (run
# from a checkout, `-m` would import the checkout's plain source instead of a compiled wheel).
CLI = [sys.executable, "-P", "-m", "trio_scrape"]
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_info(port: int, section: str) -> dict[str, str]:
    text = subprocess.run(
        ["redis-cli", "-p", str(port), "info", section], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def redis_round_trips(port: int) -> int:
    """Round trips so far: FCALLs and plain commands from clients (commands run inside
    functions are counted apart by Redis too, and left out here)."""
    stats = redis_info(port, "commandstats")
    inside = ("cmdstat_info", "cmdstat_client", "cmdstat_hget", "cmdstat_hset", "cmdstat_hmget",
              "cmdstat_hincrby", "cmdstat_zadd", "cmdstat_zrem", "cmdstat_zrange",
              "cmdstat_zrangebyscore", "cmdstat_lpush", "cmdstat_rpush", "cmdstat_lpop",
              "cmdstat_llen", "cmdstat_hdel", "cmdstat_sadd", "cmdstat_hexists", "cmdstat_xadd",
              "cmdstat_time", "cmdstat_zscore", "cmdstat_hsetnx", "cmdstat_zcard",
              "cmdstat_zremrangebyscore", "cmdstat_unlink", "cmdstat_srem",
              "cmdstat_hmset", "cmdstat_zrangestore", "cmdstat_exists")  # fmt: skip
    return sum(
        int(dict(kv.split("=") for kv in value.split(","))["calls"])
        for key, value in stats.items()
        if key.startswith("cmdstat_") and key not in inside
    )


def process_cpu(pid: int) -> float:
    """CPU seconds (user+sys) a live process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class Fleet(NamedTuple):
    wall: float  # seconds from the first start to the last exit
    cpu: list[float]  # each process's CPU seconds
    pages: list[int]  # records in each process's -o file
    outputs: list[Path]


def run_fleet(
    start: str, processes: int, workers: int, redis: str | None, crawl_id: str, workdir: Path
) -> Fleet:
    outputs = [workdir / f"{crawl_id}-{i}.jsonl" for i in range(processes)]
    fleet = ["--frontier", redis, "--crawl-id", crawl_id] if redis else []
    began = time.perf_counter()
    running = [
        subprocess.Popen(
            [
                *CLI,
                "run",
                start,
                "--depth",
                "1000",
                "--workers",
                str(workers),
                "-q",
                "-o",
                str(out),
                *fleet,
            ]
        )
        for out in outputs
    ]
    cpu = []
    for process in running:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"a crawler exited with {process.returncode}")
        cpu.append(usage.ru_utime + usage.ru_stime)
    wall = time.perf_counter() - began
    pages = [len(out.read_text().splitlines()) for out in outputs]
    return Fleet(wall, cpu, pages, outputs)


def exactly_once(urls: list[str], expected: set[str]) -> str:
    counts = Counter(urls)
    if set(counts) != expected:
        return f"{len(set(counts) & expected)}/{len(expected)} pages"
    return "exactly once" if max(counts.values()) == 1 else f"{max(counts.values())}x some"


class Bench:
    def __init__(self, args: argparse.Namespace, expected: set[str], workdir: Path) -> None:
        self.args = args
        self.expected = expected
        self.workdir = workdir
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.start = f"http://127.0.0.1:{run.PORT}/index.html"
        self.runs = 0

    def memory(self) -> Fleet:
        self.runs += 1
        fleet = run_fleet(
            self.start, 1, self.args.workers, None, f"memory-{self.runs}", self.workdir
        )
        urls = [json.loads(line)["url"] for line in fleet.outputs[0].read_text().splitlines()]
        if exactly_once(urls, self.expected) != "exactly once":
            raise SystemExit(f"in memory: {exactly_once(urls, self.expected)}")
        return fleet

    def redis(self, count: int, redis_pid: int) -> tuple[Fleet, float, float, str]:
        """A fleet of ``count`` on Redis: (fleet, round trips/page, Redis CPU ms/page, check)."""
        self.runs += 1
        crawl = f"bench-{count}-{self.runs}-{int(time.time())}"
        calls, cpu = redis_round_trips(self.redis_port), process_cpu(redis_pid)
        fleet = run_fleet(self.start, count, self.args.workers, self.redis_url, crawl, self.workdir)
        after_calls, after_cpu = redis_round_trips(self.redis_port), process_cpu(redis_pid)
        exported = self.workdir / f"{crawl}.jsonl"
        subprocess.run(
            [
                *CLI,
                "export",
                "--frontier",
                self.redis_url,
                "--crawl-id",
                crawl,
                "-o",
                str(exported),
            ],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        urls = [json.loads(line)["url"] for line in exported.read_text().splitlines()]
        pages = self.args.pages
        return (
            fleet,
            (after_calls - calls) / pages,
            (after_cpu - cpu) / pages * 1000,
            exactly_once(urls, self.expected),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=3, help="paired runs (0: none)")
    parser.add_argument("--processes", default="1,2,4", help='"" for no scaling table')
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-fleet"
    )
    args = parser.parse_args()
    run.PORT = free_port()
    expected = run.prepare_site(args.site, args.pages, run.PORT)
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-fleet-"))
    server = run.start_server(args.site / "www", workdir)
    bench = Bench(args, expected, workdir)
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(bench.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    pairs: list[tuple[Fleet, Fleet, float]] = []
    scaling: list[tuple[int, Fleet, float, float, str]] = []
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "-p", str(bench.redis_port), "ping"], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.1)
        for _ in range(args.pairs):
            memory = bench.memory()
            fleet, trips, _, check = bench.redis(1, redis.pid)
            if check != "exactly once":
                raise SystemExit(f"1 process on Redis: {check}")
            pairs.append((memory, fleet, trips))
        for count in [int(n) for n in args.processes.split(",") if n]:
            scaling.append((count, *bench.redis(count, redis.pid)))
    finally:
        redis.terminate()
        redis.wait()
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    n = args.pages
    print(f"\n{n} pages, {args.workers} workers per process\n")
    if pairs:
        print(
            "| pair | in memory: pages/s | CPU ms/page | 1 process on Redis: pages/s"
            " | CPU ms/page | round trips/page | CPU Redis / memory |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        ratios = []
        for i, (memory, fleet, trips) in enumerate(pairs, 1):
            ratio = fleet.cpu[0] / memory.cpu[0]
            ratios.append(ratio)
            print(
                f"| {i} | {n / memory.wall:,.0f} | {memory.cpu[0] / n * 1000:.2f}"
                f" | {n / fleet.wall:,.0f} | {fleet.cpu[0] / n * 1000:.2f} | {trips:.2f}"
                f" | {ratio:.2f}x |"
            )
        print(
            f"\nCPU per page on Redis / in memory: median {statistics.median(ratios):.2f}x"
            f" (range {min(ratios):.2f}-{max(ratios):.2f}x)\n"
        )
    if scaling:
        print(
            "| processes | wall s | pages/s | pages per process | crawler CPU ms/page per"
            " process | round trips/page | Redis CPU ms/page | output |"
        )
        print("| ---: | ---: | ---: | --- | --- | ---: | ---: | --- |")
        for count, fleet, trips, redis_ms, check in scaling:
            per_page = ", ".join(
                f"{cpu / pages * 1000:.2f}" if pages else "-"
                for cpu, pages in zip(fleet.cpu, fleet.pages, strict=True)
            )
            done = ", ".join(str(p) for p in fleet.pages)
            print(
                f"| {count} | {fleet.wall:.2f} | {n / fleet.wall:,.0f} | {done} | {per_page}"
                f" | {trips:.2f} | {redis_ms:.3f} | {check} |"
            )
        redis_ms = statistics.median(r for _, _, _, r, _ in scaling)
        crawler_ms = statistics.median(sum(f.cpu) / n * 1000 for _, f, _, _, _ in scaling)
        print(
            f"\nOne Redis core: about {1000 / redis_ms:,.0f} pages/s (median"
            f" {redis_ms:.3f} ms/page); a crawler process on one whole core: about"
            f" {1000 / crawler_ms:,.0f} pages/s ({crawler_ms:.2f} ms/page), so one Redis core"
            f" sustains about {crawler_ms / redis_ms:.0f} crawler cores."
        )


if __name__ == "__main__":
    main()
