"""Tests for xrayd.events: real files in tmp_path, real fsync, real flock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xrayd import events as events_mod
from xrayd.errors import InvalidParams
from xrayd.events import EventLog, format_ts

T0 = datetime(2026, 12, 4, 19, 57, 58, 123000, tzinfo=UTC)


class FakeClock:
    """A settable clock: `clock()` returns `now`, which tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def all_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + "*"))


def event_line(moment: datetime, n: int, /, **fields: object) -> str:
    """One stored line for event `n` at `moment`; `fields` override (or break) its keys."""
    event = {
        "ts": format_ts(moment),
        "type": "test",
        "severity": "info",
        "service": "xrayd",
        "message": f"event {n}",
        "data": {"n": n},
    }
    event.update(fields)
    return json.dumps(event) + "\n"


# --- appending -------------------------------------------------------------------------


async def test_append_writes_one_valid_line_and_returns_it(tmp_path: Path) -> None:
    """append writes one JSON line with all six keys and returns exactly what it wrote."""
    log = EventLog(tmp_path / "events.jsonl", clock=FakeClock())
    event = await log.append("user.add", "Added ana", data={"email": "ana@x"})
    assert event == {
        "ts": "2026-12-04T19:57:58.123Z",
        "type": "user.add",
        "severity": "info",
        "service": "xrayd",
        "message": "Added ana",
        "data": {"email": "ana@x"},
    }
    assert read_lines(tmp_path / "events.jsonl") == [event]


async def test_concurrent_writers_each_event_once(tmp_path: Path) -> None:
    """10 concurrent writers x 1,000 appends give exactly 10,000 valid lines, each event once."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path)

    async def writer(w: int) -> None:
        for i in range(1000):
            await log.append("bench", f"w{w} i{i}", data={"w": w, "i": i})

    await asyncio.gather(*(writer(w) for w in range(10)))
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    seen = [(e["data"]["w"], e["data"]["i"]) for e in map(json.loads, lines[:-1])]
    assert len(seen) == 10_000
    assert set(seen) == {(w, i) for w in range(10) for i in range(1000)}
    for w in range(10):  # one writer's events are in its own order
        assert [i for ww, i in seen if ww == w] == list(range(1000))


async def test_burst_is_group_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of concurrent appends costs far fewer fsyncs than appends."""
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = EventLog(tmp_path / "events.jsonl")
    await asyncio.gather(*(log.append("burst", str(i)) for i in range(500)))
    assert len(read_lines(tmp_path / "events.jsonl")) == 500
    assert fsyncs <= 10  # one per batch (+ the folder once when the file is created)


async def test_append_validates_inputs(tmp_path: Path) -> None:
    """Bad severity, type, service, message or data are refused before anything is written."""
    log = EventLog(tmp_path / "events.jsonl")
    bad_calls = [
        {"type": "x", "message": "m", "severity": "debug"},
        {"type": "Bad Type", "message": "m"},
        {"type": "", "message": "m"},
        {"type": "x" * 65, "message": "m"},
        {"type": "x", "message": "m", "service": "svc/1"},
        {"type": "x", "message": 42},
        {"type": "x", "message": "m", "data": [1, 2]},
        {"type": "x", "message": "m", "data": {"when": datetime.now(UTC)}},
        {"type": "x", "message": "m", "data": {"n": float("nan")}},
    ]
    for kwargs in bad_calls:
        with pytest.raises(ValueError):
            await log.append(**kwargs)
        with pytest.raises(ValueError):
            log.append_sync(**kwargs)
    assert not (tmp_path / "events.jsonl").exists()


async def test_long_message_and_big_data_are_capped(tmp_path: Path) -> None:
    """A message is cut to 1,000 characters; data over 16 KiB becomes a small marker."""
    log = EventLog(tmp_path / "events.jsonl")
    event = await log.append("x", "é" * 5000, data={"blob": "a" * 20_000})
    assert event["message"] == "é" * 1000
    assert event["data"] == {"truncated": True, "bytes": 20_012}
    small = await log.append("x", "ok", data={"blob": "a" * 1000})
    assert small["data"] == {"blob": "a" * 1000}
    assert read_lines(tmp_path / "events.jsonl") == [event, small]


async def test_newlines_and_unicode_stay_on_one_line(tmp_path: Path) -> None:
    """Newlines, U+2028 and emoji in a message or data never split the line."""
    log = EventLog(tmp_path / "events.jsonl")
    text = "a\nb\r\nc\u2028d\u2029e 🚀 \x00"
    event = await log.append("x", text, data={text: text})
    raw = (tmp_path / "events.jsonl").read_text("utf-8")
    assert raw.count("\n") == 1
    assert "🚀" in raw  # ensure_ascii=False
    assert log.list()["events"] == [event]


