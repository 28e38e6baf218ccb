"""Tests for xrayd.usage.files: the daily usage CSV, written and read back."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest

from xrayd.usage import files
from xrayd.usage.files import UserDay

DAY = dt.date(2026, 1, 20)


def at(hms: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{DAY.isoformat()}T{hms}")


def sample() -> dict[str, UserDay]:
    return {
        "alice@example.org": UserDay(
            "alice@example.org",
            uplink=1048576,
            downlink=73400320,
            connections=42,
            ips={"1.2.3.4", "2001:db8::1"},
            first_seen=at("08:15:02"),
            last_seen=at("23:10:44"),
            domains={"api.telegram.org": 12, "www.youtube.com": 30},
        ),
        "bob@example.org": UserDay("bob@example.org", uplink=5, downlink=7),
    }


def test_render_writes_the_documented_layout() -> None:
    """Domain totals, then user rows by email, then each user's domains by connections."""
    users = sample()
    users["bob@example.org"].domains = {"api.telegram.org": 2}
    text = files.render(users).decode()
    assert text == (
        "email,domain,uplink,downlink,connections,unique_ips,first_seen,last_seen\n"
        ",www.youtube.com,,,30,,,\n"
        ",api.telegram.org,,,14,,,\n"
        "alice@example.org,,1048576,73400320,42,2,2026-01-20T08:15:02,2026-01-20T23:10:44\n"
        "bob@example.org,,5,7,0,0,,\n"
        "alice@example.org,www.youtube.com,,,30,,,\n"
        "alice@example.org,api.telegram.org,,,12,,,\n"
        "bob@example.org,api.telegram.org,,,2,,,\n"
    )


def test_render_is_the_same_whatever_the_insertion_order() -> None:
    """The same day gives the same bytes: users and domains are sorted, ties by name."""
    users = sample()
    users["alice@example.org"].domains = {"b.example": 3, "a.example": 3, "c.example": 9}
    shuffled = dict(reversed(users.items()))
    shuffled["alice@example.org"].domains = dict(reversed(users["alice@example.org"].domains.items()))
    assert files.render(users) == files.render(shuffled)
    data = files.render(users)
    assert data.index(b"alice@example.org,c.example,,,9") < data.index(b"alice@example.org,a.example,,,3")
    assert data.index(b"alice@example.org,a.example") < data.index(b"alice@example.org,b.example")


def test_render_refuses_a_line_break_or_an_uppercase_key() -> None:
    """The reader finds rows by line, so the writer never puts a line break inside a field."""
    with pytest.raises(ValueError):
        files.render({"a@x": UserDay("a@x", domains={"evil\n.example": 1})})
    with pytest.raises(ValueError):
        files.render({"A@x": UserDay("A@x")})


def test_parse_reads_back_what_render_wrote() -> None:
    """Figures, times as seconds after midnight, totals and each user's rows round-trip."""
    data = files.render(sample())
    day = files.parse(data)
    assert day.emails == [b"alice@example.org", b"bob@example.org"]
    assert (day.uplink, day.downlink, day.connections, day.unique_ips) == (
        [1048576, 5],
        [73400320, 7],
        [42, 0],
        [2, 0],
    )
    assert day.first_seen == [8 * 3600 + 15 * 60 + 2, files.NO_TIME]
    assert day.last_seen == [23 * 3600 + 10 * 60 + 44, files.NO_TIME]
    assert day.domains == {b"www.youtube.com": 30, b"api.telegram.org": 12}
    alice = data[day.block_start[0] : day.block_end[0]]
    assert dict(files.domain_rows(alice, b"alice@example.org")) == {
        b"www.youtube.com": 30,
        b"api.telegram.org": 12,
    }
    assert day.block_end[0] == len(data)
    assert day.block_start[1] == day.block_end[1]  # bob has no domain rows
    assert day.bad_rows == 0


