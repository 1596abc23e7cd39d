"""Scraper benchmark: do items cost the crawl? trio-scrape crawling, trio-scrape scraping, Scrapy.

On the items site (bench/scrape_site.py: bench/sitegen.py's benchmark site with 10 product
blocks of 4 fields a page, the same links), served by nginx as bench/run.py serves it, three
crawlers take turns in every round (paired runs: a loaded machine slows them alike; the order
reverses every other round), after one warm-up round:

- crawl: ``trio-scrape run URL --depth 1000 --workers 16 -q -o FILE`` (a record a page);
- scrape: ``trio-scrape crawl bench/scrape_spider.py URL --workers 16 -q -o FILE`` (10 items
  a page, every link followed with ``ctx.enqueue_links``);
- links, fields (``--runs``): the same spider with only its links (bench/scrape_spider_links.py)
  and with its fields read but no item emitted (bench/scrape_spider_fields.py), which split the
  scraper's cost into following links, reading fields and writing items;
- before (``--before-python``): the scrape on another build, in the same rounds (a change's
  own effect, measured side by side);
- scrapy: bench/peers/scrapy_items.py, the same items as Scrapy's tutorial writes a spider,
  a JSON Lines feed, 16 concurrent requests, 8 per host (trio-scrape's default), robots.txt
  obeyed, no AutoThrottle.

Every run is checked twice: nginx's access log (on for this server, unbuffered, the same for
every crawler) must show each page fetched exactly once and nothing else but /robots.txt, and
the output must hold each page's record once (crawl) or each of the site's items exactly once
and equal to the ground truth (scrape, scrapy). A run that fails a check is reported as such.

Prints pages/s (median wall), CPU ms/page (user+sys, child processes included), their ranges,
and the ratios scrape/crawl and scrape/scrapy: of the medians, and the median of the per-round
ratios (the paired figure, robust to load that changes between rounds).

Run trio-scrape as the compiled wheel (bench/run.py's docstring) and Scrapy from its own venv::

    TRIO_SCRAPE_COMPILE=1 pip wheel . --no-deps -w /tmp/wheel && pip install /tmp/wheel/*.whl
    python -m venv /tmp/scrapy-venv && /tmp/scrapy-venv/bin/pip install scrapy
    python bench/scrape.py --rounds 5 --trio-python /tmp/ts-venv/bin/python \\
        --scrapy-python /tmp/scrapy-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402
import scrape_site  # noqa: E402

NAMES = ("crawl", "links", "fields", "scrape", "before", "scrapy")
DEFAULT_RUNS = "crawl,scrape,scrapy"
REQUEST = re.compile(r'"GET (\S+) HTTP/[\d.]+"')


def build_of(python: str) -> str:
    """The trio-scrape build that ``python`` imports: compiled or plain Python."""
    code = "import trio_scrape.model.urls as m; print(m.__file__)"
    origin = subprocess.run([python, "-P", "-c", code], capture_output=True, text=True, check=True)
    return "plain Python" if origin.stdout.strip().endswith(".py") else "compiled (mypyc)"


def commands(
    start: str,
    out: str,
    workers: int,
    trio_python: str,
    scrapy_python: str | None,
    before_python: str | None = None,
) -> dict[str, list[str]]:
    ours = str(Path(trio_python).parent / "trio-scrape")
    common = ["--workers", str(workers), "-q", "-o", out]
    found = {
        "crawl": [ours, "run", start, "--depth", "1000", *common],
        "scrape": [ours, "crawl", str(HERE / "scrape_spider.py"), start, *common],
        "links": [ours, "crawl", str(HERE / "scrape_spider_links.py"), start, *common],
        "fields": [ours, "crawl", str(HERE / "scrape_spider_fields.py"), start, *common],
    }
    if before_python:  # the same spider on another build, in the same rounds
        theirs = str(Path(before_python).parent / "trio-scrape")
        found["before"] = [theirs, "crawl", str(HERE / "scrape_spider.py"), start, *common]
    if scrapy_python:
        scrapy = [scrapy_python, str(HERE / "peers" / "scrapy_items.py"), start, "-o", out]
        found["scrapy"] = [*scrapy, "-c", str(workers)]
    return found


def fetched(log: Path, offset: int, sentinel: str) -> Counter[str]:
    """The paths GET since ``offset`` in nginx's log, once ``sentinel`` (fetched after the
    crawler exited) is there: nginx writes a request's line when it has answered it."""
    for _ in range(200):  # bounded: 200 x 50 ms
        with open(log, "rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
        if sentinel in text:
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"nginx did not log {sentinel}")
    paths = Counter(REQUEST.findall(text))
    del paths[sentinel]
    return paths


