"""``trio-scrape status --watch``: a refreshing view of a fleet's crawl, against a real
redis-server and a running crawl; plain lines in a pipe, a live view on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import trio

from .clirun import run_cli
from .redis_server import free_port
from .site import Reply, Request, Site, closed_port, html_page
from .test_cli import CLI, cli
from .test_metrics import chain


async def _start_crawl(site: Site, redis_url: str, crawl_id: str, out: Path) -> trio.Process:
    """A fleet crawl of ``site`` in another process; returned once it has made a request
    (so its crawl is in Redis)."""
    process = await trio.lowlevel.open_process(
        [
            *CLI,
            "run",
            site.url("/0"),
            "--depth",
            "100",
            "--frontier",
            redis_url,
            "--crawl-id",
            crawl_id,
            "-o",
            str(out),
            "-q",
            "--grace",
            "0",
        ],
        stderr=subprocess.DEVNULL,
    )
    with trio.fail_after(30):
        while not site.log:
            await site.hit_event.wait()
    return process


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True), trio.fail_after(30):
        if process.poll() is None:
            process.kill()  # by its pid
        await process.wait()


async def test_plain_lines_follow_a_running_crawl_until_it_finishes(
    site: Site, redis_url: str, tmp_path: Path
) -> None:
    """The crawl is held at two pages until the watcher has shown one more line each time,
    so it is seen running (twice, with fewer pages) before it is seen finished."""
    pages = 30
    chain(site, pages)
    gates = {10: trio.Event(), 20: trio.Event()}  # page -> opened by the watcher's lines

    def gated(number: int) -> Any:
        async def answer(request: Request) -> Reply:
            await gates[number].wait()
            return Reply(body=html_page(f"P{number}", [f"/{number + 1}"]))  # as chain's

        return answer

    for number in gates:
        site.add(f"/{number}", gated(number))
    crawl_id = f"watch-{free_port()}"
    crawl = await _start_crawl(site, redis_url, crawl_id, tmp_path / "out.jsonl")
    lines: list[str] = []
    try:
        with trio.fail_after(60):
            watch = await trio.lowlevel.open_process(
                [*CLI, "status", "--watch", "--interval", "0.1", "--frontier", redis_url,
                 "--crawl-id", crawl_id],
                stdout=subprocess.PIPE,
            )  # fmt: skip
            try:
                assert watch.stdout is not None
                buffer = b""
                async for chunk in watch.stdout:
                    buffer += chunk
                    *complete, rest = buffer.split(b"\n")
                    buffer = rest
                    lines += [line.decode() for line in complete]
                    for gate in list(gates.values())[: len(lines)]:
                        gate.set()
                assert buffer == b""
                assert await watch.wait() == 0
            finally:
                await _stop(watch)
            assert await crawl.wait() == 0
    finally:
        await _stop(crawl)
    text = "\n".join(lines)
    assert "\x1b" not in text  # no escape codes in a pipe
    assert len(lines) >= 3, lines
    assert all(f"crawl {crawl_id} " in line for line in lines)
    assert "running" in lines[0] and "finished" in lines[-1], lines
    assert all("finished" not in line for line in lines[:-1])  # it stopped when it finished
    done = [int(re.search(r"done (\d+)", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert done == sorted(done) and done[0] <= 10 and done[1] <= 20, done
    records = (tmp_path / "out.jsonl").read_text().splitlines()
    assert done[-1] == len(records) == pages
    assert re.search(r"\d+\.\d pages/s", lines[-1]), lines[-1]

    # The same as JSON, one object a refresh: a finished crawl is shown once.
    result = await cli(
        "status", "--watch", "--json", "--frontier", redis_url, "--crawl-id", crawl_id
    )
    [line] = result.stdout.decode().splitlines()
    report = json.loads(line)
    assert report["state"] == "finished" and report["done"] == pages
    assert report["pages_per_second"] is None  # one refresh: no rate yet


def test_count_interval_and_watch_are_checked() -> None:
    """Checked before Redis is used (nothing listens at this address)."""
    frontier = f"redis://127.0.0.1:{closed_port()}/0"
    for args, message in (
        (["--count", "2"], "--count: needs --watch"),
        (["--interval", "1"], "--interval: needs --watch"),
        (["--watch", "--interval", "0"], "--interval: must be from"),
        (["--watch", "--count", "0"], "--count: must be from"),
    ):
        result = run_cli("status", "--frontier", frontier, *args)
        assert result.code == 2, result.stderr
        [line] = result.lines
        assert message in line, line


async def _read_until(primary: int, seen: bytearray, marker: bytes, times: int = 1) -> None:
    """Read the terminal until ``marker`` has appeared ``times`` times (bounded)."""
    with trio.fail_after(30):
        while seen.count(marker) < times:
            await trio.lowlevel.wait_readable(primary)
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the process ended
                chunk = b""
            assert chunk, f"ended before {marker!r}: {bytes(seen[-800:])!r}"
            seen += chunk


async def test_a_terminal_gets_a_live_view_refreshed_until_ctrl_c(
    site: Site, redis_url: str, tmp_path: Path
) -> None:
    async def never(request: Request) -> Reply:
        await trio.sleep_forever()

    site.add("/0", never)  # the crawl stays running: its first page never comes back
    crawl_id = f"watch-tty-{free_port()}"
    crawl = await _start_crawl(site, redis_url, crawl_id, tmp_path / "out.jsonl")
    primary, secondary = os.openpty()
    os.set_blocking(primary, False)
    try:
        # --count bounds it: three refreshes, drawn in place.
        watch = await trio.lowlevel.open_process(
            [
                *CLI,
                "status",
                "--watch",
                "--interval",
                "0.1",
                "--count",
                "3",
                "--frontier",
                redis_url,
                "--crawl-id",
                crawl_id,
            ],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        )
        seen = bytearray()
        try:
            await _read_until(primary, seen, b"busiest hosts", times=3)
            with trio.fail_after(30):
                assert await watch.wait() == 0
        finally:
            await _stop(watch)
        text = seen.decode(errors="replace")
        assert f"crawl {crawl_id}: running" in text
        assert site.base in text and "processes seen in the last minute: 1" in text
        assert "\x1b[" in text  # drawn with escape codes: the view moved up and redrawn
        assert text.count("\x1b[1A") >= 2, text[-800:]

        # Without --count it runs until Ctrl-C, which ends it with exit code 0.
        watch = await trio.lowlevel.open_process(
            [
                *CLI,
                "status",
                "--watch",
                "--interval",
                "0.1",
                "--frontier",
                redis_url,
                "--crawl-id",
                crawl_id,
            ],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        )
        seen = bytearray()
        try:
            await _read_until(primary, seen, b"busiest hosts", times=2)
            watch.send_signal(signal.SIGINT)
            with trio.fail_after(30):
                assert await watch.wait() == 0
        finally:
            await _stop(watch)
    finally:
        os.close(secondary)
        os.close(primary)
        await _stop(crawl)
