"""The access log as structured fields: one JSON line per request, with its request id."""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.auth import CREDENTIAL, FILE_ACTOR
from gateway.headers import RID


class JsonAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        credential = request.get(CREDENTIAL)
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "request_id": request.get(RID),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "ms": round(time * 1000, 3),
                "remote": request.remote,
                "credential": None
                if credential is None
                else (FILE_ACTOR if credential.kind == "file" else credential.kind),
            },
        )
