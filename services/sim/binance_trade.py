"""Binance USD-M's signed trading and account REST over the matching engine
(protocol-trading-okx-bitget-binance.md §4.3-4.6).

Each handler takes the Binance engine, the caller's API key, the parameters (query string and
form body) and the time, and returns Binance's answer (an object or a list); a refusal raises
`BinanceError`, answered `{"code": -2013, "msg": "Order does not exist."}` with HTTP 400 (429
for rate limits, 401 for the key, 503 "Unknown error..." when the outcome is unknown).
Quantities are base coin on the lot grid. A new account is in one-way mode (`positionSide`
BOTH or none); in hedge mode (`POST /fapi/v1/positionSide/dual`) an order needs LONG or SHORT
and may not send `reduceOnly` (-1106). A `newClientOrderId` an open order carries is refused
(-4116); once that order is finished the id is free again. A GTX order that would take is
refused (-5022), an order that opens under the symbol's minimum notional (`MIN_NOTIONAL`, at
its price, a market order's at the mark) too (-4164).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from services.sim import binance_private as shapes
from services.sim.market import plain as num
from services.sim.matching import Matching, OrderRequest, Rejected, VenueRules

Params = Mapping[str, str]
TAKER_FEE, MAKER_FEE = Decimal("0.0005"), Decimal("0.0002")  # USD-M VIP 0
RULES = VenueRules(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, link_ids_reusable=True, trim_closes=False,
                   hedge_by_default=False)
# MIN_NOTIONAL per symbol as Binance lists them (BTCUSDT 100, ETHUSDT 20, most others 5)
MIN_NOTIONAL = {"BTCUSDT": Decimal(100), "ETHUSDT": Decimal(20)}
DEFAULT_MIN_NOTIONAL = Decimal(5)
MAX_LEVERAGE = 125
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")

MESSAGES = {
    -1000: "Unknown error, please check your request or try again later.",
    -1003: "Too many requests; current limit is 2400 requests per minute. Please use the websocket for live "
           "updates to avoid polling the API.",
    -1015: "Too many new orders; current limit is 300 orders per TEN_SECONDS.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1102: "A mandatory parameter was not sent, was empty/null, or malformed.",
    -1106: "Parameter '{}' sent when not required.",
    -1111: "Precision is over the maximum defined for this asset.",
    -1116: "Invalid orderType.", -1117: "Invalid side.", -1121: "Invalid symbol.",
    -1130: "Data sent for parameter '{}' is not valid.",
    -2011: "Unknown order sent.", -2013: "Order does not exist.",
    -2014: "API-key format invalid.", -2015: "Invalid API-key, IP, or permissions for action.",
    -2019: "Margin is insufficient.", -2022: "ReduceOnly Order is rejected.",
    -2025: "Reach max open order limit.",
    -4004: "Quantity less than min quantity.", -4014: "Price not increased by tick size.",
    -4015: "Client order id is not valid.", -4023: "Quantity not increased by step size.",
    -4028: "Leverage {} is not valid", -4059: "No need to change position side.",
    -4061: "Order's position side does not match user's setting.",
    -4067: "Position side cannot be changed if there exists open orders.",
    -4068: "Position side cannot be changed if there exists position.",
    -4116: "ClientOrderId is duplicated.",
    -4164: "Order's notional must be no smaller than {} (unless you choose reduce only).",
    -5027: "No need to modify the order.",
    -5022: "Due to the order could not be executed as maker, the Post Only order will be rejected. The order will "
           "not be recorded in the order history",
}
HTTP_STATUS = {-1000: 503, -1001: 503, -1006: 503, -1007: 503, -1003: 429, -1015: 429, -2014: 401, -2015: 401}
REASONS = {"duplicate_link_id": -4116, "position_mode": -4061, "too_many_orders": -2025, "no_position": -2022,
           "same_direction": -2022, "close_exceeds": -2022, "insufficient_margin": -2019, "not_found": -2011,
           "mode_busy": -4068, "mode_not_modified": -4059, "unchanged": -5027}
# reject_next / reject_link_ids faults give Bybit's retCodes: Binance answers its own code for them
FAULT_CODES = {10016: -1000, 10006: -1003, 10002: -1021, 10003: -2015, 10004: -1022, 10001: -1102, 110007: -2019,
               110072: -4116, 110017: -2022, 110001: -2011, 110020: -2025}


class BinanceError(Exception):
    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "")
        self.http_status = HTTP_STATUS.get(code, 400)

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def fault_code(reject_code: int) -> int:
    """Binance's code for a `reject_code` fault: Bybit's codes mapped (FAULT_CODES); 1000-5999 taken
    as Binance's own without the sign (5022 answers -5022: the faults take positive codes only);
    anything else -1000, "Unknown error" with HTTP 503 (the outcome unknown)."""
    if reject_code in FAULT_CODES:
        return FAULT_CODES[reject_code]
    return -reject_code if 1000 <= reject_code <= 5999 else -1000


def new_ids(start: int = 700_000_001) -> Callable[[], str]:
    """Binance's ids are numbers (orderId, trade id, tranId)."""
    counter = itertools.count(start)
    return lambda: str(next(counter))


