"""Where records go: the :class:`Sink` protocol and the JSON Lines and CSV file writers.

A sink is anything with ``async send(page)``, so a ``trio.MemorySendChannel`` is one. The
crawler's single sink task calls ``send`` for each page and, when it has nothing more to
hand over for the moment, ``flush()`` if the sink has one: only then does it tell the frontier
those pages are done. What else a sink may have (``wants_bodies``, ``start``, ``flush``,
``offset``, ``aclose``, ``name``, ``format``) is declared below as capability protocols, and
:func:`complete_sink` gives the crawler all of it in one object, looked up once.

File sinks buffer encoded lines and write them with one ``os.write`` per flush, so a stopped
or killed crawl never leaves half a line behind by our doing.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import stat
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, Literal, Protocol, runtime_checkable

import orjson

from ..errors import OutputError
from ..model.page import RECORD_FIELDS, Page

__all__ = [
    "Buffers",
    "Closes",
    "CompleteSink",
    "CsvSink",
    "JsonlSink",
    "Named",
    "OutputFormat",
    "Sink",
    "Starts",
    "complete_sink",
    "encode_record",
    "open_file_sink",
    "open_output",
]

OutputFormat = Literal["jsonl", "csv"]
_FLUSH_BYTES = 256 * 1024


@runtime_checkable
class Sink(Protocol):
    """Receives every page of a crawl, in the order they finish.

    A sink with ``wants_bodies = False`` gets pages without ``content``, ``text`` and ``html``
    (freed as soon as hooks have run), which keeps memory low while pages queue for it.
    """

    async def send(self, page: Page) -> None: ...


# What a sink may have besides ``send``: each is looked up once, by complete_sink().


@runtime_checkable
class Starts(Protocol):
    """A file sink that a resumed crawl starts where its records end."""

    def start(self, offset: int = 0) -> None:
        """Begin the output at byte ``offset``: cut what follows it (a no-op once started)."""
        ...


@runtime_checkable
class Buffers(Protocol):
    """A sink that holds records until ``flush``: the crawler flushes before it tells the
    frontier those pages are done."""

    async def flush(self) -> None: ...


@runtime_checkable
class Closes(Protocol):
    async def aclose(self) -> None: ...


@runtime_checkable
class Named(Protocol):
    """A sink writing to a file: its ``name`` (absolute path, or ``"-"``) and ``format``
    define a resumable crawl (its state is refused for another output)."""

    name: str
    format: str


class CompleteSink:
    """A sink with everything the crawler and the frontiers use: the sink's own where it has
    it, the defaults otherwise. Made once by :func:`complete_sink`; ``None`` (no sink) is a
    sink that drops every page.

    The defaults: ``wants_bodies`` True, ``start`` and ``flush`` and ``aclose`` do nothing,
    ``offset`` None (not a file whose length a state can store), ``name`` and ``format``
    None.
    """

    __slots__ = ("_aclose", "_flush", "_start", "format", "name", "sink", "wants_bodies")

    def __init__(self, sink: Sink | None) -> None:
        if isinstance(sink, CompleteSink):
            sink = sink.sink
        #: the sink this view completes (None: no sink)
        self.sink: Sink | None = sink
        #: whether pages keep their body, text and HTML tree until sent
        self.wants_bodies = bool(getattr(sink, "wants_bodies", True))
        self._start = sink.start if isinstance(sink, Starts) else None
        self._flush = sink.flush if isinstance(sink, Buffers) else None
        self._aclose = sink.aclose if isinstance(sink, Closes) else None
        #: the output's path for a file sink (``"-"``: standard output), else None
        self.name: str | None = None
        #: the output's format for a file sink ("jsonl", "csv"), else None
        self.format: str | None = None
        if isinstance(sink, Named):
            self.name = sink.name if isinstance(sink.name, str) else None
            self.format = sink.format if isinstance(sink.format, str) else None

    async def send(self, page: Page) -> None:
        if self.sink is not None:
            await self.sink.send(page)

    @property
    def starts(self) -> bool:
        """Whether the sink can be started at an offset (a file it can cut back)."""
        return self._start is not None

    def start(self, offset: int = 0) -> None:
        """Start the output at ``offset`` (see :meth:`JsonlSink.start`); nothing otherwise.

        Raises:
            OutputError: the file is shorter than ``offset``, or cannot be cut.
        """
        if self._start is not None:
            self._start(offset)

    @property
    def buffers(self) -> bool:
        """Whether records may wait in the sink until :meth:`flush`."""
        return self._flush is not None

    async def flush(self) -> None:
        """Write what the sink holds; nothing for a sink that does not buffer.

        Raises:
            OutputError: the write failed.
        """
        if self._flush is not None:
            await self._flush()

    @property
    def offset(self) -> int | None:
        """Length of the output file once its records are flushed, or None (not a file a
        state can cut back: standard output, a channel)."""
        offset = getattr(self.sink, "offset", None)
        return offset if isinstance(offset, int) and not isinstance(offset, bool) else None

    async def aclose(self) -> None:
        if self._aclose is not None:
            await self._aclose()


def complete_sink(sink: Sink | None) -> CompleteSink:
    """``sink`` with every capability the crawler uses (its own, or the defaults), looked up
    once. A :class:`CompleteSink` is returned as is."""
    if isinstance(sink, CompleteSink):
        return sink
    return CompleteSink(sink)


def _json_default(value: object) -> Any:
    # A hook may return values JSON cannot encode (datetime, Decimal, sets): write their text
    # rather than lose the record.
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return _str(value)


def _str(value: object) -> str:
    try:
        text = str(value)
    except Exception:  # a __str__ that raises
        return f"<{type(value).__name__}>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"


#: Deeper data (or a cycle: a list that holds itself) makes an ``extract`` error record.
MAX_NESTING = 200  # orjson stops at 254
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what orjson writes as a number


class UnwritableError(ValueError):
    """A record's data is nested too deeply to write as JSON (or holds itself)."""


