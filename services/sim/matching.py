"""The simulator's matching engine: accounts, orders, positions, fills, fees and funding.

Pure: the caller passes the time and the market model, and gets back what changed, per
account, so the server can answer and push. Prices are integer ticks and sizes integer lots
as in the model; money is Decimal and exact. The ledger invariant the tests hold it to:

    wallet = start + sum(realised PnL of fills) - sum(fees) - sum(funding paid)

and when every position is flat, the realised PnL equals sells minus buys, to the last digit.

Orders take from the model's own book (a market order walks it; a crossing limit order
takes up to its price) and the sizes they take leave the book. A limit order that rests
gets a queue position: the size already at its price when placed. Trades the model prints
at or through that price use up the queue first and then fill the order, possibly in
part; a level that shrinks shortens the queue. The other side of the book arriving at the
price counts as volume traded there (its size not counted before), the same way; the other
side moving strictly through the price fills the rest (shared/fills.py, the rule the paper
venue uses too). Resting orders are not shown in the public book.

An engine reads the market through a book view (book_view.py): Bybit's engine the model's
own book, another venue's engine that venue's shifted book, trades, mark and funding rate.
What differs between venues in accepting orders is in `VenueRules` (fees, whether a client
id may be reused once its order is closed, whether a close larger than the position is cut
or refused); refusals carry Bybit's retCode and a `reason` another venue maps to its codes.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from services.sim.book_view import ModelBook
from services.sim.market import Instrument, MarketModel, SymbolState
from shared.fills import book_crossing

TAKER_FEE, MAKER_FEE = Decimal("0.00055"), Decimal("0.0002")  # Bybit VIP0 derivatives
START_BALANCE_USDT = Decimal("100000")
LEVERAGE = Decimal(10)
COST_PLACES = Decimal("1E-10")  # a partial close's share of entry cost is rounded here
PRICE_PLACES = Decimal("1E-8")
EXECUTIONS_KEPT = 10_000
CLOSED_ORDERS_KEPT = 500
ZERO = Decimal(0)

MAX_OPEN_ORDERS = 500  # per symbol, as on Bybit
OPEN_STATUSES = ("New", "PartiallyFilled")


class Rejected(Exception):
    """An order request the venue refuses synchronously, with Bybit's retCode and a reason
    other venues map to their own codes: duplicate_link_id, position_mode, too_many_orders,
    no_position, same_direction, close_exceeds, insufficient_margin, not_found,
    mode_not_modified, mode_busy."""

    def __init__(self, ret_code: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.ret_code = ret_code
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class VenueRules:
    """How a venue accepts orders, where venues differ."""

    taker_fee: Decimal = TAKER_FEE
    maker_fee: Decimal = MAKER_FEE
    link_ids_reusable: bool = False  # a client id may name a new order once its last order closed
    trim_closes: bool = True  # a close larger than the position is cut to it (else refused)
    hedge_by_default: bool = False  # a new account holds long and short positions apart


@dataclass(frozen=True)
class OrderRequest:
    """A well-formed order request, on the instrument's grids (see bybit_trade.order_request)."""

    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    tif: str  # GTC | IOC | FOK | PostOnly
    price_ticks: int | None  # None for a market order
    lots: int
    reduce_only: bool = False
    position_idx: int = 0
    link_id: str = ""
    margin_mode: str = "cross"  # cross | isolated: shown, not modelled (one margin pool)


@dataclass
class Order:
    order_id: str
    link_id: str
    symbol: str
    side: str  # Buy | Sell
    order_type: str  # Market | Limit
    tif: str
    price_ticks: int  # the limit, or for a market order the worst price it may reach
    lots: int
    reduce_only: bool
    position_idx: int
    created_ms: int
    updated_ms: int
    last_price_on_created: int
    filled_lots: int = 0
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    closed_pnl: Decimal = ZERO
    status: str = "New"
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    queue_ahead: int = 0  # lots ahead of this order at its price
    crossing_seen: int = 0  # lots the other side showed at its price, counted already
    cap: float | None = None  # the partial-fill fault: it fills at most this share of its size
    cancel_rest: bool = False  # ... and what it could not fill at once is cancelled
    margin_mode: str = "cross"
    gross_pnl: Decimal = ZERO  # realised by its fills, before fees

    @property
    def sign(self) -> int:
        return 1 if self.side == "Buy" else -1

    @property
    def leaves(self) -> int:
        return self.lots - self.filled_lots if self.status in OPEN_STATUSES else 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class Position:
    symbol: str
    idx: int  # 0 one-way, 1 hedge long, 2 hedge short
    lots: int = 0  # signed: > 0 long
    cost: Decimal = ZERO  # entry value of the open size
    cur_realised: Decimal = ZERO  # since this position was opened, fees and funding included
    cum_realised: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0
    fees: Decimal = ZERO  # trading fees paid since this position was opened
    funding: Decimal = ZERO  # funding paid since this position was opened (< 0: received)
    margin_mode: str = "cross"  # of the order that opened it

    def entry_price(self, inst: Instrument) -> Decimal:
        if not self.lots:
            return ZERO
        return (self.cost / (inst.lot * abs(self.lots))).quantize(PRICE_PLACES, ROUND_HALF_EVEN).normalize()


