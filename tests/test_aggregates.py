"""Tests for xrayd.live.aggregates and buckets: sealing, ageing, caps, late lines, the bounds."""

from __future__ import annotations

import pytest

from xrayd.live import buckets
from xrayd.live.aggregates import FUTURE, Aggregates
from xrayd.live.pairs import Pairs
from xrayd.live.scan import Tally

NOW = 29_000_000  # a Unix minute


def tally(minute: int, pairs: dict[tuple[str, str], int]) -> Tally:
    return Tally(pairs=Pairs.from_counter({(minute, e, h): n for (e, h), n in pairs.items()}))


def figures(agg: Aggregates, start: int, end: int) -> dict:
    return {
        "now": [(r.email, r.conns, r.uplink, r.downlink, r.top_domains) for r in agg.now(start, end)],
        "conns": agg.series("conns", start, end, 1, None),
        "traffic": agg.series("traffic", start, end, 1, None),
        "alice": agg.series("conns", start, end, 1, "a@x"),
        "top": agg.top_users("traffic", start, end),
        "domains": sorted(agg.top_domains(start, end, None)[0]),
        "alice_domains": sorted(agg.top_domains(start, end, "a@x")[0]),
    }


def test_sealing_changes_no_figure() -> None:
    """Every query answers the same before and after buckets are sealed into arrays."""
    agg = Aggregates(1440)
    agg.add_tally(tally(NOW - 2, {("a@x", "h1"): 3, ("b@x", "h1"): 1, ("a@x", "h2"): 2}), NOW)
    agg.add_traffic({"a@x": (10, 300), "b@x": (1, 2)}, NOW - 2, (NOW - 2) * 60.0)
    agg.add_tally(tally(NOW, {("b@x", "h3"): 4}), NOW)
    before = figures(agg, NOW - 5, NOW + 1)
    agg.seal(NOW, NOW)
    assert figures(agg, NOW - 5, NOW + 1) == before
    assert before["now"][0] == ("a@x", 5, 10, 300, [("h1", 3), ("h2", 2)])
    assert before["conns"] == [0, 0, 0, 6, 0, 4] and before["traffic"][3] == 313
    assert before["domains"] == [("h1", 4), ("h2", 2), ("h3", 4)]


def test_old_buckets_keep_totals_but_merge_up_and_down() -> None:
    """After the detail window a bucket keeps connections and traffic per user, in one figure."""
    agg = Aggregates(1440)
    old = NOW - buckets.DETAIL_MINUTES - 5
    agg.add_tally(tally(old, {("a@x", "h1"): 2}), NOW)
    agg.add_traffic({"a@x": (7, 8)}, old, old * 60.0)
    agg.seal(NOW, NOW)
    assert agg.series("traffic", old, old + 1, 1, "a@x") == [15]
    assert agg.top_users("conns", old, old + 1) == [("a@x", 2)]
    assert agg.now(old, old + 1)[0].uplink == 0  # the split is gone; live.now never looks this far


def test_a_late_line_reopens_its_sealed_minute() -> None:
    """A line for a minute already sealed is added to it, not lost and not double counted."""
    agg = Aggregates(1440)
    agg.add_tally(tally(NOW - 3, {("a@x", "h1"): 1}), NOW)
    agg.add_traffic({"a@x": (5, 5)}, NOW - 3, 0.0)
    agg.seal(NOW, NOW)
    agg.add_tally(tally(NOW - 3, {("a@x", "h1"): 1, ("a@x", "h9"): 1}), NOW)
    agg.seal(NOW, NOW)
    assert agg.series("conns", NOW - 3, NOW - 2, 1, "a@x") == [3]
    assert agg.series("traffic", NOW - 3, NOW - 2, 1, "a@x") == [10]
    assert agg.top_domains(NOW - 3, NOW - 2, "a@x") == ([("h1", 2), ("h9", 1)], 0)


def test_minutes_outside_the_retention_or_in_the_future_are_not_kept() -> None:
    """A wrong clock or a hostile timestamp cannot make buckets; expired ones are dropped."""
    agg = Aggregates(60)
    agg.add_tally(tally(NOW - 60, {("a@x", "h"): 1}), NOW)
    agg.add_tally(tally(NOW + FUTURE + 1, {("a@x", "h"): 1}), NOW)
    agg.add_tally(tally(NOW - 59, {("a@x", "h"): 1}), NOW)
    assert agg.series("conns", NOW - 100, NOW + 100, 200, None) == [1]
    agg.seal(NOW, NOW + 1)
    assert agg.series("conns", NOW - 100, NOW + 100, 200, None) == [0]


def test_caps_count_the_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cap on pairs a bucket keeps the busiest, still counts each user's connections,
    and the destinations it cannot keep as overflow."""
    monkeypatch.setattr(buckets, "OPEN_PAIRS", 2)
    monkeypatch.setattr(buckets, "OPEN_DOMAINS", 1)
    agg = Aggregates(1440)
    agg.add_tally(tally(NOW, {("a@x", "h1"): 1, ("a@x", "h2"): 3}), NOW)
    agg.add_tally(tally(NOW, {("a@x", "h3"): 5, ("b@x", "h4"): 2}), NOW)
    for _ in range(2):  # open, then sealed
        assert agg.top_users("conns", NOW, NOW + 1) == [("a@x", 9), ("b@x", 2)]
        ranked, overflow = agg.top_domains(NOW, NOW + 1, None)
        assert ranked == [("h3", 5), ("h2", 3), ("h4", 2)] and overflow == 1
        assert agg.top_domains(NOW, NOW + 1, "a@x") == ([("h3", 5), ("h2", 3)], 1)
        assert agg.top_domains(NOW, NOW + 1, "b@x") == ([], 2)
        agg.seal(NOW + 1, NOW + 1)


def test_emails_past_the_cap_are_counted_not_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cap on distinct emails, a new email's connections are counted as untracked
    (live.now shows the figure) and it gets no row; known emails go on being counted."""
    monkeypatch.setattr("xrayd.live.aggregates.MAX_USERS", 1)
    agg = Aggregates(1440)
    agg.add_tally(tally(NOW, {("a@x", "h1"): 2}), NOW)
    agg.add_tally(tally(NOW, {("b@x", "h1"): 3, ("a@x", "h2"): 1}), NOW)
    assert agg.untracked == 3
    assert [email for email, _ in agg.top_users("conns", NOW, NOW + 1)] == ["a@x"]


def test_narrow_picks_the_smallest_type() -> None:
    """Sealed columns take the narrowest unsigned type their values fit."""
    assert buckets.narrow([1, 255]).dtype.itemsize == 1
    assert buckets.narrow([256]).dtype.itemsize == 2
    assert buckets.narrow([2**32]).dtype.itemsize == 8
    assert buckets.narrow([]).size == 0
