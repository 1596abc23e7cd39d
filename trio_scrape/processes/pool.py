"""The page pipeline in worker processes: every core of the machine.

:class:`ProcessPipeline` is a :class:`~trio_scrape.engine.pipeline.Pipeline` like the in-process
:class:`~trio_scrape.engine.pipeline.PagePipeline`, so the crawler's worker tasks do not know which
one they use. Each attempt goes, as a job, to its host's worker process (``_child.py``: its
own Trio loop and pool of worker tasks running a ``PagePipeline``; :class:`HostRouter` says
which); the crawler's worker task waits for the outcome, then applies it to the crawl's
shared state exactly as in one process. So the frontier, politeness, robots.txt,
``max_pages``, the sink and the state stay in the crawler's process, and nothing else
changes for them.

Back-pressure: the crawler's worker tasks bound the attempts in flight (``workers``); each
process's outbox is a memory channel of ``workers`` frames, its socket's buffer is the
kernel's, and a worker process reads a job only when one of its tasks can take it.

A worker process that dies (SIGKILL, a segfault in a C extension, out of memory) is noticed
at the end of its stream: each attempt it was running raises
:class:`~trio_scrape.engine.pipeline.AttemptLost` to its waiting task (which sends the request back
to the frontier with the attempt counted), and a new process takes its place, at most
``restarts_per_process`` times per process slot over the crawl; past that the crawl fails
with :class:`~trio_scrape.WorkerError`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import outcome as result
import trio

from ..engine.pipeline import AttemptLost, Outcome
from ..errors import WorkerError
from ..http.cookies import SessionJar
from ..model.config import HOOKS, CrawlConfig, hook_reference
from ..model.page import CrawlRequest
from ..model.urls import origin_of
from .wire import (
    CANCEL,
    READY,
    FrameReader,
    decode_outcome,
    encode_cookies,
    encode_job,
    frame,
    send_all,
)

__all__ = ["HostRouter", "ProcessPipeline", "open_process_pipeline"]

logger = logging.getLogger("trio_scrape")

#: How many times each process slot may be refilled after a worker process died.
RESTARTS_PER_PROCESS = 4
# How long a worker process may take to exit once its stream is closed, before SIGKILL.
_EXIT_TIMEOUT = 5.0
# The time from dispatch to a worker process writing a request to a host that has a delay:
# fixed, so the gaps the server sees are those scheduled, whatever each job's way through the
# pipe, the two schedulers and a new connection took (up to this long).
PACED_LATENCY = 0.025
# How long a worker process may take to set itself up (imports, hooks) before it is killed.
_START_TIMEOUT = 60.0
# The folder that holds the trio_scrape package (this file is trio_scrape/processes/pool.py).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Slot:
    """Where an attempt's result meets the task waiting for it (whichever comes first)."""

    __slots__ = ("result", "task")

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.result: result.Outcome[Outcome] | None = None

    def set(self, value: result.Outcome[Outcome]) -> None:
        if self.task is not None:
            trio.lowlevel.reschedule(self.task, value)
        else:
            self.result = value


