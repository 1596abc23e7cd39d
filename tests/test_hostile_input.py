"""Issue #17: every value a user can type gets exit 2 and one line, or a working crawl with
strict JSON records. One test (or one parametrized case) per fault the issue lists."""

from __future__ import annotations

import csv
import gzip
import io
import socket
import socketserver
import struct
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_scrape import ConfigError, CrawlConfig, scrape
from trio_scrape.model.config import MAX_BYTES, MAX_WORKERS

from .clirun import Outcome, ThreadSite, forget_module, run_cli, serve_in_thread, strict_json

CLOSED = "http://127.0.0.1:1/"  # nothing is fetched: these runs stop at the options


def page(title: str, *links: str) -> tuple[int, dict[str, str], bytes]:
    anchors = "".join(f'<a href="{href}">x</a>' for href in links)
    return 200, {}, f"<title>{title}</title>{anchors}".encode()


PAGES = {
    "/": page("Home", "/p1", "/p2"),
    "/p1": page("P1", "/p3"),
    "/p2": page("P2"),
    "/p3": page("P3"),
    "/gz": (200, {"Content-Encoding": "gzip"}, gzip.compress(b"<title>Zipped</title>")),
}


@pytest.fixture
def site() -> Iterator[ThreadSite]:
    with serve_in_thread(PAGES) as server:
        yield server


def usage_error(outcome: Outcome, *needles: str) -> str:
    assert outcome.code == 2, outcome
    [line] = outcome.lines
    assert line.startswith("trio-scrape: error: ") and "Traceback" not in outcome.stderr
    for needle in needles:
        assert needle in line, line
    return line


def config_file(tmp_path: Path, text: str | bytes, name: str = "c.toml") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


# 1, 2. Headers and user agents that httpx cannot send (it encodes str headers as ASCII).


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("X: é", "bad value for 'X': 'é'"),
        ("Ü: x", "bad header name 'Ü'"),
        ("X Y: z", "bad header name 'X Y'"),
        ("X: a\x01b", "bad value for 'X'"),
        ("Content-Length: 5", "'Content-Length' is set by the HTTP client"),
    ],
)
def test_headers_http_cannot_carry_exit_2(header: str, needle: str, tmp_path: Path) -> None:
    usage_error(run_cli("run", CLOSED, "--header", header), "--header: ", needle)
    toml = config_file(tmp_path, f"header = [{header!r}]\n".replace("'", '"', 2))
    if "\x01" not in header:  # TOML strings cannot hold a raw control character
        usage_error(run_cli("run", CLOSED, "--config", toml), "--header: ", needle)


@pytest.mark.parametrize("agent", ["é-bot", "bot\x7f", " bot", ""])
def test_user_agents_http_cannot_carry_exit_2(agent: str) -> None:
    usage_error(run_cli("run", CLOSED, "--user-agent", agent), "--user-agent: must be a non-empty")


# 3. Regular expressions that overflow or nest too deeply, not only re.error.


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("a{4294967296}", "the repetition number is too large"),
        ("a{99999999999999999999}", "the repetition number is too large"),
        ("(" * 2000 + ")" * 2000, "nested too deeply"),
        ("(", "missing ), unterminated subpattern"),
        # Python's re takes these; RE2, which matches in linear time, does not.
        (r"(a)\1", "invalid escape sequence: \\1 (not RE2 syntax"),
        ("(?=a)", "invalid perl operator: (?= (not RE2 syntax"),
        ("(?<!a)b", "invalid perl operator: (?<! (not RE2 syntax"),
    ],
)
@pytest.mark.parametrize("flag", ["--include", "--exclude"])
def test_bad_regexes_exit_2(flag: str, pattern: str, needle: str, tmp_path: Path) -> None:
    usage_error(run_cli("run", CLOSED, flag, pattern), f"{flag}: bad regular expression", needle)
    toml = config_file(tmp_path, f"{flag[2:]} = ['{pattern}']\n")
    usage_error(run_cli("run", CLOSED, "--config", toml), f"{flag}: bad regular expression")


