"""CrawlTransport against a real loopback server: keep-alive, stale connections, TLS."""

from __future__ import annotations

import gc
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trustme

from trio_scrape import CrawlConfig
from trio_scrape.http.transport import CrawlTransport, _Message

from .site import Reply, Request, Site, html_page


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=CrawlTransport(), timeout=5) as client:
        yield client


async def test_keep_alive_reuses_one_connection(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/", Reply(body=html_page("Home")))
    for _ in range(5):
        response = await client.get(site.url("/"))
        assert response.status_code == 200 and b"Home" in response.content
    assert site.connections == 1 and site.hits["/"] == 5


async def test_stale_idle_connection_is_retried_on_a_fresh_one(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.add("/", Reply(body=html_page("Home")))
    site.close_idle = True  # the server drops every connection after one answer
    for _ in range(3):
        response = await client.get(site.url("/"))
        assert response.status_code == 200
    assert site.connections == 3 and site.hits["/"] == 3


async def test_connection_close_is_not_reused(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/", Reply(body=b"bye", headers={"Connection": "close"}))
    for _ in range(2):
        assert (await client.get(site.url("/"))).content == b"bye"
    assert site.connections == 2


async def test_close_delimited_body_and_informational_response(
    site: Site, client: httpx.AsyncClient
) -> None:
    async def close_delimited(request: Request) -> bool:
        await request.stream.send_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
            b"until the end"
        )
        return False  # the server closes: that ends the body

    site.add_raw("/", close_delimited)
    response = await client.get(site.url("/"))
    assert response.status_code == 200 and response.content == b"until the end"


async def test_abandoned_body_closes_its_connection(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/big", Reply(body=b"x" * 1_000_000, content_type="text/plain"))
    site.add("/small", Reply(body=b"ok", content_type="text/plain"))
    async with client.stream("GET", site.url("/big")) as response:
        async for _ in response.aiter_raw():
            break
    assert (await client.get(site.url("/small"))).content == b"ok"
    assert site.connections == 2


async def test_read_timeout(site: Site) -> None:
    async def silent(request: Request) -> bool:
        await trio.sleep_forever()
        return False  # pragma: no cover

    site.add_raw("/", silent)
    async with httpx.AsyncClient(transport=CrawlTransport(), timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(site.url("/"))


async def test_truncated_body_is_a_protocol_error(site: Site, client: httpx.AsyncClient) -> None:
    async def truncated(request: Request) -> bool:
        await request.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        return False

    site.add_raw("/", truncated)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(site.url("/"))


async def test_garbage_response_is_a_protocol_error(site: Site, client: httpx.AsyncClient) -> None:
    async def garbage(request: Request) -> bool:
        await request.stream.send_all(b"SMTP ready\r\n\r\n")
        return False

    site.add_raw("/", garbage)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(site.url("/"))


async def test_oversized_headers_are_refused(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/", Reply(body=b"x", headers={"X-Huge": "h" * 100_000}))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get(site.url("/"))


async def test_https_with_a_private_ca(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    site = Site()
    site.ssl_context = server_context
    await nursery.start(site.serve)
    site.add("/", Reply(body=html_page("Secure")))

    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with httpx.AsyncClient(transport=CrawlTransport(ssl_context=client_context)) as client:
        for _ in range(2):
            response = await client.get(site.url("/"))
            assert response.status_code == 200 and b"Secure" in response.content
    assert site.connections == 1

    # An untrusted certificate is a connect error, not a crash.
    async with httpx.AsyncClient(transport=CrawlTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(site.url("/"))


async def test_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    from .site import closed_port

    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{closed_port()}/")


async def test_idle_pool_is_bounded(site: Site) -> None:
    site.add("/", Reply(body=b"ok", content_type="text/plain"))
    transport = CrawlTransport(max_idle_per_origin=2, max_idle=2)
    async with httpx.AsyncClient(transport=transport) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(client.get, site.url("/"))
        assert transport._idle_count == 2


async def test_request_bodies_are_sent(site: Site, client: httpx.AsyncClient) -> None:
    received: list[bytes] = []

    async def echo(request: Request) -> bool:
        length = int(request.headers["content-length"])
        body, request.leftover = request.leftover, b""
        while len(body) < length:
            body += await request.stream.receive_some(65536)
        received.append(body)
        await request.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    site.add_raw("/echo", echo)
    response = await client.post(site.url("/echo"), content=b"x" * 100_000)
    assert response.content == b"ok" and received == [b"x" * 100_000]


# The fetcher's plain way (no httpx.Request for URLs httpx would send as written) must put on
# the wire exactly what the httpx way does.
_PLAIN_HEADERS = httpx.Headers({"Accept": "*/*", "User-Agent": "t/1", "X-Key": "v"})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://example.test/a/b.html?x=1&y=%C3%A9",
        "https://example.test/p;q=1/(x)!$'*+,=:@~-._/?a=/?b",
        "http://h.test:65535/%2F",
    ],
)
async def test_plain_urls_go_out_as_httpx_writes_them(url: str) -> None:
    from trio_scrape.http.fetcher import plain_request, plain_url
    from trio_scrape.http.transport import _serialise, serialise_head

    plain = plain_url(url)
    assert plain is not None
    assert str(httpx.URL(url)) == url  # the record's final_url is the same either way
    expected = await _serialise(httpx.Request("GET", url, headers=_PLAIN_HEADERS))
    assert plain_request(plain, serialise_head(_PLAIN_HEADERS.raw)) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://h.test:80/",  # httpx leaves the default port out
        "https://h.test:443/",
        "http://h.test:080/",
        "http://H.test/",
        "http://[::1]:8080/",
        "http://h.test/a b",
        "http://h.test/%zz",
        "http://h.test/a#f",
        "http://h.test/{x}",
        "ftp://h.test/",
        "http://h.test",
    ],
)
def test_other_urls_go_through_httpx(url: str) -> None:
    from trio_scrape.http.fetcher import plain_url

    assert plain_url(url) is None


@pytest.mark.parametrize(("paced", "at_once"), [(False, False), (True, False), (False, True)])
async def test_a_request_waits_for_the_next_pass_unless_paced(paced: bool, at_once: bool) -> None:
    """A request is written in the scheduler's pass after the one that sends it (the pass's
    requests go out together); a paced host's is written at once, so its gaps are as
    scheduled, and so is every request of a worker process's transport (``at_once``). A
    probe task looks once a pass for a request sent but not yet written."""
    import socket

    from trio_scrape.http.transport import PACED, _Connection

    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    conn = _Connection(stream, 64 * 1024, at_once=at_once)
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    sending = False
    done = False
    caught_unwritten = 0

    def written() -> bool:
        try:
            return theirs.recv(1024, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return False

    async def probe() -> None:
        nonlocal caught_unwritten
        while not done:
            caught_unwritten += sending and not written()
            await trio.lowlevel.checkpoint()

    with theirs:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe)
            PACED.set(paced)
            # Unpaced, the probe sees each request unwritten with probability 3/4: it runs
            # after the send in that pass, or before the write in the next (trio runs a
            # pass in order or reversed, at random).
            for _ in range(30):
                theirs.send(b"HTTP/1.1 204 No Content\r\n\r\n")  # read once it is sent
                sending = True
                message = await conn.send_request(request, "GET", {})
                sending = False
                assert message.status == 204 and theirs.recv(1024) == request
                await trio.lowlevel.checkpoint()
            done = True
        await conn.close()
    if paced or at_once:
        assert caught_unwritten == 0
    else:
        assert caught_unwritten > 0  # missed by chance: (1/4) ** 30 < 1e-18


async def test_a_worker_process_transport_writes_at_once(site: Site) -> None:
    from trio_scrape.http.fetcher import open_fetcher
    from trio_scrape.http.transport import _Connection

    site.add("/", Reply(body=html_page("Home")))
    made: list[_Connection] = []
    real_init = _Connection.__init__

    def recording(self: _Connection, *args: object, **options: bool) -> None:
        real_init(self, *args, **options)  # type: ignore[arg-type]
        made.append(self)

    config = CrawlConfig(allow_private=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_Connection, "__init__", recording)
        for at_once in (False, True):
            async with open_fetcher(config, write_at_once=at_once) as fetcher:
                assert (await fetcher.fetch(site.url("/"))).status == 200
    assert [conn.at_once for conn in made] == [False, True]


async def test_a_finished_response_leaves_no_reference_cycle(site: Site) -> None:
    # llhttp's parser calls back the message's bound methods, and the message holds the parser:
    # left joined, every response was a cycle only the garbage collector freed (~13 objects).
    site.add("/", Reply(body=html_page("Home")))
    transport = CrawlTransport()
    origin = ("http", "127.0.0.1", site.port)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            status, _, body = await transport.get(origin, request)
            assert status == 200 and b"Home" in b"".join([chunk async for chunk in body])
        alive = sum(isinstance(thing, _Message) for thing in gc.get_objects())
    finally:
        gc.enable()
        await transport.aclose()
    assert alive == 0
