"""Resumable crawls (``--state``): the SQLite frontier on its own, then whole crawls that are
stopped, killed and resumed against a loopback server."""

from __future__ import annotations

import array
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from xxhash import xxh3_64_intdigest

from trio_scrape import CrawlConfig, Crawler, StateError, open_file_sink
from trio_scrape.frontier.digests import DigestSet
from trio_scrape.frontier.pacing import HostLimiter
from trio_scrape.frontier.sqlite import SqliteFrontier, open_sqlite_frontier
from trio_scrape.model.page import PageMemo
from trio_scrape.model.urls import url_key

from .site import Reply, Request, Site, html_page
from .test_cli import CLI, cli

SETTINGS = {"seeds": ["http://x.test/"], "depth": 2}


def hosts() -> HostLimiter:
    return HostLimiter(CrawlConfig(per_host=1000, robots=False))


def urls(*paths: str) -> list[str]:
    return [f"http://x.test{p}" for p in paths]


# ------------------------------------------------------------------ the SQLite frontier


async def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.resume.is_new
        await frontier.add(urls("/a", "/b", "/c", "/d"), depth=1, referrer="http://x.test/")
        a, b, c = [await frontier.get(limiter) for _ in range(3)]
        assert a and b and c
        await frontier.done([a], output_offset=123)
        await frontier.release([c._replace(attempts=2)])
        await frontier.mark_seen(urls("/redirected"))
        # b stays leased: the run "dies" with it in flight.

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        resume = frontier.resume
        assert (resume.scheduled, resume.done, resume.queued, resume.requeued) == (4, 1, 3, 1)
        assert resume.output_offset == 123 and not resume.finished
        assert await frontier.add(urls("/a", "/redirected", "/e"), depth=1, referrer=None) == 1
        got = [await frontier.get(limiter) for _ in range(4)]
        assert [(r.url[13:], r.attempts, r.depth) for r in got if r] == [
            ("/b", 0, 1),
            ("/c", 2, 1),  # its retry count was kept
            ("/d", 0, 1),
            ("/e", 0, 1),
        ]
        assert [r.referrer for r in got if r][:3] == ["http://x.test/"] * 3
        await frontier.done([r for r in got if r], output_offset=456)
        assert await frontier.get(limiter) is None

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.resume.finished and frontier.resume.output_offset == 456


async def test_sitemap_requests_persist(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings={}) as frontier:
        await frontier.add(urls("/s.xml"), depth=0, referrer=None, sitemap=True)
        await frontier.add(urls("/a"), depth=0, referrer=None, lastmods={urls("/a")[0]: "2026"})
    async with open_sqlite_frontier(path, settings={}) as frontier:
        got = [await frontier.get(hosts()) for _ in range(2)]
        assert [(r.url[13:], r.sitemap, r.lastmod) for r in got if r] == [
            ("/s.xml", True, None),
            ("/a", False, "2026"),
        ]


async def test_changed_settings_are_refused_unless_reset(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a"), depth=0, referrer=None)
    with pytest.raises(StateError, match=r"depth was 2, now 3.*--state-reset"):
        async with open_sqlite_frontier(path, settings={**SETTINGS, "depth": 3}):
            pass
    async with open_sqlite_frontier(path, settings={**SETTINGS, "depth": 3}, reset=True) as f:
        assert f.resume.is_new and f.statistics().seen == 0


async def test_one_crawl_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a"), depth=0, referrer=None)
        with pytest.raises(StateError, match="another crawl is using it"):
            async with open_sqlite_frontier(path, settings=SETTINGS):
                pass
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:  # free again
        assert frontier.resume.queued == 1


async def test_a_file_that_is_not_a_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StateError, match="not a trio-scrape state file"):
        async with open_sqlite_frontier(path, settings=SETTINGS):
            pass
    assert path.read_bytes().startswith(b"these are my notes")


async def test_window_spills_to_disk_and_keeps_order(tmp_path: Path) -> None:
    limiter = hosts()
    paths = [f"/{i}" for i in range(100)]
    async with open_sqlite_frontier(tmp_path / "s.db", settings={}, window=10) as frontier:
        await frontier.add(urls(*paths), depth=0, referrer=None)
        assert frontier.statistics().queued == 100
        assert frontier._queued == 10  # only the window is in memory
        got = []
        while (request := await frontier.get(limiter)) is not None:
            got.append(request.url)
            await frontier.done([request])
            if len(got) == 50:  # links found meanwhile wait behind the spilled ones
                await frontier.add(urls("/new"), depth=1, referrer=None)
    assert got == urls(*paths, "/new")


