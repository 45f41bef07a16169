"""The executor core with paper execution: entries, leg-outs, hedges, emergency closes, exits,
rejections, and the portfolio, each against hand-computed figures."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore
from services.executor.paper import PaperVenue, QueuePosition, route
from services.executor.projection import Projector, marks, trade_fields
from services.executor.trade import Trade
from tests.executor_market import GRID, SYMBOL, T0, Desk


def opened(desk: Desk, long_ask: float = 100_000.1, short_bid: float = 100_700.0) -> None:
    desk.book("binance", long_ask - 0.1, long_ask)
    desk.book("okx", short_bid, short_bid + 0.1)


def conserved(desk: Desk) -> None:
    p = desk.core.portfolio
    assert p.available + p.open_exposure == p.starting_capital + p.cumulative_pnl


def test_happy_path_harder_leg_first_then_active_then_exit_to_the_cent():
    desk = Desk()
    opened(desk)
    desk.signal()
    taken = desk.of(f.SignalTaken)[0]
    # okx is harder than binance: the short leg goes first; 50 % of $20,000 caps the size
    assert taken.harder == "short" and taken.size_usd == D("10000.00") and taken.qty == D("0.099")
    placed = desk.of(f.OrderPlaced)  # limits 5 bps through the touch, on the tick grid
    assert [(o.leg, o.side, o.price) for o in placed] == [("short", "Sell", D("100649.7")), ("long", "Buy", D("100050.1"))]
    assert [x.price for x in desk.of(f.OrderFilled)] == [D("100700.0"), D("100000.1")]  # the touch had enough
    assert desk.core.trades[taken.trade_id].status == "active"
    conserved(desk)
    assert desk.core.portfolio.available == D("10000.00")

    desk.now += 5_000  # the spread closes: 90 % of the projected profit is there
    desk.book("binance", 100_300.0, 100_300.1)
    desk.book("okx", 100_300.0, 100_300.1)
    closed = desk.of(f.TradeClosed)[0]
    assert desk.of(f.ExitStarted)[0].reason == "profit_target"
    assert all(o.reduce_only for o in desk.of(f.OrderPlaced) if o.purpose == "exit")
    cash = D("0.099") * (D("100700.0") - D("100000.1") + D("100300.0") - D("100300.1"))
    fees = D("0.099") * (D("100700.0") * D("0.0005") + D("100000.1") * D("0.0004")
                         + D("100300.0") * D("0.0004") + D("100300.1") * D("0.0005"))
    assert closed.pnl_usd == cash - fees == D("51.39881109") and closed.fees_usd == fees
    p = desk.core.portfolio
    assert p.cumulative_pnl == closed.pnl_usd and p.available == D("20051.39881109") and p.wins == 1
    conserved(desk)


def test_an_open_trade_is_marked_at_the_touch_to_the_cent_and_the_mark_follows_the_market():
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    desk.now += 1_000
    desk.book("binance", 100_100.0, 100_100.1)  # the long leg would sell at 100,100.0
    desk.book("okx", 100_500.0, 100_500.1)  # the short leg would buy back at 100,500.1
    assert trade.status == "active"
    m = marks(desk.core, desk.now)
    cash = D("0.099") * (D("100700.0") - D("100000.1"))
    fees = D("0.099") * (D("100700.0") * D("0.0005") + D("100000.1") * D("0.0004"))
    unrealised = cash - fees + D("0.099") * (D("100100.0") - D("100500.1"))
    assert unrealised == D("20.73554604")
    assert m == {"ts_ms": str(desk.now), "open_trades": "1", f"{trade.id}:spread_bps": "39.88",
                 f"{trade.id}:unrealised_pnl_usd": "20.73554604", "unrealised_pnl_usd": "20.73554604",
                 "equity_usd": "20020.73554604", "unpriced_trades": "0"}
    desk.book("okx", 100_600.0, 100_600.1)
    assert marks(desk.core, desk.now)["unrealised_pnl_usd"] == str(unrealised - D("0.099") * 100)
    desk.core.market.get("okx", SYMBOL).ask = None  # no price to buy the short leg back at
    m = marks(desk.core, desk.now)
    assert (m["unpriced_trades"], m["unrealised_pnl_usd"], m["equity_usd"]) == ("1", "0", "20000")


def test_harder_leg_not_filled_in_500_ms_is_cancelled_and_the_trade_rejected():
    desk = Desk()
    opened(desk)
    desk.book("okx", 100_600.0, 100_600.1, size=0.0)  # nothing to sell into at 100,700: the order rests
    desk.book("okx", 100_600.0, 100_600.1)
    desk.now = T0  # the signal's prices, the okx bid since gone below
    desk.core.market.get("okx", SYMBOL).bid = 100_700.0  # as when the signal was read
    desk.signal()
    assert not desk.of(f.OrderFilled)
    assert desk.at(499) == []
    desk.at(500)
    assert [type(x).__name__ for x in desk.facts[-3:]] == ["CancelRequested", "OrderClosed", "TradeClosed"]
    closed = desk.of(f.TradeClosed)[0]
    assert (closed.outcome, closed.reason, closed.pnl_usd) == ("rejected", "harder_leg_timeout", 0)
    assert not desk.of(f.OrderPlaced)[1:]  # the easier leg was never sent
    assert desk.core.portfolio.available == D(20_000) and desk.core.portfolio.rejected_trades == 1


def test_easier_leg_not_filled_is_hedged_at_market_at_500_ms_and_counted_as_a_leg_out():
    desk = Desk()
    opened(desk)
    binance = desk.core.market.get("binance", SYMBOL)
    desk.book("binance", 100_100.3, 100_100.4)  # binance moved up 10 bps after the signal: the limit rests
    binance.ask = 100_000.1
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    binance.ask = 100_100.4
    assert trade.status == "pending" and trade.held["short"] == D("-0.099") and not trade.held["long"]
    desk.at(499)
    assert not desk.of(f.LegOut)
    desk.at(500)
    leg_out = desk.of(f.LegOut)[0]
    assert (leg_out.filled_leg, leg_out.unfilled_leg, leg_out.action) == ("short", "long", "hedge")
    hedge = next(o for o in desk.of(f.OrderPlaced) if o.purpose == "hedge")
    assert hedge.order_type == "Market" and hedge.side == "Buy" and hedge.qty == D("0.099")
    assert trade.status == "active" and trade.held["long"] == D("0.099")
    # against the market the leg was priced from (the ask of 100,000.1 when it was sent), not its
    # limit 5 bps through it: the 10 bps the market moved away and the hedge's price are the loss
    assert trade.leg_out_loss() == D("0.099") * (D("100100.4") - D("100000.1")) == D("9.9297")
    assert desk.core.portfolio.leg_out_count == 1


def test_the_leg_out_event_is_written_once_settled_with_the_hedge_price_and_a_rebuild_writes_it_the_same():
    desk = Desk()
    opened(desk)
    binance = desk.core.market.get("binance", SYMBOL)
    desk.book("binance", 100_100.3, 100_100.4)
    binance.ask = 100_000.1
    desk.signal()
    binance.ask = 100_100.4
    before = desk.facts[:]
    writes = Projector().writes(desk.core, before)
    assert not [c for c in writes if c[0] == "XADD"]  # the leg-out has not happened
    desk.at(500)
    active = desk.of(f.TradeActive)[0]
    [xadd] = [c for c in Projector().writes(desk.core, desk.facts[len(before):]) if c[0] == "XADD"]
    fields = dict(zip(xadd[3::2], xadd[4::2], strict=True))
    assert xadd[1:3] == ("strategy:leg_out_events", f"{active.ts_ms}-0")
    assert {k: fields[k] for k in ("phase", "filled_leg", "action", "hedge_executed", "hedge_qty", "hedge_price",
                                   "loss_usd")} == {
        "phase": "entry", "filled_leg": "short", "action": "hedge", "hedge_executed": "true", "hedge_qty": "0.099",
        "hedge_price": "100100.4", "loss_usd": "9.9297"}
    leg_out = desk.of(f.LegOut)[0]
    assert Projector().everything(desk.core, [(active.ts_ms, leg_out)])["strategy:leg_out_events"] == [
        (f"{active.ts_ms}-0", fields)]
    trade = desk.core.trades[active.trade_id]
    assert trade_fields(trade)["hedge_price"] == "100100.4"


def _legged_out(hedge_price: str, side: str = "Buy") -> Trade:
    """A trade whose easier leg (long, priced from an ask of 100,000.1, its limit 100,050.1) was
    refused, hedged at market at `hedge_price` (`side` Sell: the mirror, short priced from a bid)."""
    leg, other = ("long", "short") if side == "Buy" else ("short", "long")
    touch, limit = (D("100000.1"), D("100050.1")) if side == "Buy" else (D("100700.0"), D("100649.7"))
    base = dict(trade_id="t", venue="binance", symbol=SYMBOL, qty=D("0.099"))
    trade = Trade(f.SignalTaken(
        ts_ms=T0, signal_id="s", trade_id="t", mode="cross", symbol=SYMBOL, long_venue="binance",
        short_venue="okx", signal_long_venue="binance", signal_short_venue="okx", harder=other, qty=D("0.099"),
        size_usd=D(10_000), long_price=D("100050.1"), short_price=D("100649.7"), entry_spread_bps=70.0,
        funding_delta_8h=0.0, projected_profit_usd=D(1), confidence=80, signal_ms=T0))
    for fact in (
        f.OrderPlaced(ts_ms=T0, link_id="t-1", leg=leg, purpose="entry", side=side, order_type="Limit",
                      price=limit, touch=touch, **base),
        f.OrderClosed(ts_ms=T0, trade_id="t", link_id="t-1", status="rejected"),
        f.LegOut(ts_ms=T0, trade_id="t", phase="entry", filled_leg=other, unfilled_leg=leg, filled_at_ms=T0,
                 action="hedge"),
        f.OrderPlaced(ts_ms=T0, link_id="t-2", leg=leg, purpose="hedge", side=side, order_type="Market",
                      touch=touch, **base),
        f.OrderFilled(ts_ms=T0, trade_id="t", link_id="t-2", fill_id="x", qty=D("0.099"), price=D(hedge_price),
                      fee=D(0), maker=False),
    ):
        trade.apply(fact)
    return trade


def test_a_leg_out_loss_is_what_the_hedge_paid_beyond_the_market_and_is_never_negative():
    assert _legged_out("100000.1").leg_out_loss() == 0  # at the touch: nothing lost
    assert _legged_out("100010.1").leg_out_loss() == D("0.099") * 10 == D("0.990")  # a buy 10 dearer
    assert _legged_out("100700.0", "Sell").leg_out_loss() == 0
    assert _legged_out("100690.0", "Sell").leg_out_loss() == D("0.990")  # a sell 10 cheaper
    # a hedge that did better than the market (inside the limit, as happens when the book moves
    # back) lost nothing; measured against the limit it counted as a gain of 0.099 x 60 = 5.94
    assert _legged_out("99990.1").leg_out_loss() == 0
    assert _legged_out("100710.0", "Sell").leg_out_loss() == 0


def test_a_failed_hedge_becomes_an_emergency_close_with_reduce_only_orders_within_the_deadline():
    desk = Desk()
    opened(desk)
    desk.core.market.get("binance", SYMBOL).asks = ()  # binance's asks vanish: nothing to buy there
    desk.core.market.get("binance", SYMBOL).ask = 100_000.1
    desk.signal()
    trade = next(iter(desk.core.closed.values()))
    kinds = [o.purpose for o in desk.of(f.OrderPlaced)]
    # the easier leg is refused, so the hedge goes at once; three refused hedges, then the unwind
    assert kinds == ["entry", "entry", "hedge", "hedge", "hedge", "unwind"]
    assert desk.of(f.LegOut)[0].action == "hedge" and desk.of(f.LegOut)[1].action == "unwind"
    unwind = desk.of(f.OrderPlaced)[-1]
    assert unwind.reduce_only and unwind.side == "Buy" and unwind.order_type == "Market" and unwind.leg == "short"
    closed = desk.of(f.TradeClosed)[0]
    assert closed.outcome == "emergency_closed" and closed.ts_ms == T0  # at once, far within a second
    assert trade.flat and closed.leg_out_loss_usd == -closed.pnl_usd > 0
    assert desk.core.portfolio.cumulative_pnl == closed.pnl_usd < 0
    conserved(desk)


def test_a_refused_emergency_close_is_retried_until_flat_at_doubling_gaps_up_to_the_cap():
    desk = Desk(ExecConfig(max_retry_gap_ms=3_000))
    opened(desk)
    binance = desk.core.market.get("binance", SYMBOL)
    binance.asks = ()  # the long leg and its hedges cannot be bought: the short leg is unwound
    okx = desk.core.market.get("okx", SYMBOL)
    okx_asks, okx.asks = okx.asks, ()  # and nothing to buy it back with either: each unwind is refused
    desk.signal()
    for ms in range(0, 20_001, 100):
        desk.at(ms)
    unwinds = [o.ts_ms - T0 for o in desk.of(f.OrderPlaced) if o.purpose == "unwind"]
    # 200 ms doubled for each refusal in a row (400 after the first), never over 3 s
    assert unwinds == [0, 400, 1_200, 2_800, 5_800, 8_800, 11_800, 14_800, 17_800]
    trade = next(iter(desk.core.trades.values()))
    assert trade.held["short"] == D("-0.099")  # still naked, so still being closed
    okx.asks = okx_asks  # the venue takes it again
    desk.at(20_800)
    closed = desk.of(f.TradeClosed)[0]
    assert closed.outcome == "emergency_closed" and closed.ts_ms == T0 + 20_800 and trade.flat
    conserved(desk)


def test_a_partial_fill_waits_in_the_queue_and_completes_to_the_full_quantity():
    desk = Desk()
    desk.book("binance", 100_000.0, 100_000.1)
    desk.book("okx", 100_700.0, 100_700.1, size=0.04, levels=1)  # only 0.04 BTC at the bid
    desk.signal(depth=2_000_000.0)
    trade = next(iter(desk.core.trades.values()))
    assert trade.held["short"] == D("-0.04")
    queue = desk.paper.resting[trade.legs("short")[0].link_id].queue
    assert queue == QueuePosition(D("100649.7"), D(0))  # a new level at its price: first in line
    desk.trade("okx", 100_650.0, 0.5, "buy")  # a buyer lifts the rest
    assert trade.filled("short") == D("0.099") and trade.status == "active"
    assert trade.held["long"] == D("0.099")


def test_property_4_a_resting_order_fills_only_after_20_percent_of_its_level_trades():
    desk = Desk()
    paper = PaperVenue(desk.core.market)
    desk.book("okx", 100_700.0, 100_700.1, size=1.0)
    order = f.OrderPlaced(ts_ms=T0, trade_id="t", link_id="t-LE1", leg="long", purpose="entry", venue="okx",
                          symbol=SYMBOL, side="Buy", order_type="Limit", qty=D("0.01"), price=D("100700.0"))
    assert len(paper.place(order, T0)) == 1  # acknowledged, resting behind 1.0 BTC
    from shared.events import Trade
    hit = Trade(venue="okx", symbol=SYMBOL, exchange_ts_ms=T0, receive_ts_us=0, price=100_700.0, size=0.15,
                side="sell", trade_id="1")
    assert paper.on_market(hit, T0) == []
    lifted = Trade(venue="okx", symbol=SYMBOL, exchange_ts_ms=T0, receive_ts_us=0, price=100_700.1, size=5.0,
                   side="buy", trade_id="2")
    assert paper.on_market(lifted, T0) == []  # buyers do not reach a bid
    fills = paper.on_market(hit, T0)  # 0.30 >= 0.2 x 1.0
    assert [(x.qty, x.price, x.maker, x.fee) for x in fills] == [(D("0.01"), D("100700.0"), True, D("0.201400"))]


@pytest.mark.parametrize("change, reason", [
    (dict(created_ms=T0 - 2_001), "stale_signal"),
    (dict(confidence=69), "confidence"),
    (dict(spread=12.0), "too_small"),  # 18 bps of fees: no edge left at any size
    (dict(mode="synthetic"), "mode"),
    (dict(long_venue="gate"), "no_instrument"),
])
def test_signals_are_rejected_with_their_reason(change, reason):
    desk = Desk()
    opened(desk)
    desk.signal(**change)
    rejected = desk.of(f.SignalRejected)
    assert [r.reason for r in rejected] == [reason] and not desk.of(f.OrderPlaced)
    assert desk.core.rejections[reason] == 1


def test_one_trade_per_pair_a_cap_on_open_trades_and_a_signal_read_twice_is_handled_once():
    desk = Desk(ExecConfig(max_concurrent_trades=2), venues=("binance", "okx", "bybit"))
    opened(desk)
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.signal("a")
    assert desk.signal("a") == []  # redelivered: already a trade
    desk.signal("b")
    desk.signal("c", short_venue="bybit")
    desk.signal("d", long_venue="okx", short_venue="bybit")
    assert [r.reason for r in desk.of(f.SignalRejected)] == ["pair_active", "max_concurrent"]


def test_replaying_the_facts_rebuilds_the_same_state_and_decides_nothing_new():
    desk = Desk()
    opened(desk)
    desk.signal("s1")
    desk.book("binance", 100_300.0, 100_300.1)
    desk.book("okx", 100_300.0, 100_300.1)
    desk.now += 60_000
    opened(desk)
    desk.signal("s2")
    again = ExecutorCore(desk.core.config, desk.core.grids, desk.core.market)
    for fact in desk.facts:
        again.apply(f.from_fields(f.to_fields(fact)))
    assert again.portfolio.summary() == desk.core.portfolio.summary()
    assert {t: (x.status, x.held, x.cash, x.fees) for t, x in again.trades.items()} == \
        {t: (x.status, x.held, x.cash, x.fees) for t, x in desk.core.trades.items()}
    assert again.step(desk.now) == []


def test_funding_settles_on_paper_when_the_venue_moves_its_funding_time():
    desk = Desk()
    opened(desk)
    desk.ticker("binance", funding_rate=0.0001, funding_interval_min=480, mark=100_000.0,
                next_funding_ts_ms=T0 + 1_000)
    desk.ticker("okx", funding_rate=0.0005, funding_interval_min=480, mark=100_700.0, next_funding_ts_ms=T0 + 1_000)
    desk.signal()
    desk.now = T0 + 1_000
    desk.ticker("binance", next_funding_ts_ms=T0 + 8 * 3_600_000)
    desk.ticker("okx", next_funding_ts_ms=T0 + 8 * 3_600_000)
    paid = {x.leg: x.amount for x in desk.of(f.FundingPaid)}
    # the long pays 0.01 % of 0.099 x 100,000; the short receives 0.05 % of 0.099 x 100,700
    assert paid == {"long": D("0.99"), "short": D("-4.984650")}


def test_facts_round_trip_through_stream_fields():
    desk = Desk()
    opened(desk)
    desk.signal()
    for fact in desk.facts:
        fields = f.to_fields(fact)
        assert all(isinstance(v, str) for v in fields.values())
        assert f.from_fields(fields) == fact
    with pytest.raises(f.FactError, match="schema version"):
        f.from_fields({"type": "order_acked", "v": "9"})
    with pytest.raises(f.FactError, match="order_acked"):
        f.from_fields({"type": "order_acked", "v": "1", "ts_ms": "x"})


def test_grid_is_respected_and_incompatible_lots_refused():
    from services.executor.sizing import Grid, GridError, common_qty, harder_leg, round_price

    assert common_qty(D("1000"), D("100000"), GRID, Grid(D("0.1"), D("0.01"), D("0.01"))) == D("0.01")
    with pytest.raises(GridError, match="no common multiple"):
        common_qty(D("1000"), D("100"), Grid(D("0.1"), D("0.3"), D("0.3")), Grid(D("0.1"), D("0.2"), D("0.2")))
    with pytest.raises(GridError, match="below the minimum"):
        common_qty(D("50"), D("100000"), GRID, GRID)
    assert round_price(D("100.07"), D("0.05"), "Buy") == D("100.05")
    assert round_price(D("100.07"), D("0.05"), "Sell") == D("100.10")
    assert harder_leg("binance", "hyperliquid") == "short" and harder_leg("bitget", "okx") == "long"
    assert harder_leg("bybit", "bybit") == "long"


def test_a_venue_funding_settlement_is_shared_among_the_trades_holding_that_side_exactly():
    desk = Desk(ExecConfig(max_concurrent_trades=3), venues=("binance", "okx", "bybit"))
    opened(desk)
    desk.book("bybit", 100_000.0, 100_000.1)
    desk.signal("a", long_venue="bybit", short_venue="okx")  # bybit long 0.099
    desk.signal("b", long_venue="bybit", short_venue="binance", spread=60.0)  # bybit long again, smaller
    longs = {t.id: t.held["long"] for t in desk.core.trades.values()}
    assert len(longs) == 2
    # Bybit's row for the whole long position, as in venue-samples' funding executions (fee > 0: paid)
    reports = desk.core.funding_reported("bybit", SYMBOL, "Buy", D("0.7797"), T0 + 1)
    assert {x.trade_id for x in reports} == set(longs) and all(x.leg == "long" for x in reports)
    assert sum(x.amount for x in reports) == D("0.7797")
    first = reports[0]
    assert first.amount == (D("0.7797") * longs[first.trade_id] / sum(longs.values())).quantize(D("1E-12"))
    assert desk.core.funding_reported("bybit", SYMBOL, "Sell", D("1"), T0 + 1) == []  # no short held at bybit


def test_the_tally_counts_what_the_seed_counts_and_is_the_same_after_a_replay():
    desk = Desk()
    opened(desk)
    desk.signal("good")  # both legs fill at once
    desk.book("binance", 100_300.0, 100_300.1)  # ... and it exits at the profit target
    desk.book("okx", 100_300.0, 100_300.1)
    desk.now += 60_000
    opened(desk)  # the next one's harder leg (okx) rests unfilled: cancelled at 500 ms
    desk.book("okx", 100_600.0, 100_600.1, size=0.0)
    desk.core.market.get("okx", SYMBOL).bid = 100_700.0
    desk.signal("timeout")
    desk.at(desk.now - T0 + 500)
    desk.now += 60_000
    opened(desk)  # the third one's easier leg (binance) rests: a leg-out, hedged at market
    binance = desk.core.market.get("binance", SYMBOL)
    desk.book("binance", 100_100.3, 100_100.4)
    binance.ask = 100_000.1
    desk.signal("leg-out")
    binance.ask = 100_100.4
    desk.at(desk.now - T0 + 500)
    counts = desk.core.tally.counts
    assert {k: counts[k] for k in ("trades_executed", "trades_successful", "trades_failed", "timeouts")} == \
        {"trades_executed": 3, "trades_successful": 1, "trades_failed": 2, "timeouts": 1}
    assert counts["cancellations"] == len([x for x in desk.facts if isinstance(x, f.OrderClosed)]) == 2
    assert desk.core.tally.hedge.count == 1  # the hedge filled at once: 0 ms after the leg-out
    again = ExecutorCore(desk.core.config, desk.core.grids)
    for fact in desk.facts:
        again.apply(fact)
    assert again.tally.counts == counts


def _held_at(desk: Desk, venue: str) -> dict:
    """What `venue` holds of the open trades' legs, as its positions list would say (one-way mode)."""
    out: dict = {}
    for trade in desk.core.trades.values():
        for leg in ("long", "short"):
            if desk.core._venue(trade, leg) == venue and trade.held[leg]:
                out[(SYMBOL, 0)] = out.get((SYMBOL, 0), D(0)) + trade.held[leg]
    return out


