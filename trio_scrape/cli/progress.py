"""What a person at a terminal sees: a live progress display and the end-of-crawl summary.

Both render :meth:`Crawler.statistics` snapshots with rich, on standard error only (records
go to standard output or the output file, never mixed with this).
"""

from __future__ import annotations

import logging
import sys

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ..engine.crawler import Crawler
from ..engine.stats import CrawlStatistics

__all__ = ["show_progress", "summary_table"]

_REFRESH = 0.25  # seconds between redraws


async def show_progress(crawler: Crawler, console: Console, *, max_pages: int | None) -> None:
    """Redraw a live display of ``crawler`` on ``console`` until cancelled, then erase it.

    Log lines are printed above the display while it runs (the ``trio_scrape`` logger's
    stream handlers are pointed at the console for that time).
    """
    progress = Progress(
        TextColumn("[bold]{task.completed:,.0f}[/] pages"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=False,
    )
    task = progress.add_task("crawl", total=max_pages)
    status = Text()
    live = Live(
        Group(progress, status),
        console=console,
        auto_refresh=False,  # redrawn from this task, so no thread touches our objects
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    handlers = [
        h
        for h in logging.getLogger("trio_scrape").handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    streams = [h.stream for h in handlers]
    with live:
        for handler in handlers:
            handler.setStream(_ConsoleWriter(console))
        try:
            while True:
                stats = crawler.statistics()
                progress.update(task, completed=stats.pages)
                status.plain = status_line(stats)
                live.refresh()
                await trio.sleep(_REFRESH)
        finally:
            for handler, stream in zip(handlers, streams, strict=True):
                handler.setStream(stream)


def status_line(stats: CrawlStatistics) -> str:
    errors = ", ".join(f"{kind} {count:,}" for kind, count in sorted(stats.errors.items()))
    line = (
        f"{stats.pages_per_second:,.1f} pages/s | queued {stats.queued:,} | "
        f"in flight {stats.in_flight:,} | errors {sum(stats.errors.values()):,}"
        f"{f' ({errors})' if errors else ''} | {_size(stats.bytes)} | "
        f"{_duration(stats.elapsed)}"
    )
    if stats.browser_peak_memory is not None:  # the browser has been started
        memory = "stopped" if stats.browser_memory is None else _size(stats.browser_memory)
        line += (
            f"\nrendered {stats.rendered:,} | tabs in use {stats.tabs_in_use} | browser {memory}"
        )
    return line


def summary_table(
    stats: CrawlStatistics, *, top_hosts: int = 5, stopped: str | None = None
) -> Table:
    """The end-of-crawl summary: totals, latency percentiles, status codes, error kinds and
    the busiest hosts; ``stopped`` says what stopped a crawl that did not finish by itself."""
    table = Table(title="trio-scrape: crawl summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("pages", f"{stats.pages:,} ({stats.ok:,} ok) in {_duration(stats.elapsed)}")
    table.add_row("speed", f"{stats.pages_per_second:,.1f} pages/s, {_size(stats.bytes)}")
    if stats.latency_p50 is not None and stats.latency_p95 is not None:
        table.add_row("page latency", f"p50 {stats.latency_p50:.3f}s, p95 {stats.latency_p95:.3f}s")
    if stats.browser_peak_memory is not None:
        table.add_row(
            "rendering",
            f"{stats.rendered:,} pages rendered, browser peak {_size(stats.browser_peak_memory)}",
        )
    if stats.status_codes:
        codes = sorted(stats.status_codes.items())
        table.add_row("status codes", ", ".join(f"{code}: {n:,}" for code, n in codes))
    if stats.errors:
        kinds = sorted(stats.errors.items(), key=lambda item: -item[1])
        table.add_row("errors", ", ".join(f"{kind}: {n:,}" for kind, n in kinds))
    if stats.changed or stats.unchanged or stats.new or stats.gone or stats.unlinked:
        table.add_row(
            "recrawl",
            f"{stats.changed:,} changed, {stats.unchanged:,} unchanged, {stats.new:,} new,"
            f" {stats.gone:,} gone, {stats.unlinked:,} no longer linked",
        )
    busiest = sorted(stats.hosts.items(), key=lambda item: -item[1].requests)[:top_hosts]
    if busiest:
        table.add_row(
            "top hosts",
            "\n".join(
                f"{host}: {h.requests:,} requests, {h.errors:,} errors" for host, h in busiest
            ),
        )
    if stats.processes > 1:
        restarts = f", {stats.worker_restarts} restarted" if stats.worker_restarts else ""
        table.add_row("worker processes", f"{stats.processes}{restarts}")
    if stopped:
        table.add_row("stopped", stopped.removeprefix("stopped "))
    elif stats.stop_reason not in (None, "finished"):
        table.add_row("stopped", f"{stats.stop_reason}, {stats.queued:,} URLs left unvisited")
    return table


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


class _ConsoleWriter:
    """A text stream that prints through a rich console (above a live display)."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> int:
        self._console.print(text.rstrip("\n"), markup=False, highlight=False)
        return len(text)

    def flush(self) -> None:
        pass


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{count:,} B"
        value /= 1000
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
