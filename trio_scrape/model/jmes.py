"""JSON selectors: JMESPath (the query language of the AWS CLI, and of Scrapy's and parsel's
JSON support) over a page's parsed JSON, with the expressions compiled once and cached."""

from __future__ import annotations

import functools
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.parser

__all__ = ["compile_jmes", "jmespath_search"]


@functools.lru_cache(maxsize=1024)
def compile_jmes(expression: str) -> jmespath.parser.ParsedResult:
    """``expression`` compiled (cached).

    Raises:
        ValueError: it is not a JMESPath expression (the message says where).
    """
    try:
        return jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"bad JMESPath expression {expression!r}: {message}") from None


def jmespath_search(expression: str | jmespath.parser.ParsedResult, value: Any) -> Any:
    """What ``expression`` selects in ``value`` (None: nothing).

    Raises:
        ValueError: ``expression`` is not a JMESPath expression.
    """
    compiled = compile_jmes(expression) if isinstance(expression, str) else expression
    try:
        return compiled.search(value)
    except jmespath.exceptions.JMESPathError as exc:  # a type error in a function call
        raise ValueError(f"JMESPath: {exc}") from None