def _reconciled(desk: Desk, venue: str | None, held_there: dict) -> tuple[list, str]:
    facts, unexplained = desk.core.reconcile_positions(held_there if venue is None else {venue: held_there},
                                                       desk.now)
    desk.facts += route(desk.core, desk.paper, facts, desk.now)
    return facts, unexplained


def test_a_leg_the_venue_no_longer_holds_is_recorded_as_closed_outside_at_the_touch_and_the_other_leg_exits():
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    assert trade.status == "active" and _held_at(desk, "okx") == {(SYMBOL, 0): D("-0.099")}
    desk.now += 1_000
    desk.book("okx", 100_500.0, 100_500.1)
    assert _reconciled(desk, "okx", _held_at(desk, "okx")) == ([], "")  # the venue agrees: nothing happens
    facts, unexplained = _reconciled(desk, "okx", {})  # okx restarted empty: the short leg is gone
    gone = [x for x in facts if isinstance(x, f.PositionGone)]
    assert unexplained == "" and len(gone) == 1
    assert (gone[0].leg, gone[0].qty, gone[0].price, gone[0].price_source) == ("short", D("0.099"), D("100500.1"),
                                                                               "touch")
    assert trade.held["short"] == 0
    exit_ = desk.of(f.ExitStarted)[0]
    assert exit_.reason == "closed_outside"
    exits = [o for o in desk.of(f.OrderPlaced) if o.purpose == "exit"]
    assert [(o.leg, o.side, o.qty, o.reduce_only) for o in exits] == [("long", "Sell", D("0.099"), True)]
    closed = desk.of(f.TradeClosed)[0]  # the paper venue fills the exit at once: flat, closed
    assert (closed.outcome, closed.reason) == ("closed", "closed_outside")
    long_exit = next(x for x in desk.of(f.OrderFilled) if x.link_id == exits[0].link_id)
    cash = D("0.099") * (D("100700.0") - D("100000.1") - D("100500.1") + long_exit.price)
    assert closed.pnl_usd == cash - closed.fees_usd
    conserved(desk)


