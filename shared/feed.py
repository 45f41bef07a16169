"""What every venue parser returns besides events, and how it counts what it skipped.

A parser is pure: `feed(raw, receive_ts_us)` returns market events and control items
(`SubscribeResult`, `Pong`, `Resync`). Bad input never raises out of `feed`: it is counted in
`FeedStats` by kind, logged the first time that kind is seen, and skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("arb.feed")


@dataclass(frozen=True)
class SubscribeResult:
    """The venue's answer to a subscribe request."""

    success: bool
    message: str
    req_id: str = ""


@dataclass(frozen=True)
class Pong:
    """The venue answered our heartbeat."""


@dataclass(frozen=True)
class Resync:
    """A stream lost continuity (sequence gap, delta before snapshot): resubscribe `topic`."""

    topic: str
    reason: str


Control = SubscribeResult | Pong | Resync


@dataclass
class FeedStats:
    """Counters of one feed: messages in, events out, what was ignored or failed, and gaps."""

    venue: str
    messages: int = 0
    events: int = 0
    gaps: int = 0
    awaiting_snapshot: int = 0  # deltas dropped between a resync request and its snapshot
    ignored: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def ignore(self, kind: str) -> None:
        if not self.ignored[kind]:
            log.info("%s: ignoring %s messages (not a subscribed kind)", self.venue, kind)
        self.ignored[kind] += 1

    def error(self, kind: str, detail: str, raw: bytes | str = b"") -> None:
        if not self.errors[kind]:
            sample = raw[:200] if raw else b""
            log.warning("%s: skipped %s: %s; sample %r (further ones are counted, not logged)",
                        self.venue, kind, detail, sample)
        self.errors[kind] += 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())
