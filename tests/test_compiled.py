"""The modules a wheel compiles with mypyc (hatch_build.py) behave as in plain Python.

The whole suite runs against both builds in CI (``.ci/run``): the quick start's test command against
the editable install (plain Python), then again against a compiled wheel with
``TRIO_SCRAPE_EXPECT_COMPILED=1``. What is here is what differs between the two by nature:
how the modules were built, and how their frozen values travel to worker processes.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import os
import pickle
import sys
from pathlib import Path

import pytest

from trio_scrape.frontier.memory import FrontierStatistics
from trio_scrape.frontier.pacing import HostStatistics
from trio_scrape.model.page import Page, PageError
from trio_scrape.model.parse import Selector

ROOT = Path(__file__).resolve().parent.parent


def _compiled_list() -> list[str]:
    """hatch_build.COMPILED, read from the file (the hook imports hatchling, not installed)."""
    namespace: dict[str, object] = {}
    source = (ROOT / "hatch_build.py").read_text()
    start = source.index("COMPILED = (")
    exec(source[start : source.index(")\n", start) + 2], namespace)
    modules = namespace["COMPILED"]
    assert isinstance(modules, tuple)
    return [str(m).removesuffix(".py").replace("/", ".") for m in modules]


def _is_extension(module_name: str) -> bool:
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", "") or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_the_compiled_modules_are_all_compiled_or_all_plain() -> None:
    """A wheel is compiled whole or not at all (one mypyc group); a mix would mean a stale
    extension beside an edited module."""
    modules = _compiled_list()
    assert len(modules) >= 5
    kinds = {name: _is_extension(name) for name in modules}
    assert len(set(kinds.values())) == 1, kinds
    if os.environ.get("TRIO_SCRAPE_EXPECT_COMPILED") == "1":  # set by .ci/run's second run
        assert all(kinds.values()), f"expected a mypyc-compiled build: {kinds}"
        assert "trio_scrape__mypyc" in sys.modules


def test_the_native_module_is_built_with_the_compiled_ones() -> None:
    """hatch_build.NATIVE (Cython) is built with the mypyc modules (and only with them): a
    compiled wheel without it reads every scraper field through selectolax's Python API,
    slower, which CI's compiled build must not."""
    from trio_scrape.model import native

    if os.environ.get("TRIO_SCRAPE_EXPECT_COMPILED") == "1":  # set by .ci/run's second run
        assert native.unavailable is None, native.unavailable
        assert native.first_text is not None and native.row_texts is not None
        assert _is_extension("trio_scrape.model._native")
    elif not _is_extension(_compiled_list()[0]):  # plain Python: never the native module
        assert native.first_text is None and native.row_texts is None


@pytest.mark.parametrize(
    "value",
    [
        PageError("timeout", "page deadline of 5s passed"),
        FrontierStatistics(queued=3, leased=1, seen=9),
        HostStatistics(
            requests=4, errors=1, in_flight=2, concurrency=8, delay=0.5, paused_until=None
        ),
        Selector.parse("price=.price::attr(content)", many=True),
    ],
    ids=lambda value: type(value).__name__,
)
def test_frozen_values_pickle_and_copy(value: object) -> None:
    """Frozen dataclasses cross to worker processes by pickle: compiled, pickle's default
    (setting fields one by one) is refused, so each says how it is rebuilt."""
    for rebuilt in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert rebuilt == value
        assert type(rebuilt) is type(value)


def test_a_record_with_an_error_pickles() -> None:
    page = Page(url="http://127.0.0.1/a", depth=2, referrer="http://127.0.0.1/")
    page.error = PageError("http_status", "HTTP 404 Not Found")
    page.links = ["http://127.0.0.1/b"]
    page.data["title"] = "A"
    rebuilt = pickle.loads(pickle.dumps(page))
    assert (rebuilt.url, rebuilt.depth, rebuilt.referrer) == (page.url, 2, page.referrer)
    assert rebuilt.error == page.error
    assert (rebuilt.links, rebuilt.data) == (page.links, page.data)


def test_the_frontier_can_be_subclassed() -> None:
    """The --state frontier subclasses the memory frontier (mypyc allows it only when the
    class says so)."""
    from trio_scrape.frontier.memory import MemoryFrontier

    class Counting(MemoryFrontier):
        pass

    assert isinstance(Counting(), MemoryFrontier)


def test_pure_python_switch_loads_every_module_from_source() -> None:
    """TRIO_SCRAPE_PURE_PYTHON=1 runs a compiled install as plain Python (a no-op on one
    that is plain already)."""
    import subprocess

    modules = _compiled_list()
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    print(importlib.import_module(name).__file__)\n"
        "print('trio_scrape__mypyc' in sys.modules)\n"
    )
    env = {**os.environ, "TRIO_SCRAPE_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    *files, group_loaded = result.stdout.split()
    assert len(files) == len(modules)
    assert all(f.endswith(".py") for f in files), files
    assert group_loaded == "False"
