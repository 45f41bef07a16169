"""Bitget V2 mix rows as the trading interface's updates (pure): sizes on the lot grid, and the
order/fill/position/balance/bill rows of REST answers and private-stream pushes
(protocol-trading-okx-bitget-binance.md §3.3-3.6).

Sizes are base coin everywhere at Bitget (`size`, `baseVolume`, `accBaseVolume`, `total`):
`floor_size` floors a quantity to the `sizeMultiplier` grid exactly (never more than asked),
`grid_price` puts a price on the tick (`priceEndStep` x 10^-`pricePlace`) never worse than asked.

An `orders` push (HB's test, trimmed; §3.5):

    {"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"orders","instId":"default"},
     "data":[{"orderId":"1640b725","clientOid":"abc","instId":"BTCUSDT","side":"buy","posSide":"long",
     "tradeSide":"open","force":"gtc","size":"20","status":"partially_filled","accBaseVolume":"10",
     "baseVolume":"10","fillPrice":"100","tradeId":"1111111111","fillTime":"1695718781146",
     "fillFee":"-0.1","fillFeeCoin":"USDT","tradeScope":"T","cancelReason":"normal_cancel",...}],"ts":1695718781206}

Field names differ between REST and the stream: an order's state is `state` in the REST
detail and `status` in `orders-pending` and the push; its symbol `symbol` in REST and `instId`
in the push; its filled size `baseVolume` in REST but `accBaseVolume` in the push (where
`baseVolume` is the last fill). States live/partially_filled -> open, filled -> filled,
canceled/cancelled -> cancelled. A post-only (`force` post_only) cancelled with nothing filled
and not cancelled by this client is kind "post_only": Bitget accepts it and cancels it at once
(§3.4, §5.3) and documents no cancel reason for that (UNSURE).

An order's `side` in hedge mode is the *position* direction (close long = buy + close); a
`fill` push's `side` is the trade direction. Fees are negative when paid on Bitget (`fillFee`,
`feeDetail[].totalFee`): the interface's fee is the negation. Malformed rows are returned as
skipped (kind, why, row), never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from shared.instruments import Instrument
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

STATES = {"live": "open", "new": "open", "init": "open", "partially_filled": "open", "filled": "filled",
          "canceled": "cancelled", "cancelled": "cancelled"}


def floor_size(qty: Decimal, lot: Decimal) -> Decimal:
    """The largest multiple of `lot` that is at most `qty` (0 for qty <= 0), exactly."""
    if qty <= 0:
        return Decimal(0)
    return (qty / lot).to_integral_value(rounding=ROUND_FLOOR) * lot


def grid_price(price: Decimal, tick: Decimal, side: Side) -> Decimal:
    """`price` on the tick grid, never worse for the order: a buy's rounded down, a sell's up."""
    steps = (price / tick).to_integral_value(rounding=ROUND_FLOOR if side == "Buy" else ROUND_CEILING)
    return steps * tick


def _ms(row: dict, *names: str) -> int:
    """The first of `names` that holds an epoch in ms; 0 when none does."""
    for name in names:
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isdigit() and len(value) < 18:
            return int(value)
    return 0


def _total_fee(row: dict) -> Decimal:
    """A fill's fee as Bitget gives it (negative when paid): the sum of `feeDetail[].totalFee`."""
    details = row.get("feeDetail")
    if not isinstance(details, list) or not details:
        raise BadRow("feeDetail missing")
    total = Decimal(0)
    for detail in details:
        if not isinstance(detail, dict):
            raise BadRow("feeDetail row is not an object")
        name = "totalFee" if "totalFee" in detail else "fee"
        total += decimal_field(detail, name, low=None)
    return total


def _maker(row: dict) -> bool:
    return row.get("tradeScope") in ("maker", "M", "m")


