"""The Unix socket server: newline-framed JSON-RPC, many connections, pipelined requests.

A connection whose peer is not allowed is closed before any byte is read. A line over
`MAX_LINE` gets an error and its connection is closed. Each request runs as its own task, so
a slow call (or a slow reader) holds up nobody else; `MAX_IN_FLIGHT` bounds one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import grp
import json
import logging
import os
import socket
from pathlib import Path

from xrayd.errors import INVALID_REQUEST
from xrayd.rpc.dispatch import Dispatcher, error_object
from xrayd.rpc.peer import Peer, PeerPolicy, peer_of

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024
MAX_IN_FLIGHT = 64


class SocketInUse(RuntimeError):
    """Another live daemon answers on the socket path."""


def _too_long() -> bytes:
    body = error_object(INVALID_REQUEST)
    body["message"] = f"A request line is limited to {MAX_LINE} bytes; the connection is closed."
    body["data"]["error"] = "request_too_large"
    return json.dumps({"jsonrpc": "2.0", "error": body, "id": None}).encode() + b"\n"


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a crash; refuse if a daemon still answers on it."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise SocketInUse(f"{path} exists and is not a socket; remove it by hand")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)
        log.info("removed stale socket %s", path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"another daemon is listening on {path}")


def group_gid(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise LookupError(f"socket_group: no group named {name!r} on this machine") from None


class RpcServer:
    """Serve a Dispatcher on a Unix socket until `stop()`."""

    def __init__(self, dispatcher: Dispatcher, path: Path, *, group: str, mode: int) -> None:
        self.dispatcher = dispatcher
        self.path = path
        self.gid = group_gid(group)
        self.mode = mode
        self.policy = PeerPolicy(self.gid)
        self._server: asyncio.AbstractServer | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # no window in which the socket is open to others
        try:
            sock.bind(str(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        # Group and mode are set before listen(): nobody connects to a half-made socket.
        os.chown(self.path, -1, self.gid)
        os.chmod(self.path, self.mode)
        self._server = await asyncio.start_unix_server(self._on_connect, sock=sock, limit=MAX_LINE + 1)
        log.info("listening on %s", self.path)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting and reading, let calls in flight finish within `grace`, cancel the rest."""
        if self._server is not None:
            self._server.close()
        conns = set(self._conns)
        if self._calls:
            log.info("waiting for %d call(s) in flight", len(self._calls))
        for task in conns:
            task.cancel()  # a connection stops reading, then waits for its own calls
        if conns:
            _, late = await asyncio.wait(conns, timeout=grace)
            if late:
                log.warning("cancelling %d call(s) still running after %.0fs", len(self._calls), grace)
                for task in (*self._calls, *late):
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        log.info("socket closed")

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock: socket.socket = writer.get_extra_info("socket")
        peer = peer_of(sock)
        if not self.policy.allows(peer):
            log.warning("refused connection from pid=%d uid=%d gid=%d", peer.pid, peer.uid, peer.gid)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            await self._serve(reader, writer, peer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer) -> None:
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        origin = (peer.name(), peer.uid)  # looked up once per connection, not per call
        mine: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    line = exc.partial  # a last request without its newline still counts
                    if not line.strip():
                        break
                except asyncio.LimitOverrunError:
                    writer.write(_too_long())
                    await writer.drain()
                    break
                if len(line) > MAX_LINE:
                    writer.write(_too_long())
                    await writer.drain()
                    break
                if not line.strip():
                    continue
                await slots.acquire()
                call = asyncio.create_task(self._answer(line, writer, slots, origin))
                self._calls.add(call)
                mine.add(call)
                call.add_done_callback(self._calls.discard)
                call.add_done_callback(mine.discard)
        finally:
            if mine:
                await asyncio.wait(mine)

    async def _answer(
        self, line: bytes, writer: asyncio.StreamWriter, slots: asyncio.Semaphore, origin: tuple[str, int]
    ) -> None:
        try:
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text = "\x00"  # not JSON: the dispatcher answers -32700
            reply = await self.dispatcher.handle(text, origin=origin[0], uid=origin[1])
            if reply is not None and not writer.is_closing():
                writer.write(reply + b"\n")  # wirejson escapes a lone surrogate in a reply
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            slots.release()
