"""A real redis-server on 127.0.0.1 for the tests: a free port, no persistence, stopped by pid."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(
    directory: Path, *extra: str, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server in ``directory`` (on ``port``, or a free one); return it once it
    accepts connections."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    wanted = port
    for _ in range(5):  # another process may take the free port before redis binds it
        port = wanted or free_port()
        process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return process, port
            except OSError:
                time.sleep(0.01)
        stop(process)
    raise RuntimeError("redis-server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the session; tests keep apart by using their own crawl ids."""
    process, port = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def closed_port_url() -> str:
    """A redis:// URL where nothing listens: connecting is refused."""
    return f"redis://127.0.0.1:{free_port()}/0"
