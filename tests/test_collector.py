"""The collector over real log files (plain, rotated, gzip'd) and a real ledger, in tmp folders."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xrayd.errors import BadRequest, Conflict
from xrayd.events import EventLog
from xrayd.live.ledger import Ledger, Row
from xrayd.usage import collector, files, runs
from xrayd.usage.collector import Report

TODAY = dt.date.today()
D1, D2, D3 = (TODAY - dt.timedelta(days=n) for n in (3, 2, 1))


def line(date: dt.date, hms: str, rest: str) -> str:
    return f"{date:%Y/%m/%d} {hms} {rest}\n"


def accepted(date: dt.date, hms: str, src: str, dst: str, email: str) -> str:
    return line(date, f"{hms}.000001", f"from {src} accepted {dst} [vless-in >> direct] email: {email}")


class Setup:
    """A log folder and a data folder; `collect()` runs the collector on them."""

    def __init__(self, root: Path) -> None:
        self.log_dir = root / "log"
        self.usage_dir = root / "usage"
        self.data_dir = root / "data"
        for folder in (self.log_dir, self.data_dir):
            folder.mkdir()
        self.access_log = self.log_dir / "access.log"

    def write(self, name: str, text: str) -> None:
        path = self.log_dir / name
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)

    def ledger(self, *rows: Row) -> None:
        ledger = Ledger.in_data_dir(self.data_dir)
        ledger.add(rows)
        ledger.close()

    def collect(self, **kw: object) -> Report:
        ledger = Ledger.in_data_dir(self.data_dir, readonly=True)
        try:
            return collector.collect(
                access_log=self.access_log,
                usage_dir=self.usage_dir,
                traffic=ledger.totals_for_day,
                today=kw.pop("today", TODAY),  # type: ignore[arg-type]
                **kw,  # type: ignore[arg-type]
            )
        finally:
            ledger.close()

    def usage(self, date: dt.date) -> str:
        return files.path_for(self.usage_dir, date).read_text()

    def user_row(self, date: dt.date, email: str) -> str:
        """The user row of `email` in a day's file."""
        (row,) = [r for r in self.usage(date).splitlines() if r.startswith(f"{email},,")]
        return row


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def three_days(s: Setup) -> None:
    """Three finished days over access.log.2.gz, access.log.1 and access.log, plus today."""
    s.write(
        "access.log.2.gz",
        accepted(D1, "08:00:01", "1.2.3.4:5000", "tcp:www.google.com:443", "alice@example.org")
        + accepted(D1, "08:00:02", "1.2.3.4:5001", "tcp:WWW.Google.com:443", "alice@example.org")
        + accepted(D1, "09:10:00", "[2001:db8::1]:4000", "udp:1.1.1.1:53", "alice@example.org")
        + accepted(D1, "10:00:00", "tcp:5.6.7.8:1000", "tcp:api.telegram.org:443", "Bob@Example.org")
        + line(D1, "10:00:01", "from 5.6.7.8:1001 rejected  proxy/vless/encoding: invalid request user id")
        + line(D1, "11:00:00", "from 127.0.0.1:39946 accepted tcp:127.0.0.1:0 [api -> api]")
        + "garbage that is not an access line\n",
    )
    s.write(
        "access.log.1",
        accepted(D1, "23:59:59", "9.9.9.9:1", "tcp:www.google.com:443", "alice@example.org")
        + line(D2, "00:00:00", "DOHL//1.1.1.1 got answer: www.google.com -> [172.217.161.228] 90ms")
        + line(
            D2,
            "00:00:00",
            "5.6.7.8:1002 accepted tcp:[2a00:1450::200e]:443 [in >> out] email: bob@example.org",
        )
        + accepted(D2, "12:30:00", "5.6.7.8:1003", "tcp:[2a00:1450::200e]:443", "bob@example.org"),
    )
    s.write(
        "access.log",
        accepted(D3, "00:00:05", "1.2.3.4:6000", "tcp:youtube.com:443", "alice@example.org")
        + accepted(TODAY, "00:00:01", "1.2.3.4:6001", "tcp:youtube.com:443", "alice@example.org"),
    )
    s.ledger(
        Row(D1, "alice@example.org", 1000, 2000),
        Row(D1, "carol@example.org", 5, 7),
        Row(D2, "Bob@Example.org", 30, 40),
        Row(D2, "bob@example.org", 1, 1),
        Row(TODAY, "alice@example.org", 9, 9),
    )


