"""The ingestor: one venue's public WebSockets -> normalized events -> capped Redis Streams.

At start it reads the venue's instruments list (REST) to map the canonical symbols asked for
to the venue's names and size units; a symbol the venue does not list stops it with a clear
error. Then it opens the venue's connections (Binance: two), and every event goes to the
`md:*` stream of its symbol's shard (`md:{0}:tickers` ..., shared/shards.py; XADD MAXLEN ~);
ticker fields also go to the venue's snapshot hash (`okx:swap:tickers:{symbol}`), where each
field holds the newest value the venue sent. On stop
the sockets close first, then everything already received is flushed.

With SYMBOLS_TO_TRADE=all (universe mode, shared/universe.py) the symbols are those this venue
lists among every USDT perpetual listed on two or more UNIVERSE_VENUES; the lists are read
again every UNIVERSE_REFRESH_S, and a change reconnects this venue's sockets on the new set
(a listed symbol picked up, a delisted one dropped). Its subscriptions are spread over as many
connections as the venue's limits per connection ask for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from functools import partial

import aiohttp
from prometheus_client import CollectorRegistry

from shared import metrics, redis_io
from shared.bus import StreamWriter
from shared.codec import to_fields
from shared.events import MarketEvent
from shared.feed import FeedStats
from shared.instruments import SymbolMap
from shared.metrics import LatencyHistogram
from shared.rest import fetch
from shared.settings import UNIVERSE, Settings
from shared.universe import Listings
from shared.venues import Venue, venue
from shared.venues.protocol import Hosts, resolve_hosts
from shared.ws import Backoff, SessionStats, Stopped, run_feed, unless_stopped

log = logging.getLogger("arb.ingest")


@dataclass(frozen=True)
class IngestReport:
    """Totals of one run, for the closing log line and for tests."""

    received: int
    events: int
    pushed: int
    superseded: int
    dropped: int
    parse_errors: int
    write_errors: int
    gaps: int
    connects: int
    p50_us: float | None
    p99_us: float | None

    def line(self) -> str:
        lat = "n/a" if self.p50_us is None else f"{self.p50_us:.0f}/{self.p99_us:.0f} us"
        return (f"received {self.received} msgs, parsed {self.events} events, pushed {self.pushed}, "
                f"superseded books {self.superseded}, dropped {self.dropped}, parse errors {self.parse_errors}, "
                f"write errors {self.write_errors}, book gaps {self.gaps}, connects {self.connects}, "
                f"ws->stream p50/p99 {lat}")


def venue_hosts(settings: Settings, v: Venue) -> Hosts:
    """Where `v`'s public data comes from under these settings (NoSuchEnvironment if nowhere)."""
    override = settings.venue_hosts.get(v.name)
    return resolve_hosts(v.name, v.rest.HOSTS, settings.venue_env, settings.sim_address,
                         Hosts(*override) if override else None)


async def load_symbols(v: Venue, hosts: Hosts, http: aiohttp.ClientSession) -> SymbolMap:
    """The venue's live perpetuals from its instruments list; raises RestError or VenueError."""
    bodies = [await fetch(http, hosts.rest, call) for call in v.rest.INSTRUMENTS]
    return SymbolMap(v.name, v.instruments(bodies))


def listings(settings: Settings, venues: list[str]) -> Listings:
    """The instruments lists of `venues` on these settings' hosts."""
    return Listings(venues, lambda name, http: load_symbols(venue(name), venue_hosts(settings, venue(name)), http))


