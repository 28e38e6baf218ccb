"""Reading Xray configs: comments, the managed inbound, hand-written clients, masks, diffs."""

from __future__ import annotations

import json

import pytest
from xray_configs import CONFIGS, PRIVATE_KEY, REALITY_TEMPLATE, filled, reality_inbound, text_of

from xrayd.errors import Unprocessable
from xrayd.xray import document, jsonc


def test_every_fixture_config_parses() -> None:
    """Every fixture (templates with `//` comments, 3x-ui, Marzban, reference) parses."""
    for path in sorted(CONFIGS.iterdir()):
        doc, _ = jsonc.loads(path.read_text(encoding="utf-8"))
        assert isinstance(doc.get("outbounds"), list), path.name


def test_comments_are_noticed_and_strings_kept() -> None:
    """`//`, `/* */` and `#` comments are dropped, but not inside strings such as URLs."""
    doc, had = jsonc.loads('{"a": "http://x//y#z", /* c */ "b": 1 // tail\n, # shell\n "c": "/*no*/"}')
    assert had and doc == {"a": "http://x//y#z", "b": 1, "c": "/*no*/"}
    plain, had_plain = jsonc.loads('{"a": 1}')
    assert plain == {"a": 1} and not had_plain


@pytest.mark.parametrize("text", ["[1]", '{"a": NaN}', '{"a": 1', "", '{"a": 1} x'])
def test_not_a_config_is_a_clear_error(text: str) -> None:
    """A non-object, NaN, or broken JSON is a JsoncError, never a crash."""
    with pytest.raises(jsonc.JsoncError):
        jsonc.loads(text)


def test_reality_template_is_managed_and_its_client_listed_by_id() -> None:
    """The REALITY template's inbound (no tag, a client without email) is found and usable."""
    doc, had = jsonc.loads(filled(REALITY_TEMPLATE))
    managed = document.find_managed(doc, None)
    assert had and managed.index == 0 and managed.tag is None
    [client] = managed.clients()
    assert document.email_of(client) is None and document.id_of(client)
    assert managed.default_flow() == document.VISION
    assert document.live_apply_blocker(doc, managed) == (
        "the managed inbound has no tag, so Xray's API cannot name it"
    )


@pytest.mark.parametrize(
    "name",
    [
        "VMess-TCP__config_server.jsonc",
        "VMess-Websocket-TLS__config_server.jsonc",
        "Trojan-TCP-TLS__minimal___config_server.jsonc",
        "Shadowsocks-TCP__server.jsonc",
        "VLESS-TCP-XTLS-Vision__config_server.jsonc",
        "3x-ui__internal_web_service__config.json",
        "3x-ui_v2.6.6__web_service__config.json",
        "Marzban__xray_config.json",
    ],
)
def test_configs_without_reality_vless_say_what_they_have(name: str) -> None:
    """No VLESS + REALITY inbound: 422 no_managed_inbound naming the inbounds that are there."""
    doc, _ = jsonc.loads(filled(name))
    with pytest.raises(Unprocessable) as err:
        document.find_managed(doc, None)
    assert err.value.error == "no_managed_inbound"
    first = doc["inbounds"][0]
    assert f"{document.protocol(first)}/{document.security(first)}" in err.value.message


def test_inbound_tag_setting_picks_and_checks_the_inbound() -> None:
    """xray.inbound_tag chooses the inbound; a missing tag or a non-VLESS one is a clear 422."""
    doc = json.loads(text_of("3x-ui__internal_web_service__config.json"))
    doc["inbounds"] += [reality_inbound("one"), reality_inbound("two", port=8443)]
    assert document.find_managed(doc, "two").index == 2
    with pytest.raises(Unprocessable) as missing:
        document.find_managed(doc, "three")
    assert missing.value.error == "inbound_not_found" and "api, one, two" in missing.value.message
    with pytest.raises(Unprocessable) as wrong:
        document.find_managed(doc, "api")
    assert wrong.value.error == "inbound_not_vless"


def test_odd_clients_never_crash() -> None:
    """Clients that are not objects, have no id or no email are skipped or listed by id."""
    doc = {"inbounds": [reality_inbound("r")]}
    doc["inbounds"][0]["settings"]["clients"] += ["junk", {"email": "noid@x"}, {"id": "custom-id"}]
    managed = document.find_managed(doc, None)
    assert [document.id_of(c) for c in managed.clients()][1:] == [None, "custom-id"]
    assert managed.by_email("FIRST@example.org") is managed.clients()[0]
    assert document.all_emails(doc) == {"first@example.org", "noid@x"}


def test_with_clients_copies_the_path_and_leaves_the_original() -> None:
    """A change builds a new document; the cached one is never mutated."""
    doc = {"inbounds": [{"protocol": "dokodemo-door"}, reality_inbound("r")], "log": {}}
    before = json.dumps(doc)
    new = document.with_clients(doc, 1, [])
    assert json.dumps(doc) == before
    assert new["inbounds"][1]["settings"]["clients"] == [] and new["log"] is doc["log"]


def test_default_flow_follows_the_other_clients() -> None:
    """New users get the flow most clients use; none on non-tcp transports."""
    inbound = reality_inbound("r")
    inbound["settings"]["clients"] = [
        {"id": "a", "flow": ""},
        {"id": "b", "flow": ""},
        {"id": "c", "flow": document.VISION},
    ]
    assert document.Managed(0, inbound).default_flow() == ""
    inbound["settings"]["clients"] = []
    assert document.Managed(0, inbound).default_flow() == document.VISION
    assert document.Managed(0, reality_inbound("g", network="grpc")).default_flow() == ""


def test_masked_hides_every_private_key_only() -> None:
    """Masking replaces privateKey everywhere and leaves the rest (and the original) alone."""
    doc = {"inbounds": [reality_inbound("a"), reality_inbound("b"), {"protocol": "socks"}]}
    shown = document.masked(doc)
    assert PRIVATE_KEY not in json.dumps(shown)
    assert shown["inbounds"][0]["streamSettings"]["realitySettings"]["privateKey"] == document.MASK
    assert doc["inbounds"][0]["streamSettings"]["realitySettings"]["privateKey"] == PRIVATE_KEY
    assert shown["inbounds"][2] is doc["inbounds"][2]


def test_summary_and_diff() -> None:
    """A preview counts users, ports and protocols, and says what a restore would change."""
    current = {"inbounds": [reality_inbound("r")]}
    other = json.loads(json.dumps(current))
    clients = other["inbounds"][0]["settings"]["clients"]
    clients[0]["id"] = "changed-id"
    clients.append({"id": "x", "email": "New@Example.org"})
    other["inbounds"].append({"tag": "api", "protocol": "dokodemo-door", "port": "10085"})
    summary = document.summary(other)
    assert summary["users_count"] == 2 and summary["ports"] == [443, 10085]
    assert summary["protocols"] == ["dokodemo-door", "vless"]
    diff = document.diff(current, other)
    assert diff["users_added"] == ["new@example.org"] and diff["users_removed"] == []
    assert diff["users_changed"] == ["first@example.org"] and diff["inbounds_added"] == ["api"]
    assert not diff["identical"] and document.diff(current, current)["identical"]