def test_every_users_rows_are_located(tmp_path: Path) -> None:
    """With many users, some without domains, each block holds exactly that user's rows."""
    users = {
        f"u{n:02d}@x": UserDay(f"u{n:02d}@x", domains={f"d{k}.example": k + 1 for k in range(n % 4)})
        for n in range(30)
    }
    data = files.render(users)
    day = files.parse(data)
    for i, email in enumerate(day.emails):
        block = data[day.block_start[i] : day.block_end[i]]
        assert dict(files.domain_rows(block, email)) == {
            d.encode(): n for d, n in users[email.decode()].domains.items()
        }
        assert all(line.startswith(email + b",") for line in block.splitlines())


def test_a_comma_or_quote_in_a_name_survives_the_round_trip() -> None:
    """Names with commas or quotes are quoted by the writer and read back whole."""
    users = {
        'o"brien,x@example.org': UserDay('o"brien,x@example.org', connections=1, domains={"a,b.example": 1})
    }
    data = files.render(users)
    day = files.parse(data)
    assert day.emails == [b'o"brien,x@example.org']
    assert day.domains == {b"a,b.example": 1}
    block = data[day.block_start[0] : day.block_end[0]]
    assert dict(files.domain_rows(block, day.emails[0])) == {b"a,b.example": 1}
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[2][0] == 'o"brien,x@example.org'


def test_a_day_without_domains_or_without_users_reads_clean() -> None:
    """No totals section, or no rows at all, is a normal day, not a malformed one."""
    traffic_only = files.parse(files.render({"a@x": UserDay("a@x", uplink=1)}))
    assert (traffic_only.emails, traffic_only.domains, traffic_only.bad_rows) == ([b"a@x"], {}, 0)
    assert (traffic_only.block_start, traffic_only.block_end) == ([0], [0])
    empty = files.parse(files.render({}))
    assert (empty.emails, empty.domains, empty.bad_rows) == ([], {}, 0)


def test_malformed_rows_are_skipped_and_counted() -> None:
    """A row with too few fields or a non-number is skipped; the rest of the file is read."""
    data = (
        files.HEADER_LINE
        + b",d.example,,,4,,,\n"
        + b",bad.example,,,four,,,\n"
        + b"a@x,,1,2,3,1,2026-01-20T00:00:01,2026-01-20T00:00:02\n"
        + b"short,row\n"
        + b"b@x,,9,9,9,9,bad-time,2026-01-20T00:00:02\n"
        + b"c@x,,1,1,1,1,,\n"
        + b"d@x,,-1,1,1,1,,\n"
        + b"a@x,d.example,,,3,,,\n"
        + b"c@x,d.example,,,1,,,\n"
    )
    day = files.parse(data)
    assert day.emails == [b"a@x", b"c@x"]
    assert day.domains == {b"d.example": 4}
    assert day.bad_rows == 4


def test_a_file_with_another_header_is_refused() -> None:
    """A CSV that is not a usage file raises FormatError instead of being misread."""
    with pytest.raises(files.FormatError):
        files.parse(b"date,email,bytes\n2026-01-20,a@x,5\n")


def test_list_dates_is_newest_first_and_ignores_other_files(tmp_path: Path) -> None:
    """Only YYYY-MM-DD.csv names that are real dates count; folders and other names do not."""
    for name in ("2026-01-20.csv", "2026-01-22.csv", "2025-12-31.csv"):
        (tmp_path / name).write_bytes(files.HEADER_LINE)
    for name in (
        "2026-02-30.csv",
        "notes.txt",
        "2026-01-21.csv.tmp",
        ".2026-01-23.csv.x.tmp",
        "20260124.csv",
    ):
        (tmp_path / name).write_text("x")
    (tmp_path / "2026-01-25.csv").mkdir()
    assert files.list_dates(tmp_path) == [dt.date(2026, 1, 22), dt.date(2026, 1, 20), dt.date(2025, 12, 31)]
    assert files.list_dates(tmp_path / "absent") == []
