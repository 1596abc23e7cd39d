"""Property tests: whatever a careless or hostile user types, on the command line,
in a config file or as a ``CrawlConfig`` value, the answer is exit 0, 1 or 2 with no
traceback, one line on stderr for exit 2, and records that a strict JSON parser reads.

The command line runs in-process (``_cli.main``) against a loopback server, with hooks that
return hostile data. Each example is a random set of options, either all drawn from valid
and boundary values (then the crawl must succeed: exit 0) or mixed with hostile ones. Bounded
for CI (examples, and ``--deadline`` is always one of the options); for a long session see
docs/hardening.md: ``FUZZ_EXAMPLES=2000 python -m pytest tests/test_cli_property.py``.
"""

from __future__ import annotations

import csv
import gc
import io
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_scrape import ConfigError, CrawlConfig, Selector
from trio_scrape.cli import app as _cli
from trio_scrape.model.config import LIMITS

from .clirun import ThreadSite, forget_module, run_cli, serve_in_thread, strict_json
from .conftest import examples

_HOOKS = """
import itertools

VALUES = [
    {"big": 10**30, "nan": float("nan"), "inf": float("-inf")},
    {"huge": 10**5000, 1: "int key", None: "none key", (1, 2): {1, 2}},
    {"text": "\\ud800\\udfff lone", "bytes": b"\\xff"},
    {"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
    ["not", "a", "dict"],
    None,
    "a string",
]


def _deep(n):
    value = 0
    for _ in range(n):
        value = [value]
    return value


def extract(page):
    n = sum(map(ord, page.url)) % (len(VALUES) + 3)
    if n == len(VALUES):
        raise ValueError("hook fails\\non two lines")
    if n == len(VALUES) + 1:
        return {"deep": _deep(300)}
    if n == len(VALUES) + 2:
        loop = []
        loop.append(loop)
        return {"loop": loop}
    return VALUES[n]


def follow(page):
    n = sum(map(ord, page.url)) % 5
    if n == 0:
        return ["/p1", 5, None]
    if n == 1:
        return "/p2"
    if n == 2:
        return (f"/n{i}" for i in itertools.count())
    if n == 3:
        raise RuntimeError("follow fails")
    return list(page.links)
"""

_PAGES = {
    "/": (200, {}, b'<title>Home</title><a href="/p1">1</a><a href="/p2">2</a>'),
    "/p1": (200, {}, b'<title>=HYPERLINK("x")</title><a href="/p3">3</a>'),
    "/p2": (200, {"Content-Type": "text/html; charset=latin-1"}, b"<title>\xe9t\xe9</title>"),
    "/p3": (200, {"Content-Type": "application/json"}, b'{"a": NaN}'),
    "/sitemap.xml": (
        200,
        {"Content-Type": "application/xml"},
        b"<urlset><url><loc>/p1</loc></url><url><loc>http://127.0.0.2/x</loc></url></urlset>",
    ),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadSite, Path]]:
    """The loopback site, and a directory holding the hook module (on ``sys.path``)."""
    directory = tmp_path_factory.mktemp("cliprop")
    (directory / "fuzzhooks.py").write_text(_HOOKS)
    (directory / "afile").write_text("x")
    sys.path.insert(0, str(directory))
    try:
        with serve_in_thread(_PAGES) as site:
            yield site, directory
    finally:
        sys.path.remove(str(directory))
        forget_module("fuzzhooks")


# -------------------------------------------------------------------------- values

_JUNK = st.one_of(
    st.sampled_from([
        "", " ", "-1", "0", "-0", "1.5", "1e999", "-1e999", "inf", "-inf", "nan", "NaN", "1e300",
        str(10**30), "9" * 5000, "0x10", "1_000", "٣", "true", "None", "é", "\n", "a\nb",
        "\x00", "\x01", "\x7f", "\u2028", "\ud800", "'", '"', "\\", "%s", "{0}", "x" * 10_000,
        # bytes that are not UTF-8, as Python's surrogateescape hands them over from argv
        "\udcff", "a\udc80b", "http://127.0.0.1/\udce9",
    ]),
    st.text(max_size=30),
)  # fmt: skip


def _integers(name: str) -> st.SearchStrategy[str]:
    bound = LIMITS[name]
    edges = [int(bound.low), int(bound.high)]
    return st.one_of(st.sampled_from(edges), st.integers(int(bound.low), 20)).map(str)


def _bad_integers(name: str) -> st.SearchStrategy[str]:
    bound = LIMITS[name]
    return st.sampled_from([str(int(bound.low) - 1), str(int(bound.high) + 1), "1.0"])


def _seconds(high: float) -> st.SearchStrategy[str]:
    return st.floats(0.0001, high, allow_nan=False).map(repr)


