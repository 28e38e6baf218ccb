"""Tests for xrayd.live.stats: statsquery's output as real Xray builds print it."""

from __future__ import annotations

import pytest

from xrayd.errors import Unavailable
from xrayd.live.stats import parse


def test_values_missing_strings_and_escaped_names() -> None:
    """A missing value is 0, a string value (builds up to v1.8.23) is a number, and names come
    JSON-escaped; inbound counters and junk are ignored."""
    gt = "\\u003e" * 3  # `>>>` as Go's JSON encoder writes it
    out = """{"stat": [
        {"name": "userGTa@xGTtrafficGTuplink", "value": 5},
        {"name": "user>>>a@x>>>traffic>>>downlink"},
        {"name": "user>>>b>>>c@x>>>traffic>>>downlink", "value": "123"},
        {"name": "inbound>>>api>>>traffic>>>uplink", "value": 9},
        {"name": "user>>>d@x>>>traffic>>>sideways", "value": 1},
        {"name": "user>>>e@x>>>traffic>>>uplink", "value": -3},
        {"name": 7}, "junk"
    ]}""".replace("GT", gt)
    assert parse(out) == {"a@x": (5, 0), "b>>>c@x": (0, 123), "e@x": (0, 0)}


def test_no_match_prints_an_empty_object() -> None:
    """`{}` (no counter matched) and empty output mean no traffic."""
    assert parse("{}") == {} and parse("") == {}


@pytest.mark.parametrize("out", ["not json", "[1, 2]", '{"stat": 5}'])
def test_unreadable_output_is_unavailable(out: str) -> None:
    """Output that is not statsquery's JSON is an Unavailable error, never a crash."""
    with pytest.raises(Unavailable):
        parse(out)
