"""The ``run`` command's options, built from :class:`CrawlConfig`'s fields, and back.

Each field of CrawlConfig carries its command-line form in its metadata (an
:class:`~trio_scrape.model.config.Option`: help, help group, flag, metavar, how the typed text
is parsed). Here those become the parameters of the ``run`` command (an
:class:`inspect.Signature` that typer reads as it would a function's), next to the few options
that are no field (the seeds, the output, logging); :func:`crawl_config` turns the parsed
values back into a CrawlConfig in one loop. So a new option is a field (and its check), and
its flag names it in error messages and ``--config`` files alike.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import typer

from ..errors import ConfigError
from ..model import config as _config
from ..model.config import CrawlConfig, Option, Panel, options_of
from ..model.parse import Selector

__all__ = [
    "FIELD_OPTIONS",
    "Format",
    "UsageError",
    "crawl_config",
    "crawl_signature",
    "field_of",
    "flag_of",
    "signature",
]


class UsageError(Exception):
    """A bad option or argument: exit 2 with this one-line message."""


class Format(enum.StrEnum):
    jsonl = "jsonl"
    csv = "csv"


# Annotated[...] with a type known only at run time (mypy reads Annotated as a type form only).
_ANNOTATED: Any = Annotated
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _parameter(name: str, annotation: Any, info: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, _KEYWORD, annotation=_ANNOTATED[annotation, info], default=default
    )


def _help(text: str) -> str:
    """Plain help text for typer's rich markup: a bracket is text, not a style."""
    return text.replace("[", "\\[")


# ------------------------------------------------------------------ the options no field has
_LEADING = (
    _parameter(
        "urls",
        list[str] | None,
        typer.Argument(metavar="URL", help="Seed URLs.", show_default=False),
        None,
    ),
    _parameter(
        "seeds_file",
        Path | None,
        typer.Option(
            "--seeds-file",
            metavar="FILE",
            help="Read seed URLs from a file, one per line (- = stdin).",
            rich_help_panel=Panel.SCOPE,
        ),
        None,
    ),
)
_TRAILING = (
    _parameter(
        "output",
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            help="Record file (- = stdout).",
            rich_help_panel=Panel.OUTPUT,
        ),
        "-",
    ),
    _parameter(
        "format",
        Format | None,
        typer.Option(
            "--format",
            metavar="jsonl|csv",
            help=_help("jsonl or csv [default: from the output's extension, else jsonl]."),
            rich_help_panel=Panel.OUTPUT,
        ),
        None,
    ),
    _parameter(
        "config_file",
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help=_help(
                "TOML file of options (same names); options given here win. "
                "Default: [tool.trio-scrape] in ./pyproject.toml."
            ),
            rich_help_panel=Panel.OUTPUT,
        ),
        None,
    ),
    _parameter(
        "progress",
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help=_help("Live progress on stderr [default: when stderr is a terminal]."),
            rich_help_panel=Panel.OUTPUT,
            show_default=False,
        ),
        None,
    ),
    _parameter(
        "csv_safe",
        bool,
        typer.Option(
            "--csv-safe/--no-csv-safe",
            help="Quote CSV cells a spreadsheet would run as formulas (=, +, -, @).",
            rich_help_panel=Panel.OUTPUT,
        ),
        True,
    ),
    _parameter(
        "quiet",
        bool,
        typer.Option(
            "-q", "--quiet", help="No summary, warnings only.", rich_help_panel=Panel.OUTPUT
        ),
        False,
    ),
    _parameter(
        "verbose",
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            help="More logging (-vv: every page).",
            rich_help_panel=Panel.OUTPUT,
        ),
        0,
    ),
)


# ------------------------------------------------------------- typed text -> a field's value
def _headers(values: list[str] | None, flag: str) -> dict[str, str]:
    headers = {}
    for value in values or ():
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"{flag}: expected 'Name: value', got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def _selectors(many: bool) -> Callable[[list[str] | None, str], tuple[Selector, ...]]:
    def parse(specs: list[str] | None, flag: str) -> tuple[Selector, ...]:
        selectors = []
        for spec in specs or ():
            try:
                selectors.append(Selector.parse(spec, many=many))
            except ValueError as exc:
                raise UsageError(f"{flag}: {exc}") from None
        return tuple(selectors)

    return parse


def _processes(value: str, flag: str) -> int | Literal["auto"]:
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a number or auto, got {value!r}") from None


# Set once a hook's module is imported: the process then ends with the interpreter's full
# teardown, which the user's code may count on (see entry._user_code_loaded).
hooks_loaded = False


