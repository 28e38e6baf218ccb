"""The RPC modules of xrayd. Each has `register(daemon)`; MODULES is the one list of them."""

from xrayd.methods import collector, events, settings, system, usage

MODULES = (system, events, settings, usage, collector)