def _json(value: Any) -> bytes:
    """Compact UTF-8 JSON that any strict parser reads: orjson (20x faster than json), and
    for what orjson refuses, the same data made writable first (:func:`_jsonable`).

    Raises:
        UnwritableError: the value is nested deeper than :data:`MAX_NESTING`.
    """
    try:
        return orjson.dumps(value, default=_json_default)
    except TypeError:
        return orjson.dumps(_jsonable(value, 0), default=_json_default)


def _jsonable(value: Any, depth: int) -> Any:
    """``value`` with what JSON cannot hold replaced, as docs/records.md says: NaN and
    infinities become null (as orjson writes them), integers beyond 64 bits their decimal
    digits as a string, keys their text, lone surrogates U+FFFD, other objects what orjson
    makes of them (datetime: ISO 8601) or their ``str``."""
    if depth > MAX_NESTING:
        raise UnwritableError(f"data nested deeper than {MAX_NESTING} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, int):
        return int(value) if _INT_MIN <= value <= _INT_MAX else _big_int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_key(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    try:  # what orjson knows how to write (datetime, UUID, dataclass, enum...)
        return orjson.loads(orjson.dumps(value, default=_json_default))
    except TypeError:
        return _text(_str(value))


def _key(key: object) -> str:
    if isinstance(key, str):
        return _text(key)
    if key is None or isinstance(key, bool):
        return orjson.dumps(key).decode()  # as json.dumps spells them: null, true, false
    if isinstance(key, int):
        return _big_int(key)
    return _text(_str(key))


def _big_int(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more than 4,300 digits: Python will not print it in decimal
        return f"{'-' if value < 0 else ''}0x{abs(value):x}"


def _text(text: str) -> str:
    # Lone surrogates (from a hook, or bytes decoded with surrogateescape) are not Unicode
    # text and cannot be UTF-8: each becomes U+FFFD; a valid pair becomes its character.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _encode(text: str) -> bytes:
    return _text(text).encode("utf-8")


def _unwritable(record: dict[str, Any], exc: UnwritableError) -> dict[str, Any]:
    """The record of a page whose data cannot be written: data dropped, an extract error."""
    record["data"] = {}
    record["ok"] = False
    if record["error"] is None:
        record["error"] = {"kind": "extract", "message": f"cannot write the page's data: {exc}"}
    return record


class _FileSink:
    """Buffers encoded records and writes them to a file descriptor in whole lines."""

    #: Records need no bodies or HTML trees: the crawler frees them before handing pages over.
    wants_bodies = False
    format: OutputFormat
    #: What the file holds, for error messages.
    what = "records"

    def __init__(self, file: IO[bytes], *, links: bool, close: bool, name: str = "-") -> None:
        self._file = file
        self._fd = file.fileno()
        self._links = links
        self._close = close
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._started = False
        self._seekable = close and stat.S_ISREG(os.fstat(self._fd).st_mode)
        #: the output's path (absolute), or ``"-"`` for standard output
        self.name = name
        #: bytes written by this sink
        self.bytes_written = 0
        #: length of the output file: where its next line starts (0 for standard output)
        self.offset = 0

    def start(self, offset: int = 0) -> None:
        """Begin the output at byte ``offset`` of the file: cut what follows it (the records
        of a resumed crawl that were never committed) and write after it. Called by the
        crawler before any record; ``send`` calls ``start(0)`` if nobody did. For standard
        output, nothing can be cut: ``offset`` only says whether a header was written.

        Raises:
            OutputError: the file is shorter than ``offset`` (it changed since the crawl
                stopped), or cannot be cut.
        """
        if self._started:
            return
        self._started = True
        if self._seekable:  # a regular file of ours: not standard output, a pipe, a device
            try:
                size = os.fstat(self._fd).st_size
                if size < offset:
                    raise OutputError(
                        f"the output {self.name!r} has {size} bytes, but the crawl state says "
                        f"{offset} were written: it was changed since the crawl stopped "
                        "(restore it, or start over with --state-reset)"
                    )
                os.ftruncate(self._fd, offset)
            except OSError as exc:
                raise OutputError(f"cannot truncate {self.name!r}: {exc.strerror or exc}") from exc
            self.offset = offset
        self._begin(fresh=offset == 0)

    def _begin(self, *, fresh: bool) -> None:
        """Queue what starts a fresh output (a CSV header)."""

    def _encode_page(self, page: Page) -> bytes:
        raise NotImplementedError

    async def send(self, page: Page) -> None:
        await self._send_line(self._encode_page(page))

    async def _send_line(self, line: bytes) -> None:
        if not self._started:
            self.start()
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= _FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        """Write every buffered line.

        Raises:
            OutputError: the write failed (disk full, closed pipe); the cause is chained.
        """
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            where = "standard output" if self.name == "-" else repr(self.name)
            raise OutputError(
                f"cannot write {self.what} to {where}: {exc.strerror or exc}"
            ) from exc
        self.bytes_written += len(data)
        if self._seekable:
            self.offset += len(data)

    async def aclose(self) -> None:
        try:
            if self._started:
                await self.flush()
        finally:
            if self._close:
                self._file.close()


class JsonlSink(_FileSink):
    """One JSON object per line, UTF-8, fields in record order."""

    format = "jsonl"

    def _encode_page(self, page: Page) -> bytes:
        return encode_record(page, links=self._links) + b"\n"

    @property
    def links(self) -> bool:
        """Whether records carry their page's links."""
        return self._links

    async def send_encoded(self, record: bytes) -> None:
        """Write a record that :func:`encode_record` gave with this sink's :attr:`links`, as
        :meth:`send` would write its page."""
        await self._send_line(record + b"\n")


def encode_record(page: Page, *, links: bool) -> bytes:
    """A page's record as a JSON Lines sink writes it (without the line's end)."""
    record = page.to_record(links=links)
    try:
        return _json(record)
    except UnwritableError as exc:
        return _json(_unwritable(record, exc))


# What spreadsheets run as a formula when a cell starts with it (OWASP's "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvSink(_FileSink):
    """RFC 4180 CSV with a header row; ``data``, ``links`` and ``error`` cells hold JSON text.

    ``data_fields`` (the names of ``--select`` fields) get a column each, ``data.NAME``, after
    ``data``, which then holds the rest of ``data`` (text as it is; a list or a table as JSON;
    empty for a missing value).

    With ``safe`` (the default), a cell that a spreadsheet would run as a formula (one that
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: a page title such as
    ``=HYPERLINK(...)``) gets a leading ``'``, which spreadsheets show as text.
    """

    format = "csv"

    def __init__(
        self,
        file: IO[bytes],
        *,
        links: bool,
        close: bool,
        name: str = "-",
        safe: bool = True,
        data_fields: Sequence[str] = (),
    ) -> None:
        super().__init__(file, links=links, close=close, name=name)
        self._safe = safe
        self._fields = [f for f in RECORD_FIELDS if links or f != "links"]
        self._data_fields = list(dict.fromkeys(data_fields))
        self._header = list(self._fields)
        if self._data_fields:
            at = self._header.index("data") + 1
            self._header[at:at] = [f"data.{name}" for name in self._data_fields]
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def _begin(self, *, fresh: bool) -> None:
        if fresh:
            self._writer.writerow(self._header)
            self._pending.append(_encode(self._take()))

    def _take(self) -> str:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text

    def _encode_page(self, page: Page) -> bytes:
        record = page.to_record(links=self._links)
        try:
            row = self._row(record)
        except UnwritableError as exc:
            row = self._row(_unwritable(record, exc))
        self._writer.writerow(row)
        return _encode(self._take())

    def _row(self, record: dict[str, Any]) -> list[str]:
        row = []
        for field in self._fields:
            value = record[field]
            if field == "data" and self._data_fields and isinstance(value, dict):
                rest = {k: v for k, v in value.items() if k not in self._data_fields}
                row.append(_cell(rest))
                row += [_cell(value.get(name)) for name in self._data_fields]
                continue
            row.append(_cell(value))
        if self._safe:
            row = [self._defused(cell) for cell in row]
        return row

    def _defused(self, cell: str) -> str:
        """``cell`` as a spreadsheet shows it as text (with ``safe``)."""
        return "'" + cell if self._safe and cell.startswith(_FORMULA_START) else cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return _json(value).decode("utf-8")
    return str(value)


def open_file_sink(
    path: str,
    format: OutputFormat,
    *,
    links: bool = False,
    csv_safe: bool = True,
    data_fields: Sequence[str] = (),
) -> JsonlSink | CsvSink:
    """Open ``path`` (``"-"`` for standard output) for records in ``format``.

    The file is created if missing; it is truncated when the crawl starts (``start``), or,
    when a crawl resumes from its state, cut back to the records the state knows are written.
    Closing the sink (``aclose``) flushes it and closes the file, but never standard output.
    ``csv_safe`` and ``data_fields`` (CSV only): see :class:`CsvSink`.

    Raises:
        OutputError: the file cannot be opened for writing.
    """
    make: Callable[..., JsonlSink | CsvSink] = (
        functools.partial(CsvSink, safe=csv_safe, data_fields=data_fields)
        if format == "csv"
        else JsonlSink
    )
    file, close, name = open_output(path)
    return make(file, links=links, close=close, name=name)


def open_output(path: str) -> tuple[IO[bytes], bool, str]:
    """The file a sink writes to (``"-"``: standard output), whether the sink closes it, and
    its name (absolute path, or ``"-"``).

    Raises:
        OutputError: the file cannot be opened for writing.
    """
    if path == "-":
        sys.stdout.flush()
        return sys.stdout.buffer, False, "-"
    try:
        # Append mode: nothing is cut before start() knows where the output resumes, and
        # every write lands at the end.
        file = open(path, "ab")  # noqa: SIM115 -- the sink owns it and closes it in aclose()
    except OSError as exc:
        raise OutputError(f"cannot open output {path!r}: {exc.strerror or exc}") from exc
    return file, True, os.path.abspath(path)
