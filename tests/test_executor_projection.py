"""The read models in the seed's key schema (projection.py), the portfolio's figures (portfolio.py), the
venue tally (tally.py) and the facts' codec (facts.py), from facts made by hand or by the paper desk."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.executor import facts as f

T0 = 1_800_000_000_000  # 2027-01-15 08:00:00 UTC
S0 = str(T0)


def taken(tid: str = "t1", ts: int = T0, long_venue: str = "binance", short_venue: str = "okx",
          size: str = "10000.00") -> f.SignalTaken:
    """A cross trade of 0.1 BTC, its short leg (okx) first; okx's tick is 0.05 (prices to 2 decimals),
    binance's 0.1, so each leg's prices show at its own venue's decimals."""
    return f.SignalTaken(
        ts_ms=ts, signal_id=f"s-{tid}", trade_id=tid, mode="cross", symbol="BTCUSDT", long_venue=long_venue,
        short_venue=short_venue, signal_long_venue=long_venue, signal_short_venue=short_venue, harder="short",
        qty=D("0.1"), size_usd=D(size), long_price=D("100050.1"), short_price=D("100649.75"),
        entry_spread_bps=69.95, funding_delta_8h=0.0004, projected_profit_usd=D("25.50"), confidence=80,
        signal_ms=ts - 7)


# ---------------------------------------------------------------------------------------- facts.py


def test_every_fact_is_flat_text_in_the_stream_with_its_type_and_version_and_reads_back_equal():
    placed = f.OrderPlaced(ts_ms=T0, trade_id="t1", link_id="t1-LH1", leg="long", purpose="hedge", venue="binance",
                           symbol="BTCUSDT", side="Buy", order_type="Market", qty=D("0.1"))
    cases = [
        (taken(), {"type": "signal_taken", "signal_id": "s-t1", "trade_id": "t1", "mode": "cross",
                   "symbol": "BTCUSDT", "long_venue": "binance", "short_venue": "okx",
                   "signal_long_venue": "binance", "signal_short_venue": "okx", "harder": "short", "qty": "0.1",
                   "size_usd": "10000.00", "long_price": "100050.1", "short_price": "100649.75",
                   "entry_spread_bps": "69.95", "funding_delta_8h": "0.0004", "projected_profit_usd": "25.50",
                   "confidence": "80", "signal_ms": str(T0 - 7)}),
        (f.SignalRejected(ts_ms=T0, signal_id="s9", symbol="BTCUSDT", reason="stale_signal", detail="age 2001 ms"),
         {"type": "signal_rejected", "signal_id": "s9", "symbol": "BTCUSDT", "reason": "stale_signal",
          "detail": "age 2001 ms"}),
        # a market order has no price and no touch: left out, not "None"; booleans are 1/0
        (placed, {"type": "order_placed", "trade_id": "t1", "link_id": "t1-LH1", "leg": "long", "purpose": "hedge",
                  "venue": "binance", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Market", "qty": "0.1",
                  "reduce_only": "0", "position_idx": "0"}),
        (f.OrderPlaced(ts_ms=T0, trade_id="t1", link_id="t1-SX1", leg="short", purpose="exit", venue="bybit",
                       symbol="BTCUSDT", side="Buy", order_type="Limit", qty=D("0.1"), price=D("100300.05"),
                       reduce_only=True, position_idx=2, touch=D("100300.00")),
         {"type": "order_placed", "trade_id": "t1", "link_id": "t1-SX1", "leg": "short", "purpose": "exit",
          "venue": "bybit", "symbol": "BTCUSDT", "side": "Buy", "order_type": "Limit", "qty": "0.1",
          "price": "100300.05", "reduce_only": "1", "position_idx": "2", "touch": "100300.00"}),
        (f.CancelRequested(ts_ms=T0, trade_id="t1", link_id="t1-LE1"),
         {"type": "cancel_requested", "trade_id": "t1", "link_id": "t1-LE1"}),
        (f.OrderAcked(ts_ms=T0, trade_id="t1", link_id="t1-LE1", venue_order_id="88"),
         {"type": "order_acked", "trade_id": "t1", "link_id": "t1-LE1", "venue_order_id": "88"}),
        (f.OrderFilled(ts_ms=T0, trade_id="t1", link_id="t1-LE1", fill_id="x1", qty=D("0.04"), price=D("100000.1"),
                       fee=D("-0.0008"), maker=True),
         {"type": "order_filled", "trade_id": "t1", "link_id": "t1-LE1", "fill_id": "x1", "qty": "0.04",
          "price": "100000.1", "fee": "-0.0008", "maker": "1"}),
        (f.OrderFilled(ts_ms=T0, trade_id="t1", link_id="t1-LE1", fill_id="x2", qty=D("0.06"), price=D("100000.1"),
                       fee=D("2.4"), maker=False),
         {"type": "order_filled", "trade_id": "t1", "link_id": "t1-LE1", "fill_id": "x2", "qty": "0.06",
          "price": "100000.1", "fee": "2.4", "maker": "0"}),
        (f.OrderClosed(ts_ms=T0, trade_id="t1", link_id="t1-LE1", status="rejected", reason="110017"),
         {"type": "order_closed", "trade_id": "t1", "link_id": "t1-LE1", "status": "rejected", "reason": "110017"}),
        (f.LegOut(ts_ms=T0, trade_id="t1", phase="entry", filled_leg="short", unfilled_leg="long",
                  filled_at_ms=T0 - 500, action="hedge"),
         {"type": "leg_out", "trade_id": "t1", "phase": "entry", "filled_leg": "short", "unfilled_leg": "long",
          "filled_at_ms": str(T0 - 500), "action": "hedge"}),
        (f.TradeActive(ts_ms=T0, trade_id="t1", long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D("100000.1"),
                       short_avg=D("100700.00")),
         {"type": "trade_active", "trade_id": "t1", "long_qty": "0.1", "short_qty": "0.1", "long_avg": "100000.1",
          "short_avg": "100700.00"}),
        (f.ExitStarted(ts_ms=T0, trade_id="t1", reason="profit_target", spread_bps=12.5),
         {"type": "exit_started", "trade_id": "t1", "reason": "profit_target", "spread_bps": "12.5"}),
        (f.FundingPaid(ts_ms=T0, trade_id="t1", leg="short", amount=D("-1.2085")),
         {"type": "funding_paid", "trade_id": "t1", "leg": "short", "amount": "-1.2085"}),
        (f.FundingPaid(ts_ms=T0, trade_id="t1", leg="long", amount=D("0.5"), source_id="okx-bill-77"),
         {"type": "funding_paid", "trade_id": "t1", "leg": "long", "amount": "0.5", "source_id": "okx-bill-77"}),
        (f.PositionGone(ts_ms=T0, trade_id="t1", leg="long", qty=D("0.1"), price=D("100000.1"),
                        price_source="entry", detail="binance holds 0"),
         {"type": "position_gone", "trade_id": "t1", "leg": "long", "qty": "0.1", "price": "100000.1",
          "price_source": "entry", "detail": "binance holds 0"}),
        (f.TradeClosed(ts_ms=T0, trade_id="t1", outcome="emergency_closed", reason="hedge_failed",
                       pnl_usd=D("-12.071"), fees_usd=D("10.071"), funding_usd=D("0"), leg_out_loss_usd=D("12.071"),
                       size_usd=D("10000.00")),
         {"type": "trade_closed", "trade_id": "t1", "outcome": "emergency_closed", "reason": "hedge_failed",
          "pnl_usd": "-12.071", "fees_usd": "10.071", "funding_usd": "0", "leg_out_loss_usd": "12.071",
          "size_usd": "10000.00"}),
        (f.TradingHalted(ts_ms=T0, reason="daily_loss", detail="-412.50 <= -400", action="keep"),
         {"type": "trading_halted", "reason": "daily_loss", "detail": "-412.50 <= -400", "action": "keep"}),
        (f.TradingResumed(ts_ms=T0, by="cli"), {"type": "trading_resumed", "by": "cli"}),
    ]
    for fact, fields in cases:
        expected = {"v": "1", "ts_ms": S0, **fields}
        assert f.to_fields(fact) == expected, type(fact).__name__
        assert f.from_fields(expected) == fact, type(fact).__name__
        with pytest.raises(AttributeError):  # a fact, once written, is never changed
            fact.ts_ms = T0 + 1


