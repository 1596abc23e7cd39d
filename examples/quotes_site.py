"""A loopback "quotes to scrape" site: the test bed for the scraper's tests and benchmarks.

A self-contained HTTP/1.1 server on 127.0.0.1, written on Trio (``trio.serve_tcp`` and a small
parser of its own: keep-alive, pipelining, ``Content-Length`` bodies), modelled on the public
scraping sandboxes. Its data (quotes, authors, tags) is made deterministically from a seed, and
:class:`QuotesSite` gives all of it as ground truth, so a test can check a scrape's items
exactly: every item once, none extra. Pages that do not depend on a session are rendered to
bytes once, at start-up.

URL map (every page is linked from another, as a real site links it):

=============================  =================================================================
``/``, ``/page/N/``            listing, 10 quotes a page; ``li.next`` / ``li.previous`` links
                               (``/page/1/`` answers like ``/``; page 2's "previous" links ``/``)
``/author/SLUG/``              author detail; ``<base href="/author/">`` and relative links
``/tag/TAG/page/N/``           the quotes with a tag, 10 a page (``/tag/TAG/`` answers page 1)
``/login``                     GET: form with a per-visit ``csrf_token``; POST: log in (302 to /)
``/logout``                    ends the session (302 to /)
``/goodreads/quote/ID/``       a quote's private page: only when logged in (else 302 to /login)
``/search``                    ASP.NET-like form: GET step 1, POST step 2 (tags), POST results
``/scroll``                    infinite scroll page: quotes only through its script and the API
``/api/quotes?page=N``         JSON: ``{"quotes": [...], "page": N, "has_next": bool}``
``/js/``, ``/js/page/N/``      the listing built by a script from a JS array
``/js-delayed/`` (+ page/N/)   the same, after a 2-second ``setTimeout``
``/tableful/`` (+ page/N/)     the listing as a ``<table>`` with no semantic classes
``/robots.txt``                allows everything
=============================  =================================================================

Anything else answers 404; a known path with the wrong method answers 405.

Quotes without tags have no ``<div class="tags">`` at all (a field missing on some items).
Logged in (``session`` cookie), listing and tag pages show each quote's
``<a class="goodreads">`` link and a Logout link instead of Login.

Use it from a test::

    site = QuotesSite(quotes=100, seed=7)
    base = await nursery.start(site.serve)          # "http://127.0.0.1:PORT"
    ... scrape base ...
    assert {q.text for q in scraped} == {q.text for q in site.quotes()}
    assert site.count("GET", "/author/ada-lovelace/") == 1

or with ``await nursery.start(functools.partial(serve_quotes_site, quotes=30))``; from
synchronous code (a CLI test running its own ``trio.run``) with :func:`serve_in_thread`; or as
a process: ``python examples/quotes_site.py [--port N] [--quotes N] [--seed S]`` prints its URL
on its first line and serves until Ctrl-C (or until its pid is signalled).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import html
import json
import random
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import parse_qs

import trio

__all__ = [
    "DEFAULT_SEED",
    "PASSWORD",
    "PER_PAGE",
    "Author",
    "Quote",
    "QuotesSite",
    "SiteRequest",
    "serve_in_thread",
    "serve_quotes_site",
]

DEFAULT_SEED: Final = 2024
PER_PAGE: Final = 10
#: Any non-empty user name logs in with this password.
PASSWORD: Final = "secret"
_MAX_HEAD: Final = 16 * 1024
_MAX_BODY: Final = 1024 * 1024
_MAX_SESSIONS: Final = 10_000  # past this, the oldest session is forgotten

# --------------------------------------------------------------------------------------------
# The data


@dataclasses.dataclass(frozen=True)
class Author:
    name: str
    slug: str
    born_date: str  # as the page shows it: "March 14, 1879"
    born_location: str  # as the page shows it: "Ulm, Germany"
    description: str

    def item(self) -> dict[str, str]:
        """The author as a scraper's item: its fields by name."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Quote:
    id: int  # 1.. in listing order
    text: str  # exactly the text of ``span.text``
    author: str  # the author's name (``small.author``)
    author_slug: str  # the detail page is /author/SLUG/
    tags: tuple[str, ...]  # in page order; () when the quote has no tags div
    page: int  # the listing page (/page/N/) that shows it

    @property
    def author_url(self) -> str:
        return f"/author/{self.author_slug}/"

    @property
    def goodreads(self) -> str:
        """The private link (``a.goodreads``) logged-in pages show."""
        return f"/goodreads/quote/{self.id}/"

    def item(self) -> dict[str, Any]:
        """The quote as a scraper's item: text, author, author_slug, tags (a list, empty when
        the page has no tags div)."""
        return {
            "text": self.text,
            "author": self.author,
            "author_slug": self.author_slug,
            "tags": list(self.tags),
        }


