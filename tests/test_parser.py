"""Tests for xrayd.live.parser: every fixture line, hostile lines, and properties with hypothesis."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FIXTURES
from xrayd.live.parser import MAX_LINE, AccessRecord, format_line, is_dns_line, parse_line

SAMPLES = FIXTURES / "access-log" / "samples.log"


def fixture_lines() -> list[bytes]:
    lines = SAMPLES.read_bytes().splitlines(keepends=True)
    return [ln for ln in lines if ln.strip() and not ln.startswith(b"#")]


# (ts, src_ip, src_port, src_network, accepted, network, host, port, inbound, route, outbound,
#  email, reason) of every access line of samples.log, in file order; "DNS" and None mark
#  the DNS lines and the two lines that are not records.
NO_EMAIL = None
ANY = "0.0.0.0"  # noqa: S104 - the source Xray logs behind some transports
INVALID_ID = "proxy/vless/encoding: invalid request user id"
EXPECTED: list[tuple | str | None] = [
    *[
        (datetime(2025, 8, 24, 18, 40, 35, us), "myiphere", port, "", False, "", "", None, "", "", "",
         NO_EMAIL, INVALID_ID)
        for us, port in ((667467, 57676), (667534, 57680), (667830, 57673), (668958, 57672))
    ],
    (datetime(2026, 6, 10, 13, 0, 5, 942812), ANY, 0, "", True, "tcp", "10.249.66.117", 8080,
     "xhttp-in", ">>", "direct-out", "me", ""),
    (datetime(2026, 6, 10, 13, 0, 6, 21793), ANY, 0, "", True, "tcp", "10.249.66.117", 8080,
     "xhttp-in", ">>", "direct-out", "me", ""),
    (datetime(2025, 5, 25, 16, 20, 47, 4364), "127.0.0.1", 39946, "", True, "tcp", "127.0.0.1", 0,
     "api", "->", "api", NO_EMAIL, ""),
    *[
        (datetime(2025, 5, 25, 16, 20, s, us), ANY, 0, "tcp", True, net, host, port,
         "inbound-13044", ">>", "direct", NO_EMAIL, "")
        for s, us, net, host, port in (
            (50, 912111, "udp", "1.1.1.1", 53),
            (50, 913999, "udp", "74.125.131.104", 443),
            (50, 917668, "udp", "64.233.161.113", 443),
            (51, 790, "tcp", "74.125.131.156", 443),
        )
    ],
    *[
        (datetime(2025, 1, 2, 22, 51, s), "127.0.0.1", 0, "", True, net, host, port,
         "vmess-grpc", ">>", "IPv4-out", "kocakkk", "")
        for s, net, host, port in (
            (24, "tcp", "149.154.175.54", 443),
            (32, "udp", "1.1.1.1", 53),
            (32, "tcp", "ui.ff.avast.com", 443),
            (32, "tcp", "mqtt-mini.facebook.com", 443),
            (32, "tcp", "youtubei.googleapis.com", 443),
        )
    ],
    *[
        (datetime(2024, 7, 16, 21, 27, 57), "127.0.0.1", port, "", True, "tcp", host, 8080,
         "inbound-127.0.0.1:2090", ">>", "direct", "M.DIRECT", "")
        for port, host in (
            (15364, "speedtest.us-west-02.lunavi.com.prod.hosts.ooklaserver.net"),
            (15366, "speedtest.mtc4me.com.prod.hosts.ooklaserver.net"),
            (15380, "speedtest.ideatek.com"),
        )
    ],
    (datetime(2021, 10, 24, 15, 42, 24), "27.10.130.169", 0, "", True, "tcp", "www.google.com", 443,
     "", "", "direct", NO_EMAIL, ""),
    (datetime(2021, 10, 24, 15, 42, 24), "DoH", None, "", True, "", "https://1.1.1.1/dns-query", None,
     "", "", "local", NO_EMAIL, ""),
    "DNS",
    "DNS",
    (datetime(2026, 9, 13, 12, 48, 8, 899307), "10.1.0.1", 50065, "tcp", True, "tcp", "72.154.7.98", 443,
     "tun", "->", "proxy", NO_EMAIL, ""),
    (datetime(2026, 9, 13, 12, 48, 12, 176224), "10.1.0.1", 50418, "udp", True, "udp", "162.159.200.1",
     123, "tun", "->", "proxy", NO_EMAIL, ""),
    (datetime(2026, 9, 13, 12, 48, 29, 891299), "10.1.0.1", 62761, "tcp", True, "tcp", "140.82.121.3", 443,
     "tun", "->", "proxy", NO_EMAIL, ""),
    (datetime(2025, 8, 18, 14, 32, 29), "10.66.82.30", 58584, "", True, "tcp", "87.228.71.66", 80,
     "all-in", "->", "direct", NO_EMAIL, ""),
    (datetime(2025, 10, 11, 4, 45, 59), "172.56.170.224", 35098, "tcp", True, "tcp", "127.0.0.1", 0,
     "", "", "", NO_EMAIL, ""),
    None,  # "from tcp: accepted …": no timestamp, so no place in time
    (datetime(2021, 11, 10, 20, 13, 1), "IP地址", 58217, "", True, "tcp", "github.com", 443,
     "", "", "", "love@example.com", ""),
    (datetime(2021, 11, 10, 20, 13, 8), "IP地址", 58347, "", False, "", "", None,
     "", "", "", NO_EMAIL, "proxy/trojan: not trojan protocol"),
    (datetime(2021, 7, 4, 12, 8, 1), "114.89.46.91", 53303, "", False, "", "", None, "", "", "",
     NO_EMAIL, INVALID_ID),
    (datetime(2021, 7, 4, 12, 8, 2), "114.89.46.91", 53311, "", False, "", "", None, "", "", "",
     NO_EMAIL, INVALID_ID),
    None,  # GitHub's auto-links around the source: not a SRC Xray writes
    (datetime(2023, 8, 19, 4, 22, 46), "223.104.20.225", 11682, "", False, "", "", None, "", "", "",
     NO_EMAIL,
     "common/drain: common/drain: drained connection > proxy/vmess/encoding: invalid user > "
     "proxy/vmess: Not Found"),
    (datetime(2024, 1, 2, 15, 4, 5, 123456), "1.2.3.4", 555, "", True, "tcp", "example.com", 443,
     "inbound-tag", ">>", "outbound-tag", "alice@example.com", ""),
]  # fmt: skip


def fields(r: AccessRecord) -> tuple:
    return (
        r.ts, r.src_ip, r.src_port, r.src_network, r.accepted, r.network, r.host, r.port,
        r.inbound, r.route, r.outbound, r.email, r.reason,
    )  # fmt: skip


def test_fixture_table_covers_every_line() -> None:
    """The expectations below name every access line of samples.log, no more and no fewer."""
    assert len(fixture_lines()) == len(EXPECTED)


@pytest.mark.parametrize(("n", "expected"), list(enumerate(EXPECTED)))
def test_fixture_line(n: int, expected: tuple | str | None) -> None:
    """Each real line from samples.log parses to exactly the fields it carries."""
    line = fixture_lines()[n]
    record = parse_line(line)
    if expected == "DNS":
        assert record is None and is_dns_line(line)
    elif expected is None:
        assert record is None and not is_dns_line(line)
    else:
        assert record is not None and fields(record) == expected


def test_bracketed_ipv6_source_and_destination() -> None:
    """IPv6 addresses come without their brackets, ports apart."""
    r = parse_line(
        b"2025/03/01 10:00:00.5 from udp:[2001:db8::1]:5678 accepted tcp:[2606:4700::1111]:443 "
        b"[in ==> out] email: a@b.c"
    )
    assert r is not None
    assert (r.src_network, r.src_ip, r.src_port) == ("udp", "2001:db8::1", 5678)
    assert (r.network, r.host, r.port) == ("tcp", "2606:4700::1111", 443)
    assert (r.inbound, r.route, r.outbound, r.email) == ("in", "==>", "out", "a@b.c")
    assert r.ts == datetime(2025, 3, 1, 10, 0, 0, 500000)


def test_crlf_and_trailing_garbage_after_the_email() -> None:
    """A CR before the newline is dropped; words after the email are garbage, not part of it."""
    base = b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u@x"
    for line in (base + b"\r\n", base + b"   2025/03/01 10:00:01 from 1.2.3.4:6 accepted junk\n"):
        r = parse_line(line)
        assert r is not None and r.email == "u@x" and r.host == "x.com"


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"garbage",
        b"2025/03/01 10:00:00",
        b"2025/02/30 10:00:00 from 1.2.3.4:5 accepted tcp:x.com:443",  # no such date
        b"2025/03/01 25:00:00 from 1.2.3.4:5 accepted tcp:x.com:443",  # no such hour
        b"2025/03/01 10:00:00 from 1.2.3.4:99999 accepted tcp:x.com:443",  # port out of range
        b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:x.com:70000",
        b"2025/03/01 10:00:00 from 1.2.3.4:5 opened tcp:x.com:443",  # unknown status
        b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 email: a\x00b",  # control byte
        b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:x\x1b[31m.com:443",  # terminal escape
        b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:" + b"x" * MAX_LINE + b":443",  # too long
        b"2025/03/01 10:00:00 from [::1:5 accepted tcp:x.com:443",
        b"0001/01/01 00:00:00 from 1.2.3.4:5 accepted tcp:x.com:443",  # no Unix time
        b"1969/12/31 23:59:59 from 1.2.3.4:5 accepted tcp:x.com:443",
        b"9999/12/31 23:59:59 from 1.2.3.4:5 accepted tcp:x.com:443",
    ],
)
def test_hostile_lines_are_not_records(line: bytes) -> None:
    """Lines that do not fit the format (or hide control bytes) are refused, not guessed at."""
    assert parse_line(line) is None


def test_invalid_utf8_is_replaced_not_raised() -> None:
    """Bytes that are not UTF-8 become U+FFFD in the record."""
    r = parse_line(b"2025/03/01 10:00:00 from 1.2.3.4:5 accepted tcp:\xff\xfe.com:443 email: \xc3")
    assert r is not None and r.host == "\ufffd\ufffd.com" and r.email == "\ufffd"


# --- properties ------------------------------------------------------------------------

_WORD = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_."), min_size=1, max_size=20)
_NAME = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="[]:\x85"),
    min_size=1,
    max_size=30,
)
_IPV4 = st.ip_addresses(v=4).map(str)
_IPV6 = st.ip_addresses(v=6).map(str)
_PORT = st.integers(0, 65535)
_TS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31, 23, 59, 59))


@st.composite
def records(draw: st.DrawFn) -> AccessRecord:
    """Any record Xray could write (fields free of the separators the format relies on)."""
    if draw(st.booleans()):
        src_ip, src_port, src_network = draw(st.sampled_from(["DNS", "DoH"])), None, ""
    else:
        src_ip = draw(st.one_of(_IPV4, _IPV6, _NAME))
        src_port, src_network = draw(_PORT), draw(st.sampled_from(["", "tcp", "udp"]))
    accepted = draw(st.booleans())
    if draw(st.booleans()):
        network = draw(st.sampled_from(["tcp", "udp"]))
        host, port = draw(st.one_of(_IPV4, _IPV6, _NAME)), draw(_PORT)
    else:
        network, host, port = "", draw(st.sampled_from(["", "https://1.1.1.1/dns-query"])), None
    route = draw(st.sampled_from(["", "->", ">>", "==>"]))
    outbound = draw(st.one_of(st.just(""), _WORD)) if not route else draw(_WORD)
    inbound = draw(_WORD) if route else ""
    reason = draw(st.one_of(st.just(""), st.lists(_WORD, min_size=1, max_size=4).map(" > ".join)))
    email = draw(st.one_of(st.none(), _NAME))
    return AccessRecord(
        draw(_TS), src_ip, src_port, src_network, accepted, network, host, port,
        inbound, outbound, route, email, reason,
    )  # fmt: skip


@given(records())
def test_a_formatted_record_parses_back_to_itself(record: AccessRecord) -> None:
    """format_line and parse_line are inverses over every record Xray can write."""
    assert parse_line(format_line(record)) == record


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(line: bytes) -> None:
    """Any bytes at all give a record or None, never an exception."""
    parse_line(line)
    is_dns_line(line)


@given(records(), st.integers(0, 200), st.binary(min_size=1, max_size=8))
def test_damaged_lines_never_raise(record: AccessRecord, at: int, noise: bytes) -> None:
    """A real line with bytes spliced in anywhere still gives a record or None."""
    line = format_line(record)
    at = min(at, len(line))
    parse_line(line[:at] + noise + line[at:])
    parse_line(line[:at])
