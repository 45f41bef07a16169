"""The executor core's decisions (core.py), each at and either side of its boundary: which signals
are taken, how orders are placed, timed, retried, cancelled and hedged, exits and restarts.

The market: binance 100,000.0 / 100,000.1 (long leg), okx 100,700.0 / 100,700.1 (short leg),
20 levels of 2 BTC. Taker fees: binance 4 bps, okx 5 bps (services/strategy/costs.py), so a
round trip costs 2 x (4 + 5) = 18 bps. The default signal: 70 bps, +0.0004 funding per 8 h,
depth $200,000 a leg: size min(0.5 x $20,000, (70 - 18) / 70 x $20,000, $100,000, 1 % x $20,000 /
118 bps = $16,949) = $10,000; limits 5 bps through the touch on the 0.1 tick: the long buys at
100,000.1 x 1.0005 = 100,050.15 -> 100,050.1 (down), the short sells at 100,700.0 x 0.9995 =
100,649.65 -> 100,649.7 (up); qty $10,000 / 100,349.9 (their mean) = 0.09965 -> 0.099 BTC.

Most tests drive the core alone ("bare"): its orders go to no venue, and each test writes the
venue's reports (fills, closes) itself, at the millisecond it wants.
"""

from __future__ import annotations

import hashlib
import itertools
from decimal import Decimal as D

import pytest

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, SignalIn
from services.executor.sizing import Grid
from tests.executor_market import SYMBOL, T0, Desk

QTY = D("0.099")
_fill_ids = itertools.count()


def _books(desk: Desk) -> Desk:
    desk.book("binance", 100_000.0, 100_000.1)
    desk.book("okx", 100_700.0, 100_700.1)
    return desk


def _signal(sid: str = "s1", long_venue: str = "binance", short_venue: str = "okx", spread: float = 70.0,
            funding: float = 0.0004, confidence: int = 80, depth: float = 200_000.0, created_ms: int = T0,
            mode: str = "cross") -> SignalIn:
    return SignalIn(id=sid, mode=mode, symbol=SYMBOL, long_venue=long_venue, short_venue=short_venue,
                    spread_bps=spread, funding_delta_8h=funding, confidence=confidence, depth_long_usd=depth,
                    depth_short_usd=depth, created_ms=created_ms)


def _bare(config: ExecConfig | None = None, venues=("binance", "okx", "bybit")) -> Desk:
    """A desk whose books are set (bybit's as okx's); the core's orders are not routed to its paper venue."""
    desk = _books(Desk(config, venues))
    desk.book("bybit", 100_700.0, 100_700.1)
    return desk


def _send(desk: Desk, signal: SignalIn | None = None, at: int = 0) -> list:
    return desk.core.on_signal(signal or _signal(), T0 + at)


def _placed(facts: list) -> list[f.OrderPlaced]:
    return [x for x in facts if isinstance(x, f.OrderPlaced)]


def _of(facts: list, kind: type) -> list:
    return [x for x in facts if isinstance(x, kind)]


def _fill(desk: Desk, order: f.OrderPlaced, at: int, qty: D | None = None, price: D | None = None) -> list:
    """The venue fills `order` (all of it unless `qty`) at T0 + `at`, at its limit unless `price`."""
    fill = f.OrderFilled(ts_ms=T0 + at, trade_id=order.trade_id, link_id=order.link_id,
                         fill_id=f"x{next(_fill_ids)}", qty=order.qty if qty is None else qty,
                         price=price or order.price or D(100_000), fee=D(0), maker=False)
    return desk.core.on_report(fill, T0 + at)


def _close(desk: Desk, order: f.OrderPlaced, at: int, status: str = "cancelled") -> list:
    return desk.core.on_report(f.OrderClosed(ts_ms=T0 + at, trade_id=order.trade_id, link_id=order.link_id,
                                             status=status), T0 + at)


def _rejection(facts: list) -> tuple[str, str] | None:
    rejected = _of(facts, f.SignalRejected)
    return (rejected[0].reason, rejected[0].detail) if rejected else None


# ---------------------------------------------------------------------- which signals are taken


@pytest.mark.parametrize("change, rejection", [
    (dict(created_ms=T0 - 2_000), None),  # 2 s old: still fresh (the seed: older than 2 s is stale)
    (dict(created_ms=T0 - 2_001), ("stale_signal", "2001 ms old")),
    (dict(confidence=70), None),  # the seed's minimum confidence, 70, is enough
    (dict(confidence=69), ("confidence", "69 < 70")),
    (dict(mode="synthetic"), ("mode", "a synthetic signal, this executor trades cross")),
    (dict(long_venue="gate"), ("no_instrument", "no order grid for BTCUSDT on gate")),
    (dict(short_venue="gate"), ("no_instrument", "no order grid for BTCUSDT on gate")),
    # depth $199.98: half of it, $99.99, is below the $100 floor
    (dict(depth=199.98), ("too_small", "$99.99 of $20000 available")),
    # depth $200: $100.00 is the floor itself, so it is sized; 100 / 100,349.9 = 0.000996 BTC is no lot
    (dict(depth=200.0), ("grid", "$100.00 at 100349.9 is 0.000, below the minimum quantity 0.001")),
    # 20 bps, no funding: size (20 - 18) / 20 x $20,000 = $2,000; slippage 2 x 2 x (2 + 2,000 /
    # 200,000 x 3) = 8.12 bps; 20 - 18 - 8.12 = -6.12 bps of $2,000 = -$1.224
    (dict(spread=20.0, funding=0.0), ("unprofitable_at_size", "$-1.22 at $2000.00")),
])
def test_a_signal_is_rejected_with_the_reason_and_detail_the_rejected_signals_stream_shows(change, rejection):
    desk = _bare()
    facts = _send(desk, _signal(**change))
    assert _rejection(facts) == rejection
    assert bool(_placed(facts)) == (rejection is None)  # a rejected signal sends no order
    if rejection:
        assert desk.core.rejections == {rejection[0]: 1} and not desk.core.trades


def test_a_taken_signal_reserves_its_size_and_sends_the_harder_leg_first_at_the_far_touch_through_5_bps():
    desk = _bare()
    facts = _send(desk)
    [taken] = _of(facts, f.SignalTaken)
    trade_id = hashlib.sha256(b"s1").hexdigest()[:12]
    # projected: 70 - 18 fees + 4 funding - 2 x 2 x (2 + 10,000 / 200,000 x 3 = 2.15) = 47.4 bps of $10,000
    assert (taken.trade_id, taken.harder, taken.qty, taken.size_usd, taken.long_price, taken.short_price,
            taken.projected_profit_usd) == (trade_id, "short", QTY, D("10000.00"), D("100050.1"), D("100649.7"),
                                            D("47.40"))
    assert (taken.long_venue, taken.short_venue, taken.signal_long_venue, taken.signal_short_venue, taken.mode,
            taken.entry_spread_bps, taken.funding_delta_8h, taken.confidence, taken.signal_ms) == (
        "binance", "okx", "binance", "okx", "cross", 70.0, 0.0004, 80, T0)
    # okx is harder to fill than binance: only the short leg goes, a sell at the bid through 5 bps
    assert _placed(facts) == [f.OrderPlaced(
        ts_ms=T0, trade_id=trade_id, link_id=f"{trade_id}-SE1", leg="short", purpose="entry", venue="okx",
        symbol=SYMBOL, side="Sell", order_type="Limit", qty=QTY, price=D("100649.7"), reduce_only=False,
        position_idx=0, touch=D("100700.0"))]
    assert desk.core.portfolio.available == D("10000.00")
    assert desk.core.next_deadline_ms() == T0 + 500  # the harder leg's timeout


def test_a_long_harder_leg_buys_at_the_ask_through_5_bps_rounded_down_to_the_tick():
    desk = _bare()
    # long okx, short binance: okx (the long leg) is harder. Buy at 100,700.1 x 1.0005 = 100,750.45005
    # -> 100,750.4; the short sells at 100,000.0 x 0.9995 = 99,950.0 (on the tick already)
    [taken] = _of(_send(desk, _signal(long_venue="okx", short_venue="binance")),
                  f.SignalTaken)
    [order] = desk.core.trades[taken.trade_id].orders.values()
    assert (taken.harder, taken.long_price, taken.short_price) == ("long", D("100750.4"), D("99950.0"))
    assert (order.placed.leg, order.placed.side, order.placed.venue, order.placed.price, order.placed.touch,
            order.placed.link_id) == ("long", "Buy", "okx", D("100750.4"), D("100700.1"), f"{taken.trade_id}-LE1")