def test_both_legs_gone_close_the_trade_with_no_order_and_more_than_the_facts_hold_is_not_explained():
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    sent = len(desk.of(f.OrderPlaced))
    desk.core.market.get("binance", SYMBOL).bid = None  # no quote there: priced at the entry, no price PnL
    facts, _ = _reconciled(desk, None, {"binance": {}, "okx": {}})
    gone = [x for x in facts if isinstance(x, f.PositionGone)]
    assert [(g.leg, g.price, g.price_source) for g in gone] == [("long", D("100000.1"), "entry"),
                                                                ("short", D("100700.1"), "touch")]
    assert len(desk.of(f.OrderPlaced)) == sent and trade.status == "closed"
    assert trade.closed.reason == "closed_outside" and desk.of(f.ExitStarted) == []  # closed at once: nothing to exit
    conserved(desk)
    # more than the facts hold, or the other side: not explained by a close outside; nothing recorded
    desk2 = Desk()
    opened(desk2)
    desk2.signal()
    facts, unexplained = _reconciled(desk2, "okx", {(SYMBOL, 0): D("-0.2")})
    assert facts == [] and unexplained == "BTCUSDT idx 0: facts -0.099, okx -0.2"
    facts, unexplained = _reconciled(desk2, "okx", {(SYMBOL, 0): D("0.05")})
    assert facts == [] and unexplained == "BTCUSDT idx 0: facts -0.099, okx 0.05"


