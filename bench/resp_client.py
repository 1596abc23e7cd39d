"""CPU per call of the fleet's lean Redis client (trio_scrape/frontier/resp.py), against a
throwaway redis-server on 127.0.0.1: a PING, an 8-key MSET of 1.5 KB values, an HMGET of 20
fields, each called 3,000 times in a row from one Trio task.

With ``--against DIR`` (a directory holding another checkout's ``trio_scrape`` package, e.g.
``git archive COMMIT trio_scrape | tar -x -C DIR``), each round measures that client, then
this one, in turns, and prints the ratio per round.

    python bench/resp_client.py --rounds 3
    python bench/resp_client.py --rounds 3 --against /tmp/trio-scrape-base
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALLS = 3_000

MEASURE = """
import json, sys, time
import trio
from trio_scrape.frontier.resp import RespPool

CALLS = int(sys.argv[2])

async def main(port):
    pool = RespPool(f"redis://127.0.0.1:{port}/0")
    await pool.command("PING")
    big = b"x" * 1500
    cases = {
        "PING": ("PING",),
        "MSET 8 x 1.5 KB": ("MSET",) + ("k", big) * 8,
        "HMGET 20 fields": ("HMGET", "h") + tuple(f"f{i}" for i in range(20)),
    }
    out = {}
    for label, parts in cases.items():
        started = time.process_time()
        for _ in range(CALLS):
            await pool.command(*parts)
        out[label] = (time.process_time() - started) / CALLS * 1e6
    await pool.aclose()
    print(json.dumps(out))

trio.run(main, int(sys.argv[1]))
"""


def measure(port: int, path: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    # Run from a neutral directory: `python -c` puts the current one first on sys.path.
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(port), str(CALLS)],
        env=env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout's package directory")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-resp-"))
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    here = str(HERE.parent)
    rows: dict[str, list[tuple[float, float | None]]] = {}
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True
        ).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.1)
        for _ in range(args.rounds):
            other = measure(port, str(args.against)) if args.against else None
            this = measure(port, here)
            for label, value in this.items():
                rows.setdefault(label, []).append((value, other[label] if other else None))
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nCPU us per call, {CALLS:,} calls in a row, {args.rounds} rounds\n")
    if args.against:
        print("| call | this: us per round | other: us per round | this / other (median) |")
        print("| --- | --- | --- | ---: |")
    else:
        print("| call | us per round | median |")
        print("| --- | --- | ---: |")
    for label, values in rows.items():
        this_text = ", ".join(f"{v:.1f}" for v, _ in values)
        if args.against:
            other_text = ", ".join(f"{o:.1f}" for _, o in values if o is not None)
            ratio = statistics.median(v / o for v, o in values if o)
            print(f"| {label} | {this_text} | {other_text} | {ratio:.2f}x |")
        else:
            print(f"| {label} | {this_text} | {statistics.median(v for v, _ in values):.1f} |")


if __name__ == "__main__":
    main()