# 4. Config files nested too deeply, not UTF-8, or shaped wrongly; a broken pyproject.toml.

_DEEP = "depth = " + "[" * 5000 + "]" * 5000 + "\n"
_UTF16 = "depth = 1\n".encode("utf-16")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_DEEP, "is nested too deeply"),
        ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "is nested too deeply"),
        (_UTF16, "is not UTF-8 text"),
        (b"depth = 1\n\xff\xfe", "is not UTF-8 text"),
        ("depth = 1" + "0" * 5000 + "\n", "is not valid TOML"),
        ("workers = 1.5\n", "--workers: must be an integer, not '1.5'"),
        ("workers = inf\n", "--workers: must be an integer, not 'inf'"),
        ("timeout = nan\n", "--timeout: must be a finite number, not nan"),
        ("workers = true\n", "--workers: must be an integer, not 'true'"),
        ("depth = [1, 2]\n", "depth: expected one value, not a list"),
        ("include = [{a = 1}]\n", "include: expected values, not a table"),
        ("robots = 'perhaps'\n", "--robots"),
    ],
)
def test_bad_config_files_exit_2(text: str | bytes, needle: str, tmp_path: Path) -> None:
    usage_error(run_cli("run", CLOSED, "--config", config_file(tmp_path, text)), needle)


def test_one_value_for_a_repeatable_option_is_a_list_of_one(tmp_path: Path) -> None:
    toml = config_file(tmp_path, "include = '('\n")  # a string, not taken letter by letter
    usage_error(run_cli("run", CLOSED, "--config", toml), "--include: bad regular expression '('")


@pytest.mark.parametrize(
    "text",
    [_DEEP, _UTF16, "tool = 5\n", "[tool]\ntrio-scrape = 3\n".replace("3", "'x'"), "[project\n"],
)
def test_a_pyproject_we_cannot_read_is_ignored(
    text: str | bytes, site: ThreadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file(tmp_path, text, name="pyproject.toml")
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "out.jsonl")
    outcome = run_cli("run", site.url("/"), "-o", out, "-q", output=out)
    if text == "[tool]\ntrio-scrape = 'x'\n":  # valid TOML, our table malformed: ours to judge
        usage_error(outcome, "pyproject.toml [tool.trio-scrape]: expected a table of options")
        return
    assert outcome.code == 0 and outcome.stderr == "", outcome
    assert strict_json(outcome.output)["title"] == "Home"


# 5. SOCKS proxies: httpx's socks extra is a dependency, and they work.


class _Socks5(socketserver.BaseRequestHandler):
    """A SOCKS5 proxy (no authentication, CONNECT only) that relays to 127.0.0.1 only."""

    def handle(self) -> None:
        client: socket.socket = self.request
        greeting = client.recv(2)
        client.recv(greeting[1])
        client.sendall(b"\x05\x00")
        _, command, _, kind = client.recv(4)
        if kind == 1:
            host = socket.inet_ntoa(client.recv(4))
        else:
            host = client.recv(client.recv(1)[0]).decode()
        (port,) = struct.unpack("!H", client.recv(2))
        assert command == 1 and host == "127.0.0.1", (command, host)
        self.server.seen.append(f"{host}:{port}")  # type: ignore[attr-defined]
        with socket.create_connection((host, port)) as upstream:
            client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("0.0.0.0") + b"\x00\x00")
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            _pipe(client, upstream)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_a_socks_proxy_works(scheme: str, site: ThreadSite, tmp_path: Path) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Socks5) as proxy:
        proxy.daemon_threads = True
        proxy.seen = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            out = str(tmp_path / "out.jsonl")
            proxy_url = f"{scheme}://127.0.0.1:{proxy.server_address[1]}"
            outcome = run_cli(
                "run", site.url("/"), "--proxy", proxy_url, "--no-robots", "-o", out, output=out
            )
        finally:
            proxy.shutdown()
            thread.join(10)
    assert outcome.code == 0, outcome
    assert strict_json(outcome.output)["title"] == "Home"
    assert proxy.seen == [f"127.0.0.1:{site.port}"]  # type: ignore[attr-defined]


