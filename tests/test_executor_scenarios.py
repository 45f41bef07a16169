"""The synthetic test mode's execution scenarios (seed tasks 23-29) against the simulator's
Bybit API, driving the live client: signed orders, the private stream, and the simulator's
fault injection. Signals are written to strategy:signals as the strategy writes them."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from services.executor import facts as f
from services.executor.service import ExecutorService
from tests.live_venue import SYMBOL, Venue, executor_running, live_venue
from tests.test_strategy_service import wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
async def venue(settings, r):
    async with live_venue(settings, r) as v:
        yield v


def _trade(executor: ExecutorService):
    return next(iter(list(executor.core.trades.values()) + list(executor.core.closed.values())), None)


async def _status(executor: ExecutorService, *statuses: str):
    trade = _trade(executor)
    return trade if trade is not None and trade.status in statuses else None


async def test_scenario_1_happy_path_both_legs_fill_within_500_ms_and_pnl_is_tracked(venue):
    async with executor_running(venue) as executor:
        await venue.signal()
        trade = await wait_for(lambda: _status(executor, "active"))
        lots = int(trade.taken.qty / venue.server.model.states[SYMBOL].inst.lot)
        assert venue.held() == {1: lots, 2: -lots}
        taken, active = venue.facts(executor, f.SignalTaken)[0], venue.facts(executor, f.TradeActive)[0]
        assert active.ts_ms - taken.ts_ms < 500
        pnl = executor.core.unrealised_pnl(trade)
        assert pnl is not None and -trade.fees - Decimal(50) < pnl < 0  # both legs' spreads and fees, no more
    assert trade.status == "closed" and venue.held() == {}


async def test_scenario_2_a_leg_that_does_not_fill_is_cancelled_and_nothing_is_left_open(venue):
    await venue.faults(unfilled=True)
    async with executor_running(venue) as executor:
        await venue.signal()
        trade = await wait_for(lambda: _status(executor, "closed"))
    assert (trade.closed.outcome, trade.closed.reason) == ("rejected", "harder_leg_timeout")
    assert [o.placed.purpose for o in trade.orders.values()] == ["entry"]  # the easier leg never went
    assert venue.held() == {} and not venue.account.open_orders()
    order = next(iter(venue.account.orders.values()))
    assert order.status == "Cancelled" and order.link_id == trade.legs(trade.taken.harder)[0].link_id


async def test_scenario_3_a_failed_hedge_is_closed_by_reduce_only_orders_in_under_a_second(venue):
    async with executor_running(venue) as executor:
        # the harder leg goes through; the easier leg and three hedges are refused; the unwind is not
        await venue.faults(reject_skip=1, reject_next=4, reject_code=10016, reject_message="Server error")
        await venue.signal()
        trade = await wait_for(lambda: _status(executor, "closed"))
    assert trade.closed.outcome == "emergency_closed"
    purposes = [o.placed.purpose for o in trade.orders.values()]
    assert purposes == ["entry", "entry", "hedge", "hedge", "hedge", "unwind"]
    unwind = venue.order(trade.legs(trade.taken.harder, "unwind")[0].link_id)
    assert unwind.reduce_only and unwind.order_type == "Market" and unwind.status == "Filled"
    filled_at = trade.legs(trade.taken.harder, "entry")[0].done_ms
    assert trade.closed.ts_ms - filled_at < 1_000
    assert venue.held() == {}
    assert executor.core.portfolio.leg_out_count == 2 and executor.core.portfolio.emergency_closes == 1


async def test_scenario_4_a_partial_fill_is_retried_to_the_full_quantity(venue):
    async with executor_running(venue) as executor:
        await venue.faults(partial_fill_fraction=0.5, partial_fill_orders=1)
        await venue.signal()
        trade = await wait_for(lambda: _status(executor, "active"))
    entries = trade.legs(trade.taken.harder, "entry")
    first = entries[0]  # capped at half its size (less if the touch had less), the rest cancelled by the venue
    assert 0 < first.filled <= first.placed.qty / 2 and first.closed_status == "cancelled"
    assert [o.placed.qty for o in entries[1:]] == [trade.taken.qty - first.filled]  # the rest, sent again
    assert trade.filled(trade.taken.harder, "entry") == trade.taken.qty


async def test_scenario_5_a_burst_of_100_signals_a_second_stays_orderly(venue):
    async with executor_running(venue, max_concurrent_trades=3) as executor:
        for _ in range(3):
            started = time.monotonic()
            for _ in range(100):
                await venue.signal()
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        await venue.signal(created_ms=time.time_ns() // 1_000_000 - 60_000)  # read late: stale
        stream = venue.settings.redis_key_prefix + "strategy:signals"
        await wait_for(lambda: _all_read(venue, stream, executor, 301))
    rejected = executor.core.rejections
    open_trades, most = set(), 0
    for fact in executor.facts_written:  # one pair: never more than one trade open at a time
        if isinstance(fact, f.SignalTaken):
            open_trades.add(fact.trade_id)
        elif isinstance(fact, f.TradeClosed):
            open_trades.discard(fact.trade_id)
        most = max(most, len(open_trades))
    taken = len(executor.core.closed) + len(executor.core.trades)
    assert most == 1 and taken + rejected["pair_active"] == 300 and rejected["stale_signal"] == 1
    assert await venue.r.xlen(stream) == 301  # nothing trimmed
    assert venue.held() == {}  # and the trade was closed at the stop


async def _all_read(venue: Venue, stream: str, executor: ExecutorService, n: int) -> bool:
    groups = {g["name"]: g for g in await venue.r.xinfo_groups(stream)}
    group = groups.get(b"executor")
    return executor.counts["signals"] >= n and group is not None and group["pending"] == 0


async def test_scenario_6_fills_made_while_the_private_stream_is_down_are_caught_up(venue):
    async with executor_running(venue) as executor:
        stream = executor.private["bybit"]
        async with venue.http.post(f"{venue.base}/admin/drop") as response:  # every WebSocket closes
            assert response.status == 200
        await venue.signal()  # orders go over REST while the stream reconnects
        trade = await wait_for(lambda: _status(executor, "active"), timeout_s=10)
        assert stream.connects >= 2
        lot = venue.server.model.states[SYMBOL].inst.lot
        at_venue = {o.link_id: o.filled_lots * lot for o in venue.account.orders.values()}
        assert {o.link_id: o.filled for o in trade.orders.values()} == at_venue
        assert at_venue and all(at_venue.values())


def _venue_cash(venue: Venue) -> Decimal:
    """What the simulator's own execution list says the account made: sells minus buys minus
    fees, funding included (the venue's side of every fill, computed by the venue)."""
    cash = Decimal(0)
    for x in venue.account.executions:
        if x.exec_type == "Trade":
            cash += (x.value if x.side == "Sell" else -x.value) - x.fee
        else:  # Funding: fee is what the account paid
            cash -= x.fee
    return cash


async def test_property_1_the_venue_account_moved_exactly_what_the_ledger_says(venue):
    """Capital conservation checked against the venue, not against the ledger's own identity:
    the simulator's wallet and its execution list (its fills, fees and funding) must equal the
    executor's cumulative PnL to the last digit once everything is flat."""
    from services.sim.matching import START_BALANCE_USDT
    from tests.live_venue import SAFETY_OFF

    async with executor_running(venue, **SAFETY_OFF, synthetic_hold_s=0.3, order_rate_limit_per_s=1000) as executor:
        for n, faults in enumerate((
            {},  # both legs fill
            {"partial_fill_fraction": 0.5, "partial_fill_orders": 1},  # a partial fill, the rest sent again
            {"reject_skip": 1, "reject_next": 1},  # the easier leg refused: a leg-out, hedged at market
            {"reject_skip": 1, "reject_next": 4},  # the hedges refused too: an emergency close
        ), start=1):
            await venue.faults(**faults)
            await venue.signal()
            await wait_for(lambda n=n: _closed(executor, n))
            await venue.faults(reject_next=0, partial_fill_orders=0)
    p = executor.core.portfolio
    assert venue.held() == {} and not executor.core.trades and p.closed_trades == 4
    assert p.leg_out_count >= 2 and p.emergency_closes == 1
    assert venue.account.wallet - START_BALANCE_USDT == p.cumulative_pnl == _venue_cash(venue)
    assert p.open_exposure == 0 and p.available == p.starting_capital + p.cumulative_pnl


async def _closed(executor: ExecutorService, n: int) -> bool:
    """n trades have closed (each signal is the same pair: the next waits for the last to close)."""
    return len(executor.core.closed) >= n
