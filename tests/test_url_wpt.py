"""The crawler's URL handling held against the WHATWG URL standard's own test data.

``tests/data/urltestdata.json`` is web-platform-tests' ``url/resources/urltestdata.json``
(BSD-3-Clause, see ``tests/data/README.md``). Every case with an http(s) base or an http(s)
result goes through what the crawler does with such a string:

- with a base: the link resolver (:class:`LinkResolver`, the crawl's hot path), as an href
  found on a page whose base URL is the case's base: cold, and again with a warm cache;
- without a base: :func:`browser_url`, what seeds, sitemap entries and redirects go through.

The crawler agrees with the browser when it requests what the browser would load, fragment
removed: for an http(s) result, exactly that URL; for a result of another scheme, nothing
(the href is skipped); for a failure, nothing, counted as an invalid link (or a ValueError;
an href of another scheme, ``non-special://f:999999/c``, is skipped without being parsed, so
it is not counted).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from trio_scrape.model.urls import LinkResolver, browser_url

DATA = Path(__file__).parent / "data" / "urltestdata.json"

#: Cases (input, base) where the crawler and the standard differ, with the reason. None: the
#: crawler resolves every case as the browser does (ada-url implements the standard and the
#: fast path for plain paths agrees with it). Kept as a list so that a difference that appears
#: with a new ada-url or a new data file must be explained here and in docs/urls.md.
KNOWN_DIFFERENCES: dict[tuple[str, str | None], str] = {}


def _is_http(url: str | None) -> bool:
    return url is not None and url.startswith(("http:", "https:"))


def _cases() -> list[dict[str, Any]]:
    cases = [c for c in json.loads(DATA.read_text(encoding="utf-8")) if isinstance(c, dict)]
    return [c for c in cases if _is_http(c.get("base")) or _is_http(c.get("href"))]


CASES = _cases()
_WARM = LinkResolver()


def _expected(case: dict[str, Any]) -> str | None:
    """What the crawler should request: the result without its fragment; None for nothing."""
    if case.get("failure") or not _is_http(case["href"]):
        return None
    href: str = case["href"]
    return href.partition("#")[0]


def _crawler(case: dict[str, Any]) -> tuple[str | None, bool]:
    """What the crawler makes of the case: ``(URL requested or None, counted invalid)``."""
    base = case.get("base")
    if base is None:
        try:
            return browser_url(case["input"]), False
        except ValueError:
            return None, True
    links, invalid = LinkResolver().resolve(base, [case["input"]])
    assert _WARM.resolve(base, [case["input"]]) == (links, invalid), "a warm cache differs"
    assert len(links) + invalid <= 1
    return (links[0] if links else None), invalid == 1


def _other_scheme(href: str) -> bool:
    """An href with a scheme other than http(s): skipped without being parsed."""
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", href.strip("".join(map(chr, range(33)))))
    return scheme is not None and scheme.group()[:-1].lower() not in ("http", "https")


def _agrees(case: dict[str, Any]) -> bool:
    """The crawler requests what the browser would, and counts what fails to parse as an
    invalid link (except hrefs of other schemes, which it skips without parsing)."""
    url, invalid = _crawler(case)
    if url != _expected(case):
        return False
    if case.get("failure") and not (case.get("base") and _other_scheme(case["input"])):
        return invalid
    return not invalid


def test_the_data_holds_the_cases_the_issue_counts() -> None:
    assert len(CASES) == 335
    assert sum(_is_http(c.get("href")) for c in CASES) == 247


def test_at_least_240_of_the_247_http_results_agree_and_every_difference_is_known() -> None:
    with_http_result = [c for c in CASES if _is_http(c.get("href"))]
    differing = {(c["input"], c.get("base")) for c in with_http_result if not _agrees(c)}
    assert len(with_http_result) - len(differing) >= 240
    assert differing <= set(KNOWN_DIFFERENCES), differing - set(KNOWN_DIFFERENCES)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if (c["input"], c.get("base")) not in KNOWN_DIFFERENCES],
    ids=lambda c: repr(c["input"])[:40],
)
def test_case(case: dict[str, Any]) -> None:
    assert _agrees(case), (case["input"], case.get("base"), _crawler(case), _expected(case))
