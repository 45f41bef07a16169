"""The ingestor end to end: a WebSocket serving the real capture -> parser -> Redis streams."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest

from services.ingestor.service import Ingestor
from shared.bus import ConsumerGroup
from shared.codec import from_fields, to_fields
from shared.events import BookUpdate, Ticker, Trade
from shared.venues.bybit.parser import Parser as BybitPublicParser
from tests.conftest import bybit_instruments, capture_frames, hosts_at
from tests.replay_server import Plan, ReplayServer

pytestmark = pytest.mark.redis

FRAMES = capture_frames()


async def until(condition, timeout_s: float = 15.0, what: str = "condition") -> None:
    """Wait for `condition()` to hold, checking as the event loop runs."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def parsed(frames) -> list:
    parser = BybitPublicParser(book_levels=25)
    return [e for i, f in enumerate(frames) for e in parser.feed(f, i) if isinstance(e, Ticker | Trade | BookUpdate)]


def all_written(server: ReplayServer):
    """Done once the server sent everything and the ingestor read and wrote all of it."""
    return lambda ing: (server.finished.is_set() and ing.writer.pending == 0
                        and ing.feed_stats.messages >= sum(server.sent))


async def run_ingestor(settings, url: str, until_cond, **overrides):
    settings = settings.model_copy(update={"venue_hosts": {"bybit": hosts_at(url)}, **overrides})
    ingestor = Ingestor(settings, "bybit", settings.symbols_to_trade, bybit_instruments())
    stop = asyncio.Event()
    task = asyncio.ensure_future(ingestor.run(stop, report_every_s=3600))
    try:
        await until(lambda: until_cond(ingestor) or task.done(), what="the ingestor")
    finally:
        stop.set()
    report = await asyncio.wait_for(task, 15)
    return ingestor, report


async def test_reconnects_after_a_drop_resubscribes_and_loses_nothing(settings, r):
    """Seed scenario 6: disconnect mid-stream, automatic reconnect, data resumes, nothing lost."""
    async with ReplayServer(FRAMES, [Plan(drop_after=700)]) as server:
        _, report = await run_ingestor(
            settings, server.url,
            all_written(server),
        )
    assert len(server.requests) == 2
    assert server.subscribed_topics(1) == server.subscribed_topics(0)
    assert set(server.subscribed_topics(0)) == {
        f"{kind}.{s}" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
        for kind in ("tickers", "orderbook.50", "publicTrade", "allLiquidation")}
    assert server.sent[0] == 700 and server.sent[1] == len(server.frames)
    assert report.connects == 2 and report.parse_errors == 0 and report.dropped == 0

    before_drop = parsed(server.frames[:700])
    after = parsed(server.frames)
    assert report.events == len(before_drop) + len(after)
    # every event parsed reached Redis, except book snapshots replaced by a newer one in a batch
    assert report.pushed + report.superseded == report.events
    streams = settings.md_streams()
    assert await r.xlen(streams["book"]) == sum(isinstance(e, BookUpdate) for e in before_drop + after) - report.superseded
    n_tickers = sum(isinstance(e, Ticker) for e in before_drop + after)
    assert await r.xlen(streams["ticker"]) == n_tickers
    assert await r.xlen(streams["trade"]) == sum(isinstance(e, Trade) for e in before_drop + after)

    last_btc = [e for e in after if isinstance(e, Ticker) and e.symbol == "BTCUSDT"][-1]
    stored = await r.hgetall(settings.redis_key_prefix + "bybit:linear:tickers:BTCUSDT")
    expected = {k.encode(): v.encode() for k, v in to_fields(last_btc).items() if k != "receive_ts_us"}
    assert {k: v for k, v in stored.items() if k != b"receive_ts_us"} == expected


