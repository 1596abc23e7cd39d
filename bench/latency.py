"""Latency-bound benchmark: many slow hosts, where waiting, not CPU, is the limit.

A server process listens on 127.0.0.2, 127.0.0.3, ... (every 127/8 address is loopback), each
host a site of PAGES pages that answers every request after LATENCY seconds. trio-scrape
crawls all hosts at once (every host's index page is a seed) with ``--per-host``; the best it
can do is

    bound = min(workers, hosts x per_host) / latency   pages per second

Each scenario is sized to last max(DURATION, LATENCIES x LATENCY) seconds at the bound (by
default max(60 s, 100 latencies)): the ramp lasts a latency or two at each end (below), so a
hundred latencies keep it to a few percent of the run. Every figure is taken from the server's
log of each request (arrival, answer sent: what the hosts see):

* run: from the first request's arrival to the last answer;
* steady pages/s: answers per second over the middle 90% of them (by time sent);
* ramp: the time, at the start and at the end, during which the requests in flight at the
  server, averaged over each latency, are below 90% of their steady-state mean (before the
  first latency that reaches it, after the last one), as a share of the run. It cannot be much
  under one latency at each end: the seeds' links are known only once their answers are in,
  and the last requests sent take a latency to be answered;
* slot refill: per host, from an answer sent (a slot freed) to the arrival of the next request
  to that host; in the steady state, p50 and p99: the dispatcher's latency plus the network;
* CPU: user + system of the crawl (all its processes) and of the server, as a share of one
  core over the crawl's wall time, and the crawl's per page; the server's lag (how much later
  than LATENCY after a request's arrival its answer was sent: the server keeping up or not);
  the 1-minute load average of the machine before and after (other work on it takes cores
  from both).

    python bench/latency.py                 # 256 workers over 64 hosts, 1,024 over 250; 1, 2
    python bench/latency.py --processes auto  # auto is 1 process on 2 CPUs or fewer
    python bench/latency.py --scenarios 256:64:0.25 --processes 1
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402

PORT = 8092
STEADY = 0.9  # the share of answers in the steady state (the middle ones)
REACHED = 0.9  # in flight at this share of the steady mean: ramped up (not yet down)

# (host, connection, request arrived, answer sent), in time.monotonic() seconds
Entry = tuple[int, int, float, float]


def page(host: int, i: int, pages: int, hosts: list[int]) -> bytes:
    """Page ``i`` of a host: three links to its own pages 3i+1..3i+3 (a tree: the queue of
    every host grows from its index page) and one to the next host's page ``i``."""
    links = [f"/p{(i * 3 + k) % pages}" for k in (1, 2, 3)]
    links.append(f"http://127.0.0.{hosts[(hosts.index(host) + 1) % len(hosts)]}:{PORT}/p{i}")
    anchors = "".join(f'<a href="{href}">link</a> ' for href in links)
    body = f"<title>Host {host} page {i}</title><p>{'lorem ipsum ' * 150}</p>{anchors}"
    return f"<!doctype html><html><body>{body}</body></html>".encode()


