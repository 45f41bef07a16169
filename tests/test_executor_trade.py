"""A trade as its facts make it (trade.py): positions, cash, fees, funding, fills seen twice, orders
and their states."""

from __future__ import annotations

from decimal import Decimal as D

from services.executor import facts as f
from services.executor.trade import Trade

T0 = 1_800_000_000_000
TAKEN = f.SignalTaken(
    ts_ms=T0, signal_id="s1", trade_id="t1", mode="cross", symbol="BTCUSDT", long_venue="binance",
    short_venue="okx", signal_long_venue="binance", signal_short_venue="okx", harder="short", qty=D("0.1"),
    size_usd=D("10000"), long_price=D("100050.1"), short_price=D("100649.7"), entry_spread_bps=70.0,
    funding_delta_8h=0.0004, projected_profit_usd=D("50"), confidence=80, signal_ms=T0)


def placed(link: str, leg: str, purpose: str, side: str, qty: str = "0.1", order_type: str = "Limit",
           price: str | None = "100000", touch: str | None = None, ts: int = T0) -> f.OrderPlaced:
    return f.OrderPlaced(ts_ms=ts, trade_id="t1", link_id=link, leg=leg, purpose=purpose, venue="binance",
                         symbol="BTCUSDT", side=side, order_type=order_type, qty=D(qty),
                         price=None if price is None else D(price), touch=None if touch is None else D(touch))


def filled(link: str, fill_id: str, qty: str, price: str, fee: str = "0", ts: int = T0) -> f.OrderFilled:
    return f.OrderFilled(ts_ms=ts, trade_id="t1", link_id=link, fill_id=fill_id, qty=D(qty), price=D(price),
                         fee=D(fee), maker=False)


def trade(*facts) -> Trade:
    t = Trade(TAKEN)
    for fact in facts:
        t.apply(fact)
    return t


def test_a_round_trip_holds_signed_positions_and_makes_cash_minus_fees_minus_funding_to_the_last_digit():
    t = trade(placed("L", "long", "entry", "Buy"), placed("S", "short", "entry", "Sell"))
    assert t.id == "t1" and t.status == "pending" and t.flat
    t.apply(filled("L", "L-1", "0.1", "100000.0", fee="4.0"))  # 0.1 x 100,000.0 x 4 bps = 4.0
    assert t.held == {"long": D("0.1"), "short": D(0)} and not t.flat  # the long leg alone is not flat
    assert t.cash == D("-10000.0") and t.fees == D("4.0")
    t.apply(filled("S", "S-1", "0.1", "100700.0", fee="5.035"))  # 0.1 x 100,700.0 x 5 bps
    assert t.held == {"long": D("0.1"), "short": D("-0.1")}
    assert t.cash == D("70.0") and t.fees == D("9.035")  # sold 10,070.0 - bought 10,000.0
    t.apply(placed("LX", "long", "exit", "Sell"))
    t.apply(filled("LX", "LX-1", "0.1", "100300.0", fee="4.012"))  # 0.1 x 100,300.0 x 4 bps
    assert t.held == {"long": D(0), "short": D("-0.1")} and not t.flat  # the short leg alone is not flat
    t.apply(placed("SX", "short", "exit", "Buy"))
    t.apply(filled("SX", "SX-1", "0.1", "100300.1", fee="5.015005"))  # 0.1 x 100,300.1 x 5 bps
    t.apply(f.FundingPaid(ts_ms=T0 + 1, trade_id="t1", leg="long", amount=D("1.25")))
    t.apply(f.FundingPaid(ts_ms=T0 + 2, trade_id="t1", leg="short", amount=D("-0.5")))  # received
    assert t.flat and t.held == {"long": D(0), "short": D(0)}
    # cash 70.0 + 10,030.0 - 10,030.01 = 69.99; fees 9.035 + 4.012 + 5.015005 = 18.062005; funding 0.75
    assert (t.cash, t.fees, t.funding) == (D("69.99"), D("18.062005"), D("0.75"))
    assert t.pnl() == D("51.177995")
    assert t.funding_settled == {"long": T0 + 1, "short": T0 + 2}