class Ingestor:
    """Runs one venue's feed into Redis; counters are plain ints read by `report()`.

    `instruments` skips the REST instruments call (tests and replays pass the venue's list)."""

    def __init__(self, settings: Settings, venue_name: str, symbols: list[str],
                 instruments: SymbolMap | None = None) -> None:
        self.settings = settings
        self.venue = venue(venue_name)
        self.hosts = venue_hosts(settings, self.venue)
        self.symbols = symbols
        self.universe = symbols == [UNIVERSE]
        self.instruments = instruments
        self.universe_changes = 0  # universe mode: how often the symbol set changed while running
        self._next: SymbolMap | None = None  # the symbols the next connections carry (a universe change)
        self.feed_stats = FeedStats(venue_name)
        self.sessions: defaultdict[str, SessionStats] = defaultdict(SessionStats)  # per connection label
        self.latency = LatencyHistogram()
        self.writer = StreamWriter(
            redis_io.lean(settings),
            maxlen=settings.md_stream_maxlen,
            batch_max=settings.ingest_batch_max,
            buffer_max=settings.ingest_buffer_max,
            latency=self.latency,
        )
        self._routes: dict[str, dict[str, str]] = {}  # symbol -> its shard's streams
        self._snapshot_prefix = settings.redis_key_prefix + self.venue.feed.snapshot_key_prefix + ":"

    @property
    def name(self) -> str:
        return self.venue.name

    async def _listings_ready(self, stop: asyncio.Event) -> bool:
        """Read the instruments lists (this venue's; in universe mode every universe venue's),
        retrying with backoff until every one has answered (True) or stop (False)."""
        s, delay = self.settings, self.settings.reconnect_initial_s
        while not stop.is_set():
            try:
                failed = await unless_stopped(self._listings.read(self._http), stop)
            except Stopped:
                return False
            missing = {v: why for v, why in failed.items() if v not in self._listings.maps}
            if not missing:
                return True
            for name, why in missing.items():
                log.warning("%s: instruments list unavailable: %s; retrying in %.1fs", name, why, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, s.reconnect_max_s)
        return False

    def _own(self) -> SymbolMap:
        """This venue's share of the universe."""
        own = self._listings.maps[self.name]
        return own.select([s for s in self._listings.symbols() if s in own.by_symbol])

    async def _symbols(self, stop: asyncio.Event) -> SymbolMap | None:
        """The instruments of `self.symbols`, read from the venue until it answers (or stop)."""
        if self.instruments is not None:
            return self.instruments.select(self.symbols)
        if not await self._listings_ready(stop):
            return None
        if self.universe:
            own = self._own()
            log.info("%s: universe of %d symbols listed on two or more of %s; %d here", self.name,
                     len(self._listings.symbols()), ",".join(self._listings.venues), len(own))
            return own
        listed = self._listings.maps[self.name]
        log.info("%s: %d live perpetuals listed", self.name, len(listed))
        return listed.select(self.symbols)  # UnknownSymbol: stop with the reason

    def on_events(self, events: list[MarketEvent], received_ns: int) -> asyncio.Future | None:
        """Queue one frame's events; returns a future when the socket should stop reading
        until the writer has caught up."""
        writer, routes = self.writer, self._routes
        last = len(events) - 1
        for i, event in enumerate(events):
            received = received_ns if i == last else None
            streams = routes.get(event.symbol) or routes.setdefault(event.symbol, self.settings.md_route(event.symbol))
            if event.TYPE == "book":  # a full top-N snapshot: a newer one makes it worthless
                writer.add_conflated(streams["book"], event.symbol, partial(to_fields, event), received)
                continue
            fields = to_fields(event)
            writer.add(streams[event.TYPE], fields, received)
            if event.TYPE == "ticker":
                writer.set_latest(self._snapshot_prefix + event.symbol, fields)
        return writer.room() if writer.full() else None

    async def run(self, stop: asyncio.Event, report_every_s: float = 10.0) -> IngestReport:
        """Ingest until `stop`; raises UnknownSymbol if the venue does not list a symbol."""
        s = self.settings
        self._http = aiohttp.ClientSession()
        self._listings = listings(s, list(dict.fromkeys([*s.universe_from(), self.name])) if self.universe
                                  else [self.name])
        try:
            symbols = await self._symbols(stop)
            if symbols is None:
                return self.report()
            writer_stop = asyncio.Event()
            writer = asyncio.ensure_future(self.writer.run(writer_stop))
            reporter = asyncio.ensure_future(self._report_loop(report_every_s))
            try:
                while True:
                    feed_stop = asyncio.Event()
                    watchers = [asyncio.ensure_future(_relay(stop, feed_stop))]
                    if self.universe:
                        watchers.append(asyncio.ensure_future(self._watch_universe(symbols, feed_stop, stop)))
                    try:
                        await self._run_sockets(symbols, feed_stop)
                    finally:
                        for task in watchers:
                            task.cancel()
                        await asyncio.gather(*watchers, return_exceptions=True)
                    if stop.is_set() or self._next is None:
                        break
                    symbols, self._next = self._next, None
            finally:
                reporter.cancel()
                writer_stop.set()
                await writer
        finally:
            await self._http.close()
        report = self.report()
        log.info("%s stopped: %s", self.name, report.line())
        return report

    async def _run_sockets(self, symbols: SymbolMap, stop: asyncio.Event) -> None:
        """The venue's connections for `symbols`, until `stop` (or one fails for good)."""
        s = self.settings
        feed = self.venue.feed(symbols, self.hosts, s.book_levels)
        connections = feed.connections()
        named = f"{len(symbols)} symbols" if self.universe else ",".join(self.symbols)
        log.info("ingesting %s %s on %d connection(s) to %s into %s (streams %s, cap ~%d)", self.name, named,
                 len(connections), " and ".join(dict.fromkeys(c.url for c in connections)),
                 self.writer.conn.describe(), _streams_text(s), s.md_stream_maxlen)
        ping_s = min(filter(None, (feed.ping_interval_s, s.ws_ping_interval_s)))
        sockets = [asyncio.ensure_future(run_feed(
            feed, connection, self.on_events, stop,
            feed_stats=self.feed_stats, session=self.sessions[connection.label],
            ping_interval_s=ping_s if feed.ping_interval_s else None, idle_timeout_s=s.ws_idle_timeout_s,
            backoff=Backoff(s.reconnect_initial_s, s.reconnect_max_s),
        )) for connection in connections]
        try:
            await asyncio.gather(*sockets)
        finally:  # one connection failing for good (a bad URL) takes its siblings down with it
            for task in sockets:
                task.cancel()
            await asyncio.gather(*sockets, return_exceptions=True)

    async def _watch_universe(self, current: SymbolMap, feed_stop: asyncio.Event, stop: asyncio.Event) -> None:
        """Read the venues' lists every UNIVERSE_REFRESH_S; on a change of this venue's share,
        hand the new set over (`_next`) and end the current connections."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.universe_refresh_s)
            if stop.is_set():
                return
            await self._listings.read(self._http)
            new = self._own()
            added, gone = set(new.by_symbol) - set(current.by_symbol), set(current.by_symbol) - set(new.by_symbol)
            if added or gone:
                log.info("%s: universe changed: %d listed (%s), %d dropped (%s); reconnecting", self.name,
                         len(added), ",".join(sorted(added)) or "-", len(gone), ",".join(sorted(gone)) or "-")
                self.universe_changes += 1
                self._next = new
                feed_stop.set()
                return

    async def _report_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            log.info("%s: %s", self.name, self.report().line())

    def report(self) -> IngestReport:
        return IngestReport(
            received=self.feed_stats.messages,
            events=self.feed_stats.events,
            pushed=self.writer.stats.pushed,
            superseded=self.writer.stats.superseded,
            dropped=self.writer.stats.dropped,
            parse_errors=self.feed_stats.error_count,
            write_errors=self.writer.stats.errors,
            gaps=self.feed_stats.gaps,
            connects=sum(session.connects for session in self.sessions.values()),
            p50_us=self.latency.percentile_us(50),
            p99_us=self.latency.percentile_us(99),
        )

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(metrics.CallbackCollector(self._families))

    def _families(self):
        venue = {"venue": self.name}
        fs, ws = self.feed_stats, self.writer.stats
        yield metrics.counter("arb_ingest_messages_received_total", "WebSocket frames received", venue, fs.messages)
        yield metrics.counter("arb_ingest_events_parsed_total", "Events normalized from frames", venue, fs.events)
        yield metrics.counter("arb_ingest_events_pushed_total", "Events acknowledged by Redis", venue, ws.pushed)
        yield metrics.counter("arb_ingest_books_superseded_total",
                              "Book snapshots replaced by a newer one within a write batch", venue, ws.superseded)
        yield metrics.counter("arb_ingest_events_dropped_total",
                              "Events dropped by the ingestor's own buffer cap (Redis down)", venue, ws.dropped)
        yield metrics.counter_by("arb_ingest_parse_errors_total", "Frames skipped as bad input", venue, "kind",
                                 dict(fs.errors))
        yield metrics.counter_by("arb_ingest_ignored_total",
                                 "Frames of kinds not subscribed, or that carried nothing (empty_{kind})", venue,
                                 "kind", dict(fs.ignored))
        yield metrics.counter("arb_ingest_write_errors_total", "XADDs Redis refused", venue, ws.errors)
        yield metrics.counter("arb_ingest_book_gaps_total", "Order-book sequence gaps (resynced)", venue, fs.gaps)
        connects = sum(session.connects for session in self.sessions.values())
        yield metrics.counter("arb_ingest_connects_total", "WebSocket connections opened", venue, connects)
        yield metrics.counter("arb_ingest_redis_outages_total", "Times Redis became unreachable", venue, ws.outages)
        yield metrics.gauge_by("arb_ingest_connected", "1 while the venue socket is open", venue, "connection",
                               {label: float(session.connected) for label, session in self.sessions.items()})
        yield metrics.gauge("arb_ingest_buffered_events", "Events waiting to be written", venue, self.writer.pending)
        yield self.latency.family("arb_ingest_ws_to_stream_seconds",
                                  "WebSocket receive -> XADD acknowledged, per message", venue)


def _streams_text(s: Settings) -> str:
    names = ",".join(s.md_streams(0).values())
    return names if s.md_shards == 1 else f"{names} ... of {s.md_shards} shards"


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