def test_every_value_a_fact_may_name_reads_back_and_one_it_may_not_is_refused():
    import msgspec

    placed = f.OrderPlaced(ts_ms=T0, trade_id="t1", link_id="t1-1", leg="long", purpose="entry", venue="okx",
                           symbol="BTCUSDT", side="Buy", order_type="Limit", qty=D("0.1"), price=D("100000.1"))
    leg_out = f.LegOut(ts_ms=T0, trade_id="t1", phase="entry", filled_leg="short", unfilled_leg="long",
                       filled_at_ms=T0, action="hedge")
    done = f.TradeClosed(ts_ms=T0, trade_id="t1", outcome="closed", reason="r", pnl_usd=D(1), fees_usd=D(0),
                         funding_usd=D(0), leg_out_loss_usd=D(0), size_usd=D(1))
    variants = {
        taken(): {"harder": ("long", "short")},
        placed: {"leg": ("long", "short"), "purpose": ("entry", "hedge", "exit", "unwind"), "side": ("Buy", "Sell"),
                 "order_type": ("Limit", "Market")},
        f.OrderClosed(ts_ms=T0, trade_id="t1", link_id="t1-1", status="cancelled"): {"status": ("cancelled",
                                                                                               "rejected")},
        leg_out: {"phase": ("entry", "exit"), "filled_leg": ("long", "short"), "unfilled_leg": ("long", "short"),
                  "action": ("hedge", "unwind")},
        f.FundingPaid(ts_ms=T0, trade_id="t1", leg="long", amount=D(1)): {"leg": ("long", "short")},
        f.PositionGone(ts_ms=T0, trade_id="t1", leg="long", qty=D(1), price=D(1), price_source="entry"): {
            "leg": ("long", "short")},
        done: {"outcome": ("closed", "rejected", "emergency_closed")},
        f.TradingHalted(ts_ms=T0, reason="manual", detail="", action="close"): {"action": ("close", "keep")},
    }
    for fact, fields in variants.items():
        for name, values in fields.items():
            for value in values:
                variant = msgspec.structs.replace(fact, **{name: value})
                assert f.from_fields(f.to_fields(variant)) == variant
            with pytest.raises(f.FactError, match=f"^{f.to_fields(fact)['type']}: .*{name}"):
                f.from_fields({**f.to_fields(fact), name: "sideways"})


def test_fields_left_out_of_an_entry_read_back_as_their_defaults():
    head = {"v": "1", "ts_ms": S0}
    assert f.from_fields({**head, "type": "signal_rejected", "signal_id": "s", "symbol": "BTCUSDT",
                          "reason": "halted"}).detail == ""
    market = f.from_fields({**head, "type": "order_placed", "trade_id": "t", "link_id": "t-LH1", "leg": "long",
                            "purpose": "hedge", "venue": "okx", "symbol": "BTCUSDT", "side": "Buy",
                            "order_type": "Market", "qty": "0.1"})
    assert (market.price, market.reduce_only, market.position_idx, market.touch) == (None, False, 0, None)
    assert f.from_fields({**head, "type": "order_closed", "trade_id": "t", "link_id": "t-LH1",
                          "status": "cancelled"}).reason == ""
    assert f.from_fields({**head, "type": "position_gone", "trade_id": "t", "leg": "short", "qty": "0.1",
                          "price": "100500.00", "price_source": "touch"}).detail == ""
    assert f.from_fields({**head, "type": "trading_resumed"}) == f.TradingResumed(ts_ms=T0, by="operator")


def test_an_entry_that_is_not_a_fact_of_this_schema_is_refused_naming_what_is_wrong():
    acked = {"type": "order_acked", "ts_ms": S0, "trade_id": "t", "link_id": "t-LE1", "venue_order_id": "1"}
    with pytest.raises(f.FactError) as missing:
        f.from_fields(acked)
    assert str(missing.value) == "schema version None, expected 1"
    with pytest.raises(f.FactError) as newer:
        f.from_fields({**acked, "v": "2"})
    assert str(newer.value) == "schema version '2', expected 1"
    with pytest.raises(f.FactError) as bad:
        f.from_fields({**acked, "v": "1", "ts_ms": "soon"})
    assert str(bad.value) == "order_acked: Expected `int`, got `str` - at `$.ts_ms`"
    assert bad.value.__cause__ is None and bad.value.__suppress_context__  # the one-line message, no chain
    with pytest.raises(f.FactError) as untyped:
        f.from_fields({k: v for k, v in {**acked, "v": "1"}.items() if k != "type"})
    assert str(untyped.value).startswith("?: ")
    with pytest.raises(f.FactError, match=r"^order_shipped: "):
        f.from_fields({**acked, "v": "1", "type": "order_shipped"})



def test_a_well_formed_fact_about_a_trade_never_taken_is_refused_naming_it():
    with pytest.raises(f.FactError, match=r"^TradeClosed for unknown trade zz$"):
        core_after(closed("zz", T0, "closed", "profit_target", "1", "0", "0", "0", "10000.00"))

# ---------------------------------------------------------------------------------------- tally.py


