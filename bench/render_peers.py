"""Rendering benchmark against Playwright for Python, both driving the same chromium-headless-shell.

The site is bench/render_soak.py's: N pages (default 2,000) whose title and links exist only
once their script has run (title and three child links at once, one more link after a 20 ms
timer), served by nginx on 127.0.0.1. Each run crawls it breadth-first from the home page over
the rendered links with 4 tabs, and checks that every page was reached with its script-built
title. The runs, one after another in one process:

* ``trio-scrape``: ``CrawlConfig(render=True, render_tabs=4)``, default settings otherwise;
* ``trio-scrape 150ms``: the same with the quiet wait trio-scrape had before (after ``load``,
  the DOM unchanged for 150 ms), patched in for the A/B;
* ``trio-scrape with a handler`` (``trio-handler``): the default run with a scraper whose
  handler reads the title and follows the links (the tab held while it runs, the compositor on
  its own thread);
* ``trio-scrape max 0.001``: ``render_wait_max=0.001`` (no wait after ``load``);
* ``playwright evaluate`` / ``playwright eval_on_selector_all``: Playwright written as a
  competent user writes it (one browser, one shared context, 4 pages, images, fonts and media
  aborted by a route, ``goto(wait_until="load")``, then the title and the links read by one
  ``page.evaluate`` or by ``page.title()`` + ``page.eval_on_selector_all``), launched with
  ``executable_path`` (no ``playwright install``).

* ``trio-scrape + FLAGS`` (``--flags="--switch ..."``, repeatable): the default run with
  extra browser switches, for A/B runs of launch flags.

For each: pages/s, pages reached and with their title, the browser's PSS (the sum over the
browser's processes, sampled every 0.5 s: mean, first and last quarter, peak), the browser's
CPU (sum of its processes' user+system time, sampled; also by process type: browser,
renderer, gpu-process, network service) and the driver's (this Python process, plus
Playwright's node driver) per page. Needs ``pip install playwright`` in the benchmark's
environment (never the project's), not ``playwright install``. Not a test; loopback only.

    python bench/render_peers.py --pages 2000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import render_soak  # noqa: E402
import run as bench_run  # noqa: E402

import trio_scrape  # noqa: E402
from trio_scrape.render import renderer as renderer_module  # noqa: E402
from trio_scrape.render.browser import find_browser  # noqa: E402

PORT = 8094  # not bench/run.py's nor render_soak's
TABS = 4
CLOCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------- measuring


def _descendants() -> dict[int, tuple[str, int]]:
    """Descendants of this process: pid -> (executable name, CPU ticks)."""
    parents: dict[int, int] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        name = stat[stat.index(b"(") + 1 : stat.rfind(b")")].decode(errors="replace")
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] == b"Z":
            continue
        parents[int(entry)] = int(fields[1])
        info[int(entry)] = (name, int(fields[11]) + int(fields[12]))
    me = os.getpid()
    out: dict[int, tuple[str, int]] = {}
    for pid in info:
        seen, p = 0, pid
        while p in parents and p != me and seen < 64:
            p, seen = parents[p], seen + 1
        if p == me and pid != me:
            out[pid] = info[pid]
    return out


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_bytes().splitlines():
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _process_type(pid: int) -> str:
    """A browser process's role: its ``--type=`` switch (renderer, gpu-process, utility,
    zygote) or ``browser`` for the main process."""
    try:
        # Zygote children rewrite their command line as one space-separated string.
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return "?"
    for arg in args:
        if arg.startswith(b"--type="):
            kind = arg.removeprefix(b"--type=").decode()
            if kind == "utility":
                for other in args:
                    if other.startswith(b"--utility-sub-type="):
                        return other.split(b".")[-1].decode()  # e.g. NetworkService
            return kind
    return "browser"


def _is_browser(name: str) -> bool:
    # /proc/PID/stat truncates names to 15 characters: "chromium-headle".
    return name.startswith("chromium") or name.startswith("chrome")


class Sampler:
    """Samples, every ``interval`` seconds in a thread, the PSS of the browser's processes
    (descendants of this process named chromium*) and the CPU ticks of every descendant
    (the highest seen per pid, so a process that exited still counts up to its last sample)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pss: list[int] = []
        self.pss_by_kind: dict[str, list[int]] = {}
        self.browser_ticks: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        self.driver_ticks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            total = 0
            kinds: dict[str, int] = {}
            for pid, (name, ticks) in _descendants().items():
                if _is_browser(name):
                    pss = _pss(pid)
                    total += pss
                    self.browser_ticks[pid] = max(ticks, self.browser_ticks.get(pid, 0))
                    if pid not in self.kinds:
                        self.kinds[pid] = _process_type(pid)
                    kind = self.kinds[pid]
                    kinds[kind] = kinds.get(kind, 0) + pss
                else:
                    self.driver_ticks[pid] = max(ticks, self.driver_ticks.get(pid, 0))
            if total:
                self.pss.append(total)
                for kind, pss in kinds.items():
                    self.pss_by_kind.setdefault(kind, []).append(pss)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.pages = 0
        self.titled = 0
        self.wall = 0.0
        self.pss: list[int] = []
        self.browser_cpu = 0.0
        self.by_kind: dict[str, float] = {}
        self.pss_by_kind: dict[str, list[int]] = {}
        self.driver_cpu = 0.0

    def line(self) -> str:
        pss = self.pss or [0]
        quarter = max(len(pss) // 4, 1)
        first = statistics.mean(pss[:quarter]) / 1e6
        last = statistics.mean(pss[-quarter:]) / 1e6
        per_page = 1000 / max(self.pages, 1)
        return (
            f"{self.name:32} {self.pages / self.wall:6.1f} pages/s  {self.pages:5d} pages "
            f"{self.titled:5d} titled  PSS mean {statistics.mean(pss) / 1e6:5.0f} MB "
            f"(first q {first:4.0f}, last q {last:4.0f}, peak {max(pss) / 1e6:5.0f})  "
            f"CPU ms/page: browser {self.browser_cpu * per_page:5.1f}, "
            f"driver {self.driver_cpu * per_page:5.1f}"
        )

    def kinds_line(self) -> str:
        per_page = 1000 / max(self.pages, 1)
        parts = sorted(self.by_kind.items(), key=lambda item: -item[1])
        memory = sorted(
            ((kind, statistics.mean(values) / 1e6) for kind, values in self.pss_by_kind.items()),
            key=lambda item: -item[1],
        )
        return (
            "    browser CPU ms/page by process: "
            + ", ".join(f"{kind} {seconds * per_page:.1f}" for kind, seconds in parts)
            + "\n    browser PSS mean MB by process type: "
            + ", ".join(f"{kind} {mb:.0f}" for kind, mb in memory)
        )


def measured(name: str, run: Callable[[], tuple[int, int]]) -> Result:
    result = Result(name)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    sampler = Sampler()
    began = time.monotonic()
    with sampler.running():
        result.pages, result.titled = run()
    result.wall = time.monotonic() - began
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    result.pss = sampler.pss
    result.pss_by_kind = sampler.pss_by_kind
    result.browser_cpu = sum(sampler.browser_ticks.values()) / CLOCK
    for pid, ticks in sampler.browser_ticks.items():
        kind = sampler.kinds.get(pid, "?")
        result.by_kind[kind] = result.by_kind.get(kind, 0.0) + ticks / CLOCK
    own = (own_after.ru_utime - own_before.ru_utime) + (own_after.ru_stime - own_before.ru_stime)
    result.driver_cpu = own + sum(sampler.driver_ticks.values()) / CLOCK
    return result


def title_ok(url: str, title: str | None) -> bool:
    name = url.rsplit("/", 1)[-1]
    number = 0 if name == "index.html" else int(name[1:].removesuffix(".html"))
    return title == f"Page {number}"


# ------------------------------------------------------------------------ trio-scrape


async def trio_crawl(start: str, pages: int, **options: Any) -> tuple[int, int]:
    config = trio_scrape.CrawlConfig(
        render=True,
        render_tabs=TABS,
        depth=1_000_000,
        max_pages=pages,
        robots=False,
        timeout=30,
        **options,
    )
    send, receive = trio.open_memory_channel[trio_scrape.Page](64)
    crawler = trio_scrape.Crawler([start], config, sink=send)
    titled = 0
    reached: set[str] = set()
    async with trio.open_nursery() as nursery:

        async def drain() -> None:
            nonlocal titled
            async with receive:
                async for page in receive:
                    reached.add(page.url)
                    titled += page.ok and title_ok(page.url, page.title)

        nursery.start_soon(drain)
        await crawler.run()
    return len(reached), titled


def _reading_router() -> trio_scrape.Router:
    """A scraper whose handler reads each page's title and follows its links: a crawl whose
    handlers hold the tab (the compositor keeps its thread), as a scraper's crawl runs."""
    router = trio_scrape.Router()

    @router.default
    def read(ctx: trio_scrape.Context) -> None:
        ctx.push({"title": ctx.page.title})
        ctx.enqueue_links()

    return router


#: The quiet wait before this benchmark's change, for the A/B: after load, 150 ms without a
#: DOM mutation (capped by render_wait_max).
LEGACY_QUIET_SCRIPT = """
new Promise((resolve) => {
  let timer;
  const done = () => {
    observer.disconnect(); clearTimeout(timer); clearTimeout(cap); resolve(true);
  };
  const observer = new MutationObserver(() => {
    clearTimeout(timer); timer = setTimeout(done, 150);
  });
  observer.observe(
    document, {subtree: true, childList: true, attributes: true, characterData: true}
  );
  timer = setTimeout(done, 150);
  const cap = setTimeout(done, %(cap)d);
})
"""


@contextmanager
def legacy_wait() -> Iterator[None]:
    saved = renderer_module.quiet_script
    renderer_module.quiet_script = lambda cap_ms: LEGACY_QUIET_SCRIPT % {"cap": cap_ms}
    try:
        yield
    finally:
        renderer_module.quiet_script = saved


# ------------------------------------------------------------------------- Playwright

_EVALUATE = "() => [document.title, Array.from(document.querySelectorAll('a[href]'), a => a.href)]"
_BLOCKED = {"image", "font", "media"}


async def playwright_crawl(
    start: str, pages: int, variant: str, executable: str
) -> tuple[int, int]:
    from playwright.async_api import Route, async_playwright

    async def block(route: Route) -> None:
        if route.request.resource_type in _BLOCKED:
            await route.abort()
        else:
            await route.continue_()

    seen = {start}
    queue: asyncio.Queue[str] = asyncio.Queue()
    queue.put_nowait(start)
    titled = 0
    done = 0
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, headless=True)
        context = await browser.new_context()
        await context.route("**/*", block)

        async def worker() -> None:
            nonlocal titled, done
            page = await context.new_page()
            while True:
                url = await queue.get()
                try:
                    await page.goto(url, wait_until="load", timeout=30_000)
                    if variant == "evaluate":
                        title, links = await page.evaluate(_EVALUATE)
                    else:
                        title = await page.title()
                        links = await page.eval_on_selector_all(
                            "a[href]", "els => els.map(e => e.href)"
                        )
                    done += 1
                    titled += title_ok(url, title)
                    for link in links:
                        link = link.split("#", 1)[0]
                        if link not in seen and len(seen) < pages:
                            seen.add(link)
                            queue.put_nowait(link)
                except Exception as exc:
                    print(f"  {url}: {exc}", file=sys.stderr)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(TABS)]
        await queue.join()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await context.close()
        await browser.close()
    return done, titled


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="times each run is repeated")
    parser.add_argument(
        "--only", default="", help="comma-separated run names (default: all), e.g. trio,pw-eval"
    )
    parser.add_argument(
        "--flags",
        action="append",
        default=[],
        help="a run 'trio-flags' adds these browser switches (space-separated); repeatable: "
        "one run per value, named trio-flags, trio-flags2, ...",
    )
    args = parser.parse_args()
    executable = find_browser()
    bench_run.PORT = PORT
    runs: dict[str, tuple[str, Callable[[str], tuple[int, int]]]] = {
        "trio": ("trio-scrape (default)", lambda s: trio.run(trio_crawl, s, args.pages)),
        "trio-150": ("trio-scrape, 150 ms quiet wait", lambda s: _legacy(s, args.pages)),
        "trio-handler": (
            "trio-scrape with a handler",
            lambda s: trio.run(
                functools_partial(trio_crawl, router=_reading_router()), s, args.pages
            ),
        ),
        "trio-0": (
            "trio-scrape --render-wait-max 0.001",
            lambda s: trio.run(functools_partial(trio_crawl, render_wait_max=0.001), s, args.pages),
        ),
        "pw-eval": (
            "playwright page.evaluate",
            lambda s: asyncio.run(playwright_crawl(s, args.pages, "evaluate", executable)),
        ),
        "pw-selector": (
            "playwright eval_on_selector_all",
            lambda s: asyncio.run(playwright_crawl(s, args.pages, "selector", executable)),
        ),
    }
    for n, flags in enumerate(args.flags):
        runs[f"trio-flags{n + 1 if n else ''}"] = (
            f"trio-scrape + {flags}",
            lambda s, flags=flags: _with_flags(flags.split(), s, args.pages),
        )
    chosen = [name for name in args.only.split(",") if name] or list(runs)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="trio-scrape-render-peers-") as workdir:
        Path(workdir).chmod(0o755)  # nginx's worker runs as another user: let it read
        root = Path(workdir) / "www"
        render_soak.generate(root, args.pages)
        server = bench_run.start_server(root, Path(workdir))
        try:
            start = f"http://127.0.0.1:{PORT}/index.html"
            for round_ in range(args.rounds):
                for name in chosen:
                    label, run = runs[name]
                    result = measured(f"{label} #{round_ + 1}", lambda run=run: run(start))
                    print(result.line(), flush=True)
                    print(result.kinds_line(), flush=True)
                    results.append(result)
        finally:
            server.terminate()
            server.wait()
    print(
        f"executable: {executable}; {args.pages} pages, {TABS} tabs; machine load "
        f"{os.getloadavg()[0]:.1f}"
    )


def _legacy(start: str, pages: int) -> tuple[int, int]:
    with legacy_wait():
        return trio.run(trio_crawl, start, pages)


def _with_flags(flags: list[str], start: str, pages: int) -> tuple[int, int]:
    from trio_scrape.render import browser

    saved = browser.browser_args

    def patched(**kwargs: Any) -> list[str]:
        args = saved(**kwargs)
        return args[:-1] + flags + args[-1:]  # the last is the start page

    browser.browser_args = patched  # type: ignore[assignment]
    try:
        return trio.run(trio_crawl, start, pages)
    finally:
        browser.browser_args = saved  # type: ignore[assignment]


def functools_partial(function: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    async def call(*args: Any) -> Any:
        return await function(*args, **options)

    return call


if __name__ == "__main__":
    main()
