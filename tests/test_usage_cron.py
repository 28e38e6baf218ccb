"""Tests for xrayd.usage.cron: the cron file's text, and what may never go into it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from xrayd.usage import cron


def test_the_job_line_quotes_every_word_for_sh() -> None:
    """cron hands the line to /bin/sh: a path with a space or a quote stays one word."""
    argv = ["/opt/x report/bin/python", "-m", "xrayd", "collect", "--config", "/etc/it's.toml"]
    job = cron.render("17 0 * * *", argv).splitlines()[-1]
    assert job.startswith("17 0 * * * root ")
    assert shlex.split(job.removeprefix("17 0 * * * root ")) == argv


@pytest.mark.parametrize("word", ["/etc/100%.toml", "/etc/a\nb", "/etc/\x00"])
def test_a_percent_or_control_character_is_refused(word: str) -> None:
    """`%` is a line break to cron and control characters are never a path we should write."""
    with pytest.raises(ValueError):
        cron.render("17 0 * * *", ["/usr/bin/python3", "--config", word])


@pytest.mark.parametrize("schedule", ["17 0 * *", "17 0 * * * *", "17 0 * * mon; rm -rf /", "@daily"])
def test_a_schedule_that_is_not_five_plain_fields_is_refused(schedule: str) -> None:
    """Only digits, `*`, `,`, `/` and `-` in exactly five fields reach the file."""
    with pytest.raises(ValueError):
        cron.render(schedule, ["/usr/bin/python3"])


def test_write_is_a_no_op_when_nothing_changes_and_remove_says_if_it_removed(tmp_path: Path) -> None:
    """write and remove report whether the file changed; installed_schedule reads it back."""
    path = tmp_path / "xray-report-collector"
    assert cron.installed_schedule(path) is None
    assert cron.write(path, "17 0 * * *", ["/usr/bin/python3"]) is True
    assert cron.write(path, "17 0 * * *", ["/usr/bin/python3"]) is False
    assert cron.installed_schedule(path) == "17 0 * * *"
    assert cron.write(path, "*/30 1-5 * * 1,3", ["/usr/bin/python3"]) is True
    assert cron.installed_schedule(path) == "*/30 1-5 * * 1,3"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    assert cron.remove(path) is True
    assert cron.remove(path) is False
    assert cron.installed_schedule(path) is None