def test_a_halted_executor_rejects_signals_with_why_and_takes_them_again_once_resumed():
    desk = _bare()
    halt = desk.core.halt("manual", "the operator's word", T0, action="keep")
    assert [(h.reason, h.detail, h.action) for h in _of(halt, f.TradingHalted)] == [
        ("manual", "the operator's word", "keep")]
    assert desk.core.halt("manual", "again", T0) == []  # halted already: nothing new
    assert _rejection(_send(desk, _signal("a"))) == ("halted", "manual: the operator's word")
    assert [x.by for x in _of(desk.core.resume(T0 + 1, by="ops"), f.TradingResumed)] == ["ops"]
    assert desk.core.resume(T0 + 2) == []  # nothing in force
    assert _rejection(_send(desk, _signal("b"), at=2)) is None


def test_shutting_down_rejects_new_signals():
    desk = _bare()
    desk.core.shutdown(T0)
    assert _rejection(_send(desk)) == ("halted", "shutting down")


def test_at_most_max_concurrent_trades_are_open_and_one_per_pair():
    desk = _bare(ExecConfig(max_concurrent_trades=2))
    assert _rejection(_send(desk, _signal("a"))) is None
    assert _rejection(_send(desk, _signal("b"))) == ("pair_active", "")  # the same symbol and venues
    assert _rejection(_send(desk, _signal("c", long_venue="okx", short_venue="binance", spread=70.0))) is None
    assert _rejection(_send(desk, _signal("d", short_venue="bybit"))) == ("max_concurrent", "2 trades open")
    assert _send(desk, _signal("a")) == []  # read twice: handled once
    assert _send(desk, _signal("d")) == []  # a rejected one too
    assert _rejection(_send(desk, _signal("e", short_venue="bybit"))) == ("max_concurrent", "2 trades open")
    assert desk.core.rejections == {"pair_active": 1, "max_concurrent": 2}  # counted per reason


@pytest.mark.parametrize("unquoted", ["long market", "long ask", "short market", "short bid"])
def test_a_signal_without_a_quote_to_price_either_leg_from_is_rejected(unquoted):
    desk = Desk(venues=("binance", "okx"))
    if unquoted != "long market":
        desk.book("binance", 100_000.0, 100_000.1)
    if unquoted != "short market":
        desk.book("okx", 100_700.0, 100_700.1)
    if unquoted == "long ask":
        desk.core.market.get("binance", SYMBOL).ask = None
    if unquoted == "short bid":
        desk.core.market.get("okx", SYMBOL).bid = None
    assert _rejection(_send(desk)) == ("no_market", "no quote yet on a leg's venue")


def test_incompatible_lots_reject_the_signal_with_the_grids_reason():
    desk = _bare()
    desk.core.grids = {("binance", SYMBOL): Grid(D("0.1"), D("0.003"), D("0.003")),
                       ("okx", SYMBOL): Grid(D("0.1"), D("0.002"), D("0.002"))}
    assert _rejection(_send(desk)) == ("grid", "lots 0.003 and 0.002 have no common multiple to trade on both venues")


def test_a_signal_is_taken_only_with_room_at_each_legs_venue_for_its_leg_and_four_more_orders_in_the_window():
    # 6 orders a window at each venue: a leg + 4 kept for a leg-out leave room for 1 more order there
    desk = _books(Desk(ExecConfig(order_rate_per_s=6, max_concurrent_trades=5), venues=("binance", "okx", "bybit")))
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.signal("a")  # paper: both legs fill at once, an order at binance and one at okx at T0
    desk.signal("b", short_venue="bybit")  # binance 1 + 1 + 4 = 6, not over 6: taken
    assert sorted(x.venue for x in desk.of(f.OrderPlaced)) == ["binance", "binance", "bybit", "okx"]
    desk.now = T0 + 1_099  # still within the last 1,100 ms
    # okx and bybit have 1 order each: 1 + 1 + 4 = 6 at each, taken
    assert _rejection(desk.signal("c", long_venue="okx", short_venue="bybit", created_ms=desk.now)) is None
    # now each venue has 2: 2 + 1 + 4 > 6, named at the first leg's venue
    assert _rejection(desk.signal("d", long_venue="okx", short_venue="binance", created_ms=desk.now)) == (
        "rate_limit", "2 orders at okx in the last 1100 ms; the limit is 6")
    desk.now = T0 + 1_100  # they left the window
    assert _rejection(desk.signal("e", long_venue="okx", short_venue="binance", created_ms=desk.now)) is None


def test_a_venues_own_order_rate_window_replaces_the_default_and_both_legs_there_count_twice():
    rates = {"okx": (7, 2_100)}  # OKX: 60 in 2 s, here 7 so that a few orders reach it
    desk = _books(Desk(ExecConfig(order_rate_per_s=100, order_rates=rates, max_concurrent_trades=9),
                       venues=("binance", "okx", "bybit")))
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.signal("a", long_venue="okx", short_venue="binance")
    desk.signal("b", long_venue="binance", short_venue="okx")
    desk.now = T0 + 2_099  # okx's 2 orders are within its 2,100 ms: 2 + 1 + 4 = 7, taken
    assert _rejection(desk.signal("c", long_venue="okx", short_venue="bybit", created_ms=desk.now)) is None
    assert _rejection(desk.signal("d", long_venue="bybit", short_venue="okx", created_ms=desk.now)) == (
        "rate_limit", "3 orders at okx in the last 2100 ms; the limit is 7")
    core = ExecutorCore(ExecConfig(order_rates={"okx": (4, 2_100)}), {})  # bybit unlimited, okx not
    assert core._rate_room(("bybit", "okx"), T0) == "0 orders at okx in the last 2100 ms; the limit is 4"
    core = ExecutorCore(ExecConfig(mode="synthetic", order_rate_per_s=6), {})
    assert core._rate_room(("bybit", "bybit"), T0) == ""  # 0 + 2 + 4 = 6
    core = ExecutorCore(ExecConfig(mode="synthetic", order_rate_per_s=5), {})
    assert core._rate_room(("bybit", "bybit"), T0) == "0 orders at bybit in the last 1100 ms; the limit is 5"


# ---------------------------------------------------------------------- the harder leg's phase


def test_the_harder_leg_is_cancelled_at_500_ms_not_499_and_unfilled_the_trade_is_rejected_as_a_timeout():
    desk = _bare()
    [hard] = _placed(_send(desk))
    assert desk.core.step(T0 + 499) == [] and desk.core.next_deadline_ms() == T0 + 500
    assert desk.core.step(T0 + 500) == [f.CancelRequested(ts_ms=T0 + 500, trade_id=hard.trade_id,
                                                          link_id=hard.link_id)]
    # no answer: asked again cancel_retry_ms (1 s) after the first ask, then 2 s after that
    assert desk.core.next_deadline_ms() == T0 + 1_500
    assert desk.core.step(T0 + 1_499) == []
    assert [x.ts_ms - T0 for x in desk.core.step(T0 + 1_500)] == [1_500]
    assert desk.core.step(T0 + 3_499) == [] and len(desk.core.step(T0 + 3_500)) == 1
    facts = _close(desk, hard, 3_600)
    [closed] = _of(facts, f.TradeClosed)
    assert (closed.outcome, closed.reason, closed.pnl_usd, closed.size_usd) == (
        "rejected", "harder_leg_timeout", 0, D("10000.00"))
    assert not _placed(facts) and desk.core.portfolio.available == D(20_000)  # the easier leg never went


def test_a_harder_leg_the_venue_refuses_rejects_the_trade_at_once_as_refused():
    desk = _bare()
    [hard] = _placed(_send(desk))
    [closed] = _of(_close(desk, hard, 3, status="rejected"), f.TradeClosed)
    assert (closed.outcome, closed.reason, closed.ts_ms) == ("rejected", "harder_leg_rejected", T0 + 3)


@pytest.mark.parametrize("closed_at, resent", [(499, True), (500, False)])
def test_the_rest_of_a_harder_leg_the_venue_closed_is_sent_again_only_before_its_500_ms(closed_at, resent):
    desk = _bare()
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=D("0.04"))
    [order] = _placed(_close(desk, hard, closed_at))  # an IOC's rest: closed with no cancel asked
    if resent:  # the rest, 0.099 - 0.04, again at the touch through 5 bps
        assert (order.leg, order.purpose, order.side, order.qty, order.price, order.link_id[-4:]) == (
            "short", "entry", "Sell", D("0.059"), D("100649.7"), "-SE2")
    else:  # the time is up: the trade goes on with the 0.04 filled, the easier leg for as much
        assert (order.leg, order.purpose, order.side, order.qty, order.price, order.link_id[-4:]) == (
            "long", "entry", "Buy", D("0.04"), D("100050.1"), "-LE2")


