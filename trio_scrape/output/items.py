"""Where a scrape's items go: JSON Lines or CSV, beside the page records (the crawl's own log).

An item sink is a sink of pages like the record sinks (:mod:`trio_scrape.output.sinks`): for
each page it writes the page's items, in the order the handler emitted them, so the items of
a page are written (and committed to a state, or to a fleet's stream) together with its
record: exactly once, as records are.

CSV: one column per item field, in the order the first item gives them (the header row); a
field that a later item adds goes, as JSON, into a last column ``_extra``, and a field an
item lacks is an empty cell. Values that are not text or numbers are JSON text. A resumed
crawl reads the header back from the file.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import IO, Any

from ..errors import OutputError
from ..model.page import Page
from .sinks import (
    CsvSink,
    JsonlSink,
    OutputFormat,
    _encode,
    _json,
    _str,
    complete_sink,
    open_output,
)

__all__ = ["CsvItemSink", "JsonlItemSink", "ScrapeSink", "open_item_sink"]

_EXTRA = "_extra"


class JsonlItemSink(JsonlSink):
    """Each item of each page as one JSON object per line."""

    what = "items"

    def _encode_page(self, page: Page) -> bytes:
        items = page.items
        if not items:
            return b""
        # Encoded once, when the handler emitted them (scraper.items.Items).
        lines = getattr(items, "lines", None)
        if lines is not None and len(lines) == len(items):
            return b"\n".join(lines) + b"\n"
        return b"".join(_json(item) + b"\n" for item in items)


class CsvItemSink(CsvSink):
    """Each item of each page as one CSV row (see the module's text for the columns)."""

    what = "items"

    def __init__(self, file: IO[bytes], *, close: bool, name: str = "-", safe: bool = True) -> None:
        super().__init__(file, links=False, close=close, name=name, safe=safe)
        self._fields = []
        self._header_written = False

    def _begin(self, *, fresh: bool) -> None:
        if fresh or not self._seekable:
            return  # the header comes with the first item
        # A resumed crawl: the columns are the header's.
        try:
            # By its name: the sink's own descriptor is open for appending only.
            with (
                open(self.name, "rb")
                if self.name != "-"
                else open(os.dup(self._fd), "rb", closefd=True)
            ) as file:
                file.seek(0)
                header = file.readline().decode("utf-8", "replace")
        except OSError as exc:
            raise OutputError(f"cannot read the header of {self.name!r}: {exc}") from exc
        row = next(csv.reader(io.StringIO(header)), [])
        self._fields = [f for f in row if f != _EXTRA]
        self._header_written = bool(row)

    def _encode_page(self, page: Page) -> bytes:
        if not page.items:
            return b""
        for item in page.items:
            if not self._header_written:
                self._fields = list(item)
                self._writer.writerow([*self._fields, _EXTRA])
                self._header_written = True
            row = [self._cell(item.get(field)) for field in self._fields]
            extra = {key: value for key, value in item.items() if key not in self._fields}
            row.append(_json(extra).decode() if extra else "")
            self._writer.writerow(row)
        return _encode(self._take())

    def _cell(self, value: Any) -> str:
        # As in the JSONL output: true and false, and null (an empty cell) for None and for
        # the floats JSON has no number for (NaN, the infinities).
        if value is None:
            return ""
        if isinstance(value, str):
            text = value
        elif isinstance(value, bool):
            return "true" if value else "false"
        elif isinstance(value, float) and not math.isfinite(value):
            return ""
        elif isinstance(value, int | float):
            text = _str(value)
        else:
            text = _json(value).decode()
        return self._defused(text)


class ScrapeSink:
    """A scrape's output: items to ``items``, and each page's record to ``records`` when
    given (the crawl's own log). Both are started, flushed and closed together; its
    ``offset`` (what a state stores to cut the output back on resume) is the pair of their
    offsets in one number."""

    wants_bodies = False

    def __init__(self, items: JsonlItemSink | CsvItemSink, records: Any = None) -> None:
        self.items = items
        self.records = None if records is None else complete_sink(records)
        #: the item output's path (``"-"``: standard output)
        self.name = items.name
        self.format: OutputFormat = items.format
        #: the records' path (None: no records), part of what a resumable crawl is
        self.records_name = None if self.records is None else self.records.name

    async def send(self, page: Page) -> None:
        await self.items.send(page)
        if self.records is not None:
            await self.records.send(page)

    def start(self, offset: int = 0) -> None:
        """Start both outputs where a state left them (see :meth:`JsonlSink.start`)."""
        items_at, records_at = divmod(offset, _SHIFT)
        self.items.start(items_at)
        if self.records is not None:
            self.records.start(records_at)

    async def flush(self) -> None:
        await self.items.flush()
        if self.records is not None:
            await self.records.flush()

    @property
    def offset(self) -> int:
        records = self.records
        records_at = records.offset if records is not None else None
        return self.items.offset * _SHIFT + (records_at or 0)

    async def aclose(self) -> None:
        try:
            await self.items.aclose()
        finally:
            if self.records is not None:
                await self.records.aclose()


# Offsets are below 2**48 (256 TiB): two fit in one integer, which a state stores as text.
_SHIFT = 1 << 48


def open_item_sink(
    path: str, format: OutputFormat, *, csv_safe: bool = True
) -> JsonlItemSink | CsvItemSink:
    """An item sink writing to ``path`` (``-``: standard output).

    Raises:
        OutputError: the file cannot be opened.
    """
    file, close, name = open_output(path)
    if format == "csv":
        return CsvItemSink(file, close=close, name=name, safe=csv_safe)
    return JsonlItemSink(file, links=False, close=close, name=name)