async def test_websocket_to_stream_to_consumer_group(settings, r):
    """Seed task 4.5: what a consumer group reads is exactly what the venue sent, normalized."""
    streams = settings.md_streams()
    group = ConsumerGroup(r, "strategy", "worker-1", [streams["ticker"], streams["trade"]], start_id="$")
    await group.ensure()
    async with ReplayServer(FRAMES) as server:
        await run_ingestor(settings, server.url,
                           all_written(server))
    got = []
    while entries := await group.read(count=500, block_ms=None):
        got += entries
        for stream in {e.stream for e in entries}:
            await group.ack(stream, [e.id for e in entries if e.stream == stream])
    events = [from_fields(e.fields) for e in got]

    def key(e):
        return (e.TYPE, e.symbol, e.exchange_ts_ms, getattr(e, "trade_id", ""))

    strip = lambda e: e.__class__(**{f: getattr(e, f) for f in e.__struct_fields__ if f != "receive_ts_us"},  # noqa: E731
                                  receive_ts_us=0)
    expected = [e for e in parsed(server.frames) if isinstance(e, Ticker | Trade)]
    assert sorted(map(strip, events), key=key) == sorted(map(strip, expected), key=key)
    assert (await r.xpending(streams["ticker"], "strategy"))["pending"] == 0


async def test_silent_socket_is_abandoned_by_the_watchdog(settings, r):
    async with ReplayServer(FRAMES, [Plan(silent=True)]) as server:
        _, report = await run_ingestor(
            settings, server.url, all_written(server), ws_idle_timeout_s=0.3)
    assert report.connects == 2 and report.pushed > 0 and server.sent[0] == 0


async def test_refused_subscribe_is_an_error_with_the_venue_message(settings, r, caplog):
    message = "error:handler not found,topic:tickers.BTCUSDT"
    async with ReplayServer(FRAMES, [Plan(refuse=message)]) as server:
        ingestor, report = await run_ingestor(
            settings, server.url, all_written(server))
    assert ingestor.sessions["linear"].subscribe_failures == 1
    assert f"subscribe refused: {message}" in caplog.text
    assert report.connects == 2 and report.pushed > 0


async def test_book_gap_resubscribes_that_topic_and_counts_it(settings, r):
    btc_deltas = [i for i, f in enumerate(ReplayServer(FRAMES).frames) if b'"orderbook.200.BTCUSDT","type":"delta"' in f]
    async with ReplayServer(FRAMES, [Plan(skip={btc_deltas[10]})]) as server:
        ingestor, report = await run_ingestor(
            settings, server.url, all_written(server))
    assert report.gaps == 1 and ingestor.sessions["linear"].resyncs >= 1
    ops = [(req["op"], req["args"]) for req in server.requests[0] if req["op"] != "ping"]
    resync = ops.index(("unsubscribe", ["orderbook.200.BTCUSDT"]))
    assert all(op == "subscribe" for op, _ in ops[:resync])  # the initial subscription
    assert ops[resync:] == [("unsubscribe", ["orderbook.200.BTCUSDT"]), ("subscribe", ["orderbook.200.BTCUSDT"])]
    assert report.parse_errors == 0


async def test_sigterm_flushes_and_exits_zero(settings, r):
    async with ReplayServer(FRAMES) as server:
        env = {**os.environ, "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": settings.redis_key_prefix,
               "SYMBOLS_TO_TRADE": "BTCUSDT", "LOG_LEVEL": "INFO"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "ingest", "--hosts", "bybit=" + hosts_at(server.url)[0].removeprefix(
                "http://"), env=env,
            stderr=asyncio.subprocess.PIPE)
        await asyncio.wait_for(server.finished.wait(), 30)
        proc.send_signal(signal.SIGTERM)  # all frames are sent; some may still be unread or unwritten
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    log = err.decode()
    assert proc.returncode == 0, log
    report = log[log.index("bybit stopped: "):]
    pushed = int(report.split(" pushed ")[1].split(",")[0])
    streams = settings.md_streams()
    in_redis = sum([await r.xlen(streams[kind]) for kind in ("ticker", "book", "trade", "liquidation")])
    assert pushed > 0 and in_redis == pushed  # everything read before the signal was flushed