def test_append_sync_from_two_processes(tmp_path: Path) -> None:
    """Two OS processes appending with append_sync, through rotations, leave only valid lines."""
    path = tmp_path / "events.jsonl"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from xrayd.events import EventLog\n"
        "log = EventLog(Path(sys.argv[1]), max_bytes=32 * 1024, keep=100)\n"
        "for i in range(1000):\n"
        "    log.append_sync('proc', 'x' * (i % 97), service='collector',\n"
        "                    data={'p': int(sys.argv[2]), 'i': i})\n"
    )
    root = Path(events_mod.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(p)], env=env) for p in range(2)]
    assert [proc.wait() for proc in procs] == [0, 0]
    files = all_files(path)
    assert len(files) > 5  # it did rotate, several times
    seen = []
    for file in files:
        if file.name.endswith(".lock"):
            continue
        assert file.stat().st_size <= 32 * 1024
        seen += [(e["data"]["p"], e["data"]["i"]) for e in read_lines(file)]
    assert sorted(seen) == [(p, i) for p in range(2) for i in range(1000)]
    log = EventLog(path, keep=100)
    listed = log.list(limit=10_000, hours=1)["events"]
    assert len(listed) == 2000
    assert [e["ts"] for e in listed] == sorted((e["ts"] for e in listed), reverse=True)


async def test_async_and_sync_writers_in_one_process(tmp_path: Path) -> None:
    """append_sync in a thread and async appends on the loop never interleave."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=16 * 1024, keep=100)

    def sync_writer() -> None:
        for i in range(300):
            log.append_sync("sync", "s", data={"i": i})

    thread = threading.Thread(target=sync_writer)
    thread.start()
    await asyncio.gather(*(log.append("async", "a", data={"i": i}) for i in range(300)))
    await asyncio.to_thread(thread.join)
    listed = log.list(limit=10_000)
    assert listed["total"] == 600
    assert sum(e["type"] == "sync" for e in listed["events"]) == 300


# --- rotation --------------------------------------------------------------------------


async def test_rotation_sizes_and_keep(tmp_path: Path) -> None:
    """Rotation keeps every file within max_bytes and at most `keep` rotated files."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=2000, keep=3, clock=FakeClock())
    for i in range(200):
        await log.append("x", "m", data={"i": i})
    names = sorted(p.name for p in all_files(path))
    assert names == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.2",
        "events.jsonl.3",
        "events.jsonl.lock",
    ]
    for n in ("", ".1", ".2", ".3"):
        assert 0 < (tmp_path / f"events.jsonl{n}").stat().st_size <= 2000
    # Each rotated file holds older events than the one before it, without gaps.
    chain = [read_lines(tmp_path / f"events.jsonl{n}") for n in (".3", ".2", ".1", "")]
    numbers = [e["data"]["i"] for lines in chain for e in lines]
    assert numbers == list(range(numbers[0], 200))


async def test_reading_across_rotated_files_newest_first(tmp_path: Path) -> None:
    """list reads the current file, then .1, .2 …, newest first, and total counts them all."""
    clock = FakeClock()
    log = EventLog(tmp_path / "events.jsonl", max_bytes=1500, keep=50, clock=clock)
    for i in range(100):
        clock.advance(seconds=1)
        await log.append("x", "m", data={"i": i})
    assert len(all_files(tmp_path / "events.jsonl")) > 5
    result = log.list(limit=30)
    assert result["total"] == 100
    assert [e["data"]["i"] for e in result["events"]] == list(range(99, 69, -1))
    everything = log.list(limit=10_000)["events"]
    assert [e["data"]["i"] for e in everything] == list(range(99, -1, -1))


async def append_until_rotated(log: EventLog) -> None:
    """Append small events until the current file starts afresh."""
    while True:
        size = log.path.stat().st_size
        await log.append("x", "m")
        if log.path.stat().st_size < size:
            return


