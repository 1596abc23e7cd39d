"""Checks for configuration values, used by :class:`CrawlConfig`'s table of checks.

Each check takes a field's name and value and returns the value to store (normalised: a
tuple for a sequence, a read-only mapping for headers) or raises :class:`ConfigError` naming
the field, with a one-line message that shows the value (its ``repr``, shortened). A value
that passes can be handed to the library that uses it (httpx, ``re``, the file system)
without that library raising anything the crawler does not expect.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "Check",
    "Range",
    "callable_or_none",
    "choice",
    "flag",
    "headers",
    "number",
    "path_or_none",
    "proxy_url",
    "regexes",
    "shorten",
    "strings",
    "user_agent",
]

#: ``check(field_name, value) -> value to store``; raises :class:`ConfigError`.
Check = Callable[[str, Any], Any]

MAX_HEADERS = 100
#: name + value of one header; servers refuse far less (nginx: 8 KiB for a whole line).
MAX_HEADER_BYTES = 8192


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a one-line message: cut to about ``limit`` characters; an integer
    too long to print (Python refuses over 4,300 digits) is described by its size."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    try:
        text = repr(value)
    except Exception:  # a repr that raises: still say what it was
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 5] + "...'" * isinstance(value, str)


def number(value: float) -> str:
    """``10,000`` or ``0.5``: a bound as messages and docs/cli.md write it."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,g}"


@dataclasses.dataclass(frozen=True, slots=True)
class Range:
    """A number from ``low`` to ``high``, both included (``low`` excluded with ``open_low``:
    a timeout must be positive); ``integer`` refuses floats; ``optional`` allows ``None``
    (no limit). NaN and infinities are never in a range."""

    low: float
    high: float
    integer: bool = False
    open_low: bool = False
    optional: bool = False
    unit: str = ""

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        unit = f" of {self.unit}" if self.unit else ""
        what = "an integer" if self.integer else "a number" + unit
        if isinstance(value, bool) or not isinstance(value, int if self.integer else int | float):
            raise ConfigError(name, f"must be {what}, not {shorten(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, not {value!r}")
        if value < self.low or (self.open_low and value == self.low):
            floor = (
                "positive" if self.open_low and self.low == 0 else f"at least {number(self.low)}"
            )
            raise ConfigError(name, f"must be {floor}, not {shorten(value)}")
        if value > self.high:
            raise ConfigError(name, f"must be at most {number(self.high)}, not {shorten(value)}")
        return value

    def describe(self) -> str:
        """The range in words, as the table of limits in docs/cli.md gives it: ``1 to 10,000``."""
        low = f"more than {number(self.low)}" if self.open_low else number(self.low)
        return f"{low} to {number(self.high)}"


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(name, f"must be True or False, not {shorten(value)}")
    return value


def choice(options: Collection[str]) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(name, f"must be one of {', '.join(options)}, not {shorten(value)}")
        return str(value)

    return check


def strings(name: str, value: Any) -> tuple[str, ...]:
    """A sequence of strings (a single string is refused: it would be taken letter by letter)."""
    try:
        items = () if isinstance(value, str | bytes) else tuple(value)
    except TypeError:
        items = None
    if items is None or isinstance(value, str | bytes):
        raise ConfigError(name, f"must be a sequence of strings, not {shorten(value)}")
    if any(not isinstance(v, str) for v in items):
        raise ConfigError(name, f"must be a sequence of strings, not {shorten(value)}")
    return items


def regexes(name: str, value: Any) -> tuple[str, ...]:
    """Strings that compile as Python regular expressions and as RE2 ones: they are matched
    with RE2 (:func:`url_patterns`), in time linear in the URL whatever the pattern."""
    patterns = strings(name, value)
    if not patterns:
        return patterns
    re2 = _re2()
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(name, f"bad regular expression {shorten(pattern)}: {exc}") from None
        except (OverflowError, RecursionError, MemoryError) as exc:
            # a{4294967296} overflows; thousands of nested groups exhaust the parser's stack
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc) or "too big"
            raise ConfigError(name, f"bad regular expression {shorten(pattern)}: {why}") from None
        try:
            re2.compile(pattern, _re2_options())
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "refused"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ConfigError(
                name,
                f"bad regular expression {shorten(pattern)}: {reason} (not RE2 syntax, which"
                " matches in linear time: no backreferences, lookarounds, atomic groups or"
                " possessive quantifiers)",
            ) from None
        except ValueError:  # UnicodeEncodeError: a lone surrogate, which no URL holds
            raise ConfigError(
                name, f"bad regular expression {shorten(pattern)}: not UTF-8"
            ) from None
    try:
        url_patterns(patterns)
    except re2.error:
        raise ConfigError(name, "the patterns are too large together for RE2") from None
    return patterns


