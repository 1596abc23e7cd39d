"""``--metrics HOST:PORT``: Prometheus metrics of a crawl, checked against its own statistics,
by a real Prometheus server and by ``promtool check metrics``."""

from __future__ import annotations

import math
import shutil
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from trio_scrape import CrawlConfig
from trio_scrape.engine.crawler import Crawler
from trio_scrape.engine.metrics import CrawlCollector, MetricsSnapshot
from trio_scrape.engine.stats import LATENCY_BUCKETS, CrawlStatistics
from trio_scrape.errors import ConfigError
from trio_scrape.frontier.pacing import HostStatistics
from trio_scrape.frontier.timing import CALL_BUCKETS, CallTimes
from trio_scrape.model.config import parse_host_port
from trio_scrape.model.page import Page

from .redis_server import free_port
from .site import Reply, Site, html_page
from .test_cli import cli

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def chain(site: Site, pages: int) -> None:
    """``/0`` -> ``/1`` -> ... -> ``/pages-1``: one page in flight at a time."""
    for i in range(pages):
        links = [f"/{i + 1}"] if i + 1 < pages else []
        site.add(f"/{i}", Reply(body=html_page(f"P{i}", links)))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape_until_ended(client: httpx.AsyncClient, url: str) -> str:
    """/metrics once it says the crawl has ended (the crawl lingers for that scrape)."""
    with trio.fail_after(30):
        while True:
            text = (await client.get(url)).text
            if "trio_scrape_crawl_running 0.0" in text:
                return text
            await trio.sleep(0.05)  # the next look at a running crawl