async def test_keep_changed_at_run_time(tmp_path: Path) -> None:
    """Lowering keep limits reading at once and prunes old files at the next rotation."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=1000, keep=5)
    for i in range(100):
        await log.append("x", "m", data={"i": i})
    assert (tmp_path / "events.jsonl.5").exists()
    before = log.list(limit=10_000)["total"]
    log.keep = 1
    after = log.list(limit=10_000)["total"]
    assert after < before
    assert after == len(read_lines(path)) + len(read_lines(tmp_path / "events.jsonl.1"))
    assert (tmp_path / "events.jsonl.5").exists()  # pruned only when it next rotates
    await append_until_rotated(log)
    assert sorted(p.name for p in all_files(path)) == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.lock",
    ]
    log.keep = 3  # raising it keeps more from now on
    for _ in range(3):
        await append_until_rotated(log)
    assert (tmp_path / "events.jsonl.3").exists()
    log.keep = 0
    await append_until_rotated(log)
    assert sorted(p.name for p in all_files(path)) == ["events.jsonl", "events.jsonl.lock"]
    with pytest.raises(ValueError):
        log.keep = -1


# --- reading ---------------------------------------------------------------------------


async def test_filters_and_total(tmp_path: Path) -> None:
    """type, severity and service filter; total counts all matches, events only `limit`."""
    clock = FakeClock()
    log = EventLog(tmp_path / "events.jsonl", clock=clock)
    for i in range(30):
        clock.advance(seconds=1)
        await log.append(
            ("user.add", "xray.restart", "backup")[i % 3],
            f"e{i}",
            severity=("info", "warning", "error", "info", "info")[i % 5],
            service=("xrayd", "collector")[i % 2],
            data={"i": i},
        )
    got = log.list(type="user.add", limit=3)
    assert got["total"] == 10
    assert [e["data"]["i"] for e in got["events"]] == [27, 24, 21]
    got = log.list(severity="error", service="xrayd")
    assert {e["data"]["i"] for e in got["events"]} == {i for i in range(30) if i % 10 == 2}
    assert got["total"] == 3
    assert log.list(type="nothing")["total"] == 0
    assert log.list(type="", severity=None)["total"] == 30  # empty filter matches all
    assert log.stats() == {
        "by_type": {"user.add": 10, "xray.restart": 10, "backup": 10},
        "by_severity": {"info": 18, "warning": 6, "error": 6},
        "by_service": {"xrayd": 15, "collector": 15},
        "total": 30,
    }


async def test_time_window(tmp_path: Path) -> None:
    """Only events within `hours` before `now` count, fractional hours included."""
    clock = FakeClock()
    log = EventLog(tmp_path / "events.jsonl", clock=clock)
    for hours_ago in (100, 50, 25, 23, 5, 1.25, 0):
        clock.now = T0 - timedelta(hours=hours_ago)
        await log.append("x", f"{hours_ago}h ago")
    clock.now = T0
    assert [e["message"] for e in log.list()["events"]] == ["0h ago", "1.25h ago", "5h ago", "23h ago"]
    assert log.list(hours=1.5)["total"] == 2
    assert log.list(hours=8760)["total"] == 7
    assert log.stats(hours=48)["total"] == 5
    past = log.list(hours=30, now=T0 - timedelta(hours=24))
    assert [e["message"] for e in past["events"]] == ["25h ago", "50h ago"]


def test_empty_or_missing_log(tmp_path: Path) -> None:
    """A log that was never written lists nothing."""
    log = EventLog(tmp_path / "events.jsonl")
    assert log.list() == {"events": [], "total": 0}
    assert log.stats() == {
        "by_type": {},
        "by_severity": {"info": 0, "warning": 0, "error": 0},
        "by_service": {},
        "total": 0,
    }


def test_torn_last_line_is_skipped_and_repaired(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A torn last line is skipped (and logged); the next append starts on a fresh line."""
    path = tmp_path / "events.jsonl"
    log = EventLog(path, clock=FakeClock())
    first = log.append_sync("x", "one")
    second = log.append_sync("x", "two")
    with path.open("ab") as f:
        f.write(b'{"ts": "2026-12-04T19:57:58.123Z", "type": "x", "sev')
    with caplog.at_level(logging.WARNING, logger="xrayd.events"):
        assert log.list()["events"] == [second, first]
    assert "skipped 1 corrupt line" in caplog.text
    third = log.append_sync("x", "three")
    assert log.list()["events"] == [third, second, first]
    assert path.read_bytes().endswith(b'"sev\n' + json.dumps(third, ensure_ascii=False).encode() + b"\n")


def test_corrupt_lines_anywhere_are_skipped(tmp_path: Path) -> None:
    """Garbage, wrong shapes, bad UTF-8, bad dates and a huge newline-less run are skipped."""
    path = tmp_path / "events.jsonl"
    good = [event_line(T0 - timedelta(seconds=10 - n), n) for n in range(4)]
    path.write_bytes(
        good[0].encode()
        + b"not json\n"
        + b"[1, 2]\n"
        + event_line(T0, 99, data=[1]).encode()
        + event_line(T0, 98, ts="yesterday").encode()
        + event_line(T0, 97, ts="2026-12-04T19:57:58").encode()  # no zone
        + good[1].encode()
        + b"\xff\xfe{}\n"
        + b"\n"
        + b"z" * (3 * 1024 * 1024)  # longer than any line: skipped without being held
        + b"\n"
        + good[2].encode()
        + good[3].encode()
    )
    log = EventLog(path, clock=FakeClock())
    assert [e["data"]["n"] for e in log.list()["events"]] == [3, 2, 1, 0]


