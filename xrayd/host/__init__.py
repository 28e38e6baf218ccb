"""The machine xrayd runs on: systemd units, resource figures, local ports.

Each module wraps one source of facts (systemctl, psutil, TCP connects) so that the RPC
methods in `xrayd.methods.system` stay small.
"""
