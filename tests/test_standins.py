"""The `xray` and `systemctl` stand-ins, driven as the daemon drives them: real subprocesses."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from xrayd.sandbox.standin_state import (
    CALLS_KEPT,
    add_traffic,
    init_state,
    read_state,
    set_online,
    update_state,
)
from xrayd.sandbox.standins import install_standins
from xrayd.sandbox.xray_standin import blake3_256

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "configs"
API = "--server=127.0.0.1:10085"
PRIVATE_KEY = "ADqgfJN12IYgAYgIxrOunpvUEWo4pBx5eHXlkRwPk2s"  # Xray-core issue #5160's example
PUBLIC_KEY = "3oxSydKPtqIS6fnKXcfSzni5oPUNdoVaHlstWlMkrBA"
ALICE = "alice@example.com"
ALICE_ID = "b7c1f3a2-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
UP = f"user>>>{ALICE}>>>traffic>>>uplink"
DOWN = f"user>>>{ALICE}>>>traffic>>>downlink"


def base_config() -> dict[str, Any]:
    """A REALITY + Vision server with api (dokodemo-door on 10085), stats and policy."""
    return {
        "api": {"tag": "api", "services": ["HandlerService", "StatsService", "LoggerService"]},
        "stats": {},
        "policy": {
            "levels": {"0": {"statsUserUplink": True, "statsUserDownlink": True, "statsUserOnline": True}},
            "system": {"statsInboundUplink": True, "statsInboundDownlink": True},
        },
        "inbounds": [
            {
                "tag": "api",
                "listen": "127.0.0.1",
                "port": 10085,
                "protocol": "dokodemo-door",
                "settings": {"address": "127.0.0.1"},
            },
            {
                "tag": "vless-in",
                "port": 443,
                "protocol": "vless",
                "settings": {
                    "decryption": "none",
                    "clients": [{"id": ALICE_ID, "email": ALICE, "flow": "xtls-rprx-vision", "level": 0}],
                },
                "streamSettings": {
                    "network": "tcp",
                    "security": "reality",
                    "realitySettings": {
                        "dest": "www.microsoft.com:443",
                        "serverNames": ["www.microsoft.com"],
                        "privateKey": PRIVATE_KEY,
                        "shortIds": ["", "0123456789abcdef"],
                    },
                },
            },
        ],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
        "routing": {"rules": [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]},
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def vless(config: dict[str, Any]) -> dict[str, Any]:
    return config["inbounds"][1]


def reality(config: dict[str, Any]) -> dict[str, Any]:
    return vless(config)["streamSettings"]["realitySettings"]


@dataclass
class Standins:
    xray: Path
    systemctl: Path
    state_dir: Path
    config: Path

    def run(self, program: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=60, check=False)

    def x(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.xray, *args)

    def sc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.systemctl, *args)

    def api(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.x("api", command, API, *args)

    def stats(self, *args: str) -> dict[str, int]:
        done = self.api("statsquery", *args)
        assert done.returncode == 0, done.stderr
        return {s["name"]: s.get("value", 0) for s in json.loads(done.stdout).get("stat", [])}

    def test_config(self, config: dict[str, Any] | str) -> subprocess.CompletedProcess[str]:
        path = self.config.with_name("candidate.json")
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        return self.x("run", "-test", "-config", str(path))

    def restart_with(self, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        self.config.write_text(json.dumps(config))
        return self.sc("restart", "xray")

    def state(self) -> dict[str, Any]:
        return read_state(self.state_dir)

    def knob(self, **values: Any) -> None:
        update_state(self.state_dir, lambda state: state.update(values))


@pytest.fixture
def standins(tmp_path: Path) -> Standins:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config()))
    state_dir = tmp_path / "state"
    init_state(state_dir, config)
    xray, systemctl = install_standins(tmp_path / "bin", state_dir)
    return Standins(xray, systemctl, state_dir, config)


def user_file(tmp_path: Path, tag: str, *clients: dict[str, Any]) -> str:
    path = tmp_path / f"adu-{uuid.uuid4().hex}.json"
    path.write_text(
        json.dumps(
            {
                "inbounds": [
                    {
                        "tag": tag,
                        "protocol": "vless",
                        "port": 443,
                        "settings": {"decryption": "none", "clients": list(clients)},
                    }
                ]
            }
        )
    )
    return str(path)


# --- version and run -test ----------------------------------------------------------------


def test_version_prints_the_two_banner_lines(standins: Standins) -> None:
    """`xray version` prints Xray's version line, then the slogan line."""
    done = standins.x("version")
    lines = done.stdout.splitlines()
    assert done.returncode == 0
    assert re.fullmatch(r"Xray \d+\.\d+\.\d+ \(Xray, Penetrates Everything\.\) .*", lines[0])
    assert lines[1] == "A unified platform for anti-censorship."


