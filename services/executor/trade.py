"""A trade and its orders as the facts made them (pure): `Trade.apply` is the only way they change.

Positions are per leg and signed: the long leg holds what it bought (> 0), the short leg what
it sold (< 0). `cash` is sells minus buys; when both legs are flat the trade made
cash - fees - funding, to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from services.executor import facts as f

ZERO = Decimal(0)
SIGN = {"Buy": 1, "Sell": -1}


@dataclass
class OrderState:
    placed: f.OrderPlaced
    filled: Decimal = ZERO
    value: Decimal = ZERO  # sum of qty x price of its fills
    fee: Decimal = ZERO
    open: bool = True  # until filled in full or closed by the venue
    cancel_requested: bool = False
    cancel_ms: int = 0  # when the last cancel was asked for
    cancels: int = 0  # how many times
    venue_order_id: str = ""
    closed_status: str = ""
    closed_reason: str = ""
    done_ms: int | None = None  # when it filled in full or was closed

    @property
    def link_id(self) -> str:
        return self.placed.link_id

    @property
    def remaining(self) -> Decimal:
        return self.placed.qty - self.filled

    @property
    def avg_price(self) -> Decimal | None:
        return self.value / self.filled if self.filled else None


@dataclass
class Trade:
    taken: f.SignalTaken
    status: str = "pending"  # pending -> active -> exiting -> closed
    orders: dict[str, OrderState] = field(default_factory=dict)  # link id -> order, in placement order
    held: dict[str, Decimal] = field(default_factory=lambda: {"long": ZERO, "short": ZERO})
    cash: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    leg_outs: list[f.LegOut] = field(default_factory=list)
    fill_ids: set[str] = field(default_factory=set)
    active: f.TradeActive | None = None
    exit: f.ExitStarted | None = None
    closed: f.TradeClosed | None = None
    funding_settled: dict[str, int] = field(default_factory=dict)  # leg -> last settlement time paid
    gone: list[f.PositionGone] = field(default_factory=list)  # closed outside this system

    @property
    def id(self) -> str:
        return self.taken.trade_id

    def legs(self, leg: str, *purposes: str) -> list[OrderState]:
        return [o for o in self.orders.values()
                if o.placed.leg == leg and (not purposes or o.placed.purpose in purposes)]

    def filled(self, leg: str, *purposes: str) -> Decimal:
        return sum((o.filled for o in self.legs(leg, *purposes)), ZERO)

    def traded(self, leg: str, side: str) -> tuple[Decimal, Decimal]:
        """(quantity, value) of the leg's fills on `side`: what it bought or sold in all."""
        orders = [o for o in self.legs(leg) if o.placed.side == side]
        return sum((o.filled for o in orders), ZERO), sum((o.value for o in orders), ZERO)

    def open_orders(self, leg: str | None = None) -> list[OrderState]:
        return [o for o in self.orders.values() if o.open and (leg is None or o.placed.leg == leg)]

    def attempts(self, leg: str, purpose: str) -> int:
        return len(self.legs(leg, purpose))

    @property
    def flat(self) -> bool:
        return not self.held["long"] and not self.held["short"]

    def pnl(self) -> Decimal:
        """What the trade made so far, valuing any open quantity at nothing: exact once flat."""
        return self.cash - self.fees - self.funding

    def apply(self, fact: f.AnyFact) -> None:
        match fact:
            case f.OrderPlaced():
                self.orders[fact.link_id] = OrderState(fact)
            case f.CancelRequested():
                order = self.orders[fact.link_id]
                order.cancel_requested, order.cancel_ms = True, fact.ts_ms
                order.cancels += 1
            case f.OrderAcked():
                self.orders[fact.link_id].venue_order_id = fact.venue_order_id
            case f.OrderFilled():
                if fact.fill_id in self.fill_ids:
                    return
                self.fill_ids.add(fact.fill_id)
                order = self.orders[fact.link_id]
                order.filled += fact.qty
                order.value += fact.qty * fact.price
                order.fee += fact.fee
                sign = SIGN[order.placed.side]
                self.held[order.placed.leg] += sign * fact.qty
                self.cash -= sign * fact.qty * fact.price
                self.fees += fact.fee
                if order.filled >= order.placed.qty:
                    order.open, order.done_ms = False, fact.ts_ms
            case f.OrderClosed():
                order = self.orders[fact.link_id]
                order.open, order.closed_status, order.closed_reason = False, fact.status, fact.reason
                order.done_ms = fact.ts_ms
            case f.LegOut():
                self.leg_outs.append(fact)
            case f.TradeActive():
                self.status, self.active = "active", fact
            case f.ExitStarted():
                self.status, self.exit = "exiting", fact
            case f.PositionGone():
                sign = 1 if self.held[fact.leg] > 0 else -1
                self.held[fact.leg] -= sign * fact.qty
                self.cash += sign * fact.qty * fact.price
                self.gone.append(fact)
            case f.FundingPaid():
                self.funding += fact.amount
                self.funding_settled[fact.leg] = fact.ts_ms
            case f.TradeClosed():
                self.status, self.closed = "closed", fact

    def hedges(self, leg_out: f.LegOut) -> list[OrderState]:
        """The market orders a leg-out sent on its unfilled leg: the entry hedges, or the market
        exit once the other leg's exit filled (none when the leg-out was unwound)."""
        purpose = "hedge" if leg_out.phase == "entry" else "exit"
        return [o for o in self.legs(leg_out.unfilled_leg, purpose) if o.placed.order_type == "Market"]

    def leg_out_loss(self, phase: str | None = None) -> Decimal:
        """What the leg-outs (of `phase`, or all) cost against the market: each hedge's fills
        beyond the touch its leg was first priced from in that phase (the market the trade
        planned to trade at), so a hedge that took 5 bps through that touch lost 5 bps. A
        leg-out whose hedge did better than that market lost nothing (0; the gain stays in the
        trade's profit). An emergency close is priced by the caller: everything it lost."""
        loss = ZERO
        for leg_out in self.leg_outs:
            if phase not in (None, leg_out.phase):
                continue
            planned = next((o.placed.touch for o in self.legs(leg_out.unfilled_leg, leg_out.phase)
                            if o.placed.touch is not None), None)
            if planned is None:
                continue
            cost = sum((SIGN[o.placed.side] * (o.value - planned * o.filled) for o in self.hedges(leg_out)), ZERO)
            loss += max(cost, ZERO)
        return loss
