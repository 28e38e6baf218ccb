"""Checks for RPC params. xrayd trusts nothing the gateway checked: every method calls these.

Each raises `InvalidParams` with a sentence that names the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection
from typing import Any, TypeVar

from xrayd.errors import InvalidParams

T = TypeVar("T")


def integer(name: str, value: Any, *, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(name, f"{name} must be a whole number.")
    if not lo <= value <= hi:
        raise InvalidParams(name, f"{name} must be between {lo} and {hi}.")
    return value


def number(name: str, value: Any, *, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidParams(name, f"{name} must be a number.")
    if not lo <= value <= hi:
        raise InvalidParams(name, f"{name} must be between {lo:g} and {hi:g}.")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParams(name, f"{name} must be true or false.")
    return value


def choice(name: str, value: Any, allowed: Collection[T]) -> T:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParams(name, f"{name} must be one of: {', '.join(map(str, allowed))}.")
    return value  # type: ignore[return-value]


def text(name: str, value: Any, *, max_len: int, min_len: int = 1) -> str:
    """A string of printable characters (any script, emoji included), no controls."""
    if not isinstance(value, str):
        raise InvalidParams(name, f"{name} must be a string.")
    if not min_len <= len(value) <= max_len:
        raise InvalidParams(name, f"{name} must be {min_len} to {max_len} characters long.")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            raise InvalidParams(name, f"{name} must not contain control characters.")
    return value


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def date(name: str, value: Any) -> dt.date:
    if not isinstance(value, str) or not _DATE.match(value):
        raise InvalidParams(name, f"{name} must be a date as YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidParams(name, f"{name} is not a real date: {value}.") from None
