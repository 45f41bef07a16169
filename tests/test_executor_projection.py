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
    ]
    tally = Tally()
    for fact in facts:
        tally.apply(fact)
    # orders: A 7, B 1, C 1, D 4, E 4 = 17; refused: A-LH1, C-SE1, E-LE1, E-LH1; cancelled: A-LE1 (in
    # part filled), A-SX1, B-SE1, D-SX1; failed: A and E (leg-outs), B and C (never active)
    assert {k: tally.counts[k] for k in ("trades_executed", "trades_successful", "trades_failed", "timeouts",
                                          "orders_placed", "order_rejections", "cancellations", "partial_fills")} == {
        "trades_executed": 5, "trades_successful": 1, "trades_failed": 4, "timeouts": 1, "orders_placed": 17,
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
    # leg-out); c never fills (rejected, nothing paid: not a closed trade); a stale signal is refused
    taken("a", T0), taken("b", T0 + 1_000, size="6000.00"),
    f.SignalRejected(ts_ms=T0 + 2_000, signal_id="x1", symbol="BTCUSDT", reason="stale_signal"),
    leg_out("b", T0 + 3_000, "unwind"),
    closed("a", T0 + 60_000, "closed", "profit_target", "30.50", "8.25", "1.25", "0", "10000.00"),
    closed("b", T0 + 70_000, "emergency_closed", "hedge_failed", "-12.40", "9.00", "0", "11.00", "6000.00"),
    taken("c", T0 + 80_000, size="4000.00"),
    closed("c", T0 + 80_500, "rejected", "harder_leg_timeout", "0", "0", "0", "0", "4000.00"),
    # 2027-01-16: d found closed outside, exactly even (neither a win nor a loss); e rejected after
    # its filled part was unwound at a loss of 0.20 (no fee): a closed trade, a loss; g stays open
    # after a leg-out; a signal is refused while halted
    taken("d", U - 6_000, size="5000.00"),
    closed("d", U - 5_000, "closed", "closed_outside", "0", "2.00", "-2.00", "0", "5000.00"),
    taken("e", U - 4_000, size="3000.00"),
    closed("e", U - 3_000, "rejected", "unwound", "-0.20", "0", "0", "0.20", "3000.00"),
    taken("g", U - 2_000, size="7000.00"), leg_out("g", U - 1_000),
    f.SignalRejected(ts_ms=U, signal_id="x2", symbol="BTCUSDT", reason="halted"),
]


def test_the_portfolio_state_and_daily_figures_over_two_days_of_hand_made_trades():
    from services.executor.projection import Projector

    core = core_after(*TWO_DAYS)
    cmds = Projector().writes(core, TWO_DAYS)
    state = {
        "starting_capital": "20000",
        "available_capital": "13017.90",  # 20,000 + 17.90 - 7,000.00 held by g
        "total_open_positions": "7000.00",
        "active_trades": "1",
        "cumulative_pnl": "17.90",  # 30.50 - 12.40 + 0 - 0.20
        "fees_paid": "19.25",  # 8.25 + 9.00 + 2.00
        "funding_paid": "-0.75",  # 1.25 - 2.00
        "closed_trades": "4",  # a, b, d, e
        "rejected_trades": "1",  # c
        "signals_taken": "6",
        "rejected_signals": "2",
        "win_count": "1",
        "loss_count": "2",
        "win_rate": "0.3333",  # 1 / (1 + 2); d, even, is neither
        "average_profit": "4.4750",  # 17.90 / 4
        "utilization": "0.3500",  # 7,000 / 20,000
        "leg_out_count": "2",
        "leg_out_total_loss": "11.20",
        "leg_out_loss_rate": "0.6257",  # 11.20 / 17.90 = 0.62569...
        "emergency_closes": "1",
        "closed_outside_trades": "1",
        "realistic_apr": "0.3267",  # 17.90 / 20,000 = 0.000895 in exactly one day: x 365 = 0.326675
        "updated_ms": str(U),
        "trading": "on", "halt_reason": "", "halt_detail": "", "halted_ms": "",
    }
    day1 = ('{"fees": "17.25", "funding": "1.25", "leg_out_loss": "11.00", "leg_outs": "1", "losses": "1", '
            '"pnl": "18.10", "rejected_signals": "1", "trades": "2", "wins": "1"}')
    day2 = ('{"fees": "2.00", "funding": "-2.00", "leg_out_loss": "0.20", "leg_outs": "1", "losses": "1", '
            '"pnl": "-0.20", "rejected_signals": "1", "trades": "2", "wins": "0"}')
    flat = [x for pair in state.items() for x in pair]
    assert [c for c in cmds if c[1] in ("strategy:portfolio:state", "strategy:metrics:daily")] == [
        ("HSET", "strategy:portfolio:state", *flat),
        ("HSET", "strategy:metrics:daily", "2027-01-15", day1),
        ("HSET", "strategy:metrics:daily", "2027-01-16", day2)]
    everything = Projector().everything(core, [])
    assert everything["strategy:portfolio:state"] == state
    assert everything["strategy:metrics:daily"] == {"2027-01-15": day1, "2027-01-16": day2}
    assert sorted(k for k in everything if k.startswith("strategy:trades:")) == [
        "strategy:trades:active:g", *(f"strategy:trades:closed:{t}" for t in "abcde")]
    assert "strategy:leg_out_events" not in everything  # none given


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