HEADER = "email,domain,uplink,downlink,connections,unique_ips,first_seen,last_seen\n"


def test_three_days_over_rotated_plain_and_gz_files_match_a_hand_count(setup: Setup) -> None:
    """Each finished day gets its file; every count is what a person counts in the lines above."""
    three_days(setup)
    report = setup.collect()
    assert report.written == [D1, D2, D3]
    assert report.missing == report.kept == report.unchanged == []
    assert setup.usage(D1) == HEADER + (
        ",www.google.com,,,3,,,\n"
        ",1.1.1.1,,,1,,,\n"
        ",api.telegram.org,,,1,,,\n"
        f"alice@example.org,,1000,2000,4,3,{D1}T08:00:01,{D1}T23:59:59\n"
        f"bob@example.org,,0,0,1,1,{D1}T10:00:00,{D1}T10:00:00\n"
        "carol@example.org,,5,7,0,0,,\n"
        "alice@example.org,www.google.com,,,3,,,\n"
        "alice@example.org,1.1.1.1,,,1,,,\n"
        "bob@example.org,api.telegram.org,,,1,,,\n"
    )
    assert setup.usage(D2) == HEADER + (
        ",2a00:1450::200e,,,2,,,\n"
        f"bob@example.org,,31,41,2,1,{D2}T00:00:00,{D2}T12:30:00\n"
        "bob@example.org,2a00:1450::200e,,,2,,,\n"
    )
    assert setup.usage(D3) == HEADER + (
        ",youtube.com,,,1,,,\n"
        f"alice@example.org,,0,0,1,1,{D3}T00:00:05,{D3}T00:00:05\n"
        "alice@example.org,youtube.com,,,1,,,\n"
    )
    assert not files.path_for(setup.usage_dir, TODAY).exists()
    assert report.lines == 13 and report.unparsed == 2  # the garbage line and the DNS line
    assert report.connections == 8 and report.user_days == 5
    assert report.files_read == ["access.log.2.gz", "access.log.1", "access.log"]


def test_a_second_run_writes_nothing_and_a_forced_rerun_writes_the_same_bytes(setup: Setup) -> None:
    """Idempotent: nothing is due after a run; collecting a day again gives identical content."""
    three_days(setup)
    setup.collect()
    before = {d: setup.usage(d) for d in (D1, D2, D3)}
    assert setup.collect().written == []
    path = files.path_for(setup.usage_dir, D2)
    inode = path.stat().st_ino
    again = setup.collect(only=D2)
    assert (again.written, again.unchanged) == ([], [D2])
    assert path.stat().st_ino == inode  # not even rewritten
    assert {d: setup.usage(d) for d in (D1, D2, D3)} == before


def test_today_only_when_asked_and_collected_again_once_it_is_over(setup: Setup) -> None:
    """include_today writes today so far; the next day's run replaces that partial file."""
    three_days(setup)
    assert TODAY not in setup.collect().written
    report = setup.collect(include_today=True)
    assert report.written == [TODAY]
    assert setup.user_row(TODAY, "alice@example.org").startswith("alice@example.org,,9,9,1,1,")
    with open(setup.access_log, "a") as f:
        f.write(accepted(TODAY, "23:00:00", "8.8.8.8:1", "tcp:late.example:443", "alice@example.org"))
    tomorrow = TODAY + dt.timedelta(days=1)
    report = setup.collect(today=tomorrow)
    assert report.written == [TODAY]
    assert ",9,9,2,2," in setup.user_row(TODAY, "alice@example.org")
    assert "late.example" in setup.usage(TODAY)


def test_yesterday_alone_is_due_after_the_days_before_are_collected(setup: Setup) -> None:
    """A daily run collects just the day that ended, not the ones already collected."""
    three_days(setup)
    setup.collect(today=D3)  # as if cron ran yesterday: D1 and D2 are done
    assert setup.collect().written == [D3]


