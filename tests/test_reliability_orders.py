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
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from services.executor import facts as f
from services.sim.auth import LIMITS_PER_S
from tests.figures import figure, scale
from tests.live_venue import SAFETY_OFF, executor_running, live_venue
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
CREATE = "/v5/order/create"


async def trade_one(venue, executor) -> None:
    """One signal after another until one becomes a trade, then until that trade is closed (a
    signal can be refused for the order rate the trade before used)."""
    closed = len(executor.core.closed)
    while True:
        read = executor.counts["signals"]
        await venue.signal()
        await wait_for(lambda n=read: _read_past(executor, n), timeout_s=20)
        if executor.core.trades or len(executor.core.closed) > closed:
            break
        await asyncio.sleep(0.1)
    await wait_for(lambda: _idle(executor), timeout_s=20)


async def _read_past(executor, n: int) -> bool:
    return executor.counts["signals"] > n


async def _idle(executor) -> bool:
    return not executor.core.trades


async def test_5_dropped_create_answers_are_resolved_by_order_link_id_and_never_make_a_second_order(settings, r):
    trades = scale(20, 100)
    async with live_venue(settings, r) as venue:
        await venue.faults(drop_order_responses_fraction=0.3)
        async with executor_running(venue, synthetic_hold_s=0.2, **SAFETY_OFF) as executor:
            for _ in range(trades):
                await trade_one(venue, executor)
        journal = list(venue.server.journal)
        account, lot = venue.account, venue.server.model.states["BTCUSDT"].inst.lot
        assert venue.positions() == {}
    dropped = {q.link_id for q in journal if q.path == CREATE and q.dropped}
    placed = {x.link_id for x in executor.facts_written if isinstance(x, f.OrderPlaced)}
    at_venue = [o.link_id for o in account.orders.values()]
    duplicates = len(at_venue) - len(set(at_venue)) + len(set(at_venue) - placed)
    # resolved: what the facts say of the order is what the venue has, fills and state
    filled: dict[str, Decimal] = defaultdict(Decimal)
    closed = set()
    for x in executor.facts_written:
        if isinstance(x, f.OrderFilled):
            filled[x.link_id] += x.qty
        elif isinstance(x, f.OrderClosed):
            closed.add(x.link_id)
    resolved = 0
    for link_id in dropped:
        order = account.orders[account.link_ids[link_id]]
        whole = order.status == "Filled" or link_id in closed
        resolved += filled[link_id] == order.filled_lots * lot and whole
    share = 100.0 * resolved / len(dropped) if dropped else 0.0
    figure(5, f"{len(dropped)} of {sum(q.path == CREATE for q in journal)} create answers dropped over {trades} "
           f"trades: duplicate orders / resolved by orderLinkId", f"{duplicates} / {share:.0f} %", "0 / 100 %",
           duplicates == 0 and share == 100.0)
    assert dropped, "the fault dropped nothing: the test measured nothing"
    assert duplicates == 0
    assert resolved == len(dropped)
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
                await trade_one(venue, executor)
        journal = [q for q in venue.server.journal if q.path == CREATE and q.ret_code == 0]
        assert venue.positions() == {}
    facts = executor.facts_written
    leg_outs = [x for x in facts if isinstance(x, f.LegOut) and x.phase == "entry" and x.action == "hedge"]
    unwinds = [q for q in journal if q.link_id and q.link_id[-2] == "U"]
    outcomes = Counter(x.outcome for x in facts if isinstance(x, f.TradeClosed))
    # naked: from the first leg's fill to the unwind's, both stamped by the venue
    first_fill: dict[str, int] = {}
    unwound: dict[str, int] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            kind = x.link_id.rsplit("-", 1)[1]
            if kind.endswith("E1"):
                first_fill.setdefault(x.trade_id, x.ts_ms)
            elif kind[1] == "U":
                unwound[x.trade_id] = x.ts_ms  # its last fill
    naked_ms = sorted(unwound[t] - first_fill[t] for t in unwound)
    reduce_only = 100.0 * sum(q.reduce_only for q in unwinds) / len(unwinds) if unwinds else 0.0
    figure(7, f"second leg refused in {trades} trades: leg-out events / unwinds sent reduce-only", f"{len(leg_outs)} / "
           f"{reduce_only:.0f} % of {len(unwinds)}", f"{trades} / 100 %", len(leg_outs) == trades and reduce_only == 100)
    figure(7, "longest naked exposure (first leg filled -> unwound, venue clock)",
           f"{naked_ms[-1]} ms (median {naked_ms[len(naked_ms) // 2]} ms, p95 {naked_ms[int(len(naked_ms) * 0.95)]} ms)",
           "reported", True)
    assert len(leg_outs) == trades and outcomes == {"emergency_closed": trades}
    assert len(unwinds) == trades and reduce_only == 100.0
    assert len(naked_ms) == trades
