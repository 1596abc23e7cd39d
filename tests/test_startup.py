"""Start-up: a Ctrl-C while the CLI is still starting ends it quietly with exit code 130."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

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