def test_days_whose_log_is_gone_are_reported_never_invented(setup: Setup) -> None:
    """Days between the last collected one and the log's first line are `missing`, no file."""
    three_days(setup)
    old = D1 - dt.timedelta(days=5)
    files.path_for(setup.usage_dir, old).parent.mkdir(parents=True)
    files.path_for(setup.usage_dir, old).write_bytes(files.render({}))
    report = setup.collect()
    assert report.missing == [old + dt.timedelta(days=n) for n in range(1, 5)]
    assert report.written == [D1, D2, D3]
    assert sorted(files.list_dates(setup.usage_dir)) == [old, D1, D2, D3]
    with pytest.raises(BadRequest):
        setup.collect(only=TODAY + dt.timedelta(days=1))
    explicit = setup.collect(only=old)
    assert (explicit.missing, explicit.written) == ([old], [])


def test_a_file_with_lines_older_than_the_log_is_kept(setup: Setup) -> None:
    """When rotation has removed part of a day, its existing file is kept, not shrunk."""
    three_days(setup)
    setup.collect()
    (setup.log_dir / "access.log.2.gz").unlink()  # D1's morning is gone; its 23:59:59 line stays
    before = setup.usage(D1)
    report = setup.collect(only=D1)
    assert (report.kept, report.written, report.unchanged) == ([D1], [], [])
    assert setup.usage(D1) == before
    assert setup.collect(only=D2).unchanged == [D2]


def test_the_first_day_in_the_log_is_collected_from_what_is_there(setup: Setup) -> None:
    """A log that begins mid-day (a fresh install) still gives that day a file."""
    setup.write("access.log", accepted(D3, "15:00:00", "1.2.3.4:1", "tcp:a.example:443", "a@x"))
    report = setup.collect()
    assert report.written == [D3]
    assert report.log_begins == dt.datetime.combine(D3, dt.time(15, 0, 0, 1))
    again = setup.collect(only=D3)  # the file's 15:00:00 is that same first line, not an older one
    assert (again.unchanged, again.kept) == ([D3], [])


def test_no_log_at_all_collects_nothing(setup: Setup) -> None:
    """Without any access log there is nothing to count and nothing is written."""
    report = setup.collect()
    assert report.written == report.missing == [] and report.log_begins is None
    assert files.list_dates(setup.usage_dir) == []


def test_a_plain_file_wins_over_its_gz_twin(setup: Setup) -> None:
    """While logrotate compresses, `.2` and a partial `.2.gz` coexist: lines count once."""
    three_days(setup)
    text = gzip.decompress((setup.log_dir / "access.log.2.gz").read_bytes()).decode()
    setup.write("access.log.2", text)
    (setup.log_dir / "access.log.2.gz").write_bytes(gzip.compress(text.encode())[:40])
    report = setup.collect()
    assert ",1000,2000,4,3," in setup.user_row(D1, "alice@example.org")
    assert "access.log.2.gz" not in report.files_read


def test_dateext_names_are_found_and_ordered_by_content(setup: Setup) -> None:
    """`access.log-YYYYMMDD.gz` siblings are read too; order comes from their first lines."""
    setup.write("access.log-20990101.gz", accepted(D1, "10:00:00", "1.1.1.1:1", "tcp:a.example:443", "a@x"))
    setup.write("access.log-19990101", accepted(D2, "10:00:00", "1.1.1.1:1", "tcp:b.example:443", "a@x"))
    setup.write("access.log", accepted(D3, "10:00:00", "1.1.1.1:1", "tcp:c.example:443", "a@x"))
    setup.write("access.log.bak", accepted(D3, "11:00:00", "1.1.1.1:1", "tcp:c.example:443", "a@x"))
    report = setup.collect()
    assert report.written == [D1, D2, D3]
    assert report.files_read == ["access.log-20990101.gz", "access.log-19990101", "access.log"]
    assert setup.user_row(D3, "a@x").startswith("a@x,,0,0,1,1,")