_FIRST = [
    "Ada", "Émile", "Jürgen", "Zoë", "Søren", "José", "Margarethe", "Olu", "Ingrid", "Tomás",
    "Amara", "Lucien", "Hélène", "Björn", "Priya", "Kwame", "Anaïs", "Mateo", "Freya", "Rafael",
    "Noor", "Céline", "Otto", "Imogen", "Dmitri", "Léa", "Yusuf", "Clara", "Sebastián", "Maren",
]  # fmt: skip
_LAST = [
    "Lovelace", "Durand", "Müller", "Brontë", "Kierkegaard", "Núñez", "Okafor", "Lindqvist",
    "Fontaine", "Østergaard", "Castellanos", "Weiß", "Moreau", "Haddad", "Adeyemi", "Novák",
    "Ferreira", "Sørensen", "Quinn", "Janssen", "Kowalczyk", "Dubois", "Marlowe", "Çelik",
    "Rossi", "Whitfield", "Ibáñez", "Thorne", "Vasquez", "Lehmann",
]  # fmt: skip
# CJK names, always among the authors (with their slugs' romanization).
_CJK = [("王小明", "wang-xiaoming"), ("佐藤 花子", "sato-hanako"), ("김민준", "kim-minjun")]
_TAGS = [
    "love", "life", "inspirational", "humor", "books", "reading", "friendship", "truth",
    "wisdom", "hope", "music", "writing", "philosophy", "happiness", "change", "courage",
    "death", "faith", "imagination", "knowledge", "art", "time", "dreams", "success",
    "simile", "poetry", "science", "nature", "politics", "learning", "silence", "memory",
    "travel", "food", "kindness", "war", "freedom", "be-yourself", "paraphrased", "misattributed",
]  # fmt: skip
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
_PLACES = [
    "Zürich, Switzerland", "São Paulo, Brazil", "Kraków, Poland", "Kyoto, Japan",
    "Montréal, Canada", "Lagos, Nigeria", "Ulm, Germany", "Reykjavík, Iceland", "Lyon, France",
    "Edinburgh, Scotland", "Córdoba, Argentina", "Seoul, South Korea", "Bergen, Norway",
    "Porto, Portugal", "Chengdu, China", "Cairo, Egypt", "Oaxaca, Mexico", "Tartu, Estonia",
]  # fmt: skip
_TRADES = [
    "novelist", "poet", "physicist", "essayist", "composer", "philosopher", "playwright",
    "mathematician", "painter", "historian", "botanist", "journalist",
]  # fmt: skip
_SUBJECTS = [
    "The world", "A good friend", "Every book", "Life", "Love", "The café on the corner", "Time",
    "A smile", "Silence", "Courage", "The truth", "Music", "A garden", "Memory", "Übermut",
    "Hope", "Kindness", "A quiet mind", "The sea", "Knowledge",
]  # fmt: skip
_VERBS = [
    "is", "becomes", "remains", "teaches us", "was never", "is only", "will always be",
    "hides", "is worth",
]  # fmt: skip
_OBJECTS = [
    "a mirror of the soul", "the art of the possible", "what you make of it",
    "a door left open", "the shortest road home", "bread & salt for the heart",
    "a song nobody finished", "the naïve courage of children", "a lamp in the fog",
    "a debt paid in laughter", "the map, not the territory", "a letter to the future",
    "the rest between two notes", "a bridge across the dark", "older than we think",
    "the reason we keep walking", "enough, most days",
]  # fmt: skip
_ENDINGS = [
    ".", ".", ".", ". Mostly.", " — and that is enough.", ", as my grandmother said.",
    " — or so they tell me.", "; believe it.", "!",
]  # fmt: skip


def _slugify(name: str) -> str:
    folded = name.replace("ß", "ss").replace("ø", "o").replace("Ø", "O")
    ascii_name = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in ascii_name).split()
    return "-".join(words).lower()


def _date(rng: random.Random) -> str:
    return f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}, {rng.randint(1700, 1990)}"


def _make_authors(rng: random.Random, count: int) -> list[Author]:
    names: list[tuple[str, str]] = list(_CJK[: min(len(_CJK), count)])
    seen = {slug for _, slug in names}
    while len(names) < count:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        slug = _slugify(name)
        if slug not in seen:
            seen.add(slug)
            names.append((name, slug))
    rng.shuffle(names)
    authors = []
    for name, slug in names:
        place = rng.choice(_PLACES)
        trade = rng.choice(_TRADES)
        description = (
            f"{name} was a {trade} born in {place.split(',')[0]}. "
            f"Known for “{rng.choice(_OBJECTS)}”, {name.split()[0]} wrote "
            f"{rng.randint(2, 40)} books — most of them about {rng.choice(_TAGS)}."
        )
        authors.append(Author(name, slug, _date(rng), place, description))
    return authors


def _quote_text(rng: random.Random, taken: set[str], number: int) -> str:
    for _ in range(50):
        subject, verb, thing = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        if rng.random() < 0.15:
            text = f"{subject} {verb} what they call “{thing}”{rng.choice(_ENDINGS)}"
        else:
            text = f"{subject} {verb} {thing}{rng.choice(_ENDINGS)}"
        if text not in taken:
            return text
    return f"{subject} {verb} {thing}, for the {number}th time."  # a large site: still unique