def check_fetches(paths: Counter[str], expected: set[str]) -> str:
    robots = paths.pop("/robots.txt", 0)
    twice = sum(1 for p, n in paths.items() if n > 1 and p in expected)
    missing = len(expected - paths.keys())
    extra = len(paths.keys() - expected)
    if twice or missing or extra or robots > 1:
        return f"WRONG fetches (twice {twice}, missing {missing}, extra {extra}, robots {robots})"
    return "ok"


def check_items(out: str, truth: dict[str, dict[str, object]]) -> str:
    seen: Counter[str] = Counter()
    wrong = 0
    with open(out, encoding="utf-8") as file:
        for line in file:
            item = json.loads(line)
            seen[item.get("sku")] += 1
            wrong += item != truth.get(item.get("sku"))
    twice = sum(1 for n in seen.values() if n > 1)
    missing = len(truth.keys() - seen.keys())
    if twice or missing or wrong or len(seen) != len(truth):
        lines = seen.total()
        return f"WRONG items (lines {lines}, twice {twice}, missing {missing}, wrong {wrong})"
    return "ok"


PROFILED = """
import cProfile, sys, time
out, sys.argv = sys.argv[1], ["trio-scrape", *sys.argv[2:]]
from trio_scrape.cli.app import main
profile = cProfile.Profile(time.process_time)  # CPU: a loaded machine deschedules the process
profile.enable()
try:
    main()
except SystemExit:
    pass
finally:
    profile.disable()
    profile.dump_stats(out)
"""