def test_the_harder_leg_is_sent_at_most_order_attempts_times_then_goes_on_with_what_filled():
    desk = _bare(ExecConfig(order_attempts=3))
    [order] = _placed(_send(desk))
    _fill(desk, order, 1, qty=D("0.01"))
    [order] = _placed(_close(desk, order, 2))
    assert (order.link_id[-4:], order.qty) == ("-SE2", D("0.089"))
    [order] = _placed(_close(desk, order, 3))
    assert (order.link_id[-4:], order.qty) == ("-SE3", D("0.089"))
    [order] = _placed(_close(desk, order, 4))  # the third closed: no fourth, the easier leg for 0.01
    assert (order.leg, order.link_id[-4:], order.qty) == ("long", "-LE4", D("0.01"))


def test_a_harder_leg_that_asked_cancel_is_not_sent_again():
    desk = _bare()
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=D("0.04"))
    desk.core.step(T0 + 500)  # the cancel is asked
    [easy] = _placed(_close(desk, hard, 600))
    assert (easy.leg, easy.qty) == ("long", D("0.04"))


@pytest.mark.parametrize("long_grid, filled, goes_on", [
    (Grid(D("0.1"), D("0.01"), D("0.01")), D("0.045"), False),  # not on binance's 0.01 lot
    (Grid(D("0.1"), D("0.01"), D("0.01")), D("0.05"), True),
    (Grid(D("0.1"), D("0.001"), D("0.05")), D("0.049"), False),  # below binance's minimum of 0.05
    (Grid(D("0.1"), D("0.001"), D("0.05")), D("0.05"), True),  # the minimum itself
])
def test_a_part_filled_harder_leg_goes_on_when_both_grids_take_it_else_it_is_unwound(long_grid, filled, goes_on):
    desk = _bare(ExecConfig(order_attempts=1))
    desk.core.grids[("binance", SYMBOL)] = long_grid
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=filled)
    facts = _close(desk, hard, 300)  # one attempt only: the rest is not sent again
    [order] = _placed(facts)
    if goes_on:
        assert (order.leg, order.purpose, order.qty, order.side) == ("long", "entry", filled, "Buy")
        assert not _of(facts, f.LegOut)
    else:  # the filled part of the short leg is bought back at market, reduce-only
        [leg_out] = _of(facts, f.LegOut)
        assert (leg_out.phase, leg_out.filled_leg, leg_out.unfilled_leg, leg_out.filled_at_ms, leg_out.action) == (
            "entry", "short", "long", T0 + 300, "unwind")
        assert (order.leg, order.purpose, order.side, order.order_type, order.qty, order.reduce_only, order.price) == (
            "short", "unwind", "Buy", "Market", filled, True, None)


# ---------------------------------------------------------------------- the easier leg's phase


def _hard_filled(desk: Desk, at: int = 100) -> f.OrderPlaced:
    """The trade taken at T0, its harder (short) leg filled in full at T0 + `at`: the easier order."""
    [hard] = _placed(_send(desk))
    [easy] = _placed(_fill(desk, hard, at))
    return easy


def test_the_easier_leg_goes_for_what_the_harder_leg_holds_and_has_500_ms_from_that_fill():
    desk = _bare()
    easy = _hard_filled(desk, 100)
    assert (easy.leg, easy.purpose, easy.side, easy.order_type, easy.qty, easy.price, easy.touch, easy.reduce_only,
            easy.link_id[-4:]) == ("long", "entry", "Buy", "Limit", QTY, D("100050.1"), D("100000.1"), False, "-LE2")
    assert desk.core.next_deadline_ms() == T0 + 600
    assert desk.core.step(T0 + 599) == []
    leg_out, cancel = desk.core.step(T0 + 600)
    assert leg_out == f.LegOut(ts_ms=T0 + 600, trade_id=easy.trade_id, phase="entry", filled_leg="short",
                               unfilled_leg="long", filled_at_ms=T0 + 100, action="hedge")
    assert cancel == f.CancelRequested(ts_ms=T0 + 600, trade_id=easy.trade_id, link_id=easy.link_id)
    assert desk.core.step(T0 + 601) == []  # the cancel is not asked again before its 1 s
    assert desk.core.step(T0 + 1_600) == [f.CancelRequested(ts_ms=T0 + 1_600, trade_id=easy.trade_id,
                                                            link_id=easy.link_id)]  # no answer: asked again
    [hedge] = _placed(_close(desk, easy, 610))
    assert (hedge.leg, hedge.purpose, hedge.side, hedge.order_type, hedge.qty, hedge.price, hedge.reduce_only,
            hedge.link_id[-4:]) == ("long", "hedge", "Buy", "Market", QTY, None, False, "-LH3")


def test_a_hedge_is_tried_hedge_attempts_times_for_what_is_left_then_the_filled_leg_is_unwound():
    desk = _bare()
    easy = _hard_filled(desk, 100)
    _fill(desk, easy, 200, qty=D("0.02"), price=D("100050.0"))
    desk.core.step(T0 + 600)
    [hedge] = _placed(_close(desk, easy, 600))
    assert (hedge.purpose, hedge.qty) == ("hedge", D("0.079"))  # 0.099 - 0.02
    _fill(desk, hedge, 601, qty=D("0.03"), price=D("100060.0"))
    [hedge] = _placed(_close(desk, hedge, 601))  # a market order's rest: the next hedge
    assert (hedge.purpose, hedge.qty, hedge.link_id[-4:]) == ("hedge", D("0.049"), "-LH4")
    [hedge] = _placed(_close(desk, hedge, 602, status="rejected"))
    assert (hedge.purpose, hedge.link_id[-4:]) == ("hedge", "-LH5")
    facts = _close(desk, hedge, 603, status="rejected")  # the third hedge refused: the emergency close
    [leg_out] = _of(facts, f.LegOut)
    assert (leg_out.phase, leg_out.action, leg_out.filled_leg, leg_out.filled_at_ms) == (
        "entry", "unwind", "short", T0 + 100)
    unwinds = _placed(facts)  # both legs flattened: the long's 0.05 sold, the short's 0.099 bought
    assert sorted((o.leg, o.side, o.qty, o.order_type, o.reduce_only) for o in unwinds) == [
        ("long", "Sell", D("0.05"), "Market", True), ("short", "Buy", QTY, "Market", True)]


def test_the_rest_of_an_easier_leg_is_sent_again_before_its_deadline_up_to_order_attempts():
    desk = _bare(ExecConfig(order_attempts=2))
    easy = _hard_filled(desk, 100)
    _fill(desk, easy, 150, qty=D("0.06"))
    [again] = _placed(_close(desk, easy, 200))
    assert (again.leg, again.purpose, again.qty, again.link_id[-4:]) == ("long", "entry", D("0.039"), "-LE3")
    assert not _placed(_close(desk, again, 300))
    assert desk.core.next_deadline_ms() == T0 + 600  # no third: the leg-out waits for the deadline
    assert [type(x).__name__ for x in desk.core.step(T0 + 600)] == ["LegOut", "OrderPlaced"]


def test_an_easier_leg_the_venue_refuses_is_hedged_at_once():
    desk = _bare()
    easy = _hard_filled(desk, 100)
    facts = _close(desk, easy, 120, status="rejected")
    [leg_out] = _of(facts, f.LegOut)
    [hedge] = _placed(facts)
    assert (leg_out.ts_ms, leg_out.action, hedge.purpose, hedge.qty) == (T0 + 120, "hedge", "hedge", QTY)


def test_an_easier_leg_that_filled_more_than_the_harder_leg_holds_sells_the_excess_then_is_active():
    desk = _bare()
    easy = _hard_filled(desk, 100)
    _fill(desk, easy, 150, qty=D("0.06"), price=D("100010.0"))
    [again] = _placed(_close(desk, easy, 200))
    # a fill of the first order, closed already, arrives late (a cancel raced it): 0.07 held
    assert not _placed(desk.core.on_report(f.OrderFilled(
        ts_ms=T0 + 240, trade_id=easy.trade_id, link_id=easy.link_id, fill_id="late", qty=D("0.01"),
        price=D("100010.0"), fee=D(0), maker=False), T0 + 240))
    # the second fills its 0.039 in full: 0.109, 0.01 more than the short leg holds
    [excess] = _placed(_fill(desk, again, 250, price=D("100020.0")))  # one order, not one per step
    assert (excess.leg, excess.purpose, excess.side, excess.order_type, excess.qty, excess.reduce_only) == (
        "long", "unwind", "Sell", "Market", D("0.01"), True)
    # while the venue has not answered it, nothing more is sent; unanswered for 500 ms, it is cancelled
    assert desk.core.step(T0 + 749) == [] and desk.core.next_deadline_ms() == T0 + 750
    assert _of(desk.core.step(T0 + 750), f.CancelRequested)[0].link_id == excess.link_id
    [active] = _of(_fill(desk, excess, 270, price=D("100000.0")), f.TradeActive)
    assert (active.long_qty, active.short_qty) == (QTY, QTY)


