"""What a crawl reaches: the scope of sitemap entries, origins, frames and page-level robots
rules, each against a loopback server."""

from __future__ import annotations

import logging

import pytest

from trio_scrape import CrawlConfig, Page, scrape

from .site import Reply, Site, html_page
from .test_sitemaps import XML, urlset


async def test_sitemap_entries_out_of_scope_are_counted_in_a_warning(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    # A staging copy whose sitemap names the production host (as MkDocs' site_url does).
    site.add("/a", Reply(body=html_page("A")))
    production = [(f"https://www.mkdocs.test/p{i}/", None) for i in range(3)]
    body = urlset((site.url("/a"), None), *production, ("https://cdn.mkdocs.test/x", None))
    site.add("/sitemap.xml", Reply(body=body, content_type=XML))
    config = CrawlConfig(sitemaps=(site.url("/sitemap.xml"),), robots=False)
    with caplog.at_level(logging.WARNING, logger="trio_scrape"):
        got = {p.url[len(site.base) :]: p for p in await scrape([], config)}
    assert set(got) == {"/sitemap.xml", "/a"}
    assert got["/sitemap.xml"].data["sitemap"]["out_of_scope"] == 4
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(
        f"sitemap {site.url('/sitemap.xml')}: 4 of its 5 pages are out of scope and not"
        " crawled: www.mkdocs.test (3), cdn.mkdocs.test (1) "
    )


def page(title: str, links: list[str] = [], head: str = "", body: str = "") -> Reply:  # noqa: B006
    anchors = "".join(f'<a href="{href}">link</a>' for href in links)
    html = f"<!doctype html><html><head><title>{title}</title>{head}</head><body>{body}{anchors}"
    return Reply(body=(html + "</body></html>").encode())


async def crawl(site: Site, **options: object) -> dict[str, Page]:
    config = CrawlConfig(robots=False, **options)  # type: ignore[arg-type]
    pages = await scrape([site.url("/")], config)
    by_path = {p.url[len(site.base) :]: p for p in pages}
    assert len(by_path) == len(pages)
    return by_path


async def test_meta_refresh_iframes_and_frames_are_followed(site: Site) -> None:
    site.add("/", page("Home", ["/stub", "/later", "/framed"]))
    # rustdoc's and Apache's redirect stubs: a refresh with no delay is a redirect.
    site.add("/stub", page("Stub", head='<meta http-equiv="Refresh" content="0; URL=/target">'))
    site.add("/target", page("Target", ["/beyond"]))
    site.add("/later", page("Later", head="<meta http-equiv=refresh content=\"5;url='/next'\">"))
    site.add("/next", page("Next"))
    site.add("/framed", page("Framed", body='<iframe src="/inner"></iframe>'))
    site.add("/inner", page("Inner"))
    frameset = '<frameset><frame src="/left"><frame src="/right"></frameset>'
    site.add("/frames", Reply(body=f"<html><head></head>{frameset}</html>".encode()))
    site.add("/left", page("Left"))
    site.add("/right", page("Right"))
    site.add("/beyond", page("Beyond"))
    got = await crawl(site, depth=1)
    # The stub's target comes at the stub's own depth (1), not 2; /next (a delayed refresh,
    # a link) and /inner (an iframe) are 2 hops away: not at --depth 1.
    assert set(got) == {"/", "/stub", "/later", "/framed", "/target"}
    assert got["/target"].depth == 1 and got["/target"].referrer == site.url("/stub")
    assert got["/stub"].data["refresh"] == {"url": site.url("/target"), "delay": 0.0}
    got = await crawl(site, depth=2)
    assert {"/next", "/inner", "/beyond"} <= set(got)
    assert got["/next"].referrer == site.url("/later") and got["/next"].depth == 2
    assert got["/inner"].referrer == site.url("/framed")
    site.routes["/"] = page("Home", ["/frames"])
    got = await crawl(site, depth=2)
    assert set(got) == {"/", "/frames", "/left", "/right"}
    got = await crawl(site, depth=2, frames=False)
    assert set(got) == {"/", "/frames"}
    site.routes["/"] = page("Home", ["/stub"])
    assert set(await crawl(site, depth=1, meta_refresh=False)) == {"/", "/stub"}


@pytest.mark.parametrize(
    ("head", "header", "obeyed"),
    [
        ('<meta name="robots" content="nofollow">', None, True),
        ('<meta name="ROBOTS" content="noindex, nofollow">', None, True),
        ('<meta name="robots" content="none">', None, True),
        ('<meta name="trio-scrape" content="nofollow">', None, True),
        ('<meta name="googlebot" content="nofollow">', None, False),
        ("", "nofollow", True),
        ("", "trio-scrape: noindex, nofollow", True),
        ("", "googlebot: nofollow", False),
        ("", "unavailable_after: 25 Jun 2030 15:00:00 PST", False),
    ],
)
async def test_page_level_nofollow_is_obeyed_and_recorded(
    site: Site, head: str, header: str | None, obeyed: bool
) -> None:
    reply = page("Home", ["/a"], head=head)
    if header is not None:
        reply.headers["X-Robots-Tag"] = header
    site.add("/", reply)
    site.add("/a", page("A"))
    got = await crawl(site, depth=1)
    assert set(got) == ({"/"} if obeyed else {"/", "/a"})
    robots = got["/"].data.get("robots", [])
    assert ("nofollow" in robots) == obeyed
    ignored = await crawl(site, depth=1, page_robots=False)
    assert set(ignored) == {"/", "/a"} and ignored["/"].data.get("robots", []) == robots


async def test_noindex_pages_are_recorded_with_it(site: Site) -> None:
    site.add("/", page("Home", ["/hidden"]))
    site.add("/hidden", page("Hidden", ["/b"], head='<meta name="robots" content="noindex">'))
    site.add("/b", page("B"))
    got = await crawl(site, depth=2)
    assert set(got) == {"/", "/hidden", "/b"}  # noindex: recorded, and its links followed
    assert got["/hidden"].data["robots"] == ["noindex"] and got["/hidden"].ok


async def test_rel_nofollow_links_are_followed_unless_asked(site: Site) -> None:
    site.add(
        "/", page("Home", body='<a rel="external nofollow" href="/ad">ad</a><a href="/a">a</a>')
    )
    site.add("/ad", page("Ad"))
    site.add("/a", page("A"))
    assert set(await crawl(site, depth=1)) == {"/", "/ad", "/a"}
    assert set(await crawl(site, depth=1, skip_rel_nofollow=True)) == {"/", "/a"}


async def test_canonical_is_recorded_and_can_deduplicate(site: Site) -> None:
    canonical = '<link rel="canonical" href="/article">'
    site.add("/", page("Home", ["/article?utm=1", "/article?utm=2", "/other"]))
    site.add("/article", page("Article", ["/from-article"], head=canonical))
    site.fallback = None
    for variant in ("1", "2"):
        site.routes[f"/article?utm={variant}"] = page(
            "Article", [f"/from-{variant}"], head=canonical
        )
    site.add("/other", page("Other", ["/article"]))
    for path in ("/from-1", "/from-2", "/from-article"):
        site.add(path, page(path))
    got = await crawl(site, depth=2)
    assert got["/article?utm=1"].data["canonical"] == site.url("/article")
    assert {"/article", "/from-1", "/from-2"} <= set(got)
    got = await crawl(site, depth=2, workers=1, dedup_canonical=True)
    # The first variant stands for /article (never fetched itself); the second is marked
    # a duplicate and its links are not followed.
    assert "/article" not in got and "/from-2" not in got and "/from-1" in got
    assert got["/article?utm=2"].data["duplicate_of"] == site.url("/article")
    assert "duplicate_of" not in got["/article?utm=1"].data


async def test_page_level_options_from_the_command_line(site: Site) -> None:
    from .test_cli import cli, records

    body = '<a rel="nofollow" href="/ad">ad</a><iframe src="/frame"></iframe>'
    site.add(
        "/", page("Home", ["/next"], head='<meta name="robots" content="nofollow">', body=body)
    )
    for path in ("/ad", "/frame", "/next"):
        site.add(path, page(path))
    seed = site.url("/")
    plain = await cli("run", seed, "--depth", "1")
    assert {r["url"] for r in records(plain.stdout)} == {seed}  # nofollow obeyed
    args = ["run", seed, "--depth", "1", "--ignore-page-robots", "--skip-rel-nofollow"]
    result = await cli(*args, "--no-frames")
    assert result.returncode == 0, result.stderr
    got = records(result.stdout)
    assert {r["url"] for r in got} == {seed, site.url("/next")}
    assert got[0]["data"]["robots"] == ["nofollow"]
