"""``trio-scrape run`` as a user runs it: a subprocess against a loopback server."""

from __future__ import annotations

import codecs
import functools
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import trio_scrape
from trio_scrape.cli import app as _cli

from .site import Reply, Request, Site, html_page

CLI = [sys.executable, "-m", "trio_scrape"]


async def cli(*args: str | bytes, stdin: bytes | None = None, cwd: Path | None = None) -> Any:
    with trio.fail_after(60):
        return await trio.run_process(
            [*CLI, *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=cwd,
        )


def records(stdout: bytes) -> list[dict[str, Any]]:
    assert stdout.endswith(b"\n") or stdout == b""
    return [json.loads(line) for line in stdout.decode().splitlines()]


def small_site(site: Site, pages: int = 4) -> None:
    for i in range(pages):
        site.add(f"/{i}", Reply(body=html_page(f"P{i}", [f"/{i + 1}", "/0"])))


async def test_crawl_to_stdout_with_summary_on_stderr(site: Site) -> None:
    small_site(site)
    result = await cli("run", site.url("/0"), "--depth", "3", "--links")
    assert result.returncode == 0, result.stderr
    got = records(result.stdout)
    assert [r["title"] for r in got] == ["P0", "P1", "P2", "P3"]
    assert got[0]["links"] == [site.url("/1"), site.url("/0")]
    stderr = result.stderr.decode().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("trio-scrape: 4 pages (4 ok, 0 errors)")


@pytest.mark.parametrize("mode", ["memory", "processes", "state"])
async def test_a_redirect_target_linking_to_itself_is_fetched_once(
    site: Site, tmp_path: Path, mode: str
) -> None:
    site.add("/", Reply(body=html_page("Home", ["d"])))
    site.add("/d", Reply(301, headers={"Location": "/d/"}))
    site.add("/d/", Reply(body=html_page("D", ["#top"])))
    out = tmp_path / "out.jsonl"
    extra = {
        "memory": [],
        "processes": ["--processes", "2"],
        "state": ["--state", str(tmp_path / "state.db")],
    }[mode]
    result = await cli("run", site.url("/"), "--depth", "3", "-o", str(out), "-q", *extra)
    assert result.returncode == 0, result.stderr
    got = records(out.read_bytes())
    assert [(r["url"], r["final_url"]) for r in got] == [
        (site.url("/"), site.url("/")),
        (site.url("/d"), site.url("/d/")),
    ]
    assert site.hits["/d/"] == 1


# Options whose value is text (not a file path), for any command that has them.
_TEXT_OPTIONS = [
    "--allow-host", "--include", "--exclude", "--header", "--user-agent", "--proxy", "--select",
    "--select-all", "--sitemap", "--frontier", "--crawl-id", "--extract", "--follow",
    "--render-if", "--browser", "--depth", "--timeout", "--format", "--scope", "URL",
]  # fmt: skip


@pytest.mark.parametrize("option", _TEXT_OPTIONS)
async def test_a_non_utf8_argument_is_one_line_naming_its_option(option: str) -> None:
    # The shell hands over bytes; a byte 0x80-0xFF followed by ASCII is never UTF-8. Where
    # the byte is, and how the value is given, is drawn from a generator seeded by the option.
    rng = random.Random(option)
    bad = b"a" * rng.randrange(3) + bytes([rng.randrange(0x80, 0x100)]) + b"b" * rng.randrange(3)
    url = b"http://127.0.0.1:1/"
    if option == "URL":
        given: list[bytes] = [url + bad]
    elif rng.random() < 0.5:
        given = [option.encode(), bad]
    else:
        given = [option.encode() + b"=" + bad]
    args = [url, *given] if rng.random() < 0.5 else [*given, url]
    result = await cli("run", *args, "--no-robots", "-q")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count(b"\n") == 1, result.stderr
    assert result.stderr.startswith(f"trio-scrape: error: {option}: must be UTF-8".encode())
    assert repr(bad)[2:-1].encode() in result.stderr  # the bytes as given: b'a\\xffb'
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["-o", "--output", "--state", "--seeds-file"])
async def test_a_non_utf8_file_name_is_taken_as_given(
    site: Site, tmp_path: Path, option: str
) -> None:
    # A Linux file name is bytes: one that is not UTF-8 is a name like any other.
    small_site(site, 1)
    name = os.fsencode(tmp_path) + b"/f\xff\xfe"
    named = tmp_path / os.fsdecode(b"f\xff\xfe")
    out = tmp_path / "out.jsonl"
    if option == "--seeds-file":
        named.write_text(site.url("/0") + "\n")
        args: list[str | bytes] = [option, name, "-o", str(out)]
    elif option == "--state":
        args = [site.url("/0"), option, name, "-o", str(out)]
    else:
        args, out = [site.url("/0"), option, name], named
    result = await cli("run", *args)
    assert result.returncode == 0, result.stderr
    assert [r["title"] for r in records(out.read_bytes())] == ["P0"]
    assert named.exists()


