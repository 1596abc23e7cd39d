"""The live progress display: on a terminal only, never mixed into the records."""

from __future__ import annotations

import json
import os
import pty
import subprocess

import trio

from trio_scrape import CrawlStatistics
from trio_scrape.cli.progress import status_line, stderr_console, summary_table

from .site import Reply, Request, Site, html_page
from .test_cli import CLI, cli, records


def slow_site(site: Site, pages: int) -> None:
    async def page(request: Request) -> Reply:
        await trio.sleep(0.05)  # the server is slow: the crawl lasts long enough to draw
        i = int(request.path[1:])
        return Reply(body=html_page(f"P{i}", [f"/{i + 1}"] if i + 1 < pages else []))

    for i in range(pages):
        site.add(f"/{i}", page)


async def run_on_a_terminal(*args: str) -> tuple[bytes, bytes, int]:
    """Run the CLI with stderr on a pseudo-terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    try:
        process = await trio.lowlevel.open_process(
            [*CLI, *args], stdout=subprocess.PIPE, stderr=slave, env=env
        )
    finally:
        os.close(slave)
    terminal = b""
    stdout = b""
    assert process.stdout is not None
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def read_stdout() -> None:
                nonlocal stdout
                assert process.stdout is not None
                while chunk := await process.stdout.receive_some():
                    stdout += chunk

            nursery.start_soon(read_stdout)
            stream = trio.lowlevel.FdStream(master)
            try:
                while True:
                    try:
                        chunk = await stream.receive_some()
                    except (OSError, trio.BrokenResourceError):  # EIO: terminal closed
                        break
                    if not chunk:
                        break
                    terminal += chunk
            finally:
                await stream.aclose()
        code = await process.wait()
    return terminal, stdout, code


async def test_progress_on_a_terminal_and_records_stay_clean(site: Site) -> None:
    slow_site(site, 20)
    terminal, stdout, code = await run_on_a_terminal(
        "run", site.url("/0"), "--depth", "30", "--max-pages", "20", "--no-robots"
    )
    assert code == 0, terminal
    assert b"pages/s | queued" in terminal  # the live status line
    assert b"\x1b[" in terminal  # drawn with terminal control sequences
    assert b"crawl summary" in terminal and b"p95" in terminal and b"200: 20" in terminal
    got = records(stdout)  # every stdout line is a JSON record, nothing else
    assert [r["title"] for r in got] == [f"P{i}" for i in range(20)]


async def test_no_progress_on_a_terminal_when_asked(site: Site) -> None:
    slow_site(site, 3)
    terminal, stdout, code = await run_on_a_terminal(
        "run", site.url("/0"), "--depth", "5", "--no-progress", "--no-robots"
    )
    assert code == 0 and len(records(stdout)) == 3
    assert b"pages/s | queued" not in terminal and b"crawl summary" in terminal


async def test_quiet_on_a_terminal_shows_nothing(site: Site) -> None:
    slow_site(site, 3)
    terminal, stdout, code = await run_on_a_terminal(
        "run", site.url("/0"), "--depth", "5", "-q", "--no-robots"
    )
    assert code == 0 and len(records(stdout)) == 3
    assert terminal.strip() == b""


async def test_no_progress_when_piped(site: Site) -> None:
    slow_site(site, 5)
    result = await cli("run", site.url("/0"), "--depth", "9", "--progress", "--no-robots")
    assert result.returncode == 0
    assert b"\x1b[" not in result.stderr and b"pages/s | queued" not in result.stderr
    [summary] = result.stderr.decode().splitlines()  # one plain line
    assert summary.startswith("trio-scrape: 5 pages (5 ok, 0 errors)")
    assert all(json.loads(line) for line in result.stdout.splitlines())


def test_status_line_and_summary_render_statistics() -> None:
    stats = CrawlStatistics(
        pages=1500,
        ok=1490,
        errors={"timeout": 7, "http_status": 3},
        status_codes={200: 1490, 404: 3},
        bytes=12_345_678,
        queued=42,
        in_flight=16,
        seen=1558,
        retries=9,
        invalid_links=0,
        elapsed=3725.0,
        stop_reason="deadline",
        latency_p50=0.12,
        latency_p95=0.9,
    )
    line = status_line(stats)
    assert line == (
        "0.4 pages/s | queued 42 | in flight 16 | errors 10 (http_status 3, timeout 7) | "
        "12.3 MB | 1:02:05"
    )
    console = stderr_console()
    with console.capture() as captured:
        console.print(summary_table(stats))
    text = captured.get()
    for expected in ("1,500 (1,490 ok)", "p50 0.120s, p95 0.900s", "404: 3", "timeout: 7",
                     "deadline, 42 URLs left unvisited"):  # fmt: skip
        assert expected in text, text
