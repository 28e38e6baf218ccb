"""Counting access-log lines in bulk: a Tally per chunk, by a fast path that equals the pure one.

`tally_lines` is the reference: `parse_line` on every line, then `Tally.count`. It is clear
and slow (microseconds a line). `Scanner.scan` gives the same Tally for a chunk of whole
lines several times faster, because Python's per-line cost is in objects and bytecode, not
in bytes: it splits the chunk once, cuts every line at ` accepted ` with one C call, checks
all line heads (`TIME from SRC`) with one regex over their join, and counts (minute, rest of
line) pairs with a C Counter. Only distinct rests are looked at one by one, and `parse_line`
(cached) decides what each means, so the careful parser stays the only grammar. A line that
does not fit the common shape exactly (old format, DNS, garbage, control bytes, over-long)
goes the reference way. A hypothesis test pins scan == tally_lines.

Per-user source IPs and exact last-seen times are kept only for minutes at or after
`detail_since` (live.now needs them for its window; older minutes keep connections per user
and destination), which keeps a 24-hour backfill cheap.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, islice
from operator import itemgetter, le, methodcaller
from typing import TypeVar

from xrayd.live.pairs import Pairs
from xrayd.live.parser import MAX_LINE, YEARS, is_dns_line, parse_line

Minute = int  # minutes since the Unix epoch, of the line's local time
T = TypeVar("T")

# A line head `TIME from SRC` exactly as parse_line accepts it (one at a time), and a quicker
# check of many joined heads: possessive (it may refuse an odd good head, never pass a bad
# one) and with ports over 65535 caught by a separate search.
_ONE_HEAD = re.compile(
    rb"\d{4}/\d\d/\d\d \d\d:\d\d:[0-5]\d(?:\.\d{1,6})? from "
    rb"(?:tcp:|udp:)?(?:\[[0-9A-Za-z:.%_-]+\]|[^ :\[\]\n]+):"
    rb"(?:6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[0-5]\d{4}|\d{1,4})"
)
_ALL_HEADS = re.compile(
    rb"(?:\d{4}/\d\d/\d\d \d\d:\d\d:[0-5]\d(?:\.\d{1,6})?+ from "
    rb"(?:tcp:|udp:)?+(?:\[[0-9A-Za-z:.%_-]++\]|[^ :\[\]\n]++):\d{1,5}+\n)*+"
)
_BIG_PORT = re.compile(rb":(?:6553[6-9]|655[4-9]\d|65[6-9]\d\d|6[6-9]\d{3}|[7-9]\d{4})\n")
_CONTROL = bytes(range(0x0A)) + bytes(range(0x0B, 0x20)) + b"\x7f"  # all but the newline
_KNOWN_HEAD = b"2000/01/01 00:00:00 from 0.0.0.0:0"  # rests are parsed behind a known-good head
_CACHE_MAX = 20_000  # distinct rests (or minutes, or sources) remembered; then forgotten at once

_accepted_cut = methodcaller("partition", b" accepted ")
_rejected_cut = methodcaller("partition", b" rejected ")
_first, _second, _third = itemgetter(0), itemgetter(1), itemgetter(2)
_minute_text = itemgetter(slice(0, 16))


def _minute_of_cut(cut: tuple[bytes, bytes, bytes]) -> bytes:
    return cut[0][:16]


Cut = tuple[bytes, bytes, bytes]  # (head, status word, rest of the line)


def minute_start(ts: datetime) -> int:
    """Unix time of the start of a naive local time's minute."""
    return int(ts.replace(second=0, microsecond=0).timestamp())


def minute_of(ts: datetime) -> Minute:
    """The minute bucket of a naive local time."""
    return minute_start(ts) // 60


@dataclass(eq=False)
class Tally:
    """What a run of lines adds to the live aggregates."""

    pairs: Pairs = field(default_factory=Pairs)  # connections per (minute, email, host)
    ips: Counter[tuple[Minute, str, str]] = field(default_factory=Counter)  # (minute, email, src_ip)
    rejected: Counter[Minute] = field(default_factory=Counter)
    last_seen: dict[str, float] = field(default_factory=dict)  # email -> unix time of the latest line
    unparsed: int = 0

    @property
    def conns(self) -> dict[Minute, Counter[tuple[str, str]]]:
        """The pairs as {minute: {(email, host): n}} (tests and small tallies)."""
        return self.pairs.as_dict()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tally):
            return NotImplemented
        return (self.conns, self.ips, self.rejected, self.last_seen, self.unparsed) == (
            other.conns, other.ips, other.rejected, other.last_seen, other.unparsed,
        )  # fmt: skip

    def saw(self, email: str, when: float) -> None:
        if when > self.last_seen.get(email, float("-inf")):
            self.last_seen[email] = when

    def add(self, other: Tally) -> None:
        self.pairs = Pairs.concat([self.pairs, other.pairs])
        self.ips.update(other.ips)
        self.rejected.update(other.rejected)
        for email, when in other.last_seen.items():
            self.saw(email, when)
        self.unparsed += other.unparsed