async def promtool_passes(text: str) -> None:
    """``promtool check metrics`` (the exposition format and naming conventions) passes."""
    assert PROMTOOL is not None
    with trio.fail_after(30):
        result = await trio.run_process(
            [PROMTOOL, "check", "metrics"],
            stdin=text.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr


def check_against(found: dict[Any, float], stats: CrawlStatistics, origin: str) -> None:
    assert found[("trio_scrape_pages_total", (("status", "200"),))] == stats.status_codes[200]
    assert sum(v for (n, _), v in found.items() if n == "trio_scrape_pages_total") == stats.pages
    assert found[("trio_scrape_pages_ok_total", ())] == stats.ok
    assert found[("trio_scrape_page_duration_seconds_count", ())] == stats.pages
    assert found[("trio_scrape_page_duration_seconds_sum", ())] == pytest.approx(stats.latency_sum)
    assert found[("trio_scrape_seen_urls", ())] == stats.seen
    assert found[("trio_scrape_queued_urls", ())] == 0
    assert found[("trio_scrape_response_bytes_total", ())] == stats.bytes
    requests = found[("trio_scrape_host_requests_total", (("host", origin),))]
    assert requests == stats.hosts[origin].requests


# ----------------------------------------------------------------------------- the option


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9100", ("::1", 9100)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_addresses_that_parse(address: str, parts: tuple[str, int]) -> None:
    assert parse_host_port(address) == parts
    assert CrawlConfig(metrics=address).metrics == address


@pytest.mark.parametrize(
    "address", ["9100", ":9100", "host:", "host:http", "host:65536", "::1:9100", "a b:1", "h:-1"]
)
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CrawlConfig(metrics=address)
    assert caught.value.field == "metrics"


async def test_a_malformed_address_exits_2_naming_metrics(site: Site) -> None:
    chain(site, 1)
    result = await cli("run", site.url("/0"), "-o", "-", "--metrics", "localhost")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.decode().splitlines()
    assert "--metrics" in line and "HOST:PORT" in line, line
    assert site.log == []


async def test_a_taken_port_exits_2_naming_metrics(site: Site) -> None:
    chain(site, 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await cli("run", site.url("/0"), "-o", "-", "--metrics", f"127.0.0.1:{port}")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.decode().splitlines()
    assert "--metrics" in line and f"127.0.0.1:{port}" in line, line
    assert "Traceback" not in line
    assert site.log == []  # refused before the crawl began


# ------------------------------------------------------------------------- the collector


def test_the_busiest_hosts_by_name_and_the_rest_as_other() -> None:
    def host(requests: int, paused_until: float | None = None) -> HostStatistics:
        return HostStatistics(requests, 1, 2, 4, 0.0, paused_until)

    hosts = {"http://a": host(5), "http://b": host(9, 100.0), "http://c": host(1, 100.0)}
    hosts |= {"http://d": host(3, 1.0)}
    trips = CallTimes()
    for seconds in (0.0001, 0.003, 0.003, 99.0):
        trips.observe("ts_lease", seconds)
    trips.observe("ts_done", 0.02)
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    counts[0], counts[-1] = 2, 1
    stats = CrawlStatistics(
        pages=3,
        ok=2,
        errors={"timeout": 1},
        status_codes={200: 2},
        bytes=10,
        queued=0,
        in_flight=0,
        seen=3,
        retries=0,
        invalid_links=0,
        elapsed=1.0,
        stop_reason=None,
        hosts=hosts,
        browser_memory=123,
        latency_buckets=tuple(counts),
        latency_sum=100.0,
    )
    snapshot = MetricsSnapshot(
        stats, now=50.0, running=True, rendering=True, round_trips=trips.snapshot()
    )
    collector = CrawlCollector(lambda: snapshot, top_hosts=2)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }
    by_host = {
        dict(labels)["host"]: value
        for (name, labels), value in found.items()
        if name == "trio_scrape_host_requests_total"
    }
    assert by_host == {"http://b": 9, "http://a": 5, "other": 4}
    paused = {
        dict(labels)["host"]: value
        for (name, labels), value in found.items()
        if name == "trio_scrape_host_paused"
    }
    assert paused == {"http://b": 1, "http://a": 0, "other": 1}  # c is, d's pause is over
    assert found[("trio_scrape_pages_total", (("status", "none"),))] == 1
    assert found[("trio_scrape_page_errors_total", (("kind", "timeout"),))] == 1
    assert found[("trio_scrape_page_duration_seconds_bucket", (("le", "0.005"),))] == 2
    assert found[("trio_scrape_page_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert found[("trio_scrape_page_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert found[("trio_scrape_browser_memory_bytes", ())] == 123
    calls = {
        dict(labels)["function"]: value
        for (name, labels), value in found.items()
        if name == "trio_scrape_redis_calls_total"
    }
    assert calls == {"ts_lease": 4, "ts_done": 1}
    le = str(CALL_BUCKETS[0])
    assert found[("trio_scrape_redis_call_duration_seconds_bucket", (("le", le),))] == 1
    assert found[("trio_scrape_redis_call_duration_seconds_bucket", (("le", "+Inf"),))] == 5
    assert found[("trio_scrape_redis_call_duration_seconds_count", ())] == 5
    assert math.isclose(found[("trio_scrape_redis_call_duration_seconds_sum", ())], 99.0261)


# ------------------------------------------------------------------------------ a crawl


@pytest.mark.parametrize("processes", [1, 2])
async def test_the_metrics_of_a_crawl_are_its_statistics(
    site: Site, nursery: trio.Nursery, processes: int
) -> None:
    """Scraped at the end (the crawl lingers for one scrape of its final figures); with
    worker processes the crawler's process counts every page."""
    chain(site, 12)
    site.add("/11", Reply(404, b"gone"))
    port = free_port()
    config = CrawlConfig(
        depth=20, metrics=f"127.0.0.1:{port}", metrics_linger=30, processes=processes
    )
    send, receive = trio.open_memory_channel[Page](100)
    crawler = Crawler([site.url("/0")], config, sink=send)
    done = trio.Event()
    final: list[CrawlStatistics] = []

    async def crawl() -> None:
        final.append(await crawler.run())
        done.set()

    async def drain() -> None:
        async with receive:
            async for _ in receive:
                pass

    nursery.start_soon(drain)
    nursery.start_soon(crawl)
    async with httpx.AsyncClient() as client:
        text = await scrape_until_ended(client, f"http://127.0.0.1:{port}/metrics")
    with trio.fail_after(10):
        await done.wait()  # that scrape ended the linger
    [stats] = final
    assert stats.pages == 12 and stats.status_codes == {200: 11, 404: 1}
    found = samples(text)
    check_against(found, stats, site.base)
    assert found[("trio_scrape_page_errors_total", (("kind", "http_status"),))] == 1
    assert found[("trio_scrape_worker_processes", ())] == processes
    assert not any(name.startswith("trio_scrape_redis") for name, _ in found)
    if PROMTOOL is not None:  # test_promtool_passes_the_metrics_text says so when it is not
        await promtool_passes(text)
    with pytest.raises(httpx.ConnectError):  # stopped with the crawl
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_promtool_passes_the_metrics_text(site: Site, nursery: trio.Nursery) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    chain(site, 3)
    port = free_port()
    config = CrawlConfig(depth=5, metrics=f"127.0.0.1:{port}", metrics_linger=30)
    crawler = Crawler([site.url("/0")], config, sink=trio.open_memory_channel[Page](10)[0])
    nursery.start_soon(crawler.run)
    async with httpx.AsyncClient() as client:
        text = await scrape_until_ended(client, f"http://127.0.0.1:{port}/metrics")
    await promtool_passes(text)
    assert "trio_scrape_pages_total" in text


async def test_a_fleet_counts_its_redis_round_trips(
    site: Site, nursery: trio.Nursery, redis_url: str
) -> None:
    chain(site, 5)
    port = free_port()
    config = CrawlConfig(
        depth=10,
        metrics=f"127.0.0.1:{port}",
        metrics_linger=30,
        frontier=redis_url,
        crawl_id=f"metrics-{port}",
    )
    crawler = Crawler([site.url("/0")], config, sink=trio.open_memory_channel[Page](10)[0])
    nursery.start_soon(crawler.run)
    async with httpx.AsyncClient() as client:
        text = await scrape_until_ended(client, f"http://127.0.0.1:{port}/metrics")
    found = samples(text)
    calls = {
        dict(labels)["function"]: value
        for (name, labels), value in found.items()
        if name == "trio_scrape_redis_calls_total"
    }
    assert calls["ts_lease"] >= 1 and calls["ts_done"] >= 1, calls
    assert found[("trio_scrape_redis_call_duration_seconds_count", ())] == sum(calls.values())
    assert found[("trio_scrape_redis_call_duration_seconds_sum", ())] > 0
    assert sum(v for (n, _), v in found.items() if n == "trio_scrape_pages_total") == 5


# ----------------------------------------------------------------------- a real Prometheus


async def _query(client: httpx.AsyncClient, base: str, query: str) -> list[dict[str, Any]]:
    answer = (await client.get(base + "/api/v1/query", params={"query": query})).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def _value(client: httpx.AsyncClient, base: str, query: str) -> float:
    [series] = await _query(client, base, query)
    return float(series["value"][1])


async def _tried(client: httpx.AsyncClient, base: str) -> bool:
    """Whether Prometheus has tried to scrape its target (nothing listens there yet)."""
    answer = (await client.get(base + "/api/v1/targets")).json()
    targets = answer["data"]["activeTargets"]
    return bool(targets) and not targets[0]["lastScrape"].startswith("0001-")


async def _last(client: httpx.AsyncClient, base: str, series: str) -> float | None:
    """The last value scraped (the target is gone: at "now" its series are stale)."""
    found = await _query(client, base, f"last_over_time({series}[5m])")
    return float(found[0]["value"][1]) if found else None


async def test_a_real_prometheus_scrapes_the_crawl(site: Site, tmp_path: Path) -> None:
    """Prometheus scrapes a crawl of a slow site every 200 ms; what it stored is the crawl's
    own final statistics, and it saw the crawl running with fewer pages on the way."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    site.latency = 0.05  # one page at a time: about 1.5 s of crawl
    pages = 30
    chain(site, pages)
    metrics_port, prometheus_port = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"
        "scrape_configs:\n  - job_name: crawl\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = await trio.lowlevel.open_process(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{prometheus_port}"
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(30):  # Prometheus's start
                while True:
                    try:
                        if (await client.get(base + "/-/ready")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                    await trio.sleep(0.05)
                # Its targets reach the scrape loop some seconds after the start (discovery
                # updates are batched): once it has tried ours, it scrapes every 200 ms.
                while not await _tried(client, base):  # noqa: ASYNC110 -- another process's
                    await trio.sleep(0.05)
            config = CrawlConfig(
                depth=pages, metrics=f"127.0.0.1:{metrics_port}", metrics_linger=30
            )
            crawler = Crawler(
                [site.url("/0")], config, sink=trio.open_memory_channel[Page](pages + 1)[0]
            )
            with trio.fail_after(60):
                stats = await crawler.run()  # returns once Prometheus read the final figures
            assert stats.pages == pages
            with trio.fail_after(30):  # until the final scrape is queryable
                while await _last(client, base, "trio_scrape_crawl_running") != 0:  # noqa: ASYNC110
                    await trio.sleep(0.05)  # Prometheus's next look at its store
            ok = 'trio_scrape_pages_total{status="200"}'
            assert await _last(client, base, ok) == stats.status_codes[200] == pages
            pages_total = "sum(last_over_time(trio_scrape_pages_total[5m]))"
            assert await _value(client, base, pages_total) == stats.pages
            duration = "trio_scrape_page_duration_seconds"
            assert await _last(client, base, duration + "_count") == stats.pages
            assert await _last(client, base, duration + "_sum") == pytest.approx(stats.latency_sum)
            requests = f'trio_scrape_host_requests_total{{host="{site.base}"}}'
            assert await _last(client, base, requests) == stats.hosts[site.base].requests
            assert await _last(client, base, "trio_scrape_seen_urls") == stats.seen
            # On the way: several scrapes, some of a running crawl with fewer pages.
            assert await _value(client, base, f"count_over_time({ok}[5m])") >= 3
            assert await _value(client, base, f"min_over_time({ok}[5m])") < pages
            running = "max_over_time(trio_scrape_crawl_running[5m])"
            assert await _value(client, base, running) == 1
            assert await _value(client, base, 'max_over_time(up{job="crawl"}[5m])') == 1
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()  # by its pid
            with trio.move_on_after(20):
                await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()
        log.close()


async def test_a_port_the_system_chose_is_said_without_verbose(site: Site) -> None:
    chain(site, 1)
    result = await cli("run", site.url("/0"), "-o", "-", "-q", "--metrics", "127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.decode().splitlines()
    port = int(line.rpartition(":")[2].partition("/")[0])
    assert line.endswith(f"serving metrics at http://127.0.0.1:{port}/metrics") and port > 0
