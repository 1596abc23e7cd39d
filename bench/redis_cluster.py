"""One crawl on one Redis against the same crawl on a 3-node Redis Cluster: pages/s, the
crawlers' and Redis's CPU per page, side by side in one run.

Serves the benchmark site (bench/sitegen.py) as bench/run.py does, starts a throwaway
redis-server and a 3-node cluster on 127.0.0.1 (tests/redis_cluster.py: AOF with
``appendfsync always``, as the single server here too, so both pay the same disk writes), and
runs, in turns, ``--processes`` crawler processes on one crawl against each. Every run's export
is checked to hold every page exactly once.

    python bench/redis_cluster.py                      # 5,000 pages, 2 processes, 3 rounds
    python bench/redis_cluster.py --pages 2000 --processes 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import run  # noqa: E402
from fleet import CLI, Fleet, exactly_once, free_port, process_cpu, run_fleet  # noqa: E402

from tests.redis_cluster import RedisClusterNodes  # noqa: E402
from tests.redis_server import start_redis, stop  # noqa: E402


def crawl(
    url: str, pids: list[int], processes: int, args: argparse.Namespace, name: str, workdir: Path
) -> tuple[Fleet, float, str]:
    """One crawl: (the fleet, Redis CPU ms per page over every node, the export's check)."""
    cpu = sum(process_cpu(pid) for pid in pids)
    fleet = run_fleet(f"http://127.0.0.1:{run.PORT}/index.html", processes, args.workers, url,
                      name, workdir)  # fmt: skip
    redis_cpu = (sum(process_cpu(pid) for pid in pids) - cpu) / args.pages * 1000
    exported = workdir / f"{name}.jsonl"
    subprocess.run([*CLI, "export", "--frontier", url, "--crawl-id", name, "-o", str(exported)],
                   check=True, stderr=subprocess.DEVNULL)  # fmt: skip
    urls = [json.loads(line)["url"] for line in exported.read_text().splitlines()]
    return fleet, redis_cpu, exactly_once(urls, expected)


def main() -> None:
    global expected
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-fleet"
    )
    args = parser.parse_args()
    run.PORT = free_port()
    expected = run.prepare_site(args.site, args.pages, run.PORT)
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-cluster-"))
    server = run.start_server(args.site / "www", workdir)
    single, port = start_redis(workdir / "single", "--appendonly", "yes", "--appendfsync", "always")
    nodes = RedisClusterNodes(workdir / "cluster")
    rows: list[tuple[int, str, Fleet, float, str]] = []
    try:
        targets = [
            ("one Redis", f"redis://127.0.0.1:{port}/0", [single.pid]),
            ("3-node cluster", nodes.url, [p.pid for p in nodes.processes if p is not None]),
        ]
        for i in range(args.rounds):
            for label, url, pids in targets:
                name = f"bench-{i}-{len(rows)}-{int(time.time())}"
                rows.append((i + 1, label, *crawl(url, pids, args.processes, args, name, workdir)))
    finally:
        nodes.stop()
        stop(single)
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    n = args.pages
    print(f"\n{n} pages, {args.processes} processes of {args.workers} workers on one crawl\n")
    print("| round | Redis | pages/s | crawler CPU ms/page | Redis CPU ms/page | export |")
    print("| ---: | --- | ---: | ---: | ---: | --- |")
    for round_, label, fleet, redis_cpu, check in rows:
        print(
            f"| {round_} | {label} | {n / fleet.wall:,.0f} | {sum(fleet.cpu) / n * 1000:.2f}"
            f" | {redis_cpu:.2f} | {check} |"
        )
    ratios = [(n / b[2].wall) / (n / a[2].wall) for a, b in zip(rows[::2], rows[1::2], strict=True)]
    print(
        f"\npages/s on the cluster / on one Redis: median {statistics.median(ratios):.2f}x"
        f" (range {min(ratios):.2f}-{max(ratios):.2f}x)"
    )


expected: set[str] = set()

if __name__ == "__main__":
    main()
