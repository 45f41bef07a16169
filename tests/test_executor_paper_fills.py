"""The book moving onto or through a resting limit order's price (shared/fills.py), in the
paper venue, and the same scenario through the paper venue and the simulator side by side.

A real venue never leaves its book crossed: an ask that reaches a resting bid trades with
the bids there, the queue ahead first. So an ask arriving at the bid's price is volume
traded there (the seed's queue rule, Property 4, decides the fill), and an ask strictly
below it means everything at the price traded, the order included."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.executor import facts as f
from services.executor.paper import MAKER_FEE, PaperVenue
from services.sim.market import MarketModel
from services.sim.matching import Matching, OrderRequest
from services.strategy.state import MarketState
from shared.events import BookUpdate, Ticker
from shared.fills import Crossing, book_crossing

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
