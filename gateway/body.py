"""The JSON body of a request: an object or nothing, never anything else."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.errors import ApiError


async def read_body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    raw = await request.read()  # aiohttp enforces client_max_size (413)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return body
