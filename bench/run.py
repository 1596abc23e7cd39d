"""Crawl benchmark: trio-scrape and its peers side by side on one generated site.

Generates the site (bench/sitegen.py), serves it on 127.0.0.1 with nginx when installed (one
worker, keep-alive, no gzip, no access log) or else with Python's http.server (far slower:
a warning says so), then runs every crawler RUNS times after one warm-up, in turn, and prints
one table: pages/s (median wall), CPU ms/page (user+sys), peak RSS, pages fetched (checked
against the site: each page once, with its title) and each crawler's speed relative to
trio-scrape. Peers whose packages are missing are skipped with a note.

    python bench/run.py                       # 10,000 pages, 3 runs, concurrency 16
    python bench/run.py --pages 2000 --runs 1 --crawlers trio-scrape,aiohttp
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sitegen  # noqa: E402

PORT = 8091
NGINX_CONF = """
worker_processes 1;
# The file cache below holds open descriptors: it must stay well under the worker's limit, or a
# 100,000-page site exhausts it and nginx answers 500 and stops accepting for a while.
worker_rlimit_nofile 16384;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    open_file_cache max=8000 inactive=60s;
    gzip off;
    types {{ text/html html; }}
    charset utf-8;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{ listen 127.0.0.1:{port}; root {root}; {extra} }}
}}
"""


def crawler_commands(start: str, c: int, out: str) -> dict[str, tuple[list[str], str | None]]:
    """name -> (command, module that must be importable)."""
    py = sys.executable
    return {
        "trio-scrape": (
            [
                py,
                "-m",
                "trio_scrape",
                "run",
                start,
                "--depth",
                "1000",
                "--links",
                "--workers",
                str(c),
                "-q",
                "-o",
                out,
            ],
            "trio_scrape",
        ),
        "trio-httpx (naive)": (
            [py, str(HERE / "peers/trio_httpx.py"), start, "-c", str(c), "-o", out],
            "selectolax",
        ),
        "aiohttp+selectolax": (
            [py, str(HERE / "peers/aiohttp_pattern.py"), start, "-c", str(c), "-o", out],
            "aiohttp",
        ),
        "scrapy": (
            [py, str(HERE / "peers/scrapy_spider.py"), start, "-c", str(c), "-o", out],
            "scrapy",
        ),
    }


def start_server(root: Path, workdir: Path, extra: str = "") -> subprocess.Popen[bytes]:
    """Serve ``root`` (``extra``: more nginx directives for the server block)."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx:
        prefix = workdir / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=PORT, root=root, extra=extra))
        server = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(prefix)], stderr=subprocess.DEVNULL
        )
        label = "nginx, 1 worker"
    else:
        print(
            "WARNING: nginx not found (apt-get install nginx-light): serving with Python's "
            "http.server, which is slower than the crawlers; figures measure the server.",
            file=sys.stderr,
        )
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                str(PORT),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        label = "python http.server"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/index.html", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()  # SIGTERM: nginx's master takes its worker down too
                server.wait()
                raise SystemExit(f"the {label} server did not start on 127.0.0.1:{PORT}") from None
            time.sleep(0.1)
    print(f"server: {label} on 127.0.0.1:{PORT}", file=sys.stderr)
    return server


def measure(command: list[str]) -> tuple[float, float, float, int]:
    """Run once: wall seconds, user+sys CPU seconds, peak RSS MiB, exit code."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode(errors="replace").strip()
    if process.returncode:
        print(f"  exit {process.returncode}: {errors[-500:]}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def verify(out: str, expected: set[str]) -> str:
    urls: list[str] = []
    untitled = 0
    with open(out) as file:
        for line in file:
            record = json.loads(line)
            urls.append(record["url"])
            untitled += not (record.get("title") or "").startswith("Page ")
    unique = set(urls)
    if len(urls) == len(expected) and unique == expected and not untitled:
        return f"{len(urls)} ok"
    return (
        f"{len(urls)} WRONG (unique {len(unique)}, missing {len(expected - unique)}, "
        f"extra {len(unique - expected)}, untitled {untitled})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument(
        "--crawlers", default="trio-scrape,trio-httpx (naive),aiohttp+selectolax,scrapy"
    )
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench"
    )
    args = parser.parse_args()

    paths = args.site / "paths.txt"
    if not paths.exists() or len(paths.read_text().split()) != args.pages:
        shutil.rmtree(args.site, ignore_errors=True)
        sitegen.generate(args.site, args.pages)
    base = f"http://127.0.0.1:{PORT}"
    expected = {base + p for p in paths.read_text().split()}
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-bench-"))
    server = start_server(args.site / "www", workdir)
    rows = []
    try:
        commands = crawler_commands(
            base + "/index.html", args.concurrency, str(workdir / "out.jsonl")
        )
        for name in [n.strip() for n in args.crawlers.split(",")]:
            command, module = commands[name]
            if module and importlib.util.find_spec(module) is None:
                print(f"skipping {name}: {module} is not installed", file=sys.stderr)
                continue
            print(f"running {name} ({args.runs} runs + warm-up)", file=sys.stderr)
            runs = [measure(command) for _ in range(args.runs + 1)][1:]
            checked = verify(str(workdir / "out.jsonl"), expected)
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            rows.append(
                (
                    name,
                    args.pages / wall,
                    cpu / args.pages * 1000,
                    rss,
                    checked,
                    min(r[0] for r in runs),
                    max(r[0] for r in runs),
                )
            )
    finally:
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    ours = next((r[1] for r in rows if r[0] == "trio-scrape"), None)
    print(
        f"\n{args.pages} pages, concurrency {args.concurrency}, median of {args.runs} "
        f"runs after a warm-up\n"
    )
    print(
        "| crawler | pages/s | wall s min-max | CPU ms/page | peak RSS MB | pages | "
        "speed vs trio-scrape |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, rate, cpu_ms, rss, checked, low, high in rows:
        ratio = f"{rate / ours:.2f}x" if ours else "-"
        print(
            f"| {name} | {rate:,.0f} | {low:.2f}-{high:.2f} | {cpu_ms:.2f} | {rss:.0f} | "
            f"{checked} | {ratio} |"
        )


if __name__ == "__main__":
    main()