def test_socks_without_socksio_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # import fails, as if not installed
    with pytest.raises(ConfigError, match=r"proxy: a SOCKS proxy needs the socksio package"):
        CrawlConfig(proxy="socks5://127.0.0.1:1080")


# 6, 7. Malformed proxy URLs: one line, showing the value's repr.


@pytest.mark.parametrize(
    "proxy",
    ["http://[::1", "http://127.0.0.1\n:1", "ftp://127.0.0.1\n:1", "http://", "http://x:99999",
     "socks4://127.0.0.1:1", "127.0.0.1:3128", "http://a b:1"],
)  # fmt: skip
def test_malformed_proxies_exit_2_with_their_repr(proxy: str) -> None:
    usage_error(
        run_cli("run", CLOSED, "--proxy", proxy), "--proxy: must be an http://", repr(proxy)
    )


# 8. Counts and sizes have upper bounds; the largest allowed still crawls.


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--workers", str(10**30), "must be at most 10,000, not 1000000000000000000000000000000"),
        ("--workers", "100000000", "must be at most 10,000, not 100000000"),
        ("--buffer", "1000001", "must be at most 100,000"),
        ("--per-host", "99999", "must be at most 10,000"),
        ("--max-bytes", str(10**30), "must be at most 1,073,741,824"),
        ("--max-redirects", "1000", "must be at most 100"),
        ("--retries", "1000", "must be at most 100"),
        ("--timeout", "1e9", "must be at most 86,400"),
        ("--deadline", "1e300", "must be at most 31,536,000"),
        ("--delay", "inf", "must be a finite number, not inf"),
        ("--depth", "9" * 5000, "must be at most 1,000,000, not '99999"),
        ("--max-pages", "0", "must be at least 1, not 0"),
        ("--grace", "nan", "must be a finite number, not nan"),
        ("--delay-jitter", "1.5", "must be at most 1, not 1.5"),
        ("--cache-ttl", "0", "must be positive, not 0"),
        ("--workers", "many", "must be an integer, not 'many'"),
    ],
)
def test_values_out_of_bounds_exit_2(option: str, value: str, needle: str) -> None:
    usage_error(run_cli("run", CLOSED, option, value), f"{option}: {needle}")


def test_the_largest_values_allowed_still_crawl(site: ThreadSite, tmp_path: Path) -> None:
    out = str(tmp_path / "out.jsonl")
    outcome = run_cli(
        "run", site.url("/"), site.url("/gz"), "--depth", "1000000", "--workers", str(MAX_WORKERS),
        "--buffer", str(10 * MAX_WORKERS), "--per-host", str(MAX_WORKERS), "--max-bytes",
        str(MAX_BYTES), "--max-redirects", "100", "--retries", "100", "--max-pages", str(10**12),
        "--timeout", "86400", "--deadline", "31536000", "--no-robots", "-q", "-o", out, output=out,
    )  # fmt: skip
    assert outcome.code == 0, outcome
    got = {r["url"]: r for r in map(strict_json, outcome.output.splitlines())}
    assert len(got) == 5 and all(r["ok"] for r in got.values()), got
    assert got[site.url("/gz")]["title"] == "Zipped"  # gzip decodes with a 1 GiB cap


async def test_memory_follows_the_pages_in_flight_not_the_worker_count(site: ThreadSite) -> None:
    """Workers start as jobs arrive: 10,000 allowed on a 4-page site costs what 16 do."""
    peaks = {}
    for workers in (16, MAX_WORKERS):
        tracemalloc.start()
        try:
            pages = await scrape(
                [site.url("/")], CrawlConfig(workers=workers, depth=5, robots=False)
            )
            peaks[workers] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sorted(p.title or "" for p in pages) == ["Home", "P1", "P2", "P3"]
    # Eager start-up of 10,000 workers took 38 MB here; lazily, the same as 16 give or take.
    assert peaks[MAX_WORKERS] < peaks[16] * 1.5 + 1_000_000, peaks


