"""Option values converted without pydantic when the value is plain; typer's own way otherwise.

typer (0.23 and later) converts every option's value with a pydantic ``TypeAdapter`` it builds
at each start, one per option, even for an option not given (its value ``None`` is returned
before the adapter is used). For ``run``'s 48 options that is ~45 ms of a ~250 ms start,
pydantic's import included, ahead of the first request of every crawl.

:class:`FastCommand` (given as ``cls=`` to each command; :class:`FastGroup` to the app) hands
each of its parameters a converter that decides the common cases itself: a ``str`` as given,
a plain decimal for an ``int`` or ``float``, a ``bool`` flag's value, an enum's exact value, a
path, a list of those. Anything else (``1e3``, `` 7``, ``x``, a different case of an enum
value, a constrained number) goes to the converter typer would have used, built then, so its
result and its error message (which ``_cli._parse_error`` reads) are unchanged.
tests/test_cli_coercion.py checks, option by option, that both ways give the same value for
generated input.

It relies on typer's internals (``_TyperParameter._runtime_param`` and ``type_descriptor``,
``typer._coercion``, present since typer 0.23): with a typer whose internals differ, nothing is
installed and typer converts as usual. tests/test_cli_coercion.py fails then, so the loss of the
gain is seen.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.core

try:  # typer's internals: see the module's docstring
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
except ImportError:  # pragma: no cover - another typer: it converts every value itself
    _TYPER_INTERNALS = False
else:
    _TYPER_INTERNALS = True

__all__ = ["FastCommand", "FastGroup", "installed"]

# Returned by a converter that leaves the value to typer.
_DEFER: Any = object()

# What the converters take as an int or a float: decimals pydantic reads the same way.
# Signs, spaces, underscores, exponents, inf and nan, non-ASCII digits go to pydantic.
_INTEGER = re.compile(r"-?[0-9]{1,30}")
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")

# (value, param, ctx) -> the converted value, or _DEFER
Convert = Callable[[Any, Any, Any], Any]


def _as_str(value: Any, param: Any, ctx: Any) -> Any:
    return value if type(value) is str else _DEFER


def _as_int(value: Any, param: Any, ctx: Any) -> Any:
    if type(value) is int:
        return value
    if type(value) is str and _INTEGER.fullmatch(value):
        return int(value)
    return _DEFER


def _as_float(value: Any, param: Any, ctx: Any) -> Any:
    if type(value) is float:
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return float(value)
    return _DEFER


def _as_bool(value: Any, param: Any, ctx: Any) -> Any:
    return value if type(value) is bool else _DEFER


def _choice(annotation: type[enum.Enum], parameter_info: Any) -> Convert | None:
    if not parameter_info.case_sensitive:
        return None
    by_value = {str(member.value): member for member in reversed(annotation)}  # first wins

    def convert(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, annotation):
            return value
        if type(value) is not str or getattr(ctx, "token_normalize_func", None) is not None:
            return _DEFER
        return by_value.get(value, _DEFER)

    return convert


def _path(parameter_info: Any) -> Convert | None:
    if parameter_info.path_type is not None or parameter_info.parser is not None:
        return None

    def convert(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, Path):
            as_path = value
        elif type(value) is str and value and "\0" not in value:
            as_path = Path(value)
        else:
            return _DEFER
        # typer's own checks (exists, readable...) and result, given the value as a Path, so
        # it needs no pydantic to make one.
        return coerce_cli_path(as_path, parameter_info, path_type=Path, param=param, ctx=ctx)

    return convert


def _leaf(annotation: Any, parameter_info: Any) -> Convert | None:
    if parameter_info.parser is not None:
        return None
    if annotation is str:
        return _as_str
    if annotation is bool:
        return _as_bool
    if annotation is int or annotation is float:
        if parameter_info.min is not None or parameter_info.max is not None:
            return None
        return _as_int if annotation is int else _as_float
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice(annotation, parameter_info)
    if annotation is Path:
        return _path(parameter_info)
    return None


def _converter(descriptor: Any) -> Convert | None:
    """A converter for the parameter, or None where typer's own is always used."""
    if descriptor.file_annotation is not None:
        return None
    annotation = descriptor.annotation
    if getattr(annotation, "__origin__", None) is list:
        [item] = annotation.__args__
        each = _leaf(item, descriptor.parameter_info)
        if each is None:
            return None

        def convert_list(value: Any, param: Any, ctx: Any) -> Any:
            items = value if isinstance(value, list | tuple) else [value]
            converted = [each(item, param, ctx) for item in items]
            return _DEFER if any(item is _DEFER for item in converted) else converted

        return convert_list
    return _leaf(annotation, descriptor.parameter_info)


if _TYPER_INTERNALS:

    @dataclass(frozen=True)
    class _FastRuntimeParam(RuntimeParam):
        """typer's runtime converter for one parameter, deciding plain values itself."""

        convert: Convert
        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            converted = self.convert(value, param, ctx)
            if converted is not _DEFER:
                return converted
            typer_own = build_runtime_param(self.descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def _install(param: Any) -> bool:
    """Give ``param`` the fast converter; False if typer's own is to be used."""
    if not _TYPER_INTERNALS or getattr(param, "_runtime_param", False) is not None:
        return False  # not typer's parameter as we know it, or its converter is built
    descriptor = getattr(param, "type_descriptor", None)
    if not isinstance(descriptor, TypeDescriptor):
        return False
    convert = _converter(descriptor)
    if convert is None:
        return False
    param._runtime_param = _FastRuntimeParam(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        convert=convert,
        descriptor=descriptor,
    )
    return True


def installed(command: Any) -> list[str]:
    """The names of ``command``'s parameters given the fast converter (tests use this)."""
    if not _TYPER_INTERNALS:
        return []
    return [
        param.name
        for param in command.params
        if isinstance(getattr(param, "_runtime_param", None), _FastRuntimeParam)
    ]


def _no_type(ctx: Any) -> None:
    return None


def _plain_help(param: Any) -> None:
    """No Python type names in the help: typer shows a flag as ``<bool>`` (``--help`` too), a
    counter as ``<int>``, an argument's type next to its metavar (``URL <list[str]>``)."""
    if getattr(param, "metavar", None) is None:
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
    elif getattr(param, "param_type_name", None) == "argument":
        param.display_type_rich = _no_type  # its metavar is shown as its name already


class FastCommand(typer.core.TyperCommand):
    """typer's command, with the fast converters installed before the arguments are parsed
    (and help without Python type names)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for param in self.get_params(ctx):  # --help included
            _install(param)
            _plain_help(param)
        return super().parse_args(ctx, args)


class FastGroup(typer.core.TyperGroup):
    """typer's group of commands (its options: --version, --help), likewise."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for param in self.get_params(ctx):
            _install(param)
            _plain_help(param)
        return super().parse_args(ctx, args)
