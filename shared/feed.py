"""What every venue parser returns besides events, and how it counts what it skipped.

A parser is pure: `feed(raw, receive_ts_us)` returns market events and control items
(`SubscribeResult`, `Pong`, `Resync`). Bad input never raises out of `feed`: it is counted in
`FeedStats` by kind, logged the first time that kind is seen, and skipped. A frame that gives
nothing and was not counted otherwise (a message with an empty data list) is counted as
ignored `empty_{kind}`; an error the parser did not foresee is counted as `parser_error` and
logged with its traceback the first time, so a parser bug costs one frame, not the feed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from math import isfinite
from typing import TYPE_CHECKING, ClassVar

import msgspec

if TYPE_CHECKING:
    from shared.events import MarketEvent
    from shared.instruments import Instrument, SymbolMap

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
    noted: int = 0  # ignored + errors + awaiting_snapshot: whether a frame that gave nothing was counted

    def ignore(self, kind: str) -> None:
        if not self.ignored[kind]:
            log.info("%s: ignoring %s messages (not a subscribed kind, or empty)", self.venue, kind)
        self.ignored[kind] += 1
        self.noted += 1

    def error(self, kind: str, detail: str, raw: bytes | str = b"") -> None:
        self.noted += 1
        if not self.errors[kind]:
            sample = raw[:200] if raw else b""
            log.warning("%s: skipped %s: %s; sample %r (further ones are counted, not logged)",
                        self.venue, kind, detail, sample)
        self.errors[kind] += 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


class BadValue(ValueError):
    """A field that is present but not a usable number, enum or symbol."""


def number(text: str | None, name: str, low: float = 0.0, positive: bool = False) -> float | None:
    """A venue numeric string as a float (empty or None: not sent); refused below `low`, and
    at 0 when `positive`. Funding rates pass `low=-inf`."""
    if not text:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadValue(f"{name}={text!r} is not a number") from None
    if not isfinite(value) or value < low or (positive and not value):
        raise BadValue(f"{name}={text!r} is out of range")
    return value


def amount(value: float, name: str) -> float:
    """A size or amount the venue sent as a JSON number: finite and >= 0, else BadValue."""
    if not (isfinite(value) and value >= 0):
        raise BadValue(f"{name}={value!r} is out of range")
    return value


def check_fill(price: float, size: float) -> None:
    if not (isfinite(price) and isfinite(size)) or price <= 0 or size <= 0:
        raise BadValue(f"price {price} / size {size} is out of range")


def enum(table: dict[str, str], text: str, name: str) -> str:
    try:
        return table[text]
    except KeyError:
        raise BadValue(f"{name}={text!r} is not one of {sorted(table)}") from None


class FrameParser:
    """The frame loop every venue parser shares: count the frame, parse it, count its events,
    and turn any bad input into a counted skip.

    A subclass implements `parse(raw, receive_ts_us)`; before parsing a channel's payload it
    sets `self.kind` (e.g. "ticker") so a failure is counted as `bad_ticker`. Venue symbols go
    through `instrument()`, which maps them to the canonical name and size unit."""

    venue = ""
    resync_again_after = 500  # deltas without the requested snapshot before asking again

    def __init__(self, symbols: SymbolMap, book_levels: int = 25, stats: FeedStats | None = None) -> None:
        self.symbols = symbols
        self.book_levels = book_levels
        self.stats = stats or FeedStats(self.venue)
        self.kind = ""
        self._awaiting: dict[str, int] = {}  # topic -> deltas dropped since asking for a snapshot

    def feed(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        """Parse one frame; bad input is counted in `stats` and gives `[]`."""
        stats = self.stats
        stats.messages += 1
        self.kind = ""
        noted = stats.noted
        try:
            out = self.parse(raw, receive_ts_us)
        except (msgspec.DecodeError, msgspec.ValidationError, BadValue) as exc:
            stats.error(f"bad_{self.kind}" if self.kind else "malformed_message", str(exc), raw)
            return []
        except Exception as exc:  # a parser bug: one frame lost, counted, the feed goes on
            if not stats.errors["parser_error"]:
                log.exception("%s: parser error on %s; sample %r", self.venue, self.kind or "a frame", raw[:200])
            stats.error("parser_error", f"{type(exc).__name__}: {exc}", raw)
            return []
        if not out and noted == stats.noted:
            stats.ignore(f"empty_{self.kind or 'message'}")
        stats.events += sum(1 for item in out if hasattr(item, "TYPE"))
        return out

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        raise NotImplementedError

    _HANDLERS: ClassVar[dict] = {}  # channel -> method(self, payload, receive_ts_us)

    def dispatch(self, channel: str, payload, receive_ts_us: int) -> list[MarketEvent | Control]:
        """Hand `payload` to the channel's handler; a channel not handled is counted as ignored."""
        handler = self._HANDLERS.get(channel)
        if handler is None:
            self.stats.ignore(channel or "unknown")
            return []
        self.kind = channel
        return handler(self, payload, receive_ts_us)

    def forget(self, topic: str) -> None:
        """Drop what is kept for `topic`: a resubscribe is on its way, wait for its snapshot."""
        self._awaiting.setdefault(topic, 0)

    def resync(self, topic: str, kind: str, reason: str) -> list[Control]:
        """Ask once for a fresh snapshot of `topic` (counting `kind` as an error when given);
        until it comes, drop deltas, asking again every `resync_again_after` of them."""
        waited = self._awaiting.get(topic)
        if waited is not None and waited < self.resync_again_after:
            self._awaiting[topic] = waited + 1
            self.stats.awaiting_snapshot += 1
            self.stats.noted += 1
            return []
        self._awaiting[topic] = 0
        if kind:
            self.stats.error(kind, f"{topic}: {reason}")
        return [Resync(topic, reason)]

    def snapshot_arrived(self, topic: str) -> None:
        self._awaiting.pop(topic, None)

    def instrument(self, venue_symbol: str) -> Instrument:
        inst = self.symbols.from_venue(venue_symbol)
        if inst is None:
            raise BadValue(f"symbol {venue_symbol!r} is not one this feed maps")
        return inst
