"""Async client: one connection, pipelined calls matched by id, reconnect after a restart."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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


class XraydClient:
    def __init__(self, socket_path: str, *, connect_timeout: float = 3.0, call_timeout: float = 30.0) -> None:
        self.socket_path = str(socket_path)
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()

    async def __aenter__(self) -> XraydClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connect_lock:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path, limit=MAX_RESPONSE_LINE),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise DaemonUnavailable(f"xrayd is not reachable at {self.socket_path}: {exc}") from None
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                response = wirejson.loads(line)
                for one in response if isinstance(response, list) else [response]:
                    future = self._pending.pop(one.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(one)
        except (OSError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
            lost = DaemonUnavailable("the connection to xrayd was lost before it answered")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            self._pending.clear()

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Call `method` with named params; return its result or raise RpcError."""
        writer = await self._connect()
        id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[id] = future
        try:
            writer.write(encode_request(method, params, id))
            await writer.drain()
            async with asyncio.timeout(timeout or self.call_timeout):  # no extra task, unlike wait_for
                response = await future
        except TimeoutError:
            raise CallTimeout(f"xrayd did not answer {method} in time") from None
        except (ConnectionError, OSError) as exc:
            if isinstance(exc, DaemonUnavailable):
                raise
            raise DaemonUnavailable(f"the connection to xrayd failed: {exc}") from None
        finally:
            self._pending.pop(id, None)
        return result_of(response)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self._writer = None
        self._reader_task = None
