"""Tests for xrayd.live.aggregates and buckets: sealing, ageing, caps, late lines, the bounds."""

from __future__ import annotations

from collections import Counter

import numpy as np
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


def test_old_minutes_with_the_same_users_share_one_list_of_them() -> None:
    """Aged minutes with the same users hold one array of them between them (memory), and
    every figure stays its own; a minute with other users keeps its own array."""
    agg = Aggregates(1440)
    old = NOW - buckets.DETAIL_MINUTES - 10
    for minute, users in ((old, "ab"), (old + 1, "ab"), (old + 2, "ac")):
        agg.add_tally(tally(minute, {(f"{u}@x", "h"): minute - old + 1 for u in users}), NOW)
    agg.seal(NOW, NOW)
    first, second, third = (agg._sealed[old + i] for i in range(3))
    assert second.uids is first.uids and third.uids is not second.uids
    assert agg.series("conns", old, old + 3, 1, "a@x") == [1, 2, 3]
    assert agg.top_users("conns", old, old + 3) == [("a@x", 6), ("b@x", 3), ("c@x", 3)]


def test_old_minutes_keep_the_busiest_destinations(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aged minute keeps its busiest destinations; among equals, the first met."""
    monkeypatch.setattr(buckets, "OLD_DOMAINS", 2)
    agg = Aggregates(1440)
    old = NOW - buckets.DETAIL_MINUTES - 5
    agg.add_tally(tally(old, {("a@x", "h1"): 1, ("a@x", "h2"): 1, ("a@x", "h3"): 1, ("b@x", "h4"): 2}), NOW)
    agg.seal(NOW, NOW)
    assert agg.top_domains(old, old + 1, None) == ([("h4", 2), ("h1", 1)], 2)


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


def hosts(*names: str) -> np.ndarray:
    return np.array(names, dtype=object)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_pieces_merge_per_pair_across_host_tables() -> None:
    """Pieces of one minute are summed per (user, destination), whatever their host tables."""
    bucket = buckets.Open()
    bucket.add_pairs(ints(0, 0, 1), ints(0, 1, 1), ints(1, 2, 3), hosts("h1", "h2"))
    bucket.add_pairs(ints(0, 1), ints(1, 0), ints(4, 5), hosts("h2", "h1", "unused"))
    sealed = bucket.sealed()
    pairs = zip(
        sealed.pair_uids.tolist(), sealed.pair_hosts.tolist(), sealed.pair_counts.tolist(), strict=True
    )
    assert sorted(pairs) == [(0, "h1", 5), (0, "h2", 2), (1, "h2", 8)]
    assert bucket.held == (1, 3)
    assert dict(zip(sealed.domain_hosts, sealed.domain_counts.tolist(), strict=True)) == {"h1": 5, "h2": 10}
    assert (sealed.uids.tolist(), sealed.conns.tolist(), sealed.total_conns) == ([0, 1], [7, 8], 15)


def test_pieces_over_long_host_tables() -> None:
    """A piece may use a few names of a long table (a scanner's); they are found by sorting
    the rows, not by a pass over the table, and counted alike."""
    table = hosts(*(f"n{i}" for i in range(5000)))
    bucket = buckets.Open()
    bucket.add_pairs(ints(0, 1), ints(4999, 7), ints(2, 1), table)
    sealed = bucket.sealed()
    assert sorted(zip(sealed.domain_hosts, sealed.domain_counts.tolist(), strict=True)) == [
        ("n4999", 2),
        ("n7", 1),
    ]
    bucket.add_pairs(ints(0), ints(3), ints(4), hosts(*(f"n{i}" for i in range(4999, 2, -1))))
    sealed = bucket.sealed()
    assert sorted(zip(sealed.domain_hosts, sealed.domain_counts.tolist(), strict=True)) == [
        ("n4996", 4),
        ("n4999", 2),
        ("n7", 1),
    ]


def test_pieces_merge_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """An open bucket merges its pieces once they hold MERGE_ROWS rows or MERGE_PIECES pieces,
    so it holds as much as its distinct pairs, however many lines and chunks come."""
    monkeypatch.setattr(buckets, "MERGE_ROWS", 5)
    monkeypatch.setattr(buckets, "MERGE_PIECES", 3)
    bucket = buckets.Open()
    for i in range(100):
        bucket.add_pairs(ints(0, 1), ints(0, 0), ints(1, 2), hosts("h", f"x{i}"))
        assert bucket.held[0] <= 3 and bucket.held[1] <= 6
    bucket.add_pairs(ints(0, 0, 0), ints(0, 1, 2), ints(1, 1, 1), hosts("a", "b", "c"))
    bucket.add_pairs(ints(2, 2, 2), ints(0, 1, 2), ints(1, 1, 1), hosts("a", "b", "c"))
    assert bucket.held == (1, 8)  # merged into its 8 distinct pairs
    sealed = bucket.sealed()
    assert (sealed.conns.tolist(), sealed.domain_counts.sum()) == ([103, 200, 3], 306)


def test_every_query_answers_the_same_for_a_bucket_of_many_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A minute added to in several tallies (the same pair twice, a host at another index in
    each table), with traffic and rejected lines, answers alike open, merged and sealed."""
    monkeypatch.setattr(buckets, "MERGE_PIECES", 2)
    agg = Aggregates(1440)
    agg.add_tally(tally(NOW - 1, {("a@x", "h1"): 3, ("b@x", "h2"): 1}), NOW)
    agg.add_traffic({"a@x": (10, 300)}, NOW - 1, (NOW - 1) * 60.0)
    before = figures(agg, NOW - 2, NOW + 1)
    agg.add_tally(tally(NOW - 1, {("c@x", "h3"): 2, ("a@x", "h1"): 2, ("a@x", "h2"): 1}), NOW)
    agg.add_tally(Tally(rejected=Counter({NOW - 1: 4})), NOW)
    agg.add_traffic({"a@x": (1, 1), "b@x": (0, 7)}, NOW - 1, (NOW - 1) * 60.0)
    agg.add_tally(tally(NOW - 1, {("b@x", "h2"): 2, ("b@x", "h9"): 1}), NOW)
    agg.add_tally(tally(NOW, {("a@x", "h1"): 1}), NOW)
    after = figures(agg, NOW - 2, NOW + 1)
    assert after != before  # the cached view follows the adds
    agg.seal(NOW, NOW)
    assert figures(agg, NOW - 2, NOW + 1) == after
    assert after["now"] == [
        ("a@x", 7, 11, 301, [("h1", 6), ("h2", 1)]),
        ("b@x", 4, 0, 7, [("h2", 3), ("h9", 1)]),
        ("c@x", 2, 0, 0, [("h3", 2)]),
    ]
    assert after["domains"] == [("h1", 6), ("h2", 4), ("h3", 2), ("h9", 1)]
    assert after["conns"] == [0, 12, 1] and after["traffic"] == [0, 319, 0]


def test_a_late_line_reopens_an_aged_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aged bucket (one traffic figure, top pairs and destinations) reopened for a late line
    keeps every user's totals exact and counts no connection twice."""
    monkeypatch.setattr(buckets, "OLD_PAIRS", 2)
    monkeypatch.setattr(buckets, "OLD_DOMAINS", 1)
    agg = Aggregates(1440)
    old = NOW - buckets.DETAIL_MINUTES - 5
    agg.add_tally(tally(old, {("a@x", "h1"): 5, ("a@x", "h2"): 4, ("b@x", "h3"): 3, ("b@x", "h1"): 1}), NOW)
    agg.add_traffic({"a@x": (7, 8)}, old, old * 60.0)
    agg.seal(NOW, NOW)
    assert agg.top_domains(old, old + 1, None) == ([("h1", 6)], 7)
    agg.add_tally(tally(old, {("b@x", "h2"): 1, ("c@x", "h4"): 1}), NOW)
    agg.add_traffic({"a@x": (1, 2)}, old, old * 60.0)
    for _ in range(2):  # reopened, then aged again
        assert agg.top_users("conns", old, old + 1) == [("a@x", 9), ("b@x", 5), ("c@x", 1)]
        assert agg.series("traffic", old, old + 1, 1, "a@x") == [18]
        ranked, overflow = agg.top_domains(old, old + 1, None)
        assert sum(n for _, n in ranked) + overflow == 15
        ranked, overflow = agg.top_domains(old, old + 1, "b@x")
        assert sum(n for _, n in ranked) + overflow == 5
        agg.seal(NOW, NOW)
    assert agg.top_domains(old, old + 1, None) == ([("h1", 6)], 9)
    assert agg.top_domains(old, old + 1, "a@x") == ([("h1", 5), ("h2", 4)], 0)


def test_rows_of_emails_past_the_cap_count_as_untracked(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a tally mixing tracked and untracked emails, only the untracked rows inside the
    window count as untracked; the tracked ones land in their buckets."""
    monkeypatch.setattr("xrayd.live.aggregates.MAX_USERS", 2)
    agg = Aggregates(60)
    agg.add_tally(tally(NOW - 100, {("z@x", "h1"): 50}), NOW)  # outside the window: not registered
    pairs = {(NOW, "a@x", "h1"): 1, (NOW, "b@x", "h1"): 2, (NOW, "c@x", "h2"): 3, (NOW - 1, "c@x", "h1"): 4}
    pairs[NOW - 100, "d@x", "h1"] = 9  # outside the window: neither counted nor registered
    agg.add_tally(Tally(pairs=Pairs.from_counter(pairs)), NOW)
    assert agg.untracked == 7 and agg.emails == ["a@x", "b@x"]
    assert agg.top_users("conns", NOW - 5, NOW + 1) == [("b@x", 2), ("a@x", 1)]
    assert agg.series("conns", NOW - 1, NOW + 1, 1, None) == [0, 3]
    assert agg.top_domains(NOW - 5, NOW + 1, None) == ([("h1", 3)], 0)


def test_tallies_over_one_growing_host_table() -> None:
    """Tallies that share the scanner's name tables, which grow between them, count in their
    minutes as if each had tables of its own."""
    emails, names = ["a@x", "b@x"], ["h1", "h2"]

    def shared(*columns: tuple[int, ...]) -> Tally:  # minute, email, host, count
        return Tally(pairs=Pairs(*(ints(*c) for c in columns), emails, names))

    agg = Aggregates(1440)
    agg.add_tally(shared((NOW, NOW), (0, 1), (0, 1), (1, 2)), NOW)
    names.append("h3")
    agg.add_tally(shared((NOW, NOW + 1), (0, 1), (2, 2), (5, 1)), NOW)
    names.append("h4")
    agg.add_tally(shared((NOW, NOW + 1, NOW + 1), (0, 0, 1), (0, 3, 2), (3, 7, 1)), NOW)
    for _ in range(2):  # open, then sealed
        assert agg.top_domains(NOW, NOW + 1, None) == ([("h3", 5), ("h1", 4), ("h2", 2)], 0)
        assert agg.top_domains(NOW, NOW + 1, "a@x") == ([("h3", 5), ("h1", 4)], 0)
        assert agg.top_domains(NOW + 1, NOW + 2, None) == ([("h4", 7), ("h3", 2)], 0)
        assert agg.top_users("conns", NOW, NOW + 2) == [("a@x", 16), ("b@x", 4)]
        agg.seal(NOW + 2, NOW + 2)


def test_counts_past_float_precision_are_summed_exactly() -> None:
    """Sums of counts past 2**53 (where bincount's float64 would round) stay exact."""
    big = 2**60
    pairs = Pairs.from_counter({(NOW, "a@x", "h"): big + 3})
    merged = Pairs.concat([pairs, Pairs.from_counter({(NOW, "a@x", "h"): big})])
    assert merged.count.tolist() == [2 * big + 3]