# Each option: (valid and boundary values, hostile values). Valid values keep an example short:
# pages are on loopback and --deadline is always given (0.2 s at most).
_OPTIONS: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]] = {
    "--depth": (_integers("depth"), _bad_integers("depth")),
    "--max-pages": (_integers("max_pages"), _bad_integers("max_pages")),
    "--workers": (_integers("workers"), _bad_integers("workers")),
    "--buffer": (_integers("buffer"), _bad_integers("buffer")),
    "--per-host": (_integers("per_host"), _bad_integers("per_host")),
    "--retries": (st.sampled_from(["0", "1", "100"]), _bad_integers("retries")),
    "--max-bytes": (_integers("max_bytes"), _bad_integers("max_bytes")),
    "--max-redirects": (_integers("max_redirects"), _bad_integers("max_redirects")),
    "--timeout": (st.sampled_from(["0.001", "5", "86400"]), st.sampled_from(["0", "86401"])),
    "--grace": (_seconds(0.1), st.sampled_from(["-1", "86401"])),
    "--delay": (st.sampled_from(["0", "0.01", "86400"]), st.sampled_from(["-0.5", "86401"])),
    "--delay-jitter": (st.sampled_from(["0", "0.5", "1"]), st.sampled_from(["1.01", "-0.1"])),
    "--max-retry-after": (st.sampled_from(["0", "86400"]), st.sampled_from(["86401"])),
    "--cache-ttl": (st.sampled_from(["0.001", "31536000"]), st.sampled_from(["0", "1e10"])),
    "--scope": (st.sampled_from(["host", "domain", "any"]), st.sampled_from(["xml", "HOST"])),
    "--format": (st.sampled_from(["jsonl", "csv"]), st.sampled_from(["xml", "json", "CSV"])),
    "--allow-host": (st.sampled_from(["*.example.org", "127.0.0.2", "[", "é"]), st.nothing()),
    "--include": (
        st.sampled_from([".", "/p", "^http", "(?i)P1", "é"]),
        st.sampled_from(["(", "a{4294967296}", "(" * 2000 + ")" * 2000, "[z-a]", "(?P<"]),
    ),
    "--exclude": (st.sampled_from(["/p3", "x^", "\\d+"]), st.sampled_from(["*", "a{99999999999}"])),
    "--header": (
        st.sampled_from(["X-A: 1", "Authorization: Bearer t", "X-Empty:", "Host: 127.0.0.1"]),
        st.sampled_from(["X: é", "Ü: x", "no colon", ": x", "X Y: z", "Content-Length: 5"]),
    ),
    "--user-agent": (st.sampled_from(["bot/1.0", "a" * 8000, "x (+http://a/)"]),
                     st.sampled_from(["é", "", "a\tb ", "bot\x7f"])),
    "--proxy": (
        st.sampled_from(["http://127.0.0.1:1", "socks5://127.0.0.1:1", "socks5h://127.0.0.1:1"]),
        st.sampled_from(["http://[::1", "ftp://127.0.0.1\n:1", "http://", "socks4://a:1",
                         "127.0.0.1:3128", "http://x:99999"]),
    ),
    "--select": (st.sampled_from(["t=title", "h=h1::text", "a=a::attr(href)"]),
                 st.sampled_from(["bad", "x=div[", "=a", "t=title::attr("])),
    "--select-all": (st.sampled_from(["links=a::attr(href)"]), st.sampled_from(["x=::"])),
    "--extract": (st.just("fuzzhooks:extract"),
                  st.sampled_from(["nomodule_xyz:f", "fuzzhooks:nope", "fuzzhooks", ":x"])),
    "--follow": (st.just("fuzzhooks:follow"), st.sampled_from(["fuzzhooks:VALUES", "a:"])),
    # Rendering's own values, without --render: no browser is started by these examples.
    "--render-tabs": (_integers("render_tabs"), _bad_integers("render_tabs")),
    "--render-tab-pages": (_integers("render_tab_pages"), _bad_integers("render_tab_pages")),
    "--render-wait-max": (st.sampled_from(["0.1", "60"]), st.sampled_from(["0", "61", "nan"])),
    "--render-wait": (st.sampled_from(["quiet", "networkidle"]), st.sampled_from(["idle", ""])),
    "--processes": (st.just("1"), st.sampled_from(["0", "99999", "x", "AUTO", "1.5"])),
    "--lease": (st.sampled_from(["1", "86400", "2.5"]), st.sampled_from(["0.5", "86401", "inf"])),
    "--sitemap": (st.just("SITE/sitemap.xml"), st.sampled_from(["example.org/s.xml", "ht!tp://x"])),
}  # fmt: skip
# Options with hostile values only: a valid one needs a Redis (and exit 3 when there is none).
_HOSTILE_ONLY: dict[str, st.SearchStrategy[str]] = {
    "--frontier": st.sampled_from([
        "x", "redis://[::1", "redis://127.0.0.1:99999/0", "redis://127.0.0.1:1/99999999999999",
        "http://127.0.0.1:1/0", "redis://a b/0", "redis://127.0.0.1:1/x", "redis://127.0.0.1:1/0\n",
    ]),
    "--crawl-id": st.sampled_from(["é", "", "a" * 101, "-a", "a/b", "ok-name"]),
}  # fmt: skip
_FLAGS = [
    "--links", "--no-robots", "--robots", "--autothrottle", "--http2", "--allow-private",
    "--sitemaps-from-robots", "--no-csv-safe", "--no-progress", "-q", "-v", "-vv",
    "--ignore-page-robots", "--skip-rel-nofollow", "--dedup-canonical",
]  # fmt: skip
# Options whose values are paths: made from the example's directory.
_PATHS = ["--cache", "--state", "--seeds-file"]