def test_a_partly_gone_position_is_taken_from_the_newest_trade_first_and_replays_to_the_same_state():
    desk = Desk(venues=("binance", "okx", "bybit"))
    opened(desk)
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.signal("s1")
    desk.signal("s2", long_venue="binance", short_venue="bybit")  # both trades hold a long leg at binance
    first, second = desk.core.trades.values()
    held = first.held["long"], second.held["long"]
    assert all(held) and _held_at(desk, "binance") == {(SYMBOL, 0): held[0] + held[1]}
    desk.now += 1_000
    facts, unexplained = _reconciled(desk, "binance", {(SYMBOL, 0): held[0] - D("0.01")})
    gone = [x for x in facts if isinstance(x, f.PositionGone)]
    assert unexplained == ""
    assert [(g.trade_id, g.qty) for g in gone] == [(second.id, held[1]), (first.id, D("0.01"))]
    assert second.status == "exiting" or second.closed  # its short leg at bybit exits
    replayed = ExecutorCore(ExecConfig(), {(v, SYMBOL): GRID for v in ("binance", "okx", "bybit")})
    for fact in desk.facts:
        replayed.apply(fact)
    for tid, trade in [*desk.core.trades.items(), *desk.core.closed.items()]:
        again = replayed.trades.get(tid) or replayed.closed[tid]
        assert (again.held, again.cash, again.status) == (trade.held, trade.cash, trade.status)
    conserved(desk)


