"""A worker process: runs the page pipeline for the crawl that started it.

    python -m trio_scrape.processes.child FD PARENT_PID

``FD`` is this process's end of a socket pair (see ``_wire``). The first message is the
set-up: the crawler's ``sys.path`` (so hooks import as they did there), the configuration
with hooks as ``module:qualname`` references, the seeds' hosts (for headers and the address
guard) and whether records carry bodies. Then jobs and cancels come in and outcomes go out,
each job run by one of a pool of worker tasks, until the crawler closes its end; then this
process exits. It ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, and
the crawler decides what happens to its pages) and dies with the crawler (Linux:
``PR_SET_PDEATHSIG``; elsewhere, at the end of its stream).
"""

from __future__ import annotations

import collections
import ctypes
import importlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..engine.assembly import open_page_pipeline
from ..http.cookies import SET_COOKIES
from ..http.transport import SEND_AT
from ..model.config import HOOKS, CrawlConfig
from .wire import (
    CANCEL,
    COOKIES,
    READY,
    FrameReader,
    decode_job,
    encode_outcome,
    frame,
    send_all,
)

__all__ = ["main"]


# Set once a hook's module is imported: the process then ends with the interpreter's full
# teardown, which the user's code may count on (see _teardown).
_hooks_loaded = False


def _import_hook(reference: str) -> Any:
    global _hooks_loaded
    _hooks_loaded = True
    module_name, _, qualname = reference.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _redirect_checker(fetcher: Any, config: CrawlConfig) -> Callable[[str], Awaitable[bool]]:
    """Whether robots.txt allows a redirect's target: checked here, as the crawler checks a
    page's URL before it sends it, with rules this process reads for the hosts its pages
    redirect to (the crawler's own are in its process). Made at the first redirect: most
    worker processes need no robots.txt parser."""
    allowed: Callable[[str], Awaitable[bool]] | None = None

    async def check(url: str) -> bool:
        nonlocal allowed
        if allowed is None:
            from ..engine.robots import RobotsCache
            from ..frontier.pacing import HostLimiter

            allowed = RobotsCache(fetcher, HostLimiter(config), config).allowed
        return await allowed(url)

    return check


