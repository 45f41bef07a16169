"""What every venue package provides, and the parts they share.

A venue package `shared/venues/<name>/` holds the same modules:

- `rest.py`: hosts per environment, the public REST calls (instruments list, server time) and
  pure functions turning their bodies into `Instrument`s and a server time;
- `parser.py`: a pure `Parser(FrameParser)` turning the public WebSocket's frames into events;
- `feed.py`: `Feed(VenueFeed)`: which connections to open, what to subscribe on each, the
  venue's heartbeat.

Nothing here knows a venue by name: the venue's modules fill in the blanks.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import msgspec

from shared.feed import FeedStats, FrameParser
from shared.instruments import SymbolMap


class Hosts(NamedTuple):
    """A venue's REST base URL and WebSocket base URL (scheme and host, no path)."""

    rest: str
    ws: str


class VenueError(ValueError):
    """The venue answered a REST call with an error instead of data; the text is the venue's."""


class _CodeEnvelope(msgspec.Struct):
    code: str
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


_code_envelope = msgspec.json.Decoder(_CodeEnvelope, strict=False).decode


def envelope_data(body: bytes, ok_code: str, venue: str) -> msgspec.Raw:
    """`data` of a `{"code", "msg", "data"}` answer (OKX, Bitget, KuCoin); VenueError unless
    `code` is the venue's success code."""
    env = _code_envelope(body)
    if env.code != ok_code:
        raise VenueError(f"{venue} code {env.code}: {env.msg}")
    return env.data


class NoSuchEnvironment(ValueError):
    """The venue has no endpoints for the configured VENUE_ENV."""


def resolve_hosts(venue: str, table: Mapping[str, Hosts], env: str, sim: str,
                  override: Hosts | None = None) -> Hosts:
    """The hosts to use: an explicit override, the simulator at `sim` (host:port), or the
    venue's own for `env`. Public market data of `demo` is mainnet's on every venue."""
    if override is not None:
        return override
    if env == "sim":
        return Hosts(f"http://{sim}", f"ws://{sim}")
    env = "mainnet" if env == "demo" else env
    if env not in table:
        raise NoSuchEnvironment(f"{venue} has no {env} endpoints; use one of: sim, {', '.join(sorted(table))}")
    return table[env]


@dataclass(frozen=True)
class RestCall:
    """One public REST request, relative to the venue's REST base."""

    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Mapping[str, object] | None = None  # a POST body; GET when None

    @property
    def method(self) -> str:
        return "GET" if self.json is None else "POST"


@dataclass(frozen=True)
class Connection:
    """One WebSocket to open and the topics to subscribe on it."""

    label: str  # names it in logs and metrics, e.g. "public"
    url: str
    topics: list[str]


def split_connections(label: str, url: str, groups: list[list[str]], max_topics: int | None = None,
                      max_chars: int | None = None, extra: tuple[str, ...] = ()) -> list[Connection]:
    """One socket's worth of topics after another, within the venue's limits per connection:
    `max_topics` topics, or `max_chars` characters of topic names (Bybit's args). Each group
    (one symbol's topics) stays on one socket; `extra` (venue-wide topics) go on the first. One
    connection keeps `label`; several are `label`, `label-2` ..."""
    chunks: list[list[str]] = [list(extra)]
    for group in groups:
        current = chunks[-1]
        if current and ((max_topics and len(current) + len(group) > max_topics)
                        or (max_chars and sum(map(len, current)) + sum(map(len, group)) > max_chars)):
            chunks.append(current := [])
        current.extend(group)
    return [Connection(label if i == 0 else f"{label}-{i + 1}", url, topics) for i, topics in enumerate(chunks)]


class VenueFeed:
    """A venue's public market data: connections, subscribe requests, heartbeat, parser.

    Subclasses set the class attributes and `connections`; the defaults cover a venue whose
    topics all go on one socket and that resubscribes by unsubscribing and subscribing."""

    name: ClassVar[str]
    snapshot_key_prefix: ClassVar[str]  # e.g. "okx:swap:tickers": the seed's key schema
    ping_interval_s: ClassVar[float | None] = 20.0  # None: the venue pings us
    messages_per_s: ClassVar[float | None] = None  # subscribe requests sent at most this fast per connection
    parser: ClassVar[type[FrameParser]]

    def __init__(self, symbols: SymbolMap, hosts: Hosts, book_levels: int = 25) -> None:
        self.symbols = symbols
        self.hosts = hosts
        self.book_levels = book_levels
        self._ids = itertools.count(1)  # request ids, for venues that echo them

    def connections(self) -> list[Connection]:
        raise NotImplementedError

    async def resolve_url(self, connection: Connection) -> str:
        """The URL to open now; a venue that hands out per-connection tokens asks for one here
        (raising RestError or VenueError, which count as a failed connect)."""
        return connection.url

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        raise NotImplementedError

    def resubscribe_messages(self, topic: str) -> list[str]:
        return self.subscribe_messages([topic], "unsubscribe") + self.subscribe_messages([topic])

    def ping_message(self) -> str | None:
        return None

    def new_parser(self, stats: FeedStats | None = None) -> FrameParser:
        return self.parser(self.symbols, self.book_levels, stats)
