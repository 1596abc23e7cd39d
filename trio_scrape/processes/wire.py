"""The wire between the crawler and its worker processes.

Messages are pickled tuples of plain values, each in a frame prefixed by its length (4 bytes,
big-endian), over a socket pair. Pickle because a hook may put any Python value in a record's
``data`` (the crawler's process gets it as the hook made it), and because it is the fastest
here: a page's outcome with 26 links is ~1.4 KB and ~1 us to dump or load, the same as orjson
or msgpack (measured), with no extra dependency. Both ends are processes of one crawl, started
by it: nothing foreign is ever unpickled.

Crawler -> worker: the set-up (first), then jobs, cancels and the crawl's cookie jar (sent
before a job whenever it changed since that process last got it: see http/cookies.py).
Worker -> crawler: outcomes (with the ``Set-Cookie`` headers their pages received).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import struct
from typing import Any

import trio

from ..engine.pipeline import Outcome, SitemapEntries
from ..http.headers import headers_from_raw
from ..model.page import RECORD_FIELDS, CrawlRequest, Page, PageError

__all__ = [
    "CANCEL",
    "COOKIES",
    "JOB",
    "READY",
    "FrameReader",
    "send_all",
    "decode_job",
    "decode_outcome",
    "encode_job",
    "encode_outcome",
    "frame",
]

JOB, CANCEL, COOKIES = 0, 1, 2
#: A worker process's first message: it is set up and serving.
READY = ("ready",)
_LENGTH = struct.Struct("!I")
_READ_SIZE = 64 * 1024
#: The largest frame accepted: a page's body (up to max_bytes) plus its record and links.
MAX_FRAME = 2**31 - 1


def frame(message: Any) -> bytes:
    """One message as a length-prefixed frame.

    Raises:
        pickle.PicklingError, TypeError, AttributeError: a value cannot be pickled.
    """
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


class FrameReader:
    """Reads frames from a socket; :meth:`receive` returns the messages of one read.

    It waits for the socket to be readable before reading (a worker process's stream is
    mostly idle: trying first would cost a failed ``recv`` per message) and reads into one
    buffer it keeps (a fresh 256 KB ``bytes`` per read made glibc grow and trim the heap,
    three ``brk`` calls per page).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._scratch = bytearray(_READ_SIZE)
        self._view = memoryview(self._scratch)
        self._buffer = bytearray()

    async def receive(self) -> list[Any]:
        """At least one message, as soon as one is complete.

        Raises:
            EOFError: the other end closed the stream (mid-frame or not).
            trio.BrokenResourceError: the stream broke.
            trio.ClosedResourceError: this end was closed meanwhile.
        """
        buffer = self._buffer
        messages: list[Any] = []
        while not messages:
            await trio.lowlevel.wait_readable(self._socket)
            try:
                size = self._socket.recv_into(self._scratch)
            except BlockingIOError:
                continue  # (a spurious wake-up)
            except OSError as exc:
                if self._socket.fileno() == -1:
                    raise trio.ClosedResourceError("the stream was closed") from None
                raise trio.BrokenResourceError(f"the stream broke: {exc}") from exc
            if not size:
                raise EOFError("the other end closed the connection")
            buffer += self._view[:size]
            start = 0
            while len(buffer) - start >= 4:
                (length,) = _LENGTH.unpack_from(buffer, start)
                end = start + 4 + length
                if end > len(buffer):
                    break
                messages.append(pickle.loads(memoryview(buffer)[start + 4 : end]))
                start = end
            if start:
                del buffer[:start]
        return messages


