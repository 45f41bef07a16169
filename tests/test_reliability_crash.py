"""Reliability item 1: SIGKILL the executor (live, synthetic, against the simulated Bybit) at
its named points (shared/failpoints.py: after reading a signal, before and after writing the
facts, after each entry leg's fill, before the XACK) while it trades, restart it each time,
then stop it properly.

Figures: naked legs left at the venue = 0, duplicate venue orders = 0, events lost = 0
(orders at the venue without their fact, fills at the venue the facts do not hold, signals
read with no decision), the ledger equal to the replay of the facts, and the time from a
restart to reading signals again (p95)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from decimal import Decimal

import pytest

from services.executor import facts as f
from services.executor.rebuild import rebuild
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.figures import figure, scale
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
POINTS = {"signal_read": 0.04, "before_write": 0.01, "after_write": 0.01, "after_leg1": 0.08, "after_leg2": 0.08,
          "before_ack": 0.01}


async def test_1_sigkill_at_every_named_point_leaves_no_naked_leg_no_duplicate_and_loses_no_event(
        settings, r, tmp_path):
    trades = scale(40, 200)
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
        recovery_s: list[float] = []

        async def signal_once() -> None:
            nonlocal n
            await r.xadd(stream, {"id": f"s{n}", "mode": "synthetic", "symbol": SYMBOLS[n % 3],
                                  "long_venue": "bybit", "short_venue": "bybit_synthetic", "spread_bps": "50",
                                  "funding_delta_8h": "0.01", "confidence": "80", "depth_long_usd": "200000",
                                  "depth_short_usd": "200000", "created_ms": str(time.time_ns() // 1_000_000)})
            n += 1

        async def start(points: dict[str, float], seed: int):
            failpoints = ",".join(f"{k}={v}" for k, v in points.items())
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", stderr=log,
                env={**env, "ARB_FAILPOINTS": failpoints, "ARB_FAILPOINT_SEED": str(seed)})
            await wait_for(lambda: _reading(r, stream, proc), timeout_s=30)
            if proc.returncode is None:
                recovery_s.append(time.monotonic() - started)
            return proc

        restarts = 0
        try:
            await wait_for(lambda: r.xlen(settings.redis_key_prefix + "md:books"))
            proc = await start(POINTS, 0)
            while await _taken(r, events) < trades:
                if proc.returncode is not None:  # killed at a point: start again at once
                    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
                    restarts += 1
                    proc = await start(POINTS, restarts)
                await signal_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            proc = await start({}, 0)  # the last one is not killed: it closes what is open and stops
            with contextlib.suppress(TimeoutError):  # the checks below say what is left open
                await wait_for(lambda: _facts(r, events, lambda fs: _all_closed(fs)), timeout_s=30)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, log_path.read_text()[-3000:]
        finally:
            stop.set()
            await feed
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    kills = Counter(line.split()[1].rstrip(":") for line in log_path.read_text().splitlines()
                    if line.startswith("failpoint "))
    account = server.matching.account(key)
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in await r.xrange(events)]
    placed = {x.link_id: x for x in facts if isinstance(x, f.OrderPlaced)}
    taken = [x for x in facts if isinstance(x, f.SignalTaken)]
    naked = {k: p.lots for k, p in account.positions.items() if p.lots}
    venue_orders = list(account.orders.values())
    duplicates = len(venue_orders) - len({o.link_id for o in venue_orders})
    fills: dict[str, Decimal] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            fills[x.link_id] = fills.get(x.link_id, Decimal(0)) + x.qty
    lot = {s: server.model.states[s].inst.lot for s in SYMBOLS}
    lost = [o.link_id for o in venue_orders if o.link_id not in placed
            or fills.get(o.link_id, Decimal(0)) != o.filled_lots * lot[o.symbol]]
    decided = {x.signal_id for x in facts if isinstance(x, f.SignalTaken | f.SignalRejected)}
    undecided = [fields[b"id"].decode() for _, fields in await r.xrange(stream)
                 if fields[b"id"].decode() not in decided]
    recovery = sorted(recovery_s[1:])
    p95 = recovery[int(len(recovery) * 0.95)] if recovery else 0.0
    figure(1, f"{restarts} SIGKILLs ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}) over {len(taken)} "
           "trades: naked legs / duplicate venue orders / events lost", f"{len(naked)} / {duplicates} / "
           f"{len(lost) + len(undecided)}", "0 / 0 / 0", not (naked or duplicates or lost or undecided))
    figure(1, "restart to reading signals again, p95 (a new Python process: imports, replay, reconcile)",
           f"{p95:.2f} s (max {recovery[-1] if recovery else 0:.2f} s)", "reported", True)
    assert len(taken) >= trades and restarts >= 5, "too few trades or kills to mean anything"
    assert set(kills) == set(POINTS), f"not every point was reached: {kills}"
    # no naked leg: every position at the venue is flat, and every trade closed
    assert naked == {}
    assert {x.trade_id for x in facts if isinstance(x, f.TradeClosed)} == {x.trade_id for x in taken}
    # no duplicate: each order at the venue is one the facts placed, once; each fill is known
    assert duplicates == 0 and lost == [] and undecided == []
    # the ledger is the replay of the facts
    assert (await rebuild(settings, "synthetic", write=False)).differences == []
    pnl = sum((x.pnl_usd for x in facts if isinstance(x, f.TradeClosed)), Decimal(0))
    state = await r.hgetall(settings.redis_key_prefix + "strategy:portfolio:state")
    assert Decimal(state[b"cumulative_pnl"].decode()) == pnl
    assert Decimal(state[b"available_capital"].decode()) == Decimal(20_000) + pnl


async def _taken(r, events: str) -> int:
    return sum(1 for _, fields in await r.xrange(events) if fields.get(b"type") == b"signal_taken")


async def _reading(r, stream: str, proc) -> bool:
    """The executor's consumer has just read: its group exists and it was idle under 300 ms
    (a killed one's idle time only grows). A process that died before that counts as read:
    the caller sees its exit."""
    if proc.returncode is not None:
        return True
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
