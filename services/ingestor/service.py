"""The ingestor: one venue's public WebSocket -> normalized events -> capped Redis Streams.

Every event goes to its `md:*` stream (XADD MAXLEN ~); the newest ticker per symbol also goes
to the venue's snapshot hash (`bybit:linear:tickers:{symbol}`). On stop the socket closes
first, then everything already received is flushed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

from prometheus_client import CollectorRegistry

from shared import metrics
from shared.bus import StreamWriter
from shared.codec import to_fields
from shared.events import MarketEvent
from shared.feed import FeedStats
from shared.metrics import LatencyHistogram
from shared.resp import RespConnection
from shared.settings import Settings
from shared.venues import public_feed
from shared.ws import Backoff, SessionStats, run_feed

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


class Ingestor:
    """Runs one venue's feed into Redis; counters are plain ints read by `report()`."""

    def __init__(self, settings: Settings, venue: str, symbols: list[str]) -> None:
        self.settings = settings
        self.feed = public_feed(venue, settings)
        self.symbols = symbols
        self.feed_stats = FeedStats(venue)
        self.session = SessionStats()
        self.latency = LatencyHistogram()
        self.writer = StreamWriter(
            RespConnection(settings.redis_url),
            maxlen=settings.md_stream_maxlen,
            batch_max=settings.ingest_batch_max,
            buffer_max=settings.ingest_buffer_max,
            latency=self.latency,
        )
        self._streams = settings.md_streams()
        self._snapshot_prefix = settings.redis_key_prefix + self.feed.snapshot_key_prefix + ":"

    def on_events(self, events: list[MarketEvent], received_ns: int) -> asyncio.Future | None:
        """Queue one frame's events; returns a future when the socket should stop reading
        until the writer has caught up."""
        writer, streams = self.writer, self._streams
        last = len(events) - 1
        for i, event in enumerate(events):
            received = received_ns if i == last else None
            if event.TYPE == "book":  # a full top-N snapshot: a newer one makes it worthless
                writer.add_conflated(streams["book"], event.symbol, partial(to_fields, event), received)
                continue
            fields = to_fields(event)
            writer.add(streams[event.TYPE], fields, received)
            if event.TYPE == "ticker":
                writer.set_latest(self._snapshot_prefix + event.symbol, fields)
        return writer.room() if writer.full() else None

    async def run(self, stop: asyncio.Event, report_every_s: float = 10.0) -> IngestReport:
        s = self.settings
        writer_stop = asyncio.Event()
        writer = asyncio.ensure_future(self.writer.run(writer_stop))
        reporter = asyncio.ensure_future(self._report_loop(report_every_s))
        log.info("ingesting %s %s from %s into %s (streams %s, cap ~%d)", self.feed.name,
                 ",".join(self.symbols), self.feed.url, self.writer.conn.describe(),
                 ",".join(self._streams.values()), s.md_stream_maxlen)
        try:
            await run_feed(
                self.feed, self.symbols, self.on_events, stop,
                feed_stats=self.feed_stats, session=self.session,
                ping_interval_s=s.ws_ping_interval_s, idle_timeout_s=s.ws_idle_timeout_s,
                backoff=Backoff(s.reconnect_initial_s, s.reconnect_max_s),
            )
        finally:
            reporter.cancel()
            writer_stop.set()
            await writer
        report = self.report()
        log.info("%s stopped: %s", self.feed.name, report.line())
        return report

    async def _report_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            log.info("%s: %s", self.feed.name, self.report().line())

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
            connects=self.session.connects,
            p50_us=self.latency.percentile_us(50),
            p99_us=self.latency.percentile_us(99),
        )

    def register_metrics(self, registry: CollectorRegistry) -> None:
        registry.register(metrics.CallbackCollector(self._families))

    def _families(self):
        venue = {"venue": self.feed.name}
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
        yield metrics.counter_by("arb_ingest_ignored_total", "Frames of kinds not subscribed", venue, "kind",
                                 dict(fs.ignored))
        yield metrics.counter("arb_ingest_write_errors_total", "XADDs Redis refused", venue, ws.errors)
        yield metrics.counter("arb_ingest_book_gaps_total", "Order-book sequence gaps (resynced)", venue, fs.gaps)
        yield metrics.counter("arb_ingest_connects_total", "WebSocket connections opened", venue, self.session.connects)
        yield metrics.counter("arb_ingest_redis_outages_total", "Times Redis became unreachable", venue, ws.outages)
        yield metrics.gauge("arb_ingest_connected", "1 while the venue socket is open", venue,
                            float(self.session.connected))
        yield metrics.gauge("arb_ingest_buffered_events", "Events waiting to be written", venue, self.writer.pending)
        yield self.latency.family("arb_ingest_ws_to_stream_seconds",
                                  "WebSocket receive -> XADD acknowledged, per message", venue)
