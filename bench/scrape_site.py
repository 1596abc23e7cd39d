"""Generate the scraper benchmark's site: bench/sitegen.py's site with 10 items a page.

Every page is sitegen.py's page (the same links, text and table, byte for byte) with ten item
blocks inserted before its table, each with four fields::

    <div class="product"><h2 class="name">...</h2><span class="sku">p12-3</span>
    <span class="price">$41.07</span><span class="rating">4</span></div>

The blocks hold no links, so the site's link structure is sitegen.py's. Writes OUT/www (the
document root), OUT/paths.txt (every page's path) and OUT/items.jsonl (every item, the ground
truth: ``{"sku", "name", "price", "rating"}``, the sku unique across the site).

    python bench/scrape_site.py --pages 10000 --out /tmp/trio-scrape-bench-items
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import sitegen

ITEMS_PER_PAGE = 10


def items_of(i: int) -> list[dict[str, str | int]]:
    """Page ``i``'s items (their own random stream: sitegen's is left as it is)."""
    rng = random.Random(f"items-{i}")
    return [
        {
            "sku": f"p{i}-{k}",
            "name": " ".join(rng.choices(sitegen.WORDS, k=3)).title(),
            "price": f"${rng.randrange(100, 100_000) / 100:.2f}",
            "rating": rng.randrange(1, 6),
        }
        for k in range(ITEMS_PER_PAGE)
    ]


def block(item: dict[str, str | int]) -> str:
    return (
        f'<div class="product"><h2 class="name">{item["name"]}</h2>'
        f'<span class="sku">{item["sku"]}</span> <span class="price">{item["price"]}</span> '
        f'<span class="rating">{item["rating"]}</span></div>'
    )


def generate(out: Path, pages: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    www = out / "www"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.jsonl", "w", encoding="utf-8") as truth:
        for i in range(pages):
            html = sitegen.page(rng, i, pages)  # consumes sitegen's stream exactly as it does
            items = items_of(i)
            blocks = f'<section class="products">{"".join(map(block, items))}</section>'
            assert html.count("<table>") == 1
            html = html.replace("<table>", blocks + "<table>")
            path = www / sitegen.path_of(i).lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html, encoding="utf-8")
            truth.writelines(json.dumps(item) + "\n" for item in items)
    (out / "paths.txt").write_text("".join(sitegen.path_of(i) + "\n" for i in range(pages)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/trio-scrape-bench-items"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.pages, args.seed)
    size = sum(p.stat().st_size for p in (args.out / "www").rglob("*.html"))
    print(f"{args.pages} pages, {size / args.pages / 1024:.1f} KiB average, in {args.out / 'www'}")