@dataclass(frozen=True)
class Execution:
    exec_id: str
    order: Order | None  # None for funding
    symbol: str
    side: str
    exec_type: str  # Trade | Funding
    price: Decimal
    qty: Decimal
    value: Decimal
    fee: Decimal  # positive = paid
    fee_rate: Decimal
    is_maker: bool
    pnl: Decimal
    closed_lots: int
    leaves_lots: int
    mark_price: Decimal
    time_ms: int
    seq: int
    position_idx: int = 0
    wallet_after: Decimal = ZERO  # the account's wallet balance right after it


@dataclass
class Account:
    key: str
    wallet: Decimal = START_BALANCE_USDT
    cum_realised: Decimal = ZERO
    positions: dict[tuple[str, int], Position] = field(default_factory=dict)
    hedge_symbols: set[str] = field(default_factory=set)
    leverage: dict[str, Decimal] = field(default_factory=dict)  # symbol -> leverage set (LEVERAGE if none)
    orders: dict[str, Order] = field(default_factory=dict)  # every order it placed, by id
    open: dict[str, Order] = field(default_factory=dict)  # the open ones: what each market step looks at
    link_ids: dict[str, str] = field(default_factory=dict)  # orderLinkId -> orderId
    closed: deque[str] = field(default_factory=lambda: deque(maxlen=CLOSED_ORDERS_KEPT))
    executions: deque[Execution] = field(default_factory=lambda: deque(maxlen=EXECUTIONS_KEPT))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.open.values() if symbol is None or o.symbol == symbol]


@dataclass
class Changes:
    """What one call changed in one account: what the private stream pushes."""

    orders: dict[str, Order] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    positions: dict[tuple[str, int], Position] = field(default_factory=dict)
    wallet: bool = False


@dataclass
class FillPolicy:
    """Faults that bend matching: orders that never fill, or fill only in part."""

    unfilled: bool = False
    partial_fill_fraction: float | None = None  # each order fills at most this share of its size
    partial_fill_orders: int | None = None  # only the next N orders, and the venue cancels their rest


