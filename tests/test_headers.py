"""Response headers built from the transport's raw pairs (trio_scrape/_headers.py)."""

from __future__ import annotations

import pickle

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_scrape.http.fetcher import header_fields
from trio_scrape.http.headers import _DIRECT, header_dict, headers_from_raw

_NAMES = st.sampled_from(
    [b"Content-Type", b"content-type", b"Set-Cookie", b"X-Robots-Tag", b"ETag"]
)
_PAIRS = st.lists(
    st.tuples(_NAMES | st.binary(min_size=1, max_size=12), st.binary(max_size=30)), max_size=12
)


def test_the_direct_build_is_used_with_httpx_0_28() -> None:
    """On the httpx this was written against, headers are built directly; a later httpx
    that changed Headers' layout gets httpx.Headers(raw), slower but never wrong."""
    if not httpx.__version__.startswith("0.28."):
        pytest.skip(f"httpx {httpx.__version__}: see whether trio_scrape/_headers.py still fits")
    assert _DIRECT


@given(_PAIRS)
def test_headers_from_raw_equal_httpx_headers(raw: list[tuple[bytes, bytes]]) -> None:
    ours, theirs = headers_from_raw(raw), httpx.Headers(raw)
    assert type(ours) is httpx.Headers
    assert ours == theirs
    assert ours.raw == theirs.raw
    assert ours.multi_items() == theirs.multi_items()
    assert ours.encoding == theirs.encoding
    for name, _ in raw:
        key = name.decode("latin-1")
        assert ours.get_list(key) == theirs.get_list(key)
        assert (key in ours) == (key in theirs)
    assert headers_from_raw(raw).copy() == theirs
    assert pickle.loads(pickle.dumps(ours)) == theirs


@given(_PAIRS)
def test_header_dict_joins_repeats_by_lower_case_name(raw: list[tuple[bytes, bytes]]) -> None:
    fields = header_dict(raw)
    assert fields == header_fields(httpx.Headers(raw))
    for name, value in raw:
        key = name.decode("latin-1").lower()
        assert value.decode("latin-1") in fields[key].split(", ") or ", " in value.decode("latin-1")


def test_header_dict_examples() -> None:
    raw = [(b"Set-Cookie", b"a=1"), (b"Content-Type", b"text/html"), (b"set-cookie", b"b=2")]
    assert header_dict(raw) == {"set-cookie": "a=1, b=2", "content-type": "text/html"}
    assert header_dict([(b"X-Caf\xe9", b"\xe9t\xe9")]) == {"x-caf\xe9": "\xe9t\xe9"}
    assert header_dict([]) == {}
