"""The users.* param checks xrayd makes whatever the gateway checked."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xrayd.errors import BadRequest
from xrayd.xray import checks


@pytest.mark.parametrize(
    "email", ["alice@example.org", "a", "x" * 64, "Bob.Smith+vpn_1-2@ex.org", "иван@пример.рф"]
)
def test_good_emails_pass(email: str) -> None:
    """Letters of any script, digits and ._@+- up to 64 characters are accepted as given."""
    assert checks.email(email) == email


@pytest.mark.parametrize(
    "email",
    [
        "",
        "x" * 65,
        "a b",
        "a\tb",
        "a\nb",
        "a>>>b",
        "user>>>x>>>traffic",
        "a\x00b",
        "a/b",
        "a;b",
        5,
        None,
        "😀",
    ],
)
def test_bad_emails_are_400_invalid_email(email: object) -> None:
    """Empty, long, whitespace, controls, `>>>`, other punctuation, non-strings: refused."""
    with pytest.raises(BadRequest) as err:
        checks.email(email)
    assert err.value.error == "invalid_email"


@given(st.text(max_size=80))
def test_an_accepted_email_can_never_break_a_counter_name(text: str) -> None:
    """Whatever passes has no `>`, whitespace or control character (counter names stay parsable)."""
    try:
        checks.email(text)
    except BadRequest:
        return
    assert ">" not in text and not any(c.isspace() or not c.isprintable() for c in text)


def test_uuids_are_canonical_and_custom_ids_bounded() -> None:
    """A UUID comes back canonical; custom ids up to 30 bytes pass; others are invalid_uuid."""
    u = uuid.uuid4()
    assert checks.client_id(u.hex) == str(u) and checks.client_id(str(u).upper()) == str(u)
    assert checks.client_id("my-custom-id") == "my-custom-id"
    assert checks.client_id("я" * 15) == "я" * 15  # 30 bytes
    for bad in ("", "я" * 16, "x" * 31, "not a uuid", "g" * 32, "a\x00b", 7):
        with pytest.raises(BadRequest) as err:
            checks.client_id(bad)
        assert err.value.error == "invalid_uuid"


def test_xray_uuid_maps_custom_ids_like_xray() -> None:
    """A custom id is Xray's UUIDv5 of it under the nil namespace; a bad id maps to None."""
    assert checks.xray_uuid("abc") == uuid.uuid5(uuid.UUID(int=0), "abc")
    assert checks.xray_uuid(str(uuid.UUID(int=5))) == uuid.UUID(int=5)
    assert checks.xray_uuid("x" * 31) is None and checks.xray_uuid("") is None


def test_flow_and_alias() -> None:
    """flow is "" or Vision; an alias is ≤ 64 printable characters of any script, emoji included."""
    assert checks.flow("") == "" and checks.flow("xtls-rprx-vision") == "xtls-rprx-vision"
    with pytest.raises(BadRequest):
        checks.flow("xtls-rprx-direct")
    assert checks.alias("Мама 👩‍👧 ☕", allow_empty=False) == "Мама 👩‍👧 ☕"
    assert checks.alias("", allow_empty=True) == ""
    for bad in ("", "x" * 65, "a\nb", "a\u2028b", 3):
        with pytest.raises(BadRequest) as err:
            checks.alias(bad, allow_empty=False)
        assert err.value.error == "invalid_alias"