@st.composite
def _command_lines(draw: st.DrawFn) -> tuple[bool, list[str], str | bytes | None]:
    """(whether every value is valid, the arguments, TOML text for --config or None)."""
    valid = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(sorted(_OPTIONS)), max_size=8, unique=True))
    args: list[str] = []
    for name in names:
        good, bad = _OPTIONS[name]
        args += [name, draw(good if valid else st.one_of(good, bad, _JUNK))]
    if not valid:
        for name in draw(st.lists(st.sampled_from(sorted(_HOSTILE_ONLY)), max_size=2, unique=True)):
            args += [name, draw(st.one_of(_HOSTILE_ONLY[name], _JUNK))]
    args += draw(st.lists(st.sampled_from(_FLAGS), max_size=4, unique=True))
    for name in draw(st.lists(st.sampled_from(_PATHS), max_size=2, unique=True)):
        args += [name, draw(st.sampled_from(["PATH", "DIR", "FILE"] if not valid else ["PATH"]))]
    deadline = st.sampled_from(["0.05", "0.1", "0.2"])
    args += ["--deadline", draw(deadline if valid else st.one_of(deadline, _bad_deadline))]
    toml = None if valid else draw(st.none() | _toml_files)
    return valid, args, toml


_bad_deadline = st.sampled_from(["0", "-1", "nan", "inf", "1e400", "soon", "31536001"])


def _toml_string(text: str) -> str:
    return '"' + text.encode("unicode_escape").decode().replace('"', '\\"') + '"'


_toml_values = st.recursive(
    st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(str),
        st.floats().map(lambda f: repr(f) if math.isfinite(f) else ("nan" if f != f else "inf")),
        st.sampled_from(["true", "false", "1979-05-27T07:32:00Z", "'é'", '"\\u0000"']),
        st.text(max_size=10).map(_toml_string),
    ),
    lambda inner: st.lists(inner, max_size=3).map(lambda v: "[" + ", ".join(v) + "]"),
    max_leaves=6,
)  # fmt: skip
_toml_keys = st.sampled_from([
    "depth", "max-pages", "workers", "timeout", "include", "header", "proxy", "format", "scope",
    "user_agent", "robots", "urls", "quiet", "select", "config", "no-such-option", "verbose",
])  # fmt: skip
_toml_files: st.SearchStrategy[str | bytes] = st.one_of(
    st.lists(st.tuples(_toml_keys, _toml_values), max_size=5).map(
        lambda pairs: "".join(f"{k} = {v}\n" for k, v in dict(pairs).items())
    ),
    st.binary(max_size=50),
    st.sampled_from([
        "depth = " + "[" * 3000 + "]" * 3000, "x = " + "{a = " * 2000 + "1" + "}" * 2000,
        "depth = 1".encode("utf-16"), "[tool]\n", "depth = 1" + "0" * 5000,
    ]),
)  # fmt: skip


def _check_records(path: Path, csv_output: bool) -> None:
    data = path.read_bytes() if path.exists() else b""
    text = data.decode("utf-8")  # strict: the output is always UTF-8
    if not csv_output:
        for line in text.splitlines():
            assert isinstance(strict_json(line), dict)
        return
    for row in csv.DictReader(io.StringIO(text)):
        for cell in ("data", "links", "error"):
            if row.get(cell):
                strict_json(row[cell])


