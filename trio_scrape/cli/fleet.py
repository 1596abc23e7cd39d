"""The fleet commands behind the CLI: ``trio-scrape status`` and ``trio-scrape export`` for a
crawl shared through Redis (``--frontier``)."""

from __future__ import annotations

import json
import sys

import trio

from ..errors import FrontierError
from ..frontier.redis import (
    _page_from_record,
    connect,
    fleet_status,
    list_crawls,
    read_entries,
)
from ..output.sinks import OutputFormat, complete_sink, open_file_sink

__all__ = ["export", "status"]


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
            report = await fleet_status(client, chosen)
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
            async for entry in read_entries(client, chosen):
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
