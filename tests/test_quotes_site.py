"""examples/quotes_site.py, the scraper's test site: every page type answers as specified, and
its ground truth is what its pages show (read with selectolax, fetched with httpx on loopback)."""

from __future__ import annotations

import base64
import functools
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import trio
from selectolax.lexbor import LexborHTMLParser, LexborNode

from examples.quotes_site import (
    PASSWORD,
    Quote,
    QuotesSite,
    serve_in_thread,
    serve_quotes_site,
)
from trio_scrape import ConfigError
from trio_scrape.render.browser import find_browser

SCRIPT = Path(__file__).parent.parent / "examples" / "quotes_site.py"

# What a scrape of a page gives: (text, author name, author href, tags or None if no tags div)
Item = tuple[str, str, str, tuple[str, ...] | None]


@pytest.fixture
async def quotes_site(nursery: trio.Nursery) -> QuotesSite:
    site = QuotesSite(quotes=100, seed=7)
    await nursery.start(site.serve)
    return site


@pytest.fixture
async def client(quotes_site: QuotesSite) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quotes_site.base, trust_env=False, timeout=10) as c:
        yield c


def parse(response: httpx.Response) -> LexborHTMLParser:
    assert response.status_code == 200, (response.request.url, response.status_code)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return LexborHTMLParser(response.content)


def text_of(node: LexborNode | None) -> str:
    assert node is not None
    return node.text(deep=True)


def scrape_quotes(tree: LexborHTMLParser) -> list[Item]:
    items = []
    for div in tree.css("div.quote"):
        about = div.css_first('a[href^="/author/"]')
        assert about is not None and text_of(about) == "(about)"
        tags_div = div.css_first("div.tags")
        tags = None if tags_div is None else tuple(text_of(a) for a in tags_div.css("a.tag"))
        if tags_div is not None:
            hrefs = [a.attributes["href"] for a in tags_div.css("a.tag")]
            assert hrefs == [f"/tag/{t}/page/1/" for t in tags or ()]
        items.append(
            (
                text_of(div.css_first("span.text")),
                text_of(div.css_first("small.author")),
                str(about.attributes["href"]),
                tags,
            )
        )
    return items


def expected(quotes: list[Quote]) -> list[Item]:
    return [(q.text, q.author, q.author_url, q.tags or None) for q in quotes]


def next_href(tree: LexborHTMLParser) -> str | None:
    link = tree.css_first("li.next a")
    return None if link is None else str(link.attributes["href"])


async def walk(client: httpx.AsyncClient, start: str) -> list[tuple[str, LexborHTMLParser]]:
    """Follow ``li.next`` links from ``start``: each page's path and tree."""
    pages, path = [], start
    while True:
        tree = parse(await client.get(path))
        pages.append((path, tree))
        following = next_href(tree)
        if following is None:
            return pages
        path = urljoin(path, following)
        assert len(pages) < 100


# ---- the data