def test_an_active_trade_records_each_legs_average_fill_price():
    desk = _bare()
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=D("0.05"), price=D("100700.0"))
    [easy] = _placed(_fill(desk, hard, 20, qty=D("0.049"), price=D("100690.0")))
    [active] = _of(_fill(desk, easy, 30, price=D("100010.0")), f.TradeActive)
    short_avg = (D("0.05") * D("100700.0") + D("0.049") * D("100690.0")) / D("0.099")
    assert (active.ts_ms, active.long_qty, active.short_qty, active.long_avg, active.short_avg) == (
        T0 + 30, QTY, QTY, D("100010.0"), short_avg)
    assert desk.core.next_deadline_ms() == T0 + 30 + 8 * 3_600_000  # the max hold, if nothing else fires


# ---------------------------------------------------------------------- emergency closes


def test_an_unwind_the_venue_filled_in_part_is_sent_again_200_ms_after_and_an_unanswered_one_cancelled_at_500():
    desk = _bare(ExecConfig(hedge_attempts=1))
    easy = _hard_filled(desk, 0)
    [hedge] = _placed(_close(desk, easy, 10, status="rejected"))
    [unwind] = _placed(_close(desk, hedge, 20, status="rejected"))  # the one hedge refused: unwind
    assert (unwind.leg, unwind.side, unwind.qty, unwind.reduce_only, unwind.link_id[-4:]) == (
        "short", "Buy", QTY, True, "-SU4")
    assert desk.core.step(T0 + 519) == [] and desk.core.next_deadline_ms() == T0 + 520  # a market order's 500 ms
    assert _of(desk.core.step(T0 + 520), f.CancelRequested)[0].link_id == unwind.link_id
    _fill(desk, unwind, 530, qty=D("0.04"), price=D("100700.1"))
    # the last unwind was not refused: the next may go retry_gap_ms (200) after it was sent: at once
    [again] = _placed(_close(desk, unwind, 540))
    assert (again.leg, again.side, again.qty, again.purpose) == ("short", "Buy", D("0.059"), "unwind")
    _fill(desk, again, 560, qty=D("0.01"), price=D("100700.1"))
    _close(desk, again, 600)
    assert desk.core.step(T0 + 739) == [] and desk.core.next_deadline_ms() == T0 + 740  # 540 + 200
    [third] = _placed(desk.core.step(T0 + 740))
    assert third.qty == D("0.049")
    [closed] = _of(_fill(desk, third, 741, price=D("100700.1")), f.TradeClosed)
    assert (closed.outcome, closed.reason) == ("emergency_closed", "leg_out_unwound")
    # everything it lost: bought back 0.099 at 100,700.1 after selling at 100,649.7 (no fees here)
    assert closed.pnl_usd == QTY * (D("100649.7") - D("100700.1")) and closed.leg_out_loss_usd == -closed.pnl_usd


# ---------------------------------------------------------------------- exits


def _active_bare(desk: Desk, config_at: int = 0) -> f.OrderPlaced:
    """The default trade, both legs filled at their limits by T0 + 20; its easier (long) order."""
    [hard] = _placed(_send(desk))
    [easy] = _placed(_fill(desk, hard, 10))
    assert _of(_fill(desk, easy, 20), f.TradeActive)
    return easy


def _exits(facts: list) -> dict[str, f.OrderPlaced]:
    return {o.leg: o for o in _placed(facts) if o.purpose == "exit"}


def test_a_shutdown_exits_both_legs_with_reduce_only_limits_at_the_far_touch_through_5_bps():
    desk = _bare()
    _active_bare(desk)
    facts = desk.core.shutdown(T0 + 1_000)
    [started] = _of(facts, f.ExitStarted)
    # the mids 100,000.05 and 100,700.05: 700 / 100,350.05 x 10,000 bps, to 4 places
    assert (started.reason, started.spread_bps) == ("shutdown", round(700 / 100_350.05 * 10_000, 4)) == (
        "shutdown", 69.7558)
    exits = _exits(facts)
    # the long sells at the bid 100,000.0 x 0.9995 = 99,950.0; the short buys at 100,700.1 x 1.0005 -> 100,750.4
    assert [(o.side, o.order_type, o.price, o.qty, o.reduce_only, o.touch, o.link_id[-4:]) for o in exits.values()] == [
        ("Sell", "Limit", D("99950.0"), QTY, True, D("100000.0"), "-LX3"),
        ("Buy", "Limit", D("100750.4"), QTY, True, D("100700.1"), "-SX4")]
    assert desk.core.next_deadline_ms() == T0 + 1_500


def test_exits_not_filled_in_500_ms_are_cancelled_then_sent_at_market():
    desk = _bare()
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    assert desk.core.step(T0 + 1_499) == []
    assert sorted(x.link_id for x in desk.core.step(T0 + 1_500)) == sorted(o.link_id for o in exits.values())
    _close(desk, exits["long"], 1_510)
    markets = _exits(_close(desk, exits["short"], 1_520))
    assert [(o.leg, o.side, o.order_type, o.price, o.qty, o.reduce_only) for o in markets.values()] == [
        ("long", "Sell", "Market", None, QTY, True), ("short", "Buy", "Market", None, QTY, True)]
    _fill(desk, markets["long"], 1_530, price=D("100000.0"))
    [closed] = _of(_fill(desk, markets["short"], 1_540, price=D("100700.1")), f.TradeClosed)
    assert (closed.outcome, closed.reason, closed.ts_ms) == ("closed", "shutdown", T0 + 1_540)
    # sold 0.099 at 100,649.7 and 100,000.0, bought at 100,050.1 and 100,700.1 (no fees here)
    assert closed.pnl_usd == QTY * (D("100649.7") + D("100000.0") - D("100050.1") - D("100700.1"))
    assert closed.pnl_usd < 0 and closed.leg_out_loss_usd == 0  # a loss, but no leg-out: none of it counted so


@pytest.mark.parametrize("closed_at, resent", [(1_499, True), (1_500, False)])
def test_the_rest_of_an_exit_is_sent_again_as_a_limit_only_before_its_500_ms(closed_at, resent):
    desk = _bare()
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    _fill(desk, exits["long"], 1_100, qty=D("0.05"))
    facts = _close(desk, exits["long"], closed_at)  # an IOC's rest, no cancel asked
    again = _exits(facts)
    if resent:
        assert [(o.leg, o.order_type, o.qty, o.price) for o in again.values()] == [
            ("long", "Limit", D("0.049"), D("99950.0"))]
    else:  # the deadline has come: the short's limit is cancelled first, nothing sent yet
        assert again == {} and [x.link_id for x in _of(facts, f.CancelRequested)] == [exits["short"].link_id]


def test_an_exit_limit_is_sent_at_most_order_attempts_times():
    desk = _bare(ExecConfig(order_attempts=2))
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    [again] = _exits(_close(desk, exits["long"], 1_100)).values()
    assert again.link_id[-4:] == "-LX5"
    assert _exits(_close(desk, again, 1_200)) == {}  # the second closed: it waits for the deadline
    assert desk.core.next_deadline_ms() == T0 + 1_500


def test_one_exit_filled_and_the_other_not_by_the_deadline_is_an_exit_leg_out_sent_at_market():
    desk = _bare()
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    _fill(desk, exits["long"], 1_200, price=D("99990.0"))
    desk.core.step(T0 + 1_500)
    facts = _close(desk, exits["short"], 1_510)
    [leg_out] = _of(facts, f.LegOut)
    assert (leg_out.ts_ms, leg_out.phase, leg_out.filled_leg, leg_out.unfilled_leg, leg_out.filled_at_ms,
            leg_out.action) == (T0 + 1_510, "exit", "long", "short", T0 + 1_200, "hedge")
    [market] = _exits(facts).values()
    assert (market.leg, market.side, market.order_type, market.qty) == ("short", "Buy", "Market", QTY)
    [refused_once] = _exits(_close(desk, market, 1_520, status="rejected")).values()
    assert refused_once.order_type == "Market"  # sent again, and no second leg-out
    assert len([lo for lo in desk.core.trades[market.trade_id].leg_outs if lo.phase == "exit"]) == 1