async def test_quiet_prints_nothing_on_stderr(site: Site) -> None:
    small_site(site)
    result = await cli("run", site.url("/0"), "-q")
    assert result.returncode == 0 and result.stderr == b"" and len(records(result.stdout)) == 1


async def test_csv_by_extension_and_format_override(site: Site, tmp_path: Path) -> None:
    small_site(site)
    out = tmp_path / "out.csv"
    result = await cli("run", site.url("/0"), "--depth", "1", "-o", str(out), "-q")
    assert result.returncode == 0 and result.stdout == b""
    lines = out.read_text().splitlines()
    assert lines[0].startswith("url,final_url,status,ok,") and len(lines) == 3
    result = await cli("run", site.url("/0"), "-o", str(out), "--format", "jsonl", "-q")
    assert json.loads(out.read_text())["title"] == "P0"


async def test_seeds_file_and_stdin(site: Site, tmp_path: Path) -> None:
    small_site(site)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# comment\n{site.url('/1')}\n\n{site.url('/2')}\n")
    result = await cli("run", "--seeds-file", str(seeds), site.url("/3"))
    assert result.returncode == 0
    assert sorted(r["title"] for r in records(result.stdout)) == ["P1", "P2", "P3"]
    result = await cli("run", "--seeds-file", "-", stdin=site.url("/2").encode() + b"\n")
    assert [r["title"] for r in records(result.stdout)] == ["P2"]
    # A file saved with a byte-order mark (Windows' Notepad): the mark is not the URL's.
    seeds.write_bytes(codecs.BOM_UTF8 + f"{site.url('/1')}\r\n".encode())
    result = await cli("run", "--seeds-file", str(seeds))
    assert result.returncode == 0, result.stderr
    assert [r["title"] for r in records(result.stdout)] == ["P1"]


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_extract_and_follow_hooks_from_a_module(
    site: Site, tmp_path: Path, processes: str
) -> None:
    small_site(site)
    (tmp_path / "myhooks.py").write_text(
        "async def extract(page):\n"
        "    return {'upper': page.title.upper()}\n"
        "def follow(page):\n"
        "    return [u for u in page.links if u.endswith('/1')]\n"
    )
    result = await cli(
        "run",
        site.url("/0"),
        "--depth",
        "5",
        "--extract",
        "myhooks:extract",
        "--follow",
        "myhooks:follow",
        "--processes",
        processes,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [r["data"] for r in records(result.stdout)] == [{"upper": "P0"}, {"upper": "P1"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ht!tp://x"], "invalid URL 'ht!tp://x'"),
        (["http://127.0.0.1:1/" + "a" * 3000], "(URL longer than 2048 characters)"),
        (["http://127.0.0.1:1/", "--workers", "0"], "--workers: must be at least 1"),
        (["http://127.0.0.1:1/", "--timeout", "-1"], "--timeout: must be positive"),
        (["http://127.0.0.1:1/", "--timeout", "soon"], "--timeout: must be a number, not 'soon'"),
        (["--seeds-file", "/no/such/file"], "--seeds-file: cannot read"),
        (
            ["http://127.0.0.1:1/", "--extract", "no_such_module_xyz:f"],
            "--extract: no module named 'no_such_module_xyz'",
        ),
        (["http://127.0.0.1:1/", "--extract", "json:no_such_function"], "has no 'no_such"),
        (["http://127.0.0.1:1/", "--extract", "nocolon"], "expected MODULE:FUNCTION"),
        (["http://127.0.0.1:1/", "--header", "no colon"], "--header: expected 'Name: value'"),
        (["http://127.0.0.1:1/", "--include", "("], "--include: bad regular expression"),
        (
            ["http://127.0.0.1:1/", "--scope", "planet"],
            "--scope: must be one of origin, host, domain, any, not 'planet'",
        ),
        (["http://127.0.0.1:1/", "--processes", "0"], "--processes: must be at least 1"),
        (["http://127.0.0.1:1/", "--processes", "many"], "--processes: expected a number or"),
        (["http://127.0.0.1:1/", "--no-such-flag"], "No such option: --no-such-flag"),
        ([], "no seed URLs"),
    ],
)
async def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    result = await cli("run", *args)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("trio-scrape: error: ")
    assert message in stderr and "Traceback" not in stderr
    assert result.stdout == b""


async def test_unwritable_output_exits_1(site: Site, tmp_path: Path) -> None:
    small_site(site)
    result = await cli("run", site.url("/0"), "-o", str(tmp_path / "missing" / "out.jsonl"))
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and b"cannot open output" in result.stderr
    result = await cli("run", site.url("/0"), "-o", "/dev/full")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "trio-scrape: error: cannot write records to '/dev/full': No space left on device"
    ]
    spider = tmp_path / "spider.py"
    spider.write_text(
        "import trio_scrape\nrouter = trio_scrape.Router()\n"
        "router.add(None, lambda ctx: {'url': ctx.page.url})\n"
    )
    result = await cli("crawl", str(spider), site.url("/0"), "-o", "/dev/full")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "trio-scrape: error: cannot write items to '/dev/full': No space left on device"
    ]


