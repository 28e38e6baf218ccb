"""The RPC modules of xrayd. Each has `register(daemon)`; MODULES is the one list of them."""

from xrayd.methods import auth, collector, events, live, settings, system, tests, usage, xray

# xray also registers users.* and backups.*; live also registers users.stats
MODULES = (system, events, settings, auth, xray, tests, usage, collector, live)