class Rows:
    """Reads Bitget rows with the instruments (by Bitget's symbol), the client ids' link ids, and
    which link ids this client asked to cancel at hand."""

    def __init__(self, by_venue_symbol: Mapping[str, Instrument], link_of: Callable[[str], str],
                 cancel_asked: Callable[[str], bool] = lambda link_id: False) -> None:
        self.by_venue_symbol = by_venue_symbol
        self.link_of = link_of
        self.cancel_asked = cancel_asked

    def instrument(self, row: dict, *names: str) -> Instrument:
        """The instrument the row names (the first of `names` present: `symbol`, `instId`)."""
        name = next((n for n in names if row.get(n)), names[0])
        venue_symbol = text_field(row, name)
        inst = self.by_venue_symbol.get(venue_symbol)
        if inst is None:
            raise BadRow(f"{name}={venue_symbol!r} is not an instrument of this client")
        return inst

    def order(self, row: dict) -> OrderUpdate:
        """An order row: the REST detail (`state`, `baseVolume` filled), `orders-pending` (`status`,
        `baseVolume`) or an `orders` push (`status`, `accBaseVolume`)."""
        inst = self.instrument(row, "symbol", "instId")
        pushed = "accBaseVolume" in row
        state = row.get("state") if "state" in row else row.get("status")
        status = STATES.get(state) if isinstance(state, str) else None
        if status is None:
            raise BadRow(f"state={state!r}")
        filled_name = "accBaseVolume" if pushed else "baseVolume"
        filled = decimal_field(row, filled_name) if row.get(filled_name) else Decimal(0)
        client_oid = row.get("clientOid") if isinstance(row.get("clientOid"), str) else ""
        link_id = self.link_of(client_oid)
        reason, kind = "", None
        if status == "cancelled":
            why = row.get("cancelReason") if isinstance(row.get("cancelReason"), str) else ""
            reason = f"{state}: {why}" if why else str(state)
            if row.get("force") == "post_only" and not filled and not self.cancel_asked(link_id):
                kind, reason = "post_only", f"{reason} (a post-only order that would have taken)"
        return OrderUpdate(link_id=link_id, order_id=text_field(row, "orderId"), symbol=inst.symbol,
                           status=status, filled_qty=filled, reason=reason, kind=kind)

    def pushed_fill(self, row: dict, link_id: str) -> FillUpdate | None:
        """The fill an `orders` push carries (`tradeId`, `baseVolume`, `fillPrice`, `fillFee`), or None."""
        trade_id = row.get("tradeId")
        if not isinstance(trade_id, str) or not trade_id or not row.get("baseVolume"):
            return None
        if decimal_field(row, "baseVolume") == 0:
            return None
        if "fillFee" not in row:  # its feeDetail is the order's fee so far, not this fill's: the fill channel says
            return None
        inst = self.instrument(row, "instId", "symbol")
        fee = -decimal_field(row, "fillFee", low=None)
        return FillUpdate(link_id=link_id, fill_id=trade_id, symbol=inst.symbol,
                          qty=decimal_field(row, "baseVolume", positive=True),
                          price=decimal_field(row, "fillPrice", positive=True), fee=fee, maker=_maker(row),
                          ts_ms=_ms(row, "fillTime", "uTime"))

    def fill(self, row: dict, link_id: str | None = None) -> FillUpdate:
        """A row of `GET /api/v2/mix/order/fills` or of the `fill` channel (whose `clientOid` gives
        the link id when `link_id` is None)."""
        inst = self.instrument(row, "symbol", "instId")
        if link_id is None:
            client_oid = row.get("clientOid") if isinstance(row.get("clientOid"), str) else ""
            link_id = self.link_of(client_oid)
        return FillUpdate(link_id=link_id, fill_id=text_field(row, "tradeId"), symbol=inst.symbol,
                          qty=decimal_field(row, "baseVolume", positive=True),
                          price=decimal_field(row, "price", positive=True), fee=-_total_fee(row),
                          maker=_maker(row), ts_ms=_ms(row, "cTime", "uTime"))

    def position(self, row: dict) -> PositionUpdate:
        """A position row (REST `all-position` or the `positions` push): `total` >= 0 per
        `holdSide`; in one-way mode the side is the position's direction and position_side None."""
        inst = self.instrument(row, "symbol", "instId")
        side = row.get("holdSide")
        if side not in ("long", "short"):
            raise BadRow(f"holdSide={side!r}")
        qty = decimal_field(row, "total")
        signed = qty if side == "long" else -qty
        hedge = row.get("posMode") != "one_way_mode"
        return PositionUpdate(symbol=inst.symbol, qty=signed, position_side=side if hedge else None)

    @staticmethod
    def balance(row: dict) -> BalanceUpdate:
        """A margin-coin row: REST `accounts` (`accountEquity`) or the `account` push (`equity`)."""
        equity = "accountEquity" if "accountEquity" in row else "equity"
        return BalanceUpdate(currency=text_field(row, "marginCoin"), equity=decimal_field(row, equity, low=None),
                             available=decimal_field(row, "available", low=None))

    def funding(self, row: dict, side: Side) -> FundingUpdate:
        """A `contract_settle_fee` bill: `amount` is negative when paid; paid > 0 here."""
        if row.get("businessType") != "contract_settle_fee":
            raise BadRow(f"businessType={row.get('businessType')!r}")
        inst = self.by_venue_symbol.get(text_field(row, "symbol"))
        symbol = inst.symbol if inst else row["symbol"]
        return FundingUpdate(funding_id=text_field(row, "billId"), symbol=symbol, side=side,
                             amount=-decimal_field(row, "amount", low=None), ts_ms=_ms(row, "cTime"))

    # ------------------------------------------------------------------ the private stream

    def message(self, message: object) -> tuple[list[StreamUpdate], Skipped]:
        """A private-stream message as updates, and the rows skipped as malformed. An empty
        `positions` snapshot (no position open) gives no update: without a symbol it names none."""
        if message == "pong":
            return [], []
        if not isinstance(message, dict):
            return [], [("message", "not an object", message)]
        if "event" in message:
            return [], []  # login, subscribe, error: the stream's own business
        arg, rows = message.get("arg"), message.get("data")
        channel = arg.get("channel") if isinstance(arg, dict) else None
        if not isinstance(channel, str) or not isinstance(rows, list):
            return [], [("message", "no channel or no data list", message)]
        read = {"orders": self._order_rows, "fill": self._fill_row, "positions": self._position_row,
                "account": self._account_row}.get(channel)
        if read is None:
            return [], []
        return read_rows(rows, read, channel)

    def _order_rows(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        order = self.order(row)
        return with_fill(order, lambda: self.pushed_fill(row, order.link_id), row, skipped)

    def _fill_row(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        return [self.fill(row)]

    def _position_row(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        return [self.position(row)]

    def _account_row(self, row: dict, skipped: Skipped) -> list[StreamUpdate]:
        return [self.balance(row)]