def test_the_tally_counts_entries_orders_cancels_and_hedge_times_from_hand_made_facts():
    from services.executor.tally import Tally

    def order(tid: str, link: str, leg: str, purpose: str, side: str, ts: int, kind: str = "Limit") -> f.OrderPlaced:
        return f.OrderPlaced(ts_ms=ts, trade_id=tid, link_id=link, leg=leg, purpose=purpose, venue="okx",
                             symbol="BTCUSDT", side=side, order_type=kind, qty=D("0.1"))

    def fill(tid: str, link: str, ts: int, qty: str = "0.1") -> f.OrderFilled:
        return f.OrderFilled(ts_ms=ts, trade_id=tid, link_id=link, fill_id=f"{link}@{ts}", qty=D(qty),
                             price=D("100000"), fee=D("0"), maker=False)

    def shut(tid: str, link: str, ts: int, status: str = "cancelled") -> f.OrderClosed:
        return f.OrderClosed(ts_ms=ts, trade_id=tid, link_id=link, status=status)

    def leg_out(tid: str, phase: str, action: str, ts: int) -> f.LegOut:
        filled, unfilled = ("short", "long") if phase == "entry" else ("long", "short")
        return f.LegOut(ts_ms=ts, trade_id=tid, phase=phase, filled_leg=filled, unfilled_leg=unfilled,
                        filled_at_ms=ts - 500, action=action)

    def active(tid: str, ts: int) -> f.TradeActive:
        return f.TradeActive(ts_ms=ts, trade_id=tid, long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D("100000"),
                             short_avg=D("100000"))

    def done(tid: str, ts: int, outcome: str = "closed", reason: str = "profit_target") -> f.TradeClosed:
        return f.TradeClosed(ts_ms=ts, trade_id=tid, outcome=outcome, reason=reason, pnl_usd=D(0), fees_usd=D(0),
                             funding_usd=D(0), leg_out_loss_usd=D(0), size_usd=D("10000"))

    facts = [
        # A: its easier leg fills in part and is cancelled, a leg-out hedged (the first hedge refused)
        # 250 ms after it began; later its short exit is cancelled unfilled and hedged in 400 ms
        taken("A"), order("A", "A-SE1", "short", "entry", "Sell", T0), fill("A", "A-SE1", T0),
        order("A", "A-LE1", "long", "entry", "Buy", T0), fill("A", "A-LE1", T0 + 100, "0.04"),
        shut("A", "A-LE1", T0 + 500), leg_out("A", "entry", "hedge", T0 + 500),
        order("A", "A-LH1", "long", "hedge", "Buy", T0 + 500, "Market"), shut("A", "A-LH1", T0 + 501, "rejected"),
        order("A", "A-LH2", "long", "hedge", "Buy", T0 + 700, "Market"), fill("A", "A-LH2", T0 + 750, "0.06"),
        active("A", T0 + 750),
        order("A", "A-LX1", "long", "exit", "Sell", T0 + 9_500), order("A", "A-SX1", "short", "exit", "Buy", T0 + 9_500),
        fill("A", "A-LX1", T0 + 9_600), shut("A", "A-SX1", T0 + 10_000), leg_out("A", "exit", "hedge", T0 + 10_000),
        order("A", "A-SX2", "short", "exit", "Buy", T0 + 10_000, "Market"), fill("A", "A-SX2", T0 + 10_400),
        done("A", T0 + 10_400),
        # B: its harder leg rests unfilled and is cancelled at the leg timeout
        taken("B"), order("B", "B-SE1", "short", "entry", "Sell", T0), shut("B", "B-SE1", T0 + 500),
        done("B", T0 + 500, "rejected", "harder_leg_timeout"),
        # C: the venue refuses its harder leg
        taken("C"), order("C", "C-SE1", "short", "entry", "Sell", T0), shut("C", "C-SE1", T0 + 1, "rejected"),
        done("C", T0 + 1, "rejected", "harder_leg_rejected"),
        # D: both legs fill at once; its exit legs out (unwound: no hedge timed), and after the close a
        # duplicate fill and a cancel's answer arrive late: the cancel counts, not as a partial fill
        taken("D"), order("D", "D-SE1", "short", "entry", "Sell", T0), fill("D", "D-SE1", T0),
        order("D", "D-LE1", "long", "entry", "Buy", T0), fill("D", "D-LE1", T0), active("D", T0),
        order("D", "D-LX1", "long", "exit", "Sell", T0 + 5_000), order("D", "D-SX1", "short", "exit", "Buy", T0 + 5_000),
        fill("D", "D-LX1", T0 + 5_000), leg_out("D", "exit", "unwind", T0 + 5_500), fill("D", "D-SX1", T0 + 5_600),
        done("D", T0 + 5_600), fill("D", "D-SX1", T0 + 5_700), shut("D", "D-SX1", T0 + 5_800),
        # E: the easier leg refused, its hedge refused, then unwound: one failure though two leg-outs;
        # the hedge began at 20,000 and the trade was flat at 20,600
        taken("E"), order("E", "E-SE1", "short", "entry", "Sell", T0 + 20_000), fill("E", "E-SE1", T0 + 20_000),
        order("E", "E-LE1", "long", "entry", "Buy", T0 + 20_000), shut("E", "E-LE1", T0 + 20_000, "rejected"),
        leg_out("E", "entry", "hedge", T0 + 20_000),
        order("E", "E-LH1", "long", "hedge", "Buy", T0 + 20_000, "Market"), shut("E", "E-LH1", T0 + 20_001, "rejected"),
        leg_out("E", "entry", "unwind", T0 + 20_300),
        order("E", "E-SU1", "short", "unwind", "Buy", T0 + 20_300, "Market"), fill("E", "E-SU1", T0 + 20_600),
        done("E", T0 + 20_600, "emergency_closed", "hedge_failed"),
        # F: both legs filled at once, like D
        taken("F"), active("F", T0 + 30_000),
    ]
    tally = Tally()
    for fact in facts:
        tally.apply(fact)
    # orders: A 7, B 1, C 1, D 4, E 4 = 17; refused: A-LH1, C-SE1, E-LE1, E-LH1; cancelled: A-LE1 (in
    # part filled), A-SX1, B-SE1, D-SX1; failed: A and E (leg-outs), B and C (never active); D and F did well
    assert {k: tally.counts[k] for k in ("trades_executed", "trades_successful", "trades_failed", "timeouts",
                                          "orders_placed", "order_rejections", "cancellations", "partial_fills")} == {
        "trades_executed": 6, "trades_successful": 2, "trades_failed": 4, "timeouts": 1, "orders_placed": 17,
        "order_rejections": 4, "cancellations": 4, "partial_fills": 1}
    assert tally.hedge.samples_ns() == [250_000_000, 400_000_000, 600_000_000]


