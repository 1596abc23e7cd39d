"""Latency-bound benchmark: many slow hosts, where waiting, not CPU, is the limit.

A server process listens on 127.0.0.2, 127.0.0.3, ... (every 127/8 address is loopback), each
host a small site of PAGES pages that answers every request after LATENCY seconds. trio-scrape
crawls all hosts from their index pages with ``--per-host``; the best it can do is

    bound = min(workers, hosts x per_host) / latency   pages per second

Each scenario is sized to last about DURATION seconds at the bound, so the steady state can be
measured: the script prints pages/s over the whole crawl and in the steady state (the middle
90% of the pages, by their ``fetched_at``), the share of the crawl spent ramping up and down,
CPU per page of the crawler and of the server (so one can see the server is not the limit).

    python bench/latency.py                 # 256 workers over 64 hosts, 1,024 over 250
    python bench/latency.py --scenarios 256:64:0.25 --processes 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

PORT = 8092


def page(host: int, i: int, pages: int, hosts: list[int]) -> bytes:
    links = [f"/p{(i * 3 + k) % pages}" for k in (1, 2, 3)]
    links.append(f"http://127.0.0.{hosts[(hosts.index(host) + 1) % len(hosts)]}:{PORT}/p{i}")
    anchors = "".join(f'<a href="{href}">link</a> ' for href in links)
    body = f"<title>Host {host} page {i}</title><p>{'lorem ipsum ' * 150}</p>{anchors}"
    return f"<!doctype html><html><body>{body}</body></html>".encode()


async def serve(hosts: list[int], pages: int, latency: float) -> None:
    async def handle(stream: trio.SocketStream, host: int) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].decode()
                await trio.sleep(latency)
                if path.startswith("/p") and path[2:].isdigit() and int(path[2:]) < pages:
                    status, body = b"200 OK", page(host, int(path[2:]), pages, hosts)
                elif path == "/":
                    status, body = b"200 OK", page(host, 0, pages, hosts)
                else:
                    status, body = b"404 Not Found", b"not found"
                await stream.send_all(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async with trio.open_nursery() as nursery:
        for host in hosts:
            listeners = await trio.open_tcp_listeners(PORT, host=f"127.0.0.{host}")
            nursery.start_soon(trio.serve_listeners, lambda s, h=host: handle(s, h), listeners)
        print("ready", flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def scenario(
    workers: int, hosts: int, latency: float, per_host: int, duration: float, processes: str
) -> str:
    pages = max(10, round(min(workers, hosts * per_host) / latency * duration / hosts))
    host_ids = list(range(2, 2 + hosts))
    serve_args = [
        "--serve",
        "--hosts",
        str(hosts),
        "--pages",
        str(pages),
        "--latency",
        str(latency),
    ]
    server = subprocess.Popen(
        [sys.executable, __file__, *serve_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the latency server did not start")
        out = Path(tempfile.mkdtemp()) / "out.jsonl"
        seeds = [f"http://127.0.0.{h}:{PORT}/" for h in host_ids]
        command = [sys.executable, "-m", "trio_scrape", "run", *seeds, "--depth", "100000"]
        command += ["--workers", str(workers), "--per-host", str(per_host), "--no-robots"]
        command += ["--processes", processes, "--timeout", str(max(10, latency * 5))]
        command += ["-q", "-o", str(out)]
        server_before = cpu_seconds(server.pid)
        wall, cpu, rss, code = run.measure(command)
        server_cpu = cpu_seconds(server.pid) - server_before
        records = [json.loads(line) for line in out.read_text().splitlines()]
        os.unlink(out)
    finally:
        server.terminate()
        server.wait(timeout=10)
    ok = sum(r["ok"] for r in records)
    times = sorted(seconds(r["fetched_at"]) for r in records)
    low, high = times[len(times) // 20], times[len(times) * 19 // 20]
    steady = (len(times) * 0.9) / (high - low) if high > low else 0.0
    span = times[-1] - times[0]
    ramp = ((low - times[0]) + (times[-1] - high)) / span if span else 1.0
    bound = min(workers, hosts * per_host) / latency
    rate = len(records) / wall
    return (
        f"| {workers} | {hosts} x {per_host}, {latency * 1000:.0f} ms | {bound:,.0f} | "
        f"{len(records):,} ({ok:,} ok) | {wall:.1f} | {rate:,.0f} ({rate / bound * 100:.0f}%) | "
        f"{steady:,.0f} ({steady / bound * 100:.0f}%) | {ramp * 100:.0f}% | "
        f"{cpu / len(records) * 1000:.2f} | {server_cpu / wall * 100:.0f}% | {rss:.0f} | {code} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios",
        default="256:64:0.25,1024:250:1.0",
        help="WORKERS:HOSTS:LATENCY, comma-separated",
    )
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--duration", type=float, default=40, help="seconds at the bound")
    parser.add_argument("--processes", default="auto", help="trio-scrape's --processes")
    parser.add_argument("--hosts", type=int, default=49, help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, default=40, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, list(range(2, 2 + args.hosts)), args.pages, args.latency)
        return
    print(
        f"--per-host {args.per_host}, --processes {args.processes}, each scenario sized for "
        f"{args.duration:g} s at its bound; steady state = the middle 90% of pages\n"
    )
    print(
        "| workers | hosts x per-host, latency | bound pages/s | pages | wall s | pages/s "
        "(of bound) | steady pages/s (of bound) | ramp | CPU ms/page | server CPU | "
        "peak RSS MB | exit |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec in args.scenarios.split(","):
        workers, hosts, latency = spec.split(":")
        line = scenario(
            int(workers), int(hosts), float(latency), args.per_host, args.duration, args.processes
        )
        print(line, flush=True)


if __name__ == "__main__":
    main()