def test_a_corrupt_gz_fails_the_run_with_its_name(setup: Setup, tmp_path: Path) -> None:
    """A truncated compressed log is an error naming the file, not a silent undercount."""
    three_days(setup)
    data = (setup.log_dir / "access.log.2.gz").read_bytes()
    (setup.log_dir / "access.log.2.gz").write_bytes(data[: len(data) - 12])
    events = EventLog(setup.data_dir / "events.jsonl")
    outcome = runs.run(setup.data_dir, events, access_log=setup.access_log, usage_dir=setup.usage_dir)
    assert not outcome.ok
    assert outcome.error == "access.log.2.gz is truncated or corrupt."
    state = runs.load_state(setup.data_dir)
    assert state["last_run"]["ok"] is False and state["last_error"] == outcome.error
    event = events.list(limit=1)["events"][0]
    assert (event["type"], event["severity"]) == ("collector_run", "error")


def test_hostile_names_are_dropped_not_written(setup: Setup) -> None:
    """A name with a control character is not counted; one with a comma or quote is quoted."""
    setup.write(
        "access.log",
        accepted(D3, "10:00:00", "1.1.1.1:1", "tcp:ok.example:443", "a@x")
        + accepted(D3, "10:00:01", "1.1.1.1:1", "tcp:ok.example:443", "b@x\rz")
        + accepted(D3, "10:00:02", "1.1.1.1:1", "tcp:a,b.example:443", 'c"q@x'),
    )
    setup.collect()
    day = files.parse(files.path_for(setup.usage_dir, D3).read_bytes())
    assert day.emails == [b"a@x", b'c"q@x'] and day.bad_rows == 0
    assert day.domains == {b"ok.example": 1, b"a,b.example": 1}


def test_a_run_is_recorded_in_state_and_events(setup: Setup) -> None:
    """runs.run leaves its counts in collector.json and one collector_run event."""
    three_days(setup)
    events = EventLog(setup.data_dir / "events.jsonl")
    outcome = runs.run(setup.data_dir, events, access_log=setup.access_log, usage_dir=setup.usage_dir)
    assert outcome.ok
    state = runs.load_state(setup.data_dir)
    assert state["last_error"] is None
    assert state["last_run"]["ok"] is True and state["last_run"]["written"] == [str(d) for d in (D1, D2, D3)]
    (event,) = events.list()["events"]
    assert event["type"] == "collector_run" and event["service"] == "collector"
    assert event["data"]["written_count"] == 3 and event["data"]["connections"] == 8
    assert event["message"] == "Collector: 3 day(s) written, 0 unchanged, 0 missing, 0 kept."


def test_a_second_run_at_once_is_refused(setup: Setup) -> None:
    """While one run holds the lock (cron), another (the API) is a Conflict, not a queue."""
    events = EventLog(setup.data_dir / "events.jsonl")
    with runs.run_lock(setup.data_dir), pytest.raises(Conflict) as err:
        runs.run(setup.data_dir, events, access_log=setup.access_log, usage_dir=setup.usage_dir)
    assert err.value.error == "collector_running"
    assert events.list()["total"] == 0


def test_xrayd_collect_runs_standalone_with_progress(setup: Setup, tmp_path: Path) -> None:
    """`xrayd collect` (what cron runs) works with no daemon, prints progress, records the event."""
    three_days(setup)
    config_file = tmp_path / "xrayd.toml"
    config_file.write_text(
        f'access_log = "{setup.access_log}"\nusage_dir = "{setup.usage_dir}"\ndata_dir = "{setup.data_dir}"\n'
    )
    argv = [sys.executable, "-m", "xrayd", "collect", "--config", str(config_file)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{D1}: written, 3 users, 5 connections" in done.stderr
    assert "reading access.log.2.gz" in done.stderr
    assert done.stdout.strip() == "Collector: 3 day(s) written, 0 unchanged, 0 missing, 0 kept."
    quiet = subprocess.run([*argv, "--quiet"], capture_output=True, text=True, timeout=60, check=False)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    bad = subprocess.run(
        [*argv, "--date", "2999-01-01"], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1 and "has not happened yet" in bad.stderr
    events = EventLog(setup.data_dir / "events.jsonl").list()["events"]
    assert [e["type"] for e in events] == ["collector_run", "collector_run"]
    assert oct(os.stat(files.path_for(setup.usage_dir, D1)).st_mode & 0o777) == "0o600"
