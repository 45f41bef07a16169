"""SIGKILL the executor (live, synthetic, against the simulated Bybit) at random moments while
it trades, restart it each time, then stop it properly: no naked leg at the venue, no order
placed twice, every fill at the venue known to the facts, and the read models equal the
replay of the facts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from decimal import Decimal

import pytest

from services.executor import facts as f
from services.executor.rebuild import rebuild
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.test_strategy_service import wait_for

pytestmark = pytest.mark.redis
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
KILLS = 6


async def test_sigkill_at_random_points_leaves_no_naked_leg_no_duplicate_and_an_exact_ledger(settings, r, tmp_path):
    rng = random.Random(7)
    log_path = tmp_path / "executor.log"
    log = log_path.open("ab")
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(SYMBOLS, seed=5, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base:
        port = base.rsplit(":", 1)[1]
        settings = settings.model_copy(update={"sim_port": int(port), "symbols_to_trade": SYMBOLS})
        env = {**os.environ, "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": settings.redis_key_prefix,
               "VENUE_ENV": "sim", "SIM_PORT": port, "SYMBOLS_TO_TRADE": ",".join(SYMBOLS), "EXECUTION": "live",
               "SYNTHETIC_HOLD_S": "0.4", "MAX_CONCURRENT_TRADES": "3", "SIM_API_KEY": key, "SIM_API_SECRET": secret,
               "LOG_LEVEL": "INFO",
               # kills cut entries short, which the safety stops count as failures: off here, where
               # what is checked is the recovery (tests/test_executor_safety.py checks the stops)
               "SAFETY_MAX_FAILURES": "0", "SAFETY_MIN_SUCCESS_RATE": "0", "SAFETY_MAX_P99_MS": "0",
               "SAFETY_MAX_API_ERRORS": "0"}
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        stream = settings.redis_key_prefix + "strategy:signals"
        events = settings.redis_key_prefix + "strategy:events"
        n = 0

        async def signals_for(seconds: float) -> None:
            nonlocal n
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                await r.xadd(stream, {"id": f"s{n}", "mode": "synthetic", "symbol": SYMBOLS[n % 3],
                                      "long_venue": "bybit", "short_venue": "bybit_synthetic", "spread_bps": "50",
                                      "funding_delta_8h": "0.01", "confidence": "80", "depth_long_usd": "200000",
                                      "depth_short_usd": "200000", "created_ms": str(time.time_ns() // 1_000_000)})
                n += 1
                await asyncio.sleep(0.15)

        async def start():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", env=env, stderr=log)
            await wait_for(lambda: _reading(r, stream), timeout_s=30)
            return proc

        try:
            await wait_for(lambda: r.xlen(settings.redis_key_prefix + "md:books"))
            for _ in range(KILLS):
                proc = await start()
                await signals_for(rng.uniform(0.3, 1.5))
                proc.kill()  # SIGKILL: wherever it is
                await proc.wait()
                await asyncio.sleep(0.4)  # its consumer goes idle
            proc = await start()
            await signals_for(1.0)
            with contextlib.suppress(TimeoutError):  # the checks below say what is left open
                await wait_for(lambda: _facts(r, events, lambda fs: _all_closed(fs)), timeout_s=20)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log_path.read_text()[-3000:]
        finally:
            stop.set()
            await feed
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    account = server.matching.account(key)
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in await r.xrange(events)]
    placed = {x.link_id: x for x in facts if isinstance(x, f.OrderPlaced)}
    taken = [x for x in facts if isinstance(x, f.SignalTaken)]
    assert len(taken) >= 10, "too few trades to mean anything"
    # no naked leg: every position at the venue is flat, and every trade closed
    assert {k: p.lots for k, p in account.positions.items() if p.lots} == {}
    assert {x.trade_id for x in facts if isinstance(x, f.TradeClosed)} == {x.trade_id for x in taken}
    # no duplicate: each order at the venue is one the facts placed, once; each fill is known
    venue_orders = list(account.orders.values())
    assert len({o.link_id for o in venue_orders}) == len(venue_orders)
    assert {o.link_id for o in venue_orders} <= set(placed)
    fills: dict[str, Decimal] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            fills[x.link_id] = fills.get(x.link_id, Decimal(0)) + x.qty
    for o in venue_orders:
        lot = server.model.states[o.symbol].inst.lot
        assert fills.get(o.link_id, Decimal(0)) == o.filled_lots * lot, o.link_id
    # the ledger is the replay of the facts
    assert (await rebuild(settings, "synthetic", write=False)).differences == []
    pnl = sum((x.pnl_usd for x in facts if isinstance(x, f.TradeClosed)), Decimal(0))
    state = await r.hgetall(settings.redis_key_prefix + "strategy:portfolio:state")
    assert Decimal(state[b"cumulative_pnl"].decode()) == pnl
    assert Decimal(state[b"available_capital"].decode()) == Decimal(20_000) + pnl


async def _reading(r, stream: str) -> bool:
    """The executor's consumer has just read: its group exists and it was idle under 300 ms
    (a killed one's idle time only grows)."""
    try:
        consumers = await r.xinfo_consumers(stream, "executor")
    except Exception:  # no stream or no group yet
        return False
    return any(c["name"] == b"executor-1" and c["idle"] < 300 for c in consumers)


async def _facts(r, events: str, check) -> bool:
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in await r.xrange(events)]
    return check(facts)


def _all_closed(facts) -> bool:
    taken = {x.trade_id for x in facts if isinstance(x, f.SignalTaken)}
    closed = {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}
    return bool(taken) and taken == closed
