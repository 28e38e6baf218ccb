"""A REALITY + Vision server config of the kind operators run, with fresh keys: for the sandbox."""

from __future__ import annotations

import base64
import secrets
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_key_pair() -> tuple[str, str]:
    """(privateKey, publicKey) as Xray writes them: base64url without padding."""
    key = X25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return b64url(private), b64url(public)


def server_config(
    *, private_key: str, emails: list[str], api_port: int, access_log: str, port: int = 443
) -> dict[str, Any]:
    clients = [{"id": str(uuid.uuid4()), "email": e, "flow": "xtls-rprx-vision"} for e in emails]
    return {
        "log": {"loglevel": "warning", "access": access_log},
        "api": {
            "tag": "api",
            "listen": f"127.0.0.1:{api_port}",
            "services": ["HandlerService", "LoggerService", "StatsService"],
        },
        "stats": {},
        "policy": {
            "levels": {"0": {"statsUserUplink": True, "statsUserDownlink": True, "statsUserOnline": True}},
            "system": {"statsInboundUplink": True, "statsInboundDownlink": True},
        },
        "inbounds": [
            {
                "tag": "vless-reality",
                "port": port,
                "protocol": "vless",
                "settings": {"clients": clients, "decryption": "none"},
                "streamSettings": {
                    "network": "tcp",
                    "security": "reality",
                    "realitySettings": {
                        "dest": "www.microsoft.com:443",
                        "serverNames": ["www.microsoft.com"],
                        "privateKey": private_key,
                        "shortIds": ["", secrets.token_hex(8)],
                    },
                },
                "sniffing": {"enabled": True, "destOverride": ["http", "tls", "quic"]},
            }
        ],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}, {"protocol": "blackhole", "tag": "block"}],
        "routing": {"rules": [{"type": "field", "ip": ["geoip:private"], "outboundTag": "block"}]},
    }