@pytest.mark.parametrize(
    "flags",
    [
        ["-config", "{}"],
        ["-c", "{}"],
        ["-config={}"],
        ["--config={}"],
        ["--config", "{}"],
        ["-test=true", "-c={}"],
    ],
)
def test_run_test_accepts_every_config_flag_spelling(standins: Standins, flags: list[str]) -> None:
    """`run -test` takes the config through any Go flag spelling and answers `Configuration OK.`."""
    args = [f.format(standins.config) for f in flags]
    done = standins.x("run", *(args if "-test=true" in args else ["-test", *args]))
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("Xray ")
    assert done.stdout.splitlines()[-1] == "Configuration OK."


def fill_template(text: str) -> str:
    """Fill an Xray-examples template's empty placeholders, keeping its comments."""
    text = text.replace('"id": ""', f'"id": "{uuid.uuid4()}"')
    text = text.replace('"dest": ""', '"dest": "www.example.com:443"')
    text = text.replace('"privateKey": ""', f'"privateKey": "{PRIVATE_KEY}"')
    return re.sub(r'("serverNames": \[\s*)""', r'\1"www.example.com"', text)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json*")))
def test_fixture_configs_validate_once_filled(standins: Standins, name: str) -> None:
    """Every public config fixture, placeholders filled and comments kept, tests OK."""
    done = standins.test_config(fill_template((FIXTURES / name).read_text()))
    assert done.returncode == 0, done.stdout
    assert "Configuration OK." in done.stdout


def test_unfilled_reality_template_is_refused(standins: Standins) -> None:
    """The REALITY template with its empty placeholders fails like Xray: exit 23."""
    text = (FIXTURES / "VLESS-TCP-XTLS-Vision-REALITY__config_server.jsonc").read_text()
    done = standins.test_config(text)
    assert done.returncode == 23
    assert "Failed to start: main: failed to load config files: [" in done.stdout


def test_comments_are_dropped_but_slashes_in_strings_kept(standins: Standins) -> None:
    """`//`, `/* */` and `#` comments are ignored; `//` inside a string stays part of it."""
    text = json.dumps(base_config(), indent=2).replace(
        f'"email": "{ALICE}",', '"email": "https://a//b", // who\n /* a\n block */ # hash\n'
    )
    standins.config.write_text(text)
    assert standins.test_config(text).returncode == 0
    assert standins.sc("restart", "xray").returncode == 0
    assert "https://a//b" in standins.state()["inbounds"]["vless-in"]


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda c: reality(c).pop(key)


BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("no decryption", lambda c: vless(c)["settings"].pop("decryption"), 'please add/set "decryption":"none"'),
    (
        "bad flow",
        lambda c: vless(c)["settings"]["clients"][0].update(flow="xtls-rprx-direct"),
        '"flow" doesn\'t support "xtls-rprx-direct"',
    ),
    (
        "long non-uuid id",
        lambda c: vless(c)["settings"]["clients"][0].update(id="x" * 31),
        "invalid UUID: " + "x" * 31,
    ),
    ("empty id", lambda c: vless(c)["settings"]["clients"][0].update(id=""), "invalid UUID"),
    (
        "duplicate email",
        lambda c: vless(c)["settings"]["clients"].append({"id": "bob", "email": "ALICE@example.com"}),
        "User ALICE@example.com already exists.",
    ),
    ("padded key", lambda c: reality(c).update(privateKey=PRIVATE_KEY + "="), 'invalid "privateKey"'),
    ("short key", lambda c: reality(c).update(privateKey="AAAA"), 'invalid "privateKey"'),
    ("empty key", lambda c: reality(c).update(privateKey=""), 'empty "privateKey"'),
    ("odd short id", lambda c: reality(c).update(shortIds=["abc"]), 'invalid "shortIds[0]"'),
    ("long short id", lambda c: reality(c).update(shortIds=["", "00" * 9]), 'invalid "shortIds[1]"'),
    ("non-hex short id", lambda c: reality(c).update(shortIds=["zz"]), 'invalid "shortIds[0]"'),
    ("no short ids", lambda c: reality(c).update(shortIds=[]), 'empty "shortIds"'),
    ("no server names", lambda c: reality(c).update(serverNames=[]), 'empty "serverNames"'),
    ("no dest", _drop("dest"), 'please fill in a valid value for "target"'),
    (
        "ws with reality",
        lambda c: vless(c)["streamSettings"].update(network="ws"),
        "REALITY only supports RAW, XHTTP and gRPC",
    ),
    (
        "duplicate tag",
        lambda c: c["inbounds"].append({**c["inbounds"][0], "port": 10086}),
        "existing tag found: api",
    ),
    (
        "duplicate port",
        lambda c: c["inbounds"].append({"tag": "other", "port": 443, "protocol": "socks"}),
        "address already in use",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "reason"), [(m, r) for _, m, r in BAD_CONFIGS], ids=[name for name, _, _ in BAD_CONFIGS]
)
def test_bad_configs_are_refused_with_exit_23(
    standins: Standins, mutate: Callable[[dict[str, Any]], Any], reason: str
) -> None:
    """A config Xray would refuse prints the version, `Failed to start: main: …` and exits 23."""
    config = base_config()
    mutate(config)
    done = standins.test_config(config)
    assert done.returncode == 23
    assert done.stdout.startswith("Xray ")
    last = done.stdout.splitlines()[-1]
    assert last.startswith("Failed to start: main: ")
    assert reason in last


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: reality(c).update(target=reality(c).pop("dest")),
        lambda c: vless(c)["settings"]["clients"][0].update(id="short-string-id", flow=""),
        lambda c: reality(c).update(shortIds=[""]),
        lambda c: c["inbounds"].append(
            {"tag": "b", "listen": "127.0.0.2", "port": 10085, "protocol": "socks"}
        ),
    ],
)
def test_valid_variants_pass(standins: Standins, mutate: Callable[[dict[str, Any]], Any]) -> None:
    """`target` for `dest`, a short string id, an empty short id, one port on two IPs: all OK."""
    config = base_config()
    mutate(config)
    done = standins.test_config(config)
    assert done.returncode == 0, done.stdout


def test_unparsable_and_missing_configs_are_refused(standins: Standins) -> None:
    """Broken JSON and a missing file both end in `Failed to start:` and exit 23."""
    broken = standins.test_config('{"inbounds": [')
    assert broken.returncode == 23
    assert "failed to parse json config" in broken.stdout
    missing = standins.x("run", "-test", "-config", str(standins.config.with_name("none.json")))
    assert missing.returncode == 23
    assert "no such file or directory" in missing.stdout


def test_fail_test_knob_forces_refusal(standins: Standins) -> None:
    """With `fail_test` set, `run -test` fails with that text even for a good config."""
    standins.knob(fail_test="infra/conf: knob says no")
    done = standins.x("run", "-test", "-config", str(standins.config))
    assert done.returncode == 23
    assert done.stdout.splitlines()[-1].endswith("> infra/conf: knob says no")