async def test_version() -> None:
    result = await cli("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"trio-scrape {trio_scrape.__version__}"


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_signal_stops_gracefully_and_flushes(
    site: Site, tmp_path: Path, signum: int, code: int, processes: str
) -> None:
    async def slow(request: Request) -> Reply:
        n = int(request.path.strip("/"))
        if n > 0:
            await trio.sleep(1.0)
        return Reply(body=html_page(f"P{n}", [f"/{n + 1}", f"/{n + 2}"]))

    site.fallback = None
    for i in range(200):
        site.add(f"/{i}", slow)
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    with err.open("wb") as stderr:
        async with trio.open_nursery() as nursery:
            process = await nursery.start(
                functools.partial(
                    trio.run_process,
                    [
                        *CLI,
                        "run",
                        site.url("/0"),
                        "--depth",
                        "100",
                        "--workers",
                        "2",
                        "--grace",
                        "5",
                        "--processes",
                        processes,
                        "-o",
                        str(out),
                    ],
                    stderr=stderr,
                    check=False,
                )
            )
            with trio.fail_after(30):
                while site.hits["/1"] == 0 or site.hits["/2"] == 0:
                    await site.hit_event.wait()
                process.send_signal(signum)
                returncode = await process.wait()
    assert returncode == code, err.read_text()
    got = records(out.read_bytes())
    # /0 was done before the signal; /1 and /2 were in flight and finished within the grace.
    assert sorted(r["title"] for r in got) == ["P0", "P1", "P2"]
    assert all(r["ok"] for r in got)
    assert "stopping" in err.read_text()


@pytest.mark.parametrize("processes", ["1", "2"])
async def test_second_sigint_stops_at_once(site: Site, tmp_path: Path, processes: str) -> None:
    async def stuck(request: Request) -> Reply:
        if request.path != "/0":
            await trio.sleep(60)
        return Reply(body=html_page("P0", ["/stuck"]))

    site.fallback = None
    site.add("/0", stuck)
    site.add("/stuck", stuck)
    out = tmp_path / "out.jsonl"
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [
                    *CLI,
                    "run",
                    site.url("/0"),
                    "--depth",
                    "1",
                    "--grace",
                    "60",
                    "--processes",
                    processes,
                    "-o",
                    str(out),
                ],
                stderr=subprocess.DEVNULL,
                check=False,
            )
        )
        with trio.fail_after(20):
            while site.hits["/stuck"] == 0:
                await site.hit_event.wait()
            process.send_signal(signal.SIGINT)
            await trio.sleep(0.3)
            process.send_signal(signal.SIGINT)
            returncode = await process.wait()
    assert returncode == 130
    assert [r["title"] for r in records(out.read_bytes())] == ["P0"]


