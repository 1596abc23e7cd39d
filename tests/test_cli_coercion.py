"""The CLI's own option converters (``_cli_coercion``) agree with typer's, value for value.

typer converts option values with pydantic, building a converter per option at every start;
``_cli_coercion`` decides plain values itself and hands everything else to typer's converter.
For every parameter of every command, generated values must come out the same both ways: the
same value of the same type, or the same error message.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_scrape.cli import app as _cli
from trio_scrape.cli.coercion import _TYPER_INTERNALS, _install, installed

from .conftest import examples

# A typer without the internals _cli_coercion relies on still runs the CLI (with its own
# converters, ~45 ms more at each start): a new typer is no reason for a red suite, but the
# skip says what to update.
_NO_INTERNALS = (
    f"typer {typer.__version__} lacks the internals trio_scrape.cli.coercion uses: its own "
    "converters run (start-up ~45 ms longer); update _cli_coercion for this typer"
)
if not _TYPER_INTERNALS:
    pytest.skip(_NO_INTERNALS, allow_module_level=True)
try:
    from typer._click.core import Context
    from typer._coercion import build_runtime_param
except ImportError:  # pragma: no cover - another typer
    pytest.skip(_NO_INTERNALS, allow_module_level=True)


def _commands() -> dict[str, Any]:
    group = typer.main.get_command(_cli.app)
    return {"": group, **group.commands}  # type: ignore[attr-defined]


def _params() -> list[tuple[str, Any, Any]]:
    found = []
    for name, command in _commands().items():
        ctx = Context(command)
        for param in command.get_params(ctx):
            found.append((f"{name or 'trio-scrape'} {param.name}", command, param))
    return found


PARAMS = _params()

# Plain values, and the near misses the converters must leave to typer.
_numbers = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    st.from_regex(r"\A[-+ ]?[0-9_]{0,25}(\.[0-9]{0,20})?([eE][-+]?[0-9]{1,3})? ?\Z"),
    st.sampled_from(["", " ", "-", "-0", "00", "0.", ".5", "1.", "١٢", "0x10", "1_000", "inf"]),
)
_words = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["host", "Host", "HOST", " host", "jsonl", "csv", "CSV", "quiet", "-"]),
    st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "off"]),
)
_scalars = st.one_of(
    _numbers,
    _words,
    st.integers(-5, 5),
    st.booleans(),
    st.floats(allow_nan=False),
    st.builds(Path, st.sampled_from(["a", "/tmp", ".", "x/y.db"])),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3), st.tuples(_scalars, _scalars))


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = runtime._coerce_value(value, param=param, ctx=ctx)
    except Exception as exc:
        return ("error", f"{type(exc).__name__}: {exc}")
    # repr tells -0.0 from 0.0 and a float from an int; equality alone would not.
    if isinstance(result, list):
        return ("value", [(type(item), _exact(item)) for item in result])
    return ("value", (type(result), _exact(result)))


def _exact(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value)


@pytest.mark.parametrize(("label", "command", "param"), PARAMS, ids=[p[0] for p in PARAMS])
@settings(max_examples=examples(60), deadline=None)
@given(value=_values)
def test_fast_converter_agrees_with_typers(
    label: str, command: Any, param: Any, value: Any
) -> None:
    ctx = Context(command)
    param._runtime_param = None
    if not _install(param):
        pytest.skip(f"{label}: typer converts it (no fast converter)")
    fast = param._runtime_param
    typer_own = build_runtime_param(param.type_descriptor)
    assert _outcome(fast, value, param, ctx) == _outcome(typer_own, value, param, ctx)


def test_every_option_of_every_command_gets_the_fast_converter() -> None:
    """No option goes through pydantic for a plain value; were typer's internals to change so
    that nothing is installed, this fails (and the start-up gain would be lost silently)."""
    for name, command in _commands().items():
        ctx = Context(command)
        for param in command.get_params(ctx):
            param._runtime_param = None
            assert _install(param), f"{name} {param.name}"
        assert installed(command) == [param.name for param in command.params]


def test_plain_values_are_converted_without_typers_converter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a command line gives (plain decimals, exact enum values, paths, lists) never
    reaches typer's pydantic converter; a value the fast way cannot read does."""
    built: list[Any] = []
    import trio_scrape.cli.coercion as fast

    def counting(descriptor: Any) -> Any:
        built.append(descriptor.annotation)
        return build_runtime_param(descriptor)

    monkeypatch.setattr(fast, "build_runtime_param", counting)
    command = _commands()["run"]
    ctx = command.make_context(
        "run",
        [
            *("http://127.0.0.1:1/", "--depth", "3", "--timeout", "2.5", "--scope", "domain"),
            *("--state", "s.db", "--header", "A: b", "--header", "C: d", "-o", "x", "-vv"),
            *("--no-robots", "--max-pages", "10", "--format", "csv", "--delay", "-0"),
        ],
    )
    assert built == []
    assert ctx.params["depth"] == 3 and ctx.params["timeout"] == 2.5
    assert ctx.params["format"] is _cli.Format.csv
    scope = ctx.params["scope"]  # an enum made from CrawlConfig's ScopeName
    assert isinstance(scope, enum.Enum) and scope.value == "domain"
    assert ctx.params["state"] == Path("s.db") and ctx.params["header"] == ["A: b", "C: d"]
    assert ctx.params["verbose"] == 2 and ctx.params["robots"] is False
    assert math.copysign(1, ctx.params["delay"]) == -1
    command.make_context("run", ["http://127.0.0.1:1/", "--timeout", "1e3"])
    assert built == [float]