def tally_lines(lines: Iterable[bytes], detail_since: Minute) -> Tally:
    """The reference: every line through `parse_line`. Empty lines are nothing; a line that
    is neither a record nor a DNS line is `unparsed`."""
    tally = Tally()
    conns: Counter[tuple[Minute, str, str]] = Counter()
    for line in lines:
        r = parse_line(line)
        if r is None:
            if line and not is_dns_line(line):
                tally.unparsed += 1
            continue
        minute = minute_of(r.ts)
        if not r.accepted:
            tally.rejected[minute] += 1
        elif r.email is not None:
            conns[minute, r.email, r.host] += 1
            if minute >= detail_since:
                tally.ips[minute, r.email, r.src_ip] += 1
                tally.saw(r.email, r.ts.timestamp())
    tally.pairs = Pairs.from_counter(conns)
    return tally


class Scanner:
    """The fast path, with bounded caches of what `parse_line` said about distinct line parts."""

    def __init__(self) -> None:
        self._minutes: dict[bytes, int | None] = {}  # b"YYYY/MM/DD HH:MM" -> minute_start
        self._users: dict[bytes, tuple[str, str] | None] = {}  # accepted rest -> (email or "", host)
        self._rests: dict[bytes, tuple[str, str] | None] = {}  # status+rest, any shape -> same
        self._hosts: dict[bytes, str] = {}  # DST token -> host
        self._emails: dict[bytes, str] = {}  # email token -> email
        self._detours: dict[bytes, bool] = {}  # `[IN >> OUT]` -> hides no email marker
        self._sources: dict[bytes, str] = {}  # SRC without its port -> src_ip

    def scan(self, chunk: bytes, detail_since: Minute) -> Tally:
        """The Tally of a chunk of whole lines (`\\n`-separated, the last one terminated)."""
        tally = Tally()
        conns: dict[Minute, Counter[tuple[str, str]]] = {}
        lines = chunk.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        if len(chunk.translate(None, _CONTROL)) != len(chunk) or max(map(len, lines), default=0) > MAX_LINE:
            odd = [len(ln) > MAX_LINE or len(ln.translate(None, _CONTROL)) != len(ln) for ln in lines]
            tally.add(tally_lines(compress(lines, odd), detail_since))
            lines = list(compress(lines, [not o for o in odd]))

        cuts = list(map(_accepted_cut, lines))
        is_accepted = list(map(bool, map(_second, cuts)))
        accepted = self._good_heads(tally, list(compress(cuts, is_accepted)), detail_since)
        others = list(compress(lines, [not a for a in is_accepted]))
        cuts = list(map(_rejected_cut, others))
        is_rejected = list(map(bool, map(_second, cuts)))
        rejected = self._good_heads(tally, list(compress(cuts, is_rejected)), detail_since)
        tally.add(tally_lines(compress(others, [not r for r in is_rejected]), detail_since))

        pairs = zip(map(_minute_text, map(_first, rejected)), map(_third, rejected), strict=True)
        for (minute_text, rest), n in Counter(pairs).items():
            start = self._minute(minute_text)
            if start is None or self._rest(b" rejected ", rest) is None:
                tally.unparsed += n
            else:
                tally.rejected[start // 60] += n
        self._count_accepted(tally, conns, accepted, detail_since)
        tally.add(
            Tally(
                pairs=Pairs.from_counter(
                    {(m, e, h): n for m, pairs in conns.items() for (e, h), n in pairs.items()}
                )
            )
        )
        return tally

    def _good_heads(self, tally: Tally, cuts: list[Cut], detail_since: Minute) -> list[Cut]:
        """The cuts whose head is exactly `TIME from SRC`; the others go the reference way."""
        if not cuts:
            return cuts
        joined = b"\n".join(map(_first, cuts)) + b"\n"
        if _ALL_HEADS.fullmatch(joined) and not _BIG_PORT.search(joined):
            return cuts
        good = [_ONE_HEAD.fullmatch(head) is not None for head, _, _ in cuts]
        bad = (b"".join(cut) for cut, ok in zip(cuts, good, strict=True) if not ok)
        tally.add(tally_lines(bad, detail_since))
        return list(compress(cuts, good))

    def _count_accepted(
        self,
        tally: Tally,
        conns_of: dict[Minute, Counter[tuple[str, str]]],
        cuts: list[Cut],
        detail_since: Minute,
    ) -> None:
        heads = list(map(_first, cuts))
        rests = list(map(_third, cuts))
        minute_texts = list(map(_minute_text, heads))
        runs: list[tuple[bytes, int, int]] = []  # (minute text, first, last + 1) of each minute's lines
        if all(map(le, minute_texts, islice(minute_texts, 1, None))):  # in time order, the usual case
            lo = 0
            while lo < len(minute_texts):
                hi = bisect_right(minute_texts, minute_texts[lo], lo)
                runs.append((minute_texts[lo], lo, hi))
                lo = hi
        else:  # out of order: sort by minute (stably) and count as usual
            return self._count_accepted(tally, conns_of, sorted(cuts, key=_minute_of_cut), detail_since)

        users = self._users
        for minute_text, lo, hi in runs:
            start = self._minute(minute_text)
            if start is None:
                tally.unparsed += hi - lo
                continue
            minute = start // 60
            conns = conns_of.get(minute) or Counter()
            get = conns.get
            for rest, n in Counter(rests[lo:hi]).items():
                user = users.get(rest, False)
                if user is False:
                    user = self._remember(users, rest, self._user(rest))
                if user is None:
                    tally.unparsed += n
                elif user[0]:
                    conns[user] = get(user, 0) + n
            if conns:
                conns_of[minute] = conns
            if minute >= detail_since:
                self._count_details(tally, minute, start, heads[lo:hi], rests[lo:hi])

    def _count_details(
        self, tally: Tally, minute: Minute, start: int, heads: list[bytes], rests: list[bytes]
    ) -> None:
        """Source IPs and the latest line of each user, for one recent minute."""
        latest: dict[str, bytes] = {}
        for head, rest in zip(heads, rests, strict=True):
            user = self._users[rest] if rest in self._users else self._user(rest)
            if user is not None and user[0]:
                tally.ips[minute, user[0], self._source(head)] += 1
                if head > latest.get(user[0], b""):
                    latest[user[0]] = head
        for email, head in latest.items():
            tally.saw(email, _moment(start, head))

    def _minute(self, text: bytes) -> int | None:
        """minute_start of `YYYY/MM/DD HH:MM` (digits already checked), None when no such time."""
        start = self._minutes.get(text, -1)
        if start == -1:
            try:
                moment = datetime(
                    int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16])
                )
                start = minute_start(moment) if moment.year in YEARS else None
            except ValueError:
                start = None
            self._remember(self._minutes, text, start)
        return start

    def _user(self, rest: bytes) -> tuple[str, str] | None:
        """(email or "", host) of what follows ` accepted `; None when parse_line refuses it.

        The usual shape `DST [IN >> OUT] email: EMAIL` is put together from its tokens, each
        cached as meaning what parse_line says it means on its own; any other shape is parsed."""
        parts = rest.split(b" ")
        if len(parts) != 6 or parts[4] != b"email:" or not parts[5]:
            return self._rest(b" accepted ", rest)
        dst, detour, email = parts[0], b" ".join(parts[1:4]), parts[5]
        if detour not in self._detours:
            record = parse_line(_KNOWN_HEAD + b" accepted tcp:x:1 " + detour + b" email: x")
            self._remember(self._detours, detour, record is not None and record.email == "x")
        if not self._detours[detour]:
            return self._rest(b" accepted ", rest)
        host = self._hosts.get(dst)
        if host is None:
            record = parse_line(_KNOWN_HEAD + b" accepted " + dst + b" email: x")
            if record is None:
                return None
            host = self._remember(self._hosts, dst, record.host)
        name = self._emails.get(email)
        if name is None:
            record = parse_line(_KNOWN_HEAD + b" accepted tcp:x:1 email: " + email)
            assert record is not None and record.email is not None
            name = self._remember(self._emails, email, record.email)
        return name, host

    def _rest(self, status: bytes, rest: bytes) -> tuple[str, str] | None:
        """(email or "", host) of any rest, straight from parse_line (cached)."""
        key = status + rest
        user = self._rests.get(key, False)
        if user is False:
            record = parse_line(_KNOWN_HEAD + key)
            user = self._remember(
                self._rests, key, None if record is None else (record.email or "", record.host)
            )
        return user

    def _source(self, head: bytes) -> str:
        """src_ip of a head known to be good."""
        address = head.rpartition(b" from ")[2].rpartition(b":")[0]
        ip = self._sources.get(address)
        if ip is None:
            record = parse_line(_KNOWN_HEAD.partition(b" from ")[0] + b" from " + address + b":0 accepted ")
            assert record is not None
            ip = self._remember(self._sources, address, record.src_ip)
        return ip

    @staticmethod
    def _remember(cache: dict[bytes, T], key: bytes, value: T) -> T:
        """Store in a bounded cache: when full it is emptied, the simplest bound there is."""
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value
        return value


def _moment(start: int, head: bytes) -> float:
    """Unix time of a good head, computed as datetime.timestamp() does (whole seconds + µs)."""
    seconds = start + int(head[17:19])
    if head[19:20] == b".":
        micro = head[20:].partition(b" ")[0]
        return seconds + int(micro.ljust(6, b"0")) / 1e6
    return float(seconds)
