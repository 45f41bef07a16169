"""Paper execution (pure): orders fill against the market the executor reads, realistically.

- **Market orders** walk the book on the other side, level by level, and pay the taker fee.
  What the book (its carried levels) cannot fill is cancelled, as Bybit does with the rest of
  a market order, and the executor sends the rest again.
- **Limit orders** that cross the book take what is there up to their price, as a taker.
  The rest rests with a queue position (seed QueuePosition, Property 4): the size already
  resting at its price when placed. It fills, at its price and as a maker, once the volume
  traded at or through that price since it was placed reaches 20 % of that resting size (the
  first such trade when the level was empty). The other side of the book arriving at its
  price counts as volume traded there, its size not counted before; the other side moving
  strictly through its price fills it (shared/fills.py: a real venue's book never stays
  crossed, so both are trades, the queue ahead first).
- Within one book, what an order took is taken: a second order until the next book update
  finds those levels that much thinner.

Fees: each venue's taker fee (services/strategy/costs.py) and a 2 bps maker fee (Bybit VIP0's;
the other venues' entry tiers are within a bps of it). Fees are exact: value x rate.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from services.executor import facts as f
from services.strategy.costs import taker_fee_bps
from services.strategy.state import MarketState
from shared.events import MarketEvent
from shared.fills import Crossing, book_crossing

FILL_THRESHOLD = Decimal("0.2")
MAKER_FEE = Decimal("0.0002")
ZERO = Decimal(0)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _crossing(m, o: f.OrderPlaced, seen: Decimal) -> Crossing:
    """What the other side of `m`'s book, at its top, says of the resting order `o`."""
    other, size = (m.ask, m.ask_size) if o.side == "Buy" else (m.bid, m.bid_size)
    return book_crossing(o.side, o.price, None if other is None else _dec(other),
                         None if size is None else _dec(size), seen)


@dataclass
class QueuePosition:
    price: Decimal
    resting_depth_at_entry: Decimal
    traded_at_price: Decimal = ZERO
    crossing_seen: Decimal = ZERO  # the other side's size at the price, counted already

    def should_fill(self) -> bool:
        return self.traded_at_price > 0 and self.traded_at_price >= self.resting_depth_at_entry * FILL_THRESHOLD

    def crossed(self, c: Crossing) -> bool:
        """Count what the other side of the book says traded at the price; whether that fills."""
        self.crossing_seen = c.seen
        self.traded_at_price += c.volume
        if c.through:  # all that rested at the price traded, the queue ahead and this order
            self.traded_at_price = max(self.traded_at_price, self.resting_depth_at_entry)
        return c.through or self.should_fill()


@dataclass
class PaperOrder:
    placed: f.OrderPlaced
    filled: Decimal = ZERO
    queue: QueuePosition | None = None
    fills: int = 0


