"""Start-up: a Ctrl-C while the CLI is still starting ends it quietly with exit code 130."""

from __future__ import annotations

import signal
import subprocess

import pytest
import trio

from .site import Reply, Request, Site
from .test_cli import CLI


@pytest.mark.parametrize("delay", [0.05, 0.2])
async def test_sigint_during_start_up_exits_130_without_a_traceback(
    site: Site, delay: float
) -> None:
    async def hang(request: Request) -> Reply:
        await trio.sleep_forever()
        raise AssertionError

    site.add("/", hang)  # should the crawl get going, it is still running at the signal
    process = await trio.lowlevel.open_process(
        [*CLI, "run", site.url("/"), "-o", "-", "--grace", "0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # As a terminal does: SIGINT at its default in the child, whatever pytest did.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with trio.fail_after(30):
        await trio.sleep(delay)  # the moment of the Ctrl-C, not a wait for anything
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        stderr = b""
        while chunk := await process.stderr.receive_some():
            stderr += chunk
        code = await process.wait()
    assert code == 130, stderr
    assert b"Traceback" not in stderr and b"KeyboardInterrupt" not in stderr, stderr
    assert len(stderr.decode().splitlines()) <= 2, stderr