def test_market_exits_refused_twice_hedge_attempts_times_turn_into_the_emergency_close():
    desk = _bare(ExecConfig(hedge_attempts=2))
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    desk.core.step(T0 + 1_500)
    _close(desk, exits["long"], 1_500)
    markets = _exits(_close(desk, exits["short"], 1_500))
    sent = 2
    while True:
        assert not _placed(_close(desk, markets["long"], 1_600, status="rejected"))  # waits on the short's
        facts = _close(desk, markets["short"], 1_600, status="rejected")
        if _of(facts, f.LegOut):
            break
        markets = _exits(facts)
        sent += 2
    assert sent == 4  # 2 x hedge_attempts market exits, all refused
    [leg_out] = _of(facts, f.LegOut)  # neither leg's exit filled: recorded against the long leg
    assert (leg_out.phase, leg_out.action, leg_out.filled_leg, leg_out.unfilled_leg, leg_out.filled_at_ms) == (
        "exit", "unwind", "long", "short", T0 + 1_600)
    assert sorted((o.leg, o.purpose, o.side, o.order_type, o.reduce_only) for o in _placed(facts)) == [
        ("long", "unwind", "Sell", "Market", True), ("short", "unwind", "Buy", "Market", True)]


def test_an_emergency_stop_exits_every_active_trade_at_market_and_waits_for_a_pending_entry():
    desk = _bare(ExecConfig(max_concurrent_trades=2))
    _active_bare(desk)
    [pending] = _placed(_send(desk, _signal("p", short_venue="bybit"), at=30))
    facts = desk.core.halt("daily_loss", "-$500 today", T0 + 40, action="close")
    [started] = _of(facts, f.ExitStarted)
    assert started.reason == "emergency_stop"
    assert [(o.leg, o.order_type, o.reduce_only) for o in _exits(facts).values()] == [
        ("long", "Market", True), ("short", "Market", True)]
    trade = desk.core.trades[pending.trade_id]
    assert trade.status == "pending" and len(_exits(facts)) == 2  # the active trade's two only
    [easy] = _placed(_fill(desk, pending, 50))  # its entry finishes, then it exits at market too
    facts = _fill(desk, easy, 60)
    assert [x.reason for x in _of(facts, f.ExitStarted)] == ["emergency_stop"]
    assert {o.order_type for o in _exits(facts).values()} == {"Market"}
    assert _rejection(_send(desk, _signal("q", long_venue="okx", short_venue="bybit"), at=70)) == (
        "halted", "daily_loss: -$500 today")


# ---------------------------------------------------------------------- funding on paper


def _funding_desk(config: ExecConfig | None = None, signal_at: int = 0, **binance) -> Desk:
    """The default trade on paper; binance announces its next funding at T0 + 1,000 (the fields
    `binance`, a rate of 0.0001 and a mark of 100,000 unless given) before the signal."""
    desk = _books(Desk(config))
    desk.ticker("binance", **({"funding_rate": 0.0001, "mark": 100_000.0, "next_funding_ts_ms": T0 + 1_000}
                              | binance))
    desk.now = T0 + signal_at
    desk.signal(created_ms=desk.now)
    return desk


def _settle(desk: Desk, at: int, next_ms: int) -> list:
    desk.now = T0 + at
    return [x for x in desk.ticker("binance", next_funding_ts_ms=next_ms) if isinstance(x, f.FundingPaid)]


def test_paper_funding_is_paid_when_the_venue_moves_its_funding_time_on_and_only_then():
    desk = _funding_desk()
    assert _settle(desk, 900, T0 + 1_000) == []  # the same funding time: nothing settled yet
    [paid] = _settle(desk, 1_000, T0 + 2_000)
    trade = next(iter(desk.core.trades.values()))
    # the long leg pays 0.099 x 100,000 x 0.0001 = 0.99, stamped at the settlement time
    assert (paid.trade_id, paid.leg, paid.amount, paid.ts_ms) == (trade.id, "long", D("0.99"), T0 + 1_000)
    assert _settle(desk, 1_100, T0 + 2_000) == []  # told again: paid once
    assert _settle(desk, 1_200, T0 + 1_000) == []  # a stale ticker with the time before
    assert _settle(desk, 1_300, T0 + 2_000) == []  # ... and back: the T0 + 1,000 settlement is paid already
    assert trade.funding == D("0.99")


def test_paper_funding_is_priced_at_the_mid_without_a_mark_and_not_paid_without_a_rate():
    desk = _funding_desk(mark=None)
    [paid] = _settle(desk, 1_000, T0 + 2_000)
    assert paid.amount == QTY * D("100000.05") * D("0.0001")  # binance's mid
    assert _settle(_funding_desk(funding_rate=None), 1_000, T0 + 2_000) == []


@pytest.mark.parametrize("signal_at, pays", [(999, True), (1_000, False)])
def test_a_trade_taken_at_the_settlement_time_or_after_does_not_pay_it(signal_at, pays):
    desk = _funding_desk(signal_at=signal_at)
    assert len(_settle(desk, 1_000, T0 + 2_000)) == int(pays)


def test_live_execution_takes_funding_from_the_venue_not_from_market_data():
    assert _settle(_funding_desk(ExecConfig(paper=False)), 1_000, T0 + 2_000) == []


# ---------------------------------------------------------------------- venue reports


def test_a_report_seen_before_or_for_an_order_this_executor_does_not_know_changes_nothing():
    desk = _bare()
    [hard] = _placed(_send(desk))
    ack = f.OrderAcked(ts_ms=T0 + 1, trade_id=hard.trade_id, link_id=hard.link_id, venue_order_id="v1")
    assert desk.core.on_report(ack, T0 + 1) == [ack]
    assert desk.core.on_report(ack, T0 + 2) == []  # the REST answer and a lookup both said so
    stranger = f.OrderAcked(ts_ms=T0 + 1, trade_id="nobody", link_id="nobody-SE1", venue_order_id="v2")
    assert desk.core.on_report(stranger, T0 + 3) == []
    fill = f.OrderFilled(ts_ms=T0 + 4, trade_id=hard.trade_id, link_id=hard.link_id, fill_id="once",
                         qty=D("0.01"), price=D("100700.0"), fee=D(0), maker=False)
    assert desk.core.on_report(fill, T0 + 4)[0] == fill
    assert desk.core.on_report(fill, T0 + 5) == []  # the same execution id again
    closed = f.OrderClosed(ts_ms=T0 + 6, trade_id=hard.trade_id, link_id=hard.link_id, status="cancelled")
    assert desk.core.on_report(closed, T0 + 6, then_step=False) == [closed]  # no decision yet
    assert desk.core.on_report(closed, T0 + 7) == []  # closed already
    assert desk.core.trades[hard.trade_id].held["short"] == D("-0.01")


def test_a_fill_after_its_trade_closed_halts_trading_with_what_to_check():
    desk = _bare()
    [hard] = _placed(_send(desk))
    _close(desk, hard, 5, status="rejected")  # the trade is rejected and closed
    late = f.OrderFilled(ts_ms=T0 + 9, trade_id=hard.trade_id, link_id=hard.link_id, fill_id="late",
                         qty=D("0.02"), price=D("100700.0"), fee=D(0), maker=False)
    assert desk.core.on_report(late, T0 + 9)[0] == late
    detail = (f"trade {hard.trade_id} was closed, then its order {hard.link_id} filled 0.02: its position at okx "
              "needs a manual check")
    assert _rejection(_send(desk, _signal("next"), at=10)) == ("halted", detail)


# ---------------------------------------------------------------------- reconciliation after a restart


def test_a_pending_trade_whose_filled_leg_vanished_unwinds_and_cancels_the_other_legs_order():
    desk = _bare()
    easy = _hard_filled(desk, 10)  # the short leg is held at okx; the long leg's order is open at binance
    facts, unexplained = desk.core.reconcile_positions({"okx": {}}, T0 + 10)  # in the same millisecond
    assert unexplained == ""
    [gone] = _of(facts, f.PositionGone)
    assert (gone.leg, gone.qty, gone.price, gone.price_source, gone.detail) == (
        "short", QTY, D("100700.1"), "touch", "okx holds 0 BTCUSDT (idx 0), the facts -0.099")
    [leg_out] = _of(facts, f.LegOut)
    assert (leg_out.phase, leg_out.filled_leg, leg_out.unfilled_leg, leg_out.action, leg_out.filled_at_ms) == (
        "entry", "long", "short", "unwind", T0 + 10)
    assert [x.link_id for x in _of(facts, f.CancelRequested)] == [easy.link_id]  # a limit: cancelled at once
    [closed] = _of(_close(desk, easy, 30), f.TradeClosed)  # nothing held: closed, as an emergency close
    assert (closed.outcome, closed.reason) == ("emergency_closed", "leg_out_unwound")


