"""`xrayd install` / `uninstall` in a sandbox root, and the units under systemd-analyze."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrayd import config as config_mod
from xrayd import install
from xrayd.config import Config
from xrayd.sandbox.builder import Sandbox
from xrayd.sandbox.standin_state import read_state

UNITS = (install.XRAYD_UNIT, install.GATEWAY_UNIT)
# The exposure scores README.md states (systemd-analyze security; lower is better, 0-10).
MAX_EXPOSURE = {install.XRAYD_UNIT: 2.5, install.GATEWAY_UNIT: 1.5}


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have systemd-analyze (.ci/run installs Debian's systemd)")
        pytest.skip("systemd-analyze is not installed")
    return found


def _root(tmp: Path) -> Path:
    """An empty system root with just the account files shadow-utils' --prefix needs."""
    etc = tmp / "root" / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    for name, line in (("shadow", "root:*:19000:0:99999:7:::\n"), ("gshadow", "root:*::\n")):
        (etc / name).write_text(line)
        (etc / name).chmod(0o600)
    return etc.parent


def _xrayd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrayd", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def root(short_tmp: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("creating accounts (even under --prefix) needs root")
    return _root(short_tmp)


def test_install_then_again_then_uninstall(root: Path, sandbox: Sandbox) -> None:
    """Install sets everything up and starts both units; again changes nothing; uninstall keeps data."""
    systemctl = str(sandbox.config.systemctl)
    first = _xrayd("install", "--root", str(root), "--systemctl", systemctl)
    assert first.returncode == 0, first.stderr
    config_file = root / "etc/xray-report/xrayd.toml"
    config = config_mod.load(config_file)
    assert config.data_dir == root / "opt/xray-report-ui/data" and config.data_dir.is_dir()
    assert config.socket == root / "run/xray-report/xrayd.sock"
    group = (root / "etc/group").read_text()
    assert re.search(r"^xray-report:x:\d+:xray-report-gw$", group, re.M)
    assert re.search(
        r"^xray-report-gw:x:\d+:\d+::/nonexistent:/usr/sbin/nologin$", (root / "etc/passwd").read_text(), re.M
    )
    token_file = root / "var/lib/xray-report-gateway/token"
    token = token_file.read_text()
    assert len(token.strip()) >= 40 and token_file.stat().st_mode & 0o777 == 0o600
    assert token.strip() in first.stdout  # shown once, to the operator
    xrayd_unit = (root / "etc/systemd/system/xrayd.service").read_text()
    rw = re.search(r"^ReadWritePaths=(.*)$", xrayd_unit, re.M)
    assert rw is not None and set(rw.group(1).split()) == {
        f"-{p}"
        for p in (config.data_dir, config.usage_dir, config.xray_config.parent, config.cron_file.parent)
    }
    assert "@" not in xrayd_unit.replace("@system-service", "")
    state = read_state(sandbox.state_dir)
    assert all(state["unit_states"][u] == "active" for u in UNITS) and state["enabled"] == list(UNITS)
    assert ["daemon-reload"] in state["calls"]

    units_before = {u: (root / "etc/systemd/system" / u).read_text() for u in UNITS}
    config_file.write_text(
        config_file.read_text().replace("stats_poll_seconds = 10.0", "stats_poll_seconds = 5.0")
    )
    again = _xrayd("install", "--root", str(root), "--systemctl", systemctl)
    assert again.returncode == 0, again.stderr
    assert "kept the daemon config" in again.stdout and "kept the gateway token" in again.stdout
    assert "created" not in again.stdout and token_file.read_text() == token
    assert config_mod.load(config_file).stats_poll_seconds == 5.0  # the operator's edit stays
    assert {u: (root / "etc/systemd/system" / u).read_text() for u in UNITS} == units_before
    assert (root / "etc/passwd").read_text().count("xray-report-gw") == 1

    (config.data_dir / "events.jsonl").write_text("{}\n")
    gone = _xrayd("uninstall", "--root", str(root), "--systemctl", systemctl)
    assert gone.returncode == 0, gone.stderr
    assert not any((root / "etc/systemd/system" / u).exists() for u in UNITS)
    state = read_state(sandbox.state_dir)
    assert state["enabled"] == [] and all(state["unit_states"][u] == "inactive" for u in UNITS)
    assert config_file.exists() and token_file.read_text() == token
    assert (config.data_dir / "events.jsonl").read_text() == "{}\n"


def test_install_needs_root_on_the_real_system() -> None:
    """Without --root, install refuses to run as anyone but root."""
    if os.geteuid() == 0:
        pytest.skip("runs as root here")
    assert _xrayd("install").returncode == 4


def _rendered(tmp: Path) -> dict[str, Path]:
    target = install.Target()
    units = install.render_units(install.prefixed(Config(), target), install.CONFIG_FILE, target)
    paths = {}
    for name, text in units.items():
        paths[name] = tmp / name
        paths[name].write_text(text)
    return paths


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Both rendered units load cleanly in systemd (unknown keys, bad values, missing binaries)."""
    analyze = _analyze()
    paths = _rendered(tmp_path)
    done = subprocess.run(
        [analyze, "verify", *map(str, paths.values())], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_units_exposure_scores(tmp_path: Path) -> None:
    """systemd-analyze security rates both units at or under the scores the README gives."""
    analyze = _analyze()
    for name, path in _rendered(tmp_path).items():
        done = subprocess.run(
            [analyze, "security", "--offline=yes", "--no-pager", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
        assert score is not None, done.stdout + done.stderr
        print(f"{name}: {score.group(1)}")
        assert float(score.group(1)) <= MAX_EXPOSURE[name], (name, score.group(1))
