"""A real 3-node Redis Cluster on 127.0.0.1 for the tests: three redis-server processes with
cluster mode on (free ports, their cluster bus on free ports too, AOF with ``appendfsync
always`` so a node killed and restarted loses nothing, unless ``aof=False``), joined by
``redis-cli --cluster create`` with no replicas; every node is stopped by its pid. Tests skip,
saying so, when redis-server or redis-cli is absent."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .redis_server import REDIS_SERVER, free_port, stop

REDIS_CLI = shutil.which("redis-cli")

__all__ = ["RedisClusterNodes", "redis_cluster"]

_START_TIMEOUT = 20.0  # seconds for a node to listen, or the cluster to reach state ok


def cluster_info(port: int) -> str:
    """``CLUSTER INFO`` of the node on ``port`` ("" when it does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"CLUSTER INFO\r\n")
            data = b""
            while b"cluster_state" not in data or not data.endswith(b"\r\n\r\n"):
                chunk = sock.recv(65_536)
                if not chunk:
                    break
                data += chunk
                if data.startswith(b"-"):  # an error (still loading): one line
                    break
            return data.decode(errors="replace")
    except OSError:
        return ""


class RedisClusterNodes:
    """Three cluster nodes on loopback; :meth:`kill` and :meth:`restart` one of them."""

    def __init__(self, directory: Path, count: int = 3, *, aof: bool = True) -> None:
        if REDIS_SERVER is None or REDIS_CLI is None:
            pytest.skip("redis-server and redis-cli are needed (apt-get install redis-server)")
        self.directory = directory
        self.aof = ("--appendonly", "yes", "--appendfsync", "always") if aof else ()
        self.ports = [free_port() for _ in range(count)]
        self.bus_ports = [free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        try:
            for i in range(count):
                self.start(i)
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *self.addresses, "--cluster-replicas", "0",
                 "--cluster-yes"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=_START_TIMEOUT,
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    @property
    def url(self) -> str:
        """The frontier URL of the cluster: every node as a start node."""
        return "redis+cluster://" + ",".join(self.addresses) + "/0"

    def start(self, i: int) -> None:
        """Start node ``i`` (again) from its directory, and wait until it listens."""
        assert REDIS_SERVER is not None
        port = self.ports[i]
        directory = self.directory / str(port)
        directory.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus_ports[i]),
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
             "--dir", str(directory), "--save", "", *self.aof],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes[i] = process
        deadline = time.monotonic() + _START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.01)  # a bounded poll of another process starting
        raise RuntimeError(f"redis-server did not start on port {port}")

    def wait_ok(self) -> None:
        """Wait (bounded) until every running node says ``cluster_state:ok``."""
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            running = [p for p, proc in zip(self.ports, self.processes, strict=True) if proc]
            if all("cluster_state:ok" in cluster_info(port) for port in running):
                return
            time.sleep(0.05)  # a bounded poll of the nodes' gossip
        raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")

    def owner(self, key: str) -> int:
        """The index of the node serving ``key``'s slot (the others answer MOVED)."""
        for i, port in enumerate(self.ports):
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"EXISTS {key}\r\n".encode())
                if not sock.recv(4096).startswith(b"-MOVED"):
                    return i
        raise RuntimeError(f"no node serves {key}")

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``: only its append-only file remains."""
        process = self.processes[i]
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
        self.processes[i] = None

    def restart(self, i: int) -> None:
        """Kill node ``i`` if it runs, start it again, and wait for the cluster to be ok."""
        self.kill(i)
        self.start(i)
        self.wait_ok()

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                stop(process)
            self.processes[i] = None


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """One 3-node cluster per test module; tests keep apart by their own crawl ids."""
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes
    finally:
        nodes.stop()