def _tree_links(url: str, pages: int) -> list[str]:
    """Page i of a tree of ``pages`` pages over three hosts links to its children 3i+1..3i+3,
    to page 0 and to its parent: most links are seen already."""
    page = int(url.rsplit("/", 1)[1])
    family = [*range(3 * page + 1, min(3 * page + 4, pages)), 0, page // 2]
    return [f"http://h{child % 3}.test/{child}" for child in family]


async def _crawl_through_window(
    path: Path,
    rng: random.Random,
    monkeypatch: pytest.MonkeyPatch,
    done: list[str],
    *,
    pages: int,
    stop_after: int | None = None,
) -> None:
    """Eight workers crawl the tree through a frontier whose window holds 4 requests, with
    two slots a host (so every host in the window is often waiting, and reads of more
    windows are asked for), each read slowed down in its thread (so links are added and
    hosts freed while it runs) and a few requests released to retry. ``stop_after``:
    cancel the workers once that many pages are done, wherever they are."""
    write = SqliteFrontier._write

    def slow_write(self: SqliteFrontier, *args: Any) -> Any:
        time.sleep(rng.random() * 0.002)
        return write(self, *args)

    monkeypatch.setattr(SqliteFrontier, "_write", slow_write)
    limiter = HostLimiter(CrawlConfig(per_host=2, robots=False))
    async with open_sqlite_frontier(path, settings={}, window=4) as frontier:
        if frontier.resume.is_new:
            await frontier.add(["http://h0.test/0"], depth=0, referrer=None)
        async with trio.open_nursery() as nursery:

            async def worker() -> None:
                while (request := await frontier.get(limiter)) is not None:
                    for _ in range(rng.randrange(3)):
                        await trio.lowlevel.checkpoint()
                    origin = request.url.rsplit("/", 1)[0]
                    if request.attempts == 0 and rng.random() < 0.05:
                        await frontier.release([request._replace(attempts=1)])
                    else:
                        links = _tree_links(request.url, pages)
                        await frontier.add(links, depth=request.depth + 1, referrer=request.url)
                        with trio.CancelScope(shield=True):  # the record is "written"
                            await frontier.done([request])
                        done.append(request.url)
                        if len(done) == stop_after:
                            nursery.cancel_scope.cancel()
                    limiter.finish(origin, latency=None, failed=False)

            for _ in range(8):
                nursery.start_soon(worker)


async def test_reading_ahead_through_a_tiny_window_hands_out_each_url_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue is read back from the disk in the background while workers add links, free
    hosts and retry: every URL is handed out and done exactly once, and the crawl ends by
    itself. A lost wake-up would hang: fail_after turns that into a failure."""
    pages = 300
    expected = sorted(f"http://h{page % 3}.test/{page}" for page in range(pages))
    for seed in range(12):
        done: list[str] = []
        with trio.fail_after(20):
            await _crawl_through_window(
                tmp_path / f"{seed}.db", random.Random(seed), monkeypatch, done, pages=pages
            )
        assert sorted(done) == expected, f"seed {seed}"


async def test_stopping_while_reading_ahead_then_resuming_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers cancelled at random moments (reads in flight, links being added), then the
    crawl resumed from the state: each URL done once over both runs."""
    pages = 300
    expected = sorted(f"http://h{page % 3}.test/{page}" for page in range(pages))
    for seed in range(6):
        rng = random.Random(seed)
        done: list[str] = []
        path = tmp_path / f"{seed}.db"
        with trio.fail_after(20):
            stop = rng.randrange(20, pages - 20)
            await _crawl_through_window(path, rng, monkeypatch, done, pages=pages, stop_after=stop)
            assert len(done) >= stop
            await _crawl_through_window(path, rng, monkeypatch, done, pages=pages)
        assert sorted(done) == expected, f"seed {seed}"


async def test_commits_happen_while_the_crawl_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed = trio.Event()
    write = SqliteFrontier._write

    def watched_write(self: SqliteFrontier, *args: Any) -> Any:
        rows = write(self, *args)
        if any(state == 2 for _seq, state, _attempts in args[0].marks):  # done marks
            trio.from_thread.run_sync(committed.set)
        return rows

    monkeypatch.setattr(SqliteFrontier, "_write", watched_write)
    path = tmp_path / "s.db"
    async with open_sqlite_frontier(path, settings={}) as frontier:
        await frontier.add(urls("/a"), depth=0, referrer=None)
        request = await frontier.get(hosts())
        assert request is not None
        await frontier.done([request], output_offset=10)
        with trio.fail_after(5):
            await committed.wait()  # without the block ending: the background task did it
        row = await trio.to_thread.run_sync(
            lambda: frontier._db.execute(
                "SELECT state FROM marks JOIN links ON marks.seq = links.seq"
                " WHERE links.digests = ?",
                (frontier._seen_digests.digest(request.url).to_bytes(8, "little"),),
            ).fetchone(),
            limiter=frontier._thread,
        )
        assert row == (2,)


async def test_depths_and_pending_revisits_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    limiter = hosts()
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a", "/b", "/c"), depth=3, referrer=None)
        a, b = await frontier.get(limiter), await frontier.get(limiter)
        assert a and b
        await frontier.done([a])
        await frontier.add(urls("/a"), depth=1, referrer="http://x.test/", revisit=True)
        await frontier.add(urls("/b", "/c"), depth=2, referrer="http://x.test/n", revisit=True)
        # b stays leased (the run dies): it is fetched again, at depth 2, with a record.

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        resume = frontier.resume
        assert (resume.done, resume.queued, resume.deepest) == (1, 3, 3)
        got = [await frontier.get(limiter) for _ in range(2)]
        assert sorted((r.url[13:], r.depth, r.revisit) for r in got if r) == [
            ("/b", 2, False),
            ("/c", 2, False),
        ]
        await frontier.done([r for r in got if r])
        revisit = await frontier.get(limiter)
        assert revisit and (revisit.url[13:], revisit.depth, revisit.revisit) == ("/a", 1, True)
        await frontier.done([revisit])

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier.resume.finished


@pytest.mark.parametrize("schema", ["2", "3", "4", "5"])
async def test_a_state_of_an_older_schema_is_refused(tmp_path: Path, schema: str) -> None:
    """Schemas 2 and 3 stored w3lib-canonical URLs (3 added revisits); schema 4 stores browser
    URLs keyed by their canonical key, one row per URL; 5 one row per page's new links,
    with BLAKE2b digests; 6 seeded XXH3 digests: an older state would be misread, so it
    is refused (tests/test_urls.py checks the CLI's one line)."""
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a"), depth=1, referrer=None)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (schema,))
    db.commit()
    db.close()
    with pytest.raises(StateError, match=f"state schema {schema}, this version uses 7"):
        async with open_sqlite_frontier(path, settings=SETTINGS):
            pass


def add_as_a_dict_does(
    reference: dict[int, tuple[int, int]],
    digest_of: Callable[[str], int],
    urls: list[str],
    keep: Callable[[str], bool] | None,
    first: int,
    value: int,
) -> tuple[list[str], list[int], list[tuple[str, int, int]]]:
    """What DigestSet.add_unseen must do, written with a dict of digest -> (seq, value)."""
    new: list[str] = []
    digests: list[int] = []
    shorter: list[tuple[str, int, int]] = []
    for url in urls:
        digest = digest_of(url)
        known = reference.get(digest)
        if known is None:
            if keep is not None and not keep(url):
                continue
            reference[digest] = (first + len(new), value)
            new.append(url)
            digests.append(digest)
        elif known[1] >> 1 > value >> 1:
            shorter.append((url, digest, known[1]))
    return new, digests, shorter


def test_digest_set_adds_as_a_dict_does_across_growth() -> None:
    """Random batches of links (repeats within a batch and across batches, escapes and
    queries), a keep() that refuses some, depths up and down (some beyond 24 bits): each
    add_unseen answers as a dict would, and asks keep() the same questions in order."""
    rng = random.Random(7)
    seen = DigestSet(rng.getrandbits(64))
    reference: dict[int, tuple[int, int]] = {}
    asked: list[str] = []
    expected_asked: list[str] = []
    seq = 1
    for batch in range(300):
        links = [
            f"http://x.test/{rng.randrange(40_000)}" + rng.choice(["", "?b=1&a=2", "%7e"])
            for _ in range(rng.randrange(1, 400))
        ]
        value = rng.choice([2, 3, 6, 7, 40, 41, 2**24 - 2, 2**24 - 1, 2**24, 2**31 + 1])

        def keep(url: str) -> bool:
            asked.append(url)
            return hash(url) % 5 != 0

        def keep_expected(url: str) -> bool:
            expected_asked.append(url)
            return hash(url) % 5 != 0

        with_keep = batch % 3 == 0
        new, digests, shorter = seen.add_unseen(links, keep if with_keep else None, seq, value)
        want = add_as_a_dict_does(
            reference, seen.digest, links, keep_expected if with_keep else None, seq, value
        )
        assert (new, list(digests), shorter) == want
        assert asked == expected_asked
        seq += len(new)
    assert len(seen) == len(reference) > 20_000
    assert all((seen.seq(d), seen.get(d)) == v for d, v in reference.items())
    for digest in list(reference)[::7]:  # updates, into and out of the values kept aside
        value = rng.choice([5, 2**24 - 1, 2**40])
        seen[digest] = value
        reference[digest] = (reference[digest][0], value)
    assert all((seen.seq(d), seen.get(d)) == v for d, v in reference.items())
    assert not any(rng.getrandbits(64) in seen for _ in range(10_000))
    with pytest.raises(KeyError):
        seen[rng.getrandbits(64)] = 3


def test_digest_set_keeps_the_digests_a_table_marks_specially(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0 and 1 are the empty and deleted keys of a preshed table, and 2**64 - 1 the largest:
    URLs with those digests are kept like any other, when added and when loaded."""
    special = {"http://x.test/zero": 0, "http://x.test/one": 1, "http://x.test/max": 2**64 - 1}
    real = xxh3_64_intdigest
    monkeypatch.setattr(
        "trio_scrape.frontier.digests.xxh3_64_intdigest",
        lambda data, seed: special.get(data.decode(), real(data, seed)),
    )
    seen = DigestSet(5)
    links = [*special, "http://x.test/other", *special]
    new, digests, shorter = seen.add_unseen(links, None, 10, 7)
    assert new == links[:4] and list(digests[:3]) == [0, 1, 2**64 - 1] and shorter == []
    assert [seen.seq(d) for d in digests] == [10, 11, 12, 13]
    new, _, shorter = seen.add_unseen(list(special), None, 20, 2)
    assert new == [] and [known for _, _, known in shorter] == [7, 7, 7]
    seen[0] = 3
    assert (seen.get(0), seen.seq(0), seen.get(1)) == (3, 10, 7)
    loaded = DigestSet(5)
    loaded.load(array.array("Q", [0, 1, 2**64 - 1, 2**63]), 1, 2**30)
    assert [loaded.get(d) for d in (0, 1, 2**64 - 1, 2**63)] == [2**30] * 4
    assert [loaded.seq(d) for d in (0, 1, 2**64 - 1, 2**63)] == [1, 2, 3, 4]
    assert (len(loaded), 2 in loaded) == (4, False)


def test_digest_set_digests_url_keys_with_its_seed() -> None:
    # add_unseen inlines digest(): escapes, queries and lone surrogates included.
    links = [
        "http://x.test/a%7e?b=1&a=2",
        "http://x.test/?q",
        "http://x.test/caf\u00e9",
        "http://x.test/\ud800",
        "http://x.test/plain",
    ]
    seen = DigestSet(12345)
    _, new_digests, _ = seen.add_unseen(links, None, 1, 0)
    assert list(new_digests) == [seen.digest(url) for url in links]
    assert list(new_digests) == [
        xxh3_64_intdigest(url_key(url).encode("utf-8", "surrogatepass"), 12345) for url in links
    ]
    assert seen.digest("http://x.test/a~?a=2&b=1") == new_digests[0]  # one page, two spellings
    # Persisted digests must not change between runs or library versions; the seed is the
    # state's own, so another state's digests differ.
    assert DigestSet(0).digest("http://x.test/a") == 777035700706786099
    assert DigestSet(1).digest("http://x.test/a") != DigestSet(0).digest("http://x.test/a")


async def test_a_state_keeps_its_digest_seed_and_a_reset_draws_a_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        seed = frontier._seen_digests.seed
        assert await frontier.add(urls("/a", "/b"), depth=1, referrer=None) == 2
        request = await frontier.get(hosts())
        assert request is not None
        frontier.remember(request, PageMemo(200, None, None, "x", ()))
        await frontier.done([request])
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert frontier._seen_digests.seed == seed
        assert await frontier.add(urls("/a", "/b", "/c"), depth=1, referrer=None) == 1
        assert frontier._db.execute("SELECT count(*) FROM memo_log").fetchone() == (1,)
    async with open_sqlite_frontier(path, settings=SETTINGS, reset=True) as frontier:
        assert frontier._seen_digests.seed != seed
        # Memos are keyed by digests of the old seed: a reset drops them with the rest.
        memos = "SELECT (SELECT count(*) FROM pages) + (SELECT count(*) FROM memo_log)"
        assert frontier._db.execute(memos).fetchone() == (0,)
        assert await frontier.add(urls("/a"), depth=1, referrer=None) == 1


async def test_resume_continues_the_same_queue_from_the_disk(tmp_path: Path) -> None:
    """With a window of 3, the queue is mostly on disk: a crawl stopped and resumed hands
    out the very same sequence as one that ran through."""
    limiter = hosts()

    async def crawl(path: Path, stop_after: int | None) -> list[str]:
        order: list[str] = []
        async with open_sqlite_frontier(path, settings={}, window=3) as frontier:
            if frontier.resume.is_new:
                await frontier.add(urls("/"), depth=0, referrer=None)
            while (request := await frontier.get(limiter)) is not None:
                order.append(request.url)
                if len(order) == stop_after:
                    break  # leased, never done: it comes back first
                page = request.url[len("http://x.test/") :]
                children = [f"/{page}{c}" for c in "abc"] if len(page) < 4 else []
                await frontier.add(urls(*children, "/"), depth=1, referrer=request.url)
                await frontier.done([request])
                limiter.finish("http://x.test", latency=None, failed=False)
        limiter.finish("http://x.test", latency=None, failed=False)
        return order

    through = await crawl(tmp_path / "a.db", None)
    assert len(through) == 1 + 3 + 9 + 27 + 81
    first = await crawl(tmp_path / "b.db", 30)
    rest = await crawl(tmp_path / "b.db", None)
    assert first + rest[1:] == through and rest[0] == first[-1]


async def test_sigkill_with_the_queue_on_disk_loses_nothing(tmp_path: Path) -> None:
    """The frontier alone, killed at random moments while most of its queue is on disk (a
    window of 8 requests): each page's record is in the output exactly once."""
    from . import state_crawl

    state, out = tmp_path / "state.db", tmp_path / "out.txt"
    command = [sys.executable, "-m", "tests.state_crawl", str(state), str(out), "8"]
    root = Path(__file__).parent.parent
    rng = random.Random(20261130)
    kills = 0
    with trio.fail_after(60):
        for _ in range(4):
            target = rng.randint(5_000, 15_000)  # bytes of records, 20-22 each
            process = await trio.lowlevel.open_process(command, cwd=root, stdout=subprocess.PIPE)
            assert process.stdout is not None
            seen = 0
            while seen < target and (chunk := await process.stdout.receive_some()):
                seen += len(chunk)
            if process.poll() is None:
                process.kill()
                kills += 1
            await process.wait()
            await process.stdout.aclose()
        result = await trio.run_process(
            command, cwd=root, capture_stdout=True, capture_stderr=True, check=False
        )
    assert kills >= 3, "the crawl was too quick to be killed: make the graph bigger"
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert Counter(lines) == Counter(state_crawl.url(i) for i in range(state_crawl.PAGES))


# ----------------------------------------------------------------------- whole crawls


def chain_site(site: Site, pages: int, *, fanout: int = 4) -> list[str]:
    """Pages /p0 ... each linking to the next ``fanout`` pages and back to /p0."""

    def page(path: str) -> Reply | None:
        if not path.startswith("/p") or not path[2:].isdigit():
            return None
        i = int(path[2:])
        if i >= pages:
            return None
        links = [f"/p{j}" for j in range(i + 1, min(i + 1 + fanout, pages))] + ["/p0"]
        return Reply(body=html_page(f"Page {i}", links, body="x" * 200))

    site.fallback = page
    return [site.url(f"/p{i}") for i in range(pages)]


def read_records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in data.decode().splitlines()]


def assert_exactly_once(records: list[dict[str, Any]], expected: list[str]) -> None:
    counts = Counter(r["url"] for r in records)
    assert sorted(counts) == sorted(expected)
    assert max(counts.values()) == 1, counts.most_common(3)


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_sigkill_at_random_moments_loses_nothing_and_writes_nothing_twice(
    site: Site, tmp_path: Path, processes: str
) -> None:
    expected = chain_site(site, 6000)
    out, state = tmp_path / "out.jsonl", tmp_path / "state.db"
    command = [
        *CLI, "run", site.url("/p0"), "--depth", "10000", "-o", str(out),
        "--state", str(state), "--workers", "8", "-q", "--processes", processes,
    ]  # fmt: skip
    rng = random.Random(20261124)
    kills = 0
    with trio.fail_after(120):
        for _ in range(4):
            # A kill makes the next run redo what the last commit did not cover: up to ~0.1 s
            # of work (~300 pages at full speed, more just after a resume). A page is fetched
            # a third time only if the next kill lands before its redo is committed, so the
            # kills here are further apart than that: 800-1,600 requests (0.3-0.6 s).
            kills += await site.kill_at(command, len(site.log) + rng.randint(800, 1600))
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert kills >= 3, "the crawl was too quick to be killed: make the site bigger"
    assert result.returncode == 0, result.stderr
    assert b"resuming the crawl" in result.stderr
    assert_exactly_once(read_records(out), expected)
    fetched = Counter(r.path for r in site.log)
    assert set(fetched) == {f"/p{i}" for i in range(6000)}
    assert max(fetched.values()) <= 2, fetched.most_common(3)


async def test_finished_crawl_does_nothing_the_second_time(site: Site, tmp_path: Path) -> None:
    expected = chain_site(site, 30)
    out, state = tmp_path / "out.jsonl", tmp_path / "state.db"
    args = ["run", site.url("/p0"), "--depth", "50", "-o", str(out), "--state", str(state)]
    first = await cli(*args)
    assert first.returncode == 0, first.stderr
    assert_exactly_once(read_records(out), expected)
    before, requests = out.read_bytes(), len(site.log)
    again = await cli(*args)
    assert again.returncode == 0
    assert b"nothing to do" in again.stderr and b"--state-reset" in again.stderr
    assert out.read_bytes() == before and len(site.log) == requests
    reset = await cli(*args, "--state-reset", "--max-pages", "5")
    assert reset.returncode == 0, reset.stderr
    assert len(read_records(out)) == 5


async def test_changed_scope_is_refused_with_one_line(site: Site, tmp_path: Path) -> None:
    chain_site(site, 5)
    state = tmp_path / "state.db"
    args = ["run", site.url("/p0"), "-o", str(tmp_path / "o.jsonl"), "--state", str(state)]
    assert (await cli(*args, "--depth", "1")).returncode == 0
    for change, named in [
        (["--depth", "2"], "depth was 1, now 2"),
        (["--depth", "1", "--include", "p"], "include was [], now ['p']"),
        (["--depth", "1", "-o", str(tmp_path / "other.jsonl")], "output was"),
    ]:
        result = await cli(*args, *change)
        assert result.returncode == 2
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and named in lines[0] and "--state-reset" in lines[0], lines


async def test_state_reset_needs_state() -> None:
    result = await cli("run", "http://127.0.0.1:1/", "--state-reset")
    assert result.returncode == 2 and b"needs --state" in result.stderr


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("sigints", [1, 2], ids=["graceful", "at-once"])
async def test_sigint_then_resume_with_csv(
    site: Site, tmp_path: Path, sigints: int, processes: str
) -> None:
    """One SIGINT stops gracefully; a second one cancels at once. Either way the state is
    consistent and the resumed crawl completes the output exactly once."""
    expected = chain_site(site, 400)
    out, state = tmp_path / "out.csv", tmp_path / "state.db"
    command = [
        *CLI, "run", site.url("/p0"), "--depth", "1000", "-o", str(out),
        "--state", str(state), "--workers", "4", "--processes", processes,
    ]  # fmt: skip

    async def slow(request: Request) -> Reply:
        await trio.sleep(0.01)
        assert site.fallback is not None
        reply = site.fallback(request.path)
        assert reply is not None
        return reply

    for i in range(400):
        site.add(f"/p{i}", slow)
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
        while len(site.log) < 100:
            await site.hit_event.wait()
        process.send_signal(signal.SIGINT)
        if sigints == 2:
            # Wait until the first is handled: two signals sent at once may arrive as one.
            assert process.stderr is not None
            said = b""
            while b"again to quit now" not in said:
                chunk = await process.stderr.receive_some()
                assert chunk, said
                said += chunk
            process.send_signal(signal.SIGINT)
        assert await process.wait() == 130
        result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("url,final_url,status") and text.count("url,final_url") == 1
    urls_written = [line.split(",", 1)[0] for line in lines[1:]]
    assert sorted(urls_written) == sorted(expected) and len(set(urls_written)) == 400


async def test_stopped_pages_go_back_to_the_queue_not_into_the_output(
    site: Site, tmp_path: Path
) -> None:
    """With a state, a stop cuts in-flight pages off without writing ``cancelled`` records:
    the resumed crawl does them instead."""
    expected = chain_site(site, 60, fanout=6)
    release = trio.Event()

    async def stuck(request: Request) -> Reply:
        await release.wait()
        return Reply(body=html_page("stuck"))

    for i in (5, 6, 7):
        site.add(f"/p{i}", stuck)
    out, state = tmp_path / "out.jsonl", tmp_path / "state.db"
    config = CrawlConfig(depth=100, state=state, grace=0, robots=False, workers=4, max_pages=40)
    crawler = Crawler([site.url("/p0")], config, sink=open_file_sink(str(out), "jsonl"))
    async with trio.open_nursery() as nursery:
        await nursery.start(crawler.run)
        with trio.fail_after(10):
            while site.hits["/p7"] == 0:
                await site.hit_event.wait()
        crawler.stop()
    first = read_records(out)
    assert first and not any(r["error"] for r in first)
    assert {"/p5", "/p6", "/p7"}.isdisjoint(r["url"][len(site.base) :] for r in first)

    release.set()
    config2 = CrawlConfig(depth=100, state=state, grace=0, robots=False, workers=4, max_pages=40)
    crawler = Crawler([site.url("/p0")], config2, sink=open_file_sink(str(out), "jsonl"))
    stats = await crawler.run()
    assert stats.stop_reason == "max_pages" or stats.stop_reason == "finished"
    records = read_records(out)
    assert_exactly_once(records, expected[:40])  # max_pages counts across the resume
    assert not any(r["error"] for r in records)


async def test_output_shorter_than_the_state_says_is_refused(site: Site, tmp_path: Path) -> None:
    chain_site(site, 10)
    out, state = tmp_path / "out.jsonl", tmp_path / "state.db"
    args = ["run", site.url("/p0"), "--depth", "20", "-o", str(out), "--state", str(state)]
    args += ["--max-pages", "5"]
    assert (await cli(*args)).returncode == 0
    # An unfinished state: more to do, but the output lost its records meanwhile.
    db = sqlite3.connect(state)
    with db:
        undone = "DELETE FROM marks WHERE seq = (SELECT max(seq) FROM marks WHERE state = 2)"
        assert db.execute(undone).rowcount == 1
    db.close()
    out.write_bytes(b"")
    result = await cli(*args)
    assert result.returncode == 1, result.stderr
    assert b"was changed since the crawl stopped" in result.stderr
    assert out.read_bytes() == b""


async def test_stdout_output_with_state_resumes(site: Site, tmp_path: Path) -> None:
    expected = chain_site(site, 12)
    state = tmp_path / "state.db"
    args = ["run", site.url("/p0"), "--depth", "20", "--state", str(state), "-q"]
    first = await cli(*args, "--max-pages", "12", "--deadline", "30")
    assert first.returncode == 0
    got = [json.loads(line)["url"] for line in first.stdout.decode().splitlines()]
    assert sorted(got) == sorted(expected)


def test_cli_passes_state_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from trio_scrape.cli import app as _cli

    built: list[CrawlConfig] = []

    async def fake_crawl(seeds: list[str], config: CrawlConfig, sink: Any, **_: Any) -> Any:
        built.append(config)
        await sink.aclose()
        return 0, None

    monkeypatch.setattr(_cli, "_crawl", fake_crawl)
    with pytest.raises(SystemExit):
        _cli.main(["run", "http://a.test/", "--state", str(tmp_path / "s.db"), "--state-reset"])
    assert built[0].state == tmp_path / "s.db" and built[0].state_reset


def test_state_must_be_a_file_path(tmp_path: Path) -> None:
    from trio_scrape import ConfigError

    with pytest.raises(ConfigError, match="is a directory"):
        CrawlConfig(state=tmp_path)
    with pytest.raises(ConfigError, match="file path"):
        CrawlConfig(state="")


async def test_library_resume_keeps_a_channel_sink_at_least_once(
    site: Site, tmp_path: Path
) -> None:
    expected = chain_site(site, 20)
    state = tmp_path / "state.db"
    config = CrawlConfig(depth=30, state=state, robots=False)
    send, receive = trio.open_memory_channel[Any](100)
    stats = await Crawler([site.url("/p0")], config, sink=send).run()
    got = [page.url async for page in receive]
    assert sorted(got) == sorted(expected) and stats.pages == 20
    send, receive = trio.open_memory_channel[Any](100)
    again = await Crawler([site.url("/p0")], config, sink=send).run()
    assert again.pages == 0 and again.stop_reason == "finished"
    assert [page async for page in receive] == []


async def test_memos_of_a_round_are_what_the_next_round_compares_with(tmp_path: Path) -> None:
    """A round's memos are appended, and merged into what the next round is handed when it
    begins: the last memo of a page fetched twice counts, and a page fetched again in a round
    that is stopped keeps being compared with the round before, not with itself."""
    path = tmp_path / "state.db"
    limiter = hosts()

    def memo(sha: str) -> PageMemo:
        return PageMemo(200, f'"{sha}"', None, sha, ("http://x.test/b",))

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a", "/b", "/c"), depth=0, referrer=None)
        got = [await frontier.get(limiter) for _ in range(3)]
        a, b, c = sorted((r for r in got if r), key=lambda r: r.url)
        frontier.remember(a, memo("a0"))  # a first attempt, then the one that counts
        frontier.remember(a, memo("a1"))
        frontier.remember(b, memo("b1"))
        frontier.remember(c, memo("c1"))
        await frontier.done([a, b, c])
    for stopped_after in (1, 2):  # round 2, stopped after a and b are fetched; resumed
        async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
            if frontier.resume.finished:
                await frontier.start_round()
                await frontier.add(urls("/a", "/b"), depth=0, referrer=None)
            assert (frontier.resume.round, frontier.resume.known) == (2, 3)
            request = await frontier.get(limiter)
            assert request is not None and request.memo is not None
            assert request.memo.digest == {"a": "a1", "b": "b1"}[request.url[-1]]
            frontier.remember(request, memo(request.url[-1] + "2"))
            if stopped_after == 1:
                await frontier.release([request])  # its new memo stays in this round
                continue
            await frontier.done([request])
            other = await frontier.get(limiter)
            assert other is not None and other.memo is not None
            assert other.memo.digest == {"a": "a1", "b": "b1"}[other.url[-1]]
            frontier.remember(other, memo(other.url[-1] + "2"))
            await frontier.done([other])
            assert await frontier.get(limiter) is None
            assert await frontier.count_unlinked() == 1  # c: no longer linked
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.start_round()
        await frontier.add(urls("/a", "/c"), depth=0, referrer=None)
        got = [await frontier.get(limiter) for _ in range(2)]
        # a and b as round 2 left them, c as round 1 did.
        assert sorted(str(r.memo.digest) for r in got if r and r.memo) == ["a2", "c1"]


async def test_a_lease_is_written_only_if_still_held_at_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease that ends before the next commit leaves only its end in ``marks``; one held
    across a commit is written (and counted as in flight on resume), then replaced by its
    end; a release after a written lease puts the URL back with its attempts."""
    path = tmp_path / "state.db"
    limiter = hosts()
    written: list[tuple[list[tuple[int, int, int]], dict[int, int]]] = []
    write = SqliteFrontier._write

    def watched_write(self: SqliteFrontier, *args: Any) -> Any:
        if args[0].marks or args[0].leases:
            written.append((list(args[0].marks), dict(args[0].leases)))
        return write(self, *args)

    monkeypatch.setattr(SqliteFrontier, "_write", watched_write)

    def marks(frontier: SqliteFrontier) -> list[tuple[int, int, int]]:
        rows = frontier._db.execute("SELECT seq, state, attempts FROM marks ORDER BY seq")
        return [tuple(row) for row in rows.fetchall()]

    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        await frontier.add(urls("/a", "/b", "/c"), depth=0, referrer=None)
        a, b, c = [await frontier.get(limiter) for _ in range(3)]
        assert a and b and c
        await frontier.done([a])  # within the same commit as its lease
        await frontier._commit()
        assert written == [([(1, 2, 0)], {2: 0, 3: 0})]  # a's lease was never written
        assert marks(frontier) == [(1, 2, 0), (2, 1, 0), (3, 1, 0)]
        await frontier.done([b])
        await frontier.release([c._replace(attempts=1)])
        await frontier._commit()
        assert marks(frontier) == [(1, 2, 0), (2, 2, 0), (3, 0, 1)]
        c = await frontier.get(limiter)
        assert c is not None and c.attempts == 1
        # c stays leased: the run "dies" with it in flight.
    async with open_sqlite_frontier(path, settings=SETTINGS) as frontier:
        assert (frontier.resume.done, frontier.resume.requeued) == (2, 1)
        c = await frontier.get(limiter)
        assert c is not None and (c.url, c.attempts) == ("http://x.test/c", 1)