def test_options_become_the_library_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI only builds a CrawlConfig and hands it over: check the config it builds."""
    built: list[tuple[list[str], trio_scrape.CrawlConfig]] = []

    async def fake_crawl(
        seeds: list[str], config: trio_scrape.CrawlConfig, sink: Any, **_: Any
    ) -> Any:
        built.append((seeds, config))
        await sink.aclose()
        return 0, None

    monkeypatch.setattr(_cli, "_crawl", fake_crawl)
    with pytest.raises(SystemExit) as info:
        _cli.main(
            [
                "run",
                "http://a.test/",
                "--depth",
                "3",
                "--max-pages",
                "50",
                "--scope",
                "domain",
                "--allow-host",
                "*.b.test",
                "--include",
                "x",
                "--exclude",
                "y",
                "--workers",
                "8",
                "--buffer",
                "2",
                "--timeout",
                "4.5",
                "--deadline",
                "60",
                "--grace",
                "1",
                "--retries",
                "5",
                "--no-robots",
                "--per-host",
                "3",
                "--delay",
                "0.5",
                "--delay-jitter",
                "0.2",
                "--autothrottle",
                "--max-retry-after",
                "30",
                "--max-bytes",
                "1000",
                "--max-redirects",
                "3",
                "--header",
                "X-A: 1",
                "--user-agent",
                "bot/1",
                "--http2",
                "--links",
                "-q",
                "-o",
                os.devnull,
            ]
        )
    assert info.value.code == 0
    [(seeds, config)] = built
    assert seeds == ["http://a.test/"]
    assert config == trio_scrape.CrawlConfig(
        depth=3,
        max_pages=50,
        scope="domain",
        allow_hosts=("*.b.test",),
        include=("x",),
        exclude=("y",),
        workers=8,
        buffer=2,
        timeout=4.5,
        deadline=60,
        grace=1,
        retries=5,
        robots=False,
        per_host=3,
        delay=0.5,
        delay_jitter=0.2,
        autothrottle=True,
        max_retry_after=30,
        max_bytes=1000,
        max_redirects=3,
        headers={"X-A": "1"},
        user_agent="bot/1",
        http2=True,
        links=True,
    )


async def test_config_file_sets_options_and_the_command_line_wins(
    site: Site, tmp_path: Path
) -> None:
    small_site(site, pages=6)
    (tmp_path / "crawl.toml").write_text(
        f'urls = ["{site.url("/0")}"]\n'
        "depth = 5\n"
        "max-pages = 3\n"
        'select = ["heading=title"]\n'
        "robots = false\n"
        "quiet = true\n"
    )
    result = await cli("run", "--config", str(tmp_path / "crawl.toml"))
    assert result.returncode == 0, result.stderr
    got = records(result.stdout)
    assert len(got) == 3 and got[0]["data"] == {"heading": "P0"}
    assert site.robots_log == []
    # The command line wins over the file.
    result = await cli("run", "--config", str(tmp_path / "crawl.toml"), "--max-pages", "5")
    assert len(records(result.stdout)) == 5


async def test_pyproject_table_is_read_from_the_working_directory(
    site: Site, tmp_path: Path
) -> None:
    small_site(site, pages=4)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.trio-scrape]\ndepth = 1\nformat = "csv"\n'
    )
    result = await cli("run", site.url("/0"), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("url,final_url") and len(lines) == 3  # /0 and /1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depht = 2\n", "unknown option 'depht'"),
        ("depth = [\n", "is not valid TOML"),
        ('workers = "many"\n', "--workers"),
    ],
)
async def test_bad_config_files_exit_2_with_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "c.toml").write_text(text)
    result = await cli("run", "http://127.0.0.1:1/", "--config", str(tmp_path / "c.toml"))
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


async def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = await cli("run", "http://127.0.0.1:1/", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and b"cannot read" in result.stderr


async def test_cache_lets_a_second_run_make_no_request(site: Site, tmp_path: Path) -> None:
    small_site(site, pages=5)
    site.add("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    cache = tmp_path / "cache"
    args = ["run", site.url("/0"), "--depth", "9", "--cache", str(cache), "-q"]
    first = await cli(*args)
    assert first.returncode == 0, first.stderr
    fetched, robots = len(site.log), len(site.robots_log)
    assert fetched == 6 and robots == 1  # /0.../4 and the 404 for /5
    second = await cli(*args, "--select", "heading=title")
    assert second.returncode == 0, second.stderr
    got = records(second.stdout)
    assert [r["data"].get("heading") for r in got[:5]] == ["P0", "P1", "P2", "P3", "P4"]
    assert [r["title"] for r in got] == [r["title"] for r in records(first.stdout)]
    # Only the 404 (not cached: only 2xx answers are) went to the server again.
    assert [r.path for r in site.log[fetched:]] == ["/5"] and len(site.robots_log) == robots


async def test_cache_ttl_expires_entries(site: Site, tmp_path: Path) -> None:
    small_site(site, pages=1)
    args = ["run", site.url("/0"), "--cache", str(tmp_path / "c"), "--no-robots", "-q"]
    assert (await cli(*args, "--cache-ttl", "0.001")).returncode == 0
    assert (await cli(*args, "--cache-ttl", "0.001")).returncode == 0
    assert site.paths() == ["/0", "/0"]  # expired: fetched again


async def test_cache_that_is_a_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = await cli("run", "http://127.0.0.1:1/", "--cache", str(tmp_path / "file"))
    assert result.returncode == 2 and b"--cache" in result.stderr


async def test_help_groups_options_and_shows_examples() -> None:
    result = await cli("run", "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for panel in ("Scope", "Politeness (per host)", "Extraction", "Resumable crawls", "Output"):
        assert panel in text, panel
    assert "Examples" in text and "--sitemap https://example.org/sitemap.xml" in text
    assert "[default: workers]" in text  # bracketed text survives rich markup


async def test_a_broken_pyproject_does_not_stop_a_crawl(site: Site, tmp_path: Path) -> None:
    small_site(site, pages=1)
    (tmp_path / "pyproject.toml").write_text("[project\nname = ")
    result = await cli("run", site.url("/0"), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(records(result.stdout)) == 1
