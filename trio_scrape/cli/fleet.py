"""The fleet commands behind the CLI: ``trio-scrape status`` and ``trio-scrape export`` for a
crawl shared through Redis (``--frontier``)."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import trio

from ..errors import FrontierError
from ..frontier.redis import _page_from_record
from ..frontier.redis_open import FleetStatus, connect, list_crawls
from ..frontier.sharded import crawl_entries, crawl_status
from ..output.sinks import OutputFormat, complete_sink, open_file_sink

__all__ = ["export", "status", "watch"]

#: Busiest hosts and processes a refresh of ``status --watch`` shows (the plain line: 3 hosts).
_WATCH_HOSTS = 10
_WATCH_PROCESSES = 10


async def _choose_crawl(client: object, crawl_id: str | None) -> str:
    """The crawl to look at: the one given, else the only one in that Redis database.

    Raises:
        FrontierError: (usage) no such crawl, or several and none chosen.
    """
    crawls = await list_crawls(client)  # type: ignore[arg-type]
    if crawl_id is not None:
        if crawl_id not in crawls:
            raise FrontierError(f"no crawl {crawl_id!r} in this Redis database", usage=True)
        return crawl_id
    if len(crawls) == 1:
        return crawls[0]
    if not crawls:
        raise FrontierError("no crawl in this Redis database", usage=True)
    raise FrontierError(
        f"{len(crawls)} crawls in this Redis database: choose one with --crawl-id "
        f"({', '.join(crawls[:5])}{', ...' if len(crawls) > 5 else ''})",
        usage=True,
    )


async def status(url: str, crawl_id: str | None, *, as_json: bool) -> str:
    """The text (or JSON) ``trio-scrape status`` prints.

    Raises:
        FrontierError: Redis cannot be used, or no crawl was chosen.
    """
    async with connect(url) as client:
        chosen = await _choose_crawl(client, crawl_id)
        with trio.fail_after(30):
            report = await crawl_status(client, chosen)
    if as_json:
        return json.dumps(report.to_json(), sort_keys=True)
    state = "finished" if report.queued == 0 and report.leased == 0 else "running"
    lines = [
        f"crawl {report.crawl_id}: {state}"
        + (f" (round {report.round})" if report.round > 1 else ""),
        f"  queued {report.queued}, leased {report.leased}, done {report.done} "
        f"({report.errors} with errors), seen {report.seen}, records {report.records}",
        f"  expired leases requeued {report.reaped}, late completions refused {report.refused}",
        f"  processes seen in the last minute: {len(report.processes)}",
    ]
    lines += [f"    {name} ({age:.1f}s ago)" for name, age in sorted(report.processes.items())]
    if report.changes:
        lines.append("  recrawl: " + ", ".join(f"{n} {k}" for k, n in report.changes.items()))
    if report.hosts:
        lines.append("  hosts (queued, in flight):")
        lines += [f"    {origin} {q} {n}" for origin, (q, n) in report.hosts.items()]
    return "\n".join(lines)


def _finished(report: FleetStatus) -> bool:
    return report.queued == 0 and report.leased == 0


async def watch(
    url: str,
    crawl_id: str | None,
    *,
    interval: float,
    count: int | None,
    as_json: bool,
    terminal: bool,
) -> None:
    """``trio-scrape status --watch``: the crawl's status again every ``interval`` seconds
    (queue, leases, pages/s, errors, busiest hosts, processes) until it has finished, ``count``
    refreshes were shown, or SIGINT (Ctrl-C). On a ``terminal``, one view updated in place
    (rich Live); otherwise one plain line per refresh (``as_json``: one JSON object).

    Raises:
        FrontierError: Redis cannot be used, or no crawl was chosen.
    """
    async with connect(url) as client:
        chosen = await _choose_crawl(client, crawl_id)
        live: Any = None
        if terminal:
            from rich.console import Console
            from rich.live import Live

            live = Live(console=Console(), auto_refresh=False, transient=False)
            live.start()
        try:
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                async with trio.open_nursery() as nursery:

                    async def stop_on_signal() -> None:
                        async for _ in signals:
                            nursery.cancel_scope.cancel()

                    nursery.start_soon(stop_on_signal)
                    await _refresh(client, chosen, interval, count, as_json, live)
                    nursery.cancel_scope.cancel()
        finally:
            if live is not None:
                live.stop()


async def _refresh(
    client: Any, chosen: str, interval: float, count: int | None, as_json: bool, live: Any
) -> None:
    previous: tuple[float, int] | None = None
    shown = 0
    while True:
        with trio.fail_after(30):
            report = await crawl_status(client, chosen)
        now = trio.current_time()
        rate = None if previous is None else (report.done - previous[1]) / (now - previous[0])
        previous = (now, report.done)
        shown += 1
        if live is not None:
            live.update(_watch_view(report, rate), refresh=True)
        elif as_json:
            record = {**report.to_json(), "state": _state(report), "pages_per_second": rate}
            print(json.dumps(record, sort_keys=True), flush=True)
        else:
            print(_watch_line(report, rate), flush=True)
        if _finished(report) or (count is not None and shown >= count):
            return
        await trio.sleep(interval)


def _state(report: FleetStatus) -> str:
    return "finished" if _finished(report) else "running"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}"


def _watch_line(report: FleetStatus, rate: float | None) -> str:
    """One refresh as one plain line (no escape codes): for logs and pipes."""
    hosts = ", ".join(f"{origin} {q}/{n}" for origin, (q, n) in list(report.hosts.items())[:3])
    return (
        f"{time.strftime('%H:%M:%S')} crawl {report.crawl_id} {_state(report)}: "
        f"queued {report.queued}, leased {report.leased}, done {report.done} "
        f"({report.errors} errors), seen {report.seen}, {_rate(rate)} pages/s, "
        f"processes {len(report.processes)}"
        + (f"; busiest (queued/in flight): {hosts}" if hosts else "")
    )


def _watch_view(report: FleetStatus, rate: float | None) -> Any:
    """One refresh as rich renderables: the counts, the busiest hosts, the processes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    heading = f"crawl {report.crawl_id}: {_state(report)}" + (
        f" (round {report.round})" if report.round > 1 else ""
    )
    counts = Table()
    for name in ("queued", "leased", "done", "errors", "seen", "pages/s", "requeued", "refused"):
        counts.add_column(name, justify="right")
    counts.add_row(
        *(str(v) for v in (report.queued, report.leased, report.done, report.errors)),
        str(report.seen),
        _rate(rate),
        str(report.reaped),
        str(report.refused),
    )
    hosts = Table()
    hosts.add_column("host")
    hosts.add_column("queued", justify="right")
    hosts.add_column("in flight", justify="right")
    for origin, (queued, in_flight) in list(report.hosts.items())[:_WATCH_HOSTS]:
        hosts.add_row(origin, str(queued), str(in_flight))
    processes = Table()
    processes.add_column("process")
    processes.add_column("last seen", justify="right")
    for name, age in sorted(report.processes.items())[:_WATCH_PROCESSES]:
        processes.add_row(name, f"{age:.1f}s ago")
    # Headings as lines of their own: a table's title would wrap at the table's width.
    return Group(
        Text(heading, style="bold"),
        counts,
        Text("busiest hosts", style="bold"),
        hosts,
        Text(f"processes seen in the last minute: {len(report.processes)}", style="bold"),
        processes,
    )