async def serve(hosts: list[int], pages: int, latency: float) -> list[Entry]:
    """Serve every host until SIGTERM; return the log of requests."""
    log: list[Entry] = []
    connections = itertools.count()

    async def handle(stream: trio.SocketStream, host: int) -> None:
        connection = next(connections)
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                arrived = time.monotonic()
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
                log.append((host, connection, arrived, time.monotonic()))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for host in hosts:
                listeners = await trio.open_tcp_listeners(PORT, host=f"127.0.0.{host}")
                nursery.start_soon(trio.serve_listeners, lambda s, h=host: handle(s, h), listeners)
            print("ready", flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    return log


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_flight_curve(log: list[Entry]) -> list[tuple[float, int]]:
    """(time, requests in flight at the server from then on), at every arrival and answer."""
    events = sorted([(e[2], 1) for e in log] + [(e[3], -1) for e in log])
    curve, count = [], 0
    for when, change in events:
        count += change
        curve.append((when, count))
    return curve


def mean_in_flight(log: list[Entry], start: float, end: float) -> float:
    return sum(max(0.0, min(e[3], end) - max(e[2], start)) for e in log) / (end - start)


def in_flight_by_latency(curve: list[tuple[float, int]], width: float) -> list[float]:
    """The mean of the requests in flight over each ``width`` seconds from the first request
    (one latency: the answers of a crawl at its bound come in waves one latency apart)."""
    means, area, edge = [], 0.0, curve[0][0] + width
    for (t0, count), (t1, _) in itertools.pairwise(curve):
        while t1 >= edge:
            area += count * (edge - t0)
            means.append(area / width)
            area, t0, edge = 0.0, edge, edge + width
        area += count * (t1 - t0)
    means.append(area / width)  # the last, partial one
    return means


def ramp(curve: list[tuple[float, int]], level: float, width: float) -> tuple[float, float]:
    """Seconds from the first request to the first ``width`` in which the mean requests in
    flight reach ``level``, and from the end of the last such ``width`` to the last answer."""
    means = in_flight_by_latency(curve, width)
    reached = [i for i, mean in enumerate(means) if mean >= level]
    span = curve[-1][0] - curve[0][0]
    if not reached:
        return span, 0.0
    return reached[0] * width, max(0.0, span - (reached[-1] + 1) * width)


def slot_refills(log: list[Entry], per_host: int, start: float, end: float) -> list[float]:
    """Seconds from a host's slot freeing (an answer sent between ``start`` and ``end``) to
    the next request to that host arriving; each arrival takes the slot freed longest ago."""
    by_host: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for host, _, arrived, sent in log:
        by_host[host] += [(arrived, 1), (sent, 0)]
    gaps = []
    for events in by_host.values():
        events.sort()
        free: collections.deque[float | None] = collections.deque([None] * per_host)
        for when, kind in events:
            if kind == 0:
                free.append(when)
            elif free:
                freed = free.popleft()
                if freed is not None and start <= freed <= end:
                    gaps.append(when - freed)
    return sorted(gaps)


def quantile(values: list[float], fraction: float) -> float:
    return values[int(fraction * (len(values) - 1))] if values else float("nan")


def scenario(
    workers: int,
    hosts: int,
    latency: float,
    per_host: int,
    duration: float,
    processes: str,
) -> str:
    pages = max(10, round(min(workers, hosts * per_host) / latency * duration / hosts))
    host_ids = list(range(2, 2 + hosts))
    directory = Path(tempfile.mkdtemp(prefix="trio-scrape-latency-"))
    trace, out = directory / "trace.json", directory / "out.jsonl"
    serve_args = ["--hosts", str(hosts), "--pages", str(pages), "--latency", str(latency)]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--trace", str(trace), *serve_args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the latency server did not start")
        seeds = [f"http://127.0.0.{h}:{PORT}/" for h in host_ids]
        command = [sys.executable, "-P", "-m", "trio_scrape", "run", *seeds, "--depth", "100000"]
        command += ["--workers", str(workers), "--per-host", str(per_host), "--no-robots"]
        command += ["--processes", processes, "--timeout", str(max(10, latency * 5))]
        command += ["-q", "-o", str(out)]
        load_before = os.getloadavg()[0]
        server_before = cpu_seconds(server.pid)
        wall, cpu, rss, code = run.measure(command)
        server_cpu = cpu_seconds(server.pid) - server_before
        load_after = os.getloadavg()[0]
        with out.open() as file:
            records = [json.loads(line) for line in file]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    log: list[Entry] = json.loads(trace.read_text())
    out.unlink()
    trace.unlink()
    directory.rmdir()

    ok = sum(r["ok"] for r in records)
    bound = min(workers, hosts * per_host) / latency
    sent = sorted(e[3] for e in log)
    first, last = min(e[2] for e in log), sent[-1]
    run_length = last - first
    tail = round(len(sent) * (1 - STEADY) / 2)
    start, end = sent[tail], sent[-1 - tail]
    steady = (len(sent) - 2 * tail - 1) / (end - start)
    up, down = ramp(in_flight_curve(log), REACHED * mean_in_flight(log, start, end), latency)
    gaps = slot_refills(log, per_host, start, end)
    connections = len({e[1] for e in log})
    lag = sorted(e[3] - e[2] - latency for e in log)  # the server's own delay past LATENCY
    return (
        f"| {workers} | {hosts} x {per_host}, {latency * 1000:.0f} ms | {processes} | "
        f"{bound:,.0f} | {len(records):,} ({ok:,} ok) | {run_length:.1f} | "
        f"{len(log) / run_length:,.0f} ({len(log) / run_length / bound:.0%}) | "
        f"{steady:,.0f} ({steady / bound:.0%}) | "
        f"{(up + down) / run_length:.1%} ({up:.1f} + {down:.1f} s) | "
        f"{quantile(gaps, 0.5) * 1000:.1f} / {quantile(gaps, 0.99) * 1000:.0f} | "
        f"{connections:,} | {cpu / wall:.0%} ({cpu / len(records) * 1000:.2f}) | "
        f"{server_cpu / wall:.0%} ({quantile(lag, 0.5) * 1000:.1f} / "
        f"{quantile(lag, 0.99) * 1000:.0f}) | {rss:.0f} | {load_before:.1f} / {load_after:.1f} | "
        f"{code} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios",
        default="256:64:0.25,1024:250:1.0",
        help="WORKERS:HOSTS:LATENCY, comma-separated",
    )
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--duration", type=float, default=60, help="seconds at the bound")
    parser.add_argument(
        "--latencies", type=int, default=100, help="latencies at the bound, at least"
    )
    parser.add_argument(
        "--processes", default="1,2", help="trio-scrape's --processes, comma-separated"
    )
    parser.add_argument("--hosts", type=int, default=49, help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, default=40, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        hosts = list(range(2, 2 + args.hosts))
        log = trio.run(serve, hosts, args.pages, args.latency)
        Path(args.trace).write_text(json.dumps(log))
        return
    print(
        f"--per-host {args.per_host}, each scenario sized for max({args.duration:g} s, "
        f"{args.latencies} latencies) at its bound, "
        f"{os.cpu_count()} CPUs; figures from the server's log: steady state = the middle "
        f"{STEADY:.0%} of the answers; ramp = time below {REACHED:.0%} of the steady requests "
        "in flight, at the start + at the end; slot refill = answer sent -> next request to "
        "that host, steady state; CPU = share of one core over the crawl (ms per page); server "
        "lag = answer sent - arrival - latency\n"
    )
    print(
        "| workers | hosts x per-host, latency | processes | bound pages/s | pages | run s | "
        "pages/s over the run (of bound) | steady pages/s (of bound) | ramp share (up + down) "
        "| slot refill ms p50 / p99 | connections | crawler CPU (ms/page) | server CPU (lag ms "
        "p50 / p99) | "
        "peak RSS MB | load before / after | exit |"
    )
    print(
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |"
    )
    for processes in args.processes.split(","):
        for spec in args.scenarios.split(","):
            workers, hosts, latency = spec.split(":")
            line = scenario(
                int(workers),
                int(hosts),
                float(latency),
                args.per_host,
                max(args.duration, args.latencies * float(latency)),
                processes,
            )
            print(line, flush=True)


if __name__ == "__main__":
    main()
