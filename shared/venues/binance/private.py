"""Binance USD-M rows as the trading interface's updates (pure): sizes on the step grid,
order/fill/position/balance/income rows of REST answers, and the user-data stream's events
(protocol-trading-okx-bitget-binance.md §4.3-4.6).

Sizes are base coin everywhere (`quantity`, `executedQty`, `l`, `z`, `positionAmt`);
`to_quantity` floors a base quantity to `stepSize` exactly (never more than asked).

An `ORDER_TRADE_UPDATE` partial fill (NT's fixture, §4.5):

    {"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{"s":"BTCUSDT","c":"TEST",
     "S":"SELL","o":"LIMIT","f":"GTC","q":"0.002","p":"7100.50","ap":"7100.50","x":"TRADE",
     "X":"PARTIALLY_FILLED","i":8886774,"l":"0.001","z":"0.001","L":"7100.50","N":"USDT","n":"0.00284",
     "T":1568879465650,"t":12345678,"m":true,"R":false,"ps":"LONG","rp":"0"}}

Orders: `X` / `status` NEW and PARTIALLY_FILLED -> open, FILLED -> filled, CANCELED, EXPIRED and
EXPIRED_IN_MATCH -> cancelled (a GTX order expired unfilled is kind "post_only": Binance now
refuses such an order with -5022 instead, this is for the older behaviour), REJECTED -> rejected.
An event with `x` TRADE is also a fill: `t` its id, `l`/`L` size and price, `n` the commission
(> 0 paid, in `N`), `m` maker.

- `ACCOUNT_UPDATE`: each `P` row is a position (`pa` signed in one-way mode; `ps` LONG/SHORT in
  hedge mode). Its `B` rows hold the wallet balance only (no unrealised PnL, no available
  balance), so they make no BalanceUpdate: `balance()` reads both. A `m:"FUNDING_FEE"` update
  carries no ledger id (and for cross positions no position), so funding is read from the
  income ledger (`funding_on_stream` is False) and the event gives no FundingUpdate.
- `TRADE_LITE` is ignored: the same fill comes in `ORDER_TRADE_UPDATE`, with its commission.
- `listenKeyExpired` is the stream's business (stream.py gets a new key); other events
  (ACCOUNT_CONFIG_UPDATE, MARGIN_CALL, ALGO_UPDATE, ...) are not the executor's.
Malformed rows are returned as skipped (kind, why, row), never raised.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from decimal import Decimal

from shared.instruments import Instrument, canonical
from shared.venues.trading import (
    BadRow,
    BalanceUpdate,
    FillUpdate,
    FundingUpdate,
    Kind,
    OrderUpdate,
    PositionUpdate,
    Side,
    Skipped,
    Status,
    StreamUpdate,
    decimal_field,
    read_rows,
    text_field,
)

SETTLE = "USDT"
STATUSES: dict[str, Status] = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "filled", "CANCELED": "cancelled",
                               "EXPIRED": "cancelled", "EXPIRED_IN_MATCH": "cancelled", "REJECTED": "rejected"}
EXPIRY_REASONS = {"1": "self-trade prevention", "2": "IOC remainder cancelled", "3": "IOC remainder (self-trade)",
                  "4": "knocked out by a reduce-only order", "5": "liquidation", "6": "GTE condition",
                  "7": "symbol delisted", "8": "stop order triggered", "9": "market order remainder cancelled"}
POSITION_SIDES = {"LONG": "long", "SHORT": "short", "BOTH": None}
IGNORED_EVENTS = frozenset({"TRADE_LITE", "listenKeyExpired", "ACCOUNT_CONFIG_UPDATE", "MARGIN_CALL", "ALGO_UPDATE",
                            "STRATEGY_UPDATE", "GRID_UPDATE", "CONDITIONAL_ORDER_TRIGGER_REJECT"})
_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow,
                                          decimal.DivisionByZero])


def to_quantity(qty: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` that is at most `qty` (0 for qty <= 0); exact."""
    if qty <= 0:
        return Decimal(0)
    return _EXACT.multiply(_EXACT.divide_int(qty, step), step)  # divide_int: the quotient's integer part, exact


