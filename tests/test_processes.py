"""The page pipeline in worker processes (``processes > 1``): the same records as in one
process, hooks by module path, a worker process killed mid-crawl, none left behind."""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import trio_scrape
from trio_scrape import ConfigError, CrawlConfig, Crawler, Page, Selector

from .site import Reply, Request, Site, html_page


def extract_heading(page: Page) -> dict[str, Any]:
    """A module-level hook: worker processes import it by its module path."""
    if page.url.endswith("/boom"):
        raise KeyError("no heading")
    assert page.html is not None
    node = page.html.css_first("h1")
    return {"h1": node.text() if node else None, "pid": os.getpid()}


def exit_on_deadly(page: Page) -> None:
    """A module-level hook whose worker process exits (status 3) on the page ``/deadly``."""
    if page.url.endswith("/deadly"):
        os._exit(3)


def follow_even(page: Page) -> list[str]:
    return [url for url in page.links if not url[-1:].isdigit() or int(url[-1]) % 2 == 0]


def worker_pids() -> set[int]:
    """Processes whose parent is this one and that run trio_scrape's worker module."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"trio_scrape.processes.child" in cmdline:
            found.add(int(entry.name))
    return found


def serving(pid: int) -> bool:
    """Whether a worker process has connections open besides its socket to the crawler."""
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return sum(link.startswith("socket:") for link in links) >= 2


def exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def crawl(seeds: list[str], **options: Any) -> tuple[dict[str, Page], Any]:
    send, receive = trio.open_memory_channel[Page](math.inf)
    crawler = Crawler(seeds, CrawlConfig(**options), sink=send)
    with trio.fail_after(60):
        stats = await crawler.run()
    pages = [page async for page in receive]
    by_url = {page.url: page for page in pages}
    assert len(by_url) == len(pages), "a URL was recorded twice"
    return by_url, stats


def comparable(page: Page) -> dict[str, Any]:
    record = page.to_record(links=True)
    del record["elapsed"], record["fetched_at"]
    record["data"] = {k: v for k, v in record["data"].items() if k != "pid"}
    return record


async def test_records_are_the_same_as_in_one_process(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", [f"/p{i}" for i in range(8)] + ["/old", "/boom"])))
    for i in range(8):
        body = f"<h1>Heading {i}</h1><p class=price>{i}.50</p>"
        links = ["/", f"/missing{i}"]  # each found by one page only: the referrer is known
        site.add(f"/p{i}", Reply(body=html_page(f"P{i}", links, body=body)))
    site.add("/old", Reply(301, headers={"Location": "/p3"}))
    site.add("/boom", Reply(body=html_page("Boom")))
    site.add("/busy", Reply(503))
    options: dict[str, Any] = {
        "depth": 3,
        "links": True,
        "retries": 1,
        "backoff": 0.01,
        "selectors": (Selector.parse("price=p.price"),),
        "extract": extract_heading,
        "follow": follow_even,
    }
    one, one_stats = await crawl([site.url("/"), site.url("/busy")], **options)
    two, two_stats = await crawl([site.url("/"), site.url("/busy")], processes=2, **options)
    assert {u: comparable(p) for u, p in one.items()} == {u: comparable(p) for u, p in two.items()}
    assert two_stats.processes == 2 and one_stats.processes == 1
    assert two_stats.errors == one_stats.errors and two_stats.retries == one_stats.retries == 1
    assert two_stats.invalid_links == one_stats.invalid_links
    # The hooks ran in the worker processes, not here.
    assert {p.data["pid"] for p in one.values() if "pid" in p.data} == {os.getpid()}
    assert {p.data["pid"] for p in two.values() if "pid" in p.data} & {os.getpid()} == set()
    assert set(two) >= {site.url("/p2"), site.url("/old"), site.url("/boom")}
    assert site.url("/p1") not in two  # the follow hook ran in the worker processes
    boom = two[site.url("/boom")].error
    assert boom is not None and boom.kind == "extract"


async def test_library_pages_keep_their_bodies(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", body="caf\u00e9")))
    [page] = await trio_scrape.scrape([site.url("/")], CrawlConfig(processes=2))
    assert page.content.startswith(b"<!doctype html>") and page.text is not None
    assert "caf\u00e9" in page.text and page.headers is not None
    assert page.headers["content-type"].startswith("text/html")


def test_hooks_must_be_importable_by_module_path() -> None:
    def nested(page: Page) -> dict[str, Any]:
        return {}

    unimportable: list[Any] = [nested, lambda page: {}]
    for hook in unimportable:
        with pytest.raises(ConfigError) as info:
            CrawlConfig(processes=2, extract=hook)
        assert info.value.field == "extract" and "module path" in info.value.message
        with pytest.raises(ConfigError):
            CrawlConfig(processes="auto", follow=hook)
        CrawlConfig(processes=1, extract=hook)  # in one process anything callable goes
    CrawlConfig(processes=2, extract=extract_heading, follow=follow_even)


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError("not reached")


def test_processes_is_validated_and_auto_is_bounded() -> None:
    for bad in (0, -1, 65, True, "two", 1.5):
        with pytest.raises(ConfigError) as info:
            CrawlConfig(processes=bad)  # type: ignore[arg-type]
        assert info.value.field == "processes"
    auto = CrawlConfig(processes="auto", workers=64).process_count
    cpus = len(os.sched_getaffinity(0))
    assert auto == (1 if cpus <= 2 else min(cpus, 64))
    assert CrawlConfig(processes="auto", workers=1).process_count == 1
    assert CrawlConfig(processes=8, workers=3).process_count == 8  # as asked
    with pytest.raises(ConfigError) as error:
        Crawler(
            ["http://x.test/"], CrawlConfig(processes=2), transport=httpx.MockTransport(no_network)
        )
    assert error.value.field == "processes"


async def test_a_killed_worker_process_loses_no_page(site: Site) -> None:
    """SIGKILL one worker process mid-crawl: its pages go back to the queue, another
    process takes its place, and every page still gets exactly one record."""
    count = 300
    killed: list[int] = []

    async def page(request: Request) -> Reply:
        i = int(request.path[2:])
        if len(site.log) >= 60 and not killed:
            victims = [pid for pid in worker_pids() if serving(pid)]
            if victims:  # one that is fetching pages now
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])
        await trio.sleep(0.005)
        return Reply(body=html_page(f"P{i}", [f"/p{j}" for j in range(i + 1, min(i + 4, count))]))

    for i in range(count):
        site.add(f"/p{i}", page)
    pages, stats = await crawl([site.url("/p0")], depth=count, processes=2, workers=8)
    assert killed and not exists(killed[0])
    print(sorted(pages), stats, [(u, p.error) for u, p in pages.items()])
    assert set(pages) == {site.url(f"/p{i}") for i in range(count)}
    assert all(p.ok for p in pages.values()), [p.error for p in pages.values() if not p.ok]
    assert stats.worker_restarts == 1 and stats.pages == count


async def test_a_page_whose_worker_process_exits_is_a_crashed_record(site: Site) -> None:
    """A worker process that exits with a status (not by a signal) while running a page is
    replaced, as one killed is: the page that ends it, after its retries, is a ``crashed``
    record; the crawl goes on and every other page gets its record. (One page in flight at a
    time: a page in flight beside it in that process would have an attempt counted too.)"""
    count = 30
    for i in range(count):
        site.add(f"/p{i}", Reply(body=html_page(f"P{i}")))
    site.add("/deadly", Reply(body=html_page("deadly")))
    seeds = [site.url(f"/p{i}") for i in range(count // 2)] + [site.url("/deadly")]
    seeds += [site.url(f"/p{i}") for i in range(count // 2, count)]
    pages, stats = await crawl(seeds, processes=2, workers=1, retries=1, extract=exit_on_deadly)
    deadly = pages.pop(site.url("/deadly"))
    assert deadly.error is not None and deadly.error.kind == "crashed", deadly.error
    assert set(pages) == {site.url(f"/p{i}") for i in range(count)}
    assert all(p.ok for p in pages.values()), [p.error for p in pages.values() if not p.ok]
    assert stats.worker_restarts == 2  # one per attempt at the deadly page


async def test_cancelling_a_library_crawl_leaves_no_worker_process(site: Site) -> None:
    async def slow(request: Request) -> Reply:
        await trio.sleep(0.05)
        i = int(request.path[1:] or 0)
        return Reply(body=html_page(f"P{i}", [f"/{i + 1}", f"/{i + 2}"]))

    site.fallback = None
    for i in range(200):
        site.add(f"/{i}", slow)
    pids: set[int] = set()
    with trio.move_on_after(30) as timeout:
        async with trio.open_nursery() as nursery:
            config = CrawlConfig(depth=1000, processes=2, workers=4)
            async with trio_scrape.open_crawl([site.url("/0")], config) as pages:
                async for page in pages:
                    assert page.ok
                    if page.title == "P5":
                        pids = worker_pids()
                        nursery.cancel_scope.cancel()  # the enclosing scope, mid-crawl
                        await trio.sleep_forever()
    assert not timeout.cancelled_caught
    assert len(pids) == 2
    assert not any(exists(pid) for pid in pids)
    assert worker_pids() == set()


def test_every_outcome_field_crosses_the_wire() -> None:
    from trio_scrape.engine.pipeline import Outcome, SitemapEntries
    from trio_scrape.processes.wire import FrameReader, decode_outcome, encode_outcome

    page = Page("http://x.test/", depth=2, status=200, title="T", data={"k": [1]}, links=["a"])
    page.content, page.encoding = b"caf\xc3\xa9", "utf-8"
    outcome = Outcome(page=page, sitemap=SitemapEntries(["p"], {"p": "2026"}, ["s"]))
    for field in dataclasses.fields(Outcome):  # a value unlike the default for each
        if field.name not in ("page", "sitemap"):
            value = getattr(outcome, field.name)
            new = {bool: True, int: 7, float: 1.5, str: "x", list: ["l"]}.get(type(value), "u")
            setattr(outcome, field.name, new)
    data = encode_outcome(3, outcome, bodies=True)

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        theirs.sendall(data)
        [message] = trio.run(FrameReader(ours).receive)
    job_id, back = decode_outcome(message)
    assert job_id == 3 and back.page is not None
    assert back.page.to_record(links=True) == page.to_record(links=True)
    assert back.page.text == "caf\u00e9"
    for field in dataclasses.fields(Outcome):
        if field.name != "page":
            assert getattr(back, field.name) == getattr(outcome, field.name), field.name


@pytest.mark.parametrize("processes", ["auto", 2])
async def test_auto_holds_each_worker_process_to_a_cpu_of_its_own(
    site: Site, processes: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs for 2 worker processes")
    # auto means worker processes on more than 2 CPUs: this machine is taken for a larger one
    # (workers=2 keeps it to 2 worker processes, one per CPU it really has).
    monkeypatch.setattr("trio_scrape.model.config.usable_cpus", lambda: 4)

    async def slow(request: Request) -> Reply:
        await trio.sleep(0.05)
        i = int(request.path[1:] or 0)
        return Reply(body=html_page(f"P{i}", [f"/{i + 1}"]))

    site.fallback = None
    for i in range(20):
        site.add(f"/{i}", slow)
    affinities: list[set[int]] = []
    config = CrawlConfig(depth=1000, processes=processes, workers=2)  # type: ignore[arg-type]
    with trio.fail_after(30):
        async with trio_scrape.open_crawl([site.url("/0")], config) as pages:
            async for page in pages:
                if page.title == "P3":
                    affinities = [os.sched_getaffinity(pid) for pid in worker_pids()]
    assert len(affinities) == 2
    if processes == "auto":  # one CPU each, different ones, from those allowed
        assert all(len(a) == 1 and a <= cpus for a in affinities)
        assert affinities[0] != affinities[1]
    else:
        assert affinities == [cpus, cpus]


async def test_the_writer_ends_quietly_when_the_outbox_closes_behind_a_job() -> None:
    """A job handed straight to the waiting writer, then the outbox closed (the process was
    found dead) before the writer runs: it writes the job and ends, raising nothing (it used
    to raise EndOfChannel into the crawl)."""
    from trio_scrape.processes.pool import ProcessPipeline, _Worker

    ours, theirs = socket.socketpair()
    with theirs:
        async with trio.open_nursery() as nursery:
            pipeline = ProcessPipeline(
                CrawlConfig(processes=2), nursery, seed_hosts=(), seed_origins=(), bodies=False
            )
            worker = _Worker(0, None, ours, 4)  # type: ignore[arg-type]  # no process here
            nursery.start_soon(pipeline._write, worker)
            await trio.testing.wait_all_tasks_blocked()  # the writer waits on the outbox
            worker.outbox.send_nowait(b"job")  # handed to the waiting writer ...
            worker.outbox.close()  # ... and closed before it runs
        assert theirs.recv(16) == b"job"
        worker.socket.close()


def test_the_router_gives_hosts_even_homes_and_sends_past_a_busy_one() -> None:
    from trio_scrape.processes.pool import HostRouter

    router = HostRouter(3, max_hosts=4)
    numbers = [0, 1, 2]
    # New hosts go to the process home to the fewest (ties: the lowest number) and stay.
    assert [router.choose(h, numbers, [0, 0, 0]) for h in "abcd"] == [0, 1, 2, 0]
    assert [router.home(h) for h in "abcd"] == [0, 1, 2, 0]
    assert router.choose("b", numbers, [5, 0, 0]) == 1  # a busier process elsewhere: no matter
    # Busy: at ceil(1.25 x (in flight + 1) / processes); then the least busy instead.
    assert router.choose("a", numbers, [3, 3, 3]) == 0  # cap ceil(12.5 / 3) = 5
    assert router.choose("a", numbers, [5, 4, 3]) == 0  # cap ceil(16.25 / 3) = 6 > 5
    assert router.choose("a", numbers, [6, 4, 3]) == 2  # cap ceil(17.5 / 3) = 6: busy
    assert router.choose("b", [0, 2], [0, 0]) == 0  # its home is not ready: the least busy
    # The homes of the hosts used last are kept; one forgotten gets a home anew, evenly.
    assert router.home("e") == 1  # a fifth host; "c" (process 2), used longest ago, goes
    assert router._hosted == [2, 2, 0] and "c" not in router._homes
    assert router.home("c") == 2  # a home anew, where there are fewest; "d" (0) goes
    assert router._hosted == [1, 2, 1] and list(router._homes) == ["a", "b", "e", "c"]


async def test_each_host_is_fetched_by_its_own_worker_process(nursery: trio.Nursery) -> None:
    """With worker processes, a host's pages go to its home process, so it sees the
    connections of one process (here one, at one request in flight), not of all of them;
    and the hosts are spread over the processes."""
    sites: list[Site] = [await nursery.start(Site().serve) for _ in range(4)]
    for site in sites:
        paths = [f"/p{i}" for i in range(12)]
        site.add("/", Reply(body=html_page("Home", paths)))
        for path in paths:
            site.add(path, Reply(body=html_page(path, ["/"], body=f"<h1>{path}</h1>")))
    pages, stats = await crawl(
        [site.url("/") for site in sites],
        depth=1,
        processes=2,
        per_host=1,
        extract=extract_heading,
    )
    assert len(pages) == 4 * 13 and stats.processes == 2
    pids = [{p.data["pid"] for u, p in pages.items() if u.startswith(s.base + "/")} for s in sites]
    assert all(len(found) == 1 for found in pids), pids
    assert sorted(collections.Counter(found.pop() for found in pids).values()) == [2, 2]
    assert [len({id(r.stream) for r in site.log}) for site in sites] == [1, 1, 1, 1]


async def test_a_busy_home_sends_a_hosts_pages_to_another_worker_process(site: Site) -> None:
    """One host with many pages at once keeps every worker process busy (its home takes a
    quarter over the even share, the rest goes elsewhere)."""

    async def page(request: Request) -> Reply:
        await trio.sleep(0.02)  # the server's latency: the attempts overlap
        return Reply(body=html_page(request.path, body=f"<h1>{request.path}</h1>"))

    site.add("/", Reply(body=html_page("Home", [f"/p{i}" for i in range(24)])))
    for i in range(24):
        site.add(f"/p{i}", page)
    pages, _ = await crawl(
        [site.url("/")], depth=1, processes=2, per_host=8, extract=extract_heading
    )
    assert len(pages) == 25
    assert len({p.data["pid"] for p in pages.values()} - {os.getpid()}) == 2


async def test_worker_processes_import_the_crawlers_package_not_the_working_directorys(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run from a directory holding another trio_scrape/ (a checkout beside an installed
    # build, say), the worker processes still import the crawler's own package.
    decoy = tmp_path / "trio_scrape"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the working directory\\'s copy')\n")
    (decoy / "processes").mkdir()
    (decoy / "processes" / "__init__.py").write_text("")
    (decoy / "processes" / "child.py").write_text("raise SystemExit(9)\n")
    monkeypatch.chdir(tmp_path)
    site.add("/", Reply(body=html_page("Home", ["/a", "/b"])))
    site.add("/a", Reply(body=html_page("A")))
    site.add("/b", Reply(body=html_page("B")))
    pages, stats = await crawl([site.url("/")], processes=2, depth=1)
    assert stats.processes == 2
    assert sorted(pages) == sorted(site.url(p) for p in ("/", "/a", "/b"))
    assert all(page.error is None for page in pages.values())


async def test_worker_processes_that_keep_dying_end_the_crawl_in_one_line(
    site: Site, tmp_path: Path
) -> None:
    from .test_cli import cli

    for i in range(40):
        site.add(f"/p{i}", Reply(body=html_page(f"P{i}")))
    (tmp_path / "seeds.txt").write_text("".join(site.url(f"/p{i}") + "\n" for i in range(40)))
    (tmp_path / "deadly_hook.py").write_text("import os\n\ndef extract(page):\n    os._exit(3)\n")
    result = await cli(
        "run", "--seeds-file", "seeds.txt", "--processes", "2", "--retries", "0", "--workers",
        "1", "--extract", "deadly_hook:extract", "-o", "out.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.decode().splitlines()[-1]
    assert last == (
        "trio-scrape: error: worker processes died 9 times (the last: exit code 3); giving up"
    )
    assert "Traceback" not in result.stderr.decode()
