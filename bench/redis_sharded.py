"""One crawl of several hosts on one Redis, on one node of a 3-node Redis Cluster (one hash
tag), and sharded over the cluster's 3 nodes (``?shards=3``): pages/s, the crawlers' CPU per
page and each Redis's CPU per page, side by side in one run.

Serves the benchmark site (bench/sitegen.py) on ``--hosts`` ports of 127.0.0.1 (nginx, one
worker, every port the same site: each port is a host of its own, its links relative, so
each host is a crawl of ``--pages`` pages), starts a redis-server and a 3-node cluster (AOF
``appendfsync always`` on all, as bench/redis_cluster.py), and runs, in turns,
``--processes`` crawler processes on one crawl against each target. Every run's export is
checked to hold every page exactly once.

    python bench/redis_sharded.py                         # 6 hosts x 1,000 pages, 2 processes
    python bench/redis_sharded.py --processes 4 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import run  # noqa: E402
from fleet import CLI, Fleet, exactly_once, free_port, process_cpu  # noqa: E402

from tests.redis_cluster import RedisClusterNodes  # noqa: E402
from tests.redis_server import start_redis, stop  # noqa: E402
from trio_scrape.frontier.sharded import shard_of  # noqa: E402


def run_fleet(
    seeds: list[str], processes: int, workers: int, redis: str, crawl_id: str, workdir: Path
) -> Fleet:
    """``processes`` crawler processes on one crawl from ``seeds``, each its own file."""
    outputs = [workdir / f"{crawl_id}-{i}.jsonl" for i in range(processes)]
    began = time.perf_counter()
    running = [
        subprocess.Popen(
            [
                *CLI,
                "run",
                *seeds,
                "--depth",
                "1000",
                "--workers",
                str(workers),
                "-q",
                "-o",
                str(out),
                "--frontier",
                redis,
                "--crawl-id",
                crawl_id,
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


def function_calls(ports: list[int]) -> int:
    """``FCALL``s the servers on ``ports`` ran since their last ``CONFIG RESETSTAT``."""
    calls = 0
    for port in ports:
        stats = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        for line in stats.splitlines():
            if line.startswith("cmdstat_fcall:"):
                calls += int(line.split("calls=")[1].split(",")[0])
    return calls


def crawl(
    url: str,
    pids: list[int],
    ports: list[int],
    seeds: list[str],
    args: argparse.Namespace,
    name: str,
    workdir: Path,
) -> tuple[Fleet, list[float], float, str]:
    """One crawl: (the fleet, each Redis's CPU ms per page, function calls a page, the
    export's check)."""
    for port in ports:
        subprocess.run(["redis-cli", "-p", str(port), "CONFIG", "RESETSTAT"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    before = [process_cpu(pid) for pid in pids]
    fleet = run_fleet(seeds, args.processes, args.workers, url, name, workdir)
    total = len(expected)
    redis_cpu = [(process_cpu(pid) - b) / total * 1000 for pid, b in zip(pids, before, strict=True)]
    calls = function_calls(ports) / total
    exported = workdir / f"{name}.jsonl"
    subprocess.run([*CLI, "export", "--frontier", url, "--crawl-id", name, "-o", str(exported)],
                   check=True, stderr=subprocess.DEVNULL)  # fmt: skip
    urls = [json.loads(line)["url"] for line in exported.read_text().splitlines()]
    return fleet, redis_cpu, calls, exactly_once(urls, expected)


def main() -> None:
    global expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1_000, help="pages of each host")
    parser.add_argument("--hosts", type=int, default=6)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-sharded"
    )
    args = parser.parse_args()
    # Ports (hosts) chosen so that they split as evenly as they can over 3 shards: the
    # shards' shares of the crawl do not change from one run to the next.
    ports: list[int] = []
    split: Counter[int] = Counter()
    while len(ports) < args.hosts:
        port = free_port()
        k = shard_of(f"http://127.0.0.1:{port}", 3)
        if split[k] < -(-args.hosts // 3) and port not in ports:
            ports.append(port)
            split[k] += 1
    run.PORT = ports[0]
    paths = {
        url.partition(f":{run.PORT}")[2]
        for url in run.prepare_site(args.site, args.pages, run.PORT)
    }
    expected = {f"http://127.0.0.1:{port}{path}" for port in ports for path in paths}
    seeds = [f"http://127.0.0.1:{port}/index.html" for port in ports]
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-sharded-"))
    listen = " ".join(f"listen 127.0.0.1:{port};" for port in ports[1:])
    server = run.start_server(args.site / "www", workdir, extra=listen)
    single, port = start_redis(workdir / "single", "--appendonly", "yes", "--appendfsync", "always")
    nodes = RedisClusterNodes(workdir / "cluster")
    rows: list[tuple[int, str, Fleet, list[float], float, str]] = []
    try:
        node_pids = [p.pid for p in nodes.processes if p is not None]
        targets = [
            ("one Redis", f"redis://127.0.0.1:{port}/0", [single.pid], [port]),
            ("cluster, 1 tag", nodes.url, node_pids, nodes.ports),
            ("cluster, 3 shards", nodes.url + "?shards=3", node_pids, nodes.ports),
        ]
        for i in range(args.rounds):
            for label, url, pids, target_ports in targets:
                name = f"bench-{i}-{len(rows)}-{int(time.time())}"
                done = crawl(url, pids, target_ports, seeds, args, name, workdir)
                rows.append((i + 1, label, *done))
    finally:
        nodes.stop()
        stop(single)
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    n = len(expected)
    print(
        f"\n{args.hosts} hosts x {args.pages} pages = {n} pages, {args.processes} processes of "
        f"{args.workers} workers on one crawl\n"
    )
    print(
        "| round | Redis | pages/s | crawler CPU ms/page | Redis CPU ms/page, per node"
        " | function calls/page | export |"
    )
    print("| ---: | --- | ---: | ---: | --- | ---: | --- |")
    for round_, label, fleet, redis_cpu, calls, check in rows:
        nodes_cpu = " + ".join(f"{c:.2f}" for c in redis_cpu)
        print(
            f"| {round_} | {label} | {n / fleet.wall:,.0f} | {sum(fleet.cpu) / n * 1000:.2f}"
            f" | {nodes_cpu} | {calls:.2f} | {check} |"
        )
    print(f"hosts per shard (3 shards): {' / '.join(str(split[k]) for k in range(3))}")
    count = len(rows) // args.rounds
    for k, label in ((1, "cluster, 1 tag"), (2, "cluster, 3 shards")):
        ratios = [
            (n / rows[r * count + k][2].wall) / (n / rows[r * count][2].wall)
            for r in range(args.rounds)
        ]
        print(
            f"pages/s {label} / one Redis: median {statistics.median(ratios):.2f}x"
            f" (range {min(ratios):.2f}-{max(ratios):.2f}x)"
        )


expected: set[str] = set()

if __name__ == "__main__":
    main()