def test_init_state_refuses_a_config_xray_would_refuse(tmp_path: Path) -> None:
    """init_state raises ValueError with Xray's message instead of faking a running server."""
    config = base_config()
    reality(config)["shortIds"] = ["abc"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Failed to start: main: "):
        init_state(tmp_path / "state", path)


# --- api statsquery -----------------------------------------------------------------------


def test_statsquery_without_counters_prints_braces(standins: Standins) -> None:
    """No counter matches: Xray prints `{}` (a user with no traffic has no counter at all)."""
    done = standins.api("statsquery", "-pattern", "user>>>")
    assert (done.returncode, done.stdout.strip()) == (0, "{}")


def test_statsquery_prints_like_xray(standins: Standins) -> None:
    """Counters print as Go JSON: `>` escaped as \\u003e, and a counter at 0 has no `value`."""
    assert add_traffic(standins.state_dir, "Alice@Example.com", 1500, 0)
    done = standins.api("statsquery", "-pattern", "user>>>")
    assert "user\\u003e\\u003e\\u003ealice@example.com" in done.stdout
    assert json.loads(done.stdout) == {"stat": [{"name": DOWN}, {"name": UP, "value": 1500}]}


def test_statsquery_pattern_is_a_substring(standins: Standins) -> None:
    """`-pattern` matches anywhere in the name, not as a regex or prefix."""
    add_traffic(standins.state_dir, ALICE, 1, 2)
    assert set(standins.stats("-pattern", "traffic>>>up")) == {UP, "inbound>>>vless-in>>>traffic>>>uplink"}
    assert standins.stats("-pattern", "user>>>.*") == {}


def test_statsquery_reset_reads_then_zeroes(standins: Standins) -> None:
    """`-reset` returns the values before zeroing; the counters stay, at 0 (no `value`)."""
    add_traffic(standins.state_dir, ALICE, 10, 20)
    assert standins.stats("-pattern", "user>>>", "-reset") == {UP: 10, DOWN: 20}
    again = standins.api("statsquery", "-pattern", "user>>>")
    assert json.loads(again.stdout) == {"stat": [{"name": DOWN}, {"name": UP}]}
    add_traffic(standins.state_dir, ALICE, 5, 0)
    assert standins.stats("-pattern", "user>>>") == {UP: 5, DOWN: 0}


def test_string_values_knob_prints_old_style_values(standins: Standins) -> None:
    """With `string_values`, values print as strings, as Xray ≤ 1.8.23 did."""
    add_traffic(standins.state_dir, ALICE, 7, 0)
    standins.knob(string_values=True)
    done = standins.api("statsquery", "-pattern", "uplink")
    assert {"name": UP, "value": "7"} in json.loads(done.stdout)["stat"]


def test_traffic_counts_only_what_the_policy_asks_for(standins: Standins) -> None:
    """Without `statsUserUplink/Downlink` Xray keeps no user counters; unknown users count nothing."""
    assert not add_traffic(standins.state_dir, "nobody@example.com", 1, 1)
    config = base_config()
    config["policy"]["levels"]["0"] = {}
    assert standins.restart_with(config).returncode == 0
    assert not add_traffic(standins.state_dir, ALICE, 1, 1)
    assert standins.stats("-pattern", "user>>>") == {}


# --- api adu / rmu ------------------------------------------------------------------------


def test_adu_adds_users_to_the_running_inbound(standins: Standins, tmp_path: Path) -> None:
    """`adu` adds the file's clients to the inbound with the same tag and counts them."""
    bob = {"id": str(uuid.uuid4()), "email": "bob@example.com", "flow": "xtls-rprx-vision"}
    done = standins.api("adu", user_file(tmp_path, "vless-in", bob))
    assert done.returncode == 0
    assert done.stdout.splitlines()[-1] == "Added 1 user(s) in total."
    assert standins.state()["inbounds"]["vless-in"]["bob@example.com"] == bob
    assert add_traffic(standins.state_dir, "bob@example.com", 3, 4)


def test_adu_duplicate_email_fails_per_user_but_exits_0(standins: Standins, tmp_path: Path) -> None:
    """A duplicate email (any case) prints `User X already exists.`; like Xray, the exit is 0
    and only the total tells the caller: `Added 0 user(s) in total.`."""
    dup = {"id": str(uuid.uuid4()), "email": "ALICE@example.com"}
    done = standins.api("adu", user_file(tmp_path, "vless-in", dup))
    assert done.returncode == 0
    assert "User ALICE@example.com already exists." in done.stdout
    assert done.stdout.splitlines()[-1] == "Added 0 user(s) in total."
    assert standins.state()["inbounds"]["vless-in"]["alice@example.com"]["id"] == ALICE_ID


def test_adu_unknown_tag_adds_nothing(standins: Standins, tmp_path: Path) -> None:
    """A tag the running Xray does not have: `handler not found`, nothing added."""
    carol = {"id": str(uuid.uuid4()), "email": "carol@example.com"}
    done = standins.api("adu", user_file(tmp_path, "no-such-tag", carol))
    assert "handler not found: no-such-tag" in done.stdout
    assert done.stdout.splitlines()[-1] == "Added 0 user(s) in total."


def test_adu_builds_the_file_like_a_config(standins: Standins, tmp_path: Path) -> None:
    """A file client with a bad flow is refused at build time, as in Xray."""
    bad = {"id": str(uuid.uuid4()), "email": "dan@example.com", "flow": "bogus"}
    done = standins.api("adu", user_file(tmp_path, "vless-in", bad))
    assert "failed to build config:" in done.stdout
    assert "dan@example.com" not in standins.state()["inbounds"]["vless-in"]


def test_rmu_removes_and_names_unknown_users(standins: Standins) -> None:
    """`rmu` removes by email (any case); an unknown one prints `User X not found.`."""
    done = standins.api("rmu", "-tag=vless-in", "ALICE@example.com", "ghost@example.com")
    assert done.returncode == 0
    assert "User ghost@example.com not found." in done.stdout
    assert done.stdout.splitlines()[-1] == "Removed 1 user(s) in total."
    assert standins.state()["inbounds"]["vless-in"] == {}


def test_rmu_without_tag_fails(standins: Standins) -> None:
    """`rmu` with no `-tag` stops before dialing: `inbound tag not specified`, exit 1."""
    done = standins.api("rmu", ALICE)
    assert (done.returncode, done.stderr.strip()) == (1, "inbound tag not specified")


# --- reaching the API ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "knobs"),
    [
        ([API], {"api_up": False}),
        (["--server=127.0.0.1:10086"], {}),
        ([], {}),
        ([API], {"running": False}),
    ],
)
def test_unreachable_api_fails_to_dial(standins: Standins, args: list[str], knobs: dict[str, Any]) -> None:
    """API down, wrong address, the 127.0.0.1:8080 default, Xray stopped: `failed to dial`, 1."""
    standins.knob(**knobs)
    done = standins.x("api", "statsquery", *args)
    server = args[0].split("=")[1] if args else "127.0.0.1:8080"
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == f"failed to dial {server}"