# 9. Hook data that JSON cannot hold: records stay strict JSON, in JSONL and CSV.

_NAN_HOOK = """
def extract(page):
    return {"big": 10**30, "nan": float("nan"), "inf": -float("inf"), "huge": 10**5000,
            1: "int key", "deep": [[[1]]], "text": "\\ud800 lone"}
"""


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_hook_values_json_cannot_hold_still_give_strict_json(
    fmt: str, site: ThreadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nanhook.py").write_text(_NAN_HOOK)
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / f"out.{fmt}")
    try:
        outcome = run_cli(
            "run", site.url("/"), "--extract", "nanhook:extract", "-q", "-o", out, output=out
        )
    finally:
        forget_module("nanhook")
    assert outcome.code == 0, outcome
    if fmt == "jsonl":
        [record] = map(strict_json, outcome.output.splitlines())
        data = record["data"]
    else:
        [row] = csv.DictReader(io.StringIO(outcome.output.decode("utf-8")))
        data = strict_json(row["data"])
    assert data["big"] == "1000000000000000000000000000000"
    assert data["nan"] is None and data["inf"] is None
    assert data["huge"].startswith("0x") and data["1"] == "int key"
    assert data["deep"] == [[[1]]] and data["text"] == "\ufffd lone"


def test_data_nested_too_deeply_becomes_an_extract_error(
    site: ThreadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "deephook.py").write_text(
        "def extract(page):\n    loop = []\n    loop.append(loop)\n    return {'loop': loop}\n"
    )
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "out.jsonl")
    try:
        outcome = run_cli(
            "run", site.url("/"), "--depth", "1", "--extract", "deephook:extract", "-q", "-o", out,
            output=out,
        )  # fmt: skip
    finally:
        forget_module("deephook")
    assert outcome.code == 0, outcome
    records = list(map(strict_json, outcome.output.splitlines()))
    assert len(records) == 3  # the crawl went on
    for record in records:
        assert record["ok"] is False and record["data"] == {}
        assert record["error"] == {
            "kind": "extract",
            "message": "cannot write the page's data: data nested deeper than 200 levels",
        }


# Also: wording of two usage errors the issues quote (#12 item 7).


def test_format_xml_says_what_it_must_be() -> None:
    line = usage_error(run_cli("run", CLOSED, "--format", "xml"))
    assert line == "trio-scrape: error: --format: must be one of jsonl, csv, not 'xml'"


def test_a_url_without_scheme_suggests_http() -> None:
    line = usage_error(run_cli("run", "127.0.0.1:18081"))
    assert line == (
        "trio-scrape: error: invalid URL '127.0.0.1:18081' (did you mean 'http://127.0.0.1:18081'?)"
    )
    line = usage_error(run_cli("run", "--sitemap", "example.org/sitemap.xml"))
    assert "--sitemap: invalid URL" in line and "(did you mean 'http://example.org/sitemap" in line
    assert "did you mean" not in usage_error(run_cli("run", "ht!tp://x"))


# 10. A follow hook that returns non-strings: an extract record, and the crawl goes on.

_FOLLOW_HOOK = """
def follow(page):
    if page.url.endswith("/p2"):
        return "/p3"  # one string, not a list: it would be followed letter by letter
    if page.url.endswith("/p1"):
        return ["/p3"]
    return ["/p1", 5, None]

def extract(page):
    return ["not", "a", "dict"]
"""


