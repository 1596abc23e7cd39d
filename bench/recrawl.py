"""A recrawl against a first crawl: the benchmark site (bench/sitegen.py, 10,000 pages of
~25 KB) served by nginx on 127.0.0.1, crawled once with ``--state``, then 1% of its pages
rewritten (a new body, so nginx gives them a new ETag and Last-Modified) and crawled again
with ``--recrawl``. Printed for each: wall time, CPU, requests by status, and the recrawl's
changed / unchanged counts. nginx answers the recrawl's conditional requests itself
(``If-None-Match`` / ``If-Modified-Since`` -> 304 with no body). The bench then checks that
exactly the rewritten pages came back 200 and ``changed`` and every other page 304 and
``unchanged``, and exits 1 if not.

nginx's ``open_file_cache`` (bench/run.py turns it on for the speed benches) is turned off
here: it keeps each file's size, ETag and Last-Modified for up to 60 s, so a page rewritten
in place within that time is served with its old validators (and cut to its old length)
and answered 304. At 300 pages every page was in that cache and the recrawl saw no change
at all; at 10,000 pages a page was evicted (8,000 entries) before the recrawl asked again.

    python bench/recrawl.py                     # 10,000 pages, 1% changed
    python bench/recrawl.py --pages 2000 --changed 0.05 --port 8194
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402
import sitegen  # noqa: E402
from million import crawl  # noqa: E402


def check(records: list[dict[str, Any]], changed: set[str], pages: int) -> list[str]:
    """What is wrong with a recrawl's records: each page once, the ``changed`` URLs 200
    and ``changed``, every other one 304 and ``unchanged``."""
    wrong = []
    urls = Counter(r["url"] for r in records)
    if len(urls) != pages or max(urls.values()) != 1:
        wrong.append(f"{len(urls):,} pages in {len(records):,} records, {pages:,} expected once")
    for r in records:
        want = (200, "changed") if r["url"] in changed else (304, "unchanged")
        got = (r["status"], r["data"].get("change"))
        if got != want:
            wrong.append(f"{r['url']}: {got}, expected {want}")
            if len(wrong) > 10:
                break
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01, help="fraction rewritten")
    parser.add_argument("--port", type=int, default=run.PORT)
    options = parser.parse_args()
    run.PORT = options.port
    with tempfile.TemporaryDirectory(prefix="trio-scrape-recrawl-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as nobody when started by root
        sitegen.generate(work, options.pages)
        # A site that changes between crawls: nginx must look at the files each time.
        server = run.start_server(work / "www", work, extra="open_file_cache off;")
        try:
            out = work / "out.jsonl"
            args = [f"http://127.0.0.1:{options.port}/index.html", "--depth", "1000"]
            args += ["--no-robots", "-o", str(out), "--state", str(work / "state.db"), "-q"]
            print(f"{options.pages:,} pages; nginx on 127.0.0.1; machine shared")
            print(f"{'crawl':<28} {'wall s':>7} {'CPU s':>6}  requests by status; changes")
            _, wall, cpu, _, _ = crawl(args)
            statuses = Counter(json.loads(line)["status"] for line in out.open())
            print(f"{'first crawl (--state)':<28} {wall:>7.2f} {cpu:>6.1f}  {dict(statuses)}")
            rng = random.Random(16)
            paths = (work / "paths.txt").read_text().split()
            changed = rng.sample(paths, round(len(paths) * options.changed))
            for path in changed:
                page = work / "www" / path.lstrip("/")
                page.write_text(page.read_text().replace("</body>", "<p>changed</p></body>"))
            time.sleep(1.1)  # Last-Modified has 1 s resolution: changes must be later
            _, wall, cpu, _, _ = crawl([*args, "--recrawl"])
            records = [json.loads(line) for line in out.open()]
            statuses = Counter(r["status"] for r in records)
            changes = Counter(r["data"].get("change") for r in records)
            print(
                f"{f'recrawl, {len(changed)} changed':<28} {wall:>7.2f} {cpu:>6.1f}"
                f"  {dict(statuses)}; {dict(changes)}"
            )
            sent = sum(r["bytes"] for r in records)
            print(f"recrawl bodies received: {sent / 1e6:.1f} MB")
            base = f"http://127.0.0.1:{options.port}"
            wrong = check(records, {base + path for path in changed}, len(paths))
            if wrong:
                print("WRONG: " + "; ".join(wrong))
                raise SystemExit(1)
            print(f"checked: the {len(changed)} rewritten pages 200 and changed, the rest 304")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
