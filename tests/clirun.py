"""Run ``trio-scrape`` in-process (``_cli.main``) against a loopback server in a thread.

In-process runs take milliseconds where a subprocess takes half a second of imports, so the
hostile-input tests can try hundreds of command lines. The server is the standard library's
threaded HTTP server on 127.0.0.1, since ``main()`` runs its own ``trio.run`` (a test using
it is synchronous, and cannot share a Trio loop with the async ``site`` fixture).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trio_scrape.cli import app as _cli

__all__ = ["Outcome", "ThreadSite", "forget_module", "run_cli", "serve_in_thread", "strict_json"]


@dataclasses.dataclass
class Outcome:
    code: int
    stderr: str
    output: bytes  # what the crawl wrote to its -o file (b"" if none)

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


def run_cli(*args: str, output: str | None = None) -> Outcome:
    """``trio-scrape ARGS`` in this process: its exit code, stderr, and ``output``'s bytes."""
    stderr = io.StringIO()
    code: Any = None
    with contextlib.redirect_stderr(stderr):
        try:
            _cli.main(list(args))
        except SystemExit as exc:
            code = exc.code
    data = b""
    if output is not None:
        with contextlib.suppress(OSError), open(output, "rb") as file:
            data = file.read()
    return Outcome(
        code if isinstance(code, int) else 0 if code is None else 1, stderr.getvalue(), data
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN and Infinity (Python's json takes them by default)."""
    return json.loads(text, parse_constant=_no_constant)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up early (the max_bytes cap): not the crawler's stderr


class ThreadSite:
    """Pages by path, served on 127.0.0.1 from a thread; ``url(path)`` for links."""

    def __init__(self, pages: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.pages = pages
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = site.pages.get(
                    self.path, (404, {}, b"<title>Not found</title>")
                )
                self.send_response(status)
                for name, value in {"Content-Type": "text/html", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def serve_in_thread(pages: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[ThreadSite]:
    site = ThreadSite(pages)
    thread = threading.Thread(target=site.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(10)


def forget_module(name: str) -> None:
    """Drop a hook module so that the next import reads its file again."""
    sys.modules.pop(name, None)
