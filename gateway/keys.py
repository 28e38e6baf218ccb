"""Typed keys for what the gateway keeps on its Application (no module singletons)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from client.aio import XraydClient


@dataclass(frozen=True)
class Options:
    """How the gateway is exposed: `https` when clients reach it over TLS (its own, or a
    proxy's), `behind_proxy` when a reverse proxy forwards to it (trust X-Forwarded-For)."""

    https: bool = False
    behind_proxy: bool = False


CLIENT = web.AppKey("client", XraydClient)
TOKEN = web.AppKey("token", str)  # the token file's content; empty when there is none
OPTIONS = web.AppKey("options", Options)