def test_follow_hook_returning_non_strings_gives_an_extract_record(
    site: ThreadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "followhook.py").write_text(_FOLLOW_HOOK)
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path / "out.jsonl")
    try:
        outcome = run_cli(
            "run", site.url("/"), site.url("/p2"), site.url("/p1"), "--depth", "1",
            "--follow", "followhook:follow", "-q", "-o", out, output=out,
        )  # fmt: skip
        extracted = run_cli(
            "run", site.url("/p2"), "--extract", "followhook:extract", "-q", "-o", out, output=out
        )
    finally:
        forget_module("followhook")
    assert outcome.code == 0, outcome
    errors = {
        r["url"].removeprefix(site.url("")): r["error"]
        for r in map(strict_json, outcome.output.splitlines())
    }
    assert errors == {
        "/": {"kind": "extract", "message": "follow hook returned 5 among its URLs"},
        "/p2": {"kind": "extract", "message": "follow hook returned '/p3', not a list of URLs"},
        "/p1": None,
        "/p3": None,  # followed from /p1: the crawl went on
    }
    assert strict_json(extracted.output)["error"] == {
        "kind": "extract",
        "message": "extract hook returned ['not', 'a', 'dict'], not a dict",
    }


def test_follow_hook_results_are_capped_like_a_pages_links() -> None:
    import itertools

    from trio_scrape.engine.pipeline import _chosen_links
    from trio_scrape.model.urls import MAX_LINKS_PER_PAGE

    endless = (f"/n{i}" for i in itertools.count())
    assert len(_chosen_links(endless)) == MAX_LINKS_PER_PAGE


# Also: files that are not what an option reads (a device, a binary), read with a bound.


def test_a_seeds_file_with_an_endless_line_is_refused() -> None:
    line = usage_error(run_cli("run", "--seeds-file", "/dev/zero"), "--seeds-file: line 1 of")
    assert "is longer than 65,536 bytes: not a URL" in line


def test_a_config_file_that_never_ends_is_refused() -> None:
    usage_error(
        run_cli("run", CLOSED, "--config", "/dev/zero"),
        "--config: '/dev/zero' is larger than 1,048,576 bytes",
    )


def test_a_seeds_file_of_bytes_reads_as_text(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_bytes(b"# comment\n\xff\xfe\n")
    usage_error(run_cli("run", "--seeds-file", str(seeds)), "invalid URL '\ufffd\ufffd'")


@pytest.mark.parametrize(
    ("frontier", "needle"),
    [
        ("redis://a b/0", "not a redis:// URL: 'redis://a b/0'"),  # was looked up in DNS
        ("redis://127.0.0.1:1/0\n", r"not a redis:// URL: 'redis://127.0.0.1:1/0\n'"),
        ("redis://é/0", "not a host name or IP address: 'é'"),
        ("redis://127.0.0.1:6379/²", "the database must be a number"),
        ("redis+cluster://127.0.0.1:1,é:2/0", "not a host name or IP address: 'é'"),
        ("redis+cluster://127.0.0.1:1,127.0.0.1:x/0", "not a port: 'x'"),
        ("redis+cluster://127.0.0.1:1/2", "a Redis Cluster has database 0 only"),
        ("redis+cluster://127.0.0.1:1/0?crawl=a", "the only query a cluster URL takes"),
        ("redis+cluster://127.0.0.1:1/0?shards=0", "shards must be 1-256, not 0"),
        ("redis+cluster://127.0.0.1:1/0?shards=x", "the only query a cluster URL takes"),
        ("redis+cluster://127.0.0.1:1/0#x", "with nothing after it"),
    ],
)
def test_frontier_urls_are_checked_before_any_connection(frontier: str, needle: str) -> None:
    for args in (["run", CLOSED, "--frontier", frontier], ["status", "--frontier", frontier]):
        usage_error(run_cli(*args), "--frontier: ", needle)


def test_workers_past_the_open_file_limit_are_warned_about(
    site: ThreadSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    out = str(tmp_path / "out.jsonl")
    outcome = run_cli("run", site.url("/"), "--workers", "1000", "-q", "-o", out, output=out)
    assert outcome.code == 0 and strict_json(outcome.output)["ok"]
    assert outcome.lines == [
        "trio-scrape: --workers 1000 is near or over the open-file limit (1024): connections "
        "past it fail as connect errors; raise it (ulimit -n) or use fewer workers"
    ]
    outcome = run_cli("run", site.url("/"), "--workers", "900", "-q", "-o", out, output=out)
    assert outcome.code == 0 and outcome.stderr == ""