def test_data_is_deterministic_and_varied() -> None:
    site = QuotesSite(quotes=100, seed=7)
    assert site.quotes() == QuotesSite(quotes=100, seed=7).quotes()
    assert site.quotes() != QuotesSite(quotes=100, seed=8).quotes()
    quotes, authors = site.quotes(), site.authors()
    assert len(quotes) == 100 and len({q.text for q in quotes}) == 100
    assert len(authors) == 50 and len({a.slug for a in authors}) == 50
    assert 30 <= len(site.tags()) <= 40
    assert {q.author for q in quotes} == {a.name for a in authors}  # each has a quote
    assert max(sum(q.author == a.name for q in quotes) for a in authors) >= 4
    assert any(not q.tags for q in quotes)
    untagged = next(q for q in quotes if not q.tags)
    assert untagged.item() == {
        "text": untagged.text,
        "author": untagged.author,
        "author_slug": untagged.author_slug,
        "tags": [],
    }
    assert [q.page for q in quotes] == [i // 10 + 1 for i in range(100)]
    text = " ".join(q.text for q in quotes) + " ".join(a.name for a in authors)
    for char in "éü“”—&":
        assert char in text, char
    assert re.search(r"[\u4e00-\u9fff]", " ".join(a.name for a in authors))
    assert all(re.fullmatch(r"[a-z0-9-]+", a.slug) for a in authors)
    assert max(site.tag_pages(t) for t in site.tags()) >= 3
    small = QuotesSite(quotes=1, seed=1)
    assert len(small.authors()) == 1 and small.listing_pages() == 1
    with pytest.raises(ValueError):
        QuotesSite(quotes=0)


# ---- listing, authors, tags


async def test_listing_pages_match_the_ground_truth(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    pages = await walk(client, "/")
    assert [path for path, _ in pages] == ["/"] + [f"/page/{n}/" for n in range(2, 11)]
    scraped = [item for _, tree in pages for item in scrape_quotes(tree)]
    assert scraped == expected(quotes_site.quotes())
    for number, (_, tree) in enumerate(pages, 1):
        assert len(tree.css("div.quote")) == 10
        previous = tree.css_first("li.previous a")
        if number == 1:
            assert previous is None
        else:
            assert previous is not None
            assert previous.attributes["href"] == ("/" if number == 2 else f"/page/{number - 1}/")
        assert tree.css_first('a[href="/login"]') is not None  # logged out
        assert not tree.css("a.goodreads") and not tree.css('a[href="/logout"]')
    assert (await client.get("/page/1/")).content == (await client.get("/")).content
    assert (await client.get("/page/11/")).status_code == 404
    assert (await client.get("/page/2")).status_code == 404  # no redirect to the slash


async def test_author_pages_use_a_base_href(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    for author in quotes_site.authors():
        url = f"/author/{author.slug}/"
        tree = parse(await client.get(url))
        scraped = {
            "name": text_of(tree.css_first("h3.author-title")),
            "slug": url.split("/")[2],
            "born_date": text_of(tree.css_first("span.author-born-date")),
            "born_location": text_of(tree.css_first("span.author-born-location")),
            "description": text_of(tree.css_first("div.author-description")),
        }
        assert scraped == author.item()
        base = tree.css_first("base")
        assert base is not None and base.attributes["href"] == "/author/"
    # Relative links resolve against <base href="/author/">, not against the page's URL.
    first = quotes_site.authors()[0]
    tree = parse(await client.get(f"/author/{first.slug}/"))
    following = tree.css_first("a.next-author")
    back = tree.css_first('a[href="../"]')
    assert following is not None and back is not None
    href = str(following.attributes["href"])
    assert (await client.get(urljoin("/author/", href))).status_code == 200
    assert (await client.get(urljoin(f"/author/{first.slug}/", href))).status_code == 404
    assert urljoin("/author/", "../") == "/"
    assert (await client.get("/author/nobody/")).status_code == 404


async def test_tag_pages_match_the_ground_truth(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    for tag in quotes_site.tags():
        pages = await walk(client, f"/tag/{tag}/page/1/")
        assert len(pages) == quotes_site.tag_pages(tag)
        assert [path for path, _ in pages] == [
            f"/tag/{tag}/page/{n}/" for n in range(1, len(pages) + 1)
        ]
        scraped = [item for _, tree in pages for item in scrape_quotes(tree)]
        assert scraped == expected(quotes_site.tagged(tag))
        assert all(tag in (tags or ()) for _, _, _, tags in scraped)
    busiest = max(quotes_site.tags(), key=quotes_site.tag_pages)
    tree = parse(await client.get(f"/tag/{busiest}/page/2/"))
    previous = tree.css_first("li.previous a")
    assert previous is not None and previous.attributes["href"] == f"/tag/{busiest}/page/1/"
    assert (await client.get(f"/tag/{busiest}/")).content == (
        await client.get(f"/tag/{busiest}/page/1/")
    ).content
    assert (await client.get("/tag/no-such-tag/page/1/")).status_code == 404


async def test_a_crawl_from_the_root_reaches_exactly_urls(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    """Following every <a href> on the site (resolved as a browser does, <base> included)
    reaches the pages urls() names and no 404."""
    seen, queue = {"/"}, ["/"]
    while queue:
        path = queue.pop()
        response = await client.get(path)
        assert response.status_code == 200, path
        tree = LexborHTMLParser(response.content)
        base_node = tree.css_first("base")
        base = urljoin(path, str(base_node.attributes["href"])) if base_node else path
        for link in tree.css("a[href]"):
            target = urljoin(base, str(link.attributes["href"]))
            assert not urlsplit(target).netloc, target  # nothing off the site
            if target not in seen:
                seen.add(target)
                queue.append(target)
    assert seen == set(quotes_site.urls())
    assert quotes_site.count("GET", "/") == 1


# ---- log-in


def form_fields(tree: LexborHTMLParser) -> dict[str, str]:
    return {
        str(i.attributes["name"]): str(i.attributes.get("value") or "")
        for i in tree.css("form input[name]")
        if i.attributes.get("type") != "submit"
    }


async def test_login_flow(quotes_site: QuotesSite, client: httpx.AsyncClient) -> None:
    form = parse(await client.get("/login"))
    assert form.css_first('form[action="/login"][method="post"]') is not None
    token = form_fields(form)["csrf_token"]
    assert re.fullmatch(r"[0-9a-f]{32}", token) and "session" in client.cookies

    # a new token per visit; the old one no longer works
    fields = form_fields(parse(await client.get("/login")))
    assert fields["csrf_token"] != token
    stale = await client.post(
        "/login", data={"csrf_token": token, "username": "a", "password": PASSWORD}
    )
    assert stale.status_code == 200 and "CSRF" in text_of(parse(stale).css_first("div.error"))

    # missing token
    missing = await client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert missing.status_code == 200 and parse(missing).css_first("div.error") is not None

    # wrong password, with a good token: the form again, with an error and a new token
    fields = form_fields(parse(missing))
    wrong = await client.post("/login", data={**fields, "username": "ada", "password": "nope"})
    tree = parse(wrong)
    assert "password" in text_of(tree.css_first("div.error"))
    assert form_fields(tree)["csrf_token"] != fields["csrf_token"]

    # an empty user name does not log in
    fields = form_fields(tree)
    empty = await client.post("/login", data={**fields, "username": "", "password": PASSWORD})
    assert parse(empty).css_first("div.error") is not None
    assert parse(await client.get("/")).css_first("a.goodreads") is None

    # right: 302 to /, a new session cookie
    fields = form_fields(parse(empty))
    before = client.cookies["session"]
    ok = await client.post("/login", data={**fields, "username": "ada", "password": PASSWORD})
    assert ok.status_code == 302 and ok.headers["location"] == "/"
    assert client.cookies["session"] != before
    posts = quotes_site.requests("POST", "/login")
    assert posts[-1].form == {**fields, "username": "ada", "password": PASSWORD}
    assert posts[-1].cookie == f"session={before}"
    assert posts[1].form is not None and "csrf_token" not in posts[1].form

    # logged in: goodreads links and Logout on listing and tag pages
    for path in ("/", "/page/3/", f"/tag/{quotes_site.tags()[0]}/page/1/"):
        tree = parse(await client.get(path))
        assert tree.css_first('a[href="/logout"]') is not None
        assert tree.css_first('a[href="/login"]') is None
        quotes = tree.css("div.quote")
        assert [q.css_first("a.goodreads") is not None for q in quotes] == [True] * len(quotes)
    links = [str(a.attributes["href"]) for a in parse(await client.get("/")).css("a.goodreads")]
    assert links == [q.goodreads for q in quotes_site.quotes()[:10]]
    private = parse(await client.get(links[0]))
    assert text_of(private.css_first(".private")) == quotes_site.quotes()[0].text

    # log out: back to the public pages
    out = await client.get("/logout")
    assert out.status_code == 302 and "session" not in client.cookies
    tree = parse(await client.get("/"))
    assert tree.css_first("a.goodreads") is None and tree.css_first('a[href="/login"]')
    assert (await client.get(links[0])).status_code == 302


async def test_login_needs_the_session_cookie(quotes_site: QuotesSite) -> None:
    async with httpx.AsyncClient(base_url=quotes_site.base, trust_env=False) as browser:
        token = form_fields(parse(await browser.get("/login")))["csrf_token"]
    async with httpx.AsyncClient(base_url=quotes_site.base, trust_env=False) as other:
        answer = await other.post(
            "/login", data={"csrf_token": token, "username": "ada", "password": PASSWORD}
        )
        assert answer.status_code == 200 and parse(answer).css_first("div.error")


# ---- the search form


def submit(form: LexborNode, choose: dict[str, str]) -> dict[str, str]:
    """The fields a browser sends for ``form``: hidden inputs, each select's chosen (or
    selected, or first) option, and the submit button's name and value."""
    data = {}
    for node in form.css("input[name]"):
        if node.attributes.get("type") in ("hidden", "submit"):
            data[str(node.attributes["name"])] = str(node.attributes.get("value") or "")
    for select in form.css("select[name]"):
        name = str(select.attributes["name"])
        values = [str(o.attributes.get("value")) for o in select.css("option")]
        selected = [str(o.attributes.get("value")) for o in select.css("option[selected]")]
        if name in choose:
            assert choose[name] in values, (name, choose[name])
            data[name] = choose[name]
        else:
            data[name] = selected[0] if selected else values[0]
    return data


def search_form(tree: LexborHTMLParser) -> LexborNode:
    form = tree.css_first("form#search")
    assert form is not None and form.attributes["action"] == "search"
    assert form.attributes["method"] == "post"
    button = form.css_first('input[type="submit"]')
    assert button is not None and button.attributes["name"] == "submit_button"
    return form


async def test_search_form_in_three_steps(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    author = max(quotes_site.authors(), key=lambda a: len(quotes_site.author_tags(a.name)))
    first = search_form(parse(await client.get("/search")))
    names = [str(o.attributes["value"]) for o in first.css('select[name="author"] option')]
    assert names == ["", *(a.name for a in quotes_site.authors())]
    assert first.css_first('select[name="tag"]') is None
    action = urljoin("/search", "search")

    step1 = submit(first, {"author": author.name})
    assert step1["submit_button"] == "Search"
    second = search_form(parse(await client.post(action, data=step1)))
    assert submit(second, {})["__VIEWSTATE"] != step1["__VIEWSTATE"]
    tags = [str(o.attributes["value"]) for o in second.css('select[name="tag"] option')]
    assert tags == ["", *quotes_site.author_tags(author.name)]
    selected = second.css_first('select[name="author"] option[selected]')
    assert selected is not None and selected.attributes["value"] == author.name

    for tag in quotes_site.author_tags(author.name):
        step2 = submit(second, {"tag": tag})
        assert step2["author"] == author.name
        result = parse(await client.post(action, data=step2))
        assert scrape_quotes(result) == expected(quotes_site.search(author.name, tag))
        assert quotes_site.search(author.name, tag)

    # A view state from step 1 with a tag answers step 2, not results.
    early = parse(await client.post(action, data={**step1, "tag": tags[1]}))
    assert early.css_first('select[name="tag"]') is not None and not early.css("div.quote")


async def test_search_refuses_a_missing_or_tampered_view_state(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    author = quotes_site.authors()[3].name
    step1 = submit(search_form(parse(await client.get("/search"))), {"author": author})
    state = step1["__VIEWSTATE"]
    mac = state.partition(".")[2]
    forged = json.dumps({"step": 2, "author": author}, separators=(",", ":")).encode()
    for bad in (
        None,
        "",
        "garbage",
        state[:-2] + ("AA" if not state.endswith("AA") else "BB"),
        base64.urlsafe_b64encode(forged).decode() + "." + mac,
    ):
        data = {k: v for k, v in step1.items() if k != "__VIEWSTATE"}
        if bad is not None:
            data["__VIEWSTATE"] = bad
        answer = await client.post("/search", data={**data, "tag": "love"})
        assert answer.status_code == 400, bad
    assert (await client.post("/search", data=step1)).status_code == 200
    unknown = await client.post("/search", data={**step1, "author": "Nobody"})
    assert unknown.status_code == 400


# ---- the API, script-built pages, the table


async def test_api_pages_chain_through_has_next(
    quotes_site: QuotesSite, client: httpx.AsyncClient
) -> None:
    scroll = parse(await client.get("/scroll"))
    assert not scroll.css("div.quote")
    script = text_of(scroll.css_first("script"))
    assert "/api/quotes?page=" in script

    pages, number = [], 1
    while True:
        answer = await client.get("/api/quotes", params={"page": number})
        assert answer.headers["content-type"] == "application/json"
        page = answer.json()
        assert page["page"] == number
        pages.append(page)
        if not page["has_next"]:
            break
        number += 1
    assert pages == quotes_site.api_pages() and len(pages) == 10
    flat = [q for page in pages for q in page["quotes"]]
    assert [
        (q["text"], q["author"]["name"], q["author"]["slug"], tuple(q["tags"])) for q in flat
    ] == [(q.text, q.author, q.author_slug, q.tags) for q in quotes_site.quotes()]
    assert (await client.get("/api/quotes")).json() == pages[0]
    assert (await client.get("/api/quotes?page=11")).json() == {
        "quotes": [],
        "page": 11,
        "has_next": False,
    }
    for bad in ("0", "x", "-1"):
        assert (await client.get("/api/quotes", params={"page": bad})).status_code == 400


def script_data(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    script = text_of(tree.css_first("script"))
    match = re.search(r"var data = (\[.*?\]);\n", script, re.S)
    assert match is not None
    data: list[dict[str, Any]] = json.loads(match.group(1).replace("<\\/", "</"))
    return data


@pytest.mark.parametrize("prefix", ["/js/", "/js-delayed/"])
async def test_script_built_pages(
    quotes_site: QuotesSite, client: httpx.AsyncClient, prefix: str
) -> None:
    pages = await walk(client, prefix)
    assert [p for p, _ in pages] == [prefix] + [f"{prefix}page/{n}/" for n in range(2, 11)]
    data = []
    for _, tree in pages:
        assert not tree.css("div.quote")  # nothing without running the script
        data += script_data(tree)
        script = text_of(tree.css_first("script"))
        assert ("setTimeout" in script) == (prefix == "/js-delayed/")
    assert [(d["text"], d["author"]["name"], tuple(d["tags"])) for d in data] == [
        (q.text, q.author, q.tags) for q in quotes_site.quotes()
    ]


async def dump_dom(url: str) -> LexborHTMLParser:
    """The DOM headless Chromium builds for ``url``, its scripts and timers run."""
    try:
        browser = find_browser()
    except ConfigError:
        pytest.skip("Chromium is not installed (apt-get install chromium-headless-shell)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    with trio.fail_after(60):
        done = await trio.run_process(
            [browser, *flags, "--dump-dom", url], capture_stdout=True, capture_stderr=True
        )
    return LexborHTMLParser(done.stdout)


async def test_scripts_build_the_quotes_in_a_browser(quotes_site: QuotesSite) -> None:
    quotes = quotes_site.quotes()
    for path in ("/js/page/2/", "/js-delayed/page/2/"):
        assert scrape_quotes(await dump_dom(quotes_site.base + path)) == expected(quotes[10:20])
    scrolled = scrape_quotes(await dump_dom(quotes_site.base + "/scroll"))
    assert len(scrolled) >= 10 and scrolled == expected(quotes[: len(scrolled)])
    assert quotes_site.count("GET", "/api/quotes?page=1") == 1


async def test_tableful_pages(quotes_site: QuotesSite, client: httpx.AsyncClient) -> None:
    path: str | None = "/tableful/"
    rows: list[str] = []
    tag_links: list[list[str]] = []
    visited = 0
    while path is not None:
        tree = parse(await client.get(path))
        assert not tree.css("div.quote")
        cells = tree.css("table td")
        for cell in cells[:-1]:  # the last row is the pager
            rows.append(text_of(cell))
            if text_of(cell).startswith("Tags:"):
                tag_links.append([text_of(a) for a in cell.css("a")])
        pager = {text_of(a): str(a.attributes["href"]) for a in cells[-1].css("a")}
        path = pager.get("Next")
        visited += 1
    assert visited == 10
    quotes = quotes_site.quotes()
    assert rows[0::3] == [q.text for q in quotes]
    assert rows[1::3] == [f"Author: {q.author}" for q in quotes]
    assert tag_links == [list(q.tags) for q in quotes]
    assert all(
        not td.attributes.get("class") for td in parse(await client.get("/tableful/")).css("td")
    )


# ---- protocol


async def test_robots_404_405_and_head(client: httpx.AsyncClient) -> None:
    robots = await client.get("/robots.txt")
    assert robots.status_code == 200 and "Allow: /" in robots.text
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.post("/page/2/", data={"a": "b"})).status_code == 405
    head = await client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len((await client.get("/")).content)


async def test_keep_alive_pipelining_and_close(quotes_site: QuotesSite) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", int(quotes_site.base.rsplit(":", 1)[1]))
    async with stream:
        request = b"GET /robots.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        post = (
            b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
            b"urlencoded\r\nContent-Length: 7\r\n\r\nauthor="
        )
        last = b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        await stream.send_all(request + post + request + last)
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    statuses = re.findall(rb"^HTTP/1\.1 (\d+)", received, re.M)
    assert statuses == [b"200", b"400", b"200", b"404"]
    assert b"Connection: close" in received
    assert [r.path for r in quotes_site.log[-4:]] == [
        "/robots.txt",
        "/search",
        "/robots.txt",
        "/nowhere",
    ]
    assert quotes_site.log[-3].form == {"author": ""}


async def test_serve_quotes_site_with_nursery_start(nursery: trio.Nursery) -> None:
    site = QuotesSite(quotes=25, seed=3)
    base = await nursery.start(functools.partial(serve_quotes_site, site=site))
    assert base == site.base and base.startswith("http://127.0.0.1:")
    other = await nursery.start(functools.partial(serve_quotes_site, quotes=25, seed=3))
    async with httpx.AsyncClient(trust_env=False) as client:
        one = await client.get(base + "/page/3/")
        two = await client.get(other + "/page/3/")
    assert one.content == two.content and len(scrape_quotes(parse(one))) == 5
    assert site.count("GET", "/page/3/") == 1


# ---- from synchronous code and as a process


def test_serve_in_thread() -> None:
    with serve_in_thread(quotes=12, seed=5) as site, httpx.Client(trust_env=False) as client:
        tree = parse(client.get(site.base + "/page/2/"))
        assert scrape_quotes(tree) == expected(site.quotes()[10:])
    assert [r.path for r in site.log] == ["/page/2/"]
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(site.base + "/")


def test_runs_as_a_process() -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quotes", "20", "--seed", "9"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        base = process.stdout.readline().decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
        with httpx.Client(trust_env=False) as client:
            api = client.get(base + "/api/quotes?page=2").json()
        assert api == QuotesSite(quotes=20, seed=9).api_pages()[1]
    finally:
        process.kill()  # by its pid
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
