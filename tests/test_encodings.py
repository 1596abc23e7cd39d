"""Every Content-Encoding from a real loopback server: decoded right, and never past
max_bytes at any stage, however well the body compresses."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import pytest
import zstandard

from trio_scrape import CrawlConfig, scrape
from trio_scrape.http.fetcher import FetchError, decode_content

from .site import Reply, Site, html_page

ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "raw-deflate": lambda data: zlib.compress(data)[2:-4],  # what some servers send as deflate
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
HEADER = {"raw-deflate": "deflate"}


def encode(data: bytes, codings: list[str]) -> bytes:
    for coding in codings:  # in the order applied
        data = ENCODERS[coding](data)
    return data


CASES = [["gzip"], ["deflate"], ["raw-deflate"], ["br"], ["zstd"], ["gzip", "br"],
         ["zstd", "gzip", "deflate"]]  # fmt: skip


@pytest.mark.parametrize("codings", CASES, ids=["+".join(c) for c in CASES])
async def test_each_encoding_decodes(site: Site, codings: list[str]) -> None:
    page = html_page("Encoded", ["/next"], body="é" * 500)
    header = ", ".join(HEADER.get(c, c) for c in codings)
    site.add("/", Reply(body=encode(page, codings), headers={"Content-Encoding": header}))
    [got] = await scrape([site.url("/")], CrawlConfig(robots=False, links=True))
    assert got.ok and got.title == "Encoded" and got.bytes == len(page)
    assert got.links == [site.url("/next")]


@pytest.mark.parametrize("codings", CASES, ids=["+".join(c) for c in CASES])
async def test_compression_bombs_stop_at_the_cap(site: Site, codings: list[str]) -> None:
    bomb = encode(b"\0" * 50_000_000, codings)  # 50 MB of zeros, a few KB on the wire
    header = ", ".join(HEADER.get(c, c) for c in codings)
    site.add("/", Reply(body=bomb, headers={"Content-Encoding": header}))
    config = CrawlConfig(robots=False, max_bytes=1_000_000, retries=0)
    tracemalloc.start()
    try:
        [got] = await scrape([site.url("/")], config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.error is not None and got.error.kind == "too_large", got.error
    assert "past max_bytes=1000000" in got.error.message
    assert peak < 8_000_000, peak  # a few times the cap, never the 50 MB


def test_corrupt_and_unknown_encodings() -> None:
    with pytest.raises(FetchError) as info:
        decode_content(b"not brotli at all", "br", 1000)
    assert info.value.kind == "decode"
    with pytest.raises(FetchError) as info:
        decode_content(b"\x28\xb5\x2f\xfd garbage", "zstd", 1000)
    assert info.value.kind == "decode"
    assert decode_content(b"as is", "compress-xyz", 1000) == b"as is"  # as httpx does
    assert decode_content(gzip.compress(b"x" * 1000), "gzip", 1000) == b"x" * 1000
    with pytest.raises(FetchError, match="gzip content decodes past max_bytes=999"):
        decode_content(gzip.compress(b"x" * 1000), "gzip", 999)
