from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from trio_scrape import ConfigError, CrawlConfig


def test_defaults() -> None:
    config = CrawlConfig()
    assert config.workers == 16 and config.channel_buffer == 16
    assert config.timeout == 10 and config.grace == 5 and config.retries == 2
    assert config.max_bytes == 10 * 1024 * 1024 and config.depth == 0
    assert config.user_agent.startswith("trio-scrape/")
    assert CrawlConfig(workers=4).channel_buffer == 4
    assert CrawlConfig(workers=4, buffer=0).channel_buffer == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workers", 0),
        ("workers", 1.5),
        ("workers", True),
        ("depth", -1),
        ("retries", -1),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("nan")),
        ("timeout", float("inf")),
        ("deadline", 0),
        ("grace", -1),
        ("max_bytes", 0),
        ("max_pages", 0),
        ("buffer", -1),
        ("scope", "planet"),
        ("include", ("(",)),
        ("exclude", "notatuple"),
        ("headers", {"Bad\nName": "x"}),
        ("headers", {"X": "a\r\nInjected: 1"}),
        ("user_agent", ""),
        ("proxy", "not a url"),
        ("extract", 42),
    ],
)
def test_bad_values_name_their_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(**{field: value})
    assert info.value.field == field
    assert field in str(info.value)


def test_frozen_and_keyword_only() -> None:
    config = CrawlConfig(include=["a"])  # type: ignore[arg-type]
    assert config.include == ("a",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.headers["X"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        CrawlConfig(1)  # type: ignore[call-arg]
    assert dataclasses.replace(config, workers=3).workers == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("workers", 10**30, "workers: must be at most 10,000, not 1000000000000000000000000000000"),
        pytest.param(
            "workers",
            10**5000,
            "workers: must be at most 10,000, not an integer of about 5,001 digits",
            id="workers-5001-digits",
        ),
        ("max_bytes", 1 << 31, "max_bytes: must be at most 1,073,741,824"),
        ("timeout", 10**400, "timeout: must be at most 86,400"),
        ("delay", float("-inf"), "delay: must be a finite number, not -inf"),
        ("depth", "3", "depth: must be an integer, not '3'"),
        ("robots", "no", "robots: must be True or False, not 'no'"),
        ("headers", {"X": "é"}, "headers: bad value for 'X': 'é'"),
        ("headers", {"é": "x"}, "headers: bad header name 'é'"),
        ("headers", {"X": "x "}, "headers: bad value for 'X': 'x '"),
        ("headers", {f"X{i}": "x" for i in range(101)}, "headers: at most 100 headers, not 101"),
        ("headers", {"X": "x" * 9000}, "headers: 'X' is longer than 8192 bytes"),
        ("headers", [1, 2], "headers: must map names to values, not [1, 2]"),
        ("user_agent", "bot\n", "user_agent: must be a non-empty line of printable ASCII"),
        ("include", ("a{4294967296}",), "include: bad regular expression 'a{4294967296}': the rep"),
        ("include", ("(" * 5000 + ")" * 5000,), "include: bad regular expression '((((("),
        ("include", "abc", "include: must be a sequence of strings, not 'abc'"),
        (
            "proxy",
            "http://[::1",
            "proxy: must be an http://, https://, socks5:// or socks5h:// URL",
        ),
        ("proxy", "ftp://127.0.0.1\n:1", r"not 'ftp://127.0.0.1\n:1'"),
        ("cache", "a\0b", r"cache: must be a directory path, not 'a\x00b'"),
        ("state", "", "state: must be a file path, not ''"),
        ("follow", "module:f", "follow: must be callable, not 'module:f'"),
    ],
)
def test_bad_values_give_one_line_naming_field_and_value(
    field: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CrawlConfig(**{field: value})
    assert info.value.field == field
    assert message in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 200


def test_the_bounds_themselves_are_accepted() -> None:
    from trio_scrape.model.config import LIMITS

    low = {name: (r.low if not r.open_low else r.low + 0.001) for name, r in LIMITS.items()}
    high = {name: r.high for name, r in LIMITS.items()}
    for values in (low, high):
        ints: dict[str, Any] = {n: int(v) if LIMITS[n].integer else v for n, v in values.items()}
        config = CrawlConfig(**ints)
        assert all(getattr(config, n) == v for n, v in ints.items())


def test_every_field_has_a_check() -> None:
    """A field added to CrawlConfig needs a line in _config._CHECKS (a number: in LIMITS)."""
    from trio_scrape.model import config as _config

    fields = [f.name for f in dataclasses.fields(CrawlConfig)]
    assert list(_config._CHECKS) == [
        *_config.LIMITS,
        *(n for n in _config._CHECKS if n not in _config.LIMITS),
    ]
    assert sorted(fields) == sorted(_config._CHECKS)


def test_docs_list_every_limit() -> None:
    """docs/cli.md's table of limits gives each bounded option with the range LIMITS enforces."""
    from pathlib import Path

    from trio_scrape.model.config import LIMITS

    page = (Path(__file__).parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    table = page[page.index("| option | lowest | highest |") :].split("\n\n")[0]
    for name, bound in LIMITS.items():
        names = (f"| `--{name.replace('_', '-')}`", f"| `{name}`")  # option, or library only
        [row] = [line for line in table.splitlines() if line.startswith(names)]
        assert f"| {bound.describe().replace(' to ', ' | ')} |" in row, row
