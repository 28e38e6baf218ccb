"""The RPC modules of xrayd. Each has `register(daemon)`; MODULES is the one list of them."""

from xrayd.methods import events, live, settings, system

MODULES = (system, events, settings, live)
