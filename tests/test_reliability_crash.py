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
from tests.executor_process import Signals, executor_env, facts_of, finish, kill, positions, venue_losses
from tests.figures import figure, scale
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
POINTS = {"signal_read": 0.02, "before_write": 0.01, "after_write": 0.01, "after_leg1": 0.08, "after_leg2": 0.08,
          "before_ack": 0.01}


def points_for(start: int) -> dict[str, float]:
    """The first starts die each at one point in turn, the first time they reach it (so every
    point is met whatever the draws); later ones at every point, at random."""
    names = list(POINTS)
    return {names[start]: 1.0} if start < len(names) else POINTS


async def test_1_sigkill_at_every_named_point_leaves_no_naked_leg_no_duplicate_and_loses_no_event(
        settings, r, tmp_path):
    trades = scale(40, 200)
    log_path = tmp_path / "executor.log"
    log = log_path.open("ab")
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(SYMBOLS, seed=5, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": SYMBOLS})
        env = executor_env(settings, settings.sim_port, SYNTHETIC_HOLD_S="0.4", MAX_CONCURRENT_TRADES="3")
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        stream = settings.redis_key_prefix + "strategy:signals"
        events = settings.redis_key_prefix + "strategy:events"
        signals = Signals(r, settings, "s")
        recovery_s: list[float] = []

        async def start(points: dict[str, float], seed: int):
            """A new executor, once it has decided a signal (or died trying): reading again."""
            failpoints = ",".join(f"{k}={v}" for k, v in points.items())
            last = await r.xrevrange(events, count=1)
            after = last[0][0] if last else b"0-0"
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", stderr=log,
                env={**env, "ARB_FAILPOINTS": failpoints, "ARB_FAILPOINT_SEED": str(seed)})
            while proc.returncode is None and not await _decided_after(r, events, after):
                assert time.monotonic() - started < 30, log_path.read_text()[-3000:]
                await signals.once()  # at the same pace as ever: a start meets no flood of its own
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.15)
            if proc.returncode is None:
                recovery_s.append(time.monotonic() - started)
            return proc

        restarts = 0
        try:
            await wait_for(lambda: r.xlen(settings.redis_key_prefix + "md:books"))
            proc = await start(points_for(0), 0)
            deadline = time.monotonic() + scale(240, 1200)
            while (done := await _taken(r, events)) < trades:
                assert time.monotonic() < deadline, (f"{done} of {trades} trades by the deadline; open: "
                                                     f"{await _open_trades(r, events)}; the executor's log ends:\n"
                                                     f"{log_path.read_text()[-2000:]}")
                if proc.returncode is not None:  # killed at a point: start again at once
                    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
                    restarts += 1
                    proc = await start(points_for(restarts), restarts)
                await signals.once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.15)
            await kill(proc)
            proc = await start({}, 0)  # the last one is not killed: it closes what is open and stops
            await finish(proc, r, events, log_path)
        finally:
            stop.set()
            await feed
            await kill(proc)

    kills = Counter(line.split()[1].rstrip(":") for line in log_path.read_text().splitlines()
                    if line.startswith("failpoint "))
    facts = await facts_of(r, events)
    taken = [x for x in facts if isinstance(x, f.SignalTaken)]
    naked = positions(server)
    venue_orders = list(server.matching.account(key).orders.values())
    duplicates = len(venue_orders) - len({o.link_id for o in venue_orders})
    lost = venue_losses(facts, server)
    decided = {x.signal_id for x in facts if isinstance(x, f.SignalTaken | f.SignalRejected)}
    undecided = [fields[b"id"].decode() for _, fields in await r.xrange(stream)
                 if fields[b"id"].decode() not in decided]
    recovery = sorted(recovery_s[1:])
    p95 = recovery[int(len(recovery) * 0.95)] if recovery else 0.0
    figure(1, f"{restarts} SIGKILLs ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}) over {len(taken)} "
           "trades: naked legs / duplicate venue orders / events lost", f"{len(naked)} / {duplicates} / "
           f"{len(lost) + len(undecided)}", "0 / 0 / 0", not (naked or duplicates or lost or undecided))
    figure(1, "restart to its first signal decided, p95 (a new Python process: imports, replay, reconcile)",
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


async def _open_trades(r, events: str) -> str:
    """The facts of every trade not closed, one per line: what a stuck run is stuck on."""
    facts = await facts_of(r, events)
    closed = {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}
    return "\n".join(repr(x) for x in facts if getattr(x, "trade_id", None) and x.trade_id not in closed)


async def _taken(r, events: str) -> int:
    return sum(1 for _, fields in await r.xrange(events) if fields.get(b"type") == b"signal_taken")


async def _decided_after(r, events: str, after: bytes) -> bool:
    """A signal decided (taken or rejected) in strategy:events after the entry `after`."""
    return any(fields.get(b"type") in (b"signal_taken", b"signal_rejected")
               for _, fields in await r.xrange(events, b"(" + after, "+"))
