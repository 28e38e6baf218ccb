"""Counting access-log lines in bulk: a Tally per chunk, by a vectorised path that equals the pure one.

`tally_lines` is the reference: `parse_line` on every line. It is clear and slow (microseconds
a line). `Scanner.scan` gives the same Tally for a chunk of whole lines without a Python
object per line, because in a busy log almost every line is a new (minute, user, destination)
and Python's cost is in objects, not bytes. numpy finds every line's spaces and checks the
fixed parts of the usual shape

    YYYY/MM/DD HH:MM:SS[.ffffff] [from ]SRC:PORT accepted|rejected DST[ TAIL]

column by column; the three free tokens (SRC's address, DST, TAIL) are read as 64-bit words,
hashed, grouped, and checked byte for byte against a table of tokens met before. What a
token means (a host, an email, valid or not) is asked of `parse_line` once per distinct token,
so the careful parser stays the only grammar. A line that does not fit exactly (another
shape, a DNS line, garbage, control bytes, an over-long token, a token whose bytes do not
check) goes the reference way. A hypothesis test pins scan == tally_lines.

Per-user source IPs and exact last-seen times are kept only for minutes at or after
`detail_since` (live.now needs them for its window; older minutes keep connections per user
and destination), which keeps a 24-hour backfill cheap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat

import numpy as np

from xrayd.live.pairs import Pairs
from xrayd.live.parser import MAX_LINE, YEARS, is_dns_line, parse_line

Minute = int  # minutes since the Unix epoch, of the line's local time

_KNOWN_HEAD = b"2000/01/01 00:00:00 from 0.0.0.0:0"  # tokens are parsed behind a known-good head
_CACHE_MAX = 20_000  # distinct tokens of a kind remembered; then all are forgotten at once
_PAD = 128  # zero bytes after a chunk, so that word reads past a token's end stay in the buffer
_ADDR_WORDS, _DST_WORDS, _TAIL_WORDS = 6, 8, 12  # longest tokens taken, in 8-byte words
_INVALID = -2  # a token that makes the line no record
_MISFIT = -3  # a token whose bytes do not match the table: the line goes the reference way


def _word(text: bytes) -> int:
    """Up to 8 bytes as the little-endian number a word read of them gives."""
    return int.from_bytes(text.ljust(8, b"\0"), "little")


def _every(byte: int) -> np.uint64:
    return np.uint64(byte * 0x0101010101010101)


_LOW7, _HIGH = _every(0x7F), _every(0x80)
_ZEROES = _every(0x30)  # ASCII "0" in every byte
_PLUS = _every(0x76)  # 0..9 + 0x76 stays below 0x80, 10..0x7F + 0x76 does not
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)  # the first n bytes
_SHIFT = np.uint64(31)  # folds a word's high bits into its low ones before words are summed


def _digits(words: np.ndarray, where: np.ndarray | int) -> np.ndarray:
    """Whether the bytes of each word picked by `where` (0xFF per byte) are ASCII digits.
    A carry out of a failing byte can only make the byte above it fail too: never wrongly true."""
    where = np.uint64(where) if isinstance(where, int) else where
    d = (words ^ _ZEROES) & where
    return (((d + (_PLUS & where)) | d) & (_HIGH & where)) == 0


def _below(words: np.ndarray, limit: int, where: np.ndarray) -> np.ndarray:
    """Whether every byte of each word picked by `where` is below `limit` (exact: a byte
    under 0x80 plus 0x80 - limit reaches bit 7 only when it is at least `limit`)."""
    return ((((words & where & _LOW7) + (_every(0x80 - limit) & where)) | (words & where)) & _HIGH) == 0


# A source address of bytes below ":" only (digits, dots, and the like: any IPv4) is valid as
# it stands; the first and second word of one of 1 to 16 bytes, by `length & 31`.
_ADDR_MASKS = [
    np.array([_MASKS[min(max(n - 8 * j, 0), 8)] if 1 <= n <= 16 else 0 for n in range(32)], dtype=np.uint64)
    for j in (0, 1)
]
_MICRO_MASKS = _MASKS[np.arange(8)]  # by `digits & 7`; only 1 to 6 digits are ever let through


# The line head `YYYY/MM/DD HH:MM:SS` in three words: which bytes are digits, which are fixed.
_HEAD = [
    (_word(b"\xff" * 4 + b"\0" + b"\xff" * 2), _word(b"\0" * 4 + b"\xff" + b"\0\0\xff"), _word(b"0000/00/")),
    (_word(b"\xff\xff\0\xff\xff\0\xff\xff"), _word(b"\0\0\xff\0\0\xff"), _word(b"00 00:00")),
    (_word(b"\0\xff\xff"), _word(b"\xff"), _word(b":")),
]
_FROM = _word(b" from")
_ACCEPTED, _REJECTED = _word(b"accepted"), _word(b"rejected")
_PORT_MAX = int.from_bytes(b"65535", "big")
_TOP = [np.uint64(_word(b"\0" * (8 - j) + b"\x80" * j)) for j in range(1, 7)]  # top j bytes' high bits


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


class _Names:
    """Strings numbered in the order met (emails, hosts, source IPs)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def number(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i


class _Tokens:
    """Distinct tokens of one kind as columns of 64-bit words, each with what `parse_line`
    makes of it: a number (a name's index) or _INVALID. Tokens are grouped by a keyed hash of
    their words and length (the same whatever the chunk's longest token), then compared word
    for word with the table, so a collision (or a crafted one) sends a line the reference way
    and never miscounts it. Tokens hold no NUL byte (control bytes are refused first), so
    equal words mean equal tokens."""

    def __init__(self, words: int, meaning: Callable[[bytes], int]) -> None:
        self.words = words
        self._meaning = meaning
        self._keys = np.random.default_rng().integers(1, 2**62, size=words + 1, dtype=np.uint64) * 2 + 1
        # The mask of word j of a token of length n: _MASKS[min(max(n - 8j, 0), 8)].
        self._masks = _MASKS[np.clip(np.arange(8 * words + 1)[None, :] - 8 * np.arange(words)[:, None], 0, 8)]
        self._ids: dict[int, int] = {}  # hash -> column
        self._table = np.zeros((words, 64), dtype=np.uint64)  # grows by doubling; len(_ids) used
        self._meanings = np.zeros(64, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def meanings(self, words: np.ndarray, buf: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """What each token means; _MISFIT for one too long or whose bytes are not the table's."""
        out = np.full(starts.size, _MISFIT, dtype=np.int64)
        fits = np.flatnonzero(lengths <= 8 * self.words)
        if not fits.size:
            return out
        starts, lengths = starts[fits], lengths[fits]
        width = int(lengths.max() + 7) // 8
        rows = np.empty((width, starts.size), dtype=np.uint64)
        hashes = lengths.astype(np.uint64) * self._keys[-1]
        for j in range(width):
            rows[j] = words[starts + 8 * j] & self._masks[j][lengths]
            mixed = rows[j] * self._keys[j]
            hashes += mixed ^ (mixed >> _SHIFT)  # a zero word adds nothing: the width is free
        found, inverse = np.unique(hashes, return_inverse=True)
        ids = np.fromiter(map(self._ids.get, found.tolist(), repeat(-1)), np.int64, found.size)
        new = np.flatnonzero(ids < 0)
        if new.size:
            self._learn(buf, found[new], ids, new, inverse, rows, starts, lengths)
        ids = ids[inverse]
        mine = self._meanings[ids]
        mine[(rows != self._table[:width, ids]).any(axis=0)] = _MISFIT
        out[fits] = mine
        return out

    def _learn(
        self, buf: bytes, hashes: np.ndarray, ids: np.ndarray, new: np.ndarray, inverse: np.ndarray,
        rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
    ) -> None:  # fmt: skip
        """Add the tokens of hashes not met before (the first line of each is its sample)."""
        first = np.empty(ids.size, dtype=np.int64)
        first[inverse[::-1]] = np.arange(inverse.size - 1, -1, -1)
        lines = first[new]
        base = len(self._ids)
        ids[new] = np.arange(base, base + new.size)
        self._ids.update(zip(hashes.tolist(), ids[new].tolist(), strict=True))
        if len(self._ids) > self._meanings.size:  # double the room
            more = 2 * len(self._ids) - self._meanings.size
            self._table = np.concatenate([self._table, np.zeros((self.words, more), np.uint64)], axis=1)
            self._meanings = np.concatenate([self._meanings, np.zeros(more, np.int64)])
        self._table[: rows.shape[0], base : base + new.size] = rows[:, lines]
        cuts = map(slice, starts[lines].tolist(), (starts[lines] + lengths[lines]).tolist())
        meanings = map(self._meaning, map(buf.__getitem__, cuts))
        self._meanings[base : base + new.size] = np.fromiter(meanings, np.int64, new.size)


@dataclass
class _Lines:
    """The lines of a chunk that have the usual shape, as columns (one entry per line)."""

    keep: np.ndarray  # indices of these lines among the chunk's lines
    start: np.ndarray  # byte offset of each line
    accepted: np.ndarray  # bool; else rejected
    minute_key: np.ndarray  # the digits of YYYY/MM/DD HH:MM, packed
    addr: tuple[np.ndarray, np.ndarray]  # (start, length) of SRC without its port
    plain_addr: np.ndarray  # bool: an address that is valid as it stands (no table needed)
    dst: tuple[np.ndarray, np.ndarray]
    tail: tuple[np.ndarray, np.ndarray]


def _usual_lines(a: np.ndarray, words: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, _Lines]:
    """Where the chunk's lines start and end, and those of the usual shape, checked but for
    their free tokens."""
    body = a[:size]
    low = np.flatnonzero(body <= 32)
    kinds = body[low]
    ends = low[kinds == 10]
    is_space = kinds == 32
    spaces = np.full(np.count_nonzero(is_space) + 8, size, dtype=low.dtype)  # padded: first + n < len
    np.compress(is_space, low, out=spaces[:-8])
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    ok = (ends - starts <= MAX_LINE) & (ends - starts >= 26)  # 26: the shortest usual line
    controls = low[(kinds != 10) & (kinds != 32)]
    if controls.size:
        ok[np.searchsorted(ends, controls)] = False
    if body.max(initial=0) >= 0x7F:  # DEL is a control byte; anything higher is fine
        ok[np.searchsorted(ends, np.flatnonzero(body == 0x7F))] = False
    before = np.searchsorted(spaces, ends)  # spaces before each line's end
    first = np.empty_like(before)
    first[:1] = 0
    first[1:] = before[:-1]
    count = before - first
    ok &= count >= 4
    keep = np.flatnonzero(ok)
    if keep.size == ok.size:
        start, end = starts, ends
    else:
        start, first, count, end = starts[keep], first[keep], count[keep], ends[keep]

    def space(n: np.ndarray | int) -> np.ndarray:  # the n-th space of each line
        return spaces[first + n]

    head = [words[start], words[start + 8], words[start + 16]]
    good = np.ones(keep.size, dtype=bool)
    for w, (digit, fixed, text) in zip(head, _HEAD, strict=True):
        good &= _digits(w, digit) & ((w & np.uint64(fixed)) == np.uint64(text & fixed))
    good &= (head[2] >> np.uint64(8)) & np.uint64(0xFF) <= ord("5")
    time_end = space(1)
    micro = time_end - start - 20  # digits after the dot; -1 when there is no dot
    good &= (micro == -1) | (
        (micro >= 1)
        & (micro <= 6)
        & (a[start + 19] == 46)
        & _digits(words[start + 20], _MICRO_MASKS[micro & 7])
    )
    from_end = space(2)
    has_from = (from_end - time_end == 5) & ((words[time_end] & _MASKS[5]) == np.uint64(_FROM))
    f = has_from.astype(np.int64)
    src_end, status_end = space(2 + f), space(3 + f)
    status = words[src_end + 1]
    accepted = status == np.uint64(_ACCEPTED)
    good &= (count >= 4 + f) & (status_end - src_end == 9) & (accepted | (status == np.uint64(_REJECTED)))
    # The port: 1 to 5 digits after SRC's last colon, at most 65535.
    port = words[src_end - 8]
    d = port ^ _ZEROES
    not_digit = ((d + _PLUS) | d) & _HIGH
    run = sum(((not_digit & t) == 0).astype(np.int64) for t in _TOP)
    colon = src_end - run - 1
    good &= (run >= 1) & (run <= 5) & (a[colon] == 58)
    good &= (run < 5) | ((port.byteswap() & _MASKS[5]) <= np.uint64(_PORT_MAX))
    src_start = np.where(has_from, from_end, time_end) + 1
    addr_len = colon - src_start
    plain = (addr_len >= 1) & (addr_len <= 16)
    for j, masks in enumerate(_ADDR_MASKS):
        plain &= _below(words[src_start + 8 * j], ord(":"), masks[addr_len & 31])
    has_tail = count >= 5 + f
    dst_start = status_end + 1
    dst_end = np.where(has_tail, space(4 + f), end)
    tail_start = np.where(has_tail, dst_end + 1, end)
    x0 = (head[0] ^ _ZEROES) & np.uint64(_HEAD[0][0])
    x1 = (head[1] ^ _ZEROES) & np.uint64(_HEAD[1][0])
    g = np.flatnonzero(good) if not good.all() else slice(None)
    lines = _Lines(
        keep=keep[g],
        start=start[g],
        accepted=accepted[g],
        minute_key=(x0 | (x1 << np.uint64(4)))[g],
        addr=(src_start[g], addr_len[g]),
        plain_addr=plain[g],
        dst=(dst_start[g], (dst_end - dst_start)[g]),
        tail=(tail_start[g], (end - tail_start)[g]),
    )
    return starts, ends, lines


class Scanner:
    """The fast path, with bounded tables of the tokens it has met."""

    def __init__(self) -> None:
        self._minutes: dict[
            int, int | None
        ] = {}  # packed minute digits -> minute_start, None if no such time
        self._reset()

    def _reset(self) -> None:
        self._emails, self._hosts, self._ips = _Names(), _Names(), _Names()
        self._addrs = _Tokens(_ADDR_WORDS, self._addr_meaning)
        self._dsts = _Tokens(_DST_WORDS, self._dst_meaning)
        self._tails = _Tokens(_TAIL_WORDS, self._tail_meaning)
        self._minutes.clear()

    def _addr_meaning(self, addr: bytes) -> int:
        record = parse_line(_KNOWN_HEAD.partition(b" from ")[0] + b" from " + addr + b":0 accepted ")
        return _INVALID if record is None else self._ips.number(record.src_ip)

    def _dst_meaning(self, dst: bytes) -> int:
        record = parse_line(_KNOWN_HEAD + b" accepted " + dst)
        return _INVALID if record is None else self._hosts.number(record.host)

    def _tail_meaning(self, tail: bytes) -> int:
        record = parse_line(_KNOWN_HEAD + b" accepted tcp:x:1 " + tail)
        assert record is not None  # a tail never makes a line invalid
        return -1 if record.email is None else self._emails.number(record.email)

    def scan(self, chunk: bytes, detail_since: Minute) -> Tally:
        """The Tally of a chunk of whole lines (`\\n`-separated, the last one terminated)."""
        cut = chunk.rfind(b"\n") + 1
        if cut < len(chunk):  # not a whole line: the careful way
            return self._with_odd(self.scan(chunk[:cut], detail_since), [chunk[cut:]], detail_since)
        if not chunk:
            return Tally()
        if max(len(self._addrs), len(self._dsts), len(self._tails), len(self._minutes)) > _CACHE_MAX:
            self._reset()
        buf = chunk + bytes(_PAD + (-len(chunk)) % 8)
        a = np.frombuffer(buf, np.uint8)
        words = np.lib.stride_tricks.as_strided(
            np.frombuffer(buf, "<u8"), shape=(len(buf) - 7,), strides=(1,), writeable=False
        )
        starts, ends, lines = _usual_lines(a, words, len(chunk))

        start_of_key, real, minute_i = self._minute_starts(lines.minute_key)
        minute_of_key = start_of_key // 60
        minute = minute_of_key[minute_i]
        addr = np.full(lines.start.size, -1, dtype=np.int64)
        table = np.flatnonzero(~lines.plain_addr)
        addr[table] = self._addrs.meanings(words, buf, lines.addr[0][table], lines.addr[1][table])
        dst = self._dsts.meanings(words, buf, *lines.dst)
        acc = np.flatnonzero(lines.accepted)
        tail = np.full(lines.start.size, -1, dtype=np.int64)
        tail[acc] = self._tails.meanings(words, buf, lines.tail[0][acc], lines.tail[1][acc])

        misfit = (addr == _MISFIT) | (dst == _MISFIT) | (tail == _MISFIT)
        valid = ~misfit & real[minute_i] & (addr != _INVALID) & (dst != _INVALID)
        tally = Tally(unparsed=int((~misfit & ~valid).sum()))
        rejected = valid & ~lines.accepted
        if rejected.any():
            found, n = np.unique(minute[rejected], return_counts=True)
            tally.rejected.update(dict(zip(found.tolist(), n.tolist(), strict=True)))
        counted = np.flatnonzero(valid & lines.accepted & (tail >= 0))
        tally.pairs = Pairs.of_lines(
            minute_i[counted],
            minute_of_key,
            tail[counted],
            dst[counted],
            self._emails.names,
            self._hosts.names,
        )
        recent = counted[minute[counted] >= detail_since]
        if recent.size:
            self._count_details(tally, buf, lines, recent, start_of_key[minute_i], tail, addr)

        odd = np.ones(starts.size, dtype=bool)
        odd[lines.keep[~misfit]] = False
        odd_lines = [chunk[s:e] for s, e in zip(starts[odd].tolist(), ends[odd].tolist(), strict=True)]
        return self._with_odd(tally, odd_lines, detail_since)

    @staticmethod
    def _with_odd(tally: Tally, odd: list[bytes], detail_since: Minute) -> Tally:
        if odd:
            tally.add(tally_lines(odd, detail_since))
        return tally

    def _minute_starts(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """minute_start of each distinct key, whether that local time exists, and each line's
        index into them."""
        found, inverse = np.unique(keys, return_inverse=True)
        starts = [self._minutes[k] if k in self._minutes else self._minute(k) for k in found.tolist()]
        real = np.array([s is not None for s in starts], dtype=bool)
        return np.array([s or 0 for s in starts], dtype=np.int64), real, inverse

    def _minute(self, key: int) -> int | None:
        start = self._minutes[key] = _minute_start_of(key)
        return start

    def _count_details(
        self, tally: Tally, buf: bytes, lines: _Lines, rows: np.ndarray,
        start: np.ndarray, email: np.ndarray, addr: np.ndarray,
    ) -> None:  # fmt: skip
        """Source IPs and the latest line of each user, for the recent minutes (line by line:
        they are few in a backfill, and arrive a few at a time when following the log)."""
        emails, ips = self._emails.names, self._ips.names
        plain: dict[bytes, str] = {}
        latest: dict[int, tuple[int, bytes, int]] = {}  # email -> (minute_start, SS[.ffffff], line start)
        columns = (
            lines.start[rows],
            email[rows],
            addr[rows],
            lines.addr[0][rows],
            lines.addr[1][rows],
            start[rows],
        )
        for s, e, ip_i, lo, n, minute_start in zip(*(c.tolist() for c in columns), strict=True):
            if ip_i >= 0:
                ip = ips[ip_i]
            else:
                raw = buf[lo : lo + n]
                ip = plain.get(raw) or plain.setdefault(raw, raw.decode("utf-8", "replace"))
            tally.ips[minute_start // 60, emails[e], ip] += 1
            when = (minute_start, buf[s + 17 : s + 26], s)  # "SS.ffffff" sorts as the time does
            if when > latest.get(e, (-1 << 62, b"", 0)):
                latest[e] = when
        for e, (minute_start, _, s) in latest.items():
            second = buf[s + 17 : buf.index(b" ", s + 17)]  # SS or SS.ffffff
            micro = int(second[3:].ljust(6, b"0")) / 1e6 if len(second) > 2 else 0
            tally.saw(emails[e], minute_start + int(second[:2]) + micro)


def _minute_start_of(key: int) -> int | None:
    """minute_start of packed YYYY/MM/DD HH:MM digits, None when there is no such local time."""
    b = key.to_bytes(8, "little")
    lo = [x & 15 for x in b]
    hi = [x >> 4 for x in b]
    try:
        moment = datetime(
            lo[0] * 1000 + lo[1] * 100 + lo[2] * 10 + lo[3], lo[5] * 10 + lo[6],
            hi[0] * 10 + hi[1], hi[3] * 10 + hi[4], hi[6] * 10 + hi[7],
        )  # fmt: skip
    except ValueError:
        return None
    return minute_start(moment) if moment.year in YEARS else None