def test_the_tally_keeps_the_last_thousand_hedge_times():
    from services.executor.tally import Tally

    tally = Tally()
    for i in range(1_001):  # 1,001 hedged entries, the i-th taking i ms
        tid = f"t{i}"
        tally.apply(f.LegOut(ts_ms=T0, trade_id=tid, phase="entry", filled_leg="short", unfilled_leg="long",
                             filled_at_ms=T0, action="hedge"))
        tally.apply(f.TradeActive(ts_ms=T0 + i, trade_id=tid, long_qty=D(1), short_qty=D(1), long_avg=D(1),
                                  short_avg=D(1)))
    samples = tally.hedge.samples_ns()
    assert tally.hedge.count == 1_001 and len(samples) == 1_000
    assert samples[0] == 1_000 * 1_000_000  # the 1,001st overwrote the oldest (0 ms)


# ---------------------------------------------------------------------------------------- portfolio.py

DAY = 86_400_000
U = T0 + DAY  # 2027-01-16 08:00:00 UTC, a day after the first trade


def closed(tid: str, ts: int, outcome: str, reason: str, pnl: str, fees: str, funding: str, loss: str,
           size: str) -> f.TradeClosed:
    return f.TradeClosed(ts_ms=ts, trade_id=tid, outcome=outcome, reason=reason, pnl_usd=D(pnl), fees_usd=D(fees),
                         funding_usd=D(funding), leg_out_loss_usd=D(loss), size_usd=D(size))


def leg_out(tid: str, ts: int, action: str = "hedge") -> f.LegOut:
    return f.LegOut(ts_ms=ts, trade_id=tid, phase="entry", filled_leg="short", unfilled_leg="long",
                    filled_at_ms=ts - 500, action=action)


def core_after(*facts: f.AnyFact):
    from services.executor.core import ExecConfig, ExecutorCore

    core = ExecutorCore(ExecConfig(), {})  # $20,000 of starting capital
    for fact in facts:
        core.apply(fact)
    return core


TWO_DAYS = [
    # 2027-01-15: a wins 30.50; b is emergency closed after a leg-out, losing 12.40 (11.00 of it to the
    # leg-out); c never fills (rejected, nothing paid: not a closed trade), nor does c2; a2 wins 0.85
    # (less than a dollar is still a win) after a leg-out that cost 0.60; a stale and an unconfident
    # signal are refused
    taken("a", T0), taken("b", T0 + 1_000, size="6000.00"),
    f.SignalRejected(ts_ms=T0 + 2_000, signal_id="x1", symbol="BTCUSDT", reason="stale_signal"),
    leg_out("b", T0 + 3_000, "unwind"),
    closed("a", T0 + 60_000, "closed", "profit_target", "30.50", "8.25", "1.25", "0", "10000.00"),
    closed("b", T0 + 70_000, "emergency_closed", "hedge_failed", "-12.40", "9.00", "0", "11.00", "6000.00"),
    taken("c", T0 + 80_000, size="4000.00"),
    closed("c", T0 + 80_500, "rejected", "harder_leg_timeout", "0", "0", "0", "0", "4000.00"),
    taken("a2", T0 + 90_000, size="2000.00"), leg_out("a2", T0 + 92_000),
    closed("a2", T0 + 95_000, "closed", "funding_converged", "0.85", "1.00", "0", "0.60", "2000.00"),
    f.SignalRejected(ts_ms=T0 + 96_000, signal_id="x3", symbol="BTCUSDT", reason="confidence"),
    taken("c2", T0 + 97_000, size="1000.00"),
    closed("c2", T0 + 97_500, "rejected", "harder_leg_rejected", "0", "0", "0", "0", "1000.00"),
    # 2027-01-16: d found closed outside, exactly even (neither a win nor a loss); e rejected after
    # its filled part was unwound at a loss of 0.20 (no fee): a closed trade, a loss; k stopped out
    # at a loss of 3.10; g stays open after a leg-out; a signal is refused while halted
    taken("d", U - 6_000, size="5000.00"),
    closed("d", U - 5_000, "closed", "closed_outside", "0", "2.00", "-2.00", "0", "5000.00"),
    taken("e", U - 4_000, size="3000.00"),
    closed("e", U - 3_000, "rejected", "unwound", "-0.20", "0", "0", "0.20", "3000.00"),
    taken("k", U - 2_800, size="1500.00"),
    closed("k", U - 2_500, "closed", "stop_loss", "-3.10", "1.50", "0", "0", "1500.00"),
    taken("g", U - 2_000, size="7000.00"), leg_out("g", U - 1_000),
    f.SignalRejected(ts_ms=U, signal_id="x2", symbol="BTCUSDT", reason="halted"),
]


def test_the_portfolio_state_and_daily_figures_over_two_days_of_hand_made_trades():
    from services.executor.projection import Projector

    core = core_after(*TWO_DAYS)
    cmds = Projector().writes(core, TWO_DAYS)
    state = {
        "starting_capital": "20000",
        "available_capital": "13015.65",  # 20,000 + 15.65 - 7,000.00 held by g
        "total_open_positions": "7000.00",
        "active_trades": "1",
        "cumulative_pnl": "15.65",  # 30.50 - 12.40 + 0.85 + 0 - 0.20 - 3.10
        "fees_paid": "21.75",  # 8.25 + 9.00 + 1.00 + 2.00 + 1.50
        "funding_paid": "-0.75",  # 1.25 - 2.00
        "closed_trades": "6",  # a, b, a2, d, e, k
        "rejected_trades": "2",  # c, c2
        "signals_taken": "9",
        "rejected_signals": "3",
        "win_count": "2",  # a, a2
        "loss_count": "3",  # b, e, k
        "win_rate": "0.4000",  # 2 / (2 + 3); d, even, is neither
        "average_profit": "2.6083",  # 15.65 / 6 = 2.60833...
        "utilization": "0.3500",  # 7,000 / 20,000
        "leg_out_count": "3",  # b, a2, g
        "leg_out_total_loss": "11.80",  # 11.00 + 0.60 + 0.20
        "leg_out_loss_rate": "0.7540",  # 11.80 / 15.65 = 0.75399...
        "emergency_closes": "1",
        "closed_outside_trades": "1",
        "realistic_apr": "0.2856",  # 15.65 / 20,000 = 0.0007825 in exactly one day: x 365 = 0.2856125
        "updated_ms": str(U),
        "trading": "on", "halt_reason": "", "halt_detail": "", "halted_ms": "",
    }
    # day 1: a, b, a2 (c and c2 never filled); pnl 30.50 - 12.40 + 0.85, fees 8.25 + 9.00 + 1.00
    day1 = ('{"fees": "18.25", "funding": "1.25", "leg_out_loss": "11.60", "leg_outs": "2", "losses": "1", '
            '"pnl": "18.95", "rejected_signals": "2", "trades": "3", "wins": "2"}')
    # day 2: d, e, k; pnl 0 - 0.20 - 3.10, fees 2.00 + 1.50
    day2 = ('{"fees": "3.50", "funding": "-2.00", "leg_out_loss": "0.20", "leg_outs": "1", "losses": "2", '
            '"pnl": "-3.30", "rejected_signals": "1", "trades": "3", "wins": "0"}')
    flat = [x for pair in state.items() for x in pair]
    assert [c for c in cmds if c[1] in ("strategy:portfolio:state", "strategy:metrics:daily")] == [
        ("HSET", "strategy:portfolio:state", *flat),
        ("HSET", "strategy:metrics:daily", "2027-01-15", day1),
        ("HSET", "strategy:metrics:daily", "2027-01-16", day2)]
    everything = Projector().everything(core, [])
    assert everything["strategy:portfolio:state"] == state
    assert everything["strategy:metrics:daily"] == {"2027-01-15": day1, "2027-01-16": day2}
    assert sorted(k for k in everything if k.startswith("strategy:trades:")) == [
        "strategy:trades:active:g", *(f"strategy:trades:closed:{t}" for t in ("a", "a2", "b", "c", "c2", "d", "e", "k"))]
    assert "strategy:leg_out_events" not in everything  # none given


