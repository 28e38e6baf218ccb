"""Xray's JSON dialect: JSON with `//`, `/* */` and `#` comments, as Xray's reader accepts.

Files written by xrayd carry no comments, so the common case is one plain `json.loads`;
only a file that fails it is stripped of comments and parsed again.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A string (kept whole, so `//` inside a URL survives) or a comment (dropped).
_TOKEN = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|//[^\n]*|#[^\n]*|/\*.*?(?:\*/|\Z)", re.S)


class JsoncError(ValueError):
    """The text is not JSON even with comments removed; the message says where."""


def strip_comments(text: str) -> str:
    """Drop comments outside strings, keeping newlines so errors name the right line."""

    def keep(match: re.Match[str]) -> str:
        token = match.group()
        return token if token[0] in "\"'" else "\n" * token.count("\n")

    return _TOKEN.sub(keep, text)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> tuple[dict[str, Any], bool]:
    """Parse a config; return (document, whether it had comments). Raises JsoncError."""
    had_comments = False
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except ValueError:
        had_comments = True
        try:
            value = json.loads(strip_comments(text), parse_constant=_no_constants)
        except json.JSONDecodeError as exc:
            raise JsoncError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
        except ValueError as exc:
            raise JsoncError(str(exc)) from None
    if not isinstance(value, dict):
        raise JsoncError(f"the top level is a {type(value).__name__}, not an object")
    return value, had_comments


def dumps(doc: dict[str, Any]) -> bytes:
    """How xrayd writes config.json: indented for people who edit it by hand, UTF-8."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