def profile(
    cmds: dict[str, list[str]], args: argparse.Namespace, workdir: Path, env: dict[str, str]
) -> None:
    """Run crawl and scrape under cProfile (after a warm-up run each) and print each one's
    top functions by own time, and by cumulative time, per page."""
    import pstats

    for name in ("crawl", "scrape"):
        # Not `python -m cProfile`: trio-scrape's entry point ends the process with os._exit.
        command = [args.trio_python, "-P", "-c", PROFILED, str(workdir / f"{name}.prof")]
        command += cmds[name][1:]
        run.measure(cmds[name], env)  # warm-up: bytecode, page cache
        wall, cpu, _, code = run.measure(command, env)
        print(
            f"\n## {name}: {wall:.2f} s wall, {cpu * 1000 / args.pages:.2f} CPU ms/page "
            f"under cProfile, exit {code}"
        )
        stats = pstats.Stats(str(workdir / f"{name}.prof"))
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (after 1 warm-up)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument(
        "--runs",
        default=DEFAULT_RUNS,
        help=f"which of {', '.join(NAMES)} to run (links: the scrape spider without its fields and"
        " items; fields: without its items)",
    )
    parser.add_argument("--trio-python", default=sys.executable, help="the Python with trio-scrape")
    parser.add_argument("--scrapy-python", help="the Python with Scrapy (none: no Scrapy runs)")
    parser.add_argument(
        "--before-python",
        help="another build's Python: its scrape runs in the same rounds as 'before' (a change's "
        "own effect, side by side)",
    )
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench-items"
    )
    parser.add_argument("--port", type=int, default=run.PORT, help="the site's port on 127.0.0.1")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="instead: run crawl and scrape once each under cProfile, print the N top functions",
    )
    args = parser.parse_args()
    run.PORT = args.port

    paths_file = args.site / "paths.txt"
    if not paths_file.exists() or len(paths_file.read_text().split()) != args.pages:
        scrape_site.generate(args.site, args.pages)
    paths = set(paths_file.read_text().split())
    base = f"http://127.0.0.1:{args.port}"
    urls = {base + p for p in paths}
    with open(args.site / "items.jsonl", encoding="utf-8") as file:
        truth = {item["sku"]: item for item in map(json.loads, file)}

    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-scrape-bench-"))
    log = workdir / "access.log"
    server = run.start_server(args.site / "www", workdir, extra=f"access_log {log};")
    out = str(workdir / "out.jsonl")
    cmds = commands(
        base + "/index.html",
        out,
        args.workers,
        args.trio_python,
        args.scrapy_python,
        args.before_python,
    )
    wanted = {n.strip() for n in args.runs.split(",")}
    names = [n for n in NAMES if n in cmds and (n in wanted or n == "before")]
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    checks: dict[str, list[str]] = {n: [] for n in names}
    env = run.bytecode_env(workdir)
    if args.profile:
        try:
            profile(cmds, args, workdir, env)
        finally:
            server.send_signal(signal.SIGQUIT)
            server.wait(timeout=10)
            shutil.rmtree(workdir, ignore_errors=True)
        return
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up (page cache, bytecode)
            order = names if round_ % 2 == 0 else names[::-1]
            print(f"round {round_}/{args.rounds}: {', '.join(order)}", file=sys.stderr)
            for name in order:
                offset = log.stat().st_size
                if os.path.exists(out):
                    os.unlink(out)
                wall, cpu, rss, code = run.measure(cmds[name], env)
                sentinel = f"/sentinel-{round_}-{name}"
                try:
                    urllib.request.urlopen(base + sentinel, timeout=10)
                except OSError:
                    pass  # a 404: logged all the same
                verdict = check_fetches(fetched(log, offset, sentinel), paths)
                if name == "crawl":
                    output = run.verify(out, urls)
                elif name in ("links", "fields"):
                    output = "ok" if os.path.getsize(out) == 0 else "WRONG: items written"
                else:
                    output = check_items(out, truth)
                if not output.endswith("ok"):
                    verdict = f"{verdict}; {output}" if verdict != "ok" else output
                if code:
                    verdict = f"exit {code}; {verdict}"
                print(
                    f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MiB: {verdict}",
                    file=sys.stderr,
                )
                if round_:
                    results[name].append((wall, cpu, rss))
                    checks[name].append(verdict)
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    n = args.pages
    print(
        f"\n{n} pages ({scrape_site.ITEMS_PER_PAGE} items each), {args.workers} workers, median "
        f"of {args.rounds} paired rounds after a warm-up, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; trio-scrape {build_of(args.trio_python)}\n"
    )
    print(
        "| run | pages/s | wall s min-max | CPU ms/page | CPU ms/page min-max | peak RSS MiB "
        "| checks |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name in names:
        walls = [r[0] for r in results[name]]
        cpus = [r[1] * 1000 / n for r in results[name]]
        ok = sum(c == "ok" for c in checks[name])
        print(
            f"| {name} | {n / statistics.median(walls):,.0f} | {min(walls):.2f}-{max(walls):.2f}"
            f" | {statistics.median(cpus):.2f} | {min(cpus):.2f}-{max(cpus):.2f} | "
            f"{max(r[2] for r in results[name]):.0f} | {ok}/{len(checks[name])} ok |"
        )
    print()

    def ratio(top: str, bottom: str) -> None:
        if top not in results or bottom not in results:
            return
        rate = [b[0] / t[0] for t, b in zip(results[top], results[bottom], strict=True)]
        cpu = [t[1] / b[1] for t, b in zip(results[top], results[bottom], strict=True)]
        medians = statistics.median(r[0] for r in results[bottom]) / statistics.median(
            r[0] for r in results[top]
        )
        print(
            f"{top}/{bottom}: speed {medians:.2f}x (ratio of medians), "
            f"{statistics.median(rate):.2f}x (median of per-round ratios, "
            f"{min(rate):.2f}-{max(rate):.2f}); CPU per page "
            f"{statistics.median(cpu):.2f}x {bottom}'s (per-round median)"
        )

    ratio("scrape", "crawl")
    ratio("links", "crawl")
    ratio("fields", "links")
    ratio("scrape", "fields")
    ratio("scrape", "links")
    ratio("scrape", "before")
    ratio("scrape", "scrapy")


if __name__ == "__main__":
    main()
