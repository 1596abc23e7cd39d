"""``trio-scrape parse`` and ``trio-scrape shell`` against the loopback quotes site: through a
pipe, and the shell through a pseudo-terminal as someone would type at it."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from examples import quotes_spider
from examples.quotes_site import QuotesSite

from .test_cli import CLI, cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quotes_spider.toml"


@pytest.fixture
def quotes_in_thread() -> Any:
    from examples.quotes_site import serve_in_thread

    with serve_in_thread(quotes=40, seed=11) as site:
        yield site


async def test_parse_prints_a_toml_routes_items_requests_and_unmatched_selectors(
    quotes_in_thread: QuotesSite,
) -> None:
    site = quotes_in_thread
    result = await cli("parse", site.base + "/", "--spider", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    first = [q for q in site.quotes() if q.page == 1]
    assert report["route"] == "listing" and report["status"] == 200
    assert report["items"] == [
        {"type": "quote", "text": q.text, "author": q.author, "tags": list(q.tags)} for q in first
    ]
    assert report["requests"] == [
        *(
            {"url": site.base + q.author_url, "label": "author", "data": {"quote": q.text}}
            for q in first
        ),
        {"url": site.base + "/api/quotes?page=1", "label": "api"},
        {"url": site.base + "/search", "label": "search"},
        {"url": site.base + "/page/2/"},
    ]
    assert report["unmatched"] == []
    # The last listing page has no next link: the selector that matched nothing is named.
    last = f"{site.base}/page/{site.listing_pages()}/"
    result = await cli("parse", last, "--spider", str(EXAMPLE))
    assert json.loads(result.stdout)["unmatched"] == ["routes.listing.pagination.next"]
    # By label, and one page fetched per parse.
    author = site.authors()[0]
    result = await cli(
        "parse", f"{site.base}/author/{author.slug}/", "-s", str(EXAMPLE), "--label", "author"
    )
    [item] = json.loads(result.stdout)["items"]
    assert item["name"] == author.name and item["born_date"] == author.born_date
    assert site.count("GET", f"/author/{author.slug}/") == 1


async def test_parse_takes_a_config_file_with_routes_as_its_spider(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    site = quotes_in_thread
    by_spider = await cli("parse", site.base + "/", "--spider", str(EXAMPLE))
    by_config = await cli("parse", site.base + "/", "--config", str(EXAMPLE))
    assert by_config.returncode == 0, by_config.stderr
    assert json.loads(by_config.stdout) == json.loads(by_spider.stdout)
    assert json.loads(by_config.stdout)["items"]
    # An options file (no [routes]) is not a spider: parse still needs one.
    options_file = tmp_path / "options.toml"
    options_file.write_text("timeout = 5\n")
    for extra in ([], ["--config", str(options_file)]):
        result = await cli("parse", site.base + "/", *extra)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            b"trio-scrape: error: --spider: missing (the spider file, or a --config file with"
            b" [routes])"
        ]


async def test_parse_runs_a_python_spiders_handler_and_says_a_missing_one(
    quotes_in_thread: QuotesSite,
) -> None:
    site = quotes_in_thread
    spider = str(Path(quotes_spider.__file__))
    result = await cli(
        "parse", site.base + "/api/quotes?page=4", "--spider", spider, "--label", "api"
    )
    report = json.loads(result.stdout)
    assert [i["text"] for i in report["items"]] == [q.text for q in site.quotes()[30:]]
    assert report["requests"] == [] and "unmatched" not in report  # the last page
    assert result.returncode == 0
    result = await cli("parse", site.base + "/", "--spider", spider, "--label", "nope")
    report = json.loads(result.stdout)
    assert "no handler for label 'nope'" in report["error"] and report["route"] is None
    assert result.returncode == 1  # the report says why


async def test_shell_reads_commands_from_a_pipe(quotes_in_thread: QuotesSite) -> None:
    site = quotes_in_thread
    commands = (
        "print(page.status, page.title)\n"
        "ctx.texts('small.author')[:2]\n"
        "fetch('/api/quotes?page=2')\n"
        "ctx.jmes('quotes[0].text')\n"
        "for n in range(2):\n"
        "    print('n', n)\n"
        "\n"
        "1 / 0\n"
        "print('after the error')\n"
    )
    result = await cli(
        "shell", site.base + "/", "--user-agent", "probe-agent/1", stdin=commands.encode()
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode().splitlines()
    first = [q for q in site.quotes() if q.page == 1]
    assert out == [
        "200 Quotes to Scrape",
        repr([q.author for q in first[:2]]),
        repr(site.quotes()[10].text),
        "n 0",
        "n 1",
        "after the error",
    ]
    assert "ZeroDivisionError" in result.stderr.decode()
    # The crawl's own fetcher: its options apply.
    assert {r.headers.get("user-agent") for r in site.requests("GET")} == {"probe-agent/1"}


async def test_the_shell_keeps_one_session_and_submits_forms(
    quotes_in_thread: QuotesSite,
) -> None:
    """A form ``ctx.form`` builds is fetched as it is, and the cookies a page sets go with
    the next fetch: logged in once, the next pages are logged in (a Logout link)."""
    commands = (
        "fetch('/login')\n"
        "fetch(ctx.form(values={'username': 'ada', 'password': 'secret'}))\n"
        "print(page.method, page.final_url)\n"
        "fetch('/page/2/')\n"
        "print(ctx.css_first(\"a[href='/logout']\") is not None, len(ctx.css('a.goodreads')))\n"
    )
    site = quotes_in_thread
    result = await cli("shell", site.base + "/", stdin=commands.encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        f"POST {site.base}/",
        f"True {sum(1 for q in site.quotes() if q.page == 2)}",
    ]
    assert site.count("POST", "/login") == 1


def test_shell_in_a_terminal(quotes_in_thread: QuotesSite) -> None:
    """Typed at a pseudo-terminal: the banner, a prompt, an answer; Ctrl-D ends it."""
    site = quotes_in_thread
    primary, secondary = os.openpty()
    env = {**os.environ, "TERM": "dumb"}
    process = subprocess.Popen(
        [*CLI, "shell", site.base + "/"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes, timeout: float = 30.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {seen[-500:]!r}"
            ready, _, _ = select.select([primary], [], [], left)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the terminal closed: the process ended
                    chunk = b""
                assert chunk, f"the shell ended before {marker!r}: {seen[-500:]!r}"
                seen += chunk

    try:
        read_until(b"ctx.jmes(expr)")  # the banner
        read_until(b">>> ")
        os.write(primary, b"print('title:', page.title)\n")
        read_until(b"title: Quotes to Scrape")
        read_until(b">>> ")
        # exit() rather than Ctrl-D: a Ctrl-D typed while readline is switching the
        # terminal's mode can be taken as a plain character and lost.
        os.write(primary, b"exit()\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)


async def test_shell_and_parse_refuse_a_bad_url_in_one_line(tmp_path: Path) -> None:
    result = await cli("shell", "not a url")
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert "invalid URL" in line
    (tmp_path / "bad.toml").write_text("[routes.a]\nitems = { fields = { t = 'h1[' } }\n")
    result = await cli("parse", "http://127.0.0.1:9/", "--spider", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert "line 2: routes.a.items.fields.t: bad CSS selector" in line


_OPTIONS_SPIDER = """
[options]
user-agent = "spider-agent/1"
header = ["X-From: spider", "X-Spider: yes"]
workers = 4                # a crawl's option: passed over by parse and shell
[routes.all]
match = "*"
[[routes.all.items]]
fields.title = "title"
"""


async def test_parse_and_shell_apply_the_spiders_options_then_config_then_command_line(
    quotes_in_thread: QuotesSite, tmp_path: Path
) -> None:
    site = quotes_in_thread
    (tmp_path / "spider.toml").write_text(_OPTIONS_SPIDER)
    (tmp_path / "crawl.toml").write_text(
        'user-agent = "config-agent/1"\nheader = ["X-From: config"]\nmax-pages = 5\n'
    )

    async def seen(*args: str, stdin: bytes | None = None) -> tuple[Any, set[Any]]:
        before = len(site.log)
        result = await cli(*args, stdin=stdin, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        headers = {
            (r.headers.get("user-agent"), r.headers.get("x-from"), r.headers.get("x-spider"))
            for r in site.log[before:]
        }
        return result, headers

    parse = ("parse", site.base + "/", "--spider", "spider.toml")
    result, headers = await seen(*parse)
    assert headers == {("spider-agent/1", "spider", "yes")}
    assert json.loads(result.stdout)["items"] == [{"title": "Quotes to Scrape"}]
    # The file's values replace the spider's (its header list too), as for crawl.
    _, headers = await seen(*parse, "--config", "crawl.toml")
    assert headers == {("config-agent/1", "config", None)}
    _, headers = await seen(*parse, "--config", "crawl.toml", "--user-agent", "typed/1")
    assert headers == {("typed/1", "config", None)}
    _, headers = await seen(*parse, "--header", "X-From: typed")  # merged with the spider's by name
    assert headers == {("spider-agent/1", "typed", "yes")}
    shell = ("shell", site.base + "/", "--spider", "spider.toml", "--config", "crawl.toml")
    result, headers = await seen(*shell, stdin=b"print(page.items)\n")
    assert headers == {("config-agent/1", "config", None)}
    assert result.stdout.decode().splitlines() == [repr([{"title": "Quotes to Scrape"}])]
    _, headers = await seen("shell", site.base + "/", "--header", "X-From: typed", stdin=b"")
    assert {h[1:] for h in headers} == {("typed", None)}  # no spider, no file


async def test_a_toml_spiders_bad_option_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "spider.toml").write_text(_OPTIONS_SPIDER.replace("workers = 4 ", "wokers = 4 "))
    for command in (
        ("crawl", "spider.toml", "http://127.0.0.1:9/"),
        ("parse", "http://127.0.0.1:9/", "--spider", "spider.toml"),
        ("shell", "http://127.0.0.1:9/", "-s", "spider.toml"),
    ):
        result = await cli(*command, cwd=tmp_path)
        assert result.returncode == 2, command
        [line] = result.stderr.decode().splitlines()
        assert line.endswith("spider.toml': line 5: options.wokers: unknown option"), line
    (tmp_path / "spider.toml").write_text(
        _OPTIONS_SPIDER.replace('user-agent = "spider-agent/1"', "user-agent = ['a', 'b']")
    )
    result = await cli("crawl", "spider.toml", "http://127.0.0.1:9/", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert line.endswith("line 3: options.user-agent: expected one value, not a list"), line


async def test_a_bad_option_value_in_a_toml_spider_names_its_line(tmp_path: Path) -> None:
    """A value the option refuses (its type, its bounds) in a TOML spider's [options] is named
    by its line; given on the command line, or by a --config file, by its flag."""
    cases = [
        ('"x"', "line 5: options.workers: must be an integer, not 'x'"),
        ("0", "line 5: options.workers: must be at least 1, not 0"),
    ]
    for value, expected in cases:
        (tmp_path / "spider.toml").write_text(
            _OPTIONS_SPIDER.replace("workers = 4 ", f"workers = {value} ")
        )
        result = await cli("crawl", "spider.toml", "http://127.0.0.1:9/", cwd=tmp_path)
        assert result.returncode == 2
        [line] = result.stderr.decode().splitlines()
        assert line == f"trio-scrape: error: SPIDER 'spider.toml': {expected}", line
    result = await cli(
        "crawl", "spider.toml", "http://127.0.0.1:9/", "--workers", "-3", cwd=tmp_path
    )
    [line] = result.stderr.decode().splitlines()
    assert line == "trio-scrape: error: --workers: must be at least 1, not -3", line
    (tmp_path / "crawl.toml").write_text('timeout = "soon"\n')
    result = await cli("run", "http://127.0.0.1:9/", "--config", "crawl.toml", cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert line == "trio-scrape: error: --timeout: must be a number, not 'soon'", line


async def test_a_bad_option_value_in_a_python_spider_names_the_spider(tmp_path: Path) -> None:
    """A Python spider's ``options`` are named by the spider and the key, as a TOML spider's
    are; None is no value (the option's default)."""
    spider = "from trio_scrape import Router\nrouter = Router()\noptions = {OPTIONS}\n"
    cases = [
        ('{"workers": 0}', "options.workers: must be at least 1, not 0"),
        ('{"workers": None, "delay": "x"}', "options.delay: must be a number, not 'x'"),
        ('{"wokers": 3}', "options: unknown option 'wokers'"),
    ]
    for options, expected in cases:
        (tmp_path / "spider.py").write_text(spider.replace("{OPTIONS}", options))
        result = await cli("crawl", "spider.py", "http://127.0.0.1:9/", cwd=tmp_path)
        assert result.returncode == 2
        [line] = result.stderr.decode().splitlines()
        assert line == f"trio-scrape: error: SPIDER 'spider.py': {expected}", line


def test_the_shell_opens_ipython_in_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPython is not a test dependency (it and its dozen packages would double the test
    extra's install): a stand-in module named IPython takes its place, to check that a
    terminal's session is IPython's, with the shell's names, when it is installed."""
    import sys
    import types

    from trio_scrape.cli import probe

    started: list[dict[str, Any]] = []
    stand_in = types.ModuleType("IPython")

    def start_ipython(*, argv: list[str], user_ns: dict[str, Any], **kwargs: Any) -> None:
        started.append({"argv": argv, "user_ns": user_ns, **kwargs})

    stand_in.start_ipython = start_ipython  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", stand_in)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(isatty=lambda: True))
    namespace = {"page": object(), "ctx": object()}
    probe._interact(namespace, "the banner")
    [call] = started
    assert call["argv"] == [] and call["user_ns"] is namespace
    assert call["display_banner"] is False


async def test_a_toml_spider_given_as_run_s_config_points_to_crawl() -> None:
    spider = Path(quotes_spider.__file__).with_suffix(".toml")
    for command in ("run", "crawl"):
        args = [command, *([str(Path(quotes_spider.__file__))] if command == "crawl" else [])]
        result = await cli(*args, "http://127.0.0.1:9/", "--config", str(spider))
        assert result.returncode == 2
        assert result.stderr.decode().splitlines() == [
            f"trio-scrape: error: {spider}: a TOML spider (it has [routes]), not a file of "
            f"options: run it with `trio-scrape crawl {spider}`"
        ]