def test_api_address_comes_from_the_started_config(standins: Standins) -> None:
    """`api.listen`, or a `tunnel` inbound routed to the api outbound, sets the address."""
    config = base_config()
    config["api"]["listen"] = "127.0.0.1:10090"
    del config["inbounds"][0]
    standins.restart_with(config)
    assert standins.x("api", "statsquery", "-s", "127.0.0.1:10090").returncode == 0
    assert standins.api("statsquery").returncode == 1
    config = base_config()
    config["inbounds"][0].update(protocol="tunnel", port=62789)
    standins.restart_with(config)
    assert standins.x("api", "statsquery", "--server", "localhost:62789").returncode == 0
    config["routing"]["rules"] = []
    standins.restart_with(config)
    assert standins.x("api", "statsquery", "--server=127.0.0.1:62789").returncode == 1


def test_api_service_must_be_enabled(standins: Standins) -> None:
    """A service missing from `api.services` answers gRPC's Unimplemented error."""
    config = base_config()
    config["api"]["services"] = ["HandlerService"]
    standins.restart_with(config)
    done = standins.api("statsquery")
    assert done.returncode == 1
    assert "unknown service xray.app.stats.command.StatsService" in done.stderr


# --- online stats, logger -----------------------------------------------------------------


def test_online_stats_shapes(standins: Standins) -> None:
    """`statsonline` gives the IP count; `statsonlineiplist` the {ip: last_seen} map."""
    assert set_online(standins.state_dir, ALICE, {"1.2.3.4": 1712345678, "5.6.7.8": 1712345680})
    online = standins.api("statsonline", f"-email={ALICE}")
    name = f"user>>>{ALICE}>>>online"
    assert json.loads(online.stdout) == {"stat": {"name": name, "value": 2}}
    listing = standins.api("statsonlineiplist", "-email", ALICE)
    assert json.loads(listing.stdout) == {"name": name, "ips": {"1.2.3.4": 1712345678, "5.6.7.8": 1712345680}}
    set_online(standins.state_dir, ALICE, {})
    assert json.loads(standins.api("statsonline", f"-email={ALICE}").stdout) == {"stat": {"name": name}}


def test_online_stats_of_an_unseen_user_are_not_found(standins: Standins) -> None:
    """A user with no online map: `failed to get stats: … not found.`, exit 1."""
    done = standins.api("statsonline", "-email=nobody@example.com")
    assert done.returncode == 1
    assert done.stderr.startswith("failed to get stats: rpc error: code = NotFound")