class HostRouter:
    """Which worker process an attempt goes to: its host's own (its *home*), unless that one
    is busy.

    Each worker process keeps its own keep-alive connections. Sent to whichever process was
    least busy, a host's requests spread over all of them, and each opened connections of
    its own to it (bench/latency.py, 1,024 workers over 250 hosts x 4: 2,723 connections for
    1,000 host slots). So a host (an origin) gets a home the first time it is seen: the
    process that is home to the fewest hosts (ties: the lowest number), which spreads hosts
    evenly whatever their names.

    *Busy* is bounded-load consistent hashing's rule (Mirrokni, Thorup and Zadimoghaddam,
    "Consistent Hashing with Bounded Loads", 2018): an attempt goes home unless the home
    already runs ``ceil(1.25 x (attempts in flight + 1) / processes)`` attempts, a quarter
    over the even share; then it goes to the least busy process. Many hosts stay at home
    (their loads even out), while one host with many pages (the 10,000-page benchmark site
    is one host) still keeps every process busy.

    Homes are kept for the ``max_hosts`` origins used last; a host forgotten gets a home
    anew when it comes back.
    """

    def __init__(self, processes: int, *, max_hosts: int = 10_000) -> None:
        self._homes: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._hosted = [0] * processes  # homes given to each process (by number)
        self._max_hosts = max_hosts

    def home(self, origin: str) -> int:
        """The number of ``origin``'s home process (given now if it has none)."""
        homes = self._homes
        number = homes.get(origin)
        if number is not None:
            homes.move_to_end(origin)
            return number
        hosted = self._hosted
        number = hosted.index(min(hosted))
        hosted[number] += 1
        homes[origin] = number
        if len(homes) > self._max_hosts:
            _, forgotten = homes.popitem(last=False)
            hosted[forgotten] -= 1
        return number

    def choose(self, origin: str, numbers: Sequence[int], loads: Sequence[int]) -> int:
        """The index, in ``numbers`` (the ready processes) and ``loads`` (their attempts in
        flight), of the process to run an attempt at a page of ``origin``."""
        home = self.home(origin)
        cap = -(-5 * (sum(loads) + 1) // (4 * len(loads)))  # ceil(1.25 x (total + 1) / n)
        for index, number in enumerate(numbers):
            if number == home:
                if loads[index] < cap:
                    return index
                break  # busy (or, if absent, restarting): the least busy instead
        return loads.index(min(loads))


class _Worker:
    """One worker process, its stream, and the attempts it is running."""

    def __init__(
        self, number: int, popen: subprocess.Popen[bytes], sock: socket.socket, buffer: int
    ) -> None:
        self.number = number
        self.popen = popen
        self.socket = sock  # read by a FrameReader, written through the stream
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self.outbox, self.outbox_recv = trio.open_memory_channel[bytes](buffer)
        self.pending: dict[int, _Slot] = {}
        self.alive = True
        self.ready = False  # it has set itself up (imports, hooks, fetcher)
        self.jar_version = 0  # the version of the crawl's cookie jar it has a copy of

    async def wait(self) -> int:
        """Wait for the process to exit; return its exit code (negative: a signal)."""
        if sys.platform.startswith("linux"):
            pidfd = os.pidfd_open(self.popen.pid)
            try:
                await trio.lowlevel.wait_readable(pidfd)
            finally:
                os.close(pidfd)
            return self.popen.wait()
        return await trio.to_thread.run_sync(self.popen.wait, abandon_on_cancel=True)


class ProcessPipeline:
    """Runs attempts in ``config.process_count`` worker processes (see the module's text).

    Use :func:`open_process_pipeline`, which starts and stops them.
    """

    def __init__(
        self,
        config: CrawlConfig,
        nursery: trio.Nursery,
        *,
        seed_hosts: Iterable[str],
        seed_origins: Iterable[str],
        bodies: bool,
        jar: SessionJar | None = None,
    ) -> None:
        self._config = config
        self._nursery = nursery
        #: the crawl's cookies (see http/cookies.py): kept here, copied to each process
        self.jar = jar if jar is not None else SessionJar()
        self._setup = {
            "path": list(sys.path),
            "config": child_config_fields(config),
            "seed_hosts": sorted(seed_hosts),
            "seed_origins": sorted(seed_origins),
            "bodies": bodies,
        }
        self._workers: list[_Worker] = []
        self._router = HostRouter(config.process_count)
        self._ids = itertools.count()
        self._restart_budget = RESTARTS_PER_PROCESS * config.process_count
        # With "auto" (one worker process per CPU), each is held to its own CPU: measured,
        # 6-11% less CPU per page on 2 cores (a process moved between cores finds its caches
        # cold). An explicit count is left to the scheduler, and so is a rendering crawl
        # (a browser started by a worker process would inherit its single CPU).
        self._cpus: list[int] = []
        if (
            config.processes == "auto"
            and config.rendering == "off"
            and hasattr(os, "sched_setaffinity")
        ):
            cpus = sorted(os.sched_getaffinity(0))
            if config.process_count <= len(cpus):
                self._cpus = cpus
        self._changed = trio.Event()
        self._closing = False
        self._broken: WorkerError | None = None
        self.restarts = 0  #: worker processes replaced after they died
        #: The total PSS in bytes of the browsers the worker processes started (None: none
        #: running, or not sampled), and the largest sampled: see :meth:`sample_browsers`.
        self.browser_memory: int | None = None
        self.browser_peak_memory: int | None = None

    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes running now."""
        return [w.popen.pid for w in self._workers if w.alive]

    async def sample_browsers(self, interval: float = 1.0) -> None:
        """Every ``interval`` seconds until cancelled, sample the total PSS of the browsers
        the worker processes started into :attr:`browser_memory` (rendering crawls)."""
        from ..render.browser import browser_groups, group_memory

        def measure(parents: list[int]) -> int | None:
            groups = browser_groups(parents)
            return sum(group_memory(pgid) for pgid in groups) if groups else None

        while True:
            memory = await trio.to_thread.run_sync(measure, self.pids)
            if memory is not None:
                self.browser_memory = memory
                self.browser_peak_memory = max(memory, self.browser_peak_memory or 0)
            await trio.sleep(interval)

    # ------------------------------------------------------------------------- attempts

    async def attempt(self, request: CrawlRequest, *, paced: bool = False) -> Outcome:
        """One attempt at ``request`` in its host's worker process (:class:`HostRouter`);
        with ``paced``, the process starts it :data:`PACED_LATENCY` after this call, not
        sooner.

        Raises:
            AttemptLost: the process died before it answered.
            WorkerError: worker processes died more often than they may be replaced.
        """
        send_at = time.monotonic() + PACED_LATENCY if paced else 0.0
        worker = await self._choose(origin_of(request.url))
        job_id = next(self._ids)
        first_try = request.first_try
        waited = 0.0 if first_try is None else trio.current_time() - first_try
        job = encode_job(job_id, request, waited, send_at)
        jar = self.jar
        if worker.jar_version != jar.version:  # the jar changed (never, with no cookies)
            job = encode_cookies(jar.dump()) + job
            worker.jar_version = jar.version
        slot = _Slot()
        worker.pending[job_id] = slot
        try:
            try:
                worker.outbox.send_nowait(job)
            except trio.WouldBlock:
                await worker.outbox.send(job)
        except BaseException:
            worker.pending.pop(job_id, None)
            worker.jar_version = -1  # the jar may not have gone out with it: send it again
            raise
        if slot.result is not None:  # answered (or lost) before we could wait
            return slot.result.unwrap()
        slot.task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            # Given up (grace over, crawl cancelled): tell the process, which stops it.
            if worker.pending.pop(job_id, None) is not None and worker.alive:
                with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                    worker.outbox.send_nowait(frame((CANCEL, job_id)))
            return trio.lowlevel.Abort.SUCCEEDED

        value: Outcome = await trio.lowlevel.wait_task_rescheduled(abort)
        return value

    async def _choose(self, origin: str) -> _Worker:
        """The ready worker process to run an attempt at ``origin`` (:class:`HostRouter`).
        Jobs wait for a process that is ready, not in one that is still starting: a host's
        delay is counted from dispatch, and a job held up in a starting process would reach
        the server late and shorten the next gap as the server sees it."""
        while True:
            if self._broken is not None:
                raise self._broken
            ready = [w for w in self._workers if w.ready]
            if len(ready) > 1:
                loads = [len(w.pending) for w in ready]
                return ready[self._router.choose(origin, [w.number for w in ready], loads)]
            if ready:
                return ready[0]
            await self._changed.wait()  # one is starting (or restarting)

    async def wait_ready(self) -> None:
        """Wait until every worker process has set itself up. The crawl dispatches nothing
        before: a host's delay counts from dispatch, and jobs held up while the processes
        start would all reach the server at once.

        Raises:
            WorkerError: a worker process failed to start.
        """
        while not (self._workers and all(w.ready for w in self._workers)):
            if self._broken is not None:
                raise self._broken
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # ----------------------------------------------------------------------- processes

    def start(self, number: int) -> None:
        """Start worker process ``number`` (it serves jobs once it has imported itself)."""
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        try:
            # Popen here, not trio.lowlevel.open_process: that forks from a worker thread,
            # and PR_SET_PDEATHSIG in the child fires when the *thread* that forked it exits.
            # -P: the parent's package (PYTHONPATH above), never a trio_scrape/ in the
            # working directory, which `-m` would otherwise put first.
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "trio_scrape.processes.child",
                    str(theirs.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if self._cpus:
            try:
                os.sched_setaffinity(popen.pid, {self._cpus[number % len(self._cpus)]})
            except OSError:  # the CPU went away, or the process already ended: no matter
                pass
        worker = _Worker(number, popen, ours, max(1, self._config.workers))
        worker.outbox.send_nowait(frame(self._setup))
        self._workers.append(worker)
        self._nursery.start_soon(self._write, worker)
        self._nursery.start_soon(self._read, worker)
        self._nursery.start_soon(self._watch_start, worker)
        self._wake()

    async def _watch_start(self, worker: _Worker) -> None:
        await trio.sleep(_START_TIMEOUT)
        if worker.alive and not worker.ready:
            logger.warning("worker process %d did not start in time", worker.popen.pid)
            worker.popen.kill()  # _read sees its stream end, and _lost says why

    async def _write(self, worker: _Worker) -> None:
        outbox = worker.outbox_recv
        try:
            async for data in outbox:
                parts = [data]
                while True:  # everything ready goes out in one write
                    try:
                        parts.append(outbox.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        # EndOfChannel: _lost closed the outbox after handing us `data`
                        # and before this task ran; the loop above ends next.
                        break
                await send_all(worker.stream, b"".join(parts))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the process is gone: _read finds out and says so

    async def _read(self, worker: _Worker) -> None:
        reader = FrameReader(worker.socket)
        pending = worker.pending
        try:
            while True:
                for message in await reader.receive():
                    if message == READY:
                        worker.ready = True
                        self._wake()
                        continue
                    job_id, outcome = decode_outcome(message)
                    if outcome.cookies:
                        self.jar.take(outcome.cookies)
                    slot = pending.pop(job_id, None)
                    if slot is not None:  # else given up meanwhile
                        slot.set(result.Value(outcome))
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if not self._closing:
            await self._lost(worker)

    async def _lost(self, worker: _Worker) -> None:
        started = worker.ready  # it had set itself up: its death is a page's, not a start's
        worker.alive = False
        worker.ready = False
        self._workers.remove(worker)
        worker.outbox.close()
        await trio.aclose_forcefully(worker.stream)
        lost = list(worker.pending.values())
        worker.pending.clear()
        pid = worker.popen.pid
        for slot in lost:  # their tasks send the requests back to the frontier
            slot.set(result.Error(AttemptLost(f"worker process {pid} died")))
        with trio.CancelScope(shield=True):
            with trio.move_on_after(_EXIT_TIMEOUT) as waiting:
                code = await worker.wait()
            if waiting.cancelled_caught:  # its stream closed but it lives on: end it
                worker.popen.kill()
                code = await worker.wait()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if self._closing:
            return
        if not started and code > 0:  # it failed to set itself up: another would too
            self._broken = WorkerError(
                f"a worker process failed to start ({how}); its error is above"
            )
            self._wake()
        elif self._restart_budget > 0:
            self._restart_budget -= 1
            self.restarts += 1
            logger.warning(
                "worker process %d died (%s) with %s in flight, which go back to the "
                "queue; starting another (%s left)",
                pid,
                how,
                "1 page" if len(lost) == 1 else f"{len(lost)} pages",
                "1 restart" if self._restart_budget == 1 else f"{self._restart_budget} restarts",
            )
            self.start(worker.number)
        else:
            self._broken = WorkerError(
                f"worker processes died {self.restarts + 1} times (the last: {how}); giving up"
            )
            self._wake()

    async def aclose(self) -> None:
        """Stop every worker process: close its stream (it exits at the end of it), wait
        for it, and SIGKILL one that has not exited within a few seconds. Shielded."""
        self._closing = True
        with trio.CancelScope(shield=True):
            workers, self._workers = self._workers, []
            for worker in workers:
                worker.alive = worker.ready = False
                worker.outbox.close()
                await trio.aclose_forcefully(worker.stream)
            for worker in workers:
                with trio.move_on_after(_EXIT_TIMEOUT) as waiting:
                    await worker.wait()
                if waiting.cancelled_caught:
                    worker.popen.kill()
                    await worker.wait()


def child_config_fields(config: CrawlConfig) -> dict[str, Any]:
    """The fields of ``config`` as a worker process rebuilds it: hooks as references, one
    process. (It never opens the state or the shared frontier: only the pipeline runs there.)"""
    fields = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    fields["headers"] = dict(config.headers)
    fields["processes"] = 1
    for name in HOOKS:
        if fields[name] is not None:
            fields[name] = hook_reference(fields[name])
    return fields


@contextlib.asynccontextmanager
async def open_process_pipeline(
    config: CrawlConfig,
    *,
    seed_hosts: Iterable[str],
    seed_origins: Iterable[str],
    bodies: bool,
    jar: SessionJar | None = None,
) -> AsyncIterator[ProcessPipeline]:
    """Start ``config.process_count`` worker processes and wait until they are ready; stop
    them all on exit, however the block ends (cancellation included): no process is left
    behind.

    Raises:
        WorkerError: a worker process failed to start.
    """
    async with trio.open_nursery() as nursery:
        pipeline = ProcessPipeline(
            config,
            nursery,
            seed_hosts=seed_hosts,
            seed_origins=seed_origins,
            bodies=bodies,
            jar=jar,
        )
        try:
            for number in range(config.process_count):
                pipeline.start(number)
            await pipeline.wait_ready()
            yield pipeline
        finally:
            await pipeline.aclose()
            nursery.cancel_scope.cancel()
