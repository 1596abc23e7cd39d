"""Build hook: compile the per-page modules to C with mypyc when a wheel is built.

mypyc (the mypy project's compiler, which black, mypy and charset-normalizer ship their wheels
with) turns these type-checked modules into C extensions; a crawl then spends ~9% less CPU a
page (bench/run.py, docs/performance.md). The modules stay plain Python in the source tree:

- an editable install (``pip install -e .``) is not compiled, so an edit takes effect at once
  and no stale extension can shadow it;
- a wheel (``pip install .``, ``pip wheel .``) is compiled when a C compiler and Python's
  headers are there, and is plain Python with a warning otherwise: the same crawler, slower;
- ``TRIO_SCRAPE_COMPILE=0`` builds plain Python; ``TRIO_SCRAPE_COMPILE=1`` makes a failed
  compilation an error instead of a warning (CI, to notice a module mypyc cannot compile).

Beside them, :data:`NATIVE` is compiled with Cython: a scraper's field queries and texts in C
over selectolax's tree (trio_scrape/model/_native.pyx says how). It is built after the mypyc
modules, with them only, under the same rules: ``TRIO_SCRAPE_COMPILE=1`` makes its failure
an error; otherwise a warning, and the wheel keeps its mypyc modules without it. Without it
(an editable install, a failed build) the same fields are read through selectolax's Python
API.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: The modules compiled: synchronous code on the per-page path (link resolution, HTML
#: parsing, the frontier, politeness, the record). The async engine gains nothing measurable
#: compiled (trio's scheduler drives it), so it stays Python.
COMPILED = (
    "trio_scrape/model/urls.py",
    "trio_scrape/model/parse.py",
    "trio_scrape/model/rows.py",
    "trio_scrape/frontier/memory.py",
    "trio_scrape/frontier/pacing.py",
    "trio_scrape/model/page.py",
    "trio_scrape/http/headers.py",
    "trio_scrape/frontier/resp.py",
    "trio_scrape/frontier/redis.py",
)

#: The Cython modules (``.pyx``): C that works on selectolax's lexbor tree directly.
NATIVE = ("trio_scrape/model/_native.pyx",)


class CompileHook(BuildHookInterface):  # type: ignore[type-arg]  # generic in its config type
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        setting = os.environ.get("TRIO_SCRAPE_COMPILE", "")
        if self.target_name != "wheel" or version == "editable" or setting == "0":
            return
        self._temp = tempfile.mkdtemp(prefix="trio-scrape-mypyc-")
        built: list[Path] = []
        steps = (
            (self._compile, "with mypyc", "installing plain Python"),
            (self._cythonize, "with Cython", "fields read through selectolax's Python API"),
        )
        for compile_, what, instead in steps:
            try:
                built += compile_(Path(self._temp))
            except (Exception, SystemExit) as exc:
                if setting == "1":
                    raise
                message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
                self.app.display_warning(f"trio-scrape: not compiled {what} ({message}); {instead}")
                if compile_ == self._compile:
                    return  # the native module goes with the compiled build, not alone
        lib = Path(self._temp) / "lib"
        for path in built:
            build_data["force_include"][str(path)] = path.relative_to(lib).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        temp = getattr(self, "_temp", None)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    def _compile(self, temp: Path) -> list[Path]:
        """Compile :data:`COMPILED` into ``temp``; the extension files built, under it."""
        from mypyc.build import mypycify

        # mypycify takes paths relative to the project and reads its config.
        with contextlib.chdir(self.root):
            extensions = mypycify(
                list(COMPILED),
                opt_level="3",
                group_name="trio_scrape",
                target_dir=str(temp / "c"),
            )
        built = self._build(extensions, temp, "mypyc")
        self._expect(built, COMPILED)
        print(f"trio-scrape: compiled {len(COMPILED)} modules with mypyc", file=sys.stderr)
        return built

    def _cythonize(self, temp: Path) -> list[Path]:
        """Compile :data:`NATIVE` into ``temp``; the extension files built, under it."""
        from Cython.Build import cythonize
        from setuptools import Extension

        with contextlib.chdir(self.root):
            extensions = cythonize(
                [Extension(p.removesuffix(".pyx").replace("/", "."), [p]) for p in NATIVE],
                build_dir=str(temp / "cython"),
                compiler_directives={"language_level": "3"},
                quiet=True,
            )
        built = self._build(extensions, temp, "cython")
        self._expect(built, NATIVE)
        print(f"trio-scrape: compiled {len(NATIVE)} module with Cython", file=sys.stderr)
        return built

    def _build(self, extensions: list[Any], temp: Path, name: str) -> list[Path]:
        """Build ``extensions`` into ``temp/lib``; the files that build added there."""
        from setuptools import Distribution
        from setuptools.command.build_ext import build_ext

        lib = temp / "lib"
        before = {p for p in lib.rglob("*") if p.is_file()} if lib.exists() else set()
        with contextlib.chdir(self.root):
            command = build_ext(Distribution({"ext_modules": extensions}))
            command.build_lib = str(lib)
            command.build_temp = str(temp / "obj" / name)
            command.ensure_finalized()
            command.run()
        return sorted(p for p in lib.rglob("*") if p.is_file() and p not in before)

    @staticmethod
    def _expect(built: list[Path], sources: tuple[str, ...]) -> None:
        names = {p.name.split(".")[0] for p in built}
        missing = [m for m in sources if Path(m).stem not in names]
        if missing:
            raise RuntimeError(f"no extension built for {', '.join(missing)}")
