"""One place per option: ``run``'s options come from :class:`CrawlConfig`'s fields.

Each field carries its command-line form (an ``Option`` in its metadata); ``cli/options.py``
builds the command from them and turns the parsed values back into a CrawlConfig.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from trio_scrape import CrawlConfig, Selector
from trio_scrape.cli import app as _cli
from trio_scrape.cli import options
from trio_scrape.model.config import NO_OPTION, options_of

#: Fields with no command-line option: only the library sets them.
LIBRARY_ONLY = {"backoff", "max_backoff", "router"}


def _run_command() -> Any:
    return typer.main.get_command(_cli.app).commands["run"]  # type: ignore[attr-defined]


def _parse(*args: str) -> dict[str, Any]:
    return dict(_run_command().make_context("run", ["http://a.test/", *args]).params)


def test_every_field_is_an_option_or_says_why_not() -> None:
    for field in dataclasses.fields(CrawlConfig):
        if field.name in LIBRARY_ONLY:
            assert not options_of(field) and field.metadata[NO_OPTION], field.name
        else:
            assert options_of(field), f"CrawlConfig.{field.name} has no command-line Option"
    assert set(options.not_options()) == LIBRARY_ONLY


def test_every_field_option_is_a_parameter_of_run() -> None:
    params = {param.name: param for param in _run_command().params}
    for option in options.FIELD_OPTIONS:
        param = params[option.parameter.name]
        assert option.flag in param.opts or option.flag in param.secondary_opts
        assert param.help and param.rich_help_panel, option.flag


def test_no_options_give_the_default_config() -> None:
    assert options.crawl_config(_parse()) == CrawlConfig()


def test_flags_repeatable_options_and_parsers_reach_their_fields(tmp_path: Path) -> None:
    config = options.crawl_config(
        _parse(
            *("--no-frames", "--no-meta-refresh", "--ignore-page-robots", "--no-robots"),
            *("--links", "--allow-host", "a.test", "--allow-host", "*.b.test"),
            *("--sitemap", "http://a.test/s.xml", "--header", "X-A: 1", "--processes", "auto"),
            *("--select", "t=title", "--select-all", "h=h1", "--select", "d=div"),
            *("--scope", "domain", "--render-wait", "networkidle", "--state", str(tmp_path / "s")),
        )
    )
    assert (config.frames, config.meta_refresh, config.page_robots, config.robots) == (
        False,
        False,
        False,
        False,
    )
    assert config.links and config.allow_hosts == ("a.test", "*.b.test")
    assert config.sitemaps == ("http://a.test/s.xml",) and config.headers == {"X-A": "1"}
    assert config.processes == "auto" and config.scope == "domain"
    assert config.render_wait == "networkidle" and config.state == tmp_path / "s"
    assert config.selectors == (
        Selector.parse("t=title"),
        Selector.parse("d=div"),
        Selector.parse("h=h1", many=True),
    )


def test_error_messages_and_config_files_use_the_flags() -> None:
    assert options.flag_of("allow_hosts") == "--allow-host"
    assert options.flag_of("selectors") == "--select"
    assert options.flag_of("frames") == "--no-frames"
    assert options.flag_of("max_pages") == "--max-pages"
    assert options.flag_of("seeds") == "URL"
    assert options.field_of("allow_host") == "allow_hosts"
    assert options.field_of("output") is None
    with pytest.raises(options.UsageError, match=r"^--allow-host: must be"):
        options.crawl_config({**_parse(), "allow_host": [1]})


# A Python type as typer shows it: <bool>, <int>, <list[str]>, <path>, or <a|b> choices.
_TYPE_NAME = re.compile(
    r"<(bool|int|float|str|path|text|list\[[^>]*\]|tuple[^>]*|dict[^>]*|[\w-]+(\|[\w-]+)+)>"
)


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["status"], ["export"]])
def test_help_shows_no_python_type_names(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        _cli.main([*command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--help" in text
    assert not _TYPE_NAME.findall(text), _TYPE_NAME.findall(text)
    if command == ["run"]:
        for metavar in ("URL", "N", "SECONDS", "HOST", "REGEX", "NAME=CSS", "MODULE:FUNC"):
            assert re.search(rf"\s{re.escape(metavar)}\s", text), metavar


@pytest.mark.parametrize("module", ["app.py", "options.py"])
def test_no_function_over_120_lines(module: str) -> None:
    path = Path(_cli.__file__).parent / module
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            assert node.end_lineno - node.lineno < 120, f"{module}: {node.name}"
