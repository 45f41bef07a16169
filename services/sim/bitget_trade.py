"""Bitget V2 mix's signed trading and account REST for USDT-FUTURES over the matching engine
(protocol-trading-okx-bitget-binance.md §3.2-3.6).

Each handler takes the Bitget venue (`Book`: the engine and the per-symbol margin modes), the
caller's API key, the parameters (the query of a GET, the JSON body of a POST) and the time,
and returns the `data` of Bitget's envelope

    {"code": "00000", "msg": "success", "requestTime": 1695806875837, "data": ...}

A refusal raises `BitgetError` and answers `{"code": "40762", "msg": "...", "requestTime": ...,
"data": null}` with HTTP 400 (sources disagree on 200 vs 400, §3.2: the client reads the body
either way). Sizes are base coin on the `sizeMultiplier` grid (the instrument's lot), at least
`minTradeNum` (one lot), and an opening order is worth at least `minTradeUSDT` (5). A new
account is in one-way mode; in hedge mode (`set-position-mode` hedge_mode) an order's `side` is
its position's direction and `tradeSide` open or close is required. `clientOid` is unique only
among pending orders (40786 "Duplicate clientOid"). A post-only order that would take is
accepted and then canceled, not refused.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from services.sim import bitget_private as shapes
from services.sim.market import plain as num
from services.sim.matching import Matching, OrderRequest, Rejected, VenueRules

Params = Mapping[str, object]
TAKER_FEE, MAKER_FEE = Decimal("0.0006"), Decimal("0.0002")  # the contracts' takerFeeRate / makerFeeRate
RULES = VenueRules(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, link_ids_reusable=True, trim_closes=False,
                   hedge_by_default=False)
MIN_NOTIONAL = Decimal(5)  # minTradeUSDT
MAX_LEVER = 125
BILL_SPAN_MS = 30 * 86_400_000
ORDER_TYPES = {"market": "Market", "limit": "Limit"}
FORCES = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK", "post_only": "PostOnly"}
_CLIENT_OID = re.compile(r"^[0-9A-Za-z_:#\-+]{1,50}$")

MESSAGES = {
    "429": "Too many requests",
    "40008": "Request timestamp expired", "40006": "Invalid ACCESS_KEY", "40009": "sign signature error",
    "40010": "Request timed out", "40725": "service return an error", "45001": "Underlying system upgrading",
    "40017": "Parameter verification failed",
    "40019": "Parameter {} cannot be empty", "40020": "Parameter {} error",
    "40034": "Parameter {} does not exist",
    "40109": "The data of the order cannot be found, please confirm the order number",
    "40757": "Not enough position is available.",
    "40762": "The order amount exceeds the balance",
    "40768": "Order does not exist",
    "40774": "The order type for unilateral position must also be the unilateral position type.",
    "40786": "Duplicate clientOid",
    "40808": "Parameter verification exception size checkBDScale error value={} checkScale={}",
    "40920": "Position or order exists, the position mode cannot be switched",
    "41103": "param price scale error",
    "43006": "The order quantity is less than the minimum transaction quantity",
    "45110": "less than the minimum amount 5 USDT",
    "45116": "The number of pending orders exceeds the limit",  # the simulator's choice: the reference has none
    "22002": "No position to close",
}
REASONS = {"duplicate_link_id": "40786", "position_mode": "40774", "too_many_orders": "45116",
           "no_position": "22002", "same_direction": "22002", "close_exceeds": "40757",
           "insufficient_margin": "40762", "not_found": "40768", "mode_busy": "40920",
           # modify-order: Bitget answers 40020 "Parameter ... error" with the engine's reason
           "unchanged": "40020", "below_filled": "40020"}
# reject_next / reject_link_ids faults give Bybit's retCodes: Bitget answers its own code for them
FAULT_CODES = {10016: "40725", 10006: "429", 10002: "40008", 10003: "40006", 10004: "40009", 10001: "40020",
               110007: "40762", 110072: "40786", 110017: "22002", 110001: "40768", 110020: "45116"}
HTTP_STATUS = {"429": 429, "40725": 500, "40010": 500}


class BitgetError(Exception):
    def __init__(self, code: str, msg: str | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "")


def fault_code(reject_code: int) -> str:
    """Bitget's code for a `reject_code` fault: Bybit's codes mapped (FAULT_CODES), Bitget's own
    (20000-49999, and 429) kept, anything else 40725 "service return an error" (HTTP 500)."""
    if reject_code in FAULT_CODES:
        return FAULT_CODES[reject_code]
    return str(reject_code) if 20000 <= reject_code <= 49999 or reject_code == 429 else "40725"


def new_ids(start: int = 1_100_000_000_000_000_001) -> Callable[[], str]:
    """Bitget's ids are numeric strings (orderId, tradeId, billId)."""
    counter = itertools.count(start)
    return lambda: str(next(counter))


