"""Generate the benchmark site: a deterministic static site of N pages (~25 KB each).

Page 0 is /index.html; page i is /dNNN/pI.html (100 pages per directory). Every page has about
30 links of every shape a crawler must handle: navigation repeated site-wide, its 10 children in
a tree (so the whole site is reachable from /index.html), its parent, random cross links,
duplicates, fragments, "#top", absolute-path, relative, "./" and "../" hrefs, two off-site
links and a mailto:. Writes OUT/www (the document root) and OUT/paths.txt (every page's path).

    python bench/sitegen.py --pages 10000 --out /tmp/trio-scrape-bench
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

FANOUT = 10
PER_DIR = 100
WORDS = [
    "".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=3 + i % 8))
    for i in range(2000)
]


def path_of(i: int) -> str:
    return "/index.html" if i == 0 else f"/d{i // PER_DIR:03d}/p{i}.html"


def href(rng: random.Random, src: int, dst: int) -> str:
    target = path_of(dst)
    here = path_of(src).rsplit("/", 1)[0]
    there, name = target.rsplit("/", 1)
    roll = rng.random()
    if roll < 0.4:
        return target
    if here == there:
        return name if roll < 0.8 else "./" + name
    if here == "":
        return target[1:]
    return ".." + target


def page(rng: random.Random, i: int, n: int) -> str:
    targets = [c for c in range(i * FANOUT + 1, i * FANOUT + FANOUT + 1) if c < n]
    if i:
        targets.append((i - 1) // FANOUT)
    while len(targets) < 20:
        targets.append(rng.randrange(n))
    targets += rng.sample(targets, 2)
    rng.shuffle(targets)
    hrefs = [
        href(rng, i, t) + (f"#part{rng.randrange(5)}" if rng.random() < 0.15 else "")
        for t in targets
    ]
    hrefs += [
        "#top",
        "http://offsite.invalid/a",
        "https://cdn.offsite.invalid/b.js",
        "mailto:team@offsite.invalid",
    ]
    nav = "".join(f'<a href="{path_of(k)}">Nav {k}</a> ' for k in (0, 1, 2, 3, 4) if k < n)
    links = "".join(
        f'<li><a href="{h}">{" ".join(rng.choices(WORDS, k=3))}</a></li>' for h in hrefs
    )
    paragraphs = "".join(f"<p>{' '.join(rng.choices(WORDS, k=110))}</p>" for _ in range(26))
    rows = "".join(
        f"<tr><td>{r}</td><td>{rng.randrange(10**6)}</td><td>{rng.choice(WORDS)}</td></tr>"
        for r in range(16)
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Page {i} | Bench site</title>"
        f'<meta name="description" content="{" ".join(rng.choices(WORDS, k=20))}"></head>'
        f'<body><nav id="top">{nav}</nav><main><h1>Page {i}</h1>{paragraphs}'
        f"<table>{rows}</table><ul>{links}</ul></main><aside>{' '.join(rng.choices(WORDS, k=40))}"
        f"</aside></body></html>\n"
    )


def generate(out: Path, pages: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    www = out / "www"
    for i in range(pages):
        path = www / path_of(i).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page(rng, i, pages), encoding="utf-8")
    (out / "paths.txt").write_text("".join(path_of(i) + "\n" for i in range(pages)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/trio-scrape-bench"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.pages, args.seed)
    size = sum(p.stat().st_size for p in (args.out / "www").rglob("*.html"))
    print(f"{args.pages} pages, {size / args.pages / 1024:.1f} KiB average, in {args.out / 'www'}")
