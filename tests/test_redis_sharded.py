"""One crawl sharded over a 3-node Redis Cluster (``redis+cluster://...?shards=3``,
frontier/sharded.py; one cluster for the module): the shards on three nodes and each host's
keys on its own shard, whole crawls of sites of several hosts (127.0.0.1 on several ports,
spread over the shards) shared by several processes with SIGKILL, an exact fleet
``--max-pages``, and politeness as each server sees it. The Frontier conformance suite runs
on a sharded crawl in tests/test_frontier.py (``redis-sharded``)."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import trio

from trio_scrape import CrawlConfig, Crawler, FrontierError
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sharded import (
    ShardedRedisFrontier,
    keyslot,
    open_fleet_frontier,
    shard_of,
)
from trio_scrape.model.urls import origin_of
from trio_scrape.output.sinks import open_file_sink

from .half_way import export
from .redis_cluster import RedisClusterNodes
from .redis_cluster import redis_cluster as redis_cluster
from .site import Reply, html_page
from .test_cli import CLI, cli
from .test_redis import WatchedSite, crawl_name, lines, replaces_methods
from .test_redis import test_a_retry_after_pause_holds_for_every_process as _pause
from .test_redis import test_robots_txt_is_fetched_once_for_the_fleet as _robots

SHARDS = 3


@pytest.fixture(scope="module")
def sharded_url(redis_cluster: RedisClusterNodes) -> str:
    return redis_cluster.url + f"?shards={SHARDS}"


@pytest.fixture(scope="module")
def redis_url(sharded_url: str) -> str:
    """This module's Redis for the tests of tests/test_redis.py imported here: a crawl of 3
    shards (their one host on one of them; the HostLimiter's events and robots.txt go
    through the sharded frontier to it)."""
    return sharded_url


test_a_retry_after_pause_holds_for_every_process_sharded = _pause
test_robots_txt_is_fetched_once_for_the_fleet_sharded = _robots


@pytest.fixture
async def sites(nursery: trio.Nursery) -> list[WatchedSite]:
    """Sites on 127.0.0.1, each its own port (its own origin), until every shard has two."""
    started: list[WatchedSite] = []
    per_shard: Counter[int] = Counter()
    while min(per_shard[k] for k in range(SHARDS)) < 2:
        assert len(started) < 40, "the ports' hashes would not spread over the shards"
        site = WatchedSite(answer_time=0.001)
        await nursery.start(site.serve)
        started.append(site)
        per_shard[shard_of(origin_of(site.url("/")), SHARDS)] += 1
    return started


def spread_tree(sites: list[WatchedSite], pages: int, *, fanout: int = 4) -> list[str]:
    """Pages /p0 ... as in tree_site, page I on site I mod len(sites): each page links to
    its children on their own hosts (mostly other shards') and to /p0."""

    def url(i: int) -> str:
        return sites[i % len(sites)].url(f"/p{i}")

    for h, site in enumerate(sites):

        def page(path: str, h: int = h) -> Reply | None:
            if not path.startswith("/p") or not path[2:].isdigit():
                return None
            i = int(path[2:])
            if i >= pages or i % len(sites) != h:
                return None
            children = [url(j) for j in range(fanout * i + 1, min(fanout * i + fanout + 1, pages))]
            return Reply(body=html_page(f"Page {i}", [*children, url(0)]))

        site.fallback = page
    return [url(i) for i in range(pages)]


async def redis_cli(port: int, *args: str) -> str:
    with trio.fail_after(10):
        done = await trio.run_process(["redis-cli", "-p", str(port), *args], capture_stdout=True)
    return str(done.stdout.decode())


async def node_keys(redis_cluster: RedisClusterNodes, name: str) -> dict[int, list[str]]:
    """Each node's keys of the crawl ``name`` (every shard's tag starts with it)."""
    return {
        i: (await redis_cli(port, "--scan", "--pattern", f"trio-scrape:{{{name}*")).split()
        for i, port in enumerate(redis_cluster.ports)
    }


def test_keyslot_is_the_clusters(redis_cluster: RedisClusterNodes) -> None:
    for tag in ["a", "crawl-0123456789abcdef~1.0", "t-x~2.17", "é"]:
        answer = subprocess.run(
            ["redis-cli", "-p", str(redis_cluster.ports[0]), "CLUSTER", "KEYSLOT", f"{{{tag}}}x"],
            capture_output=True, check=True, timeout=10,
        )  # fmt: skip
        assert int(answer.stdout) == keyslot(tag)


async def test_shards_sit_on_three_nodes_and_each_hosts_keys_on_its_shard(
    redis_cluster: RedisClusterNodes, sharded_url: str, sites: list[WatchedSite], tmp_path: Path
) -> None:
    """A crawl of 3 shards: one shard's keys on each node; each host's queue and state only
    under its own shard's tag; every page once in the export and the process's file; the
    same command without ``?shards=`` finds the sharded crawl finished; and ``status`` sums
    the shards."""
    expected = spread_tree(sites, 120)
    name = crawl_name()
    out = tmp_path / "out.jsonl"
    result = await cli(
        "run", expected[0], "--depth", "10", "--no-robots", "--allow-private", "-q",
        "--frontier", sharded_url, "--crawl-id", name, "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(r["url"] for r in lines(out)) == sorted(expected)
    tags_by_node = {}
    keys_by_node = await node_keys(redis_cluster, name)
    for i, keys in keys_by_node.items():
        tags = {key.partition("}")[0] + "}" for key in keys}
        assert len(tags) == 1, (i, tags)  # one shard per node
        tags_by_node[i] = tags.pop()
    assert (
        tags_by_node[redis_cluster.owner(f"trio-scrape:{{{name}}}:meta")]
        == f"trio-scrape:{{{name}}}"
    )
    # Which shard is which: shard 0's tag is the crawl's; the others' are stored in it.
    meta = f"trio-scrape:{{{name}}}:meta"
    shard_tags = json.loads(await redis_cli(redis_cluster.ports[0], "-c", "HGET", meta, "shards"))
    assert len(shard_tags) == SHARDS and shard_tags[0] == name
    keys_of = {tags_by_node[i]: keys for i, keys in keys_by_node.items()}
    for site in sites:
        origin = origin_of(site.url("/"))
        home = f"trio-scrape:{{{shard_tags[shard_of(origin, SHARDS)]}}}"
        for tag, keys in keys_of.items():
            mine = [k for k in keys if k.endswith(":h:" + origin) or k.endswith(":q:" + origin)]
            assert bool(mine) == (tag == home), (origin, tag, mine)
    counts = await export(sharded_url, name, tmp_path / "all.jsonl")
    assert sorted(counts) == sorted(expected) and max(counts.values()) == 1
    again = await cli(
        "run", expected[0], "--depth", "10", "--no-robots", "--allow-private", "-q",
        "--frontier", redis_cluster.url, "--crawl-id", name, "-o", str(tmp_path / "again.jsonl"),
    )  # fmt: skip
    assert again.returncode == 0 and b"nothing to do" in again.stderr, again.stderr
    status = await cli("status", "--frontier", redis_cluster.url, "--crawl-id", name, "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["done"], report["records"], report["queued"], report["leased"]) == (
        120,
        120,
        0,
        0,
    )
    # Each process once, though it is seen by every shard: one name on all of them.
    pids = [name.split(":")[1] for name in report["processes"]]
    assert pids and len(pids) == len(set(pids)), report["processes"]


async def test_three_processes_one_killed_and_restarted_one_killed_for_good_sharded(
    sites: list[WatchedSite], sharded_url: str, tmp_path: Path
) -> None:
    """Three processes on a sharded crawl of 1,500 pages over several hosts: two SIGKILLed
    half-way, one of them restarted. The export holds every page once, no process's file
    holds a page twice (the restarted one cut back and completed from every shard), and no
    URL was requested twice at once."""
    expected = spread_tree(sites, 1500)
    name = crawl_name()

    def command(i: int) -> list[str]:
        return [
            *CLI, "run", expected[0], "--depth", "100", "--no-robots", "--allow-private", "-q",
            "--frontier", sharded_url, "--crawl-id", name, "--lease", "2", "--workers", "4",
            "-o", str(tmp_path / f"out{i}.jsonl"),
        ]  # fmt: skip

    def answered() -> int:
        return sum(len(site.log) for site in sites)

    with trio.fail_after(120):
        processes = [
            await trio.lowlevel.open_process(command(i), stderr=subprocess.DEVNULL)
            for i in range(3)
        ]
        while answered() < 700 and processes[2].poll() is None:
            with trio.move_on_after(0.2):  # a hit on any of the sites
                await sites[0].hit_event.wait()
        for process in processes[:2]:
            process.kill()  # SIGKILL: no chance to give anything back
            await process.wait()
        assert processes[2].poll() is None, "the crawl was too quick to be killed half-way"
        restarted = await trio.run_process(command(0), capture_stderr=True, check=False)
        await processes[2].wait()
    assert restarted.returncode == 0, restarted.stderr
    assert b"joining the crawl" in restarted.stderr
    assert processes[2].returncode == 0
    counts = await export(sharded_url, name, tmp_path / "all.jsonl")
    assert sorted(counts) == sorted(expected) and max(counts.values()) == 1
    files = Counter(r["url"] for i in range(3) for r in lines(tmp_path / f"out{i}.jsonl"))
    assert max(files.values()) == 1 and set(files) <= set(expected)
    assert max(site.most_per_path for site in sites) == 1


async def test_two_crawlers_max_pages_is_exact_across_shards(
    sites: list[WatchedSite], sharded_url: str, tmp_path: Path
) -> None:
    """--max-pages 250 for a crawl of 3 shards, 2 crawlers: exactly 250 pages in all."""
    spread_tree(sites, 600)
    name = crawl_name()
    config = CrawlConfig(
        depth=100,
        robots=False,
        allow_private=True,
        frontier=sharded_url,
        crawl_id=name,
        max_pages=250,
        workers=4,
    )
    outputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for out in outputs:
                seed = sites[0].url("/p0")
                crawler = Crawler([seed], config, sink=open_file_sink(str(out), "jsonl"))
                nursery.start_soon(crawler.run)
    counts = Counter(r["url"] for out in outputs for r in lines(out))
    assert len(counts) == 250 and max(counts.values()) == 1
    assert sum(len(site.log) for site in sites) == 250
    hosts = {shard_of(origin_of(url), SHARDS) for url in counts}
    assert hosts == set(range(SHARDS))  # the budget went to every shard


async def test_per_host_and_delay_hold_across_three_processes_sharded(
    nursery: trio.Nursery, sharded_url: str, tmp_path: Path
) -> None:
    """--per-host 2 --delay 0.05, three processes, hosts on every shard: each server saw at
    most 2 requests at once, and its starts at least the delay apart (less 20%, see
    test_redis.test_per_host_and_delay_hold_across_three_processes)."""
    slow: list[WatchedSite] = []
    per_shard: Counter[int] = Counter()
    while min(per_shard[k] for k in range(SHARDS)) < 1:
        assert len(slow) < 30
        site = WatchedSite(answer_time=0.15)
        await nursery.start(site.serve)
        slow.append(site)
        per_shard[shard_of(origin_of(site.url("/")), SHARDS)] += 1
    expected = spread_tree(slow, 10 * len(slow))
    name = crawl_name()
    command = [
        "run", expected[0], "--depth", "10", "--no-robots", "--allow-private", "-q",
        "--frontier", sharded_url, "--crawl-id", name, "--per-host", "2", "--delay", "0.05",
    ]  # fmt: skip
    results = []

    async def one(i: int) -> None:
        results.append(await cli(*command, "-o", str(tmp_path / f"out{i}.jsonl")))

    with trio.fail_after(90):
        async with trio.open_nursery() as processes:
            for i in range(3):
                processes.start_soon(one, i)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    written = sorted(r["url"] for i in range(3) for r in lines(tmp_path / f"out{i}.jsonl"))
    assert written == sorted(expected)
    for site in slow:
        assert site.most <= 2
        starts = sorted(r.at for r in site.log)
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert min(gaps) >= 0.05 * 0.8, sorted(gaps)[:5]


async def test_recrawl_is_refused_on_a_sharded_crawl(sharded_url: str, tmp_path: Path) -> None:
    result = await cli(
        "run", "http://127.0.0.1:9/", "--recrawl", "-q", "--frontier", sharded_url,
        "--crawl-id", crawl_name(), "-o", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert result.returncode == 2
    assert b"--recrawl is not available on the sharded crawl" in result.stderr


@replaces_methods
async def test_a_page_stopped_between_its_links_and_its_completion_loses_no_link(
    sharded_url: str,
) -> None:
    """A page's link to another shard's host goes there before the page's completion: a
    process that stops in between (its completion fails; its lease goes back) leaves the
    link queued, and the process that does the page again adds it once more without
    queueing it twice. Each of the two is handed out once, and the crawl then ends."""
    config = CrawlConfig(per_host=10, robots=False)
    origins = [f"http://h{i}.test" for i in range(20)]
    page_origin = origins[0]
    other_origin = next(o for o in origins if shard_of(o, SHARDS) != shard_of(page_origin, SHARDS))
    page, link = page_origin + "/page", other_origin + "/link"
    name = crawl_name()
    with trio.fail_after(30):
        async with open_fleet_frontier(sharded_url, config, settings={}, crawl_id=name) as first:
            assert isinstance(first, ShardedRedisFrontier)
            hosts = HostLimiter(config)
            await first.add([page], depth=0, referrer=None)
            request = await first.get(hosts)
            assert request is not None and request.url == page
            assert first.defer_links(request, [link], depth=1, keep=None, revisit=False)

            async def stopped(*args: object, **kwargs: object) -> None:
                raise FrontierError("stopped before the completion")

            home = first.shards[shard_of(page_origin, SHARDS)]
            home.done = stopped  # type: ignore[method-assign]
            with pytest.raises(FrontierError, match="stopped"):
                await first.done([request])
            # leaving the block gives the lease back, as its expiry would
        async with open_fleet_frontier(sharded_url, config, settings={}, crawl_id=name) as second:
            assert second.statistics().queued == 2  # the page given back, and its link
            hosts = HostLimiter(config)
            handed: list[str] = []
            while (request := await second.get(hosts)) is not None:
                handed.append(request.url)
                if request.url == page:  # done again: its link found again
                    assert second.defer_links(request, [link], depth=1, keep=None, revisit=False)
                await second.done([request])
            assert sorted(handed) == sorted([page, link])
            assert second.statistics().seen == 2


async def test_a_revisit_waits_only_for_its_own_shard_to_run_dry(sharded_url: str) -> None:
    """What does not hold across shards, shown: one Redis queues a revisit (a URL found at
    a smaller depth after it was handed out) only once the whole crawl is dry; a sharded
    crawl once the URL's shard is. Here /u's shard hands out its revisit at depth 3 while a
    page of another shard is still leased; that page then finds /u at depth 2, and /u is
    revisited a second time (one Redis would revisit it once, at depth 2)."""
    config = CrawlConfig(per_host=10, robots=False)
    origins = [f"http://r{i}.test" for i in range(20)]
    a = origins[0]
    b = next(o for o in origins if shard_of(o, SHARDS) != shard_of(a, SHARDS))
    u, page = a + "/u", b + "/page"
    with trio.fail_after(30):
        async with open_fleet_frontier(
            sharded_url, config, settings={}, crawl_id=crawl_name()
        ) as frontier:
            hosts = HostLimiter(config)
            await frontier.add([u], depth=5, referrer=None)
            await frontier.add([page], depth=0, referrer=None)
            leased = {r.url: r for r in [await frontier.get(hosts), await frontier.get(hosts)] if r}
            assert set(leased) == {u, page}
            await frontier.done([leased[u]])
            await frontier.add([u], depth=3, referrer=None, revisit=True)
            first = await frontier.get(hosts)  # /page is still leased on its shard
            assert first is not None and (first.url, first.depth, first.revisit) == (u, 3, True)
            await frontier.done([first])
            await frontier.add([u], depth=2, referrer=page, revisit=True)
            await frontier.done([leased[page]])
            second = await frontier.get(hosts)
            assert second is not None and (second.url, second.depth, second.revisit) == (u, 2, True)
            await frontier.done([second])
            assert await frontier.get(hosts) is None
