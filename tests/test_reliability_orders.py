"""Reliability items 5, 6 and 7: the order path under the venue's faults, live against the
simulator's Bybit API (signed REST, private stream, matching engine), with the executor's
safety stops off so that every trade goes through what is measured. What the venue saw is
its own journal of signed requests (`SimServer.journal`), not the executor's word.

5. 30 % of the order creates are carried out but their answers dropped [duplicate orders = 0,
   dropped creates resolved by orderLinkId = 100 %].
6. Bursts of 100 signals on four symbols [requests per endpoint in any second <= its limit,
   10006 received <= 1].
7. The second leg refused in 50 trades, with its hedges [leg-out events = 50, unwinds sent
   reduce-only = 100 %, longest naked exposure in ms].
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.executor import facts as f
from services.sim.auth import LIMITS_PER_S
from tests.executor_process import dropped_answers, refused_second_legs
from tests.figures import figure, scale
from tests.live_venue import SAFETY_OFF, executor_running, live_venue, trade_one
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
CREATE = "/v5/order/create"


async def test_5_dropped_create_answers_are_resolved_by_order_link_id_and_never_make_a_second_order(settings, r):
    trades = scale(20, 100)
    async with live_venue(settings, r) as venue:
        await venue.faults(drop_order_responses_fraction=0.3)
        async with executor_running(venue, synthetic_hold_s=0.2, **SAFETY_OFF) as executor:
            for _ in range(trades):
                await trade_one(executor, venue.signal)
        assert venue.positions() == {}
        dropped_answers(executor.facts_written, list(venue.server.journal), venue.server, trades)
    assert len(executor.core.closed) == trades


async def test_6_bursts_of_100_signals_stay_within_every_rate_limit(settings, r):
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")
    bursts = scale(3, 10)
    async with live_venue(settings, r, symbols) as venue:
        async with executor_running(venue, synthetic_hold_s=0.3, max_concurrent_trades=4, **SAFETY_OFF) as executor:
            for _ in range(bursts):
                started = time.monotonic()
                for i in range(100):
                    await venue.signal(symbol=symbols[i % 4])
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            await wait_for(lambda: _all_read(executor, 100 * bursts), timeout_s=30)
        journal = [q for q in venue.server.journal if q.api_key == venue.key]
        assert venue.positions() == {}
    busiest = {path: _busiest_second([q.ts_ms for q in journal if q.path == path]) for path in {q.path for q in journal}}
    over = {p: n for p, n in busiest.items() if n > LIMITS_PER_S.get(p, 50)}
    limited = sum(q.ret_code == 10006 for q in journal)
    taken = sum(isinstance(x, f.SignalTaken) for x in executor.facts_written)
    figure(6, f"{bursts} bursts of 100 signals ({taken} trades): creates in the busiest second (limit "
           f"{LIMITS_PER_S[CREATE]}) / endpoints over their limit / 10006 received",
           f"{busiest.get(CREATE, 0)} / {len(over)} / {limited}", f"<= {LIMITS_PER_S[CREATE]} / 0 / <= 1",
           not over and limited <= 1)
    assert busiest[CREATE] >= LIMITS_PER_S[CREATE] - 2, "the bursts did not load the create limit"
    assert over == {}
    assert limited <= 1


def _busiest_second(stamps: list[int]) -> int:
    """The most requests in any 1,000 ms window."""
    stamps.sort()
    most = start = 0
    for end, ts in enumerate(stamps):
        while ts - stamps[start] >= 1000:
            start += 1
        most = max(most, end - start + 1)
    return most


async def _all_read(executor, n: int) -> bool:
    return executor.counts["signals"] >= n and not executor.core.trades


async def test_7_a_refused_second_leg_is_a_leg_out_unwound_reduce_only(settings, r):
    trades = 50
    async with live_venue(settings, r) as venue:
        # the second entry order and every hedge of it: refused as Bybit refuses a leg without margin
        await venue.faults(reject_link_ids=r"E2$|H\d+$", reject_code=110007, reject_message="ab not enough for new order")
        async with executor_running(venue, **SAFETY_OFF) as executor:
            for _ in range(trades):
                await trade_one(executor, venue.signal)
        assert venue.positions() == {}
    refused_second_legs(executor.facts_written, list(venue.server.journal), trades)