def test_a_fill_seen_twice_counts_once_and_two_fills_of_the_same_size_count_twice():
    t = trade(placed("L", "long", "entry", "Buy", qty="0.3"))
    t.apply(filled("L", "L-1", "0.1", "100", fee="0.5"))
    t.apply(filled("L", "L-1", "0.1", "100", fee="0.5"))  # redelivered
    o = t.orders["L"]
    assert (o.filled, o.value, o.fee, t.held["long"], t.cash, t.fees) == (
        D("0.1"), D("10.0"), D("0.5"), D("0.1"), D("-10.0"), D("0.5"))
    t.apply(filled("L", "L-2", "0.1", "100", fee="0.5"))
    assert (o.filled, t.held["long"], t.fees) == (D("0.2"), D("0.2"), D("1.0"))


def test_an_order_is_open_until_filled_in_full_and_knows_its_average_price_and_what_remains():
    t = trade(placed("L", "long", "entry", "Buy", qty="0.3"))
    o = t.orders["L"]
    assert (o.link_id, o.remaining, o.avg_price, o.open, o.done_ms) == ("L", D("0.3"), None, True, None)
    t.apply(filled("L", "L-1", "0.1", "100", fee="0.004", ts=T0 + 5))
    assert (o.remaining, o.avg_price, o.open, o.done_ms) == (D("0.2"), D(100), True, None)
    t.apply(filled("L", "L-2", "0.2", "103", fee="0.008", ts=T0 + 9))  # exactly the rest: done
    # (0.1 x 100 + 0.2 x 103) / 0.3 = 30.6 / 0.3 = 102
    assert (o.filled, o.value, o.fee) == (D("0.3"), D("30.6"), D("0.012"))
    assert (o.remaining, o.avg_price, o.open, o.done_ms) == (D(0), D(102), False, T0 + 9)
    assert t.open_orders() == []


def test_cancels_acks_and_closes_are_kept_on_the_order():
    t = trade(placed("L", "long", "entry", "Buy"))
    o = t.orders["L"]
    assert (o.cancel_requested, o.cancel_ms, o.cancels) == (False, 0, 0)
    t.apply(f.CancelRequested(ts_ms=T0 + 100, trade_id="t1", link_id="L"))
    assert (o.cancel_requested, o.cancel_ms, o.cancels, o.open) == (True, T0 + 100, 1, True)  # asked, not done
    t.apply(f.CancelRequested(ts_ms=T0 + 300, trade_id="t1", link_id="L"))
    assert (o.cancel_ms, o.cancels) == (T0 + 300, 2)
    t.apply(f.OrderAcked(ts_ms=T0 + 1, trade_id="t1", link_id="L", venue_order_id="v-9"))
    assert o.venue_order_id == "v-9"
    t.apply(f.OrderClosed(ts_ms=T0 + 400, trade_id="t1", link_id="L", status="cancelled", reason="on request"))
    assert (o.open, o.closed_status, o.closed_reason, o.done_ms) == (False, "cancelled", "on request", T0 + 400)


def test_the_trade_moves_from_pending_to_active_to_exiting_to_closed_with_its_facts():
    t = trade()
    leg_out = f.LegOut(ts_ms=T0, trade_id="t1", phase="entry", filled_leg="short", unfilled_leg="long",
                       filled_at_ms=T0, action="hedge")
    t.apply(leg_out)
    assert t.leg_outs == [leg_out] and t.status == "pending"
    active = f.TradeActive(ts_ms=T0, trade_id="t1", long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D(1),
                           short_avg=D(2))
    t.apply(active)
    assert (t.status, t.active) == ("active", active)
    exit_ = f.ExitStarted(ts_ms=T0, trade_id="t1", reason="stop_loss", spread_bps=170.0)
    t.apply(exit_)
    assert (t.status, t.exit) == ("exiting", exit_)
    closed = f.TradeClosed(ts_ms=T0, trade_id="t1", outcome="closed", reason="stop_loss", pnl_usd=D(0),
                           fees_usd=D(0), funding_usd=D(0), leg_out_loss_usd=D(0), size_usd=D(1))
    t.apply(closed)
    assert (t.status, t.closed) == ("closed", closed)


