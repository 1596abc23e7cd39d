"""Extraction without code: ``--select`` / ``--select-all`` CSS selectors into ``data``."""

from __future__ import annotations

import pytest
from selectolax.lexbor import LexborHTMLParser

from trio_scrape import ConfigError, CrawlConfig, Page, Selector, scrape

from .site import Reply, Site
from .test_cli import cli, records

ARTICLE = b"""<!doctype html><html><head><title>News</title>
<meta property="og:image" content="/img/1.png"></head><body>
<h1 class="headline">  Storm   hits
  the coast </h1>
<span class="author">Ann</span><span class="author">Bob</span>
<a class="tag" href="/t/weather">weather</a><a class="tag" href="/t/coast">coast</a>
</body></html>"""


@pytest.mark.parametrize(
    ("spec", "many", "expected"),
    [
        ("headline=h1.headline", False, "Storm hits the coast"),
        ("headline=h1.headline::text", False, "Storm hits the coast"),
        ("image=meta[property='og:image']::attr(content)", False, "/img/1.png"),
        ("authors=.author", True, ["Ann", "Bob"]),
        ("tags=a.tag::attr( href )", True, ["/t/weather", "/t/coast"]),
        ("missing=h2", False, None),
        ("missing=h2", True, []),
        ("noattr=h1::attr(data-x)", False, None),
        ("noattrs=a.tag::attr(data-x)", True, []),
    ],
)
def test_selector_values(spec: str, many: bool, expected: object) -> None:
    tree = LexborHTMLParser(ARTICLE.decode())
    assert Selector.parse(spec, many=many).extract(tree) == expected


@pytest.mark.parametrize("spec", ["nameonly", "=h1", "x=", "x=div[", "x=p >", "x=::attr(y)"])
def test_bad_selectors_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Selector.parse(spec)


def test_selector_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="share a name"):
        CrawlConfig(selectors=(Selector.parse("a=h1"), Selector.parse("a=h2", many=True)))


async def test_selectors_fill_data_and_hooks_run_after(site: Site) -> None:
    site.add("/a", Reply(body=ARTICLE))
    site.add("/plain", Reply(body=b"headline", content_type="text/plain"))

    def extract(page: Page) -> dict[str, object]:
        headline = page.data.get("headline")
        return {"headline": headline.upper()} if isinstance(headline, str) else {}

    config = CrawlConfig(
        selectors=(Selector.parse("headline=h1"), Selector.parse("authors=.author", many=True)),
        extract=extract,
        robots=False,
    )
    pages = {p.url: p for p in await scrape([site.url("/a"), site.url("/plain")], config)}
    assert pages[site.url("/a")].data == {
        "headline": "STORM HITS THE COAST",
        "authors": ["Ann", "Bob"],
    }
    assert pages[site.url("/plain")].data == {}  # not HTML: selectors do not run


async def test_select_options_in_the_cli(site: Site) -> None:
    site.add("/a", Reply(body=ARTICLE))
    result = await cli(
        "run",
        site.url("/a"),
        "-q",
        "--select",
        "headline=h1.headline",
        "--select",
        "image=meta[property='og:image']::attr(content)",
        "--select-all",
        "authors=.author",
    )
    assert result.returncode == 0, result.stderr
    [record] = records(result.stdout)
    assert record["data"] == {
        "headline": "Storm hits the coast",
        "image": "/img/1.png",
        "authors": ["Ann", "Bob"],
    }


@pytest.mark.parametrize(
    ("flag", "spec", "message"),
    [
        ("--select", "title=div[", "--select: bad CSS selector 'div[' for 'title'"),
        ("--select-all", "links", "--select-all: expected NAME=CSS, got 'links'"),
    ],
)
async def test_a_bad_selector_exits_2_naming_it(flag: str, spec: str, message: str) -> None:
    result = await cli("run", "http://127.0.0.1:1/", flag, spec)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines == [f"trio-scrape: error: {message}"]
