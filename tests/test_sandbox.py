"""The sandbox builder that the demo and the tests share."""

from __future__ import annotations

from pathlib import Path


def test_sandbox_reopens_with_its_data(short_tmp: Path) -> None:
    """Reopening a sandbox keeps its token, keys and files; only the gateway port may move."""
    from xrayd.sandbox.builder import open_or_build

    first = open_or_build(short_tmp / "sb", gateway_port=18001)
    (first.config.data_dir / "marker").write_text("kept")
    again = open_or_build(short_tmp / "sb", gateway_port=18002)
    assert (again.token, again.public_key) == (first.token, first.public_key)
    assert (again.config.data_dir / "marker").read_text() == "kept"
    assert again.config.ports[0] == 18002
    assert again.config.xray_config.read_bytes() == first.config.xray_config.read_bytes()