async def export(
    url: str,
    crawl_id: str | None,
    output: str,
    format: OutputFormat,
    items: str | None = None,
    items_format: OutputFormat = "jsonl",
) -> int:
    """Write every committed record of the crawl to ``output``, and with ``items`` the
    scraped items of its pages to that file (in ``items_format``); return how many records.

    Raises:
        FrontierError: Redis cannot be used, or no crawl was chosen.
        OutputError: an output cannot be written.
    """
    from ..output.items import open_item_sink

    async with connect(url) as client:
        chosen = await _choose_crawl(client, crawl_id)
        sink = open_file_sink(output, format, links=True)
        item_sink = complete_sink(None if items is None else open_item_sink(items, items_format))
        count = item_count = 0
        try:
            sink.start()
            item_sink.start()
            async for entry in crawl_entries(client, chosen):
                sink._links = "links" in entry.record  # as the crawl wrote them
                page = _page_from_record(entry.record, entry.items)
                await sink.send(page)
                await item_sink.send(page)
                count += 1
                item_count += len(entry.items)
        finally:
            try:
                await sink.aclose()
            finally:
                await item_sink.aclose()
    if output != "-":
        print(
            f"trio-scrape: {count} records of crawl {chosen} written to {output}", file=sys.stderr
        )
    if items is not None and items != "-":
        print(
            f"trio-scrape: {item_count} items of crawl {chosen} written to {items}",
            file=sys.stderr,
        )
    return count
