"""Tests for xrayd.live.scan: the bulk path counts exactly what the pure parser counts."""

from __future__ import annotations

import random
import time
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_parser import SAMPLES, records
from xrayd.live.parser import MAX_LINE, AccessRecord, format_line
from xrayd.live.scan import Scanner, Tally, minute_of, tally_lines

T0 = datetime(2026, 3, 1, 12, 0, 0)
LINE = b"2026/03/01 12:00:%02d.%06d from 10.0.0.%d:%d accepted tcp:%s:443 [in >> direct] email: %s\n"


def line(second: int, user: str, host: str = "example.com", ip: int = 1, micro: int = 0) -> bytes:
    return LINE % (second, micro, ip, 40000 + second, host.encode(), user.encode())


def scan(chunk: bytes, detail_since: int = 0) -> Tally:
    return Scanner().scan(chunk, detail_since)


def test_counts_connections_per_minute_user_and_host() -> None:
    """Accepted lines with an email count per (minute, email, host); IPs and last seen too."""
    chunk = (
        line(1, "a@x", micro=5) + line(2, "a@x") + line(3, "b@x", "other.org", ip=2) + line(61 - 60, "a@x")
    )
    tally = scan(chunk)
    m = minute_of(T0)
    assert tally.conns == {m: {("a@x", "example.com"): 3, ("b@x", "other.org"): 1}}
    assert tally.ips == {(m, "a@x", "10.0.0.1"): 3, (m, "b@x", "10.0.0.2"): 1}
    assert tally.last_seen == {
        "a@x": T0.replace(second=2).timestamp(),
        "b@x": T0.replace(second=3).timestamp(),
    }
    assert tally.unparsed == 0 and tally == tally_lines(chunk.splitlines(), 0)


def test_old_minutes_keep_no_detail() -> None:
    """Minutes before detail_since count connections but keep no IPs or last-seen times."""
    tally = scan(line(1, "a@x"), detail_since=minute_of(T0) + 1)
    assert tally.conns and not tally.ips and not tally.last_seen


def test_every_fixture_line_counts_as_the_reference_says() -> None:
    """samples.log, scanned whole, gives the Tally of parse_line line by line."""
    data = SAMPLES.read_bytes()
    tally = scan(data)
    assert tally == tally_lines(data.splitlines(), 0)
    comments = sum(1 for ln in data.splitlines() if ln.startswith(b"#"))
    assert tally.unparsed == 2 + comments  # the two non-records, and our '#' lines


# --- the property -------------------------------------------------------------------

_USERS = st.sampled_from(["alice@example.org", "bob@example.org", "c"])
_HOSTS = st.sampled_from(["example.com", "1.2.3.4", "2606:4700::1", "api.x.org"])


@st.composite
def common_records(draw: st.DrawFn) -> AccessRecord:
    """Records of the usual shape, in a few minutes, so the fast path has work to do."""
    ts = draw(st.datetimes(min_value=T0, max_value=T0.replace(minute=3)))
    src = draw(st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]))
    return AccessRecord(
        ts, src, draw(st.integers(0, 65535)), draw(st.sampled_from(["", "tcp"])), draw(st.booleans()),
        "tcp", draw(_HOSTS), 443, "in", "out", draw(st.sampled_from([">>", "->"])),
        draw(st.one_of(st.none(), _USERS)), "",
    )  # fmt: skip


_HOSTILE = st.sampled_from(
    [
        b"",
        b"garbage",
        b"2026/03/01 12:00:00 DOHL//1.1.1.1 got answer: x.com -> [1.2.3.4] 1ms",
        b"2026/03/01 12:00:00 from 1.2.3.4:99999 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:00080 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from tcp:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/02/30 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"1969/12/31 23:59:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:60 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:99999 [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a email: >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a] b] c email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u trailing",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: ",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted https://x/dns [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 rejected  proxy: accepted here email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 rejected  x accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u\r",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:x\x00.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from 1.2.3.4:5 accepted tcp:" + b"x" * MAX_LINE + b":1 email: u",
        b"2026/03/01 12:00:00 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00.1234567 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
        b"2026/03/01 12:00:00 from [::1]:5 accepted udp:[::2]:53 [a ==> b] email: \xff\xfe",
    ]
)
_LINES = st.lists(
    st.one_of(
        common_records().map(format_line),
        records().map(format_line),
        _HOSTILE,
        st.binary(max_size=80),
        st.sampled_from(SAMPLES.read_bytes().splitlines()),
    ).map(lambda b: b.rstrip(b"\n").replace(b"\n", b" ")),
    max_size=60,
)