def test_a_day_is_the_utc_day_whatever_the_machines_zone(monkeypatch):
    import time

    from services.executor.portfolio import day_of

    midnight = T0 + 16 * 3_600_000  # 2027-01-16 00:00 UTC, 19:00 the day before in New York
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        days = day_of(midnight - 1), day_of(midnight)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert days == ("2027-01-15", "2027-01-16")


def test_a_batch_writes_the_days_its_leg_outs_closes_and_refusals_fall_on_and_nothing_without_facts():
    from services.executor.projection import Projector

    core = core_after(*TWO_DAYS[:-1])
    last = TWO_DAYS[-1]  # the refusal on the second day: only that day's figures are written again
    core.apply(last)
    cmds = Projector("p:").writes(core, [last])
    assert [c[:3] for c in cmds] == [("HSET", "p:strategy:portfolio:state", "starting_capital"),
                                     ("HSET", "p:strategy:metrics:daily", "2027-01-16")]
    opened = taken("h", U + 1_000)  # a trade taken changes no day's figures
    core.apply(opened)
    assert [c[:2] for c in Projector("p:").writes(core, [opened])] == [
        ("HSET", "p:strategy:trades:active:h"), ("HSET", "p:strategy:portfolio:state")]
    assert Projector().writes(core, []) == []
    fresh = core_after()
    assert Projector().everything(fresh, []) == {}  # no fact yet: no read model at all


def test_a_halt_shows_in_the_portfolio_state_and_an_empty_portfolio_gives_no_ratio_it_cannot_compute():
    from services.executor.projection import portfolio_fields

    core = core_after(f.SignalRejected(ts_ms=T0, signal_id="x", symbol="BTCUSDT", reason="stale_signal"),
                      f.TradingHalted(ts_ms=T0 + 5, reason="daily_loss", detail="-412.50 <= -400", action="keep"))
    assert portfolio_fields(core) == {
        "starting_capital": "20000", "available_capital": "20000", "total_open_positions": "0",
        "active_trades": "0", "cumulative_pnl": "0", "fees_paid": "0", "funding_paid": "0", "closed_trades": "0",
        "rejected_trades": "0", "signals_taken": "0", "rejected_signals": "1", "win_count": "0", "loss_count": "0",
        "win_rate": "", "average_profit": "", "utilization": "0.0000", "leg_out_count": "0",
        "leg_out_total_loss": "0", "leg_out_loss_rate": "", "emergency_closes": "0", "closed_outside_trades": "0",
        "realistic_apr": "", "updated_ms": str(T0 + 5),
        "trading": "halted", "halt_reason": "daily_loss", "halt_detail": "-412.50 <= -400", "halted_ms": str(T0 + 5)}
    core.apply(f.TradingResumed(ts_ms=T0 + 9))
    assert {k: v for k, v in portfolio_fields(core).items() if k.startswith(("trading", "halt"))} == {
        "trading": "on", "halt_reason": "", "halt_detail": "", "halted_ms": ""}


def test_the_apr_needs_a_whole_day_from_the_first_trade_and_counts_days_by_the_clock():
    from services.executor.portfolio import Portfolio

    p = Portfolio(D(20_000))
    for fact in (taken("a", T0), closed("a", T0 + 1_000, "closed", "profit_target", "40", "0", "0", "0", "10000.00"),
                 f.SignalRejected(ts_ms=T0 + DAY - 1, signal_id="x", symbol="BTCUSDT", reason="halted")):
        p.apply(fact)
    assert p.summary()["realistic_apr"] == ""  # a millisecond short of a day
    p.apply(f.SignalRejected(ts_ms=T0 + 2 * DAY, signal_id="y", symbol="BTCUSDT", reason="halted"))
    assert p.summary()["realistic_apr"] == "0.3650"  # 40 / 20,000 = 0.2 % in two days: x 365 / 2
    p.apply(f.SignalRejected(ts_ms=T0 + DAY, signal_id="z", symbol="BTCUSDT", reason="halted"))
    assert p.summary()["updated_ms"] == str(T0 + 2 * DAY)  # a late fact does not turn the clock back


# ---------------------------------------------------------------------------------------- projection.py


def order(tid: str, n: str, leg: str, purpose: str, side: str, qty: str, ts: int, price: str | None = None,
          touch: str | None = None) -> f.OrderPlaced:
    """A limit order when it has a price, else a market order; exits and unwinds reduce only."""
    return f.OrderPlaced(ts_ms=ts, trade_id=tid, link_id=f"{tid}-{n}", leg=leg, purpose=purpose,
                         venue="binance" if leg == "long" else "okx", symbol="BTCUSDT", side=side,
                         order_type="Market" if price is None else "Limit", qty=D(qty),
                         price=None if price is None else D(price), reduce_only=purpose in ("exit", "unwind"),
                         touch=None if touch is None else D(touch))


def fill(tid: str, n: str, fill_id: str, qty: str, price: str, fee: str, ts: int) -> f.OrderFilled:
    return f.OrderFilled(ts_ms=ts, trade_id=tid, link_id=f"{tid}-{n}", fill_id=fill_id, qty=D(qty), price=D(price),
                         fee=D(fee), maker=False)


def fill_of(tid: str, leg: str, side: str, price: str, fee: str, qty: str = "0.1") -> list[f.AnyFact]:
    """An order on `leg` filled in full at `price`."""
    n = f"{leg[0].upper()}E1"
    return [order(tid, n, leg, "entry", side, qty, T0, price), fill(tid, n, f"{tid}-{n}", qty, price, fee, T0)]


def shut(tid: str, n: str, ts: int, status: str = "cancelled") -> f.OrderClosed:
    return f.OrderClosed(ts_ms=ts, trade_id=tid, link_id=f"{tid}-{n}", status=status)