def test_a_leg_partly_gone_is_recorded_for_what_is_missing_and_the_trade_exits_the_rest_at_market():
    desk = _bare()
    _active_bare(desk)
    facts, unexplained = desk.core.reconcile_positions({"okx": {(SYMBOL, 0): D("-0.05")}}, T0 + 100)
    [gone] = _of(facts, f.PositionGone)
    assert (unexplained, gone.qty, gone.detail) == ("", D("0.049"), "okx holds -0.05 BTCUSDT (idx 0), the facts -0.099")
    assert [x.reason for x in _of(facts, f.ExitStarted)] == ["closed_outside"]
    assert [(o.leg, o.qty, o.order_type) for o in _exits(facts).values()] == [
        ("long", QTY, "Market"), ("short", D("0.05"), "Market")]


@pytest.mark.parametrize("age_ms, price, source", [(2_000, D("100700.1"), "touch"), (2_001, None, "entry")])
def test_a_vanished_leg_is_priced_at_a_quote_up_to_2_s_old_else_at_its_average_entry(age_ms, price, source):
    desk = _bare()
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=D("0.05"), price=D("100700.0"))
    [easy] = _placed(_fill(desk, hard, 10, qty=D("0.049"), price=D("100690.0")))
    _fill(desk, easy, 20)
    top = desk.core.market.get("okx", SYMBOL).top_ts_ms
    [gone] = _of(desk.core.reconcile_positions({"okx": {}}, top + age_ms)[0], f.PositionGone)
    entry = (D("0.05") * D("100700.0") + D("0.049") * D("100690.0")) / QTY
    assert (gone.price, gone.price_source) == (price or entry, source)


# ---------------------------------------------------------------------- the rest


def test_a_signal_is_read_from_its_stream_fields_as_strings_and_a_missing_field_is_named():
    import msgspec

    from services.executor.core import parse_signal

    fields = {"id": "s1", "symbol": SYMBOL, "long_venue": "binance", "short_venue": "okx", "spread_bps": "70.5",
              "funding_delta_8h": "0.0004", "confidence": "80", "depth_long_usd": "200000",
              "depth_short_usd": "150000", "created_ms": str(T0), "extra": "ignored"}
    assert parse_signal(fields) == SignalIn(
        id="s1", mode="cross", symbol=SYMBOL, long_venue="binance", short_venue="okx", spread_bps=70.5,
        funding_delta_8h=0.0004, confidence=80, depth_long_usd=200_000.0, depth_short_usd=150_000.0, created_ms=T0)
    with pytest.raises(msgspec.ValidationError, match="confidence"):
        parse_signal({k: v for k, v in fields.items() if k != "confidence"})


def test_a_fact_for_a_trade_the_executor_never_took_is_an_error():
    desk = _bare()
    with pytest.raises(f.FactError, match="OrderAcked for unknown trade nobody"):
        desk.core.apply(f.OrderAcked(ts_ms=T0, trade_id="nobody", link_id="nobody-SE1", venue_order_id="v"))


def test_a_funding_payment_the_venue_reports_is_counted_on_its_trade():
    desk = _bare()
    _active_bare(desk)
    trade = next(iter(desk.core.trades.values()))
    paid = f.FundingPaid(ts_ms=T0 + 50, trade_id=trade.id, leg="short", amount=D("-4.98"))
    assert desk.core.on_report(paid, T0 + 50) == [paid] and trade.funding == D("-4.98")


def test_the_projected_profit_counts_fees_funding_and_slippage_to_the_cent_on_a_large_trade():
    # $2,000,000 of capital, depth $5,000,000: size min(1,000,000 half, 1,485,714 edge, 2,500,000 depth,
    # 1,694,915 risk) = $1,000,000; slippage 2 x 2 x (2 + 1,000,000 / 5,000,000 x 3) = 10.4 bps;
    # 70 - 18 + 4 - 10.4 = 45.6 bps of $1,000,000 = $4,560.00 (a cent is 0.0001 bps here)
    desk = _bare(ExecConfig(starting_capital=D(2_000_000)))
    [taken] = _of(_send(desk, _signal(depth=5_000_000.0)), f.SignalTaken)
    assert (taken.size_usd, taken.projected_profit_usd) == (D("1000000.00"), D("4560.00"))
    # qty: 1,000,000 / 100,349.9 = 9.96513 -> 9.965 BTC
    assert taken.qty == D("9.965")


def test_on_a_venue_in_hedge_mode_the_long_leg_trades_position_1_and_the_short_position_2():
    desk = _bare(ExecConfig(hedge_mode_venues=frozenset({"okx"})))
    [hard] = _placed(_send(desk))
    [easy] = _placed(_fill(desk, hard, 10))
    assert (hard.venue, hard.position_idx, easy.venue, easy.position_idx) == ("okx", 2, "binance", 0)
    desk2 = _bare(ExecConfig(hedge_mode_venues=frozenset({"binance", "okx"})))
    [hard] = _placed(_send(desk2, _signal(long_venue="okx", short_venue="binance")))
    assert (hard.leg, hard.venue, hard.position_idx) == ("long", "okx", 1)


def test_an_exit_on_a_venue_without_a_quote_goes_at_market_and_records_no_spread():
    desk = _bare()
    _active_bare(desk)
    okx = desk.core.market.get("okx", SYMBOL)
    okx.bid = okx.ask = None
    facts = desk.core.shutdown(T0 + 1_000)
    assert [x.spread_bps for x in _of(facts, f.ExitStarted)] == [0.0]
    exits = _exits(facts)
    assert [(o.leg, o.order_type, o.price, o.touch) for o in exits.values()] == [
        ("long", "Limit", D("99950.0"), D("100000.0")), ("short", "Market", None, None)]


def test_a_shutdown_keeps_the_halt_in_force_and_a_halt_after_it_closes_at_market_unless_it_keeps():
    desk = _bare(ExecConfig(max_concurrent_trades=2))
    [pending] = _placed(_send(desk))
    desk.core.halt("manual", "the operator's word", T0 + 1, action="keep")
    desk.core.shutdown(T0 + 2)
    assert _rejection(_send(desk, _signal("b", short_venue="bybit"), at=3)) == ("halted", "manual: the operator's word")
    [easy] = _placed(_fill(desk, pending, 10))
    assert [x.reason for x in _of(_fill(desk, easy, 20), f.ExitStarted)] == ["shutdown"]  # a limit exit
    desk2 = _bare()
    [pending] = _placed(_send(desk2))
    desk2.core.shutdown(T0 + 1)
    assert [h.action for h in _of(desk2.core.halt("manual", "x", T0 + 2), f.TradingHalted)] == ["close"]  # the default
    [easy] = _placed(_fill(desk2, pending, 10))
    assert [x.reason for x in _of(_fill(desk2, easy, 20), f.ExitStarted)] == ["emergency_stop"]
    desk3 = _bare()
    [pending] = _placed(_send(desk3))
    desk3.core.shutdown(T0 + 1)
    desk3.core.halt("manual", "x", T0 + 2, action="keep")  # keeps the trades: the shutdown's exit stands
    [easy] = _placed(_fill(desk3, pending, 10))
    assert [x.reason for x in _of(_fill(desk3, easy, 20), f.ExitStarted)] == ["shutdown"]


def test_after_a_resume_a_trade_that_becomes_active_is_kept():
    desk = _bare()
    [pending] = _placed(_send(desk))
    desk.core.halt("manual", "x", T0 + 1, action="close")
    assert [x.by for x in _of(desk.core.resume(T0 + 2), f.TradingResumed)] == ["operator"]
    [easy] = _placed(_fill(desk, pending, 10))
    facts = _fill(desk, easy, 20)
    assert _of(facts, f.TradeActive) and not _of(facts, f.ExitStarted)