def on_grid(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a whole number of `step`s."""
    return _EXACT.remainder(value, step) == 0


def _ms(row: dict, *names: str) -> int:
    """The first of `names` that holds an epoch in ms (a number or its digits); 0 when none does."""
    for name in names:
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**17:
            return value
        if isinstance(value, str) and value.isdigit() and len(value) < 18:
            return int(value)
    return 0


def _id(row: dict, name: str) -> str:
    """An id Binance sends as a number (orderId, tradeId, tranId) or a string, as text."""
    value = row.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise BadRow(f"{name}={value!r}")


class Rows:
    """Reads Binance rows with the instruments (by Binance's symbol) and the link ids at hand."""

    def __init__(self, by_venue_symbol: Mapping[str, Instrument], link_of: Callable[[str], str]) -> None:
        self.by_venue_symbol = by_venue_symbol
        self.link_of = link_of

    def instrument(self, row: dict, name: str = "symbol") -> Instrument:
        symbol = text_field(row, name)
        inst = self.by_venue_symbol.get(symbol)
        if inst is None:
            raise BadRow(f"{name}={symbol!r} is not an instrument of this client")
        return inst

    def _symbol(self, row: dict, name: str = "symbol") -> str:
        """The canonical symbol of a row's Binance symbol, instrument of this client or not."""
        symbol = text_field(row, name)
        inst = self.by_venue_symbol.get(symbol)
        return inst.symbol if inst else canonical(symbol.removesuffix("USDT")) if symbol.endswith("USDT") else symbol

    @staticmethod
    def _status(status: object, tif: object, filled: Decimal,
                reason_code: object = None) -> tuple[Status, str, Kind | None]:
        found = STATUSES.get(status) if isinstance(status, str) else None
        if found is None:
            raise BadRow(f"status={status!r}")
        reason, kind = "", None
        if found in ("cancelled", "rejected"):
            reason = status
            if isinstance(reason_code, str | int) and str(reason_code) in EXPIRY_REASONS:
                reason = f"{status}: {EXPIRY_REASONS[str(reason_code)]}"
            if status == "EXPIRED" and tif == "GTX" and not filled:
                reason, kind = f"{status}: a post-only (GTX) order that would have taken", "post_only"
        return found, reason, kind

    def order(self, row: dict) -> OrderUpdate:
        """A REST order object (GET/POST/DELETE /fapi/v1/order, /fapi/v1/openOrders)."""
        inst = self.instrument(row)
        filled = decimal_field(row, "executedQty") if row.get("executedQty") not in (None, "") else Decimal(0)
        status, reason, kind = self._status(row.get("status"), row.get("timeInForce"), filled)
        client = row.get("clientOrderId") if isinstance(row.get("clientOrderId"), str) else ""
        return OrderUpdate(link_id=self.link_of(client), order_id=_id(row, "orderId"), symbol=inst.symbol,
                           status=status, filled_qty=filled, reason=reason, kind=kind)

    def fill(self, row: dict, link_id: str) -> FillUpdate:
        """A row of GET /fapi/v1/userTrades. Its `commission` is taken as paid whatever its sign
        (UNSURE: the docs' example prints it negative, real answers positive; USD-M has no maker
        rebate for ordinary accounts)."""
        inst = self.instrument(row)
        return FillUpdate(link_id=link_id, fill_id=_id(row, "id"), symbol=inst.symbol,
                          qty=decimal_field(row, "qty", positive=True),
                          price=decimal_field(row, "price", positive=True),
                          fee=abs(decimal_field(row, "commission", low=None)), maker=row.get("maker") is True,
                          ts_ms=_ms(row, "time"))

    def position(self, row: dict) -> PositionUpdate:
        """A row of GET /fapi/v3/positionRisk: LONG/SHORT sides in hedge mode, BOTH signed in one-way."""
        return self._position(row, "symbol", "positionSide", "positionAmt")

    def _position(self, row: dict, symbol: str, side_name: str, amount: str) -> PositionUpdate:
        inst = self.instrument(row, symbol)
        side = row.get(side_name, "BOTH")
        if side not in POSITION_SIDES:
            raise BadRow(f"{side_name}={side!r}")
        qty = decimal_field(row, amount, low=None)
        hedge = POSITION_SIDES[side]
        if hedge is not None:
            qty = abs(qty) if hedge == "long" else -abs(qty)
        return PositionUpdate(symbol=inst.symbol, qty=qty, position_side=hedge)

    @staticmethod
    def balance(rows: object, currency: str = SETTLE) -> BalanceUpdate | None:
        """The `currency` row of GET /fapi/v3/balance: equity = wallet balance + unrealised PnL,
        available = `availableBalance`; None when there is no such row."""
        if not isinstance(rows, list):
            raise BadRow("the balance answer is not a list")
        for row in rows:
            if isinstance(row, dict) and row.get("asset") == currency:
                upl = decimal_field(row, "crossUnPnl", low=None) if row.get("crossUnPnl") else Decimal(0)
                return BalanceUpdate(currency=currency, equity=decimal_field(row, "balance", low=None) + upl,
                                     available=decimal_field(row, "availableBalance", low=None))
        return None

    def funding(self, row: dict, side: Side) -> FundingUpdate:
        """A FUNDING_FEE row of GET /fapi/v1/income: `income` < 0 paid, so amount = -income."""
        if row.get("incomeType") != "FUNDING_FEE":
            raise BadRow(f"incomeType={row.get('incomeType')!r}")
        return FundingUpdate(funding_id=_id(row, "tranId"), symbol=self._symbol(row), side=side,
                             amount=-decimal_field(row, "income", low=None), ts_ms=_ms(row, "time"))

    # ------------------------------------------------------------------ the user-data stream

    def message(self, message: object) -> tuple[list[StreamUpdate], Skipped]:
        """A user-data event as updates, and the rows skipped as malformed."""
        if not isinstance(message, dict):
            return [], [("message", "not an object", message)]
        event = message.get("e")
        if event == "ORDER_TRADE_UPDATE":
            row = message.get("o")
            try:
                if not isinstance(row, dict):
                    raise BadRow("o is not an object")
                return self._order_event(row, message)
            except (BadRow, ArithmeticError) as exc:
                return [], [("order", str(exc) or type(exc).__name__, row)]
        if event == "ACCOUNT_UPDATE":
            return self._account_event(message)
        if isinstance(event, str) and event:
            return [], []  # IGNORED_EVENTS and any event not the executor's
        if "result" in message or "id" in message:
            return [], []  # an answer to a request on the socket
        return [], [("message", "no event type", message)]

    def _order_event(self, row: dict, message: dict) -> tuple[list[StreamUpdate], Skipped]:
        inst = self.instrument(row, "s")
        filled = decimal_field(row, "z") if row.get("z") not in (None, "") else Decimal(0)
        status, reason, kind = self._status(row.get("X"), row.get("f"), filled, row.get("er"))
        client = row.get("c") if isinstance(row.get("c"), str) else ""
        order = OrderUpdate(link_id=self.link_of(client), order_id=_id(row, "i"), symbol=inst.symbol, status=status,
                            filled_qty=filled, reason=reason, kind=kind)
        if row.get("x") != "TRADE":
            return [order], []
        try:
            fill = FillUpdate(link_id=order.link_id, fill_id=_id(row, "t"), symbol=inst.symbol,
                              qty=decimal_field(row, "l", positive=True), price=decimal_field(row, "L", positive=True),
                              fee=decimal_field(row, "n", low=None) if row.get("n") not in (None, "") else Decimal(0),
                              maker=row.get("m") is True,
                              ts_ms=_ms(row, "T") or _ms(message, "T") or _ms(message, "E"))
        except (BadRow, ArithmeticError) as exc:  # the order's state still counts; its fills come by REST
            return [order], [("fill", str(exc) or type(exc).__name__, row)]
        return [fill, order], []

    def _account_event(self, message: dict) -> tuple[list[StreamUpdate], Skipped]:
        account = message.get("a")
        if not isinstance(account, dict):
            return [], [("account", "a is not an object", message)]
        rows = account.get("P") or []
        if not isinstance(rows, list):
            return [], [("account", "P is not a list", message)]
        return read_rows(rows, lambda row, _: [self._position(row, "s", "ps", "pa")], "position")