def _load_hook(spec: str | None, flag: str) -> Callable[..., Any] | None:
    global hooks_loaded
    if spec is None:
        return None
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{flag}: expected MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:  # hooks usually live next to where the crawl is run
        sys.path.insert(0, os.getcwd())
    hooks_loaded = True
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"{flag}: no module named {exc.name!r}") from None
        raise UsageError(f"{flag}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise UsageError(f"{flag}: importing {module_name!r} failed: {exc!r}") from None
    hook: Any = module
    for part in attr.split("."):
        try:
            hook = getattr(hook, part)
        except AttributeError:
            raise UsageError(f"{flag}: module {module_name!r} has no {attr!r}") from None
    if not callable(hook):
        raise UsageError(f"{flag}: {spec!r} is not callable")
    return hook  # type: ignore[no-any-return]


@dataclasses.dataclass(frozen=True)
class _Parse:
    """A way (``Option.parse``) from what typer parsed to the field's value."""

    type: Any  #: the option's value type as typer parses it
    convert: Callable[[Any, str], Any]  #: (parsed value, flag) -> the field's value
    default: Callable[[Any], Any] = lambda field_default: None  #: the option's default


_PARSE: Mapping[str, _Parse] = {
    "headers": _Parse(list[str], _headers),
    "select": _Parse(list[str], _selectors(many=False)),
    "select_all": _Parse(list[str], _selectors(many=True)),
    "processes": _Parse(str, _processes, default=str),
    "load": _Parse(str, _load_hook),
    "path": _Parse(Path, lambda value, flag: value),
}

# A field's annotation (a string: model/config.py postpones them), " | None" taken off ->
# the option's value type. A Literal alias (ScopeName) gives a choice; others need a parse.
_TYPES: Mapping[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "str | os.PathLike[str]": str,  # as typed (--browser takes a name looked up on PATH too)
    "tuple[str, ...]": list[str],  # repeatable
}


# --------------------------------------------------------------------- field -> its options
@dataclasses.dataclass(frozen=True)
class FieldOption:
    """One command-line option of a CrawlConfig field."""

    field: str  #: the CrawlConfig field it sets
    flag: str  #: its name on the command line (in error messages too)
    parameter: inspect.Parameter  #: named after the flag: ``--allow-host`` -> ``allow_host``
    convert: Callable[[Any], Any]  #: the parsed value -> the field's value


def _choices(field: dataclasses.Field[Any], annotation: str) -> type[enum.Enum] | None:
    """An enum of the choices of a field annotated with a Literal alias (``ScopeName``)."""
    alias = getattr(_config, annotation, None)
    if get_origin(alias) is not Literal:
        return None
    name = "".join(word.title() for word in field.name.split("_"))
    make: Any = enum.StrEnum  # its functional API, with a name known only at run time
    choices: type[enum.Enum] = make(name, [(str(v), str(v)) for v in get_args(alias)])
    return choices


def _value(field: dataclasses.Field[Any], option: Option, flag: str) -> tuple[Any, Any, Any]:
    """(the option's value type, its default, parsed value -> field value) for a non-flag."""
    default = field.default if field.default_factory is dataclasses.MISSING else None
    if option.parse is not None:
        parse = _PARSE[option.parse]
        cli_default = parse.default(default)
        value_type = parse.type | None if cli_default is None else parse.type
        return value_type, cli_default, lambda value: parse.convert(value, flag)
    annotation = str(field.type).removesuffix(" | None")
    choices = _choices(field, annotation)
    if choices is not None:
        return choices, choices(default), lambda value: value.value
    if annotation not in _TYPES:
        raise TypeError(
            f"CrawlConfig.{field.name}: no command-line type for {field.type!r}; "
            "give its Option a parse= (cli/options.py _PARSE) or add it to _TYPES"
        )
    value_type = _TYPES[annotation]
    if value_type is list[str]:
        return value_type | None, None, lambda value: tuple(value or ())
    optional = value_type | None if default is None else value_type
    return optional, default, lambda value: value


def _field_option(field: dataclasses.Field[Any], option: Option) -> FieldOption:
    flag = option.flag or "--" + field.name.replace("_", "-")
    decls = [flag if option.negate is None else f"{flag}/{option.negate}"]
    metavar = option.metavar
    if field.type == "bool":  # a flag: it sets the opposite of the default, or a pair
        value_type, default = bool, field.default if option.negate else False
        convert: Callable[[Any], Any] = (
            (lambda value: value) if option.negate else (lambda value: value != field.default)
        )
        metavar = ""
    else:
        value_type, default, convert = _value(field, option, flag)
        if metavar is None and isinstance(value_type, type) and issubclass(value_type, enum.Enum):
            metavar = "|".join(member.value for member in value_type)
        elif metavar is None and value_type in (int, int | None):
            metavar = "N"
        elif metavar is None:
            raise TypeError(f"CrawlConfig.{field.name}: its Option needs a metavar")
    info = typer.Option(
        *decls,
        *([option.short] if option.short else []),
        metavar=metavar,
        help=_help(option.help),
        rich_help_panel=option.panel,
    )
    name = flag.lstrip("-").replace("-", "_")
    return FieldOption(field.name, flag, _parameter(name, value_type, info, default), convert)


def _field_options() -> tuple[FieldOption, ...]:
    found = []
    for field in dataclasses.fields(CrawlConfig):
        found += [_field_option(field, option) for option in options_of(field)]
    return tuple(found)


FIELD_OPTIONS = _field_options()
_FLAG_OF = {option.field: option.flag for option in reversed(FIELD_OPTIONS)}  # the first
_FLAG_OF["seeds"] = "URL"  # the Crawler's seeds: the URL arguments
_FIELD_OF = {option.parameter.name: option.field for option in FIELD_OPTIONS}


def signature() -> inspect.Signature:
    """The ``run`` command's parameters, grouped by help panel (in :class:`Panel`'s order;
    within one, the options no field has first (the seeds) or last (the output), the
    fields' options in CrawlConfig's order)."""
    panels = {panel.value: index for index, panel in enumerate(Panel)}

    def panel(parameter: inspect.Parameter) -> int:
        info = get_args(parameter.annotation)[1]
        return panels.get(getattr(info, "rich_help_panel", None) or "", -1)

    fields = [option.parameter for option in FIELD_OPTIONS]
    return inspect.Signature(sorted([*_LEADING, *fields, *_TRAILING], key=panel))


def crawl_signature() -> inspect.Signature:
    """The ``crawl`` command's parameters: the spider file, then ``run``'s (its URLs are
    start URLs besides the spider's), and ``--records``."""
    spider = _parameter(
        "spider",
        Path,
        typer.Argument(metavar="SPIDER", help="The spider file (Python).", show_default=False),
        inspect.Parameter.empty,
    )
    records = _parameter(
        "records",
        str | None,
        typer.Option(
            "--records",
            metavar="FILE",
            help="Also write each page's record here (jsonl, or csv by its extension).",
            rich_help_panel=Panel.OUTPUT,
        ),
        None,
    )
    parameters = []
    for parameter in signature().parameters.values():
        if parameter.name == "urls":
            info = typer.Argument(
                metavar="URL", help="Start URLs, besides the spider's.", show_default=False
            )
            parameter = _parameter("urls", list[str] | None, info, None)
        elif parameter.name == "output":
            info = typer.Option(
                "-o",
                "--output",
                metavar="FILE",
                help="Item file (- = stdout).",
                rich_help_panel=Panel.OUTPUT,
            )
            parameter = _parameter("output", str, info, "-")
        elif parameter.name == "seeds_file":
            continue
        parameters.append(parameter)
        if parameter.name == "output":
            parameters.append(records)
    return inspect.Signature([spider, *parameters])


def flag_of(field: str) -> str:
    """The command-line name of a CrawlConfig field (``allow_hosts`` -> ``--allow-host``),
    for error messages."""
    return _FLAG_OF.get(field) or "--" + field.replace("_", "-")


def field_of(parameter: str) -> str | None:
    """The CrawlConfig field an option of ``run`` sets (by its parameter's name), if any."""
    return _FIELD_OF.get(parameter)


def crawl_config(given: Mapping[str, Any]) -> CrawlConfig:
    """The CrawlConfig of the ``run`` command's parsed options (by parameter name).

    A field with several options (``--select``, ``--select-all``) gets their values joined.

    Raises:
        UsageError: a value cannot be parsed or is refused by CrawlConfig (named by flag).
    """
    values: dict[str, Any] = {}
    for option in FIELD_OPTIONS:
        value = option.convert(given[option.parameter.name])
        values[option.field] = values[option.field] + value if option.field in values else value
    try:
        return CrawlConfig(**values)
    except ConfigError as exc:
        raise UsageError(f"{flag_of(exc.field)}: {exc.message}") from None


def not_options() -> Iterable[str]:
    """CrawlConfig's fields that have no command-line option (library only)."""
    return [f.name for f in dataclasses.fields(CrawlConfig) if not options_of(f)]


#: The options of ``run`` that ``shell`` and ``parse`` take: how one page is fetched (and
#: rendered), and the log's verbosity.
_FETCH_PANELS = (Panel.FETCH.value, Panel.RENDER.value)
_FETCH_EXTRA = ("timeout", "robots", "verbose")


def fetch_signature(leading: Iterable[inspect.Parameter]) -> inspect.Signature:
    """``leading`` parameters, then ``run``'s options for fetching one page."""
    chosen = []
    for parameter in signature().parameters.values():
        info = get_args(parameter.annotation)[1]
        panel = getattr(info, "rich_help_panel", None)
        if (panel in _FETCH_PANELS or parameter.name in _FETCH_EXTRA) and parameter.name not in (
            "cache",
            "cache_ttl",
        ):
            chosen.append(parameter)
    return inspect.Signature([*leading, *chosen])


def fetch_config(given: Mapping[str, Any]) -> CrawlConfig:
    """The CrawlConfig of :func:`fetch_signature`'s options: ``run``'s defaults for the rest.

    Raises:
        UsageError: a value is refused (named by flag).
    """
    values = {name: p.default for name, p in signature().parameters.items()}
    values.update({name: value for name, value in given.items() if name in values})
    return crawl_config(values)


def flag_of_parameter(name: str) -> str:
    """The long flag of ``run``'s parameter ``name`` (``render_wait`` -> ``--render-wait``)."""
    parameter = signature().parameters.get(name)
    if parameter is not None:
        info = get_args(parameter.annotation)[1]
        flags = [d for d in getattr(info, "param_decls", ()) or () if d.startswith("--")]
        if flags:
            return str(max(flags, key=len).partition("/")[0])
    return "--" + name.replace("_", "-")
