"""The RPC modules of xrayd. Each has `register(daemon)`; MODULES is the one list of them."""

from xrayd.methods import auth, events, settings, system, xray

MODULES = (system, events, settings, auth, xray)  # xray also registers users.* and backups.*