def test_a_cancel_with_no_answer_is_asked_again_at_doubling_gaps_until_the_venue_says_what_became_of_the_order():
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    t = desk.now
    exits = desk.core.shutdown(t)  # not routed: the venue never answers these exits, nor their cancels
    placed = [x for x in exits if isinstance(x, f.OrderPlaced)]
    assert len(placed) == 2 and all(o.purpose == "exit" for o in placed)

    def cancels(at: int) -> list[str]:
        return [x.link_id for x in desk.core.step(t + at) if isinstance(x, f.CancelRequested)]

    assert cancels(499) == [] and sorted(cancels(500)) == sorted(o.link_id for o in placed)
    assert desk.core.next_deadline_ms() == t + 1_500  # the next ask, if nothing is heard
    asked = [at for at in range(600, 40_000, 100) if cancels(at)]  # then at doubling gaps, up to 10 s
    assert asked[:6] == [1_500, 3_500, 7_500, 15_500, 25_500, 35_500]
    after = []
    for order in placed:  # the venue finally says: cancelled; the exit goes on at market
        after += desk.core.on_report(f.OrderClosed(ts_ms=t + 2_600, trade_id=trade.id, link_id=order.link_id,
                                                   status="cancelled"), t + 2_600)
    assert [o.order_type for o in after if isinstance(o, f.OrderPlaced)] == ["Market", "Market"]
    assert not set(cancels(10_000)) & {o.link_id for o in placed}  # the first two are never asked about again


