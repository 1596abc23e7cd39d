"""A scraper's handler alone: CPU a page of bench/scrape_spider.py's handler, in-process.

bench/scrape.py measures whole crawls, whose CPU a page moves with the machine's load by more
than a handler's share. This runs only the handler, on one page of the items site
(bench/scrape_site.py: 10 products of 4 fields, 31 links), many times, and prints the CPU
(``time.process_time``, the minimum of ``--repeat`` runs of ``--number`` pages) each of these
costs a page:

- ``empty``: a handler that does nothing (the Context, the router);
- ``links``: bench/scrape_spider_links.py (``ctx.enqueue_links("a")``);
- ``items``: the 10 items alone (no links);
- ``scrape``: bench/scrape_spider.py (the items and the links);
- ``fields, one query a row``: the 40 fields read with a selector query each
  (``model.parse.first_text``), as ``ctx.text_of`` did before rows;
- ``fields, rows``: the same fields through ``model.rows`` (one query a field).

Run it with the build to measure (the compiled wheel: bench/run.py's docstring)::

    python -P bench/scrape_handler.py

``--python`` runs the same build with its native module (trio_scrape/model/_native.pyx) left
out, as where it is not built: the fields through selectolax's Python API.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class _NoNative:
    """A meta path finder that refuses trio_scrape.model._native (``--python``)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "trio_scrape.model._native":
            raise ImportError("left out by --python")


if "--python" in sys.argv[1:]:  # before trio_scrape is imported
    sys.meta_path.insert(0, _NoNative)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scrape_site  # noqa: E402
import scrape_spider  # noqa: E402
import scrape_spider_links  # noqa: E402

from trio_scrape import Context, Router  # noqa: E402
from trio_scrape.model.page import Page  # noqa: E402
from trio_scrape.model.parse import first_text, parse_html  # noqa: E402
from trio_scrape.model.request import Request  # noqa: E402
from trio_scrape.model.urls import LinkResolver  # noqa: E402

try:
    from trio_scrape.model.rows import rows_of
except ImportError:  # a build from before rows: its figures without that run
    rows_of = None  # type: ignore[assignment]

FIELDS = ("span.sku", "h2.name", "span.price", "span.rating")


def items_only(ctx: Context) -> Iterator[dict[str, Any]]:
    for product in ctx.css("div.product"):
        yield {
            "sku": ctx.text_of(product, "span.sku"),
            "name": ctx.text_of(product, "h2.name"),
            "price": ctx.text_of(product, "span.price"),
            "rating": int(ctx.text_of(product, "span.rating") or 0),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="pages a run")
    parser.add_argument("--repeat", type=int, default=7, help="runs (the minimum is shown)")
    parser.add_argument(
        "--python", action="store_true", help="leave the native module out (selectolax's API)"
    )
    args = parser.parse_args()

    site = Path(tempfile.mkdtemp(prefix="trio-scrape-handler-"))
    scrape_site.generate(site, 20)
    pages = sorted((site / "www").rglob("*.html"))
    html = next(text for text in map(Path.read_text, pages) if 'class="product"' in text)
    url = "http://127.0.0.1:8091/index.html"
    resolver = LinkResolver()
    tree = parse_html(html, want_links=False).tree

    def context() -> Context:
        page = Page(url=url, status=200)
        page.html = tree
        return Context(page, Request.link(url), base=url, resolver=resolver)

    def handled(router: Router) -> Callable[[], None]:
        route = router.route(None)
        assert route is not None

        def one_page() -> None:
            ctx = context()
            coroutine = router.run(route, ctx)
            try:
                coroutine.send(None)
            except StopIteration:
                pass
            ctx.enqueued()

        return one_page

    def router_of(handler: Callable[[Context], Any]) -> Router:
        router = Router()
        router.default(handler)
        return router

    def by_query() -> None:
        for product in tree.css("div.product"):
            for field in FIELDS:
                first_text(product, field)

    def by_rows() -> None:
        products = tree.css("div.product")
        rows = rows_of(products)  # type: ignore[misc]
        assert rows is not None
        for i in range(len(products)):
            for field in FIELDS:
                rows.text(field, i)

    runs: dict[str, Callable[[], None]] = {
        "empty": handled(router_of(lambda ctx: None)),
        "links": handled(scrape_spider_links.router),
        "items": handled(router_of(items_only)),
        "scrape": handled(scrape_spider.router),
        "fields, one query a row": by_query,
    }
    if rows_of is not None:
        runs["fields, rows"] = by_rows
    compiled = Path(sys.modules["trio_scrape.model.parse"].__file__ or "").suffix != ".py"
    print(f"one page of the items site, {args.repeat} x {args.number} pages, CPU a page (min)")
    try:
        from trio_scrape.model import native

        fields = "native" if native.unavailable is None else f"Python ({native.unavailable})"
    except ImportError:  # a build from before the native module
        fields = "Python"
    print(f"trio-scrape {'compiled (mypyc)' if compiled else 'plain Python'}, fields: {fields}\n")
    print("| run | us a page |\n| --- | ---: |")
    for name, run in runs.items():
        timer = timeit.Timer(run, timer=time.process_time)
        best = min(timer.repeat(number=args.number, repeat=args.repeat)) / args.number
        print(f"| {name} | {best * 1e6:.1f} |")


if __name__ == "__main__":
    main()
