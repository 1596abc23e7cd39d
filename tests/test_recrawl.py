"""Recrawls (``--recrawl``): rounds over a finished crawl that ask for each known page only if
it changed, against loopback servers with and without working validators; each case runs
with the crawl kept in a ``--state`` file and in Redis (``--frontier``), where it applies."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_scrape import CrawlConfig, Crawler, CrawlStatistics, open_file_sink

from .site import Reply, Request, Site, html_page
from .test_cli import CLI, cli

PAGES = 50


class Versioned:
    """Pages /p0 ... /p49, page i linking to pages 3i+1 .. 3i+3, each at a version that a
    test bumps to change it. ``validators``: "etag" (ETag and Last-Modified, both honoured),
    "none" (neither sent), or "wrong" (a new Last-Modified on every answer, conditional
    requests ignored)."""

    def __init__(self, site: Site, validators: str = "etag") -> None:
        self.site = site
        self.validators = validators
        self.version = dict.fromkeys(range(PAGES), 1)
        self.extra_links: dict[int, list[str]] = {}
        self.pages: dict[str, Callable[[], bytes]] = {}
        self.answers = 0
        for i in range(PAGES):
            site.add(f"/p{i}", self._handler(i))

    def body(self, i: int) -> bytes:
        links = [f"/p{j}" for j in range(3 * i + 1, min(3 * i + 4, PAGES))]
        return html_page(f"p{i} v{self.version[i]}", links + self.extra_links.get(i, []))

    def _handler(self, i: int) -> Callable[[Request], Reply]:
        def answer(request: Request) -> Reply:
            self.answers += 1
            version = self.version[i]
            if self.validators == "none":
                return Reply(body=self.body(i))
            if self.validators == "wrong":
                stamp = (
                    f"Mon, 30 Nov 2026 00:{self.answers // 60 % 60:02d}:{self.answers % 60:02d} GMT"
                )
                return Reply(body=self.body(i), headers={"Last-Modified": stamp})
            etag = f'"v{version}"'
            modified = f"Sun, {version:02d} Nov 2026 00:00:00 GMT"
            headers = {"ETag": etag, "Last-Modified": modified}
            if request.headers.get("if-none-match") == etag:
                return Reply(status=304, headers=headers)
            return Reply(body=self.body(i), headers=headers)

        return answer


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Store:
    """Where a test's crawls keep what they know, by name: a ``--state`` file, or a crawl in
    the test session's Redis (``--frontier``, its own crawl id)."""

    def __init__(self, kind: str, tmp_path: Path, redis_url: str | None) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._redis_url = redis_url
        self._ids: dict[str, str] = {}

    def config(self, name: str = "state") -> dict[str, Any]:
        if self._redis_url is None:
            return {"state": self._tmp_path / f"{name}.db"}
        crawl_id = self._ids.setdefault(name, f"r-{name}-{uuid.uuid4().hex[:10]}")
        return {"frontier": self._redis_url, "crawl_id": crawl_id}

    def args(self, name: str = "state") -> list[str]:
        if self._redis_url is None:
            return ["--state", str(self._tmp_path / f"{name}.db")]
        # Short leases: a killed process's pages and output file come back within 2 s.
        config = self.config(name)
        return ["--frontier", config["frontier"], "--crawl-id", config["crawl_id"], "--lease", "2"]


