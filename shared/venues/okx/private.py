"""OKX V5 rows as the trading interface's updates (pure): sizes in contracts to base units and
back, order/fill/position/balance/bill rows of REST answers and private-stream pushes
(protocol-trading-okx-bitget-binance.md §2.5-2.8).

Sizes: OKX counts contracts everywhere (`sz`, `fillSz`, `accFillSz`, `pos`); a linear contract
is `ctVal` base units. `to_contracts` floors a base quantity to the lot grid exactly (never more
than asked); `to_base` multiplies back exactly.

A real `orders` push (NT's capture, trimmed; §2.7):

    {"arg":{"channel":"orders","instType":"SWAP"},"data":[{"accFillSz":"0.03","avgPx":"103698.9",
     "cancelSource":"","clOrdId":"001BTCUSDT20250106001","execType":"M","fee":"-0.021776769","feeCcy":"USDT",
     "fillPx":"103698.9","fillSz":"0.03","fillTime":"1746947317402","instId":"BTC-USDT-SWAP",
     "ordId":"2497956918703120384","ordType":"market","posSide":"long","side":"buy","state":"filled",
     "sz":"0.03","tradeId":"1518905529","uTime":"1746947317402"}]}

Orders: state live/partially_filled -> open, filled -> filled, canceled/mmp_canceled ->
cancelled (cancelSource 31, a post-only that would have taken, is kind "post_only"); a row with
a `tradeId` and `fillSz` > 0 is also a fill (fee = -fillFee: OKX's fee is negative when paid).
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
    OrderUpdate,
    PositionUpdate,
    Side,
    Skipped,
    StreamUpdate,
    decimal_field,
    read_rows,
    text_field,
    with_fill,
)

SETTLE = "USDT"
STATES = {"live": "open", "partially_filled": "open", "filled": "filled", "canceled": "cancelled",
          "mmp_canceled": "cancelled"}
POST_ONLY_TOOK = "31"  # cancelSource: "The post-only order will take liquidity in taker orders"
CANCEL_SOURCES = {  # [OKX:order-book-trading-trade-ws-order-channel], abridged
    "0": "canceled by system", "1": "canceled by user", "2": "reduce-only order canceled: insufficient margin",
    "3": "risk cancellation (maintenance margin)", "6": "ADL cancellation", "9": "insufficient balance after funding",
    "13": "FOK not fully filled", "14": "IOC remainder canceled", "15": "price beyond the limit",
    "17": "position already closed at market", "20": "cancel-all-after triggered",
    "22": "reduce-only canceled for a better price", "23": "reduce-only canceled for a better price",
    "27": "counterparty price difference over 5%", POST_ONLY_TOOK: "post-only order would take liquidity",
    "32": "self-trade prevention", "33": "over the maximum matches per taker order",
}
_EXACT = decimal.Context(prec=200, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow,
                                          decimal.DivisionByZero])


def to_contracts(qty: Decimal, ct_val: Decimal, lot: Decimal) -> Decimal:
    """The most contracts, a multiple of `lot`, whose base quantity (contracts * ct_val) is at
    most `qty`; exact (an inexact step raises instead of rounding)."""
    if qty <= 0:
        return Decimal(0)
    step = _EXACT.multiply(ct_val, lot)  # base units per lot
    return _EXACT.multiply(_EXACT.divide_int(qty, step), lot)  # divide_int: the quotient's integer part, exact


def to_base(contracts: Decimal, ct_val: Decimal) -> Decimal:
    """Contracts as base units, exactly."""
    return _EXACT.multiply(contracts, ct_val)


def _ms(row: dict, *names: str) -> int:
    """The first of `names` that holds an epoch in ms; 0 when none does."""
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.isdigit() and len(value) < 18:
            return int(value)
    return 0


class Rows:
    """Reads OKX rows with the instruments (by instId) and the client ids' link ids at hand."""

    def __init__(self, by_inst_id: Mapping[str, Instrument], link_of: Callable[[str], str]) -> None:
        self.by_inst_id = by_inst_id
        self.link_of = link_of

    def instrument(self, row: dict) -> Instrument:
        inst_id = text_field(row, "instId")
        inst = self.by_inst_id.get(inst_id)
        if inst is None:
            raise BadRow(f"instId={inst_id!r} is not an instrument of this client")
        return inst

    def base(self, row: dict, name: str, inst: Instrument, low: Decimal | None = Decimal(0),
             positive: bool = False) -> Decimal:
        """`row[name]` in contracts, as base units (BadRow when not a finite decimal >= low)."""
        try:
            value = to_base(decimal_field(row, name, low=low), inst.contract_size)
        except ArithmeticError:
            raise BadRow(f"{name}={row.get(name)!r}") from None
        if positive and not value > 0:
            raise BadRow(f"{name}={row.get(name)!r}")
        return value

    def order(self, row: dict) -> OrderUpdate:
        """An order row (REST order details / orders-pending, or an orders push)."""
        inst = self.instrument(row)
        state = row.get("state")
        status = STATES.get(state) if isinstance(state, str) else None
        if status is None:
            raise BadRow(f"state={state!r}")
        filled = self.base(row, "accFillSz", inst) if row.get("accFillSz") else Decimal(0)
        reason, kind = "", None
        if status == "cancelled":
            source = row.get("cancelSource") if isinstance(row.get("cancelSource"), str) else ""
            words = row.get("cancelSourceReason") if isinstance(row.get("cancelSourceReason"), str) else ""
            reason = f"cancelSource {source}: {words or CANCEL_SOURCES.get(source, 'canceled')}" if source else state
            kind = "post_only" if source == POST_ONLY_TOOK else None
        cl_ord_id = row.get("clOrdId") if isinstance(row.get("clOrdId"), str) else ""
        return OrderUpdate(link_id=self.link_of(cl_ord_id), order_id=text_field(row, "ordId"), symbol=inst.symbol,
                           status=status, filled_qty=filled, reason=reason, kind=kind)

    def pushed_fill(self, row: dict, link_id: str) -> FillUpdate | None:
        """The fill an orders push carries (its `tradeId`, `fillSz`, `fillPx`, `fillFee`), or None."""
        trade_id = row.get("tradeId")
        if not isinstance(trade_id, str) or not trade_id or not row.get("fillSz"):
            return None
        inst = self.instrument(row)
        if decimal_field(row, "fillSz") == 0:
            return None  # a market order's "filled" may say fillSz 0 (§2.6)
        qty = self.base(row, "fillSz", inst, positive=True)
        if "fillFee" in row:
            fee = -decimal_field(row, "fillFee", low=None)
        elif row.get("accFillSz") == row.get("fillSz"):  # the order's first fill: its fee so far is this fill's
            fee = -decimal_field(row, "fee", low=None)
        else:
            raise BadRow("fillFee missing on a later fill")
        return FillUpdate(link_id=link_id, fill_id=trade_id, symbol=inst.symbol, qty=qty,
                          price=decimal_field(row, "fillPx", positive=True), fee=fee, maker=row.get("execType") == "M",
                          ts_ms=_ms(row, "fillTime", "uTime"))

    def fill(self, row: dict, link_id: str) -> FillUpdate:
        """A row of GET /api/v5/trade/fills."""
        inst = self.instrument(row)
        return FillUpdate(link_id=link_id, fill_id=text_field(row, "tradeId"), symbol=inst.symbol,
                          qty=self.base(row, "fillSz", inst, positive=True),
                          price=decimal_field(row, "fillPx", positive=True), fee=-decimal_field(row, "fee", low=None),
                          maker=row.get("execType") == "M", ts_ms=_ms(row, "fillTime", "ts"))

    def position(self, row: dict) -> PositionUpdate:
        """A position row: long/short mode's `pos` is >= 0 per side; net mode's is signed."""
        inst = self.instrument(row)
        side = row.get("posSide")
        if side not in ("long", "short", "net"):
            raise BadRow(f"posSide={side!r}")
        qty = self.base(row, "pos", inst, low=None)
        if side == "net":
            return PositionUpdate(symbol=inst.symbol, qty=qty, position_side=None)
        return PositionUpdate(symbol=inst.symbol, qty=abs(qty) if side == "long" else -abs(qty), position_side=side)

    @staticmethod
    def balance(details: object, currency: str = SETTLE) -> BalanceUpdate | None:
        """The `currency` row of a balance's `details`, or None when it has none."""
        if not isinstance(details, list):
            raise BadRow("details is not a list")
        for row in details:
            if isinstance(row, dict) and row.get("ccy") == currency:
                available = "availEq" if row.get("availEq") else "availBal"
                return BalanceUpdate(currency=currency, equity=decimal_field(row, "eq", low=None),
                                     available=decimal_field(row, available, low=None))
        return None

    def funding(self, row: dict, side: Side) -> FundingUpdate:
        """A funding bill (type 8; subType 173 expense, 174 income): paid > 0."""
        inst_id = text_field(row, "instId")
        inst = self.by_inst_id.get(inst_id)
        parts = inst_id.split("-")
        symbol = inst.symbol if inst else canonical(parts[0], parts[1]) if len(parts) > 2 else inst_id
        return FundingUpdate(funding_id=text_field(row, "billId"), symbol=symbol, side=side,
                             amount=-decimal_field(row, "balChg", low=None), ts_ms=_ms(row, "ts"))

    # ------------------------------------------------------------------ the private stream

    def message(self, message: object) -> tuple[list[StreamUpdate], Skipped]:
        """A private-stream message as updates, and the rows skipped as malformed."""
        if message == "pong":
            return [], []
        if not isinstance(message, dict):
            return [], [("message", "not an object", message)]
        if "event" in message:
            return [], []  # login, subscribe, error, notice: the stream's own business
        arg, rows = message.get("arg"), message.get("data")
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if not isinstance(channel, str) or not isinstance(rows, list):
            return [], [("message", "no channel or no data list", message)]
        read = {"orders": self._order_rows, "positions": self._position_row, "account": self._account_row}.get(channel)
        if read is None:
            return [], []
        return read_rows(rows, read, channel)

    def _order_rows(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        order = self.order(row)
        return with_fill(order, lambda: self.pushed_fill(row, order.link_id), row, skipped)

    def _position_row(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        return [self.position(row)]

    def _account_row(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        balance = self.balance(row.get("details"))
        return [] if balance is None else [balance]
