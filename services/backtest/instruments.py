"""Each symbol's lot size, minimum order and tick, from a saved instruments answer, and the
quantity an order of some notional can have at every venue at once (pure, exact).

`load_instruments(path)` reads, told apart by their shape (a `.gz` file is read the same way):

- Bybit `/v5/market/instruments-info?category=linear`: the whole body
  (`{"retCode": 0, "result": {"list": [...], "nextPageCursor": ...}}`), its `result`, or a JSON
  list of such pages (`arb history instruments` saves the pages merged into one body). Per row:
  `lotSizeFilter.qtyStep`, `minOrderQty`, `minNotionalValue`, `priceFilter.tickSize`, and
  `lotSizeFilter.maxMktOrderQty` when there is one.
- Binance USD-M `/fapi/v1/exchangeInfo` (`{"symbols": [...]}`): per symbol, `LOT_SIZE{stepSize,
  minQty, maxQty}`, `MIN_NOTIONAL{notional}`, `PRICE_FILTER{tickSize}`, and `MARKET_LOT_SIZE`
  when there is one. The backtest's fills are market orders, which must meet both lot filters:
  the step is the least common multiple of the two steps, the minimum the larger minimum, the
  maximum the smaller maximum (a step or maximum of 0 sets no rule).

Which rows are kept: perpetuals only (Bybit `contractType` LinearPerpetual, Binance PERPETUAL),
of every `status`. A live order needs a trading symbol, but a backtest over history needs the
lot of a symbol that has been delisted since, and exchangeInfo still lists those (SETTLING,
CLOSE); dated futures are left out, as they have no funding. Every kept row must be whole: a
perpetual with a field missing or not a number stops the load (`InstrumentError`, naming the
file, the symbol and the field), never a silent skip; so do a Bybit `category` other than
linear (inverse quantities are contracts, not coins), a symbol listed twice with different
lots, and an answer with no perpetual in it.

`order_qty(notional, price, lots)` is the largest quantity at most notional / price that is a
multiple of every venue's step (their least common multiple: 0.01 and 0.001 give 0.01, 0.1 and
0.25 give 0.5) and at most every venue's maximum, or None when that quantity is below some
venue's minimum quantity or minimum notional; `size_order` gives the same with the reason.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path


class InstrumentError(ValueError):
    """An instruments file that cannot be read as a Bybit or Binance answer; the message names
    the file and what is wrong."""


@dataclass(frozen=True)
class Lot:
    qty_step: Decimal  # an order's quantity is a whole number of these
    min_qty: Decimal
    min_notional: Decimal  # qty x price must reach this (USDT)
    tick: Decimal  # prices are whole numbers of these
    max_qty: Decimal | None = None  # a market order's largest quantity; None: no limit known
    venue: str = ""  # for the reasons order_qty gives
    symbol: str = ""


@dataclass(frozen=True)
class Sized:
    """What `size_order` found: the quantity, or None and why it cannot be ordered. With a
    quantity, `reason` says which maximum made it smaller than notional / price allows ('' when
    none did)."""

    qty: Decimal | None
    reason: str = ""


BYBIT_PERPETUAL = "LinearPerpetual"
BINANCE_PERPETUAL = "PERPETUAL"


def load_instruments(path: str | Path) -> dict[str, Lot]:
    """Symbol -> its lot, from a saved Bybit instruments-info or Binance exchangeInfo answer."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InstrumentError(f"{path}: {exc.strerror}") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        answer = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:  # a broken gzip stream, not UTF-8, not JSON
        raise InstrumentError(f"{path}: not JSON ({exc})") from None
    try:
        lots = _binance(answer) if isinstance(answer, dict) and "symbols" in answer else _bybit(answer)
    except InstrumentError as exc:
        raise InstrumentError(f"{path}: {exc}") from None
    if not lots:
        raise InstrumentError(f"{path}: lists no perpetual")
    return lots


def _bybit(answer) -> dict[str, Lot]:
    pages = answer if isinstance(answer, list) else [answer]
    lots: dict[str, Lot] = {}
    for page in pages:
        for row in _bybit_result(page)["list"]:
            if _text(row, "contractType") == BYBIT_PERPETUAL:
                symbol = _text(row, "symbol")
                lot = Lot(_number(symbol, row, "lotSizeFilter", "qtyStep", positive=True),
                          _number(symbol, row, "lotSizeFilter", "minOrderQty"),
                          _number(symbol, row, "lotSizeFilter", "minNotionalValue"),
                          _number(symbol, row, "priceFilter", "tickSize", positive=True),
                          _optional(symbol, row, "lotSizeFilter", "maxMktOrderQty") or None, "bybit", symbol)
                _add(lots, lot)
    return lots


def _bybit_result(page) -> dict:
    """A page's `result`, from the whole body or the result itself."""
    if isinstance(page, dict) and "retCode" in page:
        if page["retCode"] != 0:
            raise InstrumentError(f"Bybit answered retCode {page['retCode']}: {page.get('retMsg')}")
        page = page.get("result")
    if not isinstance(page, dict) or not isinstance(page.get("list"), list):
        has = f"keys {', '.join(map(str, page))}" if isinstance(page, dict) else f"a {type(page).__name__}"
        raise InstrumentError("neither a Bybit /v5/market/instruments-info answer (result.list) nor a Binance "
                              f"/fapi/v1/exchangeInfo (symbols): it has {has}")
    if page.get("category", "linear") != "linear":
        raise InstrumentError(f"category {page['category']}: only linear contracts are sized in coins")
    return page