# t1: the short leg fills at 100,700.00; the long leg's limit rests and is cancelled at 500 ms; a
# leg-out, hedged at market at 100,030.1 where the long was priced from a touch of 100,000.1; active.
ENTRY = [
    taken("t1"),
    order("t1", "SE1", "short", "entry", "Sell", "0.1", T0, "100649.75", "100700.00"),
    f.OrderAcked(ts_ms=T0 + 3, trade_id="t1", link_id="t1-SE1", venue_order_id="okx-1"),
    fill("t1", "SE1", "f1", "0.1", "100700.00", "5.035", T0 + 5),
    order("t1", "LE1", "long", "entry", "Buy", "0.1", T0 + 5, "100050.1", "100000.1"),
    f.CancelRequested(ts_ms=T0 + 505, trade_id="t1", link_id="t1-LE1"),
    shut("t1", "LE1", T0 + 510),
    f.LegOut(ts_ms=T0 + 510, trade_id="t1", phase="entry", filled_leg="short", unfilled_leg="long",
             filled_at_ms=T0 + 5, action="hedge"),
    order("t1", "LH1", "long", "hedge", "Buy", "0.1", T0 + 510, touch="100020.1"),
    fill("t1", "LH1", "f2", "0.1", "100030.1", "4.001204", T0 + 512),
    f.TradeActive(ts_ms=T0 + 512, trade_id="t1", long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D("100030.1"),
                  short_avg=D("100700.00")),
]
# then funding received on the short leg, an exit at the profit target: the long sells in two fills
# (0.06 @ 100,300.0 and 0.04 @ 100,300.3), the short's limit is cancelled unfilled, a leg-out on the
# exit, and the short is bought back at market at 100,320.05 where its exit was priced from 100,300.05
EXIT = [
    f.FundingPaid(ts_ms=T0 + 1_000, trade_id="t1", leg="short", amount=D("-1.2085")),
    f.ExitStarted(ts_ms=T0 + 60_000, trade_id="t1", reason="profit_target", spread_bps=12.5),
    order("t1", "LX1", "long", "exit", "Sell", "0.1", T0 + 60_000, "100300.0", "100300.0"),
    order("t1", "SX1", "short", "exit", "Buy", "0.1", T0 + 60_000, "100300.05", "100300.05"),
    fill("t1", "LX1", "f3", "0.06", "100300.0", "2.4072", T0 + 60_001),
    fill("t1", "LX1", "f4", "0.04", "100300.3", "1.604804", T0 + 60_002),
    f.CancelRequested(ts_ms=T0 + 60_500, trade_id="t1", link_id="t1-SX1"),
    shut("t1", "SX1", T0 + 60_501),
    f.LegOut(ts_ms=T0 + 60_501, trade_id="t1", phase="exit", filled_leg="long", unfilled_leg="short",
             filled_at_ms=T0 + 60_002, action="hedge"),
    order("t1", "SX2", "short", "exit", "Buy", "0.1", T0 + 60_501, touch="100310.00"),
    fill("t1", "SX2", "f5", "0.1", "100320.05", "5.0160025", T0 + 60_503),
    # cash: sold 10,070.000 + 6,018.000 + 4,012.012, bought 10,003.01 + 10,032.005 = 64.997; fees
    # 5.035 + 4.001204 + 2.4072 + 1.604804 + 5.0160025 = 18.0642105; funding -1.2085 (received)
    # PnL 64.997 - 18.0642105 + 1.2085 = 48.1412895; leg-outs 3.00 (entry) + 2.000 (exit)
    closed("t1", T0 + 60_503, "closed", "profit_target", "48.1412895", "18.0642105", "-1.2085", "5.000", "10000.00"),
]
TAKEN_FIELDS = {
    "trade_id": "t1", "signal_id": "s-t1", "mode": "cross", "symbol": "BTCUSDT", "long_exchange": "binance",
    "short_exchange": "okx", "harder_leg": "short", "qty": "0.1", "position_size_usd": "10000.00",
    "entry_time": S0, "signal_time": str(T0 - 7), "entry_spread_bps": "69.95", "funding_delta_entry": "0.0004",
    "projected_profit_usd": "25.50", "confidence": "80"}
# the entry leg-out: its hedge bought 0.1 at 100,030.1, 30.0 above the touch the long leg was priced
# from (100,000.1, the entry order's, not the hedge's own): 0.1 x 30.0 = 3.00 lost
ENTRY_HEDGE = {"hedge_executed": "true", "hedge_qty": "0.1", "hedge_price": "100030.1", "loss_usd": "3.00"}


def pairs(cmd: tuple) -> dict[str, str]:
    """The fields of an HSET (after its key) or an XADD (after its key and id), as HGETALL / XRANGE show them."""
    flat = cmd[3:] if cmd[0] == "XADD" else cmd[2:]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def without_orders(cmd: tuple) -> dict[str, str]:
    """A trade hash's fields but its orders' (test_each_order_of_a_trade_is_a_line_of_its_hash checks those)."""
    return {k: v for k, v in pairs(cmd).items() if not k.startswith("order:")}


def test_each_order_of_a_trade_is_a_line_of_its_hash_with_its_venue_id_and_fills():
    from services.executor.projection import Projector

    core = core_after()
    for fact in ENTRY:
        core.apply(fact)
    _, active, _, _ = Projector().writes(core, ENTRY)
    orders = {k: v for k, v in pairs(active).items() if k.startswith("order:")}
    assert orders == {
        "order:t1-SE1": "okx Sell 0.1 Limit 100649.75 entry (short); venue id okx-1; filled 0.1 @ 100700.00; filled",
        "order:t1-LE1": "binance Buy 0.1 Limit 100050.1 entry (long); venue id -; filled 0; cancelled",
        "order:t1-LH1": "binance Buy 0.1 Market hedge (long); venue id -; filled 0.1 @ 100030.1; filled"}