def test_stops_at_first_event_older_than_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading stops once it meets an event older than the window: old rotated files are untouched."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(event_line(T0 - timedelta(minutes=10 - n), n) for n in range(10)))
    old = tmp_path / "events.jsonl.1"
    old.write_text("".join(event_line(T0 - timedelta(days=30), n) for n in range(10)))
    opened_reads: list[int] = []
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        opened_reads.append(os.fstat(fd).st_ino)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    (tmp_path / "events.jsonl.2").write_text("this file is never read\n")
    log = EventLog(path, clock=FakeClock())
    assert log.list(hours=1)["total"] == 10
    assert path.stat().st_ino in opened_reads
    assert (tmp_path / "events.jsonl.2").stat().st_ino not in opened_reads


async def test_readers_never_see_torn_lines_during_appends(tmp_path: Path) -> None:
    """list in a thread while appends and rotations go on never fails or returns a bad event."""
    log = EventLog(tmp_path / "events.jsonl", max_bytes=8 * 1024, keep=1000)
    stop = threading.Event()
    seen_totals: list[int] = []
    bad: list[dict] = []

    def reader() -> None:
        while not stop.is_set():
            result = log.list(limit=10_000)
            bad.extend(e for e in result["events"] if e["type"] != "x")
            seen_totals.append(result["total"])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(50):
            await asyncio.gather(*(log.append("x", "m", data={"i": i, "j": j}) for j in range(20)))
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)
    assert bad == []
    assert len(seen_totals) > 1
    assert seen_totals == sorted(seen_totals)  # a reader may lag, never go back
    assert log.list(limit=10_000)["total"] == 1000


@pytest.mark.slow
def test_huge_file_read_newest_first_without_reading_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a 100 MB file, list(limit=10) and stats read only the window's tail, newest first."""
    path = tmp_path / "events.jsonl"
    count = 0
    with path.open("w") as f:
        start = T0 - timedelta(minutes=600_000)
        while f.tell() < 100 * 1024 * 1024:
            chunk = []
            for _ in range(10_000):
                ts = start + timedelta(minutes=count)  # one event a minute
                chunk.append(event_line(ts, count, message="x" * 120))
                count += 1
            f.write("".join(chunk))
    size = path.stat().st_size
    assert size >= 100 * 1024 * 1024
    last = start + timedelta(minutes=count - 1)

    bytes_read = 0
    real_pread = os.pread

    def counting_pread(fd: int, n: int, offset: int) -> bytes:
        nonlocal bytes_read
        data = real_pread(fd, n, offset)
        bytes_read += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    log = EventLog(path)
    result = log.list(limit=10, hours=24, now=last)
    assert [e["data"]["n"] for e in result["events"]] == list(range(count - 1, count - 11, -1))
    assert result["total"] == 24 * 60 + 1
    # The window is ~1,441 lines of ~240 bytes: a few 64 KiB blocks, not 100 MB.
    assert bytes_read < 1024 * 1024
    bytes_read = 0
    assert log.stats(hours=1, now=last)["total"] == 61
    assert bytes_read < 256 * 1024


# --- parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"hours": 0}, "hours"),
        ({"hours": 0.5}, "hours"),
        ({"hours": 8761}, "hours"),
        ({"hours": float("nan")}, "hours"),
        ({"hours": float("inf")}, "hours"),
        ({"hours": "24"}, "hours"),
        ({"hours": False}, "hours"),
        ({"type": "Not A Type"}, "type"),
        ({"type": 5}, "type"),
        ({"service": "x" * 65}, "service"),
        ({"severity": "debug"}, "severity"),
        ({"severity": ["info"]}, "severity"),
    ],
)
def test_bad_list_parameters_raise_invalid_params(tmp_path: Path, kwargs: dict, param: str) -> None:
    """A bad limit, hours or filter raises InvalidParams with a sentence naming the parameter."""
    log = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(InvalidParams) as info:
        log.list(**kwargs)
    assert info.value.message.startswith(param + " ")
    assert info.value.data == {"param": param}


@pytest.mark.parametrize("hours", [0, -1, 9000, "1", None])
def test_bad_stats_hours_raise_invalid_params(tmp_path: Path, hours: object) -> None:
    """stats refuses an hours value outside 1..8760 with InvalidParams."""
    with pytest.raises(InvalidParams, match=r"^hours "):
        EventLog(tmp_path / "events.jsonl").stats(hours=hours)  # type: ignore[arg-type]


def test_limits_at_the_edges_are_accepted(tmp_path: Path) -> None:
    """limit 1 and 10,000 and hours 1 and 8,760 (int or float) are valid."""
    log = EventLog(tmp_path / "events.jsonl")
    for kwargs in ({"limit": 1}, {"limit": 10_000}, {"hours": 1}, {"hours": 8760.0}):
        assert log.list(**kwargs)["total"] == 0
