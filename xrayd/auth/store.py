"""The auth state: `auth.json` (admin password hash, named tokens by digest) and sessions.

A token is shown once, when it is made, and only its SHA-256 digest is kept. Sessions live
in memory: restarting xrayd logs browsers out, which costs a login and leaves nothing on disk.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from client.protocol import credential_digest
from xrayd import atomic

TOKEN_PREFIX = "xrt_"  # noqa: S105 - not a secret: lets scanners and the gateway tell our tokens apart
TOKEN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
RESERVED_NAMES = frozenset({"file"})  # `token:file` is the gateway's --token-file token
SCOPES = ("read", "admin")
MAX_TOKENS = 100
MAX_SESSIONS = 64
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Token:
    name: str
    scope: str
    digest: str
    created: str
    created_by: str

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "created": self.created,
            "created_by": self.created_by,
        }


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def is_digest(value: Any) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


class AuthStore:
    """`auth.json`, loaded once and kept in memory; every change is written atomically, 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.password: str | None = None
        self.tokens: dict[str, Token] = {}
        self._by_digest: dict[str, Token] = {}

    def load(self) -> None:
        """Read the file; missing means no password and no tokens. A broken file stops xrayd:
        guessing would either lock the operator out or let a revoked token back in."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            password = raw["admin_password"]
            tokens = [Token(**t) for t in raw["tokens"]]
            if password is not None and not isinstance(password, str):
                raise TypeError("admin_password")
            if any(t.scope not in SCOPES or not is_digest(t.digest) for t in tokens):
                raise ValueError("a token has a bad scope or digest")
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{self.path}: cannot read the auth state: {exc}") from None
        self.password = password
        self.tokens = {t.name: t for t in tokens}
        self._by_digest = {t.digest: t for t in tokens}

    def save(self) -> None:
        doc = {"admin_password": self.password, "tokens": [asdict(t) for t in self.tokens.values()]}
        atomic.write_json(self.path, doc, mode=0o600)

    def by_digest(self, digest: str) -> Token | None:
        return self._by_digest.get(digest)

    def add(self, token: Token) -> None:
        self.tokens[token.name] = token
        self._by_digest[token.digest] = token

    def remove(self, name: str) -> Token | None:
        token = self.tokens.pop(name, None)
        if token is not None:
            del self._by_digest[token.digest]
        return token


class Sessions:
    """Browser sessions by digest, each with an absolute expiry; at most MAX_SESSIONS."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expires: dict[str, float] = {}

    def open(self, lifetime: float) -> tuple[str, float]:
        """A new session: (its secret, for the cookie; when it expires, as a Unix time)."""
        secret = new_secret()
        if len(self._expires) >= MAX_SESSIONS:  # the one closest to expiry gives way
            del self._expires[min(self._expires, key=self._expires.__getitem__)]
        expires = self._clock() + lifetime
        self._expires[credential_digest(secret)] = expires
        return secret, expires

    def valid(self, digest: str) -> bool:
        expires = self._expires.get(digest)
        if expires is not None and expires <= self._clock():
            del self._expires[digest]
            return False
        return expires is not None

    def close(self, digest: str) -> bool:
        return self._expires.pop(digest, None) is not None

    def close_all(self) -> int:
        count = len(self._expires)
        self._expires.clear()
        return count
