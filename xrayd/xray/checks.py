"""Checks of the users.* params, made in xrayd whatever the gateway checked.

Each returns the value to store (a UUID in its canonical form) or raises a 400 whose machine
code names what is wrong (`invalid_email`, `invalid_uuid`, `invalid_flow`, `invalid_alias`).
"""

from __future__ import annotations

import string
import unicodedata
import uuid
from typing import Any

from xrayd import validate
from xrayd.errors import BadRequest, InvalidParams
from xrayd.xray.document import VISION

FLOWS = ("", VISION)
EMAIL_MAX = 64
ALIAS_MAX = 64
CUSTOM_ID_MAX_BYTES = 30
_EMAIL_PUNCTUATION = frozenset("._@+-")
_NIL = uuid.UUID(int=0)


def _email_char(ch: str) -> bool:
    if ch in _EMAIL_PUNCTUATION or ch in string.ascii_letters or ch in string.digits:
        return True
    return unicodedata.category(ch) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")


def email(value: Any) -> str:
    """1-64 letters, digits and `._@+-`: it names Xray's counters `user>>>EMAIL>>>…`, so no
    whitespace, controls or `>` can be allowed in it."""
    if not isinstance(value, str) or not 1 <= len(value) <= EMAIL_MAX:
        raise BadRequest(f"email must be 1 to {EMAIL_MAX} characters long.", error="invalid_email")
    if not all(_email_char(ch) for ch in value):
        raise BadRequest(
            "email may hold only letters, digits and the characters . _ @ + -", error="invalid_email"
        )
    return value


def xray_uuid(text: str) -> uuid.UUID | None:
    """The UUID Xray uses for a client id: the id itself, or for a custom id of 1-30 bytes the
    UUIDv5 Xray maps it to; None when Xray would refuse the id."""
    size = len(text.encode())
    if 0 < size <= CUSTOM_ID_MAX_BYTES:
        return uuid.uuid5(_NIL, text)
    if size not in (32, 36):
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def client_id(value: Any) -> str:
    """A UUID (returned in its canonical form), or a custom id of 1-30 printable bytes."""
    if not isinstance(value, str) or not value:
        raise BadRequest("uuid must be a non-empty string.", error="invalid_uuid")
    if len(value) in (32, 36):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise BadRequest(f"uuid is not a valid UUID: {value!r}.", error="invalid_uuid") from None
    if (
        len(value.encode()) > CUSTOM_ID_MAX_BYTES
        or not value.isprintable()
        or any(c.isspace() for c in value)
    ):
        raise BadRequest(
            f"uuid must be a UUID or a custom id of at most {CUSTOM_ID_MAX_BYTES} bytes without spaces.",
            error="invalid_uuid",
        )
    return value


def flow(value: Any) -> str:
    if value not in FLOWS:
        raise BadRequest(f'flow must be "" or "{VISION}".', error="invalid_flow")
    return value


def alias(value: Any, *, allow_empty: bool) -> str:
    """At most 64 printable characters of any script, emoji included."""
    try:
        return validate.text("alias", value, max_len=ALIAS_MAX, min_len=0 if allow_empty else 1)
    except InvalidParams as exc:
        raise BadRequest(exc.message, error="invalid_alias") from None