def test_a_position_closed_outside_the_system_leaves_the_leg_and_is_cashed_at_its_price():
    t = trade(placed("L", "long", "entry", "Buy"), placed("S", "short", "entry", "Sell"),
              filled("L", "L-1", "0.1", "100000"), filled("S", "S-1", "0.1", "100700"))
    assert t.cash == D(700 * D("0.1"))
    gone = f.PositionGone(ts_ms=T0, trade_id="t1", leg="long", qty=D("0.04"), price=D("99000"),
                          price_source="touch")
    t.apply(gone)  # the long leg sold 0.04 at 99,000: + 3,960
    assert t.held["long"] == D("0.06") and t.cash == D("70.0") + D("3960.00") and t.gone == [gone]
    t.apply(f.PositionGone(ts_ms=T0, trade_id="t1", leg="short", qty=D("0.1"), price=D("100000"),
                           price_source="entry"))  # the short leg bought back 0.1 at 100,000: - 10,000
    assert t.held["short"] == D(0) and t.cash == D("4030.00") - D("10000.0")
    assert len(t.gone) == 2


def test_orders_by_leg_purpose_and_side():
    t = trade(placed("L1", "long", "entry", "Buy", qty="0.1"), placed("L2", "long", "hedge", "Buy", qty="0.2"),
              placed("L3", "long", "exit", "Sell", qty="0.3"), placed("S1", "short", "entry", "Sell", qty="0.4"),
              filled("L1", "a", "0.1", "100"), filled("L2", "b", "0.05", "110"), filled("L3", "c", "0.1", "120"),
              filled("S1", "d", "0.4", "130"))
    assert [o.link_id for o in t.legs("long")] == ["L1", "L2", "L3"]
    assert [o.link_id for o in t.legs("long", "entry", "hedge")] == ["L1", "L2"]
    assert [o.link_id for o in t.legs("short", "entry")] == ["S1"]
    assert t.filled("long") == D("0.25") and t.filled("long", "hedge") == D("0.05") and t.filled("short") == D("0.4")
    assert t.filled("short", "exit") == D(0)
    # bought 0.1 @ 100 and 0.05 @ 110: 0.15 for 10 + 5.5; sold 0.1 @ 120
    assert t.traded("long", "Buy") == (D("0.15"), D("15.50"))
    assert t.traded("long", "Sell") == (D("0.1"), D("12.0"))
    assert t.traded("short", "Buy") == (D(0), D(0))
    assert [o.link_id for o in t.open_orders()] == ["L2", "L3"]  # L1 and S1 filled in full
    assert [o.link_id for o in t.open_orders("long")] == ["L2", "L3"]
    assert t.open_orders("short") == []
    assert (t.attempts("long", "entry"), t.attempts("long", "hedge"), t.attempts("short", "exit")) == (1, 1, 0)


def entry_leg_out(unfilled: str, action: str = "hedge") -> f.LegOut:
    return f.LegOut(ts_ms=T0, trade_id="t1", phase="entry", filled_leg="long" if unfilled == "short" else "short",
                    unfilled_leg=unfilled, filled_at_ms=T0, action=action)


def test_a_hedge_that_sold_below_the_touch_its_leg_was_priced_from_lost_the_difference():
    t = trade(placed("S1", "short", "entry", "Sell", price="100649.7", touch=None),  # no touch: not the plan
              placed("S2", "short", "entry", "Sell", price="100649.7", touch="100700.0"),
              placed("S3", "short", "entry", "Sell", price="100649.7", touch="100800.0"),  # the first touch counts
              placed("SH", "short", "hedge", "Sell", order_type="Market", price=None),
              placed("SL", "short", "hedge", "Sell", order_type="Limit", price="100600"),  # not a market hedge
              placed("LX", "long", "hedge", "Sell", order_type="Market", price=None),  # another leg's
              filled("SH", "h1", "0.06", "100690.0"), filled("SH", "h2", "0.04", "100680.0"),
              filled("SL", "h3", "0.1", "100000.0"), filled("LX", "h4", "0.1", "1.0"))
    leg_out = entry_leg_out("short")
    assert [o.link_id for o in t.hedges(leg_out)] == ["SH"]
    assert t.leg_out_loss() == D(0)  # no leg-out yet
    t.apply(leg_out)
    # sold 0.06 x 100,690 + 0.04 x 100,680 = 6,041.4 + 4,027.2 = 10,068.6 where the plan sold 0.1 x 100,700
    # = 10,070.0: 1.4 lost
    assert t.leg_out_loss() == D("1.4") and t.leg_out_loss("entry") == D("1.4") and t.leg_out_loss("exit") == D(0)


