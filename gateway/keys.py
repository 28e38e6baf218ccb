"""Typed keys for what the gateway keeps on its Application (no module singletons)."""

from __future__ import annotations

from aiohttp import web

from client.aio import XraydClient

CLIENT = web.AppKey("client", XraydClient)
TOKEN = web.AppKey("token", str)
