"""README's first command works as written: its crawl part is run here, in an empty
directory, with the demo's usual port taken."""

from __future__ import annotations

import json
import re
import shlex
import socket
from pathlib import Path

from .test_cli import cli

README = Path(__file__).parent.parent / "README.md"


def first_command() -> str:
    text = README.read_text(encoding="utf-8")
    quick_start = text[text.index("## Quick start") :]
    match = re.search(r"```sh\n(.*?)\n```", quick_start, re.S)
    assert match is not None
    return match.group(1)


async def test_readme_first_command_crawls_the_demo_site(tmp_path: Path) -> None:
    command = first_command()
    setup, _, crawl = command.rpartition(" && ")
    # The setup is the standard one; the crawl is the part that must work every time.
    assert setup == "python3 -m venv .venv && .venv/bin/pip install -q -e ."
    program, *args = shlex.split(crawl)
    assert program == ".venv/bin/trio-scrape" and args[0] == "demo"
    with socket.socket() as squatter:  # the port the old quick start used: taken, as it may be
        try:
            squatter.bind(("127.0.0.1", 8765))
            squatter.listen()
        except OSError:
            pass  # already taken by something else: the same test
        result = await cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 8
    assert sum(r["ok"] for r in records) == 6
    assert {r["error"]["kind"] for r in records if r["error"]} == {"http_status"}
    assert all(r["url"].startswith("http://127.0.0.1:") for r in records)
    assert ":8765/" not in records[0]["url"]
    assert "Demo news" in {r["title"] for r in records}
    assert result.stderr.decode().splitlines()[-1].startswith("trio-scrape: 8 pages (6 ok")


async def test_the_demo_server_serves_only_its_directory(tmp_path: Path) -> None:
    import functools

    import httpx
    import trio

    from trio_scrape.cli.demo import DEMO_ADDRESS, demo_site_dir, serve_directory

    root = demo_site_dir()

    def rewrite(base: str) -> dict[bytes, bytes]:
        return {DEMO_ADDRESS.encode(): base.encode()}

    async with trio.open_nursery() as nursery:
        base = await nursery.start(functools.partial(serve_directory, root, rewrite=rewrite))
        async with httpx.AsyncClient(base_url=base) as client:
            home = await client.get("/")
            assert home.status_code == 200 and b"Demo news" in home.content
            sitemap = await client.get("/sitemap.xml")
            assert f"{base}/sitemap-articles.xml".encode() in sitemap.content
            assert sitemap.headers["content-type"].startswith(("application/xml", "text/xml"))
            for escape in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/missing.html"):
                assert (await client.get(escape)).status_code == 404
            head = await client.head("/about.html")
            assert head.status_code == 200 and head.content == b""
        nursery.cancel_scope.cancel()