# --- parameters ---------------------------------------------------------------------------

def _text(params: Params, name: str, required: bool = False) -> str:
    value = params.get(name, "")
    if not value and required:
        raise BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _choice(params: Params, name: str, choices, code: int, required: bool = True) -> str:
    value = _text(params, name, required)
    if value and value not in choices:
        raise BinanceError(code, MESSAGES[code].format(name) if code == -1130 else None)
    return value


def _symbol(m: Matching, params: Params, required: bool = True) -> str | None:
    symbol = _text(params, "symbol", required)
    if not symbol:
        return None
    if symbol not in m.model.states:
        raise BinanceError(-1121)
    return symbol


def _decimal(params: Params, name: str) -> Decimal:
    text = _text(params, name, True)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BinanceError(-1130, MESSAGES[-1130].format(name)) from None
    if not value.is_finite():
        raise BinanceError(-1130, MESSAGES[-1130].format(name))
    return value


def _steps(value: Decimal, step: Decimal, off_grid: int) -> int:
    """`value` as a whole number of `step`s: -1111 with more decimals than the step has, `off_grid` off it."""
    if value.normalize().as_tuple().exponent < step.normalize().as_tuple().exponent:
        raise BinanceError(-1111)
    if value % step:
        raise BinanceError(off_grid)
    return int(value / step)


def _ms(params: Params, name: str, default: int) -> int:
    text = _text(params, name)
    if not text:
        return default
    if not text.isdigit():
        raise BinanceError(-1130, MESSAGES[-1130].format(name))
    return int(text)


def _limit(params: Params, default: int, most: int) -> int:
    text = _text(params, "limit") or str(default)
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise BinanceError(-1130, MESSAGES[-1130].format("limit"))
    return int(text)


def order_request(m: Matching, key: str, params: Params) -> OrderRequest:
    """POST /fapi/v1/order's parameters as an OrderRequest; BinanceError naming what is wrong."""
    symbol = _symbol(m, params)
    inst = m.model.states[symbol].inst
    side = _choice(params, "side", ("BUY", "SELL"), -1117)
    kind = _choice(params, "type", ("LIMIT", "MARKET"), -1116)
    hedge = symbol in m.account(key).hedge_symbols
    position_side = _text(params, "positionSide") or "BOTH"
    if position_side not in (("LONG", "SHORT") if hedge else ("BOTH",)):
        raise BinanceError(-4061)
    reduce_only = _choice(params, "reduceOnly", ("true", "false"), -1130, required=False)
    if reduce_only and hedge:
        raise BinanceError(-1106, MESSAGES[-1106].format("reduceonly"))
    quantity = _decimal(params, "quantity")
    if quantity <= 0:
        raise BinanceError(-4003, "Quantity less than or equal to zero.")
    lots = _steps(quantity, inst.lot, -4023)
    if lots < 1:  # minQty is one step
        raise BinanceError(-4004)
    price_ticks = None
    tif = "IOC"
    if kind == "LIMIT":
        tif = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "GTX": "PostOnly"}[
            _choice(params, "timeInForce", ("GTC", "IOC", "FOK", "GTX"), -1130)]
        price = _decimal(params, "price")
        if price <= 0:
            raise BinanceError(-4014)
        price_ticks = _steps(price, inst.tick, -4014)
    elif _text(params, "price"):
        raise BinanceError(-1106, MESSAGES[-1106].format("price"))
    link_id = _text(params, "newClientOrderId")
    if link_id and not CLIENT_ID.fullmatch(link_id):
        raise BinanceError(-4015)
    idx = {"LONG": 1, "SHORT": 2}.get(position_side, 0)
    return OrderRequest(symbol, side.capitalize(), kind.capitalize(), tif, price_ticks, lots, reduce_only == "true",
                        idx, link_id)