async def _serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    reader = FrameReader(sock)
    setup, *early = await reader.receive()  # jobs may follow in the same read
    sys.path[:] = setup["path"]
    fields = setup["config"]
    for name in HOOKS:
        if fields[name] is not None:
            fields[name] = _import_hook(fields[name])
    config = CrawlConfig(**fields)
    bodies: bool = setup["bodies"]
    seeds = {"seed_hosts": setup["seed_hosts"], "seed_origins": setup["seed_origins"]}
    # Requests written at once: a worker process's pages wait on the hop (see http/transport.py).
    # Each worker process renders with a browser of its own.
    async with open_page_pipeline(config, **seeds, write_at_once=True) as tools:
        pipeline = tools.pipeline
        if config.robots:
            tools.fetcher.redirect_allowed = _redirect_checker(tools.fetcher, config)
        jar = tools.fetcher.jar  # a copy of the crawl's (see http/cookies.py)
        outbox_send, outbox_recv = trio.open_memory_channel[bytes](config.workers)
        running: dict[int, trio.CancelScope] = {}
        queued: set[int] = set()
        dropped: set[int] = set()
        # Jobs read but not yet taken: no more than one read brings (the reading task is
        # one with nothing to do, so a job is read only when a task can take it).
        jobs: collections.deque[tuple[Any, ...]] = collections.deque()
        job_ready = trio.lowlevel.ParkingLot()
        reading = False
        done = False

        def receive(messages: list[Any]) -> None:
            for message in messages:
                job_id = message[1]
                if message[0] == COOKIES:  # before the jobs that follow it
                    jar.load(message[2])
                    continue
                if message[0] == CANCEL:
                    if job_id in running:
                        running[job_id].cancel()
                    elif job_id in queued:
                        dropped.add(job_id)
                    continue
                queued.add(job_id)
                jobs.append(message)

        async def next_job() -> tuple[Any, ...] | None:
            """The next job (None: the crawler closed the stream). A task with nothing to
            do reads the stream itself, one at a time: the job it reads starts in the same
            step, with no hand-over to another task and one loop iteration less per page."""
            nonlocal reading, done
            while not done:
                if jobs:
                    return jobs.popleft()
                if reading:
                    await job_ready.park()
                    continue
                reading = True
                try:
                    receive(await reader.receive())
                except (EOFError, trio.BrokenResourceError):
                    done = True  # the crawler is done with us (or gone)
                    nursery.cancel_scope.cancel()
                finally:
                    reading = False
                    # Those waiting take the other jobs, and one more reads next.
                    job_ready.unpark(count=len(jobs) + 1)
            return None

        async def work() -> None:
            # The Set-Cookie headers this task's pages receive, for the crawler's jar: they
            # go back with the next outcome (a cancelled attempt's with the one after).
            cookies: list[tuple[str, list[str]]] = []
            SET_COOKIES.set(cookies)
            while (message := await next_job()) is not None:
                job_id, send_at, request = decode_job(message)
                queued.discard(job_id)
                if job_id in dropped:
                    dropped.discard(job_id)
                    continue
                with trio.CancelScope() as scope:
                    running[job_id] = scope
                    try:
                        SEND_AT.set(send_at)  # this task's next request starts then
                        outcome = await pipeline.attempt(request)
                    finally:
                        del running[job_id]
                if scope.cancelled_caught:
                    continue  # the crawler gave this attempt up: it expects nothing
                if cookies:
                    outcome.cookies = cookies[:]
                    cookies.clear()
                data = encode_outcome(job_id, outcome, bodies=bodies)
                # An idle task would otherwise keep its last page (its parse tree is ten
                # times the HTML) until its next job: memory would grow with --workers.
                del outcome
                try:
                    outbox_send.send_nowait(data)
                except trio.WouldBlock:
                    await outbox_send.send(data)

        async def write() -> None:
            async for data in outbox_recv:
                # Let the tasks that are ready run first: the outcomes they finish go out
                # in this same write (fewer writes, and fewer wake-ups of the crawler).
                await trio.lowlevel.cancel_shielded_checkpoint()
                parts = [data]
                while True:  # everything ready goes out in one write
                    try:
                        parts.append(outbox_recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                await send_all(stream, b"".join(parts))

        outbox_send.send_nowait(frame(READY))
        receive(early)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            # One task more than the crawler ever has pages in flight: there is always one
            # free to read, so a cancel or the end of the stream is seen at once.
            for _ in range(config.workers + 1):
                nursery.start_soon(work)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        # The C library the interpreter already has loaded: ctypes.util.find_library would
        # fork this process to run ldconfig (a second copy of it in memory for a moment,
        # which peaked the crawl's memory at +35 MB, and time spent at every start).
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _keep_freed_memory() -> None:
    """Have glibc keep freed memory for the next page rather than hand it back to the system
    at once. A worker process's heap rose and fell with every page (a parse tree, a body):
    glibc's adaptive thresholds then returned the top of the heap after each one and took it
    back for the next, three ``brk`` calls a page and the page faults to refill it (16% of a
    crawl's CPU with two worker processes, measured). Fixed thresholds: blocks under 1 MiB
    come from the heap, and up to 16 MiB of free space is kept at its top."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-1, 16 * 2**20)  # M_TRIM_THRESHOLD
    mallopt(-3, 2**20)  # M_MMAP_THRESHOLD


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    if os.getppid() != int(sys.argv[2]):  # the crawler died before the line above
        return
    _keep_freed_memory()
    try:
        trio.run(_serve, int(sys.argv[1]))
    except* (trio.BrokenResourceError, EOFError):
        pass  # the crawler went away: nothing is waiting for our answers
    if not _hooks_loaded:
        # The crawler waits for this process to exit at the end of the crawl: without the
        # interpreter's teardown it exits ~30 ms sooner.
        from .._teardown import exit_without_teardown

        exit_without_teardown(0)


if __name__ == "__main__":
    main()