def _binance(answer: dict) -> dict[str, Lot]:
    if not isinstance(answer["symbols"], list):
        raise InstrumentError("exchangeInfo's symbols is not a list")
    lots: dict[str, Lot] = {}
    for row in answer["symbols"]:
        if _text(row, "contractType") != BINANCE_PERPETUAL:
            continue
        symbol = _text(row, "symbol")
        filters = row.get("filters")
        if not isinstance(filters, list):
            raise InstrumentError(f"{symbol}: no filters")
        by_type = {f.get("filterType"): f for f in filters if isinstance(f, dict)}
        for needed in ("LOT_SIZE", "MIN_NOTIONAL", "PRICE_FILTER"):
            if needed not in by_type:
                raise InstrumentError(f"{symbol}: no {needed} filter")
        lot_size, market = by_type["LOT_SIZE"], by_type.get("MARKET_LOT_SIZE")
        step = _number(symbol, lot_size, "stepSize", positive=True)
        least = _number(symbol, lot_size, "minQty")
        most = [_optional(symbol, lot_size, "maxQty")]
        if market is not None:
            if market_step := _number(symbol, market, "stepSize"):
                step = lcm(step, market_step)
            least = max(least, _number(symbol, market, "minQty"))
            most.append(_optional(symbol, market, "maxQty"))
        known = [m for m in most if m]  # a maximum of 0 sets no rule
        lot = Lot(step, least, _number(symbol, by_type["MIN_NOTIONAL"], "notional"),
                  _number(symbol, by_type["PRICE_FILTER"], "tickSize", positive=True),
                  min(known) if known else None, "binance", symbol)
        _add(lots, lot)
    return lots


def _add(lots: dict[str, Lot], lot: Lot) -> None:
    if lots.get(lot.symbol, lot) != lot:
        raise InstrumentError(f"{lot.symbol} is listed twice with different lots")
    lots[lot.symbol] = lot


def _text(row, key: str) -> str:
    if not isinstance(row, dict):
        raise InstrumentError(f"a row is not an object: {row!r}")
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise InstrumentError(f"{row.get('symbol') or 'a row'}: no {key}")
    return value


def _optional(symbol: str, holder: dict, *keys: str) -> Decimal | None:
    """The number at holder[keys[0]][keys[1]]..., None when the last key is absent or empty."""
    *parents, last = keys
    for key in parents:
        holder = holder.get(key)
        if not isinstance(holder, dict):
            raise InstrumentError(f"{symbol}: no {key}")
    value = holder.get(last)
    if value is None or value == "":
        return None
    name = ".".join(keys)
    try:
        number = Decimal(str(value))  # JSON's true, lists and objects are not numbers as text either
        if not number.is_finite() or number < 0:
            raise InvalidOperation
    except InvalidOperation:
        raise InstrumentError(f"{symbol}: {name} {value!r} is not a number >= 0") from None
    return number


def _number(symbol: str, holder: dict, *keys: str, positive: bool = False) -> Decimal:
    number = _optional(symbol, holder, *keys)
    if number is None:
        raise InstrumentError(f"{symbol}: no {'.'.join(keys)}")
    if positive and not number:
        raise InstrumentError(f"{symbol}: {'.'.join(keys)} is 0")
    return number


def lcm(*steps: Decimal) -> Decimal:
    """The least common multiple of positive decimals: with every step written as a whole
    number of 10^-k, the integers' LCM in units of 10^-k (0.1 and 0.25: LCM(10, 25) = 50
    hundredths, 0.5)."""
    if not steps or any(not s.is_finite() or s <= 0 for s in steps):
        raise ValueError(f"steps must be positive: {steps}")
    k = max(0, *(-s.as_tuple().exponent for s in steps))
    whole = math.lcm(*(int(Fraction(s) * 10**k) for s in steps))
    return Decimal(f"{whole}E-{k}")


def size_order(notional_usd: Decimal, price: Decimal, lots: Sequence[Lot]) -> Sized:
    """The largest quantity of at most notional / price that every venue of `lots` can fill in
    one market order, or why there is none."""
    if not lots:
        raise ValueError("no venue to size an order for")
    if price <= 0 or notional_usd < 0:
        raise ValueError(f"price {price} must be positive and notional {notional_usd} not negative")
    step = lcm(*(lot.qty_step for lot in lots))
    steps = math.floor(Fraction(notional_usd) / Fraction(price) / Fraction(step))
    reason = ""
    for lot in lots:
        if lot.max_qty is not None and _times(steps, step) > lot.max_qty:
            steps = math.floor(Fraction(lot.max_qty) / Fraction(step))
            reason = f"capped at {lot.symbol}'s market order maximum {lot.max_qty} at {lot.venue}"
    qty = _times(steps, step)
    for lot in lots:
        if qty < lot.min_qty:
            return Sized(None, f"{qty} is below {lot.symbol}'s minimum {lot.min_qty} at {lot.venue}")
        if Fraction(qty) * Fraction(price) < lot.min_notional:
            return Sized(None, f"{qty} x {price} is below {lot.symbol}'s minimum notional {lot.min_notional} "
                               f"at {lot.venue}")
    if not qty:  # no minimum said so
        return Sized(None, f"{notional_usd} USD at {price} is less than one step of {step}")
    return Sized(qty, reason)


def order_qty(notional_usd: Decimal, price: Decimal, lots: Sequence[Lot]) -> Decimal | None:
    """`size_order`'s quantity: None when some venue cannot take the order."""
    return size_order(notional_usd, price, lots).qty


def _times(count: int, step: Decimal) -> Decimal:
    """count x step, exact at any size (a Decimal product rounds to 28 digits)."""
    _, digits, exponent = step.as_tuple()
    return Decimal(f"{count * int(''.join(map(str, digits)))}E{exponent}")