def test_a_part_filled_harder_leg_decided_after_a_restart_records_when_it_was_closed():
    desk = _bare(ExecConfig(order_attempts=1))
    desk.core.grids[("binance", SYMBOL)] = Grid(D("0.1"), D("0.01"), D("0.01"))
    [hard] = _placed(_send(desk))
    _fill(desk, hard, 10, qty=D("0.045"))
    desk.core.on_report(f.OrderClosed(ts_ms=T0 + 300, trade_id=hard.trade_id, link_id=hard.link_id,
                                      status="cancelled"), T0 + 300, then_step=False)
    [leg_out] = _of(desk.core.step(T0 + 5_000), f.LegOut)
    assert (leg_out.ts_ms, leg_out.filled_at_ms) == (T0 + 5_000, T0 + 300)


def test_a_vanished_leg_that_was_hedged_is_priced_at_the_average_of_its_entry_and_hedge_fills():
    desk = _bare()
    easy = _hard_filled(desk, 10)
    _fill(desk, easy, 20, qty=D("0.04"), price=D("100050.0"))
    desk.core.step(T0 + 510)  # the deadline: a leg-out, the rest hedged at market
    [hedge] = _placed(_close(desk, easy, 510))
    [active] = _of(_fill(desk, hedge, 520, price=D("100080.0")), f.TradeActive)
    average = (D("0.04") * D("100050.0") + D("0.059") * D("100080.0")) / QTY
    assert (active.long_qty, active.long_avg, active.short_avg) == (QTY, average, D("100649.7"))  # hedge included
    stale = desk.core.market.get("binance", SYMBOL).top_ts_ms + 2_001
    [gone] = _of(desk.core.reconcile_positions({"binance": {}}, stale)[0], f.PositionGone)
    assert (gone.leg, gone.price, gone.price_source) == ("long", average, "entry")


def test_both_legs_gone_close_the_trade_as_closed_outside_with_its_outcome_closed():
    desk = _bare()
    _active_bare(desk)
    facts, _ = desk.core.reconcile_positions({"binance": {}, "okx": {}}, T0 + 100)
    [closed] = _of(facts, f.TradeClosed)
    assert (closed.outcome, closed.reason) == ("closed", "closed_outside") and not _placed(facts)


def test_what_no_trade_explains_is_reported_for_every_position_and_nothing_recorded():
    desk = _bare()
    _active_bare(desk)
    facts, unexplained = desk.core.reconcile_positions(
        {"binance": {(SYMBOL, 0): D("0.5")}, "okx": {(SYMBOL, 0): D("0.3")}, "bybit": {(SYMBOL, 0): D("-1")}},
        T0 + 100)
    assert facts == []
    # sorted by venue; bybit holds a position no trade holds
    assert unexplained == ("BTCUSDT idx 0: facts 0.099, binance 0.5; BTCUSDT idx 0: facts 0, bybit -1; "
                           "BTCUSDT idx 0: facts -0.099, okx 0.3")


def test_a_leg_with_an_order_open_is_left_to_its_fills_and_the_other_leg_is_still_checked():
    desk = _bare()
    easy = _hard_filled(desk, 10)
    _fill(desk, easy, 20, qty=D("0.05"))  # binance holds 0.05 of the long leg, its order still open
    facts, unexplained = desk.core.reconcile_positions({"binance": {}, "okx": {}}, T0 + 30)
    assert unexplained == "" and [(g.leg, g.qty) for g in _of(facts, f.PositionGone)] == [("short", QTY)]


def test_a_venue_funding_settlement_on_the_short_side_is_shared_by_the_trades_short_there_to_the_last_digit():
    desk = _books(Desk(ExecConfig(max_concurrent_trades=4), venues=("binance", "okx", "bybit", "gate")))
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.book("gate", 100_000.0, 100_000.1)
    desk.signal("a")  # long binance, short okx: 0.099
    desk.signal("b", long_venue="bybit")  # long bybit, short okx: half what is left
    desk.signal("c", long_venue="gate")  # long gate, short okx
    shorts = {t.id: -t.held["short"] for t in desk.core.trades.values()}
    assert len(shorts) == 3 and all(shorts.values())
    [pending] = _placed(_send(desk, _signal("d", long_venue="okx", short_venue="bybit"), at=0))
    assert desk.core.trades[pending.trade_id].held == {"long": 0, "short": 0}  # holds nothing at okx yet
    amount = D("0.7797")  # shares of it to 12 places that do not add up to it: 0.099, 0.049, 0.024 of 0.172
    reports = desk.core.funding_reported("okx", SYMBOL, "Sell", amount, T0 + 7)
    total = sum(shorts.values())
    first, second, third = ((amount * q / total).quantize(D("1E-12")) for q in shorts.values())
    assert first + second + third != amount
    assert [(x.trade_id, x.leg, x.amount, x.ts_ms) for x in reports] == [
        (tid, "short", part, T0 + 7) for tid, part in zip(shorts, [first, second, amount - first - second],
                                                            strict=True)]
    assert sum(x.amount for x in reports) == amount  # the last takes the remainder: the parts add up exactly
    assert desk.core.funding_reported("okx", SYMBOL, "Buy", D("1"), T0 + 7) == []  # no long held at okx


