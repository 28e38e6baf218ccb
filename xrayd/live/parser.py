"""Xray access-log lines: a pure parser over hostile bytes, and the formatter it inverts.

The format (Xray's `common/log/access.go`, fixtures/README.md):

    YYYY/MM/DD HH:MM:SS[.ffffff] [from ]SRC accepted|rejected DST[ [DETOUR]][ REASON][ email: EMAIL]

Every field is attacker-influenced (sniffed domains, error text), so `parse_line` never raises,
refuses a line over `MAX_LINE` bytes or with control characters before looking at it, and
returns None for anything that does not fit. A line without a timestamp (or with a year
outside 1970-9998) cannot be placed in time, so it is not a record either. DNS lines
(`dnsLog`) are recognised by `is_dns_line` so that callers can tell them from garbage. The
email is one word: what follows it is trailing garbage (as when a log viewer glued lines
together), never part of a user's key.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import NamedTuple

MAX_LINE = 8192  # bytes; Xray's longest real lines (error chains) are well under 1 KiB
# Years a line may carry: no running Xray writes others, and near the ends of datetime's
# range a local time has no Unix time, which every consumer of `ts` needs.
YEARS = range(1970, 9999)

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_ACCESS = re.compile(
    rb"(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? "
    rb"(?:from )?([^ ]+) (accepted|rejected) ([^ ]*)"
    rb"(?: \[([^\]]*)\])?"
    rb"(.*)",
    re.S,
)
# SRC: [tcp:|udp:]ADDR:PORT with ADDR a bracketed IPv6 or a word without colons, or a bare
# word such as `DNS`/`DoH` for Xray's own resolver.
_SRC = re.compile(rb"(?:(tcp|udp):)?(?:\[([0-9A-Za-z:.%_-]+)\]|([^:\[\]]+)):(\d{1,5})|([A-Za-z]+)")
_DST = re.compile(rb"(tcp|udp):(?:\[([0-9A-Za-z:.%_-]+)\]|([^:\[\]]+)):(\d{1,5})")
_DETOUR = re.compile(rb"(.*?) (->|>>|==>) (.*)", re.S)
_DNS = re.compile(
    rb"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})? [^ ]+ (?:got answer|cache HIT|cache OPTIMISTE): "
)
_EMAIL_MARK = b" email: "


class AccessRecord(NamedTuple):
    """One access-log line. Strings are decoded as UTF-8 with replacement, never trusted."""

    ts: datetime  # naive, the server's local time, as Xray wrote it
    src_ip: str  # without port or brackets; `DNS`/`DoH` for the built-in resolver
    src_port: int | None
    src_network: str  # "tcp"/"udp" when the source carried a network prefix, else ""
    accepted: bool
    network: str  # "tcp"/"udp"; "" when DST is empty (rejected lines) or not HOST:PORT
    host: str  # destination domain or IP (IPv6 without brackets); "" when none
    port: int | None
    inbound: str  # "" when the detour names only an outbound, or there is none
    outbound: str
    route: str  # "->" a rule matched, ">>" the default outbound, "==>" forced, "" none
    email: str | None
    reason: str  # the error chain of a rejected line, "" when none


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _port(raw: bytes) -> int | None:
    port = int(raw)
    return port if port <= 65535 else None


def parse_line(line: bytes) -> AccessRecord | None:
    """The record of one access-log line (its newline optional), or None if it is not one."""
    if len(line) > MAX_LINE:
        return None
    line = line.removesuffix(b"\n").removesuffix(b"\r")
    if _CONTROL.search(line):
        return None
    m = _ACCESS.fullmatch(line)
    if m is None:
        return None
    year, month, day, hour, minute, second, micro, src, status, dst, detour, tail = m.groups()
    try:
        ts = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int(micro.ljust(6, b"0")) if micro else 0,
        )  # fmt: skip
    except ValueError:
        return None
    if ts.year not in YEARS:
        return None

    s = _SRC.fullmatch(src)
    if s is None:
        return None
    src_network, src_v6, src_host, src_port, src_word = s.groups()
    if src_word is not None:
        src_ip, port_of_src = src_word, None
    else:
        src_ip, port_of_src = src_v6 or src_host, _port(src_port)
        if port_of_src is None:
            return None

    d = _DST.fullmatch(dst)
    if d is not None:
        network, dst_v6, dst_host, dst_port = d.groups()
        host, port = dst_v6 or dst_host, _port(dst_port)
        if port is None:
            return None
    else:
        network, host, port = b"", dst, None

    inbound, route, outbound = b"", b"", b""
    if detour is not None:
        r = _DETOUR.fullmatch(detour)
        inbound, route, outbound = r.groups() if r is not None else (b"", b"", detour)

    reason, mark, rest = tail.partition(_EMAIL_MARK)
    email = rest.split(b" ", 1)[0] if mark else b""
    return AccessRecord(
        ts=ts,
        src_ip=_text(src_ip),
        src_port=port_of_src,
        src_network=_text(src_network or b""),
        accepted=status == b"accepted",
        network=_text(network),
        host=_text(host),
        port=port,
        inbound=_text(inbound),
        outbound=_text(outbound),
        route=_text(route),
        email=_text(email) if email else None,
        reason=_text(reason.strip(b" ")),
    )


def is_dns_line(line: bytes) -> bool:
    """Whether a line is one of Xray's DNS lines (`got answer:`, `cache HIT:`), not garbage."""
    return len(line) <= MAX_LINE and _DNS.match(line) is not None


def _address(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return bracketed if port is None else f"{bracketed}:{port}"


def format_line(r: AccessRecord) -> bytes:
    """The line Xray (v25.1.30 and later) writes for `r`, with its newline."""
    t = r.ts
    parts = [
        f"{t.year:04d}/{t.month:02d}/{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond:06d} from ",
        f"{r.src_network}:" if r.src_network else "",
        _address(r.src_ip, r.src_port),
        " accepted " if r.accepted else " rejected ",
        f"{r.network}:{_address(r.host, r.port)}" if r.network else r.host,
    ]
    if r.inbound or r.route or r.outbound:
        parts.append(f" [{r.inbound} {r.route} {r.outbound}]" if r.route else f" [{r.outbound}]")
    if r.reason:
        parts.append(f" {r.reason}")
    if r.email:
        parts.append(f" email: {r.email}")
    parts.append("\n")
    return "".join(parts).encode()
