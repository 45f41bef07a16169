"""`arb strategy` end to end through a real Redis: the simulator, ingestors, the latency
monitor and the strategy service; a forced opportunity becomes a signal within 2 s."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import redis.asyncio as aioredis

from services.ingestor.service import Ingestor
from services.latency.service import LatencyMonitor
from services.sim.server import SimServer
from services.strategy.service import StrategyService
from tests.conftest import serve_app

pytestmark = pytest.mark.redis


async def wait_for(condition, timeout_s: float = 15.0):
    async with asyncio.timeout(timeout_s):
        while not (result := await condition()):
            await asyncio.sleep(0.05)
        return result


async def test_a_forced_opportunity_becomes_a_signal_within_two_seconds(settings, r):
    server = SimServer(["BTCUSDT"], seed=11, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        # The dashboard scorer: the confluence scorer also wants the market's own metrics (VWAP
        # stretch, book imbalance ...) to agree, which a forced price gap alone does not give.
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["BTCUSDT"],
                                               "latency_poll_ms": 100, "strategy_scorer": "dashboard"})
        stop = asyncio.Event()
        services = [Ingestor(settings, v, ["BTCUSDT"]) for v in ("bybit", "binance")]
        monitor = LatencyMonitor(settings, ["bybit", "binance"])
        strategy = StrategyService(settings, "cross")
        tasks = [asyncio.ensure_future(s.run(stop)) for s in (*services, monitor, strategy)]
        signals = settings.redis_key_prefix + "strategy:signals"
        try:
            await wait_for(lambda: _ready(strategy))
            assert await r.xlen(signals) == 0  # the quiet market offers nothing
            async with http.post(f"{base}/admin/opportunity", json={
                    "symbol": "BTCUSDT", "venue": "binance", "spread_bps": 100, "funding_delta": 0.005,
                    "seconds": 30}) as response:
                assert response.status == 200
            forced = time.monotonic()
            entries = await wait_for(lambda: r.xrange(signals), timeout_s=5)
            elapsed = time.monotonic() - forced
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    _, fields = entries[0]
    signal = {k.decode(): v.decode() for k, v in fields.items()}
    assert elapsed < 2.0, elapsed
    assert (signal["symbol"], signal["long_venue"], signal["short_venue"]) == ("BTCUSDT", "bybit", "binance")
    assert float(signal["spread_bps"]) > 40 and int(signal["confidence"]) >= 70
    assert float(signal["projected_profit_after_slippage_usd"]) > 0 and signal["mode"] == "cross"
    latest = await r.get(settings.redis_key_prefix + "strategy:opportunities:latest")
    if latest:  # the once-a-second ranking may not have run yet after the signal
        top = json.loads((await r.lrange(latest, 0, 0))[0])
        assert top["symbol"] == "BTCUSDT"
    assert strategy.counts["bad_entries"] == 0 and strategy.rejections  # quiet scans counted their reasons


async def _ready(strategy: StrategyService) -> bool:
    """Both venues quoted and judged fresh by the latency monitor."""
    state = strategy.core.state.by_symbol.get("BTCUSDT", {})
    return len(state) == 2 and strategy.core.stale == {"binance": False, "bybit": False}


async def test_the_service_rides_out_a_redis_outage(settings):
    """Redis down: the strategy logs, counts and keeps trying; Redis back (empty): it recreates
    its group and consumes again. It never crashes."""
    import shutil
    import tempfile

    from shared.bus import StreamWriter
    from shared.codec import to_fields
    from shared.events import Ticker
    from shared.resp import RespConnection
    from tests.conftest import free_port, start_redis_server

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server on PATH to stop and restart one")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = settings.model_copy(update={"redis_url": url})
    streams = settings.md_streams()

    async def write(n: int) -> None:
        w = StreamWriter(RespConnection(url), maxlen=1000)
        for i in range(n):
            w.add(streams["ticker"], to_fields(Ticker(venue="bybit", symbol="BTCUSDT", exchange_ts_ms=i,
                                                      receive_ts_us=0, bid=100.0, ask=100.1)))
        await w.flush()
        await w.conn.close()

    with tempfile.TemporaryDirectory() as workdir:
        proc = start_redis_server(port, workdir)
        service = StrategyService(settings, "cross")
        stop = asyncio.Event()
        task = asyncio.ensure_future(service.run(stop))
        try:
            await asyncio.sleep(0.3)  # the group exists
            await write(10)
            await wait_for(lambda: _at_least(service, 10))
            proc.terminate()
            proc.wait(10)
            await wait_for(lambda: _errors(service))
            assert not task.done()
            proc = start_redis_server(port, workdir)
            # it retries every second and recreates its group, at the streams' end: market data
            # written while no group existed is not replayed
            client = aioredis.Redis.from_url(url)
            await wait_for(lambda: _group_exists(client, streams["ticker"]))
            await client.aclose()
            await write(5)
            await wait_for(lambda: _at_least(service, 15))
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            proc.terminate()
            proc.wait(10)


async def _group_exists(client, stream: str) -> bool:
    try:
        return any(g["name"] == b"strategy" for g in await client.xinfo_groups(stream))
    except aioredis.ResponseError:  # no such stream yet
        return False


async def _at_least(service: StrategyService, n: int) -> bool:
    return service.counts["consumed"] >= n


async def _errors(service: StrategyService) -> bool:
    return service.counts["redis_errors"] > 0


def test_an_entry_that_is_not_an_event_is_counted_and_skipped(settings, caplog):
    from shared.bus import Entry

    service = StrategyService(settings, "cross")
    good = {"v": "1", "type": "ticker", "venue": "bybit", "symbol": "BTCUSDT", "exchange_ts_ms": "1",
            "receive_ts_us": "1", "bid": "100", "ask": "100.1"}
    entries = [Entry("md:tickers", "1-0", {"v": "2", "type": "ticker"}), Entry("md:tickers", "2-0", good),
               Entry("md:tickers", "3-0", {"v": "1", "type": "candle"})]
    with caplog.at_level("WARNING", logger="arb.strategy"):
        assert service.handle(entries) == []
    assert service.counts["bad_entries"] == 2 and service.counts["consumed"] == 3
    assert service.core.state.get("bybit", "BTCUSDT").bid == 100.0  # the good one went through
    [warning] = [r.getMessage() for r in caplog.records]  # logged once, then counted
    assert warning.startswith("skipped md:tickers 1-0: schema version '2' is not supported")


def test_a_signal_names_the_entry_that_decided_it_not_only_its_exchange_stamp(settings):
    """Every frame of a simulator step (and of many venue updates) carries the same ms, so two
    signals can share `source_exchange_ts_ms`; `source_stream` + `source_entry_id` tell them
    apart (the takeover test matches the dead worker's entries by them)."""
    from shared.bus import Entry

    service = StrategyService(settings, "synthetic")
    now_us = time.time_ns() // 1000
    tick = {"v": "1", "type": "ticker", "venue": "bybit", "exchange_ts_ms": str(now_us // 1000 - 5),
            "receive_ts_us": str(now_us), "bid": "100", "ask": "100.1"}
    entries = [Entry("md:tickers", "7-0", tick | {"symbol": "BTCUSDT"}),
               Entry("md:tickers", "7-1", tick | {"symbol": "ETHUSDT"})]
    fields = [service.signal_fields(s) for s in service.handle(entries)]
    assert [(f["symbol"], f["source_stream"], f["source_entry_id"]) for f in fields] == [
        ("BTCUSDT", "md:tickers", "7-0"), ("ETHUSDT", "md:tickers", "7-1")]
    assert fields[0]["source_exchange_ts_ms"] == fields[1]["source_exchange_ts_ms"] == tick["exchange_ts_ms"]
    # the traced path: when the ingestor received the frame, then when this service took it up
    assert [f["source_receive_us"] for f in fields] == [tick["receive_ts_us"]] * 2
    assert all(now_us <= int(f["source_read_us"]) <= int(f["created_us"]) for f in fields)
    assert service._source == {}  # popped as written


def test_the_executors_facts_hold_a_pair_while_its_trade_is_open(settings):
    from services.executor import facts as f
    from services.executor.core import trade_id_for

    strategy = StrategyService(settings, "cross")
    gate, pair = strategy.core.gate, ("BTCUSDT", "bybit", "binance")
    gate.pending[pair] = 1
    taken = f.SignalTaken(ts_ms=2, signal_id="BTCUSDT-bybit-binance-1", trade_id=trade_id_for("x"), mode="cross",
                          symbol="BTCUSDT", long_venue="bybit", short_venue="binance", signal_long_venue="bybit",
                          signal_short_venue="binance", harder="long", qty=1, size_usd=100, long_price=1,
                          short_price=2, entry_spread_bps=50.0, funding_delta_8h=0.001, projected_profit_usd=1,
                          confidence=80, signal_ms=1)
    strategy._executor_fact(f.to_fields(taken))
    assert pair in gate.active and pair not in gate.pending and gate.blocked(pair, 10**12)
    closed = f.TradeClosed(ts_ms=3, trade_id=taken.trade_id, outcome="closed", reason="profit_target", pnl_usd=1,
                           fees_usd=0, funding_usd=0, leg_out_loss_usd=0, size_usd=100)
    strategy._executor_fact(f.to_fields(closed))
    assert pair not in gate.active
    gate.pending[pair] = 5
    strategy._executor_fact(f.to_fields(f.SignalRejected(ts_ms=6, signal_id="BTCUSDT-bybit-binance-5",
                                                         symbol="BTCUSDT", reason="max_concurrent")))
    assert pair not in gate.pending


async def test_each_scan_keeps_its_top_20_for_60_s_and_logs_them_on_a_change_or_a_minute_on(settings, r, caplog):
    import logging

    from shared.resp import RespConnection
    from tests.test_strategy_scanner import quote

    service = StrategyService(settings, "cross")
    for stream in settings.md_streams().values():  # the group the service makes when it runs
        await r.xgroup_create(stream, "strategy", id="$", mkstream=True)
    now_ms = time.time_ns() // 1_000_000
    for venue in ("binance", "bybit"):
        await r.hset(settings.redis_key_prefix + f"strategy:latency:{venue}",
                     mapping={"is_stale": "0", "local_time_ms": str(now_ms)})
    for i in range(21):
        quote(service.core.state, "binance", f"S{i:02d}USDT", 99.99, 100.0, size=1000.0, lean=1, ts=now_ms)
        quote(service.core.state, "bybit", f"S{i:02d}USDT", 100.40, 100.41, funding=0.001 + i * 0.00001,
              size=1000.0, lean=-1, ts=now_ms)
    conn = RespConnection(settings.redis_url, encoding="utf-8")  # as the service's own
    try:
        with caplog.at_level(logging.INFO, logger="arb.strategy"):
            await service.scan_once(conn)
            await service.scan_once(conn)  # the same ranking a moment later: not logged again
            service._top_logged_ms -= 60_000  # a minute on: logged again, unchanged
            await service.scan_once(conn)
    finally:
        await conn.close()
    latest = (await r.get(settings.redis_key_prefix + "strategy:opportunities:latest")).decode()
    assert await r.llen(latest) == 20
    assert 58 <= await r.ttl(latest) <= 60 and 58 <= await r.ttl(settings.redis_key_prefix +
                                                                 "strategy:opportunities:latest") <= 60
    logged = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("top ")]
    assert len(logged) == 2 and logged[0].splitlines()[0] == "top 20 of 21 pairs:"
    assert len(logged[0].splitlines()) == 21