@settings(max_examples=400)
@given(_LINES, st.sampled_from([0, minute_of(T0) + 1, 10**9]))
def test_scan_equals_the_reference(lines: list[bytes], detail_since: int) -> None:
    """For any lines at all, Scanner.scan counts exactly what parse_line line by line counts."""
    chunk = b"".join(ln + b"\n" for ln in lines)
    assert scan(chunk, detail_since) == tally_lines(lines, detail_since)


@given(st.lists(common_records(), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_lines_out_of_time_order_count_the_same(records_: list[AccessRecord], rnd) -> None:  # type: ignore[no-untyped-def]
    """Shuffled lines give the same Tally as the reference, whatever their order."""
    lines = [format_line(r).rstrip(b"\n") for r in records_]
    rnd.shuffle(lines)
    chunk = b"\n".join(lines) + b"\n"
    assert scan(chunk, 0) == tally_lines(lines, 0)


def test_a_scanner_reused_across_chunks_forgets_nothing_wrong() -> None:
    """Caches carried from one chunk to the next never change what a later chunk counts."""
    scanner = Scanner()
    lines = [
        format_line(AccessRecord(T0.replace(second=s), "1.1.1.1", 5, "", True, "tcp", f"h{s % 3}",
                                 443, "in", "out", ">>", f"u{s % 4}", ""))
        for s in range(60)
    ]  # fmt: skip
    total = Tally()
    for i in range(0, 60, 7):
        total.add(scanner.scan(b"".join(lines[i : i + 7]), 0))
    assert total == tally_lines(lines, 0)


# --- the vectorised checks, one edge at a time ------------------------------------------

_HEAD = b"2026/03/01 12:00:07"
_EDGES = [
    *(
        _HEAD + b"." + b"1" * n + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u"
        for n in range(0, 8)
    ),
    b"2026/03/01 12:00:60 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    b"2026/13/01 12:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    b"2026/03/01 24:00:00 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    b"2026/03/01 12:00:0x from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    *(
        _HEAD + b" from 1.2.3.4:" + port + b" accepted tcp:x.com:443 [a >> b] email: u"
        for port in (b"0", b"65535", b"65536", b"00080", b"99999", b"123456", b"", b"1x", b"\xb0\xb0" + b"1")
    ),
    *(
        _HEAD + b" from " + src + b" accepted tcp:x.com:443 [a >> b] email: u"
        for src in (
            b"[2001:db8::1]:443",
            b"tcp:10.0.0.1:5",
            b"udp:[::1]:5",
            b"myiphere:57676",
            b"DoH",
            b"tcp:5",
            b"[bad addr]:5",
            b"a]b:5",
            b"a[b:5",
            b"a:b:5",
            b"1.2.3.4.5.6.7.8.9:5",
            b"x" * 60 + b":5",
            b"1:2:5",
            b"(1)!#$%&*+,-./:5",
            b"1.2.3.4.5.6.7.8.9.1:5",
            b"12345678:5",
            b"123456789:5",
        )
    ),
    _HEAD + b" 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    _HEAD + b" fromX 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
    _HEAD + b" from accepted tcp:x.com:443 [a >> b] email: u",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:" + b"h" * 70 + b".com:443 [a >> b] email: u",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: " + b"u" * 90,
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email:  u",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 ",
    _HEAD + b" from 1.2.3.4:5 accepted ",
    _HEAD + b" from 1.2.3.4:5 accepted",
    _HEAD + b" from 1.2.3.4:5 accepted  tcp:x.com:443 [a >> b] email: u",
    _HEAD + b" from 1.2.3.4:5 rejected  proxy/vless/encoding: invalid request user id",
    _HEAD + b" from 1.2.3.4:5 rejected tcp:x.com:99999 reason",
    _HEAD + b" from 1.2.3.4:5 rejected tcp:x.com:443 " + b"r" * MAX_LINE,
    _HEAD + b" from 1.2.3.4:5 acceptedX tcp:x.com:443 [a >> b] email: u",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u\x7f",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u\t",
    _HEAD + b" from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: \xc3\xa9\xff",
    _HEAD + b" from  1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u",
]


def test_each_edge_of_the_usual_shape_counts_as_the_reference_says() -> None:
    """Every field the vectorised path checks, at and past its edges, alone and all together."""
    for edge in _EDGES:
        assert scan(edge + b"\n") == tally_lines([edge], 0), edge
    chunk = b"".join(edge + b"\n" for edge in _EDGES)
    assert scan(chunk, 0) == tally_lines(_EDGES, 0)


def test_the_first_minutes_of_1970_count_east_of_greenwich(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A local time before the epoch in UTC (1970-01-01 in Tokyo) is still a time."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        edge = b"1970/01/01 00:00:05 from 1.2.3.4:5 accepted tcp:x.com:443 [a >> b] email: u"
        tally = scan(edge + b"\n")
        assert tally == tally_lines([edge], 0) and tally.pairs.latest() == -540
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_chunk_cut_inside_a_line_still_counts_every_byte() -> None:
    """A last line without its newline is counted too (the careful way), never dropped."""
    chunk = line(1, "a@x") + line(2, "b@x").rstrip(b"\n")
    assert scan(chunk) == tally_lines(chunk.split(b"\n"), 0)


def test_tokens_whose_hashes_collide_are_told_apart() -> None:
    """Tokens are grouped by hash, then checked byte for byte: with every hash made equal,
    the counts are still exactly the reference's."""
    scanner = Scanner()
    for tokens in (scanner._dsts, scanner._tails, scanner._addrs):
        tokens._keys[:] = 0  # every token of a kind hashes to 0
    lines = [line(s, f"u{s % 3}@x", f"h{s % 5}.org") for s in range(40)] + [
        b"2026/03/01 12:00:01 from [::%d]:5 accepted tcp:a:1 [i >> o] email: v\n" % i for i in range(3)
    ]
    assert scanner.scan(b"".join(lines), 0) == tally_lines([ln.rstrip(b"\n") for ln in lines], 0)


def test_full_token_tables_are_forgotten_without_changing_a_count(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Past the bound on remembered tokens the tables start afresh; counts do not move."""
    monkeypatch.setattr("xrayd.live.scan._CACHE_MAX", 3)
    scanner = Scanner()
    lines = [line(s, f"u{s}@x", f"h{s}.org") for s in range(50)]
    total = Tally()
    for i in range(0, 50, 5):
        total.add(scanner.scan(b"".join(lines[i : i + 5]), 0))
    assert total == tally_lines([ln.rstrip(b"\n") for ln in lines], 0)
    assert len(scanner._dsts) <= 3 + 5


def test_tables_grow_past_their_first_room_without_losing_a_token() -> None:
    """Hundreds of distinct tokens, met over several chunks, keep their meanings."""
    scanner = Scanner()
    lines = [line(s % 60, f"u{s % 150}@x", f"h{s}.example.org") for s in range(600)]
    total = Tally()
    for i in range(0, 600, 150):
        total.add(scanner.scan(b"".join(lines[i : i + 150]), 0))
    total.add(scanner.scan(b"".join(lines), 0))  # all of them again, from the tables
    reference = tally_lines([ln.rstrip(b"\n") for ln in lines], 0)
    reference.add(reference)
    assert total == reference and len(scanner._dsts) == 600


def test_a_token_is_known_again_whatever_the_longest_token_beside_it() -> None:
    """A token met in a chunk of short tokens is found again in a chunk with long ones
    (its hash must not depend on the chunk), so the tables hold each token once."""
    scanner = Scanner()
    scanner.scan(line(1, "a@x", "a.org"), 0)
    scanner.scan(line(2, "a@x", "a.org") + line(3, "a@x", "very-long-name." * 3 + "example.org"), 0)
    assert len(scanner._dsts) == 2


def test_a_large_mixed_chunk_counts_as_the_reference_says() -> None:
    """Thousands of lines of every kind in one chunk: the usual ones, every edge, the fixture
    samples, random bytes, in a random order (lines far apart share the numpy passes)."""
    rnd = random.Random(4)
    samples = SAMPLES.read_bytes().splitlines()
    pool = [line(s % 60, f"u{s % 40}@x", f"h{s % 90}.org", ip=s % 250, micro=s) for s in range(2000)]
    pool += _EDGES * 20 + samples * 10
    pool += [rnd.randbytes(rnd.randrange(80)).replace(b"\n", b" ") for _ in range(300)]
    rnd.shuffle(pool)
    lines = [ln.rstrip(b"\n") for ln in pool]
    assert scan(b"".join(ln + b"\n" for ln in lines), minute_of(T0)) == tally_lines(lines, minute_of(T0))