def test_restartlogger_is_silent(standins: Standins) -> None:
    """`restartlogger` prints nothing and exits 0."""
    done = standins.api("restartlogger")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# --- keys, ids, usage ---------------------------------------------------------------------


def test_x25519_derives_the_reference_pair(standins: Standins) -> None:
    """`x25519 -i` prints the key, its public key under the ≥ v26.3.23 label, and Hash32."""
    done = standins.x("x25519", "-i", PRIVATE_KEY)
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["PrivateKey"] == PRIVATE_KEY
    assert lines["Password (PublicKey)"] == PUBLIC_KEY
    assert lines["Hash32"] == _b64(blake3_256(_unb64(PUBLIC_KEY)))


def test_x25519_generates_a_matching_pair(standins: Standins) -> None:
    """`x25519` alone prints a fresh private key and the public key that belongs to it."""
    lines = dict(line.split(": ", 1) for line in standins.x("x25519").stdout.splitlines())
    raw = _unb64(lines["PrivateKey"])
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw()
    assert lines["Password (PublicKey)"] == _b64(public)


def test_blake3_matches_the_reference_vectors() -> None:
    """The one-block BLAKE3 behind Hash32 matches BLAKE3's published test vectors."""
    assert blake3_256(b"").hex() == ("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
    assert blake3_256(b"\0").hex() == ("2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213")


def test_uuid_prints_a_random_v4_or_a_v5_of_the_input(standins: Standins) -> None:
    """`uuid` is a random UUIDv4; `uuid -i s` is Xray's UUIDv5 of s (the id Xray maps s to)."""
    assert uuid.UUID(standins.x("uuid").stdout.strip()).version == 4
    assert standins.x("uuid", "-i", "bob").stdout.strip() == str(uuid.uuid5(uuid.UUID(int=0), "bob"))


def test_unknown_command_prints_usage(standins: Standins) -> None:
    """An unknown command prints usage on stderr and exits 1."""
    done = standins.x("frobnicate")
    assert (done.returncode, done.stdout) == (1, "")
    assert "Usage:" in done.stderr


def test_unknown_flag_is_a_go_flag_error(standins: Standins) -> None:
    """An undefined flag fails like Go's flag package: the message, exit 2."""
    done = standins.api("statsquery", "-bogus")
    assert done.returncode == 2
    assert "flag provided but not defined: -bogus" in done.stderr


# --- systemctl ----------------------------------------------------------------------------


def test_is_active_states_and_exit_codes(standins: Standins) -> None:
    """`is-active` prints the state; exit 0 only for active, 3 otherwise (unknown: inactive)."""
    assert (standins.sc("is-active", "xray").stdout, standins.sc("is-active", "xray").returncode) == (
        "active\n",
        0,
    )
    standins.knob(fail_start=True)
    standins.sc("restart", "xray.service")
    failed = standins.sc("is-active", "xray")
    assert (failed.stdout, failed.returncode) == ("failed\n", 3)
    unknown = standins.sc("is-active", "nope")
    assert (unknown.stdout, unknown.returncode) == ("inactive\n", 3)
    assert standins.sc("is-active", "--quiet", "nope").stdout == ""


def test_show_prints_unit_properties(standins: Standins) -> None:
    """`show` prints Key=value lines; `-p … --value` just the value; unknown units not-found."""
    lines = dict(line.split("=", 1) for line in standins.sc("show", "xray").stdout.splitlines())
    assert lines["ActiveState"] == "active"
    assert lines["SubState"] == "running"
    assert lines["LoadState"] == "loaded"
    assert int(lines["MainPID"]) > 0
    assert standins.sc("show", "nope", "-p", "LoadState", "--value").stdout == "not-found\n"
    assert standins.sc("show", "xray", "--property=ActiveState").stdout == "ActiveState=active\n"


def test_restart_of_an_unknown_unit_fails(standins: Standins) -> None:
    """Restarting a unit that does not exist: systemd's message, exit 5."""
    done = standins.sc("restart", "nope")
    assert done.returncode == 5
    assert done.stderr.strip() == "Failed to restart nope.service: Unit nope.service not found."


def test_restart_resets_counters_and_reloads_users(standins: Standins, tmp_path: Path) -> None:
    """A restart loses every counter and API-added user; the users are the config's again."""
    add_traffic(standins.state_dir, ALICE, 100, 200)
    standins.api("adu", user_file(tmp_path, "vless-in", {"id": "bob", "email": "bob@x.org"}))
    config = base_config()
    vless(config)["settings"]["clients"].append({"id": "carol", "email": "carol@x.org"})
    pid = standins.sc("show", "xray", "-p", "MainPID", "--value").stdout
    assert standins.restart_with(config).returncode == 0
    state = standins.state()
    assert standins.stats() == {}
    assert set(state["inbounds"]["vless-in"]) == {ALICE, "carol@x.org"}
    assert state["restarts"] == 1
    assert standins.sc("show", "xray", "-p", "MainPID", "--value").stdout != pid


def test_restart_with_a_bad_config_leaves_xray_failed(standins: Standins) -> None:
    """Like Xray's Type=simple unit, restart exits 0 but the unit ends failed and the API is gone."""
    config = base_config()
    reality(config)["privateKey"] = "nope"
    assert standins.restart_with(config).returncode == 0
    assert standins.sc("is-active", "xray").stdout == "failed\n"
    assert standins.state()["running"] is False
    assert standins.api("statsquery").stderr.startswith("failed to dial")
    assert standins.state()["restarts"] == 0


def test_fail_start_knob_fails_a_good_config(standins: Standins) -> None:
    """With `fail_start`, restarting xray leaves it failed even though `run -test` passes."""
    standins.knob(fail_start=True)
    standins.sc("restart", "xray")
    assert standins.sc("is-active", "xray").returncode == 3
    assert standins.x("run", "-test", "-c", str(standins.config)).returncode == 0
    standins.knob(fail_start=False)
    standins.sc("start", "xray")
    assert standins.sc("is-active", "xray").returncode == 0


def test_stop_and_start(standins: Standins) -> None:
    """`stop` makes a unit inactive (xray: not running); `start` of an active unit is a no-op."""
    add_traffic(standins.state_dir, ALICE, 1, 1)
    assert standins.sc("start", "xray").returncode == 0
    assert standins.stats("-pattern", "user>>>") == {UP: 1, DOWN: 1}
    standins.sc("stop", "xray", "xray-report-gateway")
    assert standins.sc("is-active", "xray").stdout == "inactive\n"
    assert standins.sc("is-active", "xray-report-gateway").returncode == 3
    assert standins.state()["running"] is False
    standins.sc("start", "xray-report-gateway")
    assert standins.sc("is-active", "xray-report-gateway").returncode == 0


def test_calls_are_recorded_and_capped(standins: Standins) -> None:
    """Every systemctl argv is recorded; only the last CALLS_KEPT are kept."""
    update_state(standins.state_dir, lambda s: s.update(calls=[["old"]] * (CALLS_KEPT - 1)))
    standins.sc("is-active", "xray")
    standins.sc("restart", "xray")
    calls = standins.state()["calls"]
    assert len(calls) == CALLS_KEPT
    assert calls[-2:] == [["is-active", "xray"], ["restart", "xray"]]


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_adu_calls_lose_no_user(standins: Standins, tmp_path: Path) -> None:
    """Many `adu` processes at once: every user lands (the state is locked around each update)."""
    emails = [f"user{i}@example.com" for i in range(16)]
    procs = [
        subprocess.Popen(
            [
                str(standins.xray),
                "api",
                "adu",
                API,
                user_file(tmp_path, "vless-in", {"id": e[:10], "email": e}),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for e in emails
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert out.splitlines()[-1] == "Added 1 user(s) in total."
    assert set(standins.state()["inbounds"]["vless-in"]) == {ALICE, *emails}


def test_concurrent_traffic_and_resets_lose_no_byte(standins: Standins) -> None:
    """Traffic counted while `statsquery -reset` runs in other processes: the bytes read by the
    resets plus what remains add up to every byte counted."""

    def count(_: int) -> None:
        for _ in range(25):
            add_traffic(standins.state_dir, ALICE, 1, 0)

    resets = [
        subprocess.Popen(
            [str(standins.xray), "api", "statsquery", API, "-pattern", UP, "-reset"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(count, range(8)))
    read = 0
    for proc in resets:
        out, _ = proc.communicate(timeout=60)
        read += sum(s.get("value", 0) for s in json.loads(out).get("stat", []))
    assert read + standins.stats("-pattern", UP).get(UP, 0) == 8 * 25