def _make_quotes(rng: random.Random, count: int, authors: list[Author]) -> list[Quote]:
    # Every author has a quote; the rest go mostly to a few (a Zipf-like skew), so that many
    # quotes share an author.
    picks = list(range(len(authors)))
    weights = [1 / (rank + 1) for rank in range(len(authors))]
    picks += rng.choices(range(len(authors)), weights, k=count - len(picks))
    rng.shuffle(picks)
    tag_weights = [1 / (rank + 1) for rank in range(len(_TAGS))]
    taken: set[str] = set()
    quotes = []
    for index, pick in enumerate(picks):
        text = _quote_text(rng, taken, index + 1)
        taken.add(text)
        tags: list[str] = []
        if rng.random() >= 0.12:  # about one quote in eight has no tags
            want = rng.randint(1, 4)
            while len(tags) < want:
                tag = rng.choices(_TAGS, tag_weights)[0]
                if tag not in tags:
                    tags.append(tag)
        author = authors[pick]
        quotes.append(
            Quote(index + 1, text, author.name, author.slug, tuple(tags), index // PER_PAGE + 1)
        )
    return quotes


def _pages(count: int) -> int:
    return max(1, -(-count // PER_PAGE))


# --------------------------------------------------------------------------------------------
# Rendering

_Response = tuple[int, bytes, bytes]  # status, head lines (no blank line), body
_REASONS: Final = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}
_HTML: Final = "text/html; charset=utf-8"
_e = html.escape

_STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}"
    ".quote{border:1px solid #ccc;border-radius:5px;padding:.6em;margin:.8em 0}"
    ".text{display:block;font-style:italic}.tag{margin-right:.4em}.error{color:#a00}"
)


def _response(
    status: int,
    body: bytes,
    content_type: str | None = _HTML,
    headers: dict[str, str] | None = None,
) -> _Response:
    head = f"HTTP/1.1 {status} {_REASONS[status]}\r\nServer: quotes-site\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    return status, head.encode("latin-1"), body


def _document(title: str, body: str, *, logged_in: bool = False, base: str | None = None) -> bytes:
    account = (
        '<a href="/logout">Logout</a>' if logged_in else '<a href="/login">Login</a>'
    )  # root-relative, so that a page's <base> does not change them
    base_tag = f'<base href="{base}">' if base else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="UTF-8">\n'
        f"<title>{_e(title)}</title>{base_tag}\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        '<div class="header"><h1><a href="/" style="text-decoration:none">Quotes to Scrape</a>'
        f'</h1><p class="account">{account}</p></div>\n'
        f"{body}\n"
        '<footer class="footer"><p>Also: <a href="/scroll">scroll</a> · '
        '<a href="/js/">js</a> · <a href="/js-delayed/">js-delayed</a> · '
        '<a href="/tableful/">tableful</a> · <a href="/search">search</a></p>'
        "<p>Made with quotes_site.py</p></footer>\n</body>\n</html>\n"
    ).encode()


def _quote_html(quote: Quote, logged_in: bool) -> str:
    parts = [
        '<div class="quote" itemscope itemtype="http://schema.org/CreativeWork">\n',
        f'  <span class="text" itemprop="text">{_e(quote.text)}</span>\n',
        f'  <span>by <small class="author" itemprop="author">{_e(quote.author)}</small>\n',
        f'  <a href="{quote.author_url}">(about)</a>\n',
    ]
    if logged_in:
        parts.append(f'  <a class="goodreads" href="{quote.goodreads}">(Goodreads page)</a>\n')
    parts.append("  </span>\n")
    if quote.tags:
        links = "".join(f'<a class="tag" href="/tag/{t}/page/1/">{t}</a> ' for t in quote.tags)
        keywords = ",".join(quote.tags)
        parts.append(
            f'  <div class="tags">Tags: <meta class="keywords" itemprop="keywords" '
            f'content="{keywords}"> {links}</div>\n'
        )
    parts.append("</div>\n")
    return "".join(parts)


def _pager(previous: str | None, following: str | None) -> str:
    items = []
    if previous is not None:
        items.append(f'<li class="previous"><a href="{previous}">← Previous</a></li>')
    if following is not None:
        items.append(f'<li class="next"><a href="{following}">Next →</a></li>')
    return f'<nav><ul class="pager">{"".join(items)}</ul></nav>'


def _page_url(prefix: str, number: int, first: str) -> str:
    return first if number == 1 else f"{prefix}page/{number}/"


def _js_array(quotes: list[Quote]) -> str:
    data = [
        {
            "text": q.text,
            "author": {"name": q.author, "slug": q.author_slug},
            "tags": list(q.tags),
        }
        for q in quotes
    ]
    # Safe inside <script>: no "</" can close the element early.
    return json.dumps(data, ensure_ascii=False).replace("</", "<\\/")


