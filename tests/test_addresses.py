"""The private-address guard and header scoping: what a hostile page can make us contact."""

from __future__ import annotations

import httpx
import pytest
import trio

from trio_scrape import CrawlConfig, scrape
from trio_scrape.http.addresses import AddressGuard, BlockedAddress, is_public
from trio_scrape.http.transport import CrawlTransport
from trio_scrape.model.urls import exempt_origins, origin_text

from .site import Reply, Site, html_page

BLOCKED = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
    "::1", "::", "fc00::1", "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffe",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "2606:4700:4700::1111",
          "::ffff:8.8.8.8", "2002:808:808::"]  # fmt: skip


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_ranges(address: str) -> None:
    assert not is_public(address)
    assert not AddressGuard().permits("http://evil.test", address)
    assert AddressGuard(allow_private=True).permits("http://evil.test", address)
    seed = AddressGuard(["http://evil.test:8080"])
    assert seed.permits(origin_text("HTTP", "EVIL.test", 8080), address)  # a seed's origin
    assert not seed.permits("http://evil.test:8000", address)  # another port of its host
    assert not seed.permits("https://evil.test:8080", address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(address) and AddressGuard().permits("http://x.test", address)


def test_origins_exempt_by_the_seeds() -> None:
    assert origin_text("https", "[::1]", 443) == "https://[::1]"
    assert origin_text("http", "::1", 8080) == "http://[::1]:8080"
    assert exempt_origins(["http://a.test", "http://b.test:8000", "http://[::1]"]) == {
        "http://a.test",
        "https://a.test",  # the same site upgraded by a redirect
        "http://b.test:8000",
        "http://[::1]",
        "https://[::1]",
    }


def test_check_keeps_only_permitted_addresses() -> None:
    guard = AddressGuard()
    assert guard.check("http://x.test", ["127.0.0.1", "8.8.8.8"]) == ["8.8.8.8"]
    with pytest.raises(BlockedAddress, match=r"169\.254\.169\.254"):
        guard.check("http://metadata.test", ["169.254.169.254"])


def stub_resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return answers.get(host, [host])  # IP literals resolve to themselves

    return resolve


async def test_a_public_name_resolving_to_loopback_is_refused_at_connect(site: Site) -> None:
    """DNS says public.test is 127.0.0.1 (rebinding, or a hostile zone): nothing is sent."""
    site.add("/", Reply(body=html_page("Seed", [
        f"http://public.test:{site.port}/x",
        f"http://metadata.test:{site.port}/latest/meta-data/",
        f"http://mapped.test:{site.port}/y",
    ])))  # fmt: skip
    resolver = stub_resolver({
        "public.test": ["127.0.0.1"],
        "metadata.test": ["169.254.169.254"],
        "mapped.test": ["::ffff:127.0.0.1"],
    })  # fmt: skip
    transport = CrawlTransport(guard=AddressGuard([site.base]), resolver=resolver)
    config = CrawlConfig(depth=1, scope="any", robots=False)
    pages = {p.url: p for p in await scrape([site.url("/")], config, transport=transport)}
    assert site.paths() == ["/"]  # only the seed reached the server
    for host in ("public.test", "metadata.test", "mapped.test"):
        [page] = [p for url, p in pages.items() if host in url]
        assert page.error is not None and page.error.kind == "blocked_address", page.error
        assert page.status is None


async def test_the_transport_refuses_before_connecting(site: Site) -> None:
    transport = CrawlTransport(
        guard=AddressGuard(), resolver=stub_resolver({"public.test": ["127.0.0.1"]})
    )
    async with transport:
        with pytest.raises(BlockedAddress):
            request = httpx.Request("GET", f"http://public.test:{site.port}/")
            await transport.handle_async_request(request)
    assert site.log == [] and site.connections == 0


async def test_links_and_redirects_to_other_private_hosts(site: Site) -> None:
    """Real loopback hosts: the seed's host may be private; another one, reached by a link
    or a redirect, only with allow_private."""
    other = Site("127.0.0.2")
    async with trio.open_nursery() as nursery:
        await nursery.start(other.serve)
        other.add("/x", Reply(body=html_page("Other")))
        site.add("/", Reply(body=html_page("Home", [other.url("/x"), "/jump"])))
        site.add("/jump", Reply(302, headers={"Location": other.url("/x")}))
        config = CrawlConfig(depth=1, scope="any", robots=False)
        pages = {p.url: p for p in await scrape([site.url("/")], config)}
        assert other.log == []
        for url in (other.url("/x"), site.url("/jump")):
            error = pages[url].error
            assert error is not None and error.kind == "blocked_address"
        assert pages[site.url("/")].ok
        allowed = CrawlConfig(depth=1, scope="any", robots=False, allow_private=True)
        pages = {p.url: p for p in await scrape([site.url("/")], allowed)}
        assert pages[other.url("/x")].ok and set(other.paths()) == {"/x"}
        nursery.cancel_scope.cancel()


async def test_another_port_of_a_loopback_seed_is_refused(site: Site) -> None:
    """A local app on another port of the seed's host (the Django tutorial's server on
    127.0.0.1:8000, next to the manual on 127.0.0.1:18083) is not crawled, admin included."""
    app = Site()
    async with trio.open_nursery() as nursery:
        await nursery.start(app.serve)
        app.add("/admin/", Reply(body=html_page("Admin")))
        site.add("/", Reply(body=html_page("Manual", [app.url("/admin/"), "/jump"])))
        site.add("/jump", Reply(302, headers={"Location": app.url("/admin/")}))
        for scope in ("host", "any"):
            config = CrawlConfig(depth=1, scope=scope, robots=False)
            pages = {p.url: p for p in await scrape([site.url("/")], config)}
            assert app.log == []
            for url in (app.url("/admin/"), site.url("/jump")):
                error = pages[url].error
                assert error is not None and error.kind == "blocked_address", url
                assert f"{app.base} resolves to 127.0.0.1" in error.message
        # --scope origin: not even scheduled.
        config = CrawlConfig(depth=1, scope="origin", robots=False)
        pages = {p.url: p for p in await scrape([site.url("/")], config)}
        assert set(pages) == {site.url("/"), site.url("/jump")} and app.log == []
        # Both seeds: both origins exempt.
        both = CrawlConfig(depth=1, robots=False)
        pages = {p.url: p for p in await scrape([site.url("/"), app.url("/")], both)}
        assert pages[app.url("/admin/")].ok and app.log
        nursery.cancel_scope.cancel()


async def test_headers_go_to_the_seeds_hosts_only(site: Site) -> None:
    other = Site("127.0.0.3")
    async with trio.open_nursery() as nursery:
        await nursery.start(other.serve)
        other.add("/landing", Reply(body=html_page("Landing")))
        other.add("/linked", Reply(body=html_page("Linked")))
        site.add("/", Reply(body=html_page("Home", [other.url("/linked"), "/own"])))
        site.add("/own", Reply(body=html_page("Own")))
        site.add("/away", Reply(302, headers={"Location": other.url("/landing")}))
        config = CrawlConfig(
            depth=1,
            scope="any",
            robots=False,
            allow_private=True,
            headers={"Authorization": "Bearer secret", "Cookie": "session=1", "X-Api-Key": "k"},
        )
        pages = await scrape([site.url("/"), site.url("/away")], config)
        assert all(p.ok for p in pages) and len(pages) == 4  # /away ends at /landing
        for request in site.log:  # the seeds' host gets them on every request
            assert request.headers.get("x-api-key") == "k", request.path
            assert request.headers.get("cookie") == "session=1"
        assert sorted(r.path for r in other.log) == ["/landing", "/linked"]
        for request in other.log:  # a redirect or a link to another host: none of them
            assert not {"authorization", "cookie", "x-api-key"} & set(request.headers)
            assert request.headers["user-agent"].startswith("trio-scrape/")
        nursery.cancel_scope.cancel()
