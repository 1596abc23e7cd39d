"""Crawl benchmark: trio-scrape and its peers side by side on one generated site.

Generates the site (bench/sitegen.py), serves it on 127.0.0.1 with nginx when installed (one
worker, keep-alive, no gzip, no access log) or else with Python's http.server (far slower:
a warning says so), then runs every crawler RUNS times after one warm-up round, the crawlers
taking turns within each round (paired runs: a noisy machine slows them alike), and prints one
table: pages/s (median wall), CPU ms/page (user+sys of the crawler and its child processes),
peak RSS of all the crawler's processes together (sampled every 20 ms), pages fetched (checked
against the site: each page once, with its title) and each crawler's speed relative to
trio-scrape with ``--processes auto``. Peers whose packages are missing are skipped with a note.
Python crawlers run with their bytecode cached in the run's temp dir (the warm-up round fills
it), even where PYTHONDONTWRITEBYTECODE is set: see ``bytecode_env``.

trio-scrape runs three ways: with ``--processes auto`` (in one process on 2 CPUs or fewer), in
one process, and with 2 worker processes (the worker-process path, whatever ``auto`` means
here); and, when the installed build is compiled (a wheel: ``pip install .``, see
hatch_build.py), a fourth: ``auto`` with the compiled modules set aside
(``TRIO_SCRAPE_PURE_PYTHON=1``). The table's header says which build ran. The Node peer (global
fetch + p-limit + regular expressions, bench/peers/node) needs ``node`` and ``npm``: its one
dependency is installed once into a directory under the system's temp dir, never the repo.

    python bench/run.py                       # 10,000 pages, 3 runs, concurrency 16
    python bench/run.py --pages 2000 --runs 1 --crawlers "trio-scrape,aiohttp+selectolax"
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
import threading
import time
import urllib.request
from collections.abc import Callable
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


def node_peer() -> str | None:
    """bench/peers/node/crawl.mjs copied beside its installed dependency (p-limit) in a temp
    directory; None when node or npm is missing or the install fails."""
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    source = HERE / "peers" / "node"
    target = Path(tempfile.gettempdir()) / "trio-scrape-bench-node"
    target.mkdir(exist_ok=True)
    for name in ("package.json", "crawl.mjs"):
        shutil.copyfile(source / name, target / name)
    if not (target / "node_modules" / "p-limit").is_dir():
        result = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=target,
            capture_output=True,
            timeout=300,
            check=False,
        )
        if result.returncode:
            print(f"npm install failed: {result.stderr.decode()[-300:]}", file=sys.stderr)
            return None
    return str(target / "crawl.mjs")


def crawler_commands(
    start: str, c: int, out: str
) -> dict[str, tuple[list[str], Callable[[], bool]]]:
    """name -> (command, whether it can run here)."""
    py = sys.executable
    ours = [py, "-P", "-m", "trio_scrape", "run", start, "--depth", "1000", "--links"]
    ours += ["--workers", str(c), "-q", "-o", out]

    def importable(module: str) -> Callable[[], bool]:
        return lambda: importlib.util.find_spec(module) is not None

    node = node_peer()
    return {
        "trio-scrape": ([*ours, "--processes", "auto"], importable("trio_scrape")),
        "trio-scrape (1 process)": ([*ours, "--processes", "1"], importable("trio_scrape")),
        "trio-scrape (2 processes)": ([*ours, "--processes", "2"], importable("trio_scrape")),
        # The same install with its mypyc-compiled modules set aside (trio_scrape/_pure.py).
        "trio-scrape (plain Python)": (
            ["env", "TRIO_SCRAPE_PURE_PYTHON=1", *ours, "--processes", "auto"],
            lambda: trio_scrape_build() == "compiled",
        ),
        "node (fetch + p-limit + regex)": (
            ["node", node or "missing", start, "-c", str(c), "-o", out],
            lambda: node is not None,
        ),
        "aiohttp+selectolax": (
            [py, str(HERE / "peers/aiohttp_pattern.py"), start, "-c", str(c), "-o", out],
            importable("aiohttp"),
        ),
        "trio-httpx (naive)": (
            [py, str(HERE / "peers/trio_httpx.py"), start, "-c", str(c), "-o", out],
            importable("selectolax"),
        ),
        "scrapy": (
            [py, str(HERE / "peers/scrapy_spider.py"), start, "-c", str(c), "-o", out],
            importable("scrapy"),
        ),
    }


def trio_scrape_build() -> str:
    """How the installed trio-scrape was built: "compiled" (a wheel, its per-page modules
    compiled by mypyc: hatch_build.py), "plain Python" (an editable install) or "missing"."""
    spec = importlib.util.find_spec("trio_scrape.model.urls")
    if spec is None or spec.origin is None:
        return "missing"
    return "plain Python" if spec.origin.endswith(".py") else "compiled"


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


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc (0 where unreadable)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(entry.name)
        children.setdefault(int(fields[1]), []).append(child)
        rss[child] = int(fields[21]) * PAGE_SIZE
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def measure(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, float, int]:
    """Run once (``env``: its environment, default ours): wall seconds, user+sys CPU seconds
    (children included), peak RSS MiB of the whole process tree, exit code."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    errors_text = process.stderr.read()  # until the crawler exits (its children with it)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = errors_text.decode(errors="replace").strip()
    if process.returncode:
        print(f"  exit {process.returncode}: {errors[-500:]}", file=sys.stderr)
    # wait4's usage is the crawler's own plus its waited-for children's (worker processes).
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, max(peak, usage.ru_maxrss * 1024) / 2**20, process.returncode