def test_a_trades_hash_shows_its_average_entry_prices_at_the_venues_tick_and_keeps_money_exact():
    from services.executor.projection import trade_fields
    from services.executor.sizing import at_step

    assert at_step(D("1919.848269230769230769230769"), D("0.01")) == "1919.85"
    assert at_step(D("64915.65"), D("0.1")) == "64915.6"  # half to even, to the step's decimals
    assert at_step(D("64915.66666"), D("100649.70")) == "64915.67"  # a price on the grid gives its decimals
    assert at_step(D("0.000012345"), D("0.00001")) == "0.00001" and at_step(D("33.3"), D("1")) == "33"
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    active = trade.active
    assert (trade.taken.long_price, trade.taken.short_price) == (D("100050.1"), D("100649.7"))
    trade.active = f.TradeActive(ts_ms=active.ts_ms, trade_id=trade.id, long_qty=active.long_qty,
                                 short_qty=active.short_qty, long_avg=D(100_000) / 3, short_avg=D("100700.04"))
    fields = trade_fields(trade)
    assert (fields["entry_long_price"], fields["entry_short_price"]) == ("33333.3", "100700.0")
    assert fields["fees_usd"] == str(trade.fees)  # money is not rounded


def test_on_a_venue_in_hedge_mode_each_leg_is_reconciled_against_its_own_position_index():
    desk = Desk(ExecConfig(mode="synthetic", synthetic_venue="binance", hedge_mode_venues=frozenset({"binance"})),
                venues=("binance",))
    desk.book("binance", 100_000.0, 100_000.1)
    desk.signal(long_venue="binance", short_venue="binance_synthetic", mode="synthetic")
    trade = next(iter(desk.core.trades.values()))
    assert trade.status == "active"
    qty = trade.held["long"]
    both = {(SYMBOL, 1): qty, (SYMBOL, 2): -qty}  # hedge mode: the long at index 1, the short at index 2
    assert _reconciled(desk, "binance", both) == ([], "")
    facts, unexplained = _reconciled(desk, "binance", {(SYMBOL, 1): qty})  # the short's index is empty
    assert unexplained == ""
    assert [(g.leg, g.qty) for g in facts if isinstance(g, f.PositionGone)] == [("short", qty)]


