"""Memory on a crawl that discovers 1,000,000 URLs, with and without ``--state``.

The site: an index linking to 1,000 hub pages, each linking to 1,000 distinct leaf URLs
(nginx answers every leaf with a tiny page). A crawl with ``--depth 2`` fetches the hubs
first (breadth first), so within seconds its frontier holds a million URLs; it then fetches
leaves until ``--deadline``. Printed: URLs discovered, pages fetched, peak RSS and CPU, for
an in-memory crawl, a crawl with ``--state``, and resuming that state (which loads the
million-URL seen-set back).

    python bench/million.py                  # 1,000 x 1,000 URLs, 40 s per crawl
    python bench/million.py --hubs 200 --deadline 15
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import PORT, start_server  # noqa: E402

LEAVES = 'location /leaf/ { default_type text/html; return 200 "<title>leaf</title>"; }'


def generate(root: Path, hubs: int, fanout: int) -> None:
    (root / "hub").mkdir(parents=True)
    links = "".join(f'<a href="/hub/{i}.html">hub {i}</a>\n' for i in range(hubs))
    (root / "index.html").write_text(f"<title>index</title>{links}")
    for i in range(hubs):
        leaves = "".join(f'<a href="/leaf/{i}/{j}">{j}</a>\n' for j in range(fanout))
        (root / "hub" / f"{i}.html").write_text(f"<title>hub {i}</title>{leaves}")


def crawl(args: list[str]) -> tuple[float, float, float, float, str]:
    """Run trio-scrape: start (epoch s), wall s, CPU s, peak RSS MiB, its stderr (the
    benches in this folder share it)."""
    command = [sys.executable, "-P", "-m", "trio_scrape", "run", *args]
    started = time.time()
    clock = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    # Peak RSS from the process's own VmHWM, sampled every 20 ms (it only grows): wait4's
    # ru_maxrss is no good here, as Linux starts a child's maximum at this process's own peak
    # (subprocess forks with vfork, and exec keeps the old memory's high-water mark), and this
    # process grows when it reads a crawl's output.
    peak_kib = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        peak_kib = max(peak_kib, _high_water_kib(process.pid))
        time.sleep(0.02)
    stderr = process.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"trio-scrape failed: {stderr[-800:]}")
    wall = time.monotonic() - clock
    peak = peak_kib / 1024 if peak_kib else usage.ru_maxrss / 1024  # no /proc: the old way
    return started, wall, usage.ru_utime + usage.ru_stime, peak, stderr


def _high_water_kib(pid: int) -> int:
    """The VmHWM of ``pid`` in KiB (0 if /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def figures(stderr: str) -> tuple[int, int]:
    """(pages fetched, URLs left unvisited) from the summary line."""
    pages = re.search(r"trio-scrape: ([\d,]+) pages?", stderr)
    left = re.search(r"([\d,]+) URLs? left unvisited", stderr)
    return (
        int(pages.group(1).replace(",", "")) if pages else 0,
        int(left.group(1).replace(",", "")) if left else 0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--fanout", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=40.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trio-scrape-million-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as nobody when started by root
        generate(work / "site", options.hubs, options.fanout)
        server = start_server(work / "site", work, extra=LEAVES)
        try:
            seed = f"http://127.0.0.1:{PORT}/index.html"
            common = [seed, "--depth", "2", "--deadline", str(options.deadline), "--no-robots"]
            state = str(work / "state.db")
            runs = [
                ("in memory", [*common, "-o", str(work / "a.jsonl")]),
                ("--state", [*common, "-o", str(work / "b.jsonl"), "--state", state]),
                ("--state, resumed", [*common, "-o", str(work / "b.jsonl"), "--state", state]),
            ]
            print(
                f"{'crawl':<18} {'discovered':>10} {'fetched':>8} {'wall s':>7} "
                f"{'CPU s':>6} {'peak RSS MB':>11}"
            )
            for name, args in runs:
                _, wall, cpu, rss, stderr = crawl(args)
                pages, left = figures(stderr)
                discovered = pages + left
                if name.endswith("resumed"):
                    done = re.search(r"([\d,]+) pages done", stderr)
                    discovered += int(done.group(1).replace(",", "")) if done else 0
                print(
                    f"{name:<18} {discovered:>10,} {pages:>8,} {wall:>7.1f} {cpu:>6.1f} "
                    f"{rss:>11.0f}"
                )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
