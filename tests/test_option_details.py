"""Option details through the CLI: repeatable NAME=VALUE options merged with a config file's
by NAME, warnings for options that can have no effect, ``::abs(href)`` in ``--select``, and
``--select`` fields in CSV columns of their own."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from trio_scrape import CrawlConfig, Selector, scrape

from .site import Reply, Site
from .test_cli import cli, records

PAGE = (
    b"<!doctype html><html><head><title>T</title><base href='/docs/'></head><body>"
    b"<h1>Heading</h1><p>para</p><a class='x' href='javascript:void(0)'>js</a>"
    b"<a class='x' href='a.html?q=1'>a</a><a class='x' href='//other.test/b'>b</a>"
    b"<img src='img/i.png'></body></html>"
)


async def test_named_options_merge_with_the_config_file_by_name(site: Site, tmp_path: Path) -> None:
    site.add("/", Reply(body=PAGE))
    (tmp_path / "c.toml").write_text(
        'header = ["X-A: file", "X-B: file"]\n'
        'select = ["title=title", "h=h1"]\n'
        'select-all = ["links=a.x::attr(href)"]\n'
    )
    base = ["run", site.url("/"), "--config", "c.toml", "-q", "--no-robots"]
    result = await cli(*base, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [record] = records(result.stdout)
    assert record["data"]["title"] == "T" and record["data"]["h"] == "Heading"
    assert site.log[-1].headers["x-a"] == "file" and site.log[-1].headers["x-b"] == "file"
    # The command line wins for the names it gives; the file's other names stay.
    result = await cli(
        *base, "--header", "x-a: cli", "--select", "h=p", "--select-all", "title=h1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    [record] = records(result.stdout)
    assert record["data"] == {
        "links": ["javascript:void(0)", "a.html?q=1", "//other.test/b"],
        "h": "para",
        "title": ["Heading"],
    }
    assert site.log[-1].headers["x-a"] == "cli" and site.log[-1].headers["x-b"] == "file"


async def test_options_that_can_have_no_effect_warn_once_in_one_line(site: Site) -> None:
    site.add("/", Reply(body=PAGE))
    result = await cli(
        "run", site.url("/"), "--no-robots", "--depth", "0", "--include", "x", "--exclude", "y",
        "--render-wait", "networkidle", "--render-wait-max", "2", "--cache-ttl", "60",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    warnings = [line for line in lines if "warning" in line]
    assert warnings == [
        "trio-scrape: warning: --render-wait has no effect without --render",
        "trio-scrape: warning: --render-wait-max has no effect without --render",
        "trio-scrape: warning: --cache-ttl has no effect without --cache",
        "trio-scrape: warning: --include, --exclude have no effect at --depth 0 "
        "(no link is followed)",
    ]
    quiet = await cli("run", site.url("/"), "--no-robots", "--depth", "1", "--include", "x")
    assert b"warning" not in quiet.stderr


async def test_abs_resolves_a_selected_url_as_the_pages_links_are(site: Site) -> None:
    site.add("/", Reply(body=PAGE))
    selectors = (
        Selector.parse("first=a.x::abs(href)"),
        Selector.parse("all=a.x::abs(href)", many=True),
        Selector.parse("img=img::url(src)"),
        Selector.parse("raw=img::attr(src)"),
    )
    [page] = await scrape([site.url("/")], CrawlConfig(selectors=selectors, robots=False))
    base = site.url("/docs/")
    # javascript: resolves to no http(s) URL: no match, the next one is the first.
    assert page.data["first"] == base + "a.html?q=1"
    assert page.data["all"] == [base + "a.html?q=1", "http://other.test/b"]
    assert page.data["img"] == base + "img/i.png" and page.data["raw"] == "img/i.png"


async def test_csv_gives_each_select_field_a_column(site: Site, tmp_path: Path) -> None:
    site.add("/", Reply(body=PAGE))
    result = await cli(
        "run", site.url("/"), "--no-robots", "-o", "out.csv",
        "--select", "title=title", "--select-all", "links=a.x::abs(href)",
        "--select", "none=table", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [row] = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    header = list(row)
    at = header.index("data")
    assert header[at : at + 4] == ["data", "data.title", "data.none", "data.links"]
    assert row["data.title"] == "T" and row["data.none"] == ""
    assert json.loads(row["data.links"]) == [
        site.url("/docs/a.html?q=1"),
        "http://other.test/b",
    ]
    assert "title" not in json.loads(row["data"])  # the rest of data only
