"""Start-up: a Ctrl-C while the CLI is still starting ends it quietly with exit code 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from trio_scrape.cli.coercion import _TYPER_INTERNALS

from .site import Reply, Request, Site
from .test_cli import CLI

# Marks the moment the interpreter has started (site is imported just before the command's
# module): the signal's delay counts from there. Before it, Python is starting up (tens of
# milliseconds on a loaded machine) and no code of ours can run yet. What `python -m` does
# next before our entry point's first line (runpy, and the package's __init__, which imports
# nothing of its own) is done here first, so that the marker is as close as can be to it.
SITECUSTOMIZE = (
    "import runpy, importlib.util, trio_scrape, sys\n"
    "sys.stderr.write('interpreter started\\n')\nsys.stderr.flush()\n"
)


@pytest.mark.parametrize("delay", [0.05, 0.2])
async def test_sigint_during_start_up_exits_130_without_a_traceback(
    site: Site, tmp_path: Path, delay: float
) -> None:
    async def hang(request: Request) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    site.add("/", hang)  # should the crawl get going, it is still running at the signal
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    process = await trio.lowlevel.open_process(
        [*CLI, "run", site.url("/"), "-o", "-", "--grace", "0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        # As a terminal does: SIGINT at its default in the child, whatever pytest did.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    stderr = b""
    with trio.fail_after(30):
        while b"interpreter started\n" not in stderr:
            chunk = await process.stderr.receive_some()
            assert chunk, stderr
            stderr += chunk
        await trio.sleep(delay)  # the moment of the Ctrl-C, not a wait for anything
        process.send_signal(signal.SIGINT)
        while chunk := await process.stderr.receive_some():
            stderr += chunk
        code = await process.wait()
    stderr = stderr.replace(b"interpreter started\n", b"", 1)
    assert code == 130, stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr, stderr
    assert len(stderr.decode().splitlines()) <= 2, stderr


# Imported only by what needs them (docs/performance.md, Start-up): a plain crawl's start
# does without them, and a change that brings one back costs every crawl its import.
NOT_ON_THE_PLAIN_PATH = {
    "pydantic": "typer's option converters (trio_scrape.cli.coercion decides plain values)",
    "typer._adapters": "typer's pydantic converters",
    "tomllib": "only with --config or a pyproject.toml",
    "rich": "only for a terminal's progress and summary",
    "hishel": "only with --cache",
    "coredis": "only for trio-scrape status and export (a crawler speaks RESP itself)",
    "socksio": "only with a socks:// --proxy",
    "h2": "only with --http2",
    "trio_scrape.render.renderer": "only with --render / --render-auto",
    "trio_scrape.frontier.sqlite": "only with --state",
    "xml.etree.ElementTree": "only for sitemaps",
    "re2": "only with --include / --exclude",
    "jmespath": "only for JSON selectors",
    "prometheus_client": "only with --metrics",
}

_REPORT_MODULES = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + "
    "'\\n'))\n"
    "sys.argv[0] = 'trio-scrape'\n"
    "from trio_scrape.cli.entry import main\n"
    "main()\n"
)


def _modules(stderr: bytes) -> set[str]:
    [line] = [line for line in stderr.decode().splitlines() if line.startswith("MODULES ")]
    return set(line.split()[1:])


async def test_a_plain_crawl_does_not_import_what_only_options_need(
    site: Site, tmp_path: Path
) -> None:
    for path in ("/", "/a"):
        site.add(path, Reply(body=b'<title>t</title><a href="/a">a</a>'))
    result = await trio.run_process(
        [CLI[0], "-c", _REPORT_MODULES, "run", site.url("/"), "--depth", "1", "-o", "out.jsonl"],
        cwd=tmp_path,  # no pyproject.toml there
        capture_stdout=True,
        capture_stderr=True,
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    modules = _modules(result.stderr)
    assert "trio_scrape.engine.crawler" in modules  # it did crawl, in this process
    unwanted = dict(NOT_ON_THE_PLAIN_PATH)
    if not _TYPER_INTERNALS:  # another typer: its pydantic converters run (test_cli_coercion)
        del unwanted["pydantic"], unwanted["typer._adapters"]
    imported = {name: why for name, why in unwanted.items() if name in modules}
    assert not imported, imported


async def test_a_worker_process_imports_no_cli(tmp_path: Path) -> None:
    """A worker process (``python -m trio_scrape.processes.child``) needs the page pipeline only."""
    code = (
        "import sys\nimport trio_scrape.processes.child\n"
        "sys.stdout.write(' '.join(sorted(sys.modules)))\n"
    )
    result = await trio.run_process(
        [CLI[0], "-c", code], cwd=tmp_path, capture_stdout=True, capture_stderr=True
    )
    modules = set(result.stdout.decode().split())
    assert "trio_scrape.engine.pipeline" in modules
    unwanted = {*NOT_ON_THE_PLAIN_PATH, "typer", "trio_scrape.cli.app", "protego"} & modules
    assert not unwanted, unwanted


# Loaded by every process of the crawl (PYTHONPATH): says when atexit handlers run, and when
# the interpreter's teardown finalises the module's objects.
_CANARY = (
    "import atexit, os, sys\n"
    "class _Canary:\n"
    "    def __del__(self, write=os.write):\n"
    "        write(2, b'finalised\\n')\n"
    "canary = _Canary()\n"
    "atexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
)


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_the_process_ends_without_the_interpreters_teardown(
    site: Site, tmp_path: Path, processes: str
) -> None:
    """The interpreter's teardown (~40 ms of CPU) is skipped, in the crawler and in its worker
    processes; atexit handlers still run, and every record is written (to a pipe here)."""
    for path in ("/", "/a"):
        site.add(path, Reply(body=b'<title>t</title><a href="/a">a</a>'))
    (tmp_path / "sitecustomize.py").write_text(_CANARY)
    result = await trio.run_process(
        [*CLI, "run", site.url("/"), "--depth", "1", "-o", "-", "--processes", processes],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_stdout=True,
        capture_stderr=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.decode().splitlines()) == 2
    lines = result.stderr.decode().splitlines()
    assert "finalised" not in lines, lines
    assert lines.count("atexit ran") == 1 + (int(processes) if processes != "1" else 0), lines


HOOK = ("--extract", "myhooks:extract")


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_with_a_hook_the_process_ends_with_the_full_teardown(
    site: Site, tmp_path: Path, processes: str
) -> None:
    """A hook's module is the user's code, which may count on its objects being finalised at
    exit (a file flushed by its __del__, say): then every process ends the usual way."""
    for path in ("/", "/a"):
        site.add(path, Reply(body=b'<title>t</title><a href="/a">a</a>'))
    (tmp_path / "sitecustomize.py").write_text(_CANARY)
    (tmp_path / "myhooks.py").write_text("def extract(page):\n    return {'n': 1}\n")
    result = await trio.run_process(
        [*CLI, "run", site.url("/"), "--depth", "1", "-o", "-", "--processes", processes, *HOOK],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_stdout=True,
        capture_stderr=True,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["data"] for line in result.stdout.decode().splitlines()] == [
        {"n": 1},
        {"n": 1},
    ]
    lines = result.stderr.decode().splitlines()
    processes_run = 1 + (int(processes) if processes != "1" else 0)
    assert lines.count("finalised") == processes_run, lines
    assert lines.count("atexit ran") == processes_run, lines
