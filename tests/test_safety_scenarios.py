"""Each emergency-stop condition, caused by the simulator's faults, against the live executor:
the halt is a fact with its reason, later signals are refused, and nothing is left open at
the venue. Then the kill switch and `arb resume` through the control stream."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.executor import facts as f
from tests.live_venue import Venue, executor_running, live_venue
from tests.test_strategy_service import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
async def venue(settings, r):
    async with live_venue(settings, r) as v:
        yield v


OFF = {"safety_max_failures": 0, "safety_min_success_rate": 0.0, "safety_max_p99_ms": 0.0,
       "safety_max_api_errors": 0}
QUICK = {"synthetic_hold_s": 0.2, "signal_max_age_ms": 60_000}


async def _halt(executor) -> f.TradingHalted | None:
    return next(iter(f_ for f_ in executor.facts_written if isinstance(f_, f.TradingHalted)), None)


async def _settled(executor, n: int) -> bool:
    return len(executor.core.closed) >= n and not executor.core.trades


async def _trade_through(venue: Venue, executor, signals: int) -> None:
    """`signals` signals one after another, each once the last trade has closed (or the halt)."""
    for i in range(signals):
        await venue.signal()
        await wait_for(lambda i=i: _done(executor, i + 1), timeout_s=15)


async def _done(executor, n: int) -> bool:
    return await _settled(executor, n) or (executor.core.stopped is not None and not executor.core.trades)


@pytest.mark.parametrize("faults, limits, signals, reason", [
    # the harder leg refused three times in a row: three failed trades within 60 s
    ({"reject_next": 3, "reject_code": 10001}, {**OFF, "safety_max_failures": 3}, 3, "failures"),
    # five orders refused within 60 s
    ({"reject_next": 5, "reject_code": 10001}, {**OFF, "safety_max_api_errors": 5}, 5, "api_errors"),
    # one good entry, one refused: 50 % of the last 2 entries
    ({"reject_next": 1, "reject_skip": 4, "reject_code": 10001},
     {**OFF, "safety_min_success_rate": 0.9, "safety_success_window": 2}, 2, "success_rate"),
    # every answer 60 ms late: order sent -> the venue's answer above 50 ms
    ({"latency_ms": 60}, {**OFF, "safety_max_p99_ms": 50.0, "safety_latency_samples": 2}, 2, "latency"),
    # a synthetic trade pays both legs' spreads and fees: a loss above $0.01
    ({}, {**OFF, "max_daily_loss": Decimal("0.01")}, 1, "daily_loss"),
])
async def test_each_stop_condition_halts_trading_and_leaves_nothing_open(venue, faults, limits, signals, reason):
    async with executor_running(venue, **QUICK, **limits) as executor:
        if faults:
            await venue.faults(**faults)
        await _trade_through(venue, executor, signals)
        halt = await wait_for(lambda: _halt(executor), timeout_s=10)
        assert halt.reason == reason and halt.action == "close"
        await venue.faults(reject_next=0, latency_ms=0)
        await venue.signal()
        await wait_for(lambda: _rejected(executor, "halted"))
        await wait_for(lambda: _flat(venue, executor))
    assert venue.held() == {} and not venue.account.open_orders()


async def _rejected(executor, reason: str):
    return any(isinstance(x, f.SignalRejected) and x.reason == reason for x in executor.facts_written)


async def _flat(venue: Venue, executor) -> bool:
    return not executor.core.trades and venue.held() == {}


async def test_the_kill_switch_closes_an_open_trade_at_market_and_resume_lifts_it(venue):
    from shared.control import send

    async with executor_running(venue) as executor:  # trades are held 600 s here
        await venue.signal()
        await wait_for(lambda: _active(executor))
        await send(venue.settings, "halt", by="test", detail="arb stop --emergency by test")
        halt = await wait_for(lambda: _halt(executor))
        assert (halt.reason, halt.detail) == ("manual", "arb stop --emergency by test")
        await wait_for(lambda: _flat(venue, executor))
        (closed,) = executor.core.closed.values()
        assert closed.exit.reason == "emergency_stop"
        assert {o.placed.order_type for o in closed.orders.values() if o.placed.purpose == "exit"} == {"Market"}
        state = await venue.r.hgetall(venue.settings.redis_key_prefix + "strategy:portfolio:state")
        assert state[b"trading"] == b"halted" and state[b"halt_reason"] == b"manual"

        await send(venue.settings, "resume", by="test")
        await wait_for(lambda: _resumed(executor))
        await venue.signal()
        await wait_for(lambda: _active(executor))
        state = await venue.r.hgetall(venue.settings.redis_key_prefix + "strategy:portfolio:state")
        assert state[b"trading"] == b"on"
    assert venue.held() == {}


async def _active(executor):
    return next((t for t in executor.core.trades.values() if t.status == "active"), None)


async def _resumed(executor) -> bool:
    return any(isinstance(x, f.TradingResumed) for x in executor.facts_written)
