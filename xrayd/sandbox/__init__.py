"""Stand-ins for `xray` and `systemctl`, so tests and the demo run without Xray or systemd."""
