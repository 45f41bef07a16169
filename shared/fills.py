"""What a move of the book says about a resting limit order (pure), for the paper venue
(services/executor/paper.py) and the simulator (services/sim/matching.py) alike.

A real venue never leaves its book crossed: a sell order that reaches a resting bid trades
with it, the orders ahead in the queue at that price first. So when the other side of the
book shows up at a resting order's price, the book is evidence of trades there:

- **onto the price** (best ask == the bid, or best bid == the ask): the size shown there
  came to the price to trade, and would have met the queue there, the orders ahead first.
  It counts as volume traded at the price and feeds the same queue rule trades feed; it is
  not a fill by itself. Only size not counted before is new: a level seen in two books is
  one level, and a level that grows has new size.
- **through the price** (best ask < the bid, or best bid > the ask): the other side's orders
  took everything at the price and beyond it, the queue ahead and the order included, so
  the order fills.

Numbers are whatever the caller uses (Decimal prices and sizes, or integer ticks and lots).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

Num = Decimal | int


@dataclass(frozen=True)
class Crossing:
    volume: Num  # new size shown at the order's price: volume traded there, for the queue
    seen: Num  # the size at the price counted so far: pass it back with the next book
    through: bool  # the other side is past the price: everything there traded


def book_crossing(side: str, price: Num, best_other: Num | None, size_at_price: Num | None,
                  seen: Num) -> Crossing:
    """A resting `side` (Buy | Sell) order at `price`, and the other side of the book now:
    its best price (the best ask for a Buy) and the size it shows at `price` (None: unknown).
    `seen` is the `seen` of the previous call for this order (0 at first)."""
    if best_other is None:
        return Crossing(0, seen, False)  # no news from the other side
    gap = best_other - price if side == "Buy" else price - best_other
    if gap < 0:
        return Crossing(0, 0, True)
    if gap > 0:
        return Crossing(0, 0, False)
    if size_at_price is None:
        return Crossing(0, seen, False)  # at the price, but of unknown size: no volume to count
    return Crossing(max(size_at_price - seen, 0), size_at_price, False)