_JS_BUILD = """
function showQuotes(data) {
  var box = document.getElementById("quotes");
  for (var i = 0; i < data.length; i++) {
    var q = data[i], div = document.createElement("div");
    div.className = "quote";
    var text = document.createElement("span");
    text.className = "text"; text.textContent = q.text; div.appendChild(text);
    var by = document.createElement("span"); by.appendChild(document.createTextNode("by "));
    var author = document.createElement("small");
    author.className = "author"; author.textContent = q.author.name; by.appendChild(author);
    var about = document.createElement("a");
    about.href = "/author/" + q.author.slug + "/"; about.textContent = "(about)";
    by.appendChild(document.createTextNode(" ")); by.appendChild(about); div.appendChild(by);
    if (q.tags.length) {
      var tags = document.createElement("div");
      tags.className = "tags"; tags.appendChild(document.createTextNode("Tags: "));
      for (var j = 0; j < q.tags.length; j++) {
        var a = document.createElement("a");
        a.className = "tag"; a.href = "/tag/" + q.tags[j] + "/page/1/";
        a.textContent = q.tags[j]; tags.appendChild(a);
        tags.appendChild(document.createTextNode(" "));
      }
      div.appendChild(tags);
    }
    box.appendChild(div);
  }
}
"""

_SCROLL_SCRIPT = """
var nextPage = 1, loading = false, done = false;
async function loadMore() {
  if (loading || done) return;
  loading = true;
  document.getElementById("loading").style.display = "block";
  var answer = await fetch("/api/quotes?page=" + nextPage);
  var data = await answer.json();
  showQuotes(data.quotes);
  nextPage = data.page + 1; done = !data.has_next; loading = false;
  document.getElementById("loading").style.display = "none";
  if (!done && document.body.scrollHeight <= window.innerHeight + 50) loadMore();
}
window.addEventListener("scroll", function () {
  if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 100) loadMore();
});
loadMore();
"""


# --------------------------------------------------------------------------------------------
# The site


@dataclasses.dataclass
class SiteRequest:
    """One request as the server saw it."""

    method: str
    path: str  # the request target, query included
    cookie: str | None  # the Cookie header
    headers: dict[str, str]  # names in lower case
    form: dict[str, str] | None  # a POST's urlencoded fields (first value of each)
    at: float  # trio.current_time() when it was read


@dataclasses.dataclass
class _Session:
    csrf: str | None = None
    user: str | None = None


