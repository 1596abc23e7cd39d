"""Crawling with a shared Redis frontier: pages/s with 1, 2 and 4 processes on this machine.

Serves the benchmark site (bench/sitegen.py) with nginx as bench/run.py does, starts a
throwaway redis-server on 127.0.0.1 (no persistence), and for each process count runs that
many ``trio-scrape run --frontier ...`` processes on one crawl, each with its own -o file.
Printed per row: wall time from the first start to the last exit, pages/s, the crawler
processes' CPU ms per page (getrusage of the children: far less noisy than wall time on a
shared machine), Redis round trips per page (FCALLs and plain commands, from ``INFO
commandstats``), Redis CPU ms per page, and whether the fleet's output (``trio-scrape
export``) holds every page exactly once.
The first row is one process with no Redis at all (the in-memory frontier), for reference.

    python bench/fleet.py                      # 10,000 pages; 1, 2 and 4 processes
    python bench/fleet.py --pages 5000 --processes 1,2
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import PORT, prepare_site, start_server  # noqa: E402

CLI = [sys.executable, "-m", "trio_scrape"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_info(port: int, section: str) -> dict[str, str]:
    text = subprocess.run(
        ["redis-cli", "-p", str(port), "info", section], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def redis_calls_and_cpu(port: int) -> tuple[int, float]:
    """Round trips (FCALLs and plain commands from clients: commands run inside functions are
    counted apart by Redis too, and left out here) and Redis CPU seconds so far."""
    stats = redis_info(port, "commandstats")
    inside = ("cmdstat_info", "cmdstat_client", "cmdstat_hget", "cmdstat_hset", "cmdstat_hmget",
              "cmdstat_hincrby", "cmdstat_zadd", "cmdstat_zrem", "cmdstat_zrange",
              "cmdstat_zrangebyscore", "cmdstat_lpush", "cmdstat_rpush", "cmdstat_lpop",
              "cmdstat_llen", "cmdstat_hdel", "cmdstat_sadd", "cmdstat_hexists", "cmdstat_xadd",
              "cmdstat_time", "cmdstat_zscore", "cmdstat_hsetnx", "cmdstat_zcard")  # fmt: skip
    calls = sum(
        int(dict(kv.split("=") for kv in value.split(","))["calls"])
        for key, value in stats.items()
        if key.startswith("cmdstat_") and key not in inside
    )
    cpu = redis_info(port, "cpu")
    return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fleet(
    start: str, processes: int, workers: int, redis: str | None, crawl_id: str, workdir: Path
) -> tuple[float, float, list[Path]]:
    outputs = [workdir / f"{crawl_id}-{i}.jsonl" for i in range(processes)]
    fleet = ["--frontier", redis, "--crawl-id", crawl_id] if redis else []
    began, cpu = time.perf_counter(), children_cpu()
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
            ],
        )
        for out in outputs
    ]
    for process in running:
        if process.wait() != 0:
            raise SystemExit(f"a crawler exited with {process.returncode}")
    return time.perf_counter() - began, children_cpu() - cpu, outputs


def exactly_once(urls: list[str], expected: set[str]) -> str:
    counts = Counter(urls)
    if set(counts) != expected:
        return f"{len(set(counts) & expected)}/{len(expected)} pages"
    return "exactly once" if max(counts.values()) == 1 else f"{max(counts.values())}x some"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench"
    )
    args = parser.parse_args()
    expected = prepare_site(args.site, args.pages, PORT)
    base = f"http://127.0.0.1:{PORT}"
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-fleet-"))
    server = start_server(args.site / "www", workdir)
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    rows = []
    try:
        time.sleep(0.5)
        url = f"redis://127.0.0.1:{port}/0"
        start = base + "/index.html"
        wall, cpu_s, outputs = run_fleet(start, 1, args.workers, None, "memory", workdir)
        urls = [json.loads(line)["url"] for line in outputs[0].read_text().splitlines()]
        check = exactly_once(urls, expected)
        rows.append(("1, in memory (no Redis)", wall, cpu_s, None, None, check))
        for count in [int(n) for n in args.processes.split(",")]:
            crawl = f"bench-{count}-{int(time.time())}"
            calls, cpu = redis_calls_and_cpu(port)
            wall, cpu_s, _ = run_fleet(start, count, args.workers, url, crawl, workdir)
            after_calls, after_cpu = redis_calls_and_cpu(port)
            exported = workdir / f"{crawl}.jsonl"
            subprocess.run(
                [*CLI, "export", "--frontier", url, "--crawl-id", crawl, "-o", str(exported)],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            urls = [json.loads(line)["url"] for line in exported.read_text().splitlines()]
            ops = (after_calls - calls) / args.pages
            redis_ms = (after_cpu - cpu) / args.pages * 1000
            check = exactly_once(urls, expected)
            rows.append((f"{count}, Redis", wall, cpu_s, ops, redis_ms, check))
    finally:
        redis.terminate()
        redis.wait()
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{args.pages} pages, {args.workers} workers per process\n")
    print(
        "| processes | wall s | pages/s | crawler CPU ms/page | Redis round trips/page"
        " | Redis CPU ms/page | output |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, wall, cpu_s, ops, redis_ms, check in rows:
        ops_text = "-" if ops is None else f"{ops:.2f}"
        cpu_text = "-" if redis_ms is None else f"{redis_ms:.3f}"
        print(
            f"| {name} | {wall:.2f} | {args.pages / wall:,.0f} | {cpu_s / args.pages * 1000:.2f}"
            f" | {ops_text} | {cpu_text}"
            f" | {check} |"
        )


if __name__ == "__main__":
    main()
