"""Parameter specs of the route table: coerce query strings, check JSON body values.

A bad value is a 400 that names the parameter, before any call reaches xrayd (which checks
everything again: the socket is the trust boundary, not this module).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


class ParamError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Param:
    """One named parameter; `kind` is int, float, bool, enum, str or date."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    max_len: int = 1024
    required: bool = False
    doc: str = ""

    def coerce(self, name: str, value: Any) -> Any:
        """Turn a query string or a JSON value into the declared type, or raise ParamError."""
        method = getattr(self, f"_{self.kind}")
        return method(name, value)

    def _int(self, name: str, value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10)
            except ValueError:
                raise ParamError(name, f"{name} must be a whole number.") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(name, f"{name} must be a whole number.")
        return self._range(name, value)

    def _float(self, name: str, value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ParamError(name, f"{name} must be a number.") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ParamError(name, f"{name} must be a number.")
        return self._range(name, value)

    def _range(self, name: str, value: Any) -> Any:
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ParamError(name, f"{name} must be between {self.lo:g} and {self.hi:g}.")
        return value

    def _bool(self, name: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ParamError(name, f"{name} must be true or false.")

    def _enum(self, name: str, value: Any) -> str:
        if value not in self.choices:
            raise ParamError(name, f"{name} must be one of: {', '.join(self.choices)}.")
        return value

    def _str(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ParamError(name, f"{name} must be a string.")
        if len(value) > self.max_len:
            raise ParamError(name, f"{name} must be at most {self.max_len} characters long.")
        return value

    def _date(self, name: str, value: Any) -> str:
        try:
            if not isinstance(value, str) or len(value) != 10:
                raise ValueError
            dt.date.fromisoformat(value)
        except ValueError:
            raise ParamError(name, f"{name} must be a date as YYYY-MM-DD.") from None
        return value


def Int(lo: int, hi: int, doc: str = "") -> Param:
    return Param("int", lo, hi, doc=doc)


def Float(lo: float, hi: float, doc: str = "") -> Param:
    return Param("float", lo, hi, doc=doc)


def Bool(doc: str = "") -> Param:
    return Param("bool", doc=doc)


def Enum(*choices: str, doc: str = "") -> Param:
    return Param("enum", choices=choices, doc=doc)


def Str(max_len: int = 1024, doc: str = "", required: bool = False) -> Param:
    return Param("str", max_len=max_len, doc=doc, required=required)


def Date(doc: str = "") -> Param:
    return Param("date", doc=doc)
