"""The daemon config: defaults, types, unknown keys, and the entry point's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xrayd import config as cfg


def test_empty_file_gives_production_defaults(tmp_path: Path) -> None:
    """Every key is optional; the defaults are the seed's production paths."""
    f = tmp_path / "x.toml"
    f.write_text("")
    c = cfg.load(f)
    assert c.xray_config == Path("/usr/local/etc/xray/config.json")
    assert c.access_log == Path("/var/log/xray/access.log")
    assert c.usage_dir == Path("/var/log/xray/usage")
    assert c.data_dir == Path("/opt/xray-report-ui/data")
    assert c.ports == (3000, 8787, 443)


def test_round_trip_through_toml(tmp_path: Path) -> None:
    """A Config rendered as TOML loads back equal, units and mode included."""
    f = tmp_path / "x.toml"
    f.write_text('socket_mode = "0640"\nports = [1, 2]\n[units]\nxray = "xray@main.service"\n')
    c = cfg.load(f)
    assert (c.socket_mode, c.ports, c.units.xray) == (0o640, (1, 2), "xray@main.service")
    f.write_text(cfg.to_toml(c))
    assert cfg.load(f) == c


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("colour = 1", "colour"),
        ("xray_config = 5", "xray_config"),
        ('xray_config = "relative/path.json"', "xray_config"),
        ('xray_api = "localhost"', "xray_api"),
        ("stats_poll_seconds = -1", "stats_poll_seconds"),
        ("stats_poll_seconds = true", "stats_poll_seconds"),
        ('ports = [80, "443"]', "ports"),
        ("ports = [70000]", "ports"),
        ('socket_mode = "999"', "socket_mode"),
        ('[units]\nweb = "x.service"', "units.web"),
        ('[units]\nxray = "../../etc/evil"', "units.xray"),
        ("units = 3", "units"),
    ],
)
def test_bad_key_is_named(tmp_path: Path, text: str, named: str) -> None:
    """An unknown key or a wrong type stops the load with a message naming the key."""
    f = tmp_path / "x.toml"
    f.write_text(text + "\n")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(f)
    assert str(err.value).startswith(named)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    """Broken TOML and a missing file are ConfigErrors with the path, not tracebacks."""
    f = tmp_path / "x.toml"
    f.write_text("this is = = not toml")
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        cfg.load(f)
    with pytest.raises(cfg.ConfigError, match="cannot read"):
        cfg.load(tmp_path / "missing.toml")


def test_serve_with_bad_config_exits_3(tmp_path: Path) -> None:
    """`xrayd serve` with a bad key exits with the config exit code and names the key."""
    f = tmp_path / "x.toml"
    f.write_text("nope = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "xrayd", "serve", "--config", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3
    assert "nope: unknown key" in out.stderr


def test_check_config_prints_resolved(tmp_path: Path) -> None:
    """`xrayd check-config` prints the resolved config with defaults filled in."""
    f = tmp_path / "x.toml"
    f.write_text('data_dir = "/srv/data"\n')
    out = subprocess.run(
        [sys.executable, "-m", "xrayd", "check-config", "--config", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert 'data_dir = "/srv/data"' in out.stdout
    assert 'xray_config = "/usr/local/etc/xray/config.json"' in out.stdout


def test_unknown_socket_group_refuses_start(tmp_path: Path) -> None:
    """A socket group that does not exist stops the start with a clear message."""
    f = tmp_path / "x.toml"
    f.write_text(
        f'socket = "{tmp_path}/s.sock"\ndata_dir = "{tmp_path}/data"\nsocket_group = "no-such-group-xr"\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "xrayd", "serve", "--config", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 4
    assert "no group named 'no-such-group-xr'" in out.stderr