# One long run (1 in about 5,000 examples, not replayable) met a crawler socket to the site
# collected unclosed after a cancelled fetch: a real, rare leak reported to the transport's
# owner, not what this test checks. Each example collects its garbage (so such a warning stays
# in this test), and this one warning is ignored here only.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(example=_command_lines())
def test_any_command_line_exits_0_1_or_2_with_one_line(
    example: tuple[bool, list[str], str | bytes | None], env: tuple[ThreadSite, Path]
) -> None:
    site, directory = env
    valid, args, toml = example
    out = directory / "out"
    out.unlink(missing_ok=True)
    for stale in ("state.db", "state.db-wal", "state.db-shm"):
        (directory / stale).unlink(missing_ok=True)
    paths = {
        "PATH": str(directory / "state.db"),
        "DIR": str(directory),
        "FILE": str(directory / "afile"),
    }
    args = [paths.get(a, a).replace("SITE", site.url("")) for a in args]
    if "--seeds-file" in args:  # the seeds file is ours: a path that reads as seeds
        args[args.index("--seeds-file") + 1] = str(directory / "afile")
    if "--cache" in args and args[args.index("--cache") + 1].endswith("state.db"):
        args[args.index("--cache") + 1] = str(directory / "cache")
    argv = ["run", site.url("/"), *args, "-o", str(out)]
    if toml is not None:
        config = directory / "c.toml"
        if isinstance(toml, str):
            config.write_text(toml, encoding="utf-8", errors="surrogatepass")
        else:
            config.write_bytes(toml)
        argv += ["--config", str(config)]
    outcome = run_cli(*argv)
    gc.collect()
    assert outcome.code in (0, 1, 2), outcome
    assert "Traceback" not in outcome.stderr, outcome
    if outcome.code == 2:
        assert len(outcome.lines) == 1, outcome
        assert outcome.lines[0].startswith("trio-scrape: error: "), outcome
    if valid and "--seeds-file" not in args:
        assert outcome.code == 0, outcome
    csv_output = "csv" in args[args.index("--format") + 1 :][:1] if "--format" in args else False
    _check_records(out, csv_output)


@settings(max_examples=examples(300), deadline=None)
@given(toml=_toml_files)
def test_config_files_load_or_give_one_usage_error(
    toml: str | bytes, tmp_path_factory: Any
) -> None:
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    if isinstance(toml, str):
        path.write_text(toml, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(toml)
    try:
        defaults = _cli._config_defaults(["run", "--config", str(path)])
    except _cli.UsageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(("--config: ", str(path)))
    else:
        assert isinstance(defaults, dict)


_PYTHON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10**30, -(10**30), 10**5000]),
    st.floats(), st.text(max_size=20), st.binary(max_size=5),
    st.lists(st.text(max_size=5), max_size=3), st.tuples(st.integers()),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.just(Selector.parse("t=title")), st.just(len), st.just(object()),
)  # fmt: skip


@settings(max_examples=examples(500), deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from(sorted(CrawlConfig.__dataclass_fields__)), _PYTHON_VALUES, max_size=3
    )
)
def test_crawl_config_raises_only_config_error(values: dict[str, Any]) -> None:
    try:
        config = CrawlConfig(**values)
    except ConfigError as exc:
        assert exc.field in values and "\n" not in str(exc) and len(str(exc)) < 300
    else:
        for name, bound in LIMITS.items():
            value = getattr(config, name)
            assert value is None or bound.low <= value <= bound.high


@st.composite
def _other_commands(draw: st.DrawFn) -> list[str]:
    """``status``, ``export`` and ``demo`` with hostile values. (Not a valid --frontier on a
    closed port: exit 3 with one line, tested by the Redis tests; in-process, coredis's
    failed connection leaves anyio streams to the garbage collector.)"""
    command = draw(st.sampled_from(["status", "export", "demo"]))
    frontier = st.one_of(_HOSTILE_ONLY["--frontier"], _JUNK)
    options: dict[str, st.SearchStrategy[str]] = {
        "status": {"--frontier": frontier, "--crawl-id": _HOSTILE_ONLY["--crawl-id"]},
        "export": {
            "--frontier": frontier,
            "--crawl-id": _HOSTILE_ONLY["--crawl-id"],
            "--format": st.sampled_from(["jsonl", "csv", "xml"]),
        },
        "demo": {"--depth": st.one_of(_integers("depth"), _bad_integers("depth"), _JUNK)},
    }[command]
    args = [command]
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)):
        args += [name, draw(options[name])]
    if command != "demo" and "--frontier" not in args and draw(st.booleans()):
        args += ["--frontier", draw(frontier)]
    return [*args, *draw(st.lists(st.sampled_from(["-q", "--json", "--no-such"]), max_size=1))]


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=_other_commands())
def test_other_commands_exit_with_a_code_and_one_line(
    args: list[str], env: tuple[ThreadSite, Path]
) -> None:
    _, directory = env
    out = directory / "other.out"
    out.unlink(missing_ok=True)
    outcome = run_cli(*args, *(["-o", str(out)] if args[0] != "status" else []))
    assert outcome.code in (0, 1, 2, 3), outcome
    assert "Traceback" not in outcome.stderr, outcome
    if outcome.code in (2, 3):
        assert len(outcome.lines) == 1 and outcome.lines[0].startswith("trio-scrape: "), outcome
    if args[0] == "demo" and out.exists():
        _check_records(out, csv_output=False)
