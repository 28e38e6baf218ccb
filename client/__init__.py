"""The one client of xrayd's socket: async `XraydClient`, sync `SyncXraydClient`, `xrayctl`."""

from client.aio import XraydClient
from client.protocol import DaemonUnavailable, RpcError
from client.sync import SyncXraydClient

DEFAULT_SOCKET = "/run/xray-report/xrayd.sock"

__all__ = ["DEFAULT_SOCKET", "DaemonUnavailable", "RpcError", "SyncXraydClient", "XraydClient"]