def test_a_hedge_that_bought_above_the_touch_lost_and_one_that_did_better_lost_nothing():
    t = trade(placed("L1", "long", "entry", "Buy", price="100050.1", touch="100000.1"),
              placed("LH", "long", "hedge", "Buy", order_type="Market", price=None),
              filled("LH", "h1", "0.1", "100002.1"))
    t.apply(entry_leg_out("long"))
    assert t.leg_out_loss() == D("0.2")  # 0.1 x (100,002.1 - 100,000.1)
    t = trade(placed("L1", "long", "entry", "Buy", price="100050.1", touch="100000.1"),
              placed("LH", "long", "hedge", "Buy", order_type="Market", price=None),
              filled("LH", "h1", "0.1", "99990.1"))
    t.apply(entry_leg_out("long"))
    assert t.leg_out_loss() == D(0)  # bought 1.0 cheaper than planned: the gain stays in the profit


def test_exit_leg_outs_are_priced_from_the_exit_touch_and_counted_apart_from_the_entry_ones():
    t = trade(placed("S1", "short", "entry", "Sell", touch="100700.0"),
              placed("SH", "short", "hedge", "Sell", order_type="Market", price=None),
              filled("SH", "h1", "0.1", "100690.0"),  # 1.0 under the entry touch
              placed("L1", "long", "entry", "Buy", touch="100000.1"),  # the long leg's entry: not its exit's plan
              placed("LX1", "long", "exit", "Sell", touch="100300.0"),
              placed("LX2", "long", "exit", "Sell", order_type="Market", price=None),
              filled("LX2", "x1", "0.1", "100280.0"),  # 2.0 under the exit touch
              placed("SX", "short", "exit", "Buy", order_type="Market", price=None),  # the short leg's exit
              filled("SX", "x2", "0.1", "100300.1"))
    entry_out = entry_leg_out("short")
    assert [o.link_id for o in t.hedges(entry_out)] == ["SH"]  # its entry hedge, not its market exit
    t.apply(entry_out)
    exit_out = f.LegOut(ts_ms=T0, trade_id="t1", phase="exit", filled_leg="short", unfilled_leg="long",
                        filled_at_ms=T0, action="hedge")
    assert [o.link_id for o in t.hedges(exit_out)] == ["LX2"]
    t.apply(exit_out)
    assert (t.leg_out_loss("entry"), t.leg_out_loss("exit"), t.leg_out_loss()) == (D("1.0"), D("2.0"), D("3.0"))


def test_a_leg_out_with_no_touch_to_price_it_from_or_no_hedge_costs_nothing():
    t = trade(placed("S1", "short", "entry", "Sell", touch=None),
              placed("SH", "short", "hedge", "Sell", order_type="Market", price=None),
              filled("SH", "h1", "0.1", "90000.0"))
    t.apply(entry_leg_out("short"))
    assert t.leg_out_loss() == D(0)
    # the next leg-out is priced all the same: 0.1 x (100,002.1 - 100,000.1) = 0.2
    t.apply(placed("L1", "long", "exit", "Buy", touch="100000.1"))
    t.apply(placed("LH", "long", "exit", "Buy", order_type="Market", price=None))
    t.apply(filled("LH", "h2", "0.1", "100002.1"))
    t.apply(f.LegOut(ts_ms=T0, trade_id="t1", phase="exit", filled_leg="short", unfilled_leg="long",
                     filled_at_ms=T0, action="hedge"))
    assert t.leg_out_loss() == D("0.2")
    t = trade(placed("S1", "short", "entry", "Sell", touch="100700.0"))
    t.apply(entry_leg_out("short", action="unwind"))
    assert t.hedges(t.leg_outs[0]) == [] and t.leg_out_loss() == D(0)