def _re2() -> Any:
    """The RE2 binding, imported when a crawl has patterns (not at every start)."""
    import re2

    return re2


def _re2_options() -> Any:
    options = _re2().Options()
    options.log_errors = False  # RE2 would also write each error to stderr: it is raised
    return options


def url_patterns(patterns: Collection[str]) -> Callable[[str], Any] | None:
    """``patterns`` (checked by :func:`regexes`) as one RE2 set: the function returned tells
    which of them are found in a text (a list), or None if none is; None for no patterns.
    RE2 takes time linear in the text whatever the pattern, where Python's re backtracks
    (``(a+)+$`` on a long run of a's never ends). One call for all the patterns: 1-3x what
    one re.search costs, less than re for several patterns (docs/cli.md, Every value is checked)."""
    if not patterns:
        return None
    found = _re2().Set.SearchSet(_re2_options())
    for pattern in patterns:
        found.Add(pattern)
    found.Compile()
    match: Callable[[str], Any] = found.Match
    return match


# RFC 9110 token: what a header name may be (h11 refuses anything else).
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# A field value httpx can send: str headers are encoded as ASCII; no control characters,
# no leading or trailing whitespace (h11 refuses them).
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?")
# Set by the HTTP client for each message; a user's value would break framing or pooling.
_CLIENT_HEADERS = frozenset(
    ("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
     "trailer", "proxy-connection")
)  # fmt: skip


def headers(name: str, value: Any) -> Mapping[str, str]:
    """Header names that are tokens, values of printable ASCII (httpx encodes ``str``
    headers as ASCII), at most :data:`MAX_HEADERS` of them; a read-only mapping."""
    try:
        items = dict(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must map names to values, not {shorten(value)}") from None
    if len(items) > MAX_HEADERS:
        raise ConfigError(name, f"at most {MAX_HEADERS} headers, not {len(items)}")
    for key, content in items.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise ConfigError(
                name, f"bad header name {shorten(key)}: letters, digits and !#$%&'*+-.^_`|~ only"
            )
        if key.lower() in _CLIENT_HEADERS:
            raise ConfigError(name, f"{key!r} is set by the HTTP client itself")
        if not isinstance(content, str) or not _FIELD_VALUE.fullmatch(content):
            raise ConfigError(
                name,
                f"bad value for {key!r}: {shorten(content)} (printable ASCII only, "
                "no leading or trailing space)",
            )
        if len(key) + len(content) > MAX_HEADER_BYTES:
            raise ConfigError(name, f"{key!r} is longer than {MAX_HEADER_BYTES} bytes")
    return types.MappingProxyType(items)


def user_agent(name: str, value: Any) -> str:
    """A non-empty header value (printable ASCII)."""
    if not isinstance(value, str) or not value or not _FIELD_VALUE.fullmatch(value):
        raise ConfigError(
            name,
            f"must be a non-empty line of printable ASCII (as HTTP sends it), not {shorten(value)}",
        )
    if len(value) > MAX_HEADER_BYTES:
        raise ConfigError(name, f"must be at most {MAX_HEADER_BYTES} characters, not {len(value)}")
    return value


_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def proxy_url(name: str, value: Any) -> str | None:
    """None, or a URL httpx accepts as a proxy: http, https, socks5 or socks5h, with a host
    and a valid port; SOCKS needs the ``socksio`` package (httpx's ``socks`` extra)."""
    if value is None:
        return None
    bad = ConfigError(
        name,
        "must be an http://, https://, socks5:// or socks5h:// URL with a host, "
        f"not {shorten(value)}",
    )
    if not isinstance(value, str) or any(c.isspace() or not c.isprintable() for c in value):
        raise bad
    import httpx  # here, not at import: the CLI's start-up does not need it to parse options

    try:
        url = httpx.URL(value)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError):
        raise bad from None
    if url.scheme not in _PROXY_SCHEMES or not url.host or not (port is None or 0 < port < 65536):
        raise bad
    if url.scheme.startswith("socks"):
        try:
            import socksio  # noqa: F401
        except ImportError:
            raise ConfigError(
                name, "a SOCKS proxy needs the socksio package: pip install 'httpx[socks]'"
            ) from None
    return value


def path_or_none(name: str, value: Any, *, what: str = "a path") -> Any:
    """None, or a non-empty file-system path without NUL characters (which ``open`` refuses)."""
    if value is None:
        return None
    try:
        text = os.fspath(value)
    except TypeError:
        text = None
    if not isinstance(text, str) or not text or "\0" in text:
        raise ConfigError(name, f"must be {what}, not {shorten(value)}")
    return value


def callable_or_none(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(name, f"must be callable, not {shorten(value)}")
    return value