@dataclass
class PaperVenue:
    """Every paper venue at once; `market` is the executor's own market state."""

    market: MarketState
    resting: dict[str, PaperOrder] = field(default_factory=dict)  # link id -> order
    taken: dict[tuple[str, str, str], dict[Decimal, Decimal]] = field(default_factory=dict)

    def place(self, order: f.OrderPlaced, now_ms: int) -> list[f.AnyFact]:
        out: list[f.AnyFact] = [f.OrderAcked(ts_ms=now_ms, trade_id=order.trade_id, link_id=order.link_id,
                                             venue_order_id=f"paper-{order.link_id}")]
        m = self.market.get(order.venue, order.symbol)
        book = (m.asks if order.side == "Buy" else m.bids) if m else ()
        if not book:
            out.append(f.OrderClosed(ts_ms=now_ms, trade_id=order.trade_id, link_id=order.link_id,
                                     status="rejected", reason="paper: no order book for this symbol yet"))
            return out
        p = PaperOrder(order)
        self._take(p, book, now_ms, out)
        if p.filled >= order.qty:
            return out
        if order.order_type == "Market":
            out.append(f.OrderClosed(ts_ms=now_ms, trade_id=order.trade_id, link_id=order.link_id,
                                     status="cancelled", reason="paper: the book's carried levels ran out"))
            return out
        own = (m.bids if order.side == "Buy" else m.asks)
        depth = next((_dec(size) for price, size in own if _dec(price) == order.price), ZERO)
        seen = _crossing(m, order, ZERO).seen  # what the book shows at its price now is not news later
        p.queue = QueuePosition(order.price, depth, crossing_seen=seen)
        self.resting[order.link_id] = p
        return out

    def cancel(self, link_id: str, trade_id: str, now_ms: int) -> list[f.AnyFact]:
        if self.resting.pop(link_id, None) is None:
            return []  # filled or closed already: the venue would say so, and nothing changes
        return [f.OrderClosed(ts_ms=now_ms, trade_id=trade_id, link_id=link_id, status="cancelled",
                              reason="cancelled on request")]

    def on_market(self, event: MarketEvent, now_ms: int) -> list[f.AnyFact]:
        """Fills the event causes (call after the market state has applied it)."""
        if event.TYPE == "book":
            self.taken.pop((event.venue, event.symbol, "asks"), None)
            self.taken.pop((event.venue, event.symbol, "bids"), None)
        if not self.resting or event.TYPE not in ("book", "ticker", "trade"):
            return []
        out: list[f.AnyFact] = []
        for link_id, p in list(self.resting.items()):
            o = p.placed
            if o.venue != event.venue or o.symbol != event.symbol:
                continue
            if event.TYPE == "trade":
                price = _dec(event.price)
                through = (event.side == "sell" and price <= o.price) if o.side == "Buy" else (
                    event.side == "buy" and price >= o.price)
                if through:
                    p.queue.traded_at_price += _dec(event.size)
                fill = p.queue.should_fill()
            else:
                fill = p.queue.crossed(_crossing(self.market.get(o.venue, o.symbol), o, p.queue.crossing_seen))
            if fill:
                self._fill(p, o.qty - p.filled, o.price, True, now_ms, out)
                del self.resting[link_id]
        return out

    def _take(self, p: PaperOrder, book, now_ms: int, out: list) -> None:
        o = p.placed
        taken = self.taken.setdefault((o.venue, o.symbol, "asks" if o.side == "Buy" else "bids"), {})
        for price_f, size_f in book:
            need = o.qty - p.filled
            if need <= 0:
                break
            price = _dec(price_f)
            if o.price is not None and (price > o.price if o.side == "Buy" else price < o.price):
                break
            free = _dec(size_f) - taken.get(price, ZERO)
            if free <= 0:
                continue
            qty = min(need, free)
            taken[price] = taken.get(price, ZERO) + qty
            self._fill(p, qty, price, False, now_ms, out)

    def _fill(self, p: PaperOrder, qty: Decimal, price: Decimal, maker: bool, now_ms: int, out: list) -> None:
        o = p.placed
        p.filled += qty
        p.fills += 1
        rate = MAKER_FEE if maker else Decimal(repr(taker_fee_bps(o.venue))) / 10_000
        out.append(f.OrderFilled(ts_ms=now_ms, trade_id=o.trade_id, link_id=o.link_id,
                                 fill_id=f"{o.link_id}-{p.fills}", qty=qty, price=price, fee=qty * price * rate,
                                 maker=maker))


def route(core, paper: PaperVenue, facts: list[f.AnyFact], now_ms: int) -> list[f.AnyFact]:
    """`facts` and everything that follows from sending their orders and cancels to `paper`
    and feeding its reports back to `core`, until nothing more happens at `now_ms`."""
    out, queue = list(facts), list(facts)
    while queue:
        fact = queue.pop(0)
        if isinstance(fact, f.OrderPlaced):
            reports = paper.place(fact, now_ms)
        elif isinstance(fact, f.CancelRequested):
            reports = paper.cancel(fact.link_id, fact.trade_id, now_ms)
        else:
            continue
        for report in reports:
            new = core.on_report(report, now_ms)
            out += new
            queue += new
    return out


def restart(core, paper: PaperVenue, now_ms: int) -> list[f.AnyFact]:
    """After a restart the paper venue has no resting orders: each order the facts left open
    is closed, and the trades carry on from there (a leg left alone gets hedged or unwound)."""
    out: list[f.AnyFact] = []
    for trade in list(core.trades.values()):
        for order in trade.open_orders():
            out += core.on_report(f.OrderClosed(ts_ms=now_ms, trade_id=trade.id, link_id=order.link_id,
                                                status="cancelled", reason="paper: the executor restarted"), now_ms)
    return route(core, paper, out + core.step(now_ms), now_ms)


def market_event(core, paper: PaperVenue, event: MarketEvent, now_ms: int) -> list[f.AnyFact]:
    """A market event through the core and the paper venue: the fills it causes and all that follows."""
    out = core.on_market(event, now_ms)
    for report in paper.on_market(event, now_ms):
        out += core.on_report(report, now_ms)
    return route(core, paper, out + core.step(now_ms), now_ms)


class PaperExecution:
    """Paper execution as the service drives it: orders fill here, at once, in-process."""

    def __init__(self, core) -> None:
        self.core = core
        self.venue = PaperVenue(core.market)
        self.reports: asyncio.Queue = asyncio.Queue()  # never used: paper answers at once

    def market(self, event: MarketEvent, now_ms: int) -> list[f.AnyFact]:
        return market_event(self.core, self.venue, event, now_ms)

    def route(self, facts: list[f.AnyFact], now_ms: int) -> list[f.AnyFact]:
        return route(self.core, self.venue, facts, now_ms)

    def dispatch(self, facts: list[f.AnyFact]) -> None:
        """Nothing to send: `route` did it."""

    async def reconcile(self, now_ms: int) -> list[f.AnyFact]:
        return restart(self.core, self.venue, now_ms)

    async def close(self) -> None:
        pass