async def test_backoff_doubles_while_failing_and_starts_over_after_a_good_subscribe(settings, r):
    refused = Plan(refuse="error:busy")
    plans = [refused, refused, refused, Plan(drop_after=50), Plan(drop_after=50), Plan()]
    async with ReplayServer(FRAMES, plans) as server:
        ingestor, report = await run_ingestor(
            settings, server.url, all_written(server),
            reconnect_initial_s=0.01, reconnect_max_s=0.08)
    initial = 0.01
    # three refusals: 0.01, 0.02, 0.04; then each good connection that drops starts over
    assert list(ingestor.sessions["linear"].delays_s) == [initial, 2 * initial, 4 * initial, initial, initial]
    assert report.connects == 6 and ingestor.sessions["linear"].subscribe_failures == 3


async def test_metrics_report_what_the_ingestor_counted(settings, r):
    from prometheus_client import CollectorRegistry, generate_latest

    async with ReplayServer(FRAMES) as server:
        ingestor, report = await run_ingestor(
            settings, server.url, all_written(server))
    registry = CollectorRegistry()
    ingestor.register_metrics(registry)
    text = generate_latest(registry).decode()
    value = lambda name: registry.get_sample_value(name, {"venue": "bybit"})  # noqa: E731
    assert value("arb_ingest_messages_received_total") == report.received
    assert value("arb_ingest_events_pushed_total") == report.pushed
    assert value("arb_ingest_books_superseded_total") == report.superseded
    assert value("arb_ingest_events_dropped_total") == 0
    assert registry.get_sample_value("arb_ingest_ignored_total", {"venue": "bybit", "kind": "kline"}) == 71
    assert value("arb_ingest_ws_to_stream_seconds_count") == ingestor.latency.count > 0
    assert 'arb_ingest_ws_to_stream_seconds_bucket{le="1e-05",venue="bybit"}' in text


async def test_a_slow_writer_pauses_the_socket_and_nothing_is_lost(settings, r):
    """Backpressure: with a tiny write batch the writer falls behind, reading pauses until it
    catches up, and every frame still ends up in Redis."""
    async with ReplayServer(FRAMES) as server:
        ingestor, report = await run_ingestor(
            settings, server.url, all_written(server), ingest_batch_max=2)
    assert ingestor.sessions["linear"].pauses > 0
    assert report.dropped == 0 and report.received == len(server.frames) + 2  # + two subscribe acks
    assert report.pushed + report.superseded == report.events == len(parsed(server.frames))


async def test_pings_keep_going_and_pongs_are_not_events(settings, r):
    async with ReplayServer(FRAMES[:50]) as server:
        _, report = await run_ingestor(
            settings, server.url, lambda ing: ing.sessions["linear"].pings >= 3 and len(
                [q for q in server.requests[0] if q["op"] == "ping"]) >= 3 and ing.writer.pending == 0,
            ws_ping_interval_s=0.02)
    assert report.connects == 1 and report.parse_errors == 0
    assert report.events == len(parsed(server.frames))


async def test_a_flood_never_grows_the_buffer_past_its_mark(settings, r):
    """TCP backpressure, not drops: the recorded capture sent three times as fast as the socket
    takes it, written two entries a round trip. Frames read before a pause took effect wait
    unparsed, so the writer holds at most its mark plus one frame's events (and the newest book
    of each symbol, encoded into the buffer as a batch goes out), and every event reaches Redis."""
    frames = FRAMES * 3
    async with ReplayServer(frames) as server:
        ingestor, report = await run_ingestor(settings, server.url, all_written(server), ingest_batch_max=2)
    writer = ingestor.writer
    most_in_a_frame = max(len(parsed([f])) for f in server.frames)
    assert ingestor.sessions["linear"].pauses > 0
    books = len(settings.symbols_to_trade)
    assert writer.stats.peak_buffered <= writer.high_water + most_in_a_frame + books
    assert report.dropped == 0
    assert report.pushed + report.superseded == report.events == len(parsed(server.frames))
