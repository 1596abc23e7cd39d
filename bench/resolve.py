"""Link resolution on the benchmark site's pages: microseconds per page, no network.

Generates the benchmark site's pages in memory (bench/sitegen.py: ~31 hrefs a page of every
shape, relative, absolute-path, "./", "../", fragments, off-site, mailto:), parses them once,
then times, per page, in crawl order with one resolver (its cache warm, as in a crawl):

- the crawler's resolver (``LinkResolver.resolve`` on the document base);
- the canonical keys the frontier computes for the links (``url_key``);
- for reference, ada-url's ``join_url`` called for every href (no fast path, no cache).

Best of ``--repeat`` passes; the machine's other load makes single passes noisy.

    python bench/resolve.py                  # 2,000 pages of a 10,000-page site
    python bench/resolve.py --pages 10000 --repeat 7
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ada_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sitegen  # noqa: E402

from trio_scrape.model.parse import parse_html  # noqa: E402
from trio_scrape.model.urls import LinkResolver, document_base, url_key  # noqa: E402

ORIGIN = "http://127.0.0.1:8091"


def pages(count: int, site_pages: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(1)
    out = []
    for i in range(count):
        parsed = parse_html(sitegen.page(rng, i, site_pages), want_links=True)
        out.append((document_base(ORIGIN + sitegen.path_of(i), parsed.base), parsed.hrefs))
    return out


def join_every_href(base: str, hrefs: list[str]) -> None:
    for href in hrefs:
        try:
            ada_url.join_url(base, href)
        except ValueError:
            pass


def best_per_page(
    work: Callable[[], Callable[[str, list[str]], object]],
    site: list[tuple[str, list[str]]],
    repeat: int,
) -> float:
    best = float("inf")
    for _ in range(repeat):
        step = work()  # a fresh resolver each pass: its cache warms up as a crawl's does
        start = time.perf_counter()
        for base, hrefs in site:
            step(base, hrefs)
        best = min(best, time.perf_counter() - start)
    return best / len(site) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages to resolve")
    parser.add_argument("--site-pages", type=int, default=10_000, help="size of the site")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    site = pages(args.pages, args.site_pages)
    hrefs = sum(len(h) for _, h in site) / len(site)
    links = [LinkResolver().resolve(base, h)[0] for base, h in site]

    def keys() -> Callable[[str, list[str]], object]:
        batches = iter(links)
        return lambda base, hrefs: [url_key(url) for url in next(batches)]

    def time_it(work: Callable[[], Callable[[str, list[str]], object]]) -> float:
        return best_per_page(work, site, args.repeat)

    rows = [
        ("crawler resolver (LinkResolver)", time_it(lambda: LinkResolver().resolve)),
        ("canonical keys of the links (url_key)", time_it(keys)),
        ("ada join_url for every href (reference)", time_it(lambda: join_every_href)),
    ]
    print(f"{len(site)} pages, {hrefs:.1f} hrefs a page; best of {args.repeat} passes")
    for name, micros in rows:
        print(f"{name:<42} {micros:7.1f} us/page")


if __name__ == "__main__":
    main()
