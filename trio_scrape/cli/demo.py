"""``trio-scrape demo``: the bundled demo site, served on a free loopback port for one crawl.

The server is a small static file server on h11 (already installed: httpx's HTTP/1.1
parser), run as a task next to the crawl, so the first run needs no second terminal, no
network and no fixed port. The site's sitemaps name ``http://127.0.0.1:8765`` (the address
the docs' examples use); they are served with the real address instead.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import trio

__all__ = ["DEMO_ADDRESS", "demo_site_dir", "serve_directory"]

#: The address the demo site's own files (sitemaps) name.
DEMO_ADDRESS = "http://127.0.0.1:8765"
_MAX_REQUEST = 16 * 1024


def demo_site_dir() -> Path:
    """The demo site: packaged in the wheel as ``trio_scrape/_demo_site``, or the source
    tree's ``examples/site`` (an editable install).

    Raises:
        FileNotFoundError: neither is there.
    """
    here = Path(__file__).parent
    package = here.parent  # this file is trio_scrape/cli/demo.py
    for candidate in (package / "_demo_site", package.parent / "examples" / "site"):
        if (candidate / "index.html").is_file():
            return candidate
    raise FileNotFoundError("the demo site is not installed with this copy of trio-scrape")


async def serve_directory(
    root: Path,
    *,
    host: str = "127.0.0.1",
    rewrite: Callable[[str], dict[bytes, bytes]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the files under ``root`` over HTTP/1.1 on ``host`` and a free port until
    cancelled; ``task_status.started`` gets the base URL (``http://host:port``).
    ``rewrite(base)`` gives byte replacements applied to every file served.

    Raises:
        OSError: no port could be bound.
    """
    listeners = await trio.open_tcp_listeners(0, host=host)
    port = listeners[0].socket.getsockname()[1]
    base = f"http://{host}:{port}"
    replacements = rewrite(base) if rewrite is not None else {}
    root = Path(await trio.Path(root).resolve())

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(stream, root, replacements)
        except (trio.BrokenResourceError, h11.ProtocolError):
            pass  # a client that went away or spoke nonsense: only its connection ends

    async with trio.open_nursery() as nursery:
        task_status.started(base)
        await trio.serve_listeners(handle, listeners, handler_nursery=nursery)


async def _serve_connection(
    stream: trio.SocketStream, root: Path, replacements: dict[bytes, bytes]
) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)

    async def next_event() -> Any:
        while True:
            event = connection.next_event()
            if event is not h11.NEED_DATA:
                return event
            connection.receive_data(await stream.receive_some(65536))  # b"": end of stream

    async with stream:
        while True:
            request = await next_event()
            if not isinstance(request, h11.Request):
                return  # the client closed the connection
            while not isinstance(await next_event(), h11.EndOfMessage):
                pass  # a request body: not used
            # The files are a few KiB: read in the event loop, as a demo may.
            status, body, content_type = _answer(root, request, replacements)
            headers = [("Content-Length", str(len(body))), ("Server", "trio-scrape-demo")]
            if content_type:
                headers.append(("Content-Type", content_type))
            data = connection.send(h11.Response(status_code=status, headers=headers)) or b""
            if body and request.method != b"HEAD":
                data += connection.send(h11.Data(data=body)) or b""
            data += connection.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()


def _answer(
    root: Path, request: h11.Request, replacements: dict[bytes, bytes]
) -> tuple[int, bytes, str | None]:
    target = request.target.decode("ascii", "replace").split("?", 1)[0].split("#", 1)[0]
    if request.method not in (b"GET", b"HEAD"):
        return 405, b"", None
    path = (root / target.lstrip("/")).resolve()
    if path.is_dir():
        path = path / "index.html"
    if not path.is_relative_to(root) or not path.is_file():
        return 404, b"<!doctype html><title>Not found</title><h1>Not found</h1>", "text/html"
    body = path.read_bytes()
    for old, new in replacements.items():
        body = body.replace(old, new)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith("text/") or content_type.endswith("xml"):
        content_type += "; charset=utf-8"
    return 200, body, content_type