@dataclass
class Book:
    """Bitget's accounts: the engine, and each (key, symbol)'s margin mode (crossed unless set)."""

    m: Matching
    margin_modes: dict[tuple[str, str], str] = field(default_factory=dict)


# --- parameters ---------------------------------------------------------------------------

def _text(params: Params, name: str, required: bool = False) -> str:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise BitgetError("40019", MESSAGES["40019"].format(name))
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BitgetError("40020", MESSAGES["40020"].format(name))
    return str(value)


def _choice(params: Params, name: str, choices, required: bool = True, lower: bool = True) -> str:
    value = _text(params, name, required)
    value = value.lower() if lower else value
    if value and value not in choices:
        raise BitgetError("40020", MESSAGES["40020"].format(name))
    return value


def _product(params: Params, required: bool = True) -> None:
    product = _text(params, "productType", required)
    if product and product.upper() != shapes.PRODUCT_TYPE:
        raise BitgetError("40034", MESSAGES["40034"].format("productType"))


def _margin_coin(params: Params, required: bool = False) -> None:
    coin = _text(params, "marginCoin", required)
    if coin and coin.upper() != shapes.MARGIN_COIN:
        raise BitgetError("40034", MESSAGES["40034"].format("marginCoin"))


def _symbol(m: Matching, params: Params, required: bool = True) -> str | None:
    symbol = _text(params, "symbol", required).upper()
    if not symbol:
        return None
    if symbol not in m.model.states:
        raise BitgetError("40034", MESSAGES["40034"].format("symbol"))
    return symbol


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BitgetError("40020", MESSAGES["40020"].format(name)) from None
    if not value.is_finite() or value <= 0:
        raise BitgetError("40020", MESSAGES["40020"].format(name))
    return value


def _ms(params: Params, name: str, default: int) -> int:
    text = _text(params, name)
    if not text:
        return default
    if not text.isdigit():
        raise BitgetError("40020", MESSAGES["40020"].format(name))
    return int(text)


def _page(rows: list, params: Params, id_of: Callable[[object], str], most: int = 100) -> tuple[list, str]:
    """Newest first; `idLessThan` = older than that id; `limit` at most `most`. (page, endId)."""
    before = _text(params, "idLessThan")
    if before:
        rows = [r for r in rows if int(id_of(r)) < int(before)] if before.isdigit() else []
    text = _text(params, "limit") or str(most)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BitgetError("40020", MESSAGES["40020"].format("limit"))
    page = rows[:int(text)]
    return page, id_of(page[-1]) if page else ""


def order_request(book: Book, key: str, params: Params) -> OrderRequest:
    """place-order's parameters as an OrderRequest; BitgetError naming what is wrong."""
    m = book.m
    symbol = _symbol(m, params)
    inst = m.model.states[symbol].inst
    _product(params)
    margin_mode = _choice(params, "marginMode", ("isolated", "crossed"))
    _margin_coin(params, required=True)
    side = _choice(params, "side", ("buy", "sell"))
    order_type = ORDER_TYPES[_choice(params, "orderType", ORDER_TYPES)]
    force = _choice(params, "force", FORCES, required=False) or "gtc"
    tif = FORCES[force] if order_type == "Limit" else "IOC"
    hedge = symbol in m.account(key).hedge_symbols
    trade_side = _choice(params, "tradeSide", ("open", "close"), required=False)
    reduce_only = _choice(params, "reduceOnly", ("yes", "no"), required=False) == "yes"
    if hedge:
        if not trade_side:
            raise BitgetError("40774", MESSAGES["40774"])  # an order of one-way form on a hedge account
        idx = 1 if side == "buy" else 2
        engine_side = side.capitalize() if trade_side == "open" else ("Sell" if side == "buy" else "Buy")
        reduce_only = False
    else:
        idx, engine_side = 0, side.capitalize()
    size = _decimal(_text(params, "size", True), "size")
    if size % inst.lot:
        raise BitgetError("40808", MESSAGES["40808"].format(num(size), max(0, -inst.lot.as_tuple().exponent)))
    if size < inst.lot:  # minTradeNum is one lot
        raise BitgetError("43006")
    price_ticks = None
    price = None
    if order_type == "Limit":
        price = _decimal(_text(params, "price", True), "price")
        if price % inst.tick:
            raise BitgetError("41103")
        price_ticks = int(price / inst.tick)
    opens = not reduce_only and (not hedge or trade_side == "open")
    if opens:
        reference = price if price is not None else m.mark(symbol)
        if size * reference < MIN_NOTIONAL:
            raise BitgetError("45110")
    client_oid = _text(params, "clientOid")
    if client_oid and not _CLIENT_OID.match(client_oid):
        raise BitgetError("40020", MESSAGES["40020"].format("clientOid"))
    return OrderRequest(symbol, engine_side, order_type, tif, price_ticks, int(size / inst.lot), reduce_only, idx,
                        client_oid, "cross" if margin_mode == "crossed" else "isolated")


