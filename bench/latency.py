"""Latency-bound benchmark: many slow hosts, where waiting, not CPU, is the limit.

A server process listens on 127.0.0.2 ... 127.0.0.50 (every 127/8 address is loopback), each
host a small site of PAGES pages that answers every request after LATENCY seconds. trio-scrape
crawls all hosts from their index pages with ``--per-host 4``; the best it can do is

    bound = min(workers, hosts x per_host) / latency   pages per second

and the script prints the pages/s it reached against that bound, and its CPU per page.

    python bench/latency.py                 # 49 hosts x 40 pages, 100 ms, workers 64 and 256
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=49)
    parser.add_argument("--pages", type=int, default=40, help="pages per host")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--workers", default="64,256")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    hosts = list(range(2, 2 + args.hosts))
    if args.serve:
        trio.run(serve, hosts, args.pages, args.latency)
        return

    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--hosts",
            str(args.hosts),
            "--pages",
            str(args.pages),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the latency server did not start")
        total = args.hosts * args.pages
        print(
            f"{args.hosts} hosts x {args.pages} pages, every answer after "
            f"{args.latency * 1000:.0f} ms, --per-host {args.per_host}\n"
        )
        print(
            "| workers | bound pages/s | pages/s | % of bound | CPU ms/page | peak RSS MB | pages |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for workers in (int(w) for w in args.workers.split(",")):
            out = Path(tempfile.mkdtemp()) / "out.jsonl"
            seeds = [f"http://127.0.0.{h}:{PORT}/" for h in hosts]
            command = [
                sys.executable,
                "-m",
                "trio_scrape",
                "run",
                *seeds,
                "--depth",
                "1000",
                "--workers",
                str(workers),
                "--per-host",
                str(args.per_host),
                "--no-robots",
                "-q",
                "-o",
                str(out),
            ]
            wall, cpu, rss, code = run.measure(command)
            records = [json.loads(line) for line in out.read_text().splitlines()]
            ok = sum(r["ok"] for r in records)
            # Each host's "/" and its "/p0" are two URLs for one page: hosts x (pages + 1).
            bound = min(workers, args.hosts * args.per_host) / args.latency
            rate = len(records) / wall
            print(
                f"| {workers} | {bound:,.0f} | {rate:,.0f} | {rate / bound * 100:.0f}% | "
                f"{cpu / len(records) * 1000:.2f} | {rss:.0f} | {ok} ok of "
                f"{total + args.hosts} (exit {code}) |"
            )
            os.unlink(out)
    finally:
        server.terminate()
        server.wait(timeout=10)
        time.sleep(0)


if __name__ == "__main__":
    main()
