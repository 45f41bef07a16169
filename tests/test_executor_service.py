"""`arb executor` in paper mode through a real Redis, behind the whole pipeline: the simulator,
two ingestors, the latency monitor and the strategy. A forced opportunity becomes a trade with
both legs filled; stopping closes it; the facts rebuild exactly the read models that were
written; a restart replays them to the same portfolio."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from services.executor import facts as f
from services.executor.projection import portfolio_fields
from services.executor.rebuild import rebuild
from services.executor.service import ExecutorService
from services.ingestor.service import Ingestor
from services.latency.service import LatencyMonitor
from services.sim.server import SimServer
from services.strategy.service import StrategyService
from tests.conftest import serve_app
from tests.test_strategy_service import wait_for

pytestmark = pytest.mark.redis


async def test_a_forced_opportunity_is_traded_on_paper_closed_on_stop_and_rebuilt_exactly(settings, r):
    server = SimServer(["BTCUSDT"], seed=11, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={
            "sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["BTCUSDT"], "latency_poll_ms": 100,
            "strategy_scorer": "dashboard", "executor_venues": ["bybit", "binance"]})
        stop, stop_executor = asyncio.Event(), asyncio.Event()
        feeds = [Ingestor(settings, v, ["BTCUSDT"]) for v in ("bybit", "binance")]
        strategy = StrategyService(settings, "cross")
        executor = ExecutorService(settings, "cross")
        tasks = [asyncio.ensure_future(s.run(stop)) for s in (*feeds, LatencyMonitor(settings, ["bybit", "binance"]),
                                                              strategy)]
        trading = asyncio.ensure_future(executor.run(stop_executor))
        try:
            await wait_for(lambda: _ready(strategy, executor))
            assert ("binance", "BTCUSDT") in executor.core.grids and ("bybit", "BTCUSDT") in executor.core.grids
            async with http.post(f"{base}/admin/opportunity", json={
                    "symbol": "BTCUSDT", "venue": "binance", "spread_bps": 100, "funding_delta": 0.005,
                    "seconds": 30}) as response:
                assert response.status == 200
            trade = await wait_for(lambda: _active(executor), timeout_s=10)
            key = f"{settings.redis_key_prefix}strategy:trades:active:{trade.id}"
            stored = await wait_for(lambda: r.hgetall(key))
            marked = await wait_for(lambda: _marked(r, settings.redis_key_prefix, trade.id))
            stop_executor.set()
            await asyncio.wait_for(trading, 15)
        finally:
            stop.set()
            stop_executor.set()
            await asyncio.gather(*tasks, trading, return_exceptions=True)
    assert stored[b"status"] == b"active" and stored[b"long_exchange"] == b"bybit"
    assert Decimal(stored[b"long_held"].decode()) == -Decimal(stored[b"short_held"].decode()) > 0
    closed = executor.core.closed[trade.id]
    assert closed.closed.reason == "shutdown" and closed.flat
    p = settings.redis_key_prefix
    assert not await r.exists(f"{p}strategy:trades:active:{trade.id}")
    assert (await r.hgetall(f"{p}strategy:trades:closed:{trade.id}"))[b"actual_profit_usd"].decode() == \
        str(closed.closed.pnl_usd)
    state = {k.decode(): v.decode() for k, v in (await r.hgetall(f"{p}strategy:portfolio:state")).items()}
    assert state == portfolio_fields(executor.core) and state["trading"] == "on"
    assert Decimal(state["available_capital"]) == Decimal(20_000) + closed.closed.pnl_usd
    # valued at the market while open; once flat, nothing is left to value
    assert Decimal(marked[f"{trade.id}:unrealised_pnl_usd"]) == Decimal(marked["unrealised_pnl_usd"])
    assert Decimal(marked["equity_usd"]) == Decimal(20_000) + Decimal(marked["unrealised_pnl_usd"])
    assert abs(float(marked[f"{trade.id}:spread_bps"])) < 500
    final = await _marked(r, p, None)
    assert (final["open_trades"], final["unrealised_pnl_usd"]) == ("0", "0")
    assert Decimal(final["equity_usd"]) == Decimal(20_000) + closed.closed.pnl_usd

    report = await rebuild(settings, write=False)
    assert report.differences == [] and report.facts == await r.xlen(f"{p}strategy:events")
    await r.delete(f"{p}strategy:portfolio:state", f"{p}strategy:trades:closed:{trade.id}")
    await r.hset(f"{p}strategy:trades:active:{trade.id}", "status", "active")  # a stale key
    report = await rebuild(settings)
    assert len(report.differences) == 3
    assert (await rebuild(settings, write=False)).differences == []

    again = ExecutorService(settings, "cross", grids=executor.core.grids)
    await again.replay(again_client := _client(settings))
    await again_client.aclose()
    assert again.core.portfolio.summary() == executor.core.portfolio.summary()
    events = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
              for _, fields in await r.xrange(f"{p}strategy:events")]
    kinds = [type(x).__name__ for x in events if getattr(x, "trade_id", None) == trade.id]
    assert kinds[0] == "SignalTaken" and kinds[-1] == "TradeClosed" and "TradeActive" in kinds

    # one traced path: the fact names the market-data entry that decided the signal and when the
    # ingestor received its venue frame; the executor timed that frame to the first order sent,
    # and the four stages add up to it exactly
    taken = next(x for x in events if isinstance(x, f.SignalTaken) and x.trade_id == trade.id)
    stream, entry_id = taken.source.split(" ")
    [(_, source)] = await r.xrange(stream, entry_id, entry_id)
    assert stream.startswith(f"{p}md:") and taken.frame_us == int(source[b"receive_ts_us"])
    whole = executor.trace["frame_to_order"]
    stages = [executor.trace[n] for n in ("frame_to_strategy", "strategy_to_signal", "signal_to_executor",
                                          "executor_to_order")]
    assert whole.count == 1 and all(h.count == 1 for h in stages)
    assert sum(h.sum_ns for h in stages) == whole.sum_ns > 0


def _client(settings):
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(settings.redis_url, decode_responses=True)


async def _ready(strategy: StrategyService, executor: ExecutorService) -> bool:
    state = strategy.core.state.by_symbol.get("BTCUSDT", {})
    quoted = len(executor.core.market.by_symbol.get("BTCUSDT", {})) == 2
    return executor.ready.is_set() and quoted and len(state) == 2 and strategy.core.stale == {
        "binance": False, "bybit": False}


async def _marked(r, prefix: str, trade_id: str | None) -> dict[str, str] | None:
    """strategy:marks, once it values `trade_id` (None: as it stands)."""
    fields = {k.decode(): v.decode() for k, v in (await r.hgetall(f"{prefix}strategy:marks")).items()}
    return fields if trade_id is None or f"{trade_id}:unrealised_pnl_usd" in fields else None


async def _active(executor: ExecutorService):
    return next((t for t in executor.core.trades.values() if t.status == "active"), None)


async def test_live_synthetic_trading_at_the_simulated_bybit_hedge_mode_then_flat_on_stop(settings, r):
    """EXECUTION=live against the simulator's Bybit API: the synthetic signal's two legs are
    signed orders in hedge mode (positionIdx 1 and 2); stopping closes both, reduce-only."""
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(["BTCUSDT"], seed=3, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base:
        settings = settings.model_copy(update={
            "sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["BTCUSDT"], "execution": "live",
            "synthetic_hold_s": 60.0})
        stop, stop_executor = asyncio.Event(), asyncio.Event()
        feed = Ingestor(settings, "bybit", ["BTCUSDT"])
        tasks = [asyncio.ensure_future(feed.run(stop))]
        await wait_for(lambda: r.xlen(settings.md_streams()["book"]))
        executor = ExecutorService(settings, "synthetic")  # starts after market data: warms up from md:*
        trading = asyncio.ensure_future(executor.run(stop_executor))
        tasks.append(asyncio.ensure_future(StrategyService(settings, "synthetic").run(stop)))
        try:
            trade = await wait_for(lambda: _active(executor), timeout_s=15)
            account = server.matching.account(key)
            held = {idx: p.lots for (symbol, idx), p in account.positions.items() if symbol == "BTCUSDT"}
            stop_executor.set()
            await asyncio.wait_for(trading, 15)
        finally:
            stop.set()
            stop_executor.set()
            await asyncio.gather(*tasks, trading, return_exceptions=True)
    lots = trade.taken.qty / server.model.states["BTCUSDT"].inst.lot
    assert held == {1: lots, 2: -lots} and "BTCUSDT" in account.hedge_symbols
    assert all(not p.lots for p in account.positions.values())
    ours = {o.link_id for t in executor.core.closed.values() for o in t.orders.values()}
    assert {o.link_id for o in account.orders.values()} == ours  # no order twice, none unknown
    closed = executor.core.closed[trade.id]
    assert closed.closed.reason == "shutdown" and closed.flat
    assert closed.fees == sum((o.cum_fee for o in account.orders.values()), Decimal(0))


async def test_live_with_bybit_unreachable_says_so_and_stops_cleanly(settings, caplog):
    from tests.conftest import free_port

    settings = settings.model_copy(update={"execution": "live", "sim_port": free_port()})  # nothing listens
    executor = ExecutorService(settings, "synthetic")
    stop = asyncio.Event()
    task = asyncio.ensure_future(executor.run(stop))
    await wait_for(lambda: _logged(caplog, "cannot start trading at bybit"))
    stop.set()
    await asyncio.wait_for(task, 10)  # no traceback: the stop ends the retries
    assert not executor.ready.is_set() and executor.counts["facts"] == 0


async def _logged(caplog, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("faults, problem", [({"key_ips": ["*"]}, "bound to no IP address"),
                                             ({"key_wallet": True}, "may move funds \\(Wallet permission")])
async def test_live_refuses_an_api_key_that_can_withdraw_or_is_bound_to_no_ip(settings, faults, problem):
    from services.sim.faults import Faults
    from shared.settings import ConfigError

    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(["BTCUSDT"], seed=3, step_ms=10, api_keys={key: secret}, faults=Faults(**faults))
    async with serve_app(server.app()) as base:
        settings = settings.model_copy(update={"execution": "live", "sim_port": int(base.rsplit(":", 1)[1]),
                                               "symbols_to_trade": ["BTCUSDT"]})
        with pytest.raises(ConfigError, match=problem):
            await asyncio.wait_for(ExecutorService(settings, "synthetic").run(asyncio.Event()), 20)
        allowed = ExecutorService(settings.model_copy(update={"allow_unsafe_api_key": True}), "synthetic")
        stop = asyncio.Event()
        task = asyncio.ensure_future(allowed.run(stop))
        await wait_for(lambda: _ready_event(allowed))
        stop.set()
        await asyncio.wait_for(task, 10)
    assert server.matching.account(key).orders == {}


async def _ready_event(executor: ExecutorService) -> bool:
    return executor.ready.is_set()


async def test_with_redis_down_at_start_the_executor_waits_and_says_so(settings, caplog):
    from tests.conftest import free_port

    settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    executor = ExecutorService(settings, "synthetic", grids={})
    stop = asyncio.Event()
    task = asyncio.ensure_future(executor.run(stop))
    await wait_for(lambda: _logged(caplog, "redis unavailable at start"))
    stop.set()
    await asyncio.wait_for(task, 10)  # no traceback
    assert not executor.ready.is_set()


async def test_a_signal_every_start_died_on_is_rejected_unread_as_redelivered(settings, r):
    """Five starts read it and none acked it (each died in its batch): the next start decides it
    rejected without handling it, and acks it, instead of dying on it again."""
    from services.executor.service import GROUP, MAX_DELIVERIES

    stream = settings.redis_key_prefix + "strategy:signals"
    await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await r.xadd(stream, {"id": "poison-1", "symbol": "BTCUSDT", "mode": "synthetic"})
    for i in range(MAX_DELIVERIES):  # delivered, never acked: the first read, then the restarts' re-reads
        await r.xreadgroup(GROUP, "executor-1", {stream: ">" if i == 0 else "0"})
    executor = ExecutorService(settings.model_copy(update={"symbols_to_trade": ["BTCUSDT"]}), "synthetic", grids={})
    stop = asyncio.Event()
    task = asyncio.ensure_future(executor.run(stop))
    try:
        await wait_for(lambda: _is_ready(executor))
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert executor.core.rejections["redelivered"] == 1
    assert (await r.xpending(stream, GROUP))["pending"] == 0
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
             for _, fields in await r.xrange(settings.redis_key_prefix + "strategy:events")]
    assert [(x.signal_id, x.reason) for x in facts if isinstance(x, f.SignalRejected)] == [("poison-1", "redelivered")]


async def _is_ready(executor: ExecutorService) -> bool:
    return executor.ready.is_set()


async def test_a_cancel_asked_again_for_an_order_the_venue_already_closed_reports_that_close_to_the_core():
    """The close of an order reached the Bybit client but not the core (lost between them): the
    core's cancel, asked again, is answered by a lookup that says cancelled, at the simulator."""
    from services.executor.live import VenueExecution
    from shared.venues.bybit.trading import BybitTrading

    key, secret = "k-cancel", "s-cancel"
    server = SimServer(["BTCUSDT"], seed=3, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        trading = BybitTrading(http, base, key, secret)
        bybit = VenueExecution(trading)
        order = f.OrderPlaced(ts_ms=0, trade_id="abc123def456", link_id="abc123def456-LE1", leg="long",
                              purpose="entry", venue="bybit", symbol="BTCUSDT", side="Buy", order_type="Limit",
                              qty=Decimal("0.010"), price=Decimal("30000.0"))  # far below the market: it rests
        assert [type(x) for x in await bybit.place(order)] == [f.OrderAcked]
        await trading.cancel_order("BTCUSDT", order.link_id)  # closed at the venue ...
        bybit.open.discard(order.link_id)  # ... and known to the client, but the core never heard
        again = await bybit.cancel(order.link_id)
        closed = [x for x in again if isinstance(x, f.OrderClosed)]
        assert [(x.link_id, x.status) for x in closed] == [(order.link_id, "cancelled")]