def test_the_portfolio_counts_signals_taken_and_rejected_and_gives_no_apr_or_negative_zero_before_it_means_something():
    from services.executor.portfolio import DAY_MS, _ratio

    desk = Desk()
    opened(desk)
    desk.signal("s1")
    desk.signal("s2")  # the same pair: rejected
    desk.signal("s3", created_ms=T0 - 5_000)  # stale: rejected
    p = desk.core.portfolio.summary()
    assert (p["signals_taken"], p["rejected_signals"]) == ("1", "2")
    assert sum(d.rejected_signals for d in desk.core.portfolio.daily.values()) == 2
    assert p["realistic_apr"] == ""  # minutes of trading say nothing about a year
    desk.now += 5_000
    desk.book("binance", 100_300.0, 100_300.1)
    desk.book("okx", 100_300.0, 100_300.1)  # profit target: closed
    portfolio = desk.core.portfolio
    assert portfolio.closed_trades == 1 and portfolio.summary()["realistic_apr"] == ""
    portfolio.last_fact_ms = portfolio.first_trade_ms + DAY_MS  # a day later
    apr = float(portfolio.cumulative_pnl / portfolio.starting_capital) * 365
    assert portfolio.summary()["realistic_apr"] == f"{apr:.4f}"
    assert _ratio(D("-0.00001"), D(100)) == "0.0000" and _ratio(D(1), D(0)) == "" and _ratio(D(1), D(4)) == "0.2500"


def test_the_leg_left_after_one_vanished_exits_at_market_and_an_exit_that_waits_past_its_deadline_does_not_fail():
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    t = desk.now
    facts, _ = desk.core.reconcile_positions({"okx": {}}, t)  # not routed: the venue does not answer yet
    exits = [o for o in facts if isinstance(o, f.OrderPlaced)]
    assert [(o.leg, o.order_type, o.reduce_only) for o in exits] == [("long", "Market", True)]
    for at in (600, 1_200, 5_000):  # past the exit's deadline, with the vanished leg never having an exit order
        desk.core.step(t + at)
    assert trade.status == "exiting" and not any(lo.phase == "exit" for lo in trade.leg_outs)


def test_trades_on_both_sides_of_one_position_stale_quotes_and_open_orders_are_not_guessed_at():
    desk = Desk()
    opened(desk)
    desk.signal("s1")  # long binance, short okx
    desk.signal("s2", long_venue="okx", short_venue="binance")  # the other way round: okx holds both sides
    first, second = desk.core.trades.values()
    assert first.held["short"] < 0 < second.held["long"]
    facts, unexplained = desk.core.reconcile_positions({"okx": {}}, desk.now)
    assert facts == [] and unexplained.startswith("BTCUSDT idx 0: facts ")
    # a quote older than signal_max_age_ms is not a price: the entry price is taken (no price PnL)
    desk2 = Desk()
    opened(desk2)
    desk2.signal()
    trade = next(iter(desk2.core.trades.values()))
    gone = [x for x in desk2.core.reconcile_positions({"okx": {}}, desk2.now + 2_001)[0]
            if isinstance(x, f.PositionGone)]
    assert [(g.price, g.price_source) for g in gone] == [(D("100700.0"), "entry")]
    # a position whose holder still has an order open at the venue is left to that order's fills
    desk3 = Desk()
    opened(desk3)
    desk3.signal()
    trade = next(iter(desk3.core.trades.values()))
    desk3.core.apply(f.OrderPlaced(ts_ms=desk3.now, trade_id=trade.id, link_id=f"{trade.id}-SX9", leg="short",
                                   purpose="exit", venue="okx", symbol=SYMBOL, side="Buy", order_type="Limit",
                                   qty=D("0.099"), price=D("100600.0"), reduce_only=True))
    assert desk3.core.reconcile_positions({"okx": {}}, desk3.now) == ([], "")


def test_a_restart_settles_the_exits_left_open_and_the_vanished_legs_before_deciding_so_it_sends_nothing():
    """Stopped by force while exiting; the venue restarted empty. Every report first (the exits
    were never sent), then the positions, then one step: closed outside, and no order sent to
    a venue that would refuse it (refusals that would halt trading on their own)."""
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = next(iter(desk.core.trades.values()))
    t = desk.now
    left = [o for o in desk.core.shutdown(t) if isinstance(o, f.OrderPlaced)]  # never answered: forced stop
    assert trade.status == "exiting" and len(trade.open_orders()) == 2
    restarted = t + 60_000
    out = []
    for order in left:
        out += desk.core.on_report(f.OrderClosed(ts_ms=restarted, trade_id=trade.id, link_id=order.link_id,
                                                 status="cancelled", reason="not at the venue after a restart"),
                                   restarted, then_step=False)
    assert not [x for x in out if isinstance(x, f.OrderPlaced)]  # nothing decided yet
    facts, unexplained = desk.core.reconcile_positions({"binance": {}, "okx": {}}, restarted)
    assert unexplained == "" and not [x for x in facts if isinstance(x, f.OrderPlaced)]
    assert trade.closed is not None and trade.closed.reason == "closed_outside"
    assert desk.core.portfolio.closed_outside == 1
    conserved(desk)


