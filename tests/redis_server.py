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
    answers PING (while it loads its append-only file it accepts connections but answers
    LOADING)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    directory.mkdir(parents=True, exist_ok=True)
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
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return process, port
            except OSError:
                pass
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


AOF = ("--appendonly", "yes", "--appendfsync", "always")


class AofRedis:
    """A redis-server with AOF (``appendfsync always``: every write on disk before its
    answer) that a test can kill and restart on the same port and directory, as an operator
    restarts a crashed Redis."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process, self.port = start_redis(directory, *AOF)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only the append-only file remains."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Kill it if it runs, then start it again on its port, from its directory."""
        self.kill()
        self.process, _ = start_redis(self.directory, *AOF, port=self.port)

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    """A redis-server of the test's own, with AOF, that it may kill and restart."""
    server = AofRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
