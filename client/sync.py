"""Blocking client for scripts, cron and the CLI: one call at a time, same protocol."""

from __future__ import annotations

import itertools
import socket
from types import TracebackType
from typing import Any

from client import wirejson
from client.protocol import (
    MAX_RESPONSE_LINE,
    CallTimeout,
    DaemonUnavailable,
    encode_request,
    result_of,
)


class SyncXraydClient:
    def __init__(
        self, socket_path: str, *, connect_timeout: float = 3.0, call_timeout: float = 120.0
    ) -> None:
        self.socket_path = str(socket_path)
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file: Any = None

    def __enter__(self) -> SyncXraydClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(f"xrayd is not reachable at {self.socket_path}: {exc}") from None
        self._sock = sock
        self._file = sock.makefile("rb")

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Call `method` with named params; return its result or raise RpcError."""
        self._connect()
        assert self._sock is not None
        id = next(self._ids)
        try:
            self._sock.settimeout(timeout or self.call_timeout)
            self._sock.sendall(encode_request(method, params, id))
            while True:
                line = self._file.readline(MAX_RESPONSE_LINE)
                if not line:
                    raise DaemonUnavailable("xrayd closed the connection before it answered")
                response = wirejson.loads(line)
                if isinstance(response, dict) and response.get("id") == id:
                    return result_of(response)
        except TimeoutError:
            self.close()
            raise CallTimeout(f"xrayd did not answer {method} in time") from None
        except (DaemonUnavailable, OSError) as exc:
            self.close()
            if isinstance(exc, DaemonUnavailable):
                raise
            raise DaemonUnavailable(f"the connection to xrayd failed: {exc}") from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._file = None
