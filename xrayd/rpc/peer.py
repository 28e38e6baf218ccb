"""Who is on the other end of a Unix socket (SO_PEERCRED), and may they talk to us."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    def name(self) -> str:
        """The peer as an actor in events: `local:USER` (a call made straight on the socket)."""
        try:
            return f"local:{pwd.getpwuid(self.uid).pw_name}"
        except KeyError:
            return f"local:uid={self.uid}"


def peer_of(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


class PeerPolicy:
    """Root, the daemon's own user, or a member of the socket group; nobody else."""

    def __init__(self, group_gid: int) -> None:
        self.group_gid = group_gid
        self.own_uid = os.geteuid()

    def allows(self, peer: Peer) -> bool:
        if peer.uid in (0, self.own_uid) or peer.gid == self.group_gid:
            return True
        try:
            name = pwd.getpwuid(peer.uid).pw_name
            return name in grp.getgrgid(self.group_gid).gr_mem
        except KeyError:
            return False