def test_paper_funding_pays_each_symbols_trades_when_that_symbol_settles():
    from shared.events import BookUpdate

    desk = _books(Desk(ExecConfig(max_concurrent_trades=2)))
    for venue, bid in (("binance", 3_000.0), ("okx", 3_021.0)):
        desk.core.grids[venue, "ETHUSDT"] = Grid(D("0.01"), D("0.01"), D("0.01"))
        desk.market(BookUpdate(venue=venue, symbol="ETHUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                               receive_ts_us=T0 * 1000, bids=((bid, 50.0),), asks=((bid + 0.01, 50.0),)))
    eth = SignalIn(id="eth", symbol="ETHUSDT", long_venue="binance", short_venue="okx", spread_bps=70.0,
                   funding_delta_8h=0.0004, confidence=80, depth_long_usd=200_000.0, depth_short_usd=200_000.0,
                   created_ms=T0)
    desk._run(desk.core.on_signal(eth, T0))  # the ETH trade first, then the BTC one
    desk.ticker("binance", funding_rate=0.0001, mark=100_000.0, next_funding_ts_ms=T0 + 1_000)
    desk.signal()
    assert len(desk.core.trades) == 2
    paid = _settle(desk, 1_000, T0 + 2_000)
    btc = next(t for t in desk.core.trades.values() if t.taken.symbol == SYMBOL)
    # the BTC trade had half of the $10,000 left: $5,000 / 100,349.9 -> 0.049 BTC, x 100,000 x 0.0001
    assert btc.held["long"] == D("0.049")
    assert [(x.trade_id, x.leg, x.amount) for x in paid] == [(btc.id, "long", D("0.49"))]


def test_an_exiting_trade_whose_leg_vanished_exits_what_is_left_and_is_not_unwound():
    desk = _bare()
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    for order in exits.values():  # a restart: the venue had cancelled both exits
        desk.core.on_report(f.OrderClosed(ts_ms=T0 + 1_100, trade_id=order.trade_id, link_id=order.link_id,
                                          status="cancelled"), T0 + 1_100, then_step=False)
    facts, unexplained = desk.core.reconcile_positions({"okx": {}}, T0 + 1_200)
    assert unexplained == "" and [g.leg for g in _of(facts, f.PositionGone)] == ["short"]
    assert not _of(facts, f.LegOut)
    assert [(o.leg, o.purpose, o.order_type) for o in _placed(facts)] == [("long", "exit", "Limit")]


def test_the_leg_left_after_one_vanished_is_sent_again_at_market_with_no_exit_leg_out():
    desk = _bare()
    _active_bare(desk)
    facts, _ = desk.core.reconcile_positions({"okx": {}}, T0 + 100)
    [market] = _exits(facts).values()
    assert (market.leg, market.order_type) == ("long", "Market")
    [again] = _exits(_close(desk, market, 650, status="rejected")).values()  # the exit's 500 ms are over
    assert (again.leg, again.order_type) == ("long", "Market")
    assert not desk.core.trades[market.trade_id].leg_outs  # the short leg vanished: it had no exit to fill


def test_the_unwind_gap_counts_the_refusals_of_either_leg_from_the_last_unwind_of_either():
    desk = _bare(ExecConfig(hedge_attempts=1))
    easy = _hard_filled(desk, 0)
    _fill(desk, easy, 5, qty=D("0.05"))
    desk.core.step(T0 + 500)
    [hedge] = _placed(_close(desk, easy, 500))
    unwinds = {o.leg: o for o in _placed(_close(desk, hedge, 510, status="rejected"))}
    assert sorted(unwinds) == ["long", "short"]  # both legs flattened at T0 + 510
    _fill(desk, unwinds["short"], 515, price=D("100700.1"))
    # the long's refused: 200 ms doubled once, from T0 + 510
    assert _close(desk, unwinds["long"], 520, status="rejected")[1:] == []
    assert desk.core.step(T0 + 909) == [] and desk.core.next_deadline_ms() == T0 + 910
    [second] = _placed(desk.core.step(T0 + 910))
    assert (second.leg, second.side, second.qty) == ("long", "Sell", D("0.05"))
    _close(desk, second, 920, status="rejected")  # twice in a row: 800 ms from T0 + 910
    assert desk.core.step(T0 + 1_709) == [] and len(_placed(desk.core.step(T0 + 1_710))) == 1


def test_each_legs_limit_is_on_its_own_venues_tick():
    desk = _bare()
    desk.core.grids[("okx", SYMBOL)] = Grid(D("1"), D("0.001"), D("0.001"))
    [taken] = _of(_send(desk), f.SignalTaken)
    # binance's 0.1 tick: 100,050.15005 down to 100,050.1; okx's 1: 100,649.65 up to 100,650
    assert (taken.long_price, taken.short_price) == (D("100050.1"), D("100650"))


def test_the_risk_rule_sizes_the_next_trade_from_the_account_after_the_last_trades_pnl():
    from decimal import ROUND_DOWN

    from services.executor.sizing import Sizing

    # 0.1 % of the account at risk: the loss at the stop loss, 100 bps + 18 bps of fees, is 1.18 % of the size
    desk = _books(Desk(ExecConfig(sizing=Sizing(max_risk_share=D("0.001")))))
    desk.signal("first")
    assert desk.of(f.SignalTaken)[0].size_usd == (D(20_000) * D("0.001") / D("0.0118")).quantize(D("0.01"), ROUND_DOWN)
    desk.now += 5_000
    desk.book("binance", 100_300.0, 100_300.1)
    desk.book("okx", 100_300.0, 100_300.1)  # the profit target: closed
    pnl = desk.of(f.TradeClosed)[0].pnl_usd
    assert pnl > 0 and desk.core.portfolio.cumulative_pnl == pnl
    _books(desk)
    desk.signal("second", created_ms=desk.now)
    equity = D(20_000) + pnl
    assert desk.of(f.SignalTaken)[1].size_usd == (equity * D("0.001") / D("0.0118")).quantize(D("0.01"), ROUND_DOWN)


def test_a_large_synthetic_trade_projects_the_strategys_bps_of_its_size_to_the_cent():
    from services.executor.sizing import Sizing

    desk = Desk(ExecConfig(mode="synthetic", synthetic_venue="bybit", starting_capital=D(1_000_000),
                           sizing=Sizing(target_usd=D(100_000))), venues=("bybit",))
    desk.book("bybit", 100_000.0, 100_000.1)
    desk.signal(long_venue="bybit", short_venue="bybit_synthetic", mode="synthetic", spread=50.0, funding=0.01,
                depth=1_000_000.0)
    taken = desk.of(f.SignalTaken)[0]
    # 50 bps - 11 fees - 10 funding cost - 5 slippage (2 + 100,000 / 50,000 x 3 = 8, capped at 5) = 24 bps
    assert (taken.size_usd, taken.projected_profit_usd) == (D(100_000), D("240.00"))


@pytest.mark.parametrize("funding, rejection, projected", [
    # 29 bps, depth 4 x the size: each leg's slippage is 2 + 0.25 x 3 = 2.75 bps, in and out 11 bps:
    # 29 - 18 fees - 11 = exactly 0 (all exact in binary floats): nothing to gain, rejected
    (0.0, ("unprofitable_at_size", "$0.00 at $7586.20"), None),
    # +0.1 bps of funding: $7,586.20 x 0.1 bps = $0.0759, a gain under a dollar: taken
    (0.00001, None, D("0.08")),
])
def test_a_trade_is_taken_only_when_its_projection_at_its_size_is_above_zero(funding, rejection, projected):
    # size: (29 - 18) / 29 x $20,000 = $7,586.206... -> $7,586.20; depth $30,344.80 = 4 x that
    desk = _bare()
    facts = _send(desk, _signal(spread=29.0, funding=funding, depth=30_344.8))
    assert _rejection(facts) == rejection
    if projected is not None:
        assert [(t.size_usd, t.projected_profit_usd) for t in _of(facts, f.SignalTaken)] == [(D("7586.20"), projected)]


def test_a_hedged_short_leg_counts_its_hedge_in_its_average_entry_price():
    desk = _bare()
    # long okx (harder, first), short binance (easier): the short is the leg hedged
    [hard] = _placed(_send(desk, _signal(long_venue="okx", short_venue="binance")))
    [easy] = _placed(_fill(desk, hard, 10, price=D("100700.1")))
    _fill(desk, easy, 20, qty=D("0.04"), price=D("100000.0"))
    desk.core.step(T0 + 510)
    [hedge] = _placed(_close(desk, easy, 510))
    assert (hedge.leg, hedge.side, hedge.qty) == ("short", "Sell", D("0.059"))
    [active] = _of(_fill(desk, hedge, 520, price=D("99990.0")), f.TradeActive)
    assert active.short_avg == (D("0.04") * D("100000.0") + D("0.059") * D("99990.0")) / QTY


def test_an_exit_whose_short_leg_filled_and_long_leg_is_refused_unwinds_recorded_against_the_short():
    desk = _bare(ExecConfig(hedge_attempts=1))
    _active_bare(desk)
    exits = _exits(desk.core.shutdown(T0 + 1_000))
    _fill(desk, exits["short"], 1_100)
    desk.core.step(T0 + 1_500)
    [market] = _exits(_close(desk, exits["long"], 1_500)).values()
    [market] = _exits(_close(desk, market, 1_510, status="rejected")).values()
    facts = _close(desk, market, 1_520, status="rejected")  # 2 x 1 market exits refused
    leg_outs = [(lo.filled_leg, lo.action) for lo in desk.core.trades[market.trade_id].leg_outs]
    assert leg_outs == [("short", "hedge"), ("short", "unwind")]
    assert [(o.leg, o.purpose, o.side) for o in _placed(facts)] == [("long", "unwind", "Sell")]


def test_the_next_deadline_is_the_earliest_of_all_trades():
    desk = _bare(ExecConfig(max_concurrent_trades=2))
    _send(desk)
    _send(desk, _signal("b", short_venue="bybit"), at=100)
    desk.core.step(T0 + 200)
    assert desk.core.next_deadline_ms() == T0 + 500


@pytest.mark.parametrize("funding, projected, reason", [
    (0.00001, D("0.08"), "profit_target"),  # a target of 0.9 x $0.08: well under a dollar, still a target
    (0.0000005, D("0.00"), None),  # 0.005 bps of $7,586.20 is $0.0038: a projection of $0.00 is no target
])
def test_a_profit_target_under_a_dollar_fires_and_a_zero_one_never_does(funding, projected, reason):
    desk = _bare()
    [hard] = _placed(_send(desk, _signal(spread=29.0, funding=funding, depth=30_344.8)))
    [easy] = _placed(_fill(desk, hard, 10))
    _fill(desk, easy, 20)
    trade = desk.core.trades[hard.trade_id]
    assert trade.taken.projected_profit_usd == projected
    long_m = desk.core.market.get("binance", SYMBOL)
    long_m.bid, long_m.ask = 101_000.0, 101_000.1  # the long sells $1,000 above its entry: far past any target
    assert desk.core.exit_reason(trade, T0 + 30) == reason


def test_funding_converged_compares_the_short_venues_rate_with_the_long_venues():
    desk = _bare()
    _active_bare(desk)
    trade = next(iter(desk.core.trades.values()))
    desk.core.market.get("binance", SYMBOL).funding_8h = 0.0001
    desk.core.market.get("okx", SYMBOL).funding_8h = 0.00014  # a delta of 0.004 %: below 0.005 %
    assert desk.core.exit_reason(trade, T0 + 30) == "funding_converged"


def test_a_synthetic_trade_keeps_the_spread_it_was_entered_at():
    desk = Desk(ExecConfig(mode="synthetic", synthetic_venue="bybit"), venues=("bybit",))
    desk.book("bybit", 100_000.0, 100_000.1)
    desk.signal(long_venue="bybit", short_venue="bybit_synthetic", mode="synthetic", spread=50.0, funding=0.01)
    trade = next(iter(desk.core.trades.values()))
    assert trade.status == "active" and desk.core.spread_bps(trade) == 50.0  # both legs on bybit: no mid spread
