"""Made-up but realistic traffic: access-log lines for a set of users, and their counters.

Each user has one to three source addresses and a handful of favourite destinations drawn
from a long-tailed list (a few sites get most connections), and opens several connections a
minute to mostly the same places, as a browsing person does. The demo appends such lines to
the sandbox's access.log and moves the stand-in's counters to match; bench/ingest.py writes
millions of them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from xrayd.live.parser import AccessRecord, format_line
from xrayd.sandbox.standin_state import add_traffic

SITES = [
    "www.google.com", "www.youtube.com", "rr3---sn-4g5e6nsz.googlevideo.com", "i.ytimg.com",
    "api.telegram.org", "web.whatsapp.com", "www.instagram.com", "scontent.cdninstagram.com",
    "www.wikipedia.org", "github.com", "objects.githubusercontent.com", "www.netflix.com",
    "open.spotify.com", "discord.com", "cdn.discordapp.com", "www.reddit.com", "x.com",
    "chatgpt.com", "www.bbc.com", "news.ycombinator.com", "1.1.1.1", "8.8.8.8",
]  # fmt: skip
INBOUND, OUTBOUND = "vless-reality", "direct"


@dataclass
class Person:
    email: str
    ips: list[str]
    favourites: list[str]


class Crowd:
    """The users and their habits, from a seeded random generator (reproducible)."""

    def __init__(self, emails: list[str], *, seed: int = 1, sites: int = 5000) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - made-up traffic, reproducible on purpose
        self.sites = SITES + [f"cdn{n}.site{n % 997}.example.net" for n in range(max(0, sites - len(SITES)))]
        self.weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(self.sites))))
        self.people = [
            Person(
                email,
                [self._ip() for _ in range(self.rng.choice((1, 1, 2, 3)))],
                self.rng.choices(self.sites, cum_weights=self.weights, k=8),
            )
            for email in emails
        ]

    def _ip(self) -> str:
        r = self.rng.randrange
        return f"{r(1, 224)}.{r(256)}.{r(256)}.{r(1, 255)}"

    def minute(self, start: datetime, lines: int, active: float = 0.15) -> list[AccessRecord]:
        """About `lines` records in the minute from `start`, in time order: mostly users'
        connections, some probes refused, and the API's own line every 10 s."""
        rng = self.rng
        online = rng.sample(self.people, max(1, int(len(self.people) * active)))
        moments = sorted(rng.random() * 60 for _ in range(lines))
        records = []
        for n, second in enumerate(moments):
            ts = start + timedelta(seconds=second)
            roll = rng.random()
            if roll < 0.03:
                records.append(
                    _record(ts, self._ip(), False, "", None, "proxy/vless/encoding: invalid request user id")
                )
            elif n % 200 == 0:
                records.append(
                    _record(ts, "127.0.0.1", True, "127.0.0.1", None, "", inbound="api", outbound="api")
                )
            else:
                person = online[int(rng.random() * len(online))]
                if rng.random() < 0.85:
                    host = person.favourites[int(rng.random() * len(person.favourites))]
                else:
                    host = rng.choices(self.sites, cum_weights=self.weights)[0]
                ip = person.ips[int(rng.random() * len(person.ips))]
                records.append(_record(ts, ip, True, host, person.email, ""))
        return records

    def log(self, end: datetime, minutes: int, lines_per_minute: int) -> Iterator[bytes]:
        """Formatted lines for `minutes` minutes before `end`, oldest first."""
        start = end.replace(second=0, microsecond=0) - timedelta(minutes=minutes)
        for m in range(minutes):
            for record in self.minute(start + timedelta(minutes=m), lines_per_minute):
                yield format_line(record)


def _record(
    ts: datetime,
    ip: str,
    accepted: bool,
    host: str,
    email: str | None,
    reason: str,
    *,
    inbound: str = INBOUND,
    outbound: str = OUTBOUND,
) -> AccessRecord:
    return AccessRecord(
        ts, ip, 30000 + int(ts.microsecond % 35000), "", accepted, "tcp" if host else "", host,
        443 if host else None, inbound if accepted else "", outbound if accepted else "",
        ">>" if accepted else "", email, reason,
    )  # fmt: skip


class DemoTraffic:
    """Every few seconds, some of the sandbox's users open connections and move bytes."""

    def __init__(self, access_log: Path, state_dir: Path, emails: list[str], *, every: float = 2.0) -> None:
        self.access_log = access_log
        self.state_dir = state_dir
        self.crowd = Crowd(emails, seed=int(datetime.now().timestamp()), sites=200)
        self.every = every
        self._next = 0.0

    def tick(self, now: float) -> None:
        """Call often; acts once every `every` seconds."""
        if now < self._next:
            return
        self._next = now + self.every
        moment = datetime.fromtimestamp(now)
        rng = self.crowd.rng
        lines = []
        for person in self.crowd.people:
            if rng.random() < 0.6:
                for _ in range(rng.randint(1, 4)):
                    host = rng.choice(person.favourites)
                    lines.append(
                        format_line(_record(moment, rng.choice(person.ips), True, host, person.email, ""))
                    )
                add_traffic(
                    self.state_dir, person.email, rng.randint(2_000, 200_000), rng.randint(20_000, 5_000_000)
                )
        if lines:
            with self.access_log.open("ab") as f:
                f.write(b"".join(lines))
