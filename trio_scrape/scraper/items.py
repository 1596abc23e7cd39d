"""Items: what a scrape is for. A handler emits them; they are checked here and become the
JSON objects written to the output.

An item is a mapping (a ``dict``, a ``TypedDict``), a dataclass instance, a pydantic model or
a msgspec struct (when the user brings those libraries: neither is needed). A handler may
declare its item type; an item that does not fit it is an :class:`ItemError` naming the field,
never written. Every item must be JSON-serialisable (no sets, bytes or objects; keys are
strings): one that is not is an :class:`ItemError` too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import TrioScrapeError

__all__ = ["ItemError", "Items", "encode_item", "to_item"]


class ItemError(TrioScrapeError, ValueError):
    """An item that cannot be written: not an item, not JSON, or not of the declared type.
    The message names the field."""


class Items(list[dict[str, Any]]):
    """A page's items, in the order emitted, and beside them ``lines``: each item's JSON as
    it was when emitted (what :func:`encode_item` gave), which an item sink writes as it is,
    so that an item is encoded once."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []


def to_item(value: Any, item_type: type[Any] | None = None) -> dict[str, Any]:
    """``value`` as the JSON object written to the output, checked against ``item_type``.

    Raises:
        ItemError: ``value`` is not an item, does not fit ``item_type`` (the message names
            the field), or holds a value JSON cannot encode.
    """
    return encode_item(value, item_type)[0]


def encode_item(value: Any, item_type: type[Any] | None = None) -> tuple[dict[str, Any], bytes]:
    """``value`` as the JSON object written to the output (see :func:`to_item`), and that
    object encoded as JSON (compact UTF-8): encoding it is the check that it is JSON.

    Raises:
        ItemError: as :func:`to_item`.
    """
    if item_type is not None:
        value = _validated(value, item_type)
    item = value if type(value) is dict else _as_dict(value)
    try:
        return item, orjson.dumps(item)
    except TypeError as exc:
        raise ItemError(f"not JSON-serialisable: {_where_unserialisable(item) or exc}") from None


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)  # pydantic v2
    if callable(dump):
        result = dump(mode="json")
        if isinstance(result, dict):
            return result
    if type(value).__module__.startswith("msgspec") or hasattr(type(value), "__struct_fields__"):
        import msgspec  # only when the user's items are msgspec structs

        result = msgspec.to_builtins(value)
        if isinstance(result, dict):
            return result
    raise ItemError(
        f"an item must be a dict, a dataclass, a pydantic model or a msgspec struct, "
        f"not {type(value).__name__}"
    )


def _validated(value: Any, item_type: type[Any]) -> Any:
    """``value`` checked against (or converted to) ``item_type``."""
    if _is_class(item_type) and isinstance(value, item_type):
        return value
    validate = getattr(item_type, "model_validate", None)  # pydantic v2
    if callable(validate):
        data = _as_dict(value)
        config = getattr(item_type, "model_config", None) or {}
        if config.get("extra") is None:  # pydantic's default would drop them without a word
            fields = getattr(item_type, "model_fields", None) or {}
            aliases = {getattr(f, "alias", None) for f in fields.values()}
            _no_other_fields(data, set(fields) | aliases, item_type)
        try:
            return validate(data)
        except ItemError:
            raise
        except Exception as exc:
            raise ItemError(_pydantic_message(exc)) from None
    if hasattr(item_type, "__struct_fields__"):  # msgspec
        import msgspec

        data = _as_dict(value)
        # msgspec ignores unknown fields by default: they are refused, as for a dataclass.
        names = getattr(item_type, "__struct_encode_fields__", None) or item_type.__struct_fields__
        _no_other_fields(data, set(names), item_type)
        try:
            return msgspec.convert(data, item_type)
        except msgspec.ValidationError as exc:
            raise ItemError(_msgspec_message(str(exc))) from None
    fields = _declared_fields(item_type)
    if fields is None:
        raise ItemError(f"cannot check items against {item_type!r}: not a dataclass or TypedDict")
    hints, required = fields
    data = _as_dict(value)
    for name in required:
        if name not in data:
            raise ItemError(f"field {name!r}: missing ({item_type.__name__})")
    for name, field_value in data.items():
        if name not in hints:
            raise ItemError(f"field {name!r}: not a field of {item_type.__name__}")
        if not _fits(field_value, hints[name]):
            raise ItemError(
                f"field {name!r}: {_short(field_value)} is not {_type_name(hints[name])}"
            )
    return data


def _no_other_fields(data: Mapping[str, Any], fields: set[Any], item_type: Any) -> None:
    for name in data:
        if name not in fields:
            raise ItemError(f"field {name!r}: not a field of {item_type.__name__}")


def _is_class(item_type: Any) -> bool:
    return isinstance(item_type, type) and not typing.is_typeddict(item_type)


def _declared_fields(item_type: Any) -> tuple[dict[str, Any], set[str]] | None:
    """The field types and the required fields of a dataclass or a TypedDict."""
    if dataclasses.is_dataclass(item_type):
        hints = typing.get_type_hints(item_type)
        required = {
            f.name
            for f in dataclasses.fields(item_type)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(item_type)}, required
    if typing.is_typeddict(item_type):
        return typing.get_type_hints(item_type), set(item_type.__required_keys__)
    return None


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits the annotation ``hint`` (the common forms; others pass)."""
    if hint is Any or hint is object:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, arg) for arg in args)
    if hint is None or hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a form this check does not know (a TypeVar, a Protocol...)


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            return f"field {where!r}: {first.get('msg', exc)}"
        except (IndexError, TypeError, AttributeError):
            pass
    return str(exc).splitlines()[0]


def _msgspec_message(text: str) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.views``` as ``field 'views': expected
    `int`, got `str```, and ``Object missing required field `text``` as ``field 'text':
    missing``, so its messages name the field as the others do."""
    message, at, where = text.partition(" - at `$.")
    if at:
        field = where.rstrip("`")
        return f"field {field!r}: {message[:1].lower()}{message[1:]}"
    missing = "Object missing required field `"
    if text.startswith(missing):
        return f"field {text[len(missing) :].split('`')[0]!r}: missing"
    return text


def _where_unserialisable(value: Any, path: str = "") -> str | None:
    """The path to the first value JSON cannot encode, with its type."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'item'}: key {key!r} is not a string"
            found = _where_unserialisable(item, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _where_unserialisable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return None
    return f"field {path!r}: a {type(value).__name__}"
