"""Tests for xrayd.live.ledger: real SQLite files, a reader in another process, a killed writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from xrayd.live.ledger import FILE, Ledger, Row, Usage

D1, D2 = date(2026, 3, 1), date(2026, 3, 2)
ALICE, BOB = "alice@example.org", "bob@example.org"


def test_polls_add_up_per_day_and_user(tmp_path: Path) -> None:
    """Each add sums into its (day, email) row; last_seen keeps the latest moment."""
    ledger = Ledger.in_data_dir(tmp_path)
    ledger.add([Row(D1, ALICE, 10, 100, 1, 1000.0), Row(D1, BOB, 5, 0)])
    ledger.add([Row(D1, ALICE, 1, 2, 3, 900.0), Row(D2, ALICE, 7, 8, 0, 2000.0)])
    assert ledger.usage_for_day(D1) == {ALICE: Usage(11, 102, 4, 1000.0), BOB: Usage(5, 0, 0, None)}
    assert ledger.totals_for_day(D2) == {ALICE: (7, 8)}
    assert ledger.totals_all_time() == {ALICE: (18, 110), BOB: (5, 0)}
    assert ledger.usage_all_time()[ALICE] == Usage(18, 110, 4, 2000.0)
    assert ledger.days() == [D1, D2]
    assert ledger.totals_for_day(date(2026, 3, 3)) == {}


def test_survives_reopening(tmp_path: Path) -> None:
    """What was added is there after the writer closes and a new one opens the file."""
    ledger = Ledger.in_data_dir(tmp_path)
    ledger.add([Row(D1, ALICE, 1, 2)], {"tail": {"offset": 42}})
    ledger.close()
    again = Ledger.in_data_dir(tmp_path)
    assert again.totals_all_time() == {ALICE: (1, 2)}
    assert again.mark("tail") == {"offset": 42}
    assert again.mark("other") is None
    assert oct((tmp_path / FILE).stat().st_mode & 0o777) == "0o600"


def test_a_failed_add_changes_nothing(tmp_path: Path) -> None:
    """Rows and marks commit together: when one row cannot be stored, no mark moves either."""
    ledger = Ledger.in_data_dir(tmp_path)
    ledger.add([Row(D1, ALICE, 1, 1)], {"tail": 1})
    with pytest.raises(OverflowError):
        ledger.add([Row(D1, ALICE, 5, 5), Row(D1, BOB, 2**70, 0)], {"tail": 2})
    assert ledger.totals_all_time() == {ALICE: (1, 1)}
    assert ledger.mark("tail") == 1


def test_empty_rows_are_not_stored(tmp_path: Path) -> None:
    """A poll in which nothing happened leaves no row behind."""
    ledger = Ledger.in_data_dir(tmp_path)
    ledger.add([Row(D1, ALICE)])
    assert ledger.days() == []


def test_a_reader_before_the_file_exists_sees_nothing_then_sees_it(tmp_path: Path) -> None:
    """A read-only ledger on a missing file is empty, and reads the file once it appears."""
    reader = Ledger.in_data_dir(tmp_path, readonly=True)
    assert reader.totals_all_time() == {} and reader.days() == []
    assert not (tmp_path / FILE).exists()
    Ledger.in_data_dir(tmp_path).add([Row(D1, ALICE, 3, 4)])
    assert reader.totals_for_day(D1) == {ALICE: (3, 4)}
    with pytest.raises(PermissionError):
        reader.add([Row(D1, ALICE, 1, 1)])


_READER = """
import json, sys
from datetime import date
from xrayd.live.ledger import Ledger
ledger = Ledger.in_data_dir(__import__("pathlib").Path(sys.argv[1]), readonly=True)
print(json.dumps({"day": ledger.totals_for_day(date(2026, 3, 1)), "all": ledger.totals_all_time()}))
"""


def test_another_process_reads_while_the_writer_is_open(tmp_path: Path) -> None:
    """The cron collector, a separate process, reads committed totals while xrayd holds the file."""
    writer = Ledger.in_data_dir(tmp_path)
    writer.add([Row(D1, ALICE, 10, 20), Row(D2, BOB, 1, 1)])
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(tmp_path)], capture_output=True, check=True, text=True
    )
    assert json.loads(out.stdout) == {"day": {ALICE: [10, 20]}, "all": {ALICE: [10, 20], BOB: [1, 1]}}
    writer.close()
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(tmp_path)], capture_output=True, check=True, text=True
    )
    assert json.loads(out.stdout)["all"] == {ALICE: [10, 20], BOB: [1, 1]}


_KILLED_WRITER = """
import os, signal, sys
from datetime import date
from xrayd.live.ledger import Ledger, Row
ledger = Ledger.in_data_dir(__import__("pathlib").Path(sys.argv[1]))
for n in range(50):
    ledger.add([Row(date(2026, 3, 1), "alice@example.org", 1, 2, 1)], {"tail": n})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_loses_nothing_it_returned_from(tmp_path: Path) -> None:
    """Every add that returned is on disk even when the process is killed right after."""
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / (FILE + "-wal")).exists()  # the WAL was never checkpointed
    ledger = Ledger.in_data_dir(tmp_path)
    assert ledger.usage_for_day(D1)[ALICE][:3] == (50, 100, 50)
    assert ledger.mark("tail") == 49
    assert os.path.getsize(tmp_path / FILE) > 0


def test_per_minute_traffic_is_kept_for_the_window_only(tmp_path: Path) -> None:
    """Traffic per poll minute adds up, reads back from a minute on, and old minutes go."""
    ledger = Ledger.in_data_dir(tmp_path)
    ledger.add([], minutes=[(100, ALICE, 1, 2), (101, ALICE, 3, 4), (101, BOB, 0, 0)])
    ledger.add([], minutes=[(101, ALICE, 10, 10)])
    assert ledger.traffic_minutes(101) == [(101, ALICE, 13, 14)]
    ledger.add([], forget_before=101)
    assert ledger.traffic_minutes(0) == [(101, ALICE, 13, 14)]