def reduces_only(params: Params) -> bool:
    """Whether an order can only reduce a position: `reduceOnly` YES (one-way), or a close in
    hedge mode (`tradeSide` close). The journal's word."""
    return str(params.get("reduceOnly", "")).lower() == "yes" or params.get("tradeSide") == "close"


# --- trade ---------------------------------------------------------------------------------

def place_order(book: Book, key: str, params: Params, now_ms: int) -> dict:
    order = book.m.create(key, order_request(book, key, params), now_ms)
    return {"clientOid": order.link_id, "orderId": order.order_id}


def _find(book: Book, key: str, params: Params, missing: str):
    symbol = _symbol(book.m, params)
    _product(params)
    order_id, client_oid = _text(params, "orderId"), _text(params, "clientOid")
    if not order_id and not client_oid:
        raise BitgetError("40019", MESSAGES["40019"].format("orderId or clientOid"))
    account = book.m.account(key)
    order = book.m.find(account, {"orderId": order_id, "orderLinkId": client_oid})
    if order is None or order.symbol != symbol:
        raise BitgetError(missing)
    return account, order


def modify_order(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """A resting limit order's size and/or price changed (`newSize`, `newPrice`), and its
    clientOid replaced by `newClientOid` (required, as Bitget's page marks it). Bitget cancels
    the old order and places a new one; the simulator amends in place (the engine's `amend`:
    less size keeps the queue place, a new price or more size requeues and takes what it
    crosses), so the orderId stays and the old clientOid no longer names it."""
    _margin_coin(params)
    new_oid = _text(params, "newClientOid", required=True)
    if not _CLIENT_OID.match(new_oid):
        raise BitgetError("40020", MESSAGES["40020"].format("newClientOid"))
    account, order = _find(book, key, params, "40768")
    if not order.is_open or order.order_type != "Limit":
        raise BitgetError("40768")
    inst = book.m.model.states[order.symbol].inst
    lots = price_ticks = None
    if text := _text(params, "newSize"):
        size = _decimal(text, "newSize")
        if size % inst.lot:
            raise BitgetError("40808", MESSAGES["40808"].format(num(size), max(0, -inst.lot.as_tuple().exponent)))
        lots = int(size / inst.lot)
    if text := _text(params, "newPrice"):
        price = _decimal(text, "newPrice")
        if price % inst.tick:
            raise BitgetError("41103")
        price_ticks = int(price / inst.tick)
    taken = account.link_ids.get(new_oid)
    if new_oid != order.link_id and taken and account.orders[taken].is_open:
        raise BitgetError("40786")
    book.m.amend(key, {"orderId": order.order_id, "symbol": order.symbol}, price_ticks, lots, now_ms)
    if order.link_id and account.link_ids.get(order.link_id) == order.order_id:
        del account.link_ids[order.link_id]
    order.link_id = new_oid
    account.link_ids[new_oid] = order.order_id
    return {"orderId": order.order_id, "clientOid": order.link_id}


def cancel_order(book: Book, key: str, params: Params, now_ms: int) -> dict:
    _margin_coin(params)
    _, order = _find(book, key, params, "40768")
    if not order.is_open:
        raise BitgetError("40768")
    book.m.cancel(key, {"orderId": order.order_id, "symbol": order.symbol}, now_ms)
    return {"orderId": order.order_id, "clientOid": order.link_id}


def order_detail(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """One order, open or closed; by clientOid the latest order that carried it."""
    account, order = _find(book, key, params, "40109")
    return shapes.order_fields(book.m, account, order, "state")


def orders_pending(book: Book, key: str, params: Params, now_ms: int) -> dict:
    _product(params)
    symbol = _symbol(book.m, params, required=False)
    account = book.m.account(key)
    rows = [shapes.order_fields(book.m, account, o, "status") for o in account.open_orders(symbol)]
    rows.sort(key=lambda r: int(r["orderId"]), reverse=True)
    page, end_id = _page(rows, params, lambda r: r["orderId"])
    return {"entrustedList": page or None, "endId": end_id}


def orders_history(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """Closed orders (filled, canceled), newest first; by symbol, orderId, clientOid,
    idLessThan, startTime/endTime (cTime)."""
    _product(params)
    symbol = _symbol(book.m, params, required=False)
    order_id, client_oid = _text(params, "orderId"), _text(params, "clientOid")
    begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    account = book.m.account(key)
    rows = [o for o in account.orders.values()
            if not o.is_open and (symbol is None or o.symbol == symbol) and (not order_id or o.order_id == order_id)
            and (not client_oid or o.link_id == client_oid) and begin <= o.created_ms <= end]
    rows.sort(key=lambda o: int(o.order_id), reverse=True)
    page, end_id = _page(rows, params, lambda o: o.order_id)
    return {"entrustedList": [shapes.order_fields(book.m, account, o, "status") for o in page] or None,
            "endId": end_id}


def history_positions(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """Positions opened and closed again, newest first (bitget_private.closed_positions)."""
    _product(params, required=False)
    symbol = _symbol(book.m, params, required=False)
    begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    account = book.m.account(key)
    rows = [r for r in shapes.closed_positions(book.m, account)
            if (symbol is None or r["symbol"] == symbol) and begin <= int(r["utime"]) <= end]
    page, end_id = _page(rows, params, lambda r: r["positionId"])
    return {"list": page, "endId": end_id}


def fills(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """Trades of the account, newest first; by symbol, orderId, idLessThan, startTime/endTime."""
    _product(params)
    symbol = _symbol(book.m, params, required=False)
    order_id = _text(params, "orderId")
    begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    account = book.m.account(key)
    rows = [e for e in reversed(account.executions)
            if e.order is not None and (symbol is None or e.symbol == symbol)
            and (not order_id or e.order.order_id == order_id) and begin <= e.time_ms <= end]
    page, end_id = _page(rows, params, lambda e: e.exec_id)
    return {"fillList": [shapes.fill_fields(book.m, account, e) for e in page], "endId": end_id}


# --- account -------------------------------------------------------------------------------

def all_positions(book: Book, key: str, params: Params, now_ms: int) -> list[dict]:
    _product(params)
    _margin_coin(params, required=True)
    return shapes.open_positions(book.m, book.m.account(key), now_ms)


def single_position(book: Book, key: str, params: Params, now_ms: int) -> list[dict]:
    symbol = _symbol(book.m, params)
    return [r for r in all_positions(book, key, params, now_ms) if r["symbol"] == symbol]


def accounts(book: Book, key: str, params: Params, now_ms: int) -> list[dict]:
    _product(params)
    return [shapes.account_fields(book.m, book.m.account(key))]


def account(book: Book, key: str, params: Params, now_ms: int) -> dict:
    symbol = _symbol(book.m, params)
    _product(params)
    _margin_coin(params, required=True)
    return shapes.symbol_account(book.m, book.m.account(key), symbol, book.margin_modes.get((key, symbol), "crossed"))


def set_position_mode(book: Book, key: str, params: Params, now_ms: int) -> dict:
    _product(params)
    mode = _choice(params, "posMode", ("hedge_mode", "one_way_mode"))
    book.m.switch_all_modes(key, hedge=mode == "hedge_mode")
    return {"posMode": mode}


def set_margin_mode(book: Book, key: str, params: Params, now_ms: int) -> dict:
    symbol = _symbol(book.m, params)
    _product(params)
    _margin_coin(params, required=True)
    mode = _choice(params, "marginMode", ("isolated", "crossed"))
    account_ = book.m.account(key)
    if any(p.lots for (s, _), p in account_.positions.items() if s == symbol) or account_.open_orders(symbol):
        raise BitgetError("40920", "Position or order exists, the margin mode cannot be switched")
    book.margin_modes[(key, symbol)] = mode
    lever = num(book.m.leverage(account_, symbol))
    return {"symbol": symbol, "marginCoin": shapes.MARGIN_COIN, "longLeverage": lever, "shortLeverage": lever,
            "marginMode": mode}


def set_leverage(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """One leverage per symbol (Bitget keeps one per side when isolated in hedge mode: the simulator does not)."""
    symbol = _symbol(book.m, params)
    _product(params)
    _margin_coin(params, required=True)
    lever = _decimal(_text(params, "leverage", True), "leverage")
    if lever < 1 or lever > MAX_LEVER or lever % 1:
        raise BitgetError("40020", MESSAGES["40020"].format("leverage"))
    account_ = book.m.account(key)
    account_.leverage[symbol] = lever
    return {"symbol": symbol, "marginCoin": shapes.MARGIN_COIN, "longLeverage": num(lever),
            "shortLeverage": num(lever), "crossMarginLeverage": num(lever),
            "marginMode": book.margin_modes.get((key, symbol), "crossed")}


def bills(book: Book, key: str, params: Params, now_ms: int) -> dict:
    """Trade and funding bills of the last executions, newest first, at most 30 days apart."""
    _product(params)
    symbol = _symbol(book.m, params, required=False)
    business = _text(params, "businessType")
    end = _ms(params, "endTime", now_ms)
    begin = _ms(params, "startTime", end - BILL_SPAN_MS)
    if end - begin > BILL_SPAN_MS or end < begin:
        raise BitgetError("40017", "Parameter verification failed: startTime and endTime interval cannot be greater "
                                   "than 30 days")
    rows = []
    for e in reversed(book.m.account(key).executions):
        if (symbol is None or e.symbol == symbol) and begin <= e.time_ms <= end:
            bill = shapes.bill_fields(book.m, e)
            if not business or bill["businessType"] == business:
                rows.append(bill)
    page, end_id = _page(rows, params, lambda r: r["billId"])
    return {"bills": page, "endId": end_id}


Handler = Callable[[Book, str, Params, int], object]
HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/api/v2/mix/order/place-order"): place_order,
    ("POST", "/api/v2/mix/order/modify-order"): modify_order,
    ("POST", "/api/v2/mix/order/cancel-order"): cancel_order,
    ("GET", "/api/v2/mix/order/orders-history"): orders_history,
    ("GET", "/api/v2/mix/position/history-position"): history_positions,
    ("GET", "/api/v2/mix/order/detail"): order_detail,
    ("GET", "/api/v2/mix/order/orders-pending"): orders_pending,
    ("GET", "/api/v2/mix/order/fills"): fills,
    ("GET", "/api/v2/mix/position/all-position"): all_positions,
    ("GET", "/api/v2/mix/position/single-position"): single_position,
    ("GET", "/api/v2/mix/account/accounts"): accounts,
    ("GET", "/api/v2/mix/account/account"): account,
    ("POST", "/api/v2/mix/account/set-position-mode"): set_position_mode,
    ("POST", "/api/v2/mix/account/set-margin-mode"): set_margin_mode,
    ("POST", "/api/v2/mix/account/set-leverage"): set_leverage,
    ("GET", "/api/v2/mix/account/bill"): bills,
}


def envelope(code: str, msg: str, data: object, now_ms: int) -> dict:
    return {"code": code, "msg": msg, "requestTime": now_ms, "data": data}


def refusal(error: BitgetError, now_ms: int) -> tuple[int, dict]:
    return HTTP_STATUS.get(error.code, 400), envelope(error.code, error.msg, None, now_ms)


def answer(handler: Handler, book: Book, key: str, params: Params, now_ms: int) -> tuple[int, dict, str]:
    """(HTTP status, body, code) of a request."""
    try:
        data = handler(book, key, params, now_ms)
    except Rejected as exc:
        code = REASONS.get(exc.reason)
        error = BitgetError(code) if code and code != "40020" else BitgetError("40020", exc.message)
    except BitgetError as exc:
        error = exc
    else:
        return 200, envelope("00000", "success", data, now_ms), "00000"
    status, body = refusal(error, now_ms)
    return status, body, error.code
