"""The crawl's cookie jar: one for the whole crawl, whatever runs its pages.

A :class:`SessionJar` holds the cookies servers set (an ``httpx.Cookies``, so the standard
library's cookie rules: domains, paths, expiry, ``Secure``) and a ``version`` that changes
with them. In one process the fetcher's jar is the crawl's. With worker processes the
crawler's process keeps the jar (its own fetcher's): each worker process has a copy, which
the crawler replaces before the next job it sends there whenever the jar's version moved on
since that process last got it (nothing is sent while no cookie was ever set: most crawls);
a worker process records each ``Set-Cookie`` its pages received (:data:`SET_COOKIES`) and
sends them back with the page's outcome, where they are applied to the crawler's jar
(:meth:`SessionJar.take`). So a cookie a page set in one worker process is sent by the
pages that start after its outcome came back, in every process.

With ``--state`` the jar is kept in the state with its commits (:meth:`dumps` /
:meth:`loads`), so a resumed crawl starts with the cookies it had.
"""

from __future__ import annotations

import contextvars
import http.cookiejar
from collections.abc import Iterable
from typing import Any

import httpx
import orjson

__all__ = ["MAX_COOKIES", "SET_COOKIES", "SessionJar"]

#: The most cookies the jar keeps (as browsers bound theirs): past it, expired ones go, then
#: as many others as it takes (the first in the jar's order: by domain, path and name).
MAX_COOKIES = 3000

#: Where a worker process's task records the ``Set-Cookie`` headers its pages received, as
#: ``(url, [header values])`` (None: not recorded; the crawler's own process needs not).
SET_COOKIES: contextvars.ContextVar[list[tuple[str, list[str]]] | None] = contextvars.ContextVar(
    "SET_COOKIES", default=None
)

# http.cookiejar.Cookie's constructor arguments, in order (its `rest` is the `_rest` attribute).
_FIELDS = (
    "version",
    "name",
    "value",
    "port",
    "port_specified",
    "domain",
    "domain_specified",
    "domain_initial_dot",
    "path",
    "path_specified",
    "secure",
    "expires",
    "discard",
    "comment",
    "comment_url",
    "rest",
    "rfc2109",
)


class SessionJar:
    """The crawl's cookies (see the module's text).

    Attributes:
        cookies: the jar, as httpx reads and fills it.
        version: changes whenever the cookies may have (a cookie set, the jar loaded).
        used: whether a cookie was ever set or loaded (until then requests skip the jar).
    """

    def __init__(self) -> None:
        self.cookies = httpx.Cookies()
        self.version = 0
        self.used = False

    def __len__(self) -> int:
        return len(self.cookies.jar)

    def extract(self, response: httpx.Response) -> None:
        """Take the cookies ``response`` sets (its request is the URL that answered)."""
        self.cookies.extract_cookies(response)
        self._changed()
        recorded = SET_COOKIES.get()
        if recorded is not None:
            recorded.append((str(response.request.url), response.headers.get_list("set-cookie")))

    def take(self, changes: Iterable[tuple[str, list[str]]]) -> None:
        """Apply ``Set-Cookie`` headers a worker process's page received, as ``(url, values)``
        in the order they came (:data:`SET_COOKIES`)."""
        for url, values in changes:
            request = httpx.Request("GET", url)
            headers = [("set-cookie", value) for value in values]
            self.cookies.extract_cookies(httpx.Response(200, headers=headers, request=request))
        self._changed()

    def _changed(self) -> None:
        self.used = True
        self.version += 1
        jar = self.cookies.jar
        if len(jar) > MAX_COOKIES:
            jar.clear_expired_cookies()
            extra = len(jar) - MAX_COOKIES
            if extra > 0:
                for cookie in list(jar)[:extra]:
                    jar.clear(cookie.domain, cookie.path, cookie.name)

    def dump(self) -> list[list[Any]]:
        """The cookies as JSON values (one list of fields per cookie)."""
        return [
            [cookie._rest if name == "rest" else getattr(cookie, name) for name in _FIELDS]  # type: ignore[attr-defined]
            for cookie in self.cookies.jar
        ]

    def load(self, cookies: Iterable[list[Any]]) -> None:
        """Replace the cookies with those :meth:`dump` gave (expired ones are dropped).

        Raises:
            ValueError: a cookie is not as :meth:`dump` writes them.
        """
        jar = self.cookies.jar
        loaded = []
        for fields in cookies:
            if not isinstance(fields, list | tuple) or len(fields) != len(_FIELDS):
                raise ValueError(f"not a cookie: {fields!r}")
            cookie = http.cookiejar.Cookie(*fields)
            if not cookie.is_expired():
                loaded.append(cookie)
        jar.clear()
        for cookie in loaded:
            jar.set_cookie(cookie)
        self.used = self.used or bool(loaded)
        self.version += 1

    def dumps(self) -> str:
        """:meth:`dump` as JSON text (what a state keeps)."""
        return orjson.dumps(self.dump()).decode()

    def loads(self, text: str) -> None:
        """:meth:`load` from JSON text.

        Raises:
            ValueError: the text is not a jar :meth:`dumps` wrote.
        """
        value = orjson.loads(text)
        if not isinstance(value, list):
            raise ValueError("not a cookie jar")  # noqa: TRY004 (the state's text is wrong)
        self.load(value)
