"""The RPC modules of xrayd. Each has `register(daemon)`; MODULES is the one list of them."""

from xrayd.methods import auth, events, settings, system, tests, xray

MODULES = (system, events, settings, auth, xray, tests)  # xray also registers users.* and backups.*
