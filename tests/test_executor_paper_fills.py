"""The book moving onto or through a resting limit order's price (shared/fills.py), in the
paper venue, and the same scenario through the paper venue and the simulator side by side.

A real venue never leaves its book crossed: an ask that reaches a resting bid trades with
the bids there, the queue ahead first. So an ask arriving at the bid's price is volume
traded there (the seed's queue rule, Property 4, decides the fill), and an ask strictly
below it means everything at the price traded, the order included."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, SignalIn
from services.executor.paper import MAKER_FEE, PaperExecution, PaperVenue, restart
from services.sim.market import MarketModel
from services.sim.matching import Matching, OrderRequest
from services.strategy.state import MarketState
from shared.events import BookUpdate, Liquidation, Ticker, Trade
from shared.fills import Crossing, book_crossing
from tests.executor_market import GRID, Desk

T0 = 1_800_000_000_000
SYMBOL = "BTCUSDT"
VENUE = "okx"
TICK = 0.1


class Paper:
    """A paper venue over its own market state, fed books and tickers as the service feeds it."""

    def __init__(self) -> None:
        self.market = MarketState()
        self.venue = PaperVenue(self.market)
        self.now = T0

    def send(self, event) -> list:
        self.now += 1
        self.market.apply(event)
        return self.venue.on_market(event, self.now)

    def book(self, bids, asks) -> list:
        return self.send(BookUpdate(venue=VENUE, symbol=SYMBOL, kind="snapshot", update_id=self.now,
                                    exchange_ts_ms=self.now, receive_ts_us=0, bids=tuple(bids), asks=tuple(asks)))

    def ticker(self, **fields) -> list:
        return self.send(Ticker(venue=VENUE, symbol=SYMBOL, exchange_ts_ms=self.now, receive_ts_us=0, **fields))

    def rest(self, side: str, price: float, qty: str) -> f.OrderPlaced:
        order = f.OrderPlaced(ts_ms=self.now, trade_id="t", link_id="t-1", leg="long", purpose="entry", venue=VENUE,
                              symbol=SYMBOL, side=side, order_type="Limit", qty=D(qty), price=D(repr(price)))
        assert [type(x) for x in self.venue.place(order, self.now)] == [f.OrderAcked]  # it rests
        return order


def p(x: float) -> float:
    return round(x, 1)


BID = 100_000.0  # the resting bid, behind 10 BTC of queue: it fills once 2 BTC trade there


def bid_behind_ten_btc() -> tuple[Paper, f.OrderPlaced]:
    paper = Paper()
    paper.book([(BID, 10.0), (p(BID - TICK), 3.0)], [(p(BID + TICK), 2.0), (p(BID + 2 * TICK), 3.0)])
    return paper, paper.rest("Buy", BID, "0.01")


def ask_at(paper: Paper, size: float, price: float = BID) -> list:
    """The asks come down to `price` with `size` there; the bids below it (the queue at the
    bid's price is gone from the book, as on a venue whose book never stays crossed)."""
    return paper.book([(p(BID - TICK), 3.0)], [(price, size), (p(price + TICK), 3.0)])


def test_an_ask_arriving_at_the_bid_with_no_trade_does_not_fill_it_behind_its_queue():
    paper, _ = bid_behind_ten_btc()
    assert ask_at(paper, 0.5) == []  # 0.5 BTC came to the price: 10 BTC were ahead (the old rule filled here)
    assert paper.venue.resting["t-1"].queue.traded_at_price == D("0.5")
    assert ask_at(paper, 0.5) == [] and ask_at(paper, 0.5) == []  # the same 0.5 BTC, not three times
    assert paper.venue.resting["t-1"].queue.traded_at_price == D("0.5")


def test_what_arrives_at_the_price_fills_it_once_20_percent_of_the_queue_traded_there():
    paper, order = bid_behind_ten_btc()
    assert ask_at(paper, 0.5) == []
    assert ask_at(paper, 0.2) == []  # buyers took some of it: no new sellers
    assert ask_at(paper, 1.699) == []  # 1.499 new: 1.999 BTC in all, under 2
    fills = ask_at(paper, 1.7)  # 2.0 BTC = 20 % of the 10 ahead
    assert [(x.qty, x.price, x.maker, x.fee) for x in fills] == [
        (order.qty, order.price, True, order.qty * order.price * MAKER_FEE)]
    assert "t-1" not in paper.venue.resting


def test_tickers_count_the_size_at_the_price_too_and_once_with_the_book():
    paper, _ = bid_behind_ten_btc()
    assert paper.ticker(bid=p(BID - TICK), ask=BID, bid_size=3.0, ask_size=1.0) == []
    assert ask_at(paper, 1.0) == []  # the book shows the same 1 BTC the ticker did
    assert paper.ticker(bid=p(BID - TICK), ask=BID, bid_size=3.0, ask_size=1.999) == []
    assert len(paper.ticker(bid=p(BID - TICK), ask=BID, bid_size=3.0, ask_size=2.0)) == 1


def test_an_ask_strictly_below_the_bid_fills_it_whatever_the_queue():
    paper, order = bid_behind_ten_btc()
    fills = ask_at(paper, 0.001, price=p(BID - TICK))  # sellers went through: all at 100,000.0 traded
    assert [(x.qty, x.price, x.maker) for x in fills] == [(order.qty, order.price, True)]


def test_an_ask_strictly_below_a_bid_that_had_no_queue_fills_it_too():
    paper = Paper()
    paper.book([(p(BID - TICK), 3.0)], [(p(BID + TICK), 2.0)])
    order = paper.rest("Buy", BID, "0.01")  # a new level: nothing ahead, nothing traded there yet
    assert ask_at(paper, 2.0, price=p(BID + TICK)) == []
    fills = ask_at(paper, 0.001, price=p(BID - TICK))
    assert [(x.qty, x.price, x.maker) for x in fills] == [(order.qty, order.price, True)]


def test_a_resting_ask_is_the_mirror_image():
    paper = Paper()
    ask = 100_000.1
    paper.book([(p(ask - TICK), 2.0)], [(ask, 10.0), (p(ask + TICK), 3.0)])
    paper.rest("Sell", ask, "0.01")
    assert paper.book([(ask, 1.999), (p(ask - TICK), 3.0)], [(p(ask + TICK), 3.0)]) == []
    assert len(paper.book([(ask, 2.0), (p(ask - TICK), 3.0)], [(p(ask + TICK), 3.0)])) == 1
    paper = Paper()
    paper.book([(p(ask - TICK), 2.0)], [(ask, 10.0), (p(ask + TICK), 3.0)])
    paper.rest("Sell", ask, "0.01")
    assert len(paper.book([(p(ask + TICK), 0.001)], [(p(ask + 2 * TICK), 3.0)])) == 1  # a bid above the ask


def test_what_the_order_could_not_take_when_placed_is_not_news_later():
    paper = Paper()
    paper.book([(p(BID - TICK), 3.0)], [(BID, 0.004), (p(BID + TICK), 3.0)])
    order = f.OrderPlaced(ts_ms=T0, trade_id="t", link_id="t-1", leg="long", purpose="entry", venue=VENUE,
                          symbol=SYMBOL, side="Buy", order_type="Limit", qty=D("0.01"), price=D(repr(BID)))
    assert [x.qty for x in paper.venue.place(order, T0) if isinstance(x, f.OrderFilled)] == [D("0.004")]
    again = f.OrderPlaced(ts_ms=T0, trade_id="u", link_id="u-1", leg="long", purpose="entry", venue=VENUE,
                          symbol=SYMBOL, side="Buy", order_type="Limit", qty=D("0.01"), price=D(repr(BID)))
    assert not [x for x in paper.venue.place(again, T0) if isinstance(x, f.OrderFilled)]  # the first took it
    assert ask_at(paper, 0.004) == []  # the ask the first one took from, still there: nothing traded
    assert sorted(x.link_id for x in ask_at(paper, 0.005)) == ["t-1", "u-1"]  # a new seller: the level was empty


@pytest.mark.parametrize(("side", "best_other", "size", "seen", "want"), [
    ("Buy", 100, 7, 0, Crossing(7, 7, False)),  # onto: volume, not a fill
    ("Buy", 100, 7, 7, Crossing(0, 7, False)),  # the same size again: nothing new
    ("Buy", 100, 4, 7, Crossing(0, 4, False)),  # shrank: nothing new, and growth from 4 counts
    ("Buy", 100, 9, 4, Crossing(5, 9, False)),
    ("Buy", 99, 7, 7, Crossing(0, 0, True)),  # strictly through
    ("Buy", 101, None, 7, Crossing(0, 0, False)),  # away: what comes back is new
    ("Buy", 100, None, 7, Crossing(0, 7, False)),  # at the price, size unknown: no volume
    ("Buy", None, None, 7, Crossing(0, 7, False)),  # no ask at all: no news
    ("Sell", 100, 7, 0, Crossing(7, 7, False)),
    ("Sell", 101, 7, 0, Crossing(0, 0, True)),  # a bid above the ask
    ("Sell", 99, 7, 3, Crossing(0, 0, False)),
])
def test_book_crossing_at_through_and_away(side, best_other, size, seen, want):
    assert book_crossing(side, 100, best_other, size, seen) == want


class Sim:
    """The simulator's matching engine, its book set by hand as the paper venue's is."""

    def __init__(self) -> None:
        self.m = Matching(MarketModel([SYMBOL], seed=3, start_ms=T0))
        self.state = self.m.model.states[SYMBOL]
        self.inst = self.state.inst
        self.now = T0

    def lots(self, btc: float) -> int:
        return int(D(repr(btc)) / self.inst.lot)

    def step(self, asks: dict[int, float]) -> None:
        """The asks as given (price ticks -> BTC), no trade printed; the bids left as they are."""
        self.now += 1
        self.state.asks.clear()
        self.state.asks.update({price: self.lots(size) for price, size in asks.items()})
        self.state.trades.clear()
        self.m.on_step(self.now)


def test_the_paper_venue_and_the_simulator_count_the_same_book_moves_and_fill_on_the_same_one():
    """One scenario through both: a bid behind 10 BTC, and asks that come to its price and
    then through it. Each step, both have counted the same volume at the price (the paper
    venue as volume traded there, the simulator as queue used up), and both fill on the
    same step, all of it, at the bid's price, as a maker. (The queue rules themselves differ
    on purpose: the paper venue fills at 20 % of the queue, the seed's rule, the simulator
    when all of it has gone, as a venue does; the steps below stay under both.)"""
    sim = Sim()
    bid = max(sim.state.bids)
    sim.state.bids[bid] = sim.lots(10.0)
    order = sim.m.create("k", OrderRequest(SYMBOL, "Buy", "Limit", "GTC", bid, 5), T0)
    assert order.queue_ahead == sim.lots(10.0)
    price = float(sim.inst.tick * bid)
    paper = Paper()
    paper.book([(price, 10.0), (p(price - TICK), 3.0)], [(p(price + TICK), 2.0)])
    paper.rest("Buy", price, "0.005")
    # the bids keep their 10 BTC at the price in both books, so the simulator's rule that a
    # shrinking level shortens the queue (which the paper venue does not have) stays out of it
    steps = [  # (the ask's price in ticks from the bid, BTC there), the volume counted so far
        ((0, 0.5), 0.5), ((0, 0.5), 0.5), ((0, 0.3), 0.5), ((0, 1.2), 1.4), ((1, 4.0), 1.4), ((0, 0.1), 1.5)]
    for (offset, size), counted in steps:
        sim.step({bid + offset: size, bid + offset + 1: 3.0})
        fills = paper.book([(price, 10.0), (p(price - TICK), 3.0)], [(p(price + offset * TICK), size)])
        queue = paper.venue.resting["t-1"].queue
        assert fills == [] and order.filled_lots == 0
        assert queue.traded_at_price == D(repr(counted))
        assert (sim.lots(10.0) - order.queue_ahead) * sim.inst.lot == D(repr(counted))
    sim.step({bid - 1: 0.001, bid: 3.0})
    fills = paper.book([(price, 10.0), (p(price - TICK), 3.0)], [(p(price - TICK), 0.001)])
    execution = sim.m.account("k").executions[-1]
    assert order.status == "Filled" and (execution.price, execution.qty, execution.is_maker) == (
        sim.inst.tick * bid, D("0.005"), True)
    assert [(x.price, x.qty, x.maker) for x in fills] == [(execution.price, execution.qty, True)]


# The paper venue's own rules, by hand: market orders walk the book, limit orders take what they
# cross and rest in the queue (seed Property 4), fees to the last digit. okx: 5 bps taker, 2 bps maker.

def order(side: str, qty: str, price: float | None = None, link: str = "t-1", venue: str = VENUE,
          symbol: str = SYMBOL) -> f.OrderPlaced:
    return f.OrderPlaced(ts_ms=T0, trade_id="t", link_id=link, leg="long", purpose="entry", venue=venue,
                         symbol=symbol, side=side, order_type="Limit" if price is not None else "Market", qty=D(qty),
                         price=None if price is None else D(repr(price)))


def fills(reports: list) -> list[tuple]:
    return [(x.fill_id, x.qty, x.price, x.fee, x.maker) for x in reports if isinstance(x, f.OrderFilled)]


def trade_print(paper: Paper, price: float, size: float, side: str, venue: str = VENUE) -> list:
    return paper.send(Trade(venue=venue, symbol=SYMBOL, exchange_ts_ms=paper.now, receive_ts_us=0, price=price,
                            size=size, side=side, trade_id=str(paper.now)))


ASKS = [(100_000.0, 0.3), (100_000.1, 0.5), (100_000.2, 1.0)]
BIDS = [(99_999.9, 0.2), (99_999.8, 0.1)]


def test_a_market_buy_walks_the_asks_level_by_level_and_pays_the_taker_fee_on_each():
    paper = Paper()
    paper.book(BIDS, ASKS)
    reports = paper.venue.place(order("Buy", "1.0"), paper.now)
    assert reports[0] == f.OrderAcked(ts_ms=paper.now, trade_id="t", link_id="t-1", venue_order_id="paper-t-1")
    assert all(x.ts_ms == paper.now and x.trade_id == "t" and x.link_id == "t-1" for x in reports)
    # 0.3 x 100,000.0 x 0.0005 = 15.0; 0.5 x 100,000.1 x 0.0005 = 25.000025; 0.2 x 100,000.2 x 0.0005 = 10.00002
    assert fills(reports) == [("t-1-1", D("0.3"), D("100000.0"), D("15.0"), False),
                              ("t-1-2", D("0.5"), D("100000.1"), D("25.000025"), False),
                              ("t-1-3", D("0.2"), D("100000.2"), D("10.00002"), False)]
    assert len(reports) == 4 and paper.venue.resting == {}  # filled in full: nothing closed, nothing rests


def test_a_market_sell_the_bids_cannot_fill_is_filled_as_far_as_they_go_and_the_rest_cancelled():
    paper = Paper()
    paper.book(BIDS, ASKS)
    reports = paper.venue.place(order("Sell", "0.5"), paper.now)
    # 0.2 x 99,999.9 x 0.0005 = 9.99999; 0.1 x 99,999.8 x 0.0005 = 4.99999
    assert fills(reports) == [("t-1-1", D("0.2"), D("99999.9"), D("9.99999"), False),
                              ("t-1-2", D("0.1"), D("99999.8"), D("4.99999"), False)]
    assert reports[-1] == f.OrderClosed(ts_ms=paper.now, trade_id="t", link_id="t-1", status="cancelled",
                                        reason="paper: the book's carried levels ran out")
    assert paper.venue.resting == {}


def test_the_taker_fee_is_the_order_venues_own():
    paper = Paper()
    paper.send(BookUpdate(venue="binance", symbol=SYMBOL, kind="snapshot", update_id=1, exchange_ts_ms=paper.now,
                          receive_ts_us=0, bids=tuple(BIDS), asks=tuple(ASKS)))
    reports = paper.venue.place(order("Buy", "0.1", venue="binance"), paper.now)
    assert fills(reports) == [("t-1-1", D("0.1"), D("100000.0"), D("4.0"), False)]  # 0.1 x 100,000 x 4 bps


def test_an_order_with_no_book_on_its_side_is_rejected():
    paper = Paper()

    def rejected() -> list:
        return [f.OrderAcked(ts_ms=paper.now, trade_id="t", link_id="t-1", venue_order_id="paper-t-1"),
                f.OrderClosed(ts_ms=paper.now, trade_id="t", link_id="t-1", status="rejected",
                              reason="paper: no order book for this symbol yet")]

    assert paper.venue.place(order("Buy", "0.1"), paper.now) == rejected()  # no market at all
    paper.book(BIDS, [])  # bids but no asks
    assert paper.venue.place(order("Buy", "0.1", price=100_000.0), paper.now) == rejected()
    assert paper.venue.place(order("Buy", "0.1", symbol="ETHUSDT"), paper.now) == rejected()
    assert paper.venue.resting == {}
    assert fills(paper.venue.place(order("Sell", "0.1"), paper.now))  # the bids are there


def test_within_one_book_what_an_order_took_is_gone_and_the_next_book_brings_it_back():
    paper = Paper()
    paper.book(BIDS, ASKS)
    assert [x[1:3] for x in fills(paper.venue.place(order("Buy", "0.4", link="a"), paper.now))] == [
        (D("0.3"), D("100000.0")), (D("0.1"), D("100000.1"))]
    # 0.4 of the 0.5 at 100,000.1 are left, then 100,000.2
    assert [x[1:3] for x in fills(paper.venue.place(order("Buy", "0.5", link="b"), paper.now))] == [
        (D("0.4"), D("100000.1")), (D("0.1"), D("100000.2"))]
    # the bids were not touched
    assert [x[1:3] for x in fills(paper.venue.place(order("Sell", "0.2", link="c"), paper.now))] == [
        (D("0.2"), D("99999.9"))]
    paper.ticker(bid=99_999.9, ask=100_000.0, bid_size=0.2, ask_size=0.3)  # a ticker is not a new book
    paper.send(BookUpdate(venue="binance", symbol=SYMBOL, kind="snapshot", update_id=1, exchange_ts_ms=paper.now,
                          receive_ts_us=0, bids=tuple(BIDS), asks=tuple(ASKS)))  # another venue's book
    assert [x[1:3] for x in fills(paper.venue.place(order("Buy", "0.2", link="d"), paper.now))] == [
        (D("0.2"), D("100000.2"))]
    assert [x[1:3] for x in fills(paper.venue.place(order("Sell", "0.2", link="e"), paper.now))] == [
        (D("0.1"), D("99999.8"))]
    paper.book(BIDS, ASKS)
    assert [x[1:3] for x in fills(paper.venue.place(order("Buy", "0.3", link="f"), paper.now))] == [
        (D("0.3"), D("100000.0"))]
    assert [x[1:3] for x in fills(paper.venue.place(order("Sell", "0.2", link="g"), paper.now))] == [
        (D("0.2"), D("99999.9"))]


def test_a_limit_buy_takes_what_it_crosses_up_to_its_price_as_a_taker_and_rests_the_rest_as_a_maker():
    paper = Paper()
    paper.book([(99_999.9, 5.0)], [(100_000.0, 0.004), (100_000.1, 1.0)])
    reports = paper.venue.place(order("Buy", "0.01", price=100_000.0), paper.now)
    assert fills(reports) == [("t-1-1", D("0.004"), D("100000.0"), D("0.2"), False)]  # 0.004 x 100,000 x 5 bps
    assert len(reports) == 2  # acked and filled in part: it rests
    queue = paper.venue.resting["t-1"].queue
    assert (queue.price, queue.resting_depth_at_entry, queue.traded_at_price) == (D("100000.0"), D(0), D(0))
    assert paper.ticker(bid=99_999.9, ask=100_000.1, bid_size=5.0, ask_size=1.0) == []  # nothing traded yet
    # a new level: the first sale there fills the rest, 0.006, at its price as a maker:
    # 0.006 x 100,000.0 x 2 bps = 0.12
    reports = trade_print(paper, 100_000.0, 0.001, "sell")
    assert fills(reports) == [("t-1-2", D("0.006"), D("100000.0"), D("0.12"), True)]
    assert reports[0].ts_ms == paper.now and paper.venue.resting == {}


def test_a_limit_sell_takes_the_bids_down_to_its_price_and_no_further():
    paper = Paper()
    paper.book([(100_000.0, 0.004), (99_999.9, 1.0)], [(100_000.1, 5.0), (100_000.2, 7.0)])
    reports = paper.venue.place(order("Sell", "0.01", price=100_000.0), paper.now)
    assert fills(reports) == [("t-1-1", D("0.004"), D("100000.0"), D("0.2"), False)]
    assert paper.venue.resting["t-1"].queue.resting_depth_at_entry == D(0)
    # an ask behind 7 BTC (not the best ask): the queue is the size at its own price
    paper = Paper()
    paper.book([(100_000.0, 0.004)], [(100_000.1, 5.0), (100_000.2, 7.0)])
    paper.rest("Sell", 100_000.2, "0.01")
    assert paper.venue.resting["t-1"].queue.resting_depth_at_entry == D("7.0")


def test_a_resting_bid_fills_once_sales_at_or_through_it_reach_20_percent_of_the_queue_it_joined():
    paper = Paper()
    paper.book([(100_000.0, 1.0), (99_999.9, 5.0)], [(100_000.1, 1.0)])
    paper.rest("Buy", 99_999.9, "0.01")  # behind 5 BTC: fills once 1 BTC has sold at 99,999.9 or lower
    assert paper.venue.resting["t-1"].queue.resting_depth_at_entry == D("5.0")
    assert trade_print(paper, 99_999.9, 0.5, "sell") == []
    assert trade_print(paper, 100_000.0, 3.0, "sell") == []  # above its price: the bids ahead of it
    assert trade_print(paper, 99_999.9, 3.0, "buy") == []  # a buyer took an ask: no bid traded
    assert trade_print(paper, 99_999.9, 0.5, "sell", venue="binance") == []  # another venue's
    assert paper.send(Liquidation(venue=VENUE, symbol=SYMBOL, position_side="long", price=99_000.0, size=9.0,
                                  exchange_ts_ms=paper.now, receive_ts_us=0)) == []
    assert trade_print(paper, 99_999.8, 0.499, "sell") == []  # through it: counts; 0.999 in all
    assert paper.venue.resting["t-1"].queue.traded_at_price == D("0.999")
    reports = trade_print(paper, 99_999.9, 0.001, "sell")  # 1.000 = 20 % of 5
    # 0.01 x 99,999.9 x 0.0002 = 0.1999998
    assert fills(reports) == [("t-1-1", D("0.01"), D("99999.9"), D("0.1999998"), True)]
    assert paper.venue.resting == {} and trade_print(paper, 99_999.9, 9.0, "sell") == []  # once


def test_a_resting_ask_fills_once_purchases_at_or_through_it_reach_20_percent_of_its_queue():
    paper = Paper()
    paper.book([(99_999.9, 1.0)], [(100_000.0, 2.0), (100_000.1, 1.0)])
    paper.rest("Sell", 100_000.0, "0.02")  # behind 2 BTC: 0.4 BTC bought at 100,000.0 or higher fills it
    assert trade_print(paper, 100_000.0, 0.3, "sell") == []  # a seller: not a purchase of the asks
    assert trade_print(paper, 99_999.9, 0.3, "buy") == []  # below its price
    assert trade_print(paper, 100_000.1, 0.2, "buy") == []
    assert trade_print(paper, 100_000.0, 0.199, "buy") == []  # 0.399
    # 0.02 x 100,000.0 x 0.0002 = 0.4
    assert fills(trade_print(paper, 100_000.0, 0.001, "buy")) == [("t-1-1", D("0.02"), D("100000.0"), D("0.4"), True)]


def test_a_resting_order_is_cancelled_once_and_then_no_more_fills():
    paper = Paper()
    paper.book(BIDS, ASKS)
    paper.rest("Buy", 99_999.0, "0.01")
    assert paper.venue.cancel("t-1", "t", paper.now) == [
        f.OrderClosed(ts_ms=paper.now, trade_id="t", link_id="t-1", status="cancelled", reason="cancelled on request")]
    assert paper.venue.cancel("t-1", "t", paper.now) == []
    assert trade_print(paper, 99_000.0, 9.0, "sell") == []


def book_event(venue: str, bid: float, ask: float, size: float, now: int) -> BookUpdate:
    return BookUpdate(venue=venue, symbol=SYMBOL, kind="snapshot", update_id=now, exchange_ts_ms=now,
                      receive_ts_us=now * 1000, bids=tuple((round(bid - i * 0.1, 1), size) for i in range(20)),
                      asks=tuple((round(ask + i * 0.1, 1), size) for i in range(20)))


def test_paper_execution_trades_in_process_and_a_restart_closes_the_orders_left_resting():
    core = ExecutorCore(ExecConfig(), {(v, SYMBOL): GRID for v in ("binance", "okx")})
    paper = PaperExecution(core)
    assert paper.venue.market is core.market  # it fills against the market the executor reads
    assert isinstance(paper.reports, asyncio.Queue) and paper.reports.empty()  # the service waits on it
    assert paper.market(book_event("binance", 100_000.0, 100_000.1, 2.0, T0), T0) == []
    paper.market(book_event("okx", 100_600.0, 100_600.1, 0.0, T0), T0)  # no size to sell into: okx rests
    core.market.get("okx", SYMBOL).bid = 100_700.0  # as when the signal was read
    signal = SignalIn(id="s1", symbol=SYMBOL, long_venue="binance", short_venue="okx", spread_bps=70.0,
                      funding_delta_8h=0.0004, confidence=80, depth_long_usd=200_000.0, depth_short_usd=200_000.0,
                      created_ms=T0)
    facts = paper.route(core.on_signal(signal, T0), T0)
    (short,) = [x for x in facts if isinstance(x, f.OrderPlaced)]  # the harder leg, okx, first
    assert (short.venue, short.side, short.price) == ("okx", "Sell", D("100649.7"))
    assert [type(x) for x in facts[-2:]] == [f.OrderPlaced, f.OrderAcked] and list(paper.venue.resting) == [
        short.link_id]
    paper = PaperExecution(core)  # restarted (the core as the replay left it): no order rests at the paper venue
    facts = asyncio.run(paper.reconcile(T0 + 100))
    assert facts[0] == f.OrderClosed(ts_ms=T0 + 100, trade_id=short.trade_id, link_id=short.link_id,
                                     status="cancelled", reason="paper: the executor restarted")
    (again,) = [x for x in facts if isinstance(x, f.OrderPlaced)]  # the harder leg, sent again within 500 ms
    assert (again.leg, again.price) == ("short", D("100649.7")) and again.link_id in paper.venue.resting
    # a buyer at its price fills it (nothing rested there before it), then the long leg buys at market
    facts = paper.market(Trade(venue="okx", symbol=SYMBOL, exchange_ts_ms=T0 + 200, receive_ts_us=0,
                               price=100_649.7, size=0.5, side="buy", trade_id="x"), T0 + 200)
    assert [(x.link_id, x.price, x.maker) for x in facts if isinstance(x, f.OrderFilled)] == [
        (again.link_id, D("100649.7"), True), (facts[[type(x) for x in facts].index(f.OrderPlaced)].link_id,
                                               D("100000.1"), False)]
    assert core.trades[short.trade_id].status == "active"


def two_resting_harder_legs() -> tuple[Desk, list[f.OrderPlaced]]:
    """Two trades whose harder legs (okx, the short) rest at 100,649.7: okx shows no bid size."""
    desk = Desk(ExecConfig(max_concurrent_trades=10), venues=("binance", "okx", "bybit"))
    desk.book("binance", 100_000.0, 100_000.1)
    desk.book("bybit", 100_000.0, 100_000.1)
    desk.book("okx", 100_600.0, 100_600.1, size=0.0)
    desk.core.market.get("okx", SYMBOL).bid = 100_700.0  # as when the signals were read
    desk.signal("s1", long_venue="binance", short_venue="okx")
    desk.signal("s2", long_venue="bybit", short_venue="okx")
    resting = desk.of(f.OrderPlaced)
    assert [(o.venue, o.side, o.price) for o in resting] == [("okx", "Sell", D("100649.7"))] * 2
    assert not desk.of(f.OrderFilled)
    return desk, resting


def test_one_trade_print_that_fills_two_resting_orders_reports_both_fills_and_all_that_follows():
    desk, resting = two_resting_harder_legs()
    facts = desk.trade("okx", 100_649.7, 0.5, "buy")  # a new level: the first buyer there fills both
    fills = [x for x in facts if isinstance(x, f.OrderFilled)]
    assert [(x.link_id, x.price, x.maker) for x in fills[:2]] == [(o.link_id, D("100649.7"), True) for o in resting]
    # then each easier leg buys at market on its own venue, at the 100,000.1 touch
    placed = {o.link_id: o for o in desk.of(f.OrderPlaced)}
    assert sorted((placed[x.link_id].venue, placed[x.link_id].leg, x.price, x.maker) for x in fills[2:]) == [
        ("binance", "long", D("100000.1"), False), ("bybit", "long", D("100000.1"), False)]
    assert [type(x) for x in facts].count(f.TradeActive) == 2
    assert all(t.status == "active" for t in desk.core.trades.values()) and len(desk.core.trades) == 2


def test_a_restart_closes_every_order_the_facts_left_open():
    desk, resting = two_resting_harder_legs()
    facts = restart(desk.core, PaperVenue(desk.core.market), desk.now + 100)  # the venue holds nothing now
    closed = [x for x in facts if isinstance(x, f.OrderClosed)]
    assert [(x.link_id, x.status, x.reason) for x in closed] == [
        (o.link_id, "cancelled", "paper: the executor restarted") for o in resting]


def test_a_bid_placed_on_a_book_with_no_bids_rests_and_a_quote_without_sizes_counts_no_volume():
    paper = Paper()
    paper.book([], [(100_000.1, 1.0)])  # only asks: the market has no best bid and ask yet
    order = paper.rest("Buy", 100_000.0, "0.01")  # a new level: the first sale at or through it fills it
    assert paper.ticker(bid=99_999.9, ask=100_000.0) == []  # an ask at its price, of unknown size: no volume
    assert paper.venue.resting["t-1"].queue.traded_at_price == D(0)
    assert fills(trade_print(paper, 100_000.0, 0.001, "sell")) == [
        ("t-1-1", order.qty, order.price, D("0.2"), True)]  # 0.01 x 100,000.0 x 2 bps


def test_buying_the_asks_does_not_thin_the_bids_at_the_same_price_in_a_locked_book():
    paper = Paper()
    paper.book([(100_000.0, 1.0)], [(100_000.0, 1.0)])  # a locked book, as a feed shows for a moment
    assert [x[1:3] for x in fills(paper.venue.place(order("Buy", "1.0", link="a"), paper.now))] == [
        (D("1.0"), D("100000.0"))]
    assert [x[1:3] for x in fills(paper.venue.place(order("Sell", "1.0", link="b"), paper.now))] == [
        (D("1.0"), D("100000.0"))]


def test_a_liquidation_print_fills_nothing_and_the_next_book_through_the_rest_fills_it():
    paper = Paper()
    paper.book([(99_999.9, 1.0)], [(100_000.0, 0.3), (100_000.2, 1.0)])
    reports = paper.venue.place(order("Buy", "0.5", price=100_000.1), paper.now)
    assert [x[1:3] for x in fills(reports)] == [(D("0.3"), D("100000.0"))]  # took the 0.3 at 100,000.0; 0.2 rests
    assert paper.send(Liquidation(venue=VENUE, symbol=SYMBOL, position_side="long", price=99_000.0, size=9.0,
                                  exchange_ts_ms=paper.now, receive_ts_us=0)) == []
    # the next book still shows asks below its price: sellers went through it, so the rest fills, as a maker
    # at its price: 0.2 x 100,000.1 = 20,000.02, x 2 bps = 4.000004
    reports = paper.book([(99_999.9, 1.0)], [(100_000.0, 0.3), (100_000.2, 1.0)])
    assert fills(reports) == [("t-1-2", D("0.2"), D("100000.1"), D("4.000004"), True)]


def test_an_event_fills_the_orders_on_its_venue_whatever_rests_elsewhere():
    paper = Paper()
    paper.send(BookUpdate(venue="binance", symbol=SYMBOL, kind="snapshot", update_id=1, exchange_ts_ms=paper.now,
                          receive_ts_us=0, bids=tuple(BIDS), asks=tuple(ASKS)))
    paper.book(BIDS, ASKS)
    paper.venue.place(order("Buy", "0.01", price=99_000.0, link="elsewhere", venue="binance"), paper.now)
    paper.venue.place(order("Buy", "0.01", price=99_000.0, link="here"), paper.now)
    assert [x.link_id for x in trade_print(paper, 99_000.0, 0.001, "sell")] == ["here"]
    assert list(paper.venue.resting) == ["elsewhere"]
