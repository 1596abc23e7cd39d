"""The end-of-crawl summary on stderr: counts that add up, words that say what stopped it."""

from __future__ import annotations

from pathlib import Path

from trio_scrape import CrawlConfig, CrawlStatistics
from trio_scrape.cli.app import _stop_text, _summary

from .site import Reply, Site, html_page
from .test_cli import cli


def stats(**fields: object) -> CrawlStatistics:
    base: dict[str, object] = dict(
        pages=3,
        ok=2,
        errors={"timeout": 1},
        status_codes={200: 2},
        bytes=0,
        queued=7,
        in_flight=0,
        seen=10,
        retries=0,
        invalid_links=0,
        elapsed=1.0,
        stop_reason="finished",
    )
    return CrawlStatistics(**{**base, **fields})  # type: ignore[arg-type]


async def test_max_pages_summary_counts_the_urls_the_cap_refused(site: Site) -> None:
    for i in range(30):  # every page links to every other: each URL is found many times
        site.add(f"/{i}", Reply(body=html_page(f"P{i}", [f"/{j}" for j in range(30)])))
    result = await cli("run", site.url("/0"), "--depth", "2", "--max-pages", "5", "-o", "-")
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("trio-scrape: 5 pages (5 ok, 0 errors) in ")
    assert line.endswith("; stopped at --max-pages 5: 25 more URLs found and not crawled")


async def test_one_error_is_singular(site: Site) -> None:
    site.add("/", Reply(body=html_page("Home", ["/missing"])))
    result = await cli("run", site.url("/"), "--depth", "1", "-o", "-")
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("trio-scrape: 2 pages (1 ok, 1 error: http_status 1) in ")


async def test_nothing_to_do_is_the_only_line(site: Site, tmp_path: Path) -> None:
    site.add("/", Reply(body=html_page("Home")))
    args = ["run", site.url("/"), "-o", str(tmp_path / "o.jsonl"), "--state", str(tmp_path / "s")]
    assert (await cli(*args)).returncode == 0
    again = await cli(*args)
    assert again.returncode == 0
    (line,) = again.stderr.decode().splitlines()
    assert "nothing to do" in line


def test_the_summary_says_what_stopped_the_crawl() -> None:
    config = CrawlConfig(deadline=30, max_pages=3)
    assert _stop_text(stats(), config, 0) is None
    deadline = _stop_text(stats(stop_reason="deadline"), config, 0)
    assert deadline == "stopped by --deadline 30s: 7 URLs left unvisited"
    signalled = _stop_text(stats(stop_reason="stopped", queued=1), config, 130)
    assert signalled == "stopped by SIGINT: 1 URL left unvisited"
    assert _stop_text(stats(stop_reason="stopped"), config, 143) == (
        "stopped by SIGTERM: 7 URLs left unvisited"
    )
    capped = _stop_text(stats(stop_reason="max_pages", refused_by_max_pages=1), config, 0)
    assert (
        capped
        == "stopped at --max-pages 3: 1 more URL found and not crawled, 7 URLs left unvisited"
    )
    line = _summary(stats(pages=1, ok=0, errors={"timeout": 1}), deadline)
    assert line.startswith("trio-scrape: 1 page (0 ok, 1 error: timeout 1) in 1.00s")
    assert line.endswith("; stopped by --deadline 30s: 7 URLs left unvisited")
