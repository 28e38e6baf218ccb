"""JSON on the wire: orjson's speed without losing what JSON allows and orjson refuses."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from client import wirejson


def test_round_trip_of_ordinary_values() -> None:
    """Objects, Unicode, emoji and `>>>` survive unchanged and compactly."""
    value = {"email": "a>>>b@x", "alias": "Дейв 🚀", "n": [1, 2.5, None, True]}
    raw = wirejson.dumps(value)
    assert wirejson.loads(raw) == value
    assert b'": ' not in raw and b'", "' not in raw and "Дейв 🚀".encode() in raw


def test_lone_surrogate_is_escaped_not_fatal() -> None:
    """A lone surrogate (legal in JSON, refused by orjson) goes out as a \\udXXX escape."""
    raw = wirejson.dumps({"x": "a\ud800b"})
    assert b"\\ud800" in raw
    assert json.loads(raw) == {"x": "a\ud800b"}
    assert wirejson.loads('{"x":"\\ud800"}') == {"x": "\ud800"}


def test_values_orjson_refuses_fall_back() -> None:
    """Integers over 64 bits and NaN read as Python's json does."""
    assert wirejson.loads(wirejson.dumps({"big": 2**70})) == {"big": 2**70}
    assert wirejson.loads("[NaN]")[0] != wirejson.loads("[NaN]")[0]


def test_other_types_are_written_as_str() -> None:
    """Dates and paths are written as str() of themselves, as json.dumps(default=str) did."""
    when = dt.datetime(2026, 12, 4, 21, 44, 36)
    assert wirejson.loads(wirejson.dumps({"t": when, "p": Path("/x")})) == {"t": str(when), "p": "/x"}


def test_garbage_raises_value_error() -> None:
    """Text that is not JSON raises ValueError, which the dispatcher answers with -32700."""
    with pytest.raises(ValueError):
        wirejson.loads(b"{nope")
