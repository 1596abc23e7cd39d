"""The record writer: the one task that hands a crawl's records to its sink, in order, and
ends their pages' leases in the frontier once the sink has them.

Records are written in batches: the writer flushes once its channel is momentarily empty and
either the oldest unflushed record has waited ``flush_delay`` (one write per batch instead of
one per page) or no page is being attempted (the last page of a crawl, or of a burst, is not
kept waiting). Only after a flush are the pages marked done in the frontier, so a state or a
fleet never counts a page done whose record could still be lost; the crawl's end waits for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import trio

from ..frontier.memory import Frontier
from ..model.page import CrawlRequest, Page
from ..output.sinks import CompleteSink, Sink, complete_sink
from .stats import Counters

__all__ = ["FLUSH_DELAY", "RecordWriter", "closing_sink"]

#: How long a record may wait for others to be written with it (one write per batch).
FLUSH_DELAY = 0.02

Records = trio.MemoryReceiveChannel[tuple[CrawlRequest, Page]]


class RecordWriter:
    """Writes ``(request, page)`` pairs from a channel to ``sink``, counts them in
    ``counters``, and marks their requests done in ``frontier`` once flushed.

    ``attempting()`` says how many pages are being attempted now (none: nothing is coming
    soon, so the batch is flushed at once).
    """

    def __init__(
        self,
        sink: CompleteSink,
        frontier: Frontier,
        counters: Counters,
        *,
        attempting: Callable[[], int],
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        self.sink = sink
        self.frontier = frontier
        self._counters = counters
        self._attempting = attempting
        self._flush_delay = flush_delay

    async def run(self, records: Records) -> None:
        """Write until ``records`` is closed and drained; the last batch is flushed."""
        sink = self.sink
        buffers = sink.buffers
        sink.start()  # a no-op if the state already started it where it left off
        count = self._counters.count
        written: list[CrawlRequest] = []
        due = math.inf  # when the oldest record not yet flushed is to be written at the latest
        async with records:
            while True:
                try:
                    request, page = records.receive_nowait()
                except trio.WouldBlock:
                    # No record is coming soon when no page is being attempted (the last
                    # page of a crawl, or of a burst): flush now instead of after the delay.
                    if written and (
                        not buffers or not self._attempting() or trio.current_time() >= due
                    ):
                        await self._hand_over(written)
                        written = []
                        due = math.inf
                    received = None
                    with trio.move_on_at(due):
                        try:
                            received = await records.receive()
                        except trio.EndOfChannel:
                            break
                    if received is None:
                        continue  # flush is due
                    request, page = received
                except trio.EndOfChannel:
                    break
                if not written:
                    due = trio.current_time() + self._flush_delay
                count(page)
                await sink.send(page)
                written.append(request)
            if written:
                await self._hand_over(written)

    async def _hand_over(self, written: list[CrawlRequest]) -> None:
        await self.sink.flush()
        await self.frontier.done(written, output_offset=self.sink.offset)


class closing_sink(AbstractAsyncContextManager[None]):
    """Close a sink (if it can be closed) when the crawl ends, however it ends."""

    def __init__(self, sink: Sink | None) -> None:
        self._sink = sink

    async def __aexit__(self, *exc_info: object) -> None:
        await complete_sink(self._sink).aclose()