@pytest.mark.parametrize(("size", "projected"), [
    # 50 - 11 fees - 10 funding cost - (2 + 1,000 / 50,000 x 3 = 2.06) = 26.94 bps of $1,000
    (1_000, "2.69"),
    # slippage 2 + 10,000 / 50,000 x 3 = 2.6: 26.4 bps of $10,000 (counting the funding delta
    # as +100 bps of income, as before, recorded $117.60)
    (10_000, "26.40"),
])
def test_a_synthetic_trade_projects_what_the_strategy_projects_for_its_opportunity(size, projected):
    from services.executor.sizing import Sizing
    from services.strategy.synthetic import synthetic_quote

    desk = Desk(ExecConfig(mode="synthetic", synthetic_venue="bybit", sizing=Sizing(target_usd=D(size))),
                venues=("bybit",))
    desk.book("bybit", 100_000.0, 100_000.1)
    desk.signal(long_venue="bybit", short_venue="bybit_synthetic", mode="synthetic", spread=50.0, funding=0.01,
                depth=50_000.0)
    taken = desk.of(f.SignalTaken)[0]
    assert taken.size_usd == size and taken.projected_profit_usd == D(projected)
    quote = synthetic_quote(SYMBOL, 100_000.0, 100_000.1, 50.0, 0.01, float(size))
    assert taken.projected_profit_usd == (D(size) * D(repr(quote.profit_bps)) / 10_000).quantize(D("0.01"))


def test_a_closed_trade_shows_its_fills_and_the_arithmetic_of_its_pnl():
    from services.executor.projection import close_text

    desk = Desk()
    opened(desk)
    desk.signal()
    desk.now += 5_000
    desk.book("binance", 100_300.0, 100_300.1)
    desk.book("okx", 100_300.0, 100_300.1)
    trade = next(iter(desk.core.closed.values()))
    fields = trade_fields(trade)
    assert (fields["entry_long_price"], fields["entry_short_price"]) == ("100000.1", "100700.0")
    assert (fields["exit_long_price"], fields["exit_short_price"]) == ("100300.0", "100300.1")
    cash = D("0.099") * (D("100700.0") - D("100000.1") + D("100300.0") - D("100300.1"))
    assert D(fields["price_pnl_usd"]) == cash
    assert D(fields["actual_profit_usd"]) == cash - D(fields["fees_usd"]) - D(fields["funding_usd"])
    assert close_text(trade) == (
        f"long bought 0.099 @ 100000.1 then sold 0.099 @ 100300.0; short sold 0.099 @ 100700.0 then bought 0.099 @ "
        f"100300.1: sells - buys {cash} - fees {trade.fees} - funding 0 = PnL {trade.closed.pnl_usd} USD "
        f"(projected {trade.taken.projected_profit_usd}); leg-out loss 0")


def test_a_shard_owner_whose_lease_was_taken_over_is_fenced_off():
    """Signals carry their shard's lease token: once the new owner (token 8) has signalled, the
    old one (7), waking from a stall, cannot open a trade; another shard's tokens are its own."""
    desk = Desk(ExecConfig(max_concurrent_trades=5), venues=("binance", "okx", "bybit"))
    opened(desk)
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.signal("old-1", shard="0/2", fence=7)
    desk.signal("new-1", shard="0/2", fence=8, short_venue="bybit")
    desk.signal("old-2", shard="0/2", fence=7, long_venue="okx", short_venue="bybit")
    desk.signal("other", shard="1/2", fence=3, long_venue="bybit", short_venue="okx")
    rejected = desk.of(f.SignalRejected)
    assert [(r.signal_id, r.reason) for r in rejected] == [("old-2", "fenced")]
    assert "lease 7 was taken over (lease 8)" in rejected[0].detail
    assert {t.signal_id for t in desk.of(f.SignalTaken)} == {"old-1", "new-1", "other"}


@pytest.mark.parametrize("leg_venue", ["okx", "binance"])  # the short leg's venue, the long leg's
def test_a_trade_whose_symbol_a_leg_venue_delisted_exits_and_closes_and_takes_no_new_signal(leg_venue):
    desk = Desk()
    opened(desk)
    desk.signal()
    trade = desk.of(f.SignalTaken)[0].trade_id
    assert desk.core.trades[trade].status == "active"
    desk.core.delisted.add(("binance", "ETHUSDT"))  # another symbol there: nothing to do
    desk.at(1_000)
    assert not desk.of(f.ExitStarted)
    desk.core.delisted.add((leg_venue, desk.of(f.SignalTaken)[0].symbol))
    desk.at(2_000)
    assert [e.reason for e in desk.of(f.ExitStarted)] == ["delisted"]
    assert desk.of(f.TradeClosed)[0].reason == "delisted"
    conserved(desk)
    desk.signal("again")
    assert [(r.signal_id, r.reason) for r in desk.of(f.SignalRejected)] == [("again", "delisted")]