def closes(request: OrderRequest) -> bool:
    """An order that can only reduce: reduceOnly (one-way), or a hedge close (SELL LONG, BUY SHORT)."""
    return request.reduce_only or (request.position_idx, request.side) in ((1, "Sell"), (2, "Buy"))


def reduces_only(params: Params) -> bool:
    """The journal's word: `reduceOnly`, or a close in hedge mode (which sends no flag)."""
    return (params.get("reduceOnly") == "true"
            or (params.get("positionSide"), params.get("side")) in (("LONG", "SELL"), ("SHORT", "BUY")))


# --- trade ---------------------------------------------------------------------------------

def place_order(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    request = order_request(m, key, params)
    state = m.model.states[request.symbol]
    inst = state.inst
    bids, asks = m.view.sides(state)
    if request.tif == "PostOnly":
        best = min(asks, default=None) if request.side == "Buy" else max(bids, default=None)
        if best is not None and (request.price_ticks >= best if request.side == "Buy" else request.price_ticks <= best):
            raise BinanceError(-5022)
    if not closes(request):
        floor = MIN_NOTIONAL.get(request.symbol, DEFAULT_MIN_NOTIONAL)
        price = inst.tick * request.price_ticks if request.price_ticks is not None else m.mark(request.symbol)
        if price * inst.lot * request.lots < floor:
            raise BinanceError(-4164, MESSAGES[-4164].format(num(floor)))
    order = m.create(key, request, now_ms)
    if params.get("newOrderRespType") == "RESULT":
        return shapes.order_fields(m, order)
    return shapes.order_fields(m, order, shown="NEW", filled_lots=0, value=Decimal(0))  # ACK: as accepted


def _find(m: Matching, key: str, params: Params, unknown: int):
    symbol = _symbol(m, params)
    order_id, link_id = _text(params, "orderId"), _text(params, "origClientOrderId")
    if not order_id and not link_id:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    account = m.account(key)
    order = m.find(account, {"orderId": order_id, "orderLinkId": link_id})
    if order is None or order.symbol != symbol:
        raise BinanceError(unknown)
    return symbol, account, order


def cancel_order(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    symbol, _, order = _find(m, key, params, -2011)
    order = m.cancel(key, {"orderId": order.order_id, "symbol": symbol}, now_ms)
    return shapes.order_fields(m, order)


def modify_order(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    """PUT /fapi/v1/order: a resting LIMIT order's quantity and price (both required), by orderId
    or origClientOrderId. Binance's rules: the same quantity and price is -5027; an unknown or
    closed order -2013; a new quantity at or below what has filled cancels the order; a new
    price, or more size, requeues it and takes what it crosses (a GTX one that would take is
    cancelled); less size keeps its queue place. Answers the order as GET /fapi/v1/order shows
    it; the stream says ORDER_TRADE_UPDATE with execution type AMENDMENT."""
    symbol = _symbol(m, params)
    side = _choice(params, "side", ("BUY", "SELL"), -1117)
    quantity, price = _decimal(params, "quantity"), _decimal(params, "price")
    if _text(params, "priceMatch") not in ("", "NONE"):
        raise BinanceError(-1106, MESSAGES[-1106].format("priceMatch"))
    _, _, order = _find(m, key, params, -2013)
    if not order.is_open or order.order_type != "Limit":
        raise BinanceError(-2013)
    if side != order.side.upper():
        raise BinanceError(-1130, MESSAGES[-1130].format("side"))
    inst = m.model.states[symbol].inst
    if quantity <= 0:
        raise BinanceError(-4003, "Quantity less than or equal to zero.")
    lots = _steps(quantity, inst.lot, -4023)
    if lots < 1:
        raise BinanceError(-4004)
    if price <= 0:
        raise BinanceError(-4014)
    price_ticks = _steps(price, inst.tick, -4014)
    if (lots, price_ticks) == (order.lots, order.price_ticks):
        raise BinanceError(-5027)
    if lots <= order.filled_lots:  # Binance cancels it
        return shapes.order_fields(m, m.cancel(key, {"orderId": order.order_id, "symbol": symbol}, now_ms))
    if order.tif == "PostOnly" and price_ticks != order.price_ticks:
        bids, asks = m.view.sides(m.model.states[symbol])
        best = min(asks, default=None) if order.side == "Buy" else max(bids, default=None)
        if best is not None and (price_ticks >= best if order.side == "Buy" else price_ticks <= best):
            return shapes.order_fields(m, m.cancel(key, {"orderId": order.order_id, "symbol": symbol}, now_ms))
    shapes.note_amendment(m, order.order_id)
    try:
        order = m.amend(key, {"orderId": order.order_id, "symbol": symbol}, price_ticks, lots, now_ms)
    except Rejected:
        shapes.forget_amendment(m, order.order_id)
        raise
    return shapes.order_fields(m, order)


def all_orders(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """GET /fapi/v1/allOrders: a symbol's orders, open and closed, oldest first; from `orderId` on
    (else the newest `limit`), within startTime/endTime; limit 500 by default, 1000 at most."""
    symbol = _symbol(m, params)
    from_id = _ms(params, "orderId", 0)
    begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    limit = _limit(params, 500, 1000)
    orders = sorted((o for o in m.account(key).orders.values() if o.symbol == symbol
                     and int(o.order_id) >= from_id and begin <= o.created_ms <= end), key=lambda o: int(o.order_id))
    orders = orders[:limit] if from_id else orders[-limit:]
    return [shapes.order_fields(m, o) for o in orders]


def get_order(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    """One order, open or closed; by origClientOrderId the latest order that carried it."""
    _, _, order = _find(m, key, params, -2013)
    return shapes.order_fields(m, order)


def open_orders(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    symbol = _symbol(m, params, required=False)
    orders = sorted(m.account(key).open_orders(symbol), key=lambda o: int(o.order_id))
    return [shapes.order_fields(m, o) for o in orders]


def user_trades(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """The account's trades of one symbol, oldest first: by orderId, startTime/endTime, fromId, limit."""
    symbol = _symbol(m, params)
    order_id = _text(params, "orderId")
    begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    from_id = _ms(params, "fromId", 0)
    rows = [e for e in m.account(key).executions
            if e.order is not None and e.symbol == symbol and (not order_id or e.order.order_id == order_id)
            and begin <= e.time_ms <= end and int(e.exec_id) >= from_id]
    return [shapes.trade_fields(m, e) for e in rows[:_limit(params, 500, 1000)]]


# --- account -------------------------------------------------------------------------------

def position_risk(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    return shapes.positions(m, m.account(key), now_ms, _symbol(m, params, required=False))


def balance(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    return shapes.balance_fields(m, m.account(key), now_ms)


def account_info(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    return shapes.account_fields(m, m.account(key), now_ms)


def get_position_side(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    return {"dualSidePosition": bool(m.account(key).hedge_symbols)}


def set_position_side(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    hedge = _choice(params, "dualSidePosition", ("true", "false"), -1130) == "true"
    account = m.account(key)
    if bool(account.hedge_symbols) == hedge:
        raise BinanceError(-4059)
    if account.open:
        raise BinanceError(-4067)
    if any(p.lots for p in account.positions.values()):
        raise BinanceError(-4068)
    m.switch_all_modes(key, hedge)
    return {"code": 200, "msg": "success"}


def set_leverage(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    symbol = _symbol(m, params)
    text = _text(params, "leverage", True)
    if not text.isdigit() or not 1 <= int(text) <= MAX_LEVERAGE:
        raise BinanceError(-4028, MESSAGES[-4028].format(text))
    m.account(key).leverage[symbol] = Decimal(text)
    return {"leverage": int(text), "maxNotionalValue": "1000000", "symbol": symbol}


def commission_rate(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    return {"symbol": _symbol(m, params), "makerCommissionRate": num(m.rules.maker_fee),
            "takerCommissionRate": num(m.rules.taker_fee)}


def income(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """The income ledger, oldest first: by symbol, incomeType, startTime/endTime (without both, the
    last 7 days), limit (100 by default, 1000 at most). Only what the engine keeps (its last 10,000
    executions)."""
    symbol = _symbol(m, params, required=False)
    kind = _choice(params, "incomeType", ("TRANSFER", "WELCOME_BONUS", "REALIZED_PNL", "FUNDING_FEE", "COMMISSION",
                                          "INSURANCE_CLEAR", "REFERRAL_KICKBACK", "COMMISSION_REBATE",
                                          "API_REBATE", "CONTEST_REWARD", "CROSS_COLLATERAL_TRANSFER",
                                          "OPTIONS_PREMIUM_FEE", "OPTIONS_SETTLE_PROFIT", "INTERNAL_TRANSFER",
                                          "AUTO_EXCHANGE", "DELIVERED_SETTELMENT", "COIN_SWAP_DEPOSIT",
                                          "COIN_SWAP_WITHDRAW", "POSITION_LIMIT_INCREASE_FEE"), -1130, False)
    if not _text(params, "startTime") and not _text(params, "endTime"):
        begin, end = now_ms - 7 * 86_400_000, now_ms
    else:
        begin, end = _ms(params, "startTime", 0), _ms(params, "endTime", 2**62)
    rows = [r for e in m.account(key).executions if (symbol is None or e.symbol == symbol)
            and begin <= e.time_ms <= end for r in shapes.income_rows(e) if not kind or r["incomeType"] == kind]
    return rows[:_limit(params, 100, 1000)]


def fee_burn(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    return {"feeBurn": False}


def api_restrictions(m: Matching, key: str, params: Params, now_ms: int) -> dict:
    """The key's restrictions (the spot host's /sapi/v1/account/apiRestrictions): `key_wallet` lets
    it withdraw, `key_ips` ["*"] binds it to no IP."""
    ips = list(getattr(m.policy, "key_ips", ["127.0.0.1"]))
    return {"ipRestrict": "*" not in ips, "createTime": 1_700_000_000_000, "enableInternalTransfer": False,
            "enableFutures": True, "enablePortfolioMarginTrading": False, "enableVanillaOptions": False,
            "permitsUniversalTransfer": False, "enableReading": True, "enableSpotAndMarginTrading": False,
            "enableWithdrawals": bool(getattr(m.policy, "key_wallet", False)), "enableMargin": False}


Handler = Callable[[Matching, str, Params, int], object]
# (method, path) -> (handler, request weight, whether it is an order create)
HANDLERS: dict[tuple[str, str], tuple[Handler, int, bool]] = {
    ("POST", "/fapi/v1/order"): (place_order, 0, True),
    ("DELETE", "/fapi/v1/order"): (cancel_order, 1, False),
    ("PUT", "/fapi/v1/order"): (modify_order, 0, True),  # 1 on the order counts, 0 on the IP's weight
    ("GET", "/fapi/v1/order"): (get_order, 1, False),
    ("GET", "/fapi/v1/allOrders"): (all_orders, 5, False),
    ("GET", "/fapi/v3/account"): (account_info, 5, False),
    ("GET", "/fapi/v1/openOrders"): (open_orders, 40, False),
    ("GET", "/fapi/v1/userTrades"): (user_trades, 5, False),
    ("GET", "/fapi/v3/positionRisk"): (position_risk, 5, False),
    ("GET", "/fapi/v3/balance"): (balance, 5, False),
    ("GET", "/fapi/v1/positionSide/dual"): (get_position_side, 30, False),
    ("POST", "/fapi/v1/positionSide/dual"): (set_position_side, 1, False),
    ("POST", "/fapi/v1/leverage"): (set_leverage, 1, False),
    ("GET", "/fapi/v1/commissionRate"): (commission_rate, 20, False),
    ("GET", "/fapi/v1/income"): (income, 30, False),
    ("GET", "/fapi/v1/feeBurn"): (fee_burn, 30, False),
    ("GET", "/sapi/v1/account/apiRestrictions"): (api_restrictions, 1, False),
}


def answer(handler: Handler, m: Matching, key: str, params: Params, now_ms: int) -> tuple[int, object, int]:
    """(HTTP status, body, code) of a request; code 0 when it was carried out."""
    try:
        return 200, handler(m, key, params, now_ms), 0
    except Rejected as exc:
        code = REASONS.get(exc.reason)
        error = BinanceError(code) if code else BinanceError(-1130, exc.message)
    except BinanceError as exc:
        error = exc
    return error.http_status, error.body(), error.code
