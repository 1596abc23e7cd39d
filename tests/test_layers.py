"""The package's layers: a lower layer never imports a higher one (trio's rule for ``_core``).

Every ``import`` in every module counts: at the top, inside a function (a lazy import) and
under ``TYPE_CHECKING``. A module belongs to the layer of the longest name in :data:`LAYERS`
that is a prefix of its own; a module that belongs to none fails the test, so a new module is
placed on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trio_scrape"

if not PACKAGE.is_dir():  # CI's second run tests the installed wheel from a copy of tests/
    pytest.skip(
        "the package's source tree is not beside the tests (the layers are checked on it)",
        allow_module_level=True,
    )

#: Lowest first. A module may import from its own layer and the ones before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "trio_scrape._version",
        "trio_scrape._pure",
        "trio_scrape._teardown",
        "trio_scrape.errors",
    ),
    ("trio_scrape.model",),  # values: pages, requests, config, URLs, HTML parsing
    ("trio_scrape.scraper",),  # a scraper's handlers, items and forms: what a page yields
    ("trio_scrape.output",),  # sinks
    ("trio_scrape.frontier",),  # what to crawl next, per-host pacing
    ("trio_scrape.http",),  # the address guard, the transport, the fetcher
    ("trio_scrape.render",),  # headless Chromium
    (  # one page's work, and how a process puts it together
        "trio_scrape.engine.pipeline",
        "trio_scrape.engine.robots",
        "trio_scrape.engine.assembly",
    ),
    ("trio_scrape.processes",),  # worker processes run that pipeline
    ("trio_scrape.engine",),  # the crawler: orchestrates all of the above
    ("trio_scrape.cli",),
    ("trio_scrape",),  # the curated public API and ``python -m trio_scrape``
)


def layer_of(module: str) -> int:
    best, best_len = -1, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best_len:
                best, best_len = index, len(name)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The ``trio_scrape`` modules ``path`` imports, as absolute names."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> set[str]:
    """The ``trio_scrape`` modules a module of ``package`` with this source imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import x`` / ``from .pkg import mod``: the names may be modules.
            for alias in node.names:
                candidate = PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")
                if candidate.with_suffix(".py").exists() or candidate.is_dir():
                    found.add(f"{target}.{alias.name}")
    return {name for name in found if name == "trio_scrape" or name.startswith("trio_scrape.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    upward = sorted(
        f"{name} (layer {layer_of(name)})"
        for name in imports_of(path)
        if name != "trio_scrape" and layer_of(name) > own
    )
    assert not upward, f"{module} (layer {own}) imports a higher layer: {', '.join(upward)}"


def test_the_rule_catches_an_upward_import() -> None:
    """The check itself can fail: a model module that imports the engine is reported."""
    source = "from __future__ import annotations\n\nfrom ..engine import crawler\n"
    found = imports_in(source, "trio_scrape.model")
    assert {"trio_scrape.engine", "trio_scrape.engine.crawler"} <= found
    assert layer_of("trio_scrape.engine.crawler") > layer_of("trio_scrape.model.page")


def test_the_frontier_does_not_import_the_http_stack() -> None:
    """A frontier (and what it stands on) loads without httpx or httptools: the per-host
    pacing lives with the frontier, robots.txt (which fetches) with the engine."""
    code = (
        "import sys\n"
        "import trio_scrape.frontier.memory, trio_scrape.frontier.sqlite\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(result.stdout.split())
    assert "trio_scrape.frontier.memory" in loaded
    assert not {"httpx", "httptools", "trio_scrape.http.fetcher"} & loaded