def test_a_trade_hedged_on_entry_and_on_exit_writes_its_hashes_and_one_leg_out_event_as_each_settles():
    from services.executor.projection import Projector

    core, projector = core_after(), Projector()
    for fact in ENTRY:
        core.apply(fact)
    xadd, active, state, daily = projector.writes(core, ENTRY)
    assert xadd[:3] == ("XADD", "strategy:leg_out_events", f"{T0 + 512}-0")  # settled when the hedge filled
    entry_event = pairs(xadd)
    assert entry_event == {
        "ts_ms": str(T0 + 510), "trade_id": "t1", "phase": "entry", "filled_leg": "short", "unfilled_leg": "long",
        "filled_at_ms": str(T0 + 5), "action": "hedge", "symbol": "BTCUSDT", "long_exchange": "binance",
        "short_exchange": "okx", **ENTRY_HEDGE}
    assert active[:2] == ("HSET", "strategy:trades:active:t1")
    assert without_orders(active) == {
        **TAKEN_FIELDS, "status": "active", "long_held": "0.1", "short_held": "-0.1", "fees_usd": "9.036204",
        "funding_usd": "0", "orders": "3", "leg_out_events": "1", "active_time": str(T0 + 512),
        "entry_long_price": "100030.1", "entry_short_price": "100700.00",  # each at its venue's decimals
        "leg_out_filled": "short", "leg_out_action": "hedge", "leg_out_phase": "entry", **ENTRY_HEDGE}
    assert (state[1], daily[1:3]) == ("strategy:portfolio:state", ("strategy:metrics:daily", "2027-01-15"))

    for fact in EXIT:
        core.apply(fact)
    xadd, delete, done, state, daily = projector.writes(core, EXIT)
    # the exit leg-out: bought back 0.1 at 100,320.05, 20.00 above its exit's touch of 100,300.05: 2.000
    assert xadd[:3] == ("XADD", "strategy:leg_out_events", f"{T0 + 60_503}-0")
    assert pairs(xadd) == {
        "ts_ms": str(T0 + 60_501), "trade_id": "t1", "phase": "exit", "filled_leg": "long", "unfilled_leg": "short",
        "filled_at_ms": str(T0 + 60_002), "action": "hedge", "symbol": "BTCUSDT", "long_exchange": "binance",
        "short_exchange": "okx", "hedge_executed": "true", "hedge_qty": "0.1", "hedge_price": "100320.05",
        "loss_usd": "2.000"}
    assert delete == ("DEL", "strategy:trades:active:t1") and done[:2] == ("HSET", "strategy:trades:closed:t1")
    assert without_orders(done) == {
        **TAKEN_FIELDS, "status": "closed", "long_held": "0.00", "short_held": "0.0", "fees_usd": "18.0642105",
        "funding_usd": "-1.2085", "orders": "6", "leg_out_events": "2", "active_time": str(T0 + 512),
        "entry_long_price": "100030.1", "entry_short_price": "100700.00",
        "leg_out_filled": "short", "leg_out_action": "hedge", "leg_out_phase": "entry", **ENTRY_HEDGE,
        "exit_reason": "profit_target", "exit_started": str(T0 + 60_000), "exit_spread_bps": "12.5",
        "outcome": "closed", "close_reason": "profit_target", "exit_time": str(T0 + 60_503),
        "actual_profit_usd": "48.1412895", "leg_out_loss_usd": "5.000", "price_pnl_usd": "64.997",
        # the long sold 10,030.012 for 0.1: 100,300.12 at binance's 0.1 tick; the short bought at 100,320.05
        "exit_long_price": "100300.1", "exit_short_price": "100320.05"}
    assert daily[1:3] == ("strategy:metrics:daily", "2027-01-15")
    # a rebuild from all the facts writes the very same hash and stream
    leg_outs = [(T0 + 512, ENTRY[7]), (T0 + 60_503, EXIT[8])]
    everything = Projector().everything(core, leg_outs)
    assert everything["strategy:trades:closed:t1"] == pairs(done)
    assert everything["strategy:leg_out_events"] == [(f"{T0 + 512}-0", entry_event), (f"{T0 + 60_503}-0", pairs(xadd))]


def test_an_emergency_close_settles_both_its_leg_outs_at_once_with_the_unwinds_loss_and_its_account():
    from services.executor.projection import Projector, close_text

    # t2: the short leg fills at 100,700.00, the venue refuses the long leg and its hedge, so the
    # short is unwound at market at 100,720.00: cash -2.000, fees 5.035 + 5.036, all of it lost
    facts = [
        taken("t2"),
        order("t2", "SE1", "short", "entry", "Sell", "0.1", T0, "100649.75", "100700.00"),
        fill("t2", "SE1", "f1", "0.1", "100700.00", "5.035", T0 + 2),
        order("t2", "LE1", "long", "entry", "Buy", "0.1", T0 + 2, "100050.1", "100000.1"),
        shut("t2", "LE1", T0 + 3, "rejected"),
        f.LegOut(ts_ms=T0 + 3, trade_id="t2", phase="entry", filled_leg="short", unfilled_leg="long",
                 filled_at_ms=T0 + 2, action="hedge"),
        order("t2", "LH1", "long", "hedge", "Buy", "0.1", T0 + 3, touch="100000.1"),
        shut("t2", "LH1", T0 + 4, "rejected"),
        f.LegOut(ts_ms=T0 + 4, trade_id="t2", phase="entry", filled_leg="short", unfilled_leg="long",
                 filled_at_ms=T0 + 2, action="unwind"),
        order("t2", "SU1", "short", "unwind", "Buy", "0.1", T0 + 4, touch="100710.00"),
        fill("t2", "SU1", "f2", "0.1", "100720.00", "5.036", T0 + 6),
        closed("t2", T0 + 6, "emergency_closed", "hedge_failed", "-12.071", "10.071", "0", "12.071", "10000.00"),
    ]
    core = core_after(*facts)
    first, second, delete, done, _, _ = Projector().writes(core, facts)
    common = {"trade_id": "t2", "phase": "entry", "filled_leg": "short", "unfilled_leg": "long",
              "filled_at_ms": str(T0 + 2), "symbol": "BTCUSDT", "long_exchange": "binance", "short_exchange": "okx",
              "hedge_executed": "false", "hedge_qty": "0", "hedge_price": ""}
    # one closing fact settles both: ids T0+6 - 0 and - 1; the hedge bought nothing and lost nothing
    # (0 - 100,000.1 x 0 = 0.0), the unwind lost what the whole trade lost
    assert [c[:3] for c in (first, second)] == [("XADD", "strategy:leg_out_events", f"{T0 + 6}-0"),
                                                ("XADD", "strategy:leg_out_events", f"{T0 + 6}-1")]
    assert pairs(first) == {**common, "ts_ms": str(T0 + 3), "action": "hedge", "loss_usd": "0.0"}
    assert pairs(second) == {**common, "ts_ms": str(T0 + 4), "action": "unwind", "loss_usd": "12.071"}
    assert delete == ("DEL", "strategy:trades:active:t2")
    assert without_orders(done) == {
        **TAKEN_FIELDS, "trade_id": "t2", "signal_id": "s-t2", "status": "closed", "long_held": "0",
        "short_held": "0.0", "fees_usd": "10.071", "funding_usd": "0", "orders": "4", "leg_out_events": "2",
        "leg_out_filled": "short", "leg_out_action": "hedge", "leg_out_phase": "entry", "hedge_executed": "false",
        "hedge_qty": "0", "hedge_price": "", "loss_usd": "0.0", "outcome": "emergency_closed",
        "close_reason": "hedge_failed", "exit_time": str(T0 + 6), "actual_profit_usd": "-12.071",
        "leg_out_loss_usd": "12.071", "price_pnl_usd": "-2.000", "exit_short_price": "100720.00"}
    assert close_text(core.closed["t2"]) == (
        "long nothing; short sold 0.1 @ 100700.00 then bought 0.1 @ 100720.00: sells - buys -2.000 - fees 10.071 "
        "- funding 0 = PnL -12.071 USD (projected 25.50); leg-out loss 12.071")
    rebuilt = Projector().everything(core, [(T0 + 6, facts[5]), (T0 + 6, facts[8])])
    assert rebuilt["strategy:leg_out_events"] == [(f"{T0 + 6}-0", pairs(first)), (f"{T0 + 6}-1", pairs(second))]


