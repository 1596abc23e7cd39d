"""Where trio-scrape's time goes: a py-spy profile of one benchmark crawl, by component.

Serves the benchmark site like run.py, runs ``py-spy record --idle`` on one trio-scrape crawl,
and charges each sample to the innermost frame it can name: HTML parsing (selectolax, inside
parse_html), URL work, HTTP (h11, httpx, our transport), socket syscalls, trio's scheduler,
output, the engine itself. Needs py-spy (``pip install py-spy``).

    python bench/profile.py --pages 10000
    python bench/profile.py --functions 30    # also the 30 hottest innermost frames
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402
import sitegen  # noqa: E402

# (component, predicate on "function (file)") from the innermost frame outwards.
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("HTML parse (selectolax/lexbor)", ("parse_html (",)),
    ("charset decoding", ("decode_body (", "charset_normalizer")),
    ("URL resolution and scope", ("_urls.py", "urllib/parse.py", "(ada_url/")),
    ("h11 (HTTP/1.1 parsing)", ("(h11/",)),
    ("socket syscalls", ("(trio/_socket.py", "(trio/_highlevel_socket.py", "(trio/_ssl.py")),
    ("our transport (pool, framing)", ("_transport.py",)),
    ("httpcore (httpx's default connection pool)", ("(httpcore/",)),
    ("httpx (requests, responses, headers)", ("(httpx/",)),
    ("output (records, JSON, writes)", ("_sinks.py", "orjson", "(json/")),
    ("frontier", ("_frontier.py",)),
    ("trio (scheduler, channels, scopes)", ("(trio/",)),
    ("engine (crawler, fetcher)", ("_crawler.py", "_fetch.py", "_page.py")),
]


def classify(frames: list[str]) -> str:
    for frame in reversed(frames):
        for component, needles in RULES:
            if any(n in frame for n in needles):
                return component
    return "other (startup, interpreter)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument(
        "--site", type=Path, default=Path(tempfile.gettempdir()) / "trio-scrape-bench"
    )
    parser.add_argument("--functions", type=int, default=0, help="print the N hottest frames")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is needed: pip install py-spy")
    paths = args.site / "paths.txt"
    if not paths.exists() or len(paths.read_text().split()) != args.pages:
        shutil.rmtree(args.site, ignore_errors=True)
        sitegen.generate(args.site, args.pages)
    workdir = Path(tempfile.mkdtemp(prefix="trio-scrape-profile-"))
    server = run.start_server(args.site / "www", workdir)
    raw = workdir / "profile.txt"
    try:
        command, _ = run.crawler_commands(
            f"http://127.0.0.1:{run.PORT}/index.html", args.concurrency, str(workdir / "out.jsonl")
        )["trio-scrape (1 process)"]
        subprocess.run(
            [
                py_spy,
                "record",
                "--idle",
                "-r",
                str(args.rate),
                "-f",
                "raw",
                "-o",
                str(raw),
                "--",
                *command,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shares: collections.Counter[str] = collections.Counter()
        leaves: collections.Counter[str] = collections.Counter()
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            idle = frames[-1].startswith(("epoll", "poll ", "select")) or "get_events" in frames[-1]
            shares["idle (waiting for the network)" if idle else classify(frames)] += int(count)
            leaves[frames[-1]] += int(count)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(shares.values())
    print(f"{total} samples at {args.rate} Hz, {args.pages} pages, concurrency {args.concurrency}")
    for component, count in shares.most_common():
        print(f"{count / total * 100:6.1f}%  {component}")
    if args.functions:
        print("\nhottest innermost frames (self time):")
        for frame, count in leaves.most_common(args.functions):
            print(f"{count / total * 100:6.1f}%  {frame[:110]}")


if __name__ == "__main__":
    main()
