"""A response's headers, from the raw ``(name, value)`` byte pairs the transport parsed.

Every page needs them twice: as a dict by lower-case name, which the crawler reads
(``Content-Type``, ``Location``, ``Retry-After``...), and as the :class:`httpx.Headers` of its
:class:`~trio_scrape.Page`. ``httpx.Headers(raw)`` normalises each pair through two Python
calls (~14 us a page of the benchmark's 8 headers, 7% of its CPU); built here from the pairs
directly, the same object costs ~1 us. Compiled with mypyc in a wheel (hatch_build.py).
"""

from __future__ import annotations

import httpx

__all__ = ["header_dict", "headers_from_raw"]


def header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Headers by lower-case name (latin-1, as HTTP defines them); repeated headers are
    joined with ", "."""
    fields: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in fields:
            fields[key] = f"{fields[key]}, {text}"
        else:
            fields[key] = text
    return fields


def _builds_like_httpx() -> bool:
    """Whether :class:`httpx.Headers` holds what :func:`headers_from_raw` fills in (its
    ``_list`` of ``(name, lower-case name, value)`` and its ``_encoding``), as httpx 0.28 has
    it. A future httpx that differs gets ``httpx.Headers(raw)``: slower, never wrong."""
    try:
        probe = httpx.Headers([(b"X-Probe", b"v")])
    except Exception:
        return False
    return vars(probe) == {"_list": [(b"X-Probe", b"x-probe", b"v")], "_encoding": None}


_DIRECT = _builds_like_httpx()


def headers_from_raw(raw: list[tuple[bytes, bytes]]) -> httpx.Headers:
    """``httpx.Headers(raw)`` for byte pairs, without its per-pair normalisation (which for
    bytes only copies them): the same headers, equal to it in every way."""
    if not _DIRECT:
        return httpx.Headers(raw)
    headers = httpx.Headers.__new__(httpx.Headers)
    headers._list = [(name, name.lower(), value) for name, value in raw]
    headers._encoding = None
    return headers