def bytecode_env(workdir: Path) -> dict[str, str]:
    """Our environment, with Python's bytecode cached under ``workdir`` for every Python
    crawler (filled by the warm-up round), as an installed package has it. Where
    PYTHONDONTWRITEBYTECODE is set (it is on the development machines), an editable checkout
    was otherwise compiled anew at every start: ~25 ms of trio-scrape's ~12,000 lines a run."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


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


def prepare_site(site: Path, pages: int, port: int) -> set[str]:
    """Generate the benchmark site of ``pages`` pages in ``site`` (unless it is there
    already) and return the URLs of its pages as served on 127.0.0.1:``port``."""
    paths = site / "paths.txt"
    if not paths.exists() or len(paths.read_text().split()) != pages:
        shutil.rmtree(site, ignore_errors=True)
        sitegen.generate(site, pages)
    return {f"http://127.0.0.1:{port}{path}" for path in paths.read_text().split()}


def main() -> None:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument(
        "--crawlers",
        default=(
            "trio-scrape,trio-scrape (1 process),trio-scrape (2 processes),"
            "trio-scrape (plain Python),node (fetch + p-limit + regex),aiohttp+selectolax,"
            "trio-httpx (naive),scrapy"
        ),
    )
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench"
    )
    parser.add_argument("--port", type=int, default=PORT, help="the site's port on 127.0.0.1")
    args = parser.parse_args()
    PORT = args.port

    expected = prepare_site(args.site, args.pages, PORT)
    base = f"http://127.0.0.1:{PORT}"
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-bench-"))
    server = start_server(args.site / "www", workdir)
    results: dict[str, list[tuple[float, float, float, int]]] = {}
    checked: dict[str, str] = {}
    try:
        out = str(workdir / "out.jsonl")
        commands = crawler_commands(base + "/index.html", args.concurrency, out)
        names = []
        for name in [n.strip() for n in args.crawlers.split(",")]:
            if not commands[name][1]():
                print(f"skipping {name}: not available here", file=sys.stderr)
                continue
            names.append(name)
            results[name] = []
        for round_ in range(args.runs + 1):  # round 0 warms up (page cache, imports)
            print(f"round {round_}/{args.runs}", file=sys.stderr)
            for name in names:
                run = measure(commands[name][0], bytecode_env(workdir))
                if round_:
                    results[name].append(run)
                checked[name] = verify(out, expected)
    finally:
        server.send_signal(signal.SIGQUIT if shutil.which("nginx") else signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        low, high = min(r[0] for r in runs), max(r[0] for r in runs)
        rows.append(
            (name, args.pages / wall, cpu / args.pages * 1000, rss, checked[name], low, high)
        )
    ours = next((r[1] for r in rows if r[0] == "trio-scrape"), None)
    print(
        f"\n{args.pages} pages, concurrency {args.concurrency}, median of {args.runs} paired "
        f"runs after a warm-up round, {os.cpu_count()} CPUs; trio-scrape: "
        f"{trio_scrape_build()} build\n"
    )
    print(
        "| crawler | pages/s | wall s min-max | CPU ms/page | peak RSS MB (all processes) | "
        "pages | speed vs trio-scrape |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, rate, cpu_ms, rss, ok, low, high in rows:
        ratio = f"{rate / ours:.2f}x" if ours else "-"
        print(
            f"| {name} | {rate:,.0f} | {low:.2f}-{high:.2f} | {cpu_ms:.2f} | {rss:.0f} | "
            f"{ok} | {ratio} |"
        )


if __name__ == "__main__":
    main()