async def send_all(stream: trio.SocketStream, data: bytes) -> None:
    """``stream.send_all(data)``, but written at once when the socket's buffer has room (it
    nearly always has): trio's send yields to the scheduler after writing, one more loop
    iteration per write in each process. The writing task checkpoints on its next wait.

    Raises:
        trio.Cancelled: the enclosing scope was cancelled (checked before writing).
        trio.BrokenResourceError, trio.ClosedResourceError: the other end is gone, or this
            end was closed.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        sent = os.write(stream.socket.fileno(), data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        if stream.socket.fileno() == -1:
            raise trio.ClosedResourceError("the stream was closed") from None
        raise trio.BrokenResourceError(f"the stream broke: {exc}") from exc
    if sent < len(data):
        await stream.send_all(memoryview(data)[sent:])


def encode_job(job_id: int, request: CrawlRequest, waited: float, send_at: float) -> bytes:
    """A job: the request; ``waited``, the seconds since its first attempt began (the two
    processes' trio clocks differ, so times cross as durations); ``send_at``, the
    ``time.monotonic()`` (one clock for every process) before which it must not start, or 0."""
    return frame((JOB, job_id, send_at, waited, *request))


def encode_cookies(cookies: list[list[Any]]) -> bytes:
    """The crawl's cookie jar (``SessionJar.dump()``), replacing a worker process's copy."""
    return frame((COOKIES, 0, cookies))


def decode_job(message: tuple[Any, ...]) -> tuple[int, float, CrawlRequest]:
    """``(job_id, send_at, request)``, the request's ``first_try`` in this process's clock."""
    _, job_id, send_at, waited, *fields = message
    request = CrawlRequest(*fields)._replace(first_try=trio.current_time() - waited)
    return job_id, send_at, request


#: Outcome fields in order: every one travels, so a field added to Outcome needs nothing here.
_OUTCOME_FIELDS = tuple(field.name for field in dataclasses.fields(Outcome))


def encode_outcome(job_id: int, outcome: Outcome, *, bodies: bool) -> bytes:
    """An outcome; with ``bodies``, the page's body, encoding and headers go too (its
    ``html`` tree never does: a library user with worker processes gets ``html`` None).

    A ``data`` value a hook made that cannot be pickled turns the record's ``error`` into
    ``extract`` (as if the hook had raised) rather than losing the record.
    """
    page = outcome.page
    values = [getattr(outcome, name) for name in _OUTCOME_FIELDS]
    values[0] = None if page is None else _page_tuple(page, bodies)  # "page" comes first
    try:
        return frame((job_id, *values))
    except Exception as exc:
        if page is None:
            raise
        page.data = {}
        page.error = PageError(
            "extract", f"the record's data cannot be sent between processes: {exc}"
        )
        return encode_outcome(job_id, outcome, bodies=bodies)


def decode_outcome(message: tuple[Any, ...]) -> tuple[int, Outcome]:
    job_id, page, *values = message
    outcome = Outcome(None, *values)
    if page is not None:
        outcome.page = _page_of(page)
    if outcome.sitemap is not None:
        outcome.sitemap = SitemapEntries(*outcome.sitemap)
    return job_id, outcome


#: The record's fields that travel, by name (a field added to Page's record travels too):
#: ``ok`` is derived, ``error`` goes as its kind and message, ``items`` go beside.
_PAGE_FIELDS = (*[f for f in RECORD_FIELDS if f not in ("ok", "error")], "items")
_BODY_AT = len(_PAGE_FIELDS) + 2  # after the fields, the error's kind and message


def _page_tuple(page: Page, bodies: bool) -> tuple[Any, ...]:
    error = page.error
    record = (
        *[getattr(page, name) for name in _PAGE_FIELDS],
        None if error is None else error.kind,
        None if error is None else error.message,
    )
    if not bodies:
        return record
    headers = None if page.headers is None else page.headers.raw
    return (*record, page.content, page.encoding, headers)


def _page_of(fields: tuple[Any, ...]) -> Page:
    page = Page(**dict(zip(_PAGE_FIELDS, fields, strict=False)))
    kind, message = fields[len(_PAGE_FIELDS)], fields[len(_PAGE_FIELDS) + 1]
    if kind is not None:
        page.error = PageError(kind, message)
    if len(fields) > _BODY_AT:
        page.content, page.encoding, headers = fields[_BODY_AT:]
        if headers is not None:
            page.headers = headers_from_raw(headers)
        if page.encoding is not None:
            try:
                page.text = page.content.decode(page.encoding, errors="replace")
            except LookupError:
                page.text = page.content.decode("utf-8", errors="replace")
    return page