@pytest.fixture(params=["state", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Store(request.param, tmp_path, redis_url)


async def crawl(
    site: Site, store: Store, out: Path, *, recrawl: bool, processes: int = 1, name: str = "state"
) -> CrawlStatistics:
    config = CrawlConfig(
        depth=10, recrawl=recrawl, robots=False, processes=processes, **store.config(name)
    )
    sink = open_file_sink(str(out), "jsonl")
    return await Crawler([site.url("/p0")], config, sink=sink).run()


def changes(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["data"].get("change") for r in records)


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_recrawl_asks_for_what_changed_and_goes_on_below_unchanged_pages(
    site: Site, tmp_path: Path, processes: int, store: Store
) -> None:
    pages = Versioned(site)
    out = tmp_path / "out.jsonl"
    first = await crawl(site, store, out, recrawl=False, processes=processes)
    assert first.pages == PAGES and not any("if-none-match" in r.headers for r in site.log)
    first_digests = {r["url"]: r["data"]["sha256"] for r in read_records(out)}

    # p40 is 3 hops below the hub p1 (p1 -> p4 -> p13 -> p40), which does not change: only
    # the links stored for p1, p4 and p13 lead to it, and to the new page it links to now.
    for i in (2, 20, 33, 40, 47):
        pages.version[i] = 2
    pages.extra_links[40] = ["/new"]
    site.add("/new", Reply(body=html_page("new")))
    site.log.clear()
    stats = await crawl(site, store, out, recrawl=True, processes=processes)

    asked = [r for r in site.log if r.path != "/new"]
    assert len(asked) == PAGES and all("if-none-match" in r.headers for r in asked)
    assert all("if-modified-since" in r.headers for r in asked)
    assert [r.headers.get("if-none-match") for r in site.log if r.path == "/new"] == [None]
    records = read_records(out)
    assert Counter(r["url"] for r in records) == Counter(
        [site.url(f"/p{i}") for i in range(PAGES)] + [site.url("/new")]
    )
    by_url = {r["url"][len(site.base) :]: r for r in records}
    changed = {path for path, r in by_url.items() if r["data"]["change"] == "changed"}
    assert changed == {"/p2", "/p20", "/p33", "/p40", "/p47"}
    assert by_url["/new"]["data"]["change"] == "new" and by_url["/new"]["status"] == 200
    unchanged = [r for r in records if r["data"]["change"] == "unchanged"]
    assert len(unchanged) == 45 and all(r["status"] == 304 and r["ok"] for r in unchanged)
    assert all(r["data"]["sha256"] == first_digests[r["url"]] for r in unchanged)
    assert all(by_url[p]["data"]["sha256"] != first_digests[site.url(p)] for p in changed)
    assert (stats.changed, stats.unchanged, stats.new, stats.gone, stats.unlinked) == (
        5,
        45,
        1,
        0,
        0,
    )

    # The next round: the new validators were stored (all 304 now), gone and unlinked
    # pages are told apart.
    pages.extra_links.pop(40)  # /new is no longer linked from anywhere
    pages.version[40] = 3
    site.add("/p49", Reply(status=410))
    site.log.clear()
    stats = await crawl(site, store, out, recrawl=True, processes=processes)
    records = read_records(out)
    assert len(records) == PAGES and "/new" not in site.paths()
    by_url = {r["url"][len(site.base) :]: r for r in records}
    assert by_url["/p49"]["data"]["change"] == "gone" and by_url["/p49"]["status"] == 410
    assert by_url["/p40"]["data"]["change"] == "changed"  # its links changed
    assert changes(records) == Counter({"unchanged": 48, "changed": 1, "gone": 1})
    assert (stats.unchanged, stats.gone, stats.unlinked) == (48, 1, 1)


async def test_without_working_validators_the_digest_decides(
    site: Site, tmp_path: Path, store: Store
) -> None:
    for validators in ("none", "wrong"):
        pages = Versioned(site, validators)
        out = tmp_path / f"{validators}.jsonl"
        await crawl(site, store, out, recrawl=False, name=validators)
        pages.version[7] = 2
        site.log.clear()
        stats = await crawl(site, store, out, recrawl=True, name=validators)
        records = read_records(out)
        assert len(records) == PAGES and all(r["status"] == 200 for r in records)
        assert changes(records) == Counter({"unchanged": 49, "changed": 1}), validators
        assert [r["url"] for r in records if r["data"]["change"] == "changed"] == [site.url("/p7")]
        assert (stats.changed, stats.unchanged) == (1, 49)
        if validators == "wrong":  # it sent one, and a conditional request was made
            assert all("if-modified-since" in r.headers for r in site.log)


async def test_a_finished_crawl_without_recrawl_says_how_to_recrawl(
    site: Site, tmp_path: Path, store: Store
) -> None:
    Versioned(site)
    args = ["run", site.url("/p0"), "--depth", "10", "-o", str(tmp_path / "o.jsonl")]
    args += [*store.args(), "--no-robots"]
    assert (await cli(*args)).returncode == 0
    again = await cli(*args)
    assert again.returncode == 0 and b"add --recrawl" in again.stderr
    recrawl = await cli(*args, "--recrawl")
    assert recrawl.returncode == 0, recrawl.stderr
    lines = recrawl.stderr.decode().splitlines()
    assert "recrawling" in lines[0] and "round 2" in lines[0]
    assert "recrawl: 0 changed, 50 unchanged, 0 new, 0 gone, 0 no longer linked" in lines[-1]
    if store.kind == "redis":  # the fleet's counts for the round
        status = await cli("status", *store.args()[:4], "--json")
        report = json.loads(status.stdout)
        assert (report["round"], report["done"], report["records"]) == (2, 50, 50)
        counts = {"new": 0, "changed": 0, "unchanged": 50, "gone": 0, "unlinked": 0}
        assert report["changes"] == counts
    alone = await cli("run", site.url("/p0"), "--recrawl")
    assert alone.returncode == 2 and b"--recrawl: needs --state" in alone.stderr


async def test_sigkill_during_a_recrawl_round_then_the_same_command(
    site: Site, tmp_path: Path, store: Store
) -> None:
    pages = 3000
    version = dict.fromkeys(range(pages), 1)

    def page(path: str) -> Reply | None:
        if not path.startswith("/q") or not path[2:].isdigit() or int(path[2:]) >= pages:
            return None
        i = int(path[2:])
        links = [f"/q{j}" for j in range(i + 1, min(i + 4, pages))]
        return Reply(body=html_page(f"q{i} v{version[i]}", links), headers={"ETag": f'"{i}"'})

    site.fallback = page
    out = tmp_path / "out.jsonl"
    command = [
        *CLI, "run", site.url("/q0"), "--depth", "5000", "-o", str(out),
        *store.args(), "--workers", "8", "-q", "--recrawl",
    ]  # fmt: skip
    with trio.fail_after(120):
        first = await trio.run_process(command, capture_stderr=True, check=False)
        assert first.returncode == 0, first.stderr
        # No 304s here (a fallback route sees no headers): the digests decide.
        for i in random.Random(16).sample(range(pages), 30):
            version[i] = 2
        kills = 0
        for target in (600, 1400):
            site.log.clear()
            kills += await site.kill_at(command, target)
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert kills == 2, "the round was too quick to be killed: make the site bigger"
    assert result.returncode == 0, result.stderr
    assert (
        b"resuming the crawl" if store.kind == "state" else b"joining the crawl"
    ) in result.stderr
    records = read_records(out)
    counts = Counter(r["url"] for r in records)
    assert sorted(counts) == sorted(site.url(f"/q{i}") for i in range(pages))
    assert max(counts.values()) == 1, counts.most_common(3)
    # Pages fetched again after a kill are still compared with the last round.
    assert changes(records) == Counter({"unchanged": pages - 30, "changed": 30})


async def test_each_recrawl_round_may_write_to_a_new_output(
    site: Site, tmp_path: Path, store: Store
) -> None:
    """A new -o for each round: the earlier round's file is left as it was, the new one
    starts empty and gets every page once (also after SIGKILLs, resumed by the same
    command); a different -o while a round is unfinished is refused (it writes elsewhere)."""
    pages = 3000

    def page(path: str) -> Reply | None:
        if not path.startswith("/q") or not path[2:].isdigit() or int(path[2:]) >= pages:
            return None
        i = int(path[2:])
        links = [f"/q{j}" for j in range(i + 1, min(i + 4, pages))]
        return Reply(body=html_page(f"q{i}", links), headers={"ETag": f'"{i}"'})

    site.fallback = page

    def command(out: str) -> list[str]:
        return [
            *CLI, "run", site.url("/q0"), "--depth", "5000", "-o", str(tmp_path / out),
            *store.args(), "--workers", "8", "-q", "--recrawl",
        ]  # fmt: skip

    urls = sorted(site.url(f"/q{i}") for i in range(pages))
    with trio.fail_after(180):
        first = await trio.run_process(command("r1.jsonl"), capture_stderr=True, check=False)
        assert first.returncode == 0, first.stderr
        round_one = (tmp_path / "r1.jsonl").read_bytes()
        (tmp_path / "r2.jsonl").write_text("left from before\n")
        site.log.clear()
        killed = await site.kill_at(command("r2.jsonl"), 900)
        assert killed, "the round was too quick to be killed: make the site bigger"
        if store.kind == "state":
            other = await trio.run_process(command("r9.jsonl"), capture_stderr=True, check=False)
            assert other.returncode == 2 and b"its round is not finished" in other.stderr
            assert len(other.stderr.splitlines()) == 1
        result = await trio.run_process(command("r2.jsonl"), capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r1.jsonl").read_bytes() == round_one
    records = read_records(tmp_path / "r2.jsonl")
    counts = Counter(r["url"] for r in records)
    assert sorted(counts) == urls and max(counts.values()) == 1
    assert changes(records) == Counter({"unchanged": pages})


async def test_a_validator_with_a_byte_past_ascii_is_sent_back_as_it_came(
    site: Site, tmp_path: Path
) -> None:
    """A server's ETag holding a byte past ASCII (read as latin-1 text): the recrawl sends it
    back byte for byte, and the 304 makes the page unchanged (httpx would refuse the text)."""
    etag = '"caf\u00e9"'  # the byte 0xE9 on the wire

    def page(request: Any) -> Reply:
        if request.headers.get("if-none-match") == etag:
            return Reply(304, headers={"ETag": etag})
        return Reply(body=html_page("p"), headers={"ETag": etag})

    site.add("/p0", page)
    out = tmp_path / "out.jsonl"
    config = CrawlConfig(depth=0, robots=False, state=str(tmp_path / "s.db"))
    await Crawler([site.url("/p0")], config, sink=open_file_sink(str(out), "jsonl")).run()
    recrawl = dataclasses.replace(config, recrawl=True)
    stats = await Crawler([site.url("/p0")], recrawl, sink=open_file_sink(str(out), "jsonl")).run()
    assert stats.unchanged == 1 and stats.errors == {}
    assert site.log[-1].headers.get("if-none-match") == etag
