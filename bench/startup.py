"""Start-up benchmark: trio-scrape's time from exec to its first request, and to exit.

Two figures per run of ``python -m trio_scrape run URL -q -o FILE`` (from a neutral working
directory, so no pyproject.toml is read):

- to the first request: URL is a loopback socket that accepts and never answers; the wall
  time from exec until the request's head has arrived, and the CPU time (user + system, wait4)
  the process had spent by then (it is killed, by pid, once the request is in);
- to exit: URL is ``http://127.0.0.1:1/`` (nothing listens there), so the crawl is one failed
  robots.txt and one failed page (with their retries); the CPU time from exec to exit.

To compare code trees, give each as ``--tree NAME=DIR`` (DIR holds a ``trio_scrape`` package
and is put first on PYTHONPATH): they take turns, the order alternating each round, and the
medians are printed side by side. Bytecode is cached for every tree, as an installed package
has it. The machine should be quiet; on a shared one only the ratios
within one call mean anything. Loopback only.

    python bench/startup.py --runs 10
    python bench/startup.py --runs 10 --tree before=/tmp/before --tree after=/tmp/after
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def _command(url: str, out: str) -> list[str]:
    return [sys.executable, "-P", "-m", "trio_scrape", "run", url, "-q", "-o", out]


def to_first_request(env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall and CPU seconds from exec to the first request's head received."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.perf_counter()
        process = subprocess.Popen(
            _command(url, os.path.join(cwd, "first.jsonl")),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            readable, _, _ = select.select([listener], [], [], 30)
            if not readable:
                raise RuntimeError("no request within 30 s")
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(30)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                wall = time.perf_counter() - started
        finally:
            os.kill(process.pid, signal.SIGKILL)
            _, _, usage = os.wait4(process.pid, 0)
            process.returncode = -signal.SIGKILL
    return wall, usage.ru_utime + usage.ru_stime


def to_exit(env: dict[str, str], cwd: str) -> float:
    """CPU seconds from exec to exit of a crawl of a port nothing listens on."""
    process = subprocess.Popen(
        _command("http://127.0.0.1:1/", os.path.join(cwd, "exit.jsonl")),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"exit {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="rounds (after one warm-up)")
    parser.add_argument(
        "--tree", action="append", default=[], metavar="NAME=DIR", help="a code tree to compare"
    )
    args = parser.parse_args()
    trees = [tuple(spec.split("=", 1)) for spec in args.tree] or [("installed", "")]
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory(prefix="trio-scrape-startup-") as cwd:
        for round_ in range(args.runs + 1):
            for name, tree in trees if round_ % 2 else trees[::-1]:
                # Bytecode cached (in the temp dir, filled by the warm-up round) as an installed
                # package has it, even where PYTHONDONTWRITEBYTECODE is set (see bench/run.py).
                env = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(cwd, "pycache"))
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                if tree:
                    env["PYTHONPATH"] = os.pathsep.join(
                        [tree, *filter(None, [os.environ.get("PYTHONPATH")])]
                    )
                wall, cpu = to_first_request(env, cwd)
                exit_cpu = to_exit(env, cwd)
                if round_:  # the first round warms the caches (and writes bytecode)
                    figures[name].append((wall, cpu, exit_cpu))
    print(f"{args.runs} rounds, medians, load average {os.getloadavg()[0]:.1f}")
    print("| tree | to first request: wall ms | CPU ms | to exit (dead port): CPU ms |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in figures.items():
        wall, cpu, exit_cpu = (statistics.median(run[i] for run in runs) for i in range(3))
        print(f"| {name} | {wall * 1000:.0f} | {cpu * 1000:.0f} | {exit_cpu * 1000:.0f} |")


if __name__ == "__main__":
    main()
