"""Two builds of trio-scrape on one Redis, side by side: CPU per page of one crawler process on
Redis with each, against the same process in memory, each crawl in turn.

Serves the benchmark site (bench/sitegen.py) with nginx as bench/fleet.py does, starts a
throwaway redis-server on 127.0.0.1, and for each round runs, one after the other: this
checkout in memory, the other build (``--against DIR``, a directory holding another checkout's
``trio_scrape`` package, e.g. ``git archive COMMIT trio_scrape | tar -x -C DIR``) on Redis,
then this checkout on Redis. Each crawl's CPU is user+sys of the crawler process from
``wait4``'s rusage; a round's three crawls run within seconds of each other, so the machine's
other load weighs on them alike, and the ratio of the two Redis crawls is the change's own
effect. Every Redis crawl's export is checked to hold each page exactly once.

    python bench/fleet_side.py --against /tmp/trio-scrape-base --pages 5000 --rounds 6
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fleet  # noqa: E402
import run  # noqa: E402


def crawl(start: str, out: Path, redis: str | None, crawl_id: str, tree: Path | None) -> float:
    """One crawler process (``tree``: the trio_scrape to import, else this checkout's);
    returns its CPU seconds."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    command = [*fleet.CLI, "run", start, "--depth", "1000", "--workers", "16", "-q"]
    command += ["-o", str(out)]
    if redis:
        command += ["--frontier", redis, "--crawl-id", crawl_id]
    process = subprocess.Popen(command, env=env, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"a crawler exited with {os.waitstatus_to_exitcode(status)}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="the other trio_scrape")
    parser.add_argument("--pages", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-fleet"
    )
    args = parser.parse_args()
    if not (args.against / "trio_scrape").is_dir():
        raise SystemExit(f"{args.against} holds no trio_scrape package")
    run.PORT = fleet.free_port()
    expected = run.prepare_site(args.site, args.pages, run.PORT)
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-fleet-side-"))
    server = run.start_server(args.site / "www", workdir)
    port = fleet.free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    start = f"http://127.0.0.1:{run.PORT}/index.html"
    n = args.pages
    rows: list[tuple[float, float, float, float]] = []
    try:
        deadline = time.monotonic() + 10
        ping = ["redis-cli", "-p", str(port), "ping"]
        while subprocess.run(ping, capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.1)
        for i in range(args.rounds):
            load = os.getloadavg()[0]
            memory = crawl(start, workdir / "memory.jsonl", None, "", None)
            cpu = []
            for name, tree in (("other", args.against), ("this", None)):
                crawl_id = f"side-{name}-{i}-{int(time.time())}"
                cpu.append(crawl(start, workdir / f"{name}.jsonl", redis_url, crawl_id, tree))
                exported = workdir / f"{crawl_id}.jsonl"
                subprocess.run(
                    [*fleet.CLI, "export", "--frontier", redis_url, "--crawl-id", crawl_id,
                     "-o", str(exported)],
                    check=True, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                urls = [json.loads(line)["url"] for line in exported.read_text().splitlines()]
                check = fleet.exactly_once(urls, expected)
                if check != "exactly once":
                    raise SystemExit(f"{name} on Redis: {check}")
            rows.append((memory, cpu[0], cpu[1], load))
    finally:
        redis.terminate()
        redis.wait()
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{n} pages, 16 workers, other = {args.against}\n")
    print(
        "| round | load | in memory: CPU ms/page | other on Redis | this on Redis | this / other |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, (memory, other, this, load) in enumerate(rows, 1):
        print(
            f"| {i} | {load:.1f} | {memory / n * 1000:.3f} | {other / n * 1000:.3f}"
            f" ({other / memory:.2f}x) | {this / n * 1000:.3f} ({this / memory:.2f}x)"
            f" | {this / other:.2f} |"
        )
    other_ratio = statistics.median(o / m for m, o, _, _ in rows)
    this_ratio = statistics.median(t / m for m, _, t, _ in rows)
    change = statistics.median(t / o for _, o, t, _ in rows)
    print(
        f"\nmedians: other on Redis / in memory {other_ratio:.2f}x, this on Redis / in memory"
        f" {this_ratio:.2f}x, this / other {change:.2f}"
    )


if __name__ == "__main__":
    main()