def test_legs_closed_outside_are_listed_in_the_hash_and_counted_in_the_account():
    from services.executor.projection import close_text, trade_fields

    # t3 active at 100,000.1 / 100,700.00; after a restart okx holds nothing (taken at its touch,
    # 100,500.00) and binance nothing (no fresh price: at the entry, no price PnL)
    hour = T0 + 3_600_000
    core = core_after(
        taken("t3"),
        order("t3", "SE1", "short", "entry", "Sell", "0.1", T0, "100649.75", "100700.00"),
        fill("t3", "SE1", "f1", "0.1", "100700.00", "5.035", T0 + 1),
        order("t3", "LE1", "long", "entry", "Buy", "0.1", T0 + 1, "100050.1", "100000.1"),
        fill("t3", "LE1", "f2", "0.1", "100000.1", "4.000004", T0 + 2),
        f.TradeActive(ts_ms=T0 + 2, trade_id="t3", long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D("100000.1"),
                      short_avg=D("100700.00")),
        f.PositionGone(ts_ms=hour, trade_id="t3", leg="short", qty=D("0.1"), price=D("100500.00"),
                       price_source="touch"),
        f.PositionGone(ts_ms=hour, trade_id="t3", leg="long", qty=D("0.1"), price=D("100000.1"),
                       price_source="entry"),
        # cash 10,070.000 - 10,000.01 - 10,050.000 + 10,000.01 = 20.000; fees 9.035004
        closed("t3", hour, "closed", "closed_outside", "10.964996", "9.035004", "0", "0", "10000.00"))
    trade = core.closed["t3"]
    assert {k: v for k, v in trade_fields(trade).items() if not k.startswith("order:")} == {
        **TAKEN_FIELDS, "trade_id": "t3", "signal_id": "s-t3", "status": "closed", "long_held": "0.0",
        "short_held": "0.0", "fees_usd": "9.035004", "funding_usd": "0", "orders": "2", "leg_out_events": "0",
        "active_time": str(T0 + 2), "entry_long_price": "100000.1", "entry_short_price": "100700.00",
        "closed_outside": "short 0.1 at 100500.00 (touch); long 0.1 at 100000.1 (entry)",
        "outcome": "closed", "close_reason": "closed_outside", "exit_time": str(hour),
        "actual_profit_usd": "10.964996", "leg_out_loss_usd": "0", "price_pnl_usd": "20.000"}
    assert close_text(trade) == (
        "long bought 0.1 @ 100000.1; short sold 0.1 @ 100700.00 (2 closed outside): sells - buys 20.000 "
        "- fees 9.035004 - funding 0 = PnL 10.964996 USD (projected 25.50); leg-out loss 0")


def test_the_marks_value_each_priced_trade_at_the_touch_and_count_the_ones_without_a_price():
    from services.executor.projection import marks
    from tests.executor_market import Desk

    desk = Desk(venues=("binance", "okx", "bybit"))
    desk.book("binance", 100_100.0, 100_100.1)
    desk.book("okx", 100_500.0, 100_500.1)
    desk.book("bybit", 100_080.0, 100_080.1)
    for fact in (
        # ta holds both legs: cash 10,070.00 - 10,000.01 = 69.99, fees 9.035; the long sells at the
        # bid (0.1 x 100,100.0) and the short buys at the ask (0.1 x 100,500.1): 60.955 - 40.01 = 20.945
        taken("ta"), fill_of("ta", "short", "Sell", "100700.0", "5.035"), fill_of("ta", "long", "Buy", "100000.1", "4.00"),
        # tb holds 0.05 long at bybit bought at 100,000.0 (fee 2.5): 0.05 x (100,080.0 - 100,000.0) - 2.5 = 1.500
        taken("tb", long_venue="bybit"), fill_of("tb", "long", "Buy", "100000.0", "2.5", "0.05"),
        # no price at gate: neither tc nor td is valued
        taken("tc", long_venue="gate"), taken("td", short_venue="gate"),
        # te closed with 12.50
        taken("te"), closed("te", T0 + 1, "closed", "profit_target", "12.50", "0", "0", "0", "10000.00"),
    ):
        for x in fact if isinstance(fact, list) else [fact]:
            desk.core.apply(x)
    # spreads: short mid - long mid over their mean: 400 / 100,300.05 and 420 / 100,290.05, in bps
    assert marks(desk.core, T0 + 9) == {
        "ts_ms": str(T0 + 9), "open_trades": "4", "ta:spread_bps": "39.88", "ta:unrealised_pnl_usd": "20.945",
        "tb:spread_bps": "41.88", "tb:unrealised_pnl_usd": "1.500", "unrealised_pnl_usd": "22.445",
        "equity_usd": "20034.945", "unpriced_trades": "2"}  # 20,000 + 12.50 + 20.945 + 1.500


def test_a_trade_being_unwound_shows_its_leg_out_with_the_loss_not_yet_known():
    from services.executor.projection import Projector

    # t4's harder leg (short) filled 0.04 of 0.1 before its timeout; the rest is unwound (nothing on
    # the long leg); until the unwind fills and the trade closes, what it lost is not known
    facts = [
        taken("t4"),
        order("t4", "SE1", "short", "entry", "Sell", "0.1", T0, "100649.75", "100700.00"),
        fill("t4", "SE1", "f1", "0.04", "100700.00", "2.014", T0 + 100),
        shut("t4", "SE1", T0 + 500),
        f.LegOut(ts_ms=T0 + 500, trade_id="t4", phase="entry", filled_leg="short", unfilled_leg="long",
                 filled_at_ms=T0 + 100, action="unwind"),
        order("t4", "SU1", "short", "unwind", "Buy", "0.04", T0 + 500, touch="100700.05"),
    ]
    core = core_after(*facts)
    [active, _, _] = Projector().writes(core, facts)
    assert active[:2] == ("HSET", "strategy:trades:active:t4")  # no leg-out event: not settled yet
    assert without_orders(active) == {
        **TAKEN_FIELDS, "trade_id": "t4", "signal_id": "s-t4", "status": "pending", "long_held": "0",
        "short_held": "-0.04", "fees_usd": "2.014", "funding_usd": "0", "orders": "2", "leg_out_events": "1",
        "leg_out_filled": "short", "leg_out_action": "unwind", "leg_out_phase": "entry", "hedge_executed": "false",
        "hedge_qty": "0", "hedge_price": "", "loss_usd": ""}
