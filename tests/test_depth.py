"""--depth N crawls exactly the pages within N hops of a seed, whatever the timing."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest
import trio

from .site import Reply, Request, Site, html_page
from .test_crawl import run_crawl


def slow_page_site(site: Site) -> trio.Event:
    """``/ -> a (slow) -> x -> y`` and ``/ -> b -> b2 -> x``: /a answers only once /x has
    been requested, so /x is first found 3 hops away, through /b2, and fetched there."""
    x_requested = trio.Event()

    async def slow_a(request: Request) -> Reply:
        await x_requested.wait()
        return Reply(body=html_page("A", ["/x"]))

    def x(request: Request) -> Reply:
        x_requested.set()
        return Reply(body=html_page("X", ["/y"]))

    site.add("/", Reply(body=html_page("Home", ["/a", "/b"])))
    site.add("/a", slow_a)
    site.add("/b", Reply(body=html_page("B", ["/b2"])))
    site.add("/b2", Reply(body=html_page("B2", ["/x"])))
    site.add("/x", x)
    site.add("/y", Reply(body=html_page("Y", ["/z"])))
    site.add("/z", Reply(body=html_page("Z")))
    return x_requested


@pytest.mark.parametrize("state", [False, True], ids=["memory", "state"])
async def test_a_page_found_nearer_after_its_links_were_cut_is_revisited(
    site: Site, tmp_path: Path, state: bool
) -> None:
    slow_page_site(site)
    options = {"state": tmp_path / "state.db"} if state else {}
    pages, stats = await run_crawl([site.url("/")], depth=3, robots=False, **options)
    depths = {url.removeprefix(site.base): page.depth for url, page in pages.items()}
    # /y is 3 hops away (/ a x y): fetched; /z (4 hops) is not.
    assert depths == {"/": 0, "/a": 1, "/b": 1, "/b2": 2, "/x": 3, "/y": 3}
    assert pages[site.url("/y")].referrer == site.url("/x")
    # /x was fetched at depth 3 (links cut), then once more for its links, with no record.
    assert site.hits["/x"] == 2 and stats.revisits == 1
    assert sum(site.hits.values()) == 7 and stats.pages == 6


async def test_no_revisit_when_nothing_was_cut(site: Site) -> None:
    slow_page_site(site)
    pages, stats = await run_crawl([site.url("/")], depth=10, robots=False)
    # Every link was followed: nothing to revisit. Records keep the depth known when they
    # were fetched (/z is 4 hops away, found 5 hops away first).
    assert len(pages) == 7 and pages[site.url("/z")].depth == 5
    assert site.hits["/x"] == 1 and stats.revisits == 0


def random_site(site: Site, pages: int, seed: int) -> dict[str, list[str]]:
    """A random link graph whose pages answer after random delays (one in six after 40 ms,
    the others at once)."""
    rng = random.Random(seed)
    graph = {
        f"/p{i}": [f"/p{rng.randrange(pages)}" for _ in range(rng.randint(0, 4))]
        for i in range(pages)
    }
    graph["/p0"] += ["/p1", "/p2", "/p3"]
    delays = {path: rng.choice([0, 0, 0, 0, 0, 0.04]) for path in graph}

    async def answer(request: Request) -> Reply:
        await trio.sleep(delays[request.path])  # latency that reorders answers, not a wait
        return Reply(body=html_page(request.path, graph[request.path]))

    for path in graph:
        site.add(path, answer)
    return graph


def distances(graph: dict[str, list[str]], seed: str) -> dict[str, int]:
    found = {seed: 0}
    queue = collections.deque([seed])
    while queue:
        page = queue.popleft()
        for link in graph[page]:
            if link not in found:
                found[link] = found[page] + 1
                queue.append(link)
    return found


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_depth_is_exact_whatever_the_timing(site: Site, tmp_path: Path, seed: int) -> None:
    graph = random_site(site, 120, seed)
    hops = distances(graph, "/p0")
    for depth in (2, 4):
        site.hits.clear()
        state = tmp_path / f"state-{depth}.db" if seed == 3 else None
        pages, _ = await run_crawl(
            [site.url("/p0")], depth=depth, robots=False, workers=8, per_host=8, state=state
        )
        within = {path for path, distance in hops.items() if distance <= depth}
        assert {url.removeprefix(site.base) for url in pages} == within
        for url, page in pages.items():
            # The depth known when the page was fetched: never less than the truth.
            assert page.depth >= hops[url.removeprefix(site.base)]
        assert max(site.hits.values()) <= 2
        assert sum(site.hits.values()) == len(within) + sum(n - 1 for n in site.hits.values())