class QuotesSite:
    """The site's data (its ground truth), its pages, its sessions and its request log.

    ``quotes`` quotes by ``min(50, quotes // 2)`` authors (at least one), every author with at
    least one quote, made from ``seed`` alone: two sites with the same arguments hold the same
    data. Serve it with ``await nursery.start(site.serve)``.

    Every request is appended to ``log``; a long benchmark passes ``log_requests=False``
    (a million requests would hold a million headers dicts).
    """

    def __init__(
        self, quotes: int = 100, seed: int = DEFAULT_SEED, *, log_requests: bool = True
    ) -> None:
        if quotes < 1:
            raise ValueError("a quotes site needs at least one quote")
        rng = random.Random(seed)
        self._authors = _make_authors(rng, min(50, max(1, quotes // 2)))
        self._quotes = _make_quotes(rng, quotes, self._authors)
        self._by_slug = {a.slug: a for a in self._authors}
        self._by_name = {a.name: a for a in self._authors}
        self._by_tag: dict[str, list[Quote]] = {}
        for quote in self._quotes:
            for tag in quote.tags:
                self._by_tag.setdefault(tag, []).append(quote)
        self._secret = hashlib.sha256(f"quotes-site viewstate {seed}".encode()).digest()
        self.log_requests = log_requests
        #: Every request the server read, in order (when ``log_requests``).
        self.log: list[SiteRequest] = []
        self.base = ""  # "http://127.0.0.1:PORT" once serving
        self._sessions: dict[str, _Session] = {}
        # path -> (logged out, logged in) answers, rendered once
        self._static: dict[str, tuple[_Response, _Response]] = {}
        self._render_static()

    # ---- ground truth

    def quotes(self) -> list[Quote]:
        """All quotes, in listing order."""
        return list(self._quotes)

    def authors(self) -> list[Author]:
        """All authors (each has a detail page and at least one quote), sorted by name."""
        return sorted(self._authors, key=lambda a: a.name)

    def author(self, name_or_slug: str) -> Author:
        return self._by_slug.get(name_or_slug) or self._by_name[name_or_slug]

    def tags(self) -> list[str]:
        """The tags some quote has (each has tag pages), sorted."""
        return sorted(self._by_tag)

    def tagged(self, tag: str) -> list[Quote]:
        """The quotes with ``tag``, in the order its tag pages show them."""
        return list(self._by_tag.get(tag, []))

    def author_tags(self, author: str) -> list[str]:
        """The tags of ``author``'s quotes (the search form's second select), sorted."""
        return sorted({t for q in self._quotes if q.author == author for t in q.tags})

    def search(self, author: str, tag: str) -> list[Quote]:
        """The search form's result for ``author`` and ``tag``."""
        return [q for q in self._quotes if q.author == author and tag in q.tags]

    def listing_pages(self) -> int:
        """How many listing pages (/page/1/ .. /page/N/) there are."""
        return _pages(len(self._quotes))

    def tag_pages(self, tag: str) -> int:
        return _pages(len(self._by_tag[tag]))

    def api_pages(self) -> list[dict[str, Any]]:
        """What ``/api/quotes?page=N`` answers, for N = 1 .. listing_pages()."""
        return [self._api_page(n) for n in range(1, self.listing_pages() + 1)]

    def urls(self) -> list[str]:
        """The paths of every HTML page a crawl following links from ``/`` can reach while
        logged out, as the links name them (no ``/page/1/``, ``/tag/T/``, login POSTs)."""
        paths = ["/"] + [f"/page/{n}/" for n in range(2, self.listing_pages() + 1)]
        paths += [f"/author/{a.slug}/" for a in self._authors]
        for tag in self.tags():
            paths += [f"/tag/{tag}/page/{n}/" for n in range(1, self.tag_pages(tag) + 1)]
        for prefix in ("/js/", "/js-delayed/", "/tableful/"):
            paths += [_page_url(prefix, n, prefix) for n in range(1, self.listing_pages() + 1)]
        return [*paths, "/login", "/search", "/scroll"]

    # ---- request log

    def requests(self, method: str | None = None, path: str | None = None) -> list[SiteRequest]:
        """Logged requests, filtered by method and/or exact target."""
        return [
            r
            for r in self.log
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.requests(method, path))

    # ---- serving

    async def serve(
        self, port: int = 0, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve on 127.0.0.1:``port`` (0: a free one) until cancelled; ``task_status``
        gets the base URL, also kept in ``self.base``."""
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.base = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        async with trio.open_nursery() as nursery:
            task_status.started(self.base)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                end = buffer.find(b"\r\n\r\n")
                while end < 0:
                    if len(buffer) > _MAX_HEAD:
                        await self._send(stream, _response(431, b""), close=True)
                        return
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    end = buffer.find(b"\r\n\r\n")
                head, buffer = buffer[:end], buffer[end + 4 :]
                parsed = _parse_head(head)
                if parsed is None:
                    await self._send(stream, _response(400, b"bad request\n", "text/plain"), True)
                    return
                method, target, version, headers = parsed
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    await self._send(stream, _response(501, b"", None), close=True)
                    return
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY:
                    await self._send(stream, _response(413, b"", None), close=True)
                    return
                while len(buffer) < length:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                connection = headers.get("connection", "").lower()
                keep = "close" not in connection and (
                    version == "HTTP/1.1" or "keep-alive" in connection
                )
                answer = self._answer(method, target, headers, body)
                await self._send(stream, answer, close=not keep, head_only=method == "HEAD")
                if not keep:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    @staticmethod
    async def _send(
        stream: trio.SocketStream, answer: _Response, close: bool = False, head_only: bool = False
    ) -> None:
        _, head, body = answer
        extra = b"Connection: close\r\n" if close else b""
        await stream.send_all(head + extra + b"\r\n" + (b"" if head_only else body))

    # ---- routing

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        path, _, query = target.partition("?")
        cookie = headers.get("cookie")
        form = None
        if method == "POST" and "urlencoded" in headers.get("content-type", ""):
            fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {name: values[0] for name, values in fields.items()}
        if self.log_requests:
            self.log.append(SiteRequest(method, target, cookie, headers, form, trio.current_time()))
        session_id, session = self._session(cookie)
        logged_in = session is not None and session.user is not None
        if method in ("GET", "HEAD"):
            static = self._static.get(path)
            if static is not None:
                return static[logged_in]
            if path == "/api/quotes":
                return self._api(query)
            if path == "/login":
                return self._login_form(session_id, session, error=None)
            if path == "/logout":
                if session_id is not None:
                    self._sessions.pop(session_id, None)
                cleared = "session=; Path=/; Max-Age=0; HttpOnly"
                return _response(302, b"", None, {"Location": "/", "Set-Cookie": cleared})
            if path == "/search":
                return self._search_page(author=None, view_state={"step": 1}, logged_in=logged_in)
            if path.startswith("/goodreads/quote/"):
                return self._goodreads(path, logged_in)
        elif method == "POST":
            if path == "/login":
                return self._login(session_id, session, form or {})
            if path == "/search":
                return self._search(form or {}, logged_in)
        if path in self._static or path in ("/api/quotes", "/login", "/logout", "/search"):
            return _response(405, b"method not allowed\n", "text/plain", {"Allow": "GET, HEAD"})
        return self._not_found

    def _session(self, cookie: str | None) -> tuple[str | None, _Session | None]:
        if not cookie:
            return None, None
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session" and value in self._sessions:
                return value, self._sessions[value]
        return None, None

    # ---- log-in

    def _login_form(
        self, session_id: str | None, session: _Session | None, error: str | None
    ) -> _Response:
        extra = {}
        if session_id is None or session is None:
            session_id, session = secrets.token_urlsafe(16), _Session()
            self._sessions[session_id] = session
            if len(self._sessions) > _MAX_SESSIONS:  # a benchmark visiting /login: bounded
                del self._sessions[next(iter(self._sessions))]
            extra["Set-Cookie"] = f"session={session_id}; Path=/; HttpOnly"
        session.csrf = secrets.token_hex(16)  # a new one per visit
        message = f'<div class="error">{_e(error)}</div>\n' if error else ""
        body = (
            f"<h2>Login</h2>\n{message}"
            '<form action="/login" method="post" accept-charset="utf-8">\n'
            f'<input type="hidden" name="csrf_token" value="{session.csrf}">\n'
            '<label for="username">Username</label>'
            '<input type="text" id="username" name="username">\n'
            '<label for="password">Password</label>'
            '<input type="password" id="password" name="password">\n'
            '<input type="submit" value="Login">\n</form>\n'
            f"<p>Any user name with the password <code>{PASSWORD}</code> logs in.</p>"
        )
        page = _document("Quotes to Scrape: login", body, logged_in=session.user is not None)
        return _response(200, page, headers=extra)

    def _login(
        self, session_id: str | None, session: _Session | None, form: dict[str, str]
    ) -> _Response:
        token = form.get("csrf_token", "")
        expected = session.csrf if session is not None else None
        if session is not None:
            session.csrf = None  # a token is good for one try
        if session is None or not expected or not hmac.compare_digest(token, expected):
            return self._login_form(session_id, session, "Invalid or missing CSRF token.")
        if not form.get("username") or form.get("password") != PASSWORD:
            return self._login_form(session_id, session, "Invalid username or password.")
        if session_id is not None:
            self._sessions.pop(session_id, None)
        fresh = secrets.token_urlsafe(16)  # a new session id on log-in
        self._sessions[fresh] = _Session(user=form["username"])
        cookie = f"session={fresh}; Path=/; HttpOnly"
        return _response(302, b"", None, {"Location": "/", "Set-Cookie": cookie})

    def _goodreads(self, path: str, logged_in: bool) -> _Response:
        number = path.removeprefix("/goodreads/quote/").removesuffix("/")
        if (
            not number.isdigit()
            or not 1 <= int(number) <= len(self._quotes)
            or not path.endswith("/")
        ):
            return self._not_found
        if not logged_in:
            return _response(302, b"", None, {"Location": "/login"})
        quote = self._quotes[int(number) - 1]
        body = (
            f'<h2>Goodreads</h2><p class="private" data-private="{quote.id}">{_e(quote.text)}</p>'
        )
        return _response(200, _document("Goodreads", body, logged_in=True))

    # ---- the search form

    def _sign(self, state: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode())
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]
        return (payload + b"." + base64.urlsafe_b64encode(mac)).decode()

    def _verify(self, token: str) -> dict[str, Any] | None:
        payload, _, mac = token.encode("utf-8", "replace").partition(b".")
        good = base64.urlsafe_b64encode(
            hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]
        )
        if not payload or not hmac.compare_digest(mac, good):
            return None
        try:
            state = json.loads(base64.urlsafe_b64decode(payload))
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def _search_page(
        self,
        author: str | None,
        view_state: dict[str, Any],
        logged_in: bool,
        results: list[Quote] | None = None,
        tag: str | None = None,
    ) -> _Response:
        options = ['<option value="">----------</option>']
        for a in self.authors():
            selected = " selected" if a.name == author else ""
            options.append(f'<option value="{_e(a.name)}"{selected}>{_e(a.name)}</option>')
        parts = [
            "<h2>Search quotes</h2>\n",
            '<form action="search" method="post" id="search">\n',
            f'<input type="hidden" name="__VIEWSTATE" value="{self._sign(view_state)}">\n',
            '<label for="author">Author</label>\n<select name="author" id="author">\n',
            "\n".join(options),
            "\n</select>\n",
        ]
        if author is not None:
            tags = ['<option value="">----------</option>']
            for t in self.author_tags(author):
                selected = " selected" if t == tag else ""
                tags.append(f'<option value="{t}"{selected}>{t}</option>')
            parts += [
                '<label for="tag">Tag</label>\n<select name="tag" id="tag">\n',
                "\n".join(tags),
                "\n</select>\n",
            ]
        parts.append('<input type="submit" name="submit_button" value="Search">\n</form>\n')
        if results is not None:
            parts.append('<div class="results">\n')
            parts += [_quote_html(q, logged_in) for q in results]
            parts.append("</div>\n")
        page = _document("Quotes to Scrape: search", "".join(parts), logged_in=logged_in)
        return _response(200, page)

    def _search(self, form: dict[str, str], logged_in: bool) -> _Response:
        state = self._verify(form.get("__VIEWSTATE", ""))
        if state is None:
            return _response(400, b"missing or invalid __VIEWSTATE\n", "text/plain")
        author = form.get("author", "")
        if not author:  # nothing chosen yet: the same step again
            return self._search_page(None, {"step": 1}, logged_in)
        if author not in self._by_name:
            return _response(400, b"no such author\n", "text/plain")
        tag = form.get("tag", "")
        step_two = {"step": 2, "author": author}
        if state.get("step") != 2 or state.get("author") != author or not tag:
            return self._search_page(author, step_two, logged_in)
        results = self.search(author, tag)
        return self._search_page(author, step_two, logged_in, results, tag)

    # ---- the JSON API

    def _api_page(self, number: int) -> dict[str, Any]:
        chunk = self._quotes[(number - 1) * PER_PAGE : number * PER_PAGE] if number >= 1 else []
        return {
            "quotes": [
                {
                    "text": q.text,
                    "author": {"name": q.author, "slug": q.author_slug},
                    "tags": list(q.tags),
                }
                for q in chunk
            ],
            "page": number,
            "has_next": number * PER_PAGE < len(self._quotes),
        }

    def _api(self, query: str) -> _Response:
        values = parse_qs(query).get("page", ["1"])
        if not values[0].isdigit() or int(values[0]) < 1:
            return _response(
                400, b'{"error": "page must be a positive integer"}', "application/json"
            )
        number = int(values[0])
        if number <= len(self._api_cache):
            return self._api_cache[number - 1]
        body = json.dumps(self._api_page(number), ensure_ascii=False).encode()
        return _response(200, body, "application/json")

    # ---- pages rendered at start-up

    def _listing(
        self,
        title: str,
        quotes: list[Quote],
        number: int,
        last: int,
        prefix: str,
        first: str,
        logged_in: bool,
        *,
        heading: str = "",
    ) -> bytes:
        previous = _page_url(prefix, number - 1, first) if number > 1 else None
        following = _page_url(prefix, number + 1, first) if number < last else None
        body = (
            f'{heading}<div class="quotes">\n'
            + "".join(_quote_html(q, logged_in) for q in quotes)
            + "</div>\n"
            + _pager(previous, following)
        )
        return _document(title, body, logged_in=logged_in)

    def _both(self, render: Callable[[bool], bytes]) -> tuple[_Response, _Response]:
        return _response(200, render(False)), _response(200, render(True))

    def _same(self, answer: _Response) -> tuple[_Response, _Response]:
        return answer, answer

    def _render_static(self) -> None:
        last = self.listing_pages()
        pages = {n: self._quotes[(n - 1) * PER_PAGE : n * PER_PAGE] for n in range(1, last + 1)}
        static = self._static
        for n, chunk in pages.items():
            static[f"/page/{n}/"] = self._both(
                functools.partial(self._listing, "Quotes to Scrape", chunk, n, last, "/", "/")
            )
            script = (
                f"<script>var data = {_js_array(chunk)};\n{_JS_BUILD}\nshowQuotes(data);</script>"
            )
            delayed = (
                f"<script>var data = {_js_array(chunk)};\n{_JS_BUILD}\n"
                "setTimeout(function () { showQuotes(data); }, 2000);</script>"
            )
            for prefix, code in (("/js/", script), ("/js-delayed/", delayed)):
                previous = _page_url(prefix, n - 1, prefix) if n > 1 else None
                following = _page_url(prefix, n + 1, prefix) if n < last else None
                body = (
                    f'<div class="quotes" id="quotes"></div>\n{code}\n{_pager(previous, following)}'
                )
                page = _document("Quotes to Scrape (JavaScript)", body)
                static[_page_url(prefix, n, prefix)] = self._same(_response(200, page))
            static[f"/tableful/page/{n}/"] = self._same(_response(200, self._table(chunk, n, last)))
        static["/"] = static["/page/1/"]
        static["/tableful/"] = static["/tableful/page/1/"]
        static["/js/page/1/"] = static["/js/"]
        static["/js-delayed/page/1/"] = static["/js-delayed/"]

        for tag, tagged in self._by_tag.items():
            tag_last = _pages(len(tagged))
            for n in range(1, tag_last + 1):
                chunk = tagged[(n - 1) * PER_PAGE : n * PER_PAGE]
                prefix = f"/tag/{tag}/"
                heading = f'<h3>Viewing tag: <a href="{prefix}page/1/">{tag}</a></h3>\n'

                render = functools.partial(
                    self._listing, f"Quotes to Scrape: {tag}", chunk, n, tag_last, prefix,
                    f"{prefix}page/1/", heading=heading,
                )  # fmt: skip
                static[f"{prefix}page/{n}/"] = self._both(render)
            static[f"/tag/{tag}/"] = static[f"/tag/{tag}/page/1/"]

        for index, author in enumerate(self._authors):
            after = self._authors[(index + 1) % len(self._authors)]

            def author_page(logged_in: bool, a: Author = author, b: Author = after) -> bytes:
                body = (
                    '<div class="author-details">\n'
                    f'<h3 class="author-title">{_e(a.name)}</h3>\n'
                    f'<p><strong>Born:</strong> <span class="author-born-date">{a.born_date}'
                    f'</span> in <span class="author-born-location">{_e(a.born_location)}'
                    "</span></p>\n"
                    f'<div class="author-description">{_e(a.description)}</div>\n'
                    "</div>\n"
                    # Relative to <base href="/author/">: "../" is /, "SLUG/" is /author/SLUG/.
                    f'<p><a href="../">Back to the quotes</a> · '
                    f'<a class="next-author" href="{b.slug}/">Next author: {_e(b.name)}</a></p>'
                )
                return _document(
                    f"Quotes to Scrape: {a.name}", body, logged_in=logged_in, base="/author/"
                )

            static[f"/author/{author.slug}/"] = self._both(author_page)

        static["/scroll"] = self._same(
            _response(
                200,
                _document(
                    "Quotes to Scrape (infinite scroll)",
                    '<div class="quotes" id="quotes"></div>\n'
                    '<div id="loading" style="display:none">Loading…</div>\n'
                    f"<script>{_JS_BUILD}\n{_SCROLL_SCRIPT}</script>\n"
                    "<noscript>This page needs JavaScript: its quotes come from "
                    "/api/quotes.</noscript>",
                ),
            )
        )
        static["/robots.txt"] = self._same(
            _response(200, b"User-agent: *\nAllow: /\n", "text/plain; charset=utf-8")
        )
        self._api_cache = [
            _response(200, json.dumps(page, ensure_ascii=False).encode(), "application/json")
            for page in self.api_pages()
        ]
        self._not_found = _response(
            404, _document("Not found", "<h2>Not found</h2><p>No page here.</p>")
        )

    def _table(self, quotes: list[Quote], number: int, last: int) -> bytes:
        rows = []
        for q in quotes:
            tags = " ".join(f'<a href="/tag/{t}/page/1/">{t}</a>' for t in q.tags)
            rows.append(
                f'<tr style="border-bottom: 0px;"><td style="padding-top: 2em;">{_e(q.text)}'
                f"</td></tr>\n<tr><td>Author: {_e(q.author)}</td></tr>\n"
                f'<tr><td style="padding-bottom: 2em;">Tags: {tags}</td></tr>\n'
            )
        nav = []
        if number > 1:
            nav.append(
                f'<a href="{_page_url("/tableful/", number - 1, "/tableful/")}">Previous</a>'
            )
        if number < last:
            nav.append(f'<a href="/tableful/page/{number + 1}/">Next</a>')
        body = (
            '<table border="0" style="width: 100%">\n'
            + "".join(rows)
            + f"<tr><td>{' '.join(nav)}</td></tr>\n</table>"
        )
        return _document("Quotes to Scrape (table)", body)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    try:
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        return None
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


# --------------------------------------------------------------------------------------------
# Ways to run it


async def serve_quotes_site(
    *,
    port: int = 0,
    quotes: int = 100,
    seed: int = DEFAULT_SEED,
    site: QuotesSite | None = None,
    log_requests: bool = True,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve a quotes site on 127.0.0.1 until cancelled; for ``nursery.start``, which returns
    the base URL (``http://127.0.0.1:PORT``). Pass ``site`` to keep its log and ground truth
    at hand (``quotes``, ``seed`` and ``log_requests`` are then its own)."""
    if site is None:
        site = QuotesSite(quotes, seed, log_requests=log_requests)
    await site.serve(port=port, task_status=task_status)


@contextlib.contextmanager
def serve_in_thread(
    quotes: int = 100, seed: int = DEFAULT_SEED, *, port: int = 0
) -> Iterator[QuotesSite]:
    """Serve a quotes site from a thread running its own ``trio.run``, for synchronous code
    (a CLI test whose ``main()`` runs its own Trio loop); ``site.base`` is its URL. The server
    stops when the block ends. (The log is appended to from that thread: read it after.)"""
    site = QuotesSite(quotes, seed)
    ready = threading.Event()
    stop: list[Callable[[], None]] = []
    failure: list[BaseException] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            token = trio.lowlevel.current_trio_token()
            stop.append(lambda: token.run_sync_soon(nursery.cancel_scope.cancel))
            await nursery.start(site.serve, port)
            ready.set()

    def main() -> None:
        try:
            trio.run(run)
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="quotes-site", daemon=True)
    thread.start()
    ready.wait(30)
    if failure or not site.base:
        raise RuntimeError("the quotes site did not start") from (failure[0] if failure else None)
    try:
        yield site
    finally:
        stop[0]()
        thread.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the quotes test site on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--quotes", type=int, default=100, help="how many quotes (default 100)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the data's seed")
    args = parser.parse_args(argv)
    site = QuotesSite(args.quotes, args.seed, log_requests=False)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            base = await nursery.start(site.serve, args.port)
            print(base, flush=True)  # the first line: how a test learns the port
            print(
                f"{len(site.quotes())} quotes, {len(site.authors())} authors, "
                f"{len(site.tags())} tags; Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run)


if __name__ == "__main__":
    main()
