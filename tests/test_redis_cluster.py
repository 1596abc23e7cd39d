"""The Redis frontier on a 3-node Redis Cluster (``redis+cluster://``, tests/redis_cluster.py,
one cluster for the module): whole crawls shared by several crawlers and processes with
SIGKILL, an exact fleet ``--max-pages``, politeness as the server sees it, and the node that
holds a crawl killed and restarted. The shared Frontier conformance suite runs on the same
kind of cluster in tests/test_frontier.py.

The tests of tests/test_redis.py imported here run again with this module's ``redis_url``:
the cluster's."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import trio

from .half_way import crawl_command, ended, export, start_half_way
from .redis_cluster import RedisClusterNodes, cluster_info
from .redis_cluster import redis_cluster as redis_cluster
from .redis_server import free_port
from .site import Request, Site
from .test_cli import cli
from .test_redis import WatchedSite, crawl_name, lines, tree_site
from .test_redis import test_a_late_completion_from_an_expired_lease_is_refused as _late
from .test_redis import test_per_host_and_delay_hold_across_three_processes as _polite
from .test_redis import test_starts_to_a_paced_host_are_spaced_fleet_wide_with_jitter as _spaced
from .test_redis import test_three_processes_one_killed_and_restarted_one_killed_for_good as _kill
from .test_redis import test_two_crawlers_share_one_crawl_and_max_pages_is_exact as _max_pages
from .test_redis import watched as watched

test_a_late_completion_from_an_expired_lease_is_refused_on_a_cluster = _late
test_two_crawlers_share_one_crawl_and_max_pages_is_exact_on_a_cluster = _max_pages
test_three_processes_one_killed_and_restarted_one_killed_for_good_on_a_cluster = _kill
test_per_host_and_delay_hold_across_three_processes_on_a_cluster = _polite
test_starts_to_a_paced_host_are_spaced_fleet_wide_with_jitter_on_a_cluster = _spaced


class HeldSite(WatchedSite):
    """A WatchedSite whose answers wait while ``held`` is not set."""

    def __init__(self) -> None:
        super().__init__()
        self.held = trio.Event()
        self.held.set()

    async def _answer(self, request: Request) -> bool:
        await self.held.wait()
        return await super()._answer(request)


@pytest.fixture
async def held_site(nursery: trio.Nursery) -> HeldSite:
    server = HeldSite()
    await nursery.start(server.serve)
    return server


@pytest.fixture(scope="module")
def redis_url(redis_cluster: RedisClusterNodes) -> str:
    """This module's Redis: the cluster (the imported tests take it by this name)."""
    return redis_cluster.url


async def test_the_crawls_keys_live_in_one_slot(
    redis_cluster: RedisClusterNodes, site: Site, tmp_path: Path
) -> None:
    """Every key a crawl writes carries its hash tag: the node serving the tag's slot holds
    them all, and the other nodes hold none of the crawl's keys."""
    tree_site(site, 50)
    name = crawl_name()
    out = tmp_path / "out.jsonl"
    result = await cli(
        "run", site.url("/p0"), "--depth", "10", "--no-robots", "-q",
        "--frontier", redis_cluster.url, "--crawl-id", name, "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(lines(out)) == 50
    home = redis_cluster.owner(f"trio-scrape:{{{name}}}:meta")
    for i, port in enumerate(redis_cluster.ports):
        with trio.fail_after(10):
            scan = await trio.run_process(
                ["redis-cli", "-p", str(port), "--scan", "--pattern", f"trio-scrape:*{name}*"],
                capture_stdout=True,
            )
        keys = scan.stdout.decode().split()
        if i == home:
            assert len(keys) > 10 and all(k.startswith(f"trio-scrape:{{{name}}}:") for k in keys)
        else:
            assert keys == []


# The coredis connections the node's death breaks leave anyio streams to the garbage
# collector (docs/fleet.md, "Redis down or unreachable"); only that warning is ignored.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*MemoryObject:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.parametrize("which", ["holding the crawl", "another", "another, sharded"])
async def test_a_node_killed_and_restarted_loses_and_repeats_nothing(
    held_site: HeldSite, redis_cluster: RedisClusterNodes, tmp_path: Path, which: str
) -> None:
    """A cluster node (AOF, ``appendfsync always``) SIGKILLed while a process crawls through
    the cluster, either the one serving the crawl's slot or another (the cluster, with its
    default ``cluster-require-full-coverage yes``, then refuses every command once the node
    is found dead, here after its 1 s node timeout; the site holds its answers till then, so
    the crawl cannot finish first): the process stops, exit 3 and one line.
    The node restarted (the cluster is ok again), the same command finishes the crawl: the
    export holds every page once, and so does the process's file. "sharded": a crawl of 3
    shards (``?shards=3``, one on each node), the node of a shard other than shard 0 killed;
    the restarted process recovers its file from the shards' stored ids."""
    expected = tree_site(held_site, 600)
    name = crawl_name()
    out = tmp_path / "out.jsonl"
    url = redis_cluster.url + ("?shards=3" if which.endswith("sharded") else "")
    command = crawl_command(held_site.url("/p0"), url, name, out)
    with trio.fail_after(90):
        crawl = await start_half_way(command, held_site)
        home = redis_cluster.owner(f"trio-scrape:{{{name}}}:meta")
        node = home if which == "holding the crawl" else (home + 1) % 3
        held_site.held = trio.Event()  # the site holds its answers: the crawl cannot end now
        redis_cluster.kill(node)
        alive = redis_cluster.ports[(node + 2) % 3]

        def failed() -> bool:
            return "cluster_state:fail" in cluster_info(alive)

        # A bounded poll (under fail_after) of the nodes' gossip, in other processes.
        while not await trio.to_thread.run_sync(failed):  # noqa: ASYNC110
            await trio.sleep(0.05)
        held_site.held.set()
        code, error = await ended(crawl)
        before = len(lines(out))
        redis_cluster.restart(node)
        again = await trio.run_process(command, capture_stderr=True, check=False)
    assert code == 3, error
    assert error.count(b"\n") == 1 and b"Redis" in error, error
    assert 0 < before < len(expected)
    assert again.returncode == 0, again.stderr
    assert b"joining the crawl" in again.stderr
    exported = await export(url, name, tmp_path / "all.jsonl")
    assert sorted(exported) == sorted(expected) and max(exported.values()) == 1
    assert Counter(r["url"] for r in lines(out)) == exported


async def test_a_cluster_is_found_from_any_live_node_named(
    redis_cluster: RedisClusterNodes, site: Site, tmp_path: Path
) -> None:
    """The first node named is down (a closed port): the crawl finds its node from the next
    one, and ``status`` too; with no live node named, exit 3 and one line, nothing fetched."""
    tree_site(site, 20)
    name = crawl_name()
    closed = f"127.0.0.1:{free_port()}"
    url = f"redis+cluster://{closed},{redis_cluster.addresses[1]}/0"
    out = tmp_path / "out.jsonl"
    result = await cli(
        "run", site.url("/p0"), "--depth", "10", "--no-robots", "-q",
        "--frontier", url, "--crawl-id", name, "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(r["url"] for r in lines(out)) == sorted(site.url(f"/p{i}") for i in range(20))
    status = await cli("status", "--frontier", url, "--crawl-id", name, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == 20
    requests = len(site.log)
    down = f"redis+cluster://{closed}/0"
    result = await cli("run", site.url("/p0"), "--frontier", down, "-o", str(out))
    assert result.returncode == 3
    assert result.stderr.count(b"\n") == 1 and b"cannot use Redis" in result.stderr
    assert len(site.log) == requests