class Matching:
    """Every account of the simulated venue, matched against one `MarketModel`."""

    def __init__(self, model: MarketModel, new_id: Callable[[], str] | None = None,
                 policy: FillPolicy | None = None, view: ModelBook | None = None,
                 rules: VenueRules | None = None) -> None:
        self.model = model
        self.view = view or ModelBook(model)
        self.rules = rules or VenueRules()
        counter = itertools.count(1)
        self.new_id = new_id or (lambda: f"sim-{next(counter):012d}")
        self.policy = policy or FillPolicy()
        self.accounts: dict[str, Account] = {}
        self._seq = itertools.count(1)
        self._funded: dict[str, int] = {}  # symbol -> last funding time settled
        self.changes: dict[str, Changes] = {}

    # --- reading ------------------------------------------------------------------------

    def account(self, key: str) -> Account:
        if key not in self.accounts:
            self.accounts[key] = Account(key)
            if self.rules.hedge_by_default:
                self.accounts[key].hedge_symbols.update(self.model.states)
        return self.accounts[key]

    def mark(self, symbol: str) -> Decimal:
        state = self.model.states[symbol]
        return state.inst.tick * self.view.mark_ticks(state)

    def leverage(self, account: Account, symbol: str) -> Decimal:
        return account.leverage.get(symbol, LEVERAGE)

    def position(self, account: Account, symbol: str, idx: int) -> Position:
        key = (symbol, idx)
        if key not in account.positions:
            account.positions[key] = Position(symbol, idx)
        return account.positions[key]

    def unrealised(self, position: Position) -> Decimal:
        if not position.lots:
            return ZERO
        inst = self.model.states[position.symbol].inst
        value = self.mark(position.symbol) * inst.lot * position.lots  # signed
        return value - position.cost * (1 if position.lots > 0 else -1)

    def margin(self, account: Account) -> tuple[Decimal, Decimal, Decimal]:
        """(unrealised PnL, position initial margin, order initial margin) of an account."""
        upl = sum((self.unrealised(p) for p in account.positions.values()), ZERO)
        position_im = sum((p.cost / self.leverage(account, p.symbol) for p in account.positions.values() if p.lots),
                          ZERO)
        order_im = sum((self._order_cost(account, o, o.leaves) for o in account.open_orders() if not o.reduce_only),
                       ZERO)
        return upl, position_im, order_im

    def available(self, account: Account) -> Decimal:
        upl, position_im, order_im = self.margin(account)
        return account.wallet + upl - position_im - order_im

    def _order_cost(self, account: Account, order: Order, lots: int) -> Decimal:
        inst = self.model.states[order.symbol].inst
        value = inst.tick * order.price_ticks * inst.lot * lots
        return value / self.leverage(account, order.symbol) + value * self.rules.taker_fee

    # --- requests -----------------------------------------------------------------------

    def create(self, key: str, request: OrderRequest, now_ms: int) -> Order:
        """Place an order (Bybit's `/v5/order/create`) and match what it crosses. Raises
        Rejected for what Bybit refuses at once: a reused orderLinkId, a positionIdx that
        does not fit the position mode, too many open orders, a reduce-only order with
        nothing to reduce, or too little available balance."""
        account = self.account(key)
        state = self.model.states[request.symbol]
        if request.link_id and self._link_id_taken(account, request.link_id):
            raise Rejected(110072, "OrderLinkedID is duplicate", "duplicate_link_id")
        if request.position_idx not in ((1, 2) if request.symbol in account.hedge_symbols else (0,)):
            raise Rejected(10001, "position idx not match position mode", "position_mode")
        if len(account.open_orders(request.symbol)) >= MAX_OPEN_ORDERS:
            raise Rejected(110020, f"Not allowed to have more than {MAX_OPEN_ORDERS} active orders", "too_many_orders")
        price_ticks = request.price_ticks
        if price_ticks is None:  # a market order may walk 5 % from the touch, like Bybit's slippage band
            bids, asks = self.view.sides(state)
            price_ticks = round(min(asks) * 1.05) if request.side == "Buy" else round(max(bids) * 0.95)
        tif = "IOC" if request.order_type == "Market" else request.tif  # Bybit runs market orders as IOC
        order = Order(self.new_id(), request.link_id, request.symbol, request.side, request.order_type, tif,
                      price_ticks, request.lots, request.reduce_only, request.position_idx, now_ms, now_ms,
                      self.view.last_ticks(state), margin_mode=request.margin_mode)
        position = self.position(account, order.symbol, order.position_idx)
        if order.reduce_only or self._closes_hedge(order):
            self._fit_close(account, order, position)
        elif self._order_cost(account, order, order.lots) > self.available(account):
            raise Rejected(110007, "ab not enough for new order", "insufficient_margin")
        self._apply_partial_fault(order)
        account.orders[order.order_id] = account.open[order.order_id] = order
        if order.link_id:
            account.link_ids[order.link_id] = order.order_id
        self._changes(key).orders[order.order_id] = order
        self._execute(account, order, state, now_ms)
        self._touch_position(key, position, now_ms)  # Bybit pushes the position on every order
        return order

    def _link_id_taken(self, account: Account, link_id: str) -> bool:
        """Bybit refuses an orderLinkId ever used; OKX one an open order still carries."""
        order_id = account.link_ids.get(link_id)
        if order_id is None:
            return False
        return not self.rules.link_ids_reusable or account.orders[order_id].is_open

    def _fit_close(self, account: Account, order: Order, position: Position) -> None:
        """A reduce-only order (or a hedge-mode close) within the position less the closes
        already open: Bybit cuts it to fit, OKX refuses it (`trim_closes`)."""
        reducible = max(0, -order.sign * position.lots)
        if reducible == 0:
            raise Rejected(110017, "current position is zero, cannot fix reduce-only order qty",
                           "same_direction" if position.lots else "no_position")
        reserved = sum(o.leaves for o in account.open_orders(order.symbol)
                       if o.position_idx == order.position_idx and o.side == order.side and o.reduce_only)
        fits = max(0, reducible - reserved)
        if order.lots > fits and not self.rules.trim_closes:
            raise Rejected(110017, "reduce-only order qty exceeds the open position after other reduce-only orders",
                           "close_exceeds")
        order.lots = min(order.lots, fits)
        if order.lots == 0:
            raise Rejected(110017, "reduce-only order qty exceeds the open position after other reduce-only orders",
                           "close_exceeds")
        order.reduce_only = True

    def _execute(self, account: Account, order: Order, state: SymbolState, now_ms: int) -> None:
        """Take what the order crosses; then rest it (GTC) or cancel the rest."""
        bids, asks = self.view.sides(state)
        book = asks if order.sign > 0 else bids
        crosses = [p for p in book if (p <= order.price_ticks if order.sign > 0 else p >= order.price_ticks)]
        if order.tif == "PostOnly" and crosses:
            self._close(account, order, "Cancelled", now_ms, reason="EC_PostOnlyWillTakeLiquidity")
            return
        if self.policy.unfilled:
            return
        if order.tif == "FOK" and sum(book[p] for p in crosses) < self._fillable(order):
            self._close(account, order, "Cancelled", now_ms, reason="EC_NoImmediateQtyToFill")
            return
        for price in sorted(crosses, reverse=order.sign < 0):
            take = min(book[price], self._fillable(order))
            if take <= 0:
                break
            book[price] -= take
            if not book[price]:
                del book[price]
            self._fill(account, order, price, take, is_maker=False, now_ms=now_ms)
        if not order.is_open:
            return
        if order.order_type == "Market" or order.tif in ("IOC", "FOK") or order.cancel_rest:
            reason = "EC_NoError" if order.filled_lots else "EC_NoImmediateQtyToFill"
            self._close(account, order, "Cancelled", now_ms, reason=reason)
        else:
            own = bids if order.sign > 0 else asks
            order.queue_ahead = own.get(order.price_ticks, 0)

    def cancel(self, key: str, request: dict, now_ms: int) -> Order:
        account = self.account(key)
        order = self.find(account, request)
        if order is None or order.symbol != request.get("symbol") or not order.is_open:
            raise Rejected(110001, "order not exists or too late to cancel", "not_found")
        self._close(account, order, "Cancelled", now_ms, cancel_type="CancelByUser")
        return order

    def amend(self, key: str, request: dict, price_ticks: int | None, lots: int | None, now_ms: int) -> Order:
        """A resting limit order's price or size changed (Bybit's `/v5/order/amend`). A new
        price, or more size, sends it to the back of the queue at its price and takes what it
        now crosses, as a new order would (a post-only one that would take is cancelled); less
        size keeps its place."""
        account = self.account(key)
        order = self.find(account, request)
        if order is None or order.symbol != request.get("symbol") or not order.is_open:
            raise Rejected(110001, "order not exists or too late to replace", "not_found")
        new_lots = order.lots if lots is None else lots
        new_price = order.price_ticks if price_ticks is None else price_ticks
        if (new_lots, new_price) == (order.lots, order.price_ticks):
            raise Rejected(10001, "The order remains unchanged as the parameters entered match the existing ones.",
                           "unchanged")
        if new_lots <= order.filled_lots:
            raise Rejected(10001, "params error: qty must be above the quantity already filled", "below_filled")
        if new_lots > order.lots and not order.reduce_only and \
                self._order_cost(account, order, new_lots - order.lots) > self.available(account):
            raise Rejected(110007, "ab not enough for new order", "insufficient_margin")
        requeue = new_price != order.price_ticks or new_lots > order.lots
        order.lots, order.price_ticks, order.updated_ms = new_lots, new_price, now_ms
        self._changes(key).orders[order.order_id] = order
        if requeue:
            order.crossing_seen = 0
            self._execute(account, order, self.model.states[order.symbol], now_ms)
        return order

    def cancel_all(self, key: str, symbol: str | None, now_ms: int) -> list[Order]:
        account = self.account(key)
        cancelled = account.open_orders(symbol)
        for order in cancelled:
            self._close(account, order, "Cancelled", now_ms, cancel_type="CancelByUser")
        return cancelled

    def switch_mode(self, key: str, symbol: str, hedge: bool) -> None:
        account = self.account(key)
        if (symbol in account.hedge_symbols) == hedge:
            raise Rejected(110025, "Position mode is not modified", "mode_not_modified")
        if any(p.lots for (s, _), p in account.positions.items() if s == symbol) or account.open_orders(symbol):
            raise Rejected(110024, "You have an existing position or active orders, "
                                   "so position mode cannot be switched", "mode_busy")
        (account.hedge_symbols.add if hedge else account.hedge_symbols.discard)(symbol)

    def switch_all_modes(self, key: str, hedge: bool) -> None:
        """Every symbol to hedge (or one-way) mode at once, as OKX's account-wide posMode;
        the same mode again is no change."""
        account = self.account(key)
        symbols = set(self.model.states)
        if (account.hedge_symbols >= symbols) if hedge else not account.hedge_symbols:
            return
        if any(p.lots for p in account.positions.values()) or account.open:
            raise Rejected(110024, "You have an existing position or active orders, "
                                   "so position mode cannot be switched", "mode_busy")
        account.hedge_symbols = symbols if hedge else set()

    @staticmethod
    def find(account: Account, request: dict) -> Order | None:
        order_id = request.get("orderId") or account.link_ids.get(request.get("orderLinkId") or "", "")
        return account.orders.get(order_id) if order_id else None

    # --- the market moves ---------------------------------------------------------------

    def on_step(self, now_ms: int) -> None:
        """After the model's step: fill resting orders from its trades, settle funding."""
        for account in self.accounts.values():
            for order in account.open_orders():
                if order.order_type == "Limit" and not self.policy.unfilled:
                    self._match_resting(account, order, self.model.states[order.symbol], now_ms)
        for symbol, state in self.model.states.items():
            if state.fundings and state.fundings[-1][0] != self._funded.get(symbol):
                time_ms, rate = state.fundings[-1]
                self._funded[symbol] = time_ms
                self._settle_funding(symbol, Decimal(f"{self.view.funding_rate(state, rate):.8f}"), now_ms)

    def _match_resting(self, account: Account, order: Order, state: SymbolState, now_ms: int) -> None:
        bids, asks = self.view.sides(state)
        own, other = (bids, asks) if order.sign > 0 else (asks, bids)
        order.queue_ahead = min(order.queue_ahead, own.get(order.price_ticks, 0))
        best_other = (min(other) if order.sign > 0 else max(other)) if other else None
        crossing = book_crossing(order.side, order.price_ticks, best_other, other.get(order.price_ticks, 0),
                                 order.crossing_seen)
        order.crossing_seen = crossing.seen
        if crossing.through:  # everything at the price traded, the queue ahead and this order
            order.queue_ahead = 0
            self._fill(account, order, order.price_ticks, self._fillable(order), is_maker=True, now_ms=now_ms)
        else:
            self._traded_at_price(account, order, crossing.volume, now_ms)
        for trade in self.view.trades(state):
            if not order.is_open:
                break
            if trade.side != order.side and (order.price_ticks - trade.price_ticks) * order.sign >= 0:
                self._traded_at_price(account, order, trade.lots, now_ms)
        if order.filled_lots:
            self._touch_position(account.key, self.position(account, order.symbol, order.position_idx), now_ms)

    def _traded_at_price(self, account: Account, order: Order, lots: int, now_ms: int) -> None:
        """`lots` traded at the order's price (or through it): the queue ahead first, then the order."""
        ahead = min(order.queue_ahead, lots)
        order.queue_ahead -= ahead
        take = min(lots - ahead, self._fillable(order))
        if take > 0:
            self._fill(account, order, order.price_ticks, take, is_maker=True, now_ms=now_ms)

    def _settle_funding(self, symbol: str, rate: Decimal, now_ms: int) -> None:
        inst = self.model.states[symbol].inst
        mark = self.mark(symbol)
        for account in self.accounts.values():
            for position in [p for (s, _), p in account.positions.items() if s == symbol and p.lots]:
                qty = inst.lot * abs(position.lots)
                value = mark * qty
                paid = value * rate * (1 if position.lots > 0 else -1)  # longs pay a positive rate
                account.wallet -= paid
                account.cum_realised -= paid
                position.cur_realised -= paid
                position.cum_realised -= paid
                position.funding += paid
                execution = Execution(self.new_id(), None, symbol, "Buy" if position.lots > 0 else "Sell", "Funding",
                                      mark, qty, value, paid, rate, False, ZERO, 0, 0, mark, now_ms, next(self._seq),
                                      position.idx, account.wallet)
                account.executions.append(execution)
                changes = self._changes(account.key)
                changes.executions.append(execution)
                self._touch_position(account.key, position, now_ms)

    # --- inside -------------------------------------------------------------------------

    def _changes(self, key: str) -> Changes:
        if key not in self.changes:
            self.changes[key] = Changes()
        return self.changes[key]

    def take_changes(self) -> dict[str, Changes]:
        """What changed since the last call, per account key."""
        changes, self.changes = self.changes, {}
        return changes

    def _apply_partial_fault(self, order: Order) -> None:
        fraction, orders = self.policy.partial_fill_fraction, self.policy.partial_fill_orders
        if fraction is None or orders == 0:
            return
        order.cap = fraction
        if orders is not None:
            self.policy.partial_fill_orders = orders - 1
            order.cancel_rest = True

    @staticmethod
    def _fillable(order: Order) -> int:
        """Lots this order may still fill; the partial-fill fault caps it at a share of the size."""
        if order.cap is None:
            return order.leaves
        return max(0, min(order.leaves, int(order.lots * order.cap) - order.filled_lots))

    @staticmethod
    def _closes_hedge(order: Order) -> bool:
        """In hedge mode a Sell on the long side (or a Buy on the short side) only closes."""
        return (order.position_idx, order.sign) in ((1, -1), (2, 1))

    def _fill(self, account: Account, order: Order, price_ticks: int, lots: int, is_maker: bool,
              now_ms: int) -> None:
        if lots <= 0:
            return
        inst = self.model.states[order.symbol].inst
        price = inst.tick * price_ticks
        qty = inst.lot * lots
        value = price * qty
        rate = self.rules.maker_fee if is_maker else self.rules.taker_fee
        fee = value * rate
        position = self.position(account, order.symbol, order.position_idx)
        if not position.lots:
            position.margin_mode = order.margin_mode
        pnl, closed = self._apply(position, order.sign * lots, price, inst, now_ms)
        account.wallet += pnl - fee
        account.cum_realised += pnl - fee
        position.cur_realised += pnl - fee
        position.cum_realised += pnl - fee
        position.fees += fee
        order.filled_lots += lots
        order.cum_value += value
        order.cum_fee += fee
        order.closed_pnl += pnl - fee if closed else ZERO
        order.gross_pnl += pnl
        order.updated_ms = now_ms
        order.status = "Filled" if order.filled_lots == order.lots else "PartiallyFilled"
        execution = Execution(self.new_id(), order, order.symbol, order.side, "Trade", price, qty, value, fee, rate,
                              is_maker, pnl, closed, order.leaves, self.mark(order.symbol), now_ms, next(self._seq),
                              order.position_idx, account.wallet)
        account.executions.append(execution)
        changes = self._changes(account.key)
        changes.executions.append(execution)
        changes.orders[order.order_id] = order
        changes.wallet = True
        if order.status == "Filled":
            account.closed.append(order.order_id)
            del account.open[order.order_id]

    @staticmethod
    def _apply(position: Position, signed_lots: int, price: Decimal, inst: Instrument,
               now_ms: int) -> tuple[Decimal, int]:
        """Fold a fill into a position; returns (realised PnL before fees, lots closed)."""
        if position.lots == 0:
            position.created_ms = now_ms
            position.cur_realised = position.fees = position.funding = ZERO
        if position.lots == 0 or (position.lots > 0) == (signed_lots > 0):
            position.lots += signed_lots
            position.cost += price * inst.lot * abs(signed_lots)
            return ZERO, 0
        size = abs(position.lots)
        closing = min(size, abs(signed_lots))
        share = position.cost if closing == size else (position.cost * closing / size).quantize(COST_PLACES)
        direction = 1 if position.lots > 0 else -1
        pnl = (price * inst.lot * closing - share) * direction
        position.cost -= share
        position.lots += closing * (1 if signed_lots > 0 else -1)
        opening = abs(signed_lots) - closing  # one-way only: the rest opens the other side
        if opening:
            position.lots = opening * (1 if signed_lots > 0 else -1)
            position.cost = price * inst.lot * opening
        return pnl, closing

    def _close(self, account: Account, order: Order, status: str, now_ms: int, reason: str = "EC_NoError",
               cancel_type: str = "UNKNOWN") -> None:
        order.status = status
        order.reject_reason = reason
        order.cancel_type = cancel_type
        order.updated_ms = now_ms
        account.closed.append(order.order_id)
        account.open.pop(order.order_id, None)
        changes = self._changes(account.key)
        changes.orders[order.order_id] = order
        changes.positions[(order.symbol, order.position_idx)] = self.position(account, order.symbol, order.position_idx)

    def _touch_position(self, key: str, position: Position, now_ms: int) -> None:
        position.updated_ms = now_ms
        position.seq = next(self._seq)
        self._changes(key).positions[(position.symbol, position.idx)] = position
