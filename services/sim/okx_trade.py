"""OKX V5's signed trading and account REST for USDT swaps over the matching engine
(protocol-trading-okx-bitget-binance.md §2.3-2.8).

Each handler takes the OKX engine, the caller's API key, the parameters (the query of a GET,
the JSON body of a POST) and the time, and returns the `data` list of OKX's envelope
`{"code": "0", "msg": "", "data": [...]}`; a refusal raises `OkxError`. On the trade
endpoints (place and cancel) a refusal answers per item, as OKX does:

    {"code": "1", "msg": "All operations failed", "data": [{"clOrdId": "...", "ordId": "",
     "tag": "", "ts": "...", "sCode": "51008", "sMsg": "...", "subCode": ""}],
     "inTime": "...", "outTime": "..."}

and elsewhere with a top-level code (`{"code": "51603", "msg": "Order does not exist.",
"data": []}`). Sizes are contracts. A new account is in long/short mode (`posSide` long or
short required, 51000 without); net mode (`set-position-mode`) takes `posSide` net or none,
and `reduceOnly` there.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from services.sim import okx_private as shapes
from services.sim.market import plain as num
from services.sim.matching import Matching, OrderRequest, Rejected, VenueRules
from services.sim.okx_public import MAX_LIMIT_SZ, MAX_MARKET_SZ, ct_val, inst_id

Params = Mapping[str, object]
TAKER_FEE, MAKER_FEE = Decimal("0.0005"), Decimal("0.0002")  # OKX Lv1 USDT-margined swaps
RULES = VenueRules(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, link_ids_reusable=True, trim_closes=False,
                   hedge_by_default=True)
ORDER_TYPES = {"market": ("Market", "IOC"), "limit": ("Limit", "GTC"), "post_only": ("Limit", "PostOnly"),
               "fok": ("Limit", "FOK"), "ioc": ("Limit", "IOC")}
MAX_LEVER = 100  # instruments' lever

# OKX's messages (error-code-rest-api-public) and the HTTP statuses that are not 200
MESSAGES = {
    "50001": "Service temporarily unavailable. Please try again later.",
    "50004": "API endpoint request timeout. (does not mean that the request was successful or failed, please check "
             "the request result).",
    "50011": "Rate limit reached. Please refer to API documentation and throttle requests accordingly.",
    "50013": "Systems are busy. Please try again later.",
    "50026": "System error. Try again later",
    "50102": "Timestamp request expired.", "50111": "Invalid OK-ACCESS-KEY.", "50113": "Invalid signature.",
    "51000": "Parameter {} error", "51001": "Instrument ID, Instrument ID code or Spread ID doesn't exist.",
    "51008": "Order failed. Insufficient USDT margin in account",
    "51016": "Client order ID already exists.",
    "51020": "Your order should meet or exceed the minimum order amount.",
    "51102": "Order failed, the number of pending orders for this instId can't be more than 500 (orders)",
    "51112": "Close order size exceeds available size for this position.",
    "51121": "Order quantity must be a multiple of the lot size.",
    "51149": "Order timed out. Please try again. (does not mean that the request was successful or failed, please "
             "check the request result)",
    "51150": "The precision of the number of trades or the price exceeds the limit.",
    "51169": "Order failed because you don't have any positions in this direction for this contract to reduce or "
             "close.",
    "51170": "Failed to place order. A reduce-only order can't be the same trading direction as your existing "
             "positions.",
    "51202": "Market order amount exceeds the maximum amount.",
    "51203": "Order amount exceeds the limit {}.",
    "51204": "The price for the limit order cannot be empty.",
    "51400": "Order cancellation failed as the order has been filled, canceled or does not exist.",
    "51503": "Order modification failed as the order has been filled, canceled or does not exist.",
    "51603": "Order does not exist.",
    "59000": "Settings failed. Close any open positions or orders before modifying settings.",
    "59102": "Leverage exceeds the maximum leverage. Adjust the leverage.",
}
HTTP_STATUS = {"50001": 503, "50004": 400, "50011": 429, "50013": 429, "50014": 400, "50015": 400, "50026": 500,
               "50102": 401, "50111": 401, "50113": 401, "51000": 400, "51149": 500}
REASONS = {"duplicate_link_id": "51016", "position_mode": "51000", "too_many_orders": "51102",
           "no_position": "51169", "same_direction": "51170", "close_exceeds": "51112",
           "insufficient_margin": "51008", "not_found": "51400", "mode_busy": "59000"}
# reject_next / reject_link_ids faults give Bybit's retCodes: OKX answers its own code for them
FAULT_CODES = {10016: "50026", 10006: "50011", 10002: "50102", 10003: "50111", 10004: "50113", 10001: "51000",
               110007: "51008", 110072: "51016", 110017: "51169", 110001: "51400", 110020: "51102"}


class OkxError(Exception):
    """A refusal with OKX's code; `item` False for a refusal OKX answers at the top level even on
    a trade endpoint (a missing parameter, a system error)."""

    def __init__(self, code: str, msg: str | None = None, item: bool = True) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "")
        self.item = item and not code.startswith("50")


def fault_code(reject_code: int) -> str:
    """OKX's code for a `reject_code` fault: Bybit's codes mapped (FAULT_CODES), OKX's
    (50000-59999) kept, anything else 50026 "System error"."""
    if reject_code in FAULT_CODES:
        return FAULT_CODES[reject_code]
    return str(reject_code) if 50000 <= reject_code <= 59999 else "50026"


def new_ids(start: int = 600_000_000_000_000_001) -> Callable[[], str]:
    """OKX's ids are numeric strings (ordId, tradeId, billId)."""
    counter = itertools.count(start)
    return lambda: str(next(counter))


# --- parameters ---------------------------------------------------------------------------

def _text(params: Params, name: str, required: bool = False) -> str:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise OkxError("50014", f"Parameter {name} can not be empty.", item=False)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise OkxError("51000", f"Parameter {name} error")
    return str(value)


def _choice(params: Params, name: str, choices, required: bool = True) -> str:
    value = _text(params, name, required)
    if value and value not in choices:
        raise OkxError("51000", f"Parameter {name} error")
    return value


def _symbol(m: Matching, params: Params, required: bool = True) -> str | None:
    instrument = _text(params, "instId", required)
    if not instrument:
        return None
    symbol = next((s for s in m.model.states if inst_id(s) == instrument), None)
    if symbol is None:
        raise OkxError("51001")
    return symbol


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise OkxError("51000", f"Parameter {name} error") from None
    if not value.is_finite() or value <= 0:
        raise OkxError("51000", f"Parameter {name} error")
    return value


def _ms(params: Params, name: str, default: int) -> int:
    text = _text(params, name)
    if not text:
        return default
    if not text.isdigit():
        raise OkxError("51000", f"Parameter {name} error")
    return int(text)


def _limit(params: Params) -> int:
    text = _text(params, "limit") or "100"
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise OkxError("51000", "Parameter limit error")
    return int(text)


def _page(rows: list, params: Params, id_of: Callable[[object], str]) -> list:
    """Newest first; `after` = older than that id, `before` = newer, `limit` at most 100."""
    after, before = _text(params, "after"), _text(params, "before")
    if after:
        rows = [r for r in rows if int(id_of(r)) < int(after)] if after.isdigit() else []
    if before:
        rows = [r for r in rows if int(id_of(r)) > int(before)] if before.isdigit() else []
    return rows[:_limit(params)]


def order_request(m: Matching, key: str, params: Params) -> OrderRequest:
    """`POST /api/v5/trade/order` parameters as an OrderRequest; OkxError naming what is wrong."""
    symbol = _symbol(m, params)
    inst = m.model.states[symbol].inst
    td_mode = _choice(params, "tdMode", ("cross", "isolated"))
    side = _choice(params, "side", ("buy", "sell"))
    order_type, tif = ORDER_TYPES[_choice(params, "ordType", ORDER_TYPES)]
    hedge = symbol in m.account(key).hedge_symbols
    pos_side = _text(params, "posSide")
    if pos_side not in (("long", "short") if hedge else ("", "net")):
        raise OkxError("51000", "Parameter posSide error")
    size = _decimal(_text(params, "sz", True), "sz")
    lot_sz = inst.lot / ct_val(symbol)
    if size < lot_sz:  # minSz is one lot
        raise OkxError("51020")
    if size % lot_sz:
        raise OkxError("51121")
    if order_type == "Market" and size > MAX_MARKET_SZ:
        raise OkxError("51202")
    if size > MAX_LIMIT_SZ:
        raise OkxError("51203", MESSAGES["51203"].format(num(MAX_LIMIT_SZ)))
    price_ticks = None
    if order_type == "Limit":
        text = _text(params, "px")
        if not text:
            raise OkxError("51204")
        price = _decimal(text, "px")
        if price % inst.tick:
            raise OkxError("51150")
        price_ticks = int(price / inst.tick)
    link_id = _text(params, "clOrdId")
    if len(link_id) > 32 or not all(c.isascii() and c.isalnum() for c in link_id):
        raise OkxError("51000", "Parameter clOrdId error")
    reduce_only = params.get("reduceOnly", False)
    if reduce_only in ("true", "false"):
        reduce_only = reduce_only == "true"
    if not isinstance(reduce_only, bool):
        raise OkxError("51000", "Parameter reduceOnly error")
    # long/short mode: a close (sell long, buy short) is reduce-only by itself; the flag is for net mode
    idx = {"long": 1, "short": 2}.get(pos_side, 0)
    return OrderRequest(symbol, side.capitalize(), order_type, tif, price_ticks, int(size / lot_sz),
                        reduce_only and not hedge, idx, link_id, td_mode)


def reduces_only(params: Params) -> bool:
    """Whether an order's parameters can only reduce a position: `reduceOnly` (net mode), or a
    close in long/short mode (sell long, buy short), which sends no flag. The journal's word."""
    return (params.get("reduceOnly") in (True, "true")
            or (params.get("posSide"), params.get("side")) in (("long", "sell"), ("short", "buy")))


# --- trade ---------------------------------------------------------------------------------

def place_order(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    order = m.create(key, order_request(m, key, params), now_ms)
    return [{"clOrdId": order.link_id, "ordId": order.order_id, "tag": "", "ts": str(now_ms), "sCode": "0",
             "sMsg": "", "subCode": ""}]


def cancel_order(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    symbol = _symbol(m, params)
    order_id, link_id = _text(params, "ordId"), _text(params, "clOrdId")
    if not order_id and not link_id:
        raise OkxError("50015", "Either parameter ordId or clOrdId is required.", item=False)
    order = m.cancel(key, {"orderId": order_id, "orderLinkId": link_id, "symbol": symbol}, now_ms)
    return [{"clOrdId": order.link_id, "ordId": order.order_id, "ts": str(now_ms), "sCode": "0", "sMsg": ""}]


def _contracts_to_lots(m: Matching, symbol: str, text: str, name: str) -> int:
    size = _decimal(text, name)
    lot_sz = m.model.states[symbol].inst.lot / ct_val(symbol)
    if size < lot_sz:
        raise OkxError("51020")
    if size % lot_sz:
        raise OkxError("51121")
    if size > MAX_LIMIT_SZ:
        raise OkxError("51203", MESSAGES["51203"].format(num(MAX_LIMIT_SZ)))
    return int(size / lot_sz)


# the engine's amend refusals as OKX's sCodes (not_found: filled, canceled or unknown)
AMEND_REASONS = {"not_found": ("51503", None), "unchanged": ("51000", "Parameter newSz or newPx error: the order "
                                                                       "remains unchanged"),
                 "below_filled": ("51000", "Parameter newSz error: not above the filled size"),
                 "insufficient_margin": ("51008", None)}


def amend_order(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """`POST /api/v5/trade/amend-order`: a resting order's newSz (contracts, the new total
    including what filled) and/or newPx. Less size keeps the order's queue place; a new price
    or more size requeues it and takes what it crosses. `cxlOnFail` true cancels the order
    when the amendment is refused; `reqId` comes back in the answer and the `orders` push."""
    symbol = _symbol(m, params)
    order_id, link_id = _text(params, "ordId"), _text(params, "clOrdId")
    if not order_id and not link_id:
        raise OkxError("50015", "Either parameter ordId or clOrdId is required.", item=False)
    req_id = _text(params, "reqId")
    if len(req_id) > 32:
        raise OkxError("51000", "Parameter reqId error")
    cxl_on_fail = params.get("cxlOnFail", False)
    if cxl_on_fail in ("true", "false"):
        cxl_on_fail = cxl_on_fail == "true"
    if not isinstance(cxl_on_fail, bool):
        raise OkxError("51000", "Parameter cxlOnFail error")
    new_sz, new_px = _text(params, "newSz"), _text(params, "newPx")
    if not new_sz and not new_px:
        raise OkxError("51000", "Parameter newSz or newPx error")
    request = {"orderId": order_id, "orderLinkId": link_id, "symbol": symbol}
    try:
        lots = _contracts_to_lots(m, symbol, new_sz, "newSz") if new_sz else None
        price_ticks = None
        if new_px:
            price = _decimal(new_px, "newPx")
            tick = m.model.states[symbol].inst.tick
            if price % tick:
                raise OkxError("51150")
            price_ticks = int(price / tick)
        order = m.amend(key, request, price_ticks, lots, now_ms)
    except (Rejected, OkxError) as exc:
        if cxl_on_fail:
            with contextlib.suppress(Rejected):
                m.cancel(key, request, now_ms)
        if isinstance(exc, OkxError):
            raise
        code, msg = AMEND_REASONS.get(exc.reason, ("51000", exc.message))
        raise OkxError(code, msg) from None
    order.okx_amend = (req_id, now_ms)  # read by the `orders` push (okx_private._push_extras)
    return [{"clOrdId": order.link_id, "ordId": order.order_id, "reqId": req_id, "ts": str(now_ms), "sCode": "0",
             "sMsg": ""}]


def get_order(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """One order, open or closed; by clOrdId the latest order that carried it."""
    symbol = _symbol(m, params)
    order_id, link_id = _text(params, "ordId"), _text(params, "clOrdId")
    if not order_id and not link_id:
        raise OkxError("50015", "Either parameter ordId or clOrdId is required.")
    account = m.account(key)
    order = m.find(account, {"orderId": order_id, "orderLinkId": link_id})
    if order is None or order.symbol != symbol:
        raise OkxError("51603")
    return [shapes.current_order(m, account, order)]


def orders_pending(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    if _choice(params, "instType", ("SWAP", "FUTURES", "SPOT", "MARGIN", "OPTION"), False) not in ("", "SWAP"):
        return []
    symbol = _symbol(m, params, required=False)
    ord_type = _choice(params, "ordType", ORDER_TYPES, False)
    state = _choice(params, "state", ("live", "partially_filled"), False)
    account = m.account(key)
    rows = [shapes.current_order(m, account, o) for o in account.open_orders(symbol)]
    rows = [r for r in rows if (not ord_type or r["ordType"] == ord_type) and (not state or r["state"] == state)]
    rows.sort(key=lambda r: int(r["ordId"]), reverse=True)
    return _page(rows, params, lambda r: r["ordId"])


HISTORY_MS = 7 * 24 * 3600 * 1000


def orders_history(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """Closed orders (filled, canceled) of the last 7 days, newest first (by ordId), in the
    record of `/api/v5/trade/order`; instType required, instId, ordType, state, begin/end
    (ms, on uTime), after/before (ordId), limit (100)."""
    inst_type = _choice(params, "instType", ("SWAP", "FUTURES", "SPOT", "MARGIN", "OPTION"))
    symbol = _symbol(m, params, required=False)
    ord_type = _choice(params, "ordType", ORDER_TYPES, False)
    state = _choice(params, "state", ("filled", "canceled", "mmp_canceled"), False)
    begin, end = _ms(params, "begin", 0), _ms(params, "end", 2**62)
    if inst_type != "SWAP":
        return []
    account = m.account(key)
    orders = [account.orders[i] for i in dict.fromkeys(account.closed) if i in account.orders]
    rows = [shapes.current_order(m, account, o) for o in orders
            if not o.is_open and (symbol is None or o.symbol == symbol)
            and o.updated_ms >= now_ms - HISTORY_MS and begin <= o.updated_ms <= end]
    rows = [r for r in rows if (not ord_type or r["ordType"] == ord_type) and (not state or r["state"] == state)]
    rows.sort(key=lambda r: int(r["ordId"]), reverse=True)
    return _page(rows, params, lambda r: r["ordId"])


def fills(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """Trades of the account, newest first; by instId, ordId (or clOrdId), after/before billId,
    begin/end ms."""
    if _choice(params, "instType", ("SWAP", "FUTURES", "SPOT", "MARGIN", "OPTION"), False) not in ("", "SWAP"):
        return []
    symbol = _symbol(m, params, required=False)
    order_id, link_id = _text(params, "ordId"), _text(params, "clOrdId")
    begin, end = _ms(params, "begin", 0), _ms(params, "end", 2**62)
    rows = [e for e in reversed(m.account(key).executions)
            if e.order is not None and (symbol is None or e.symbol == symbol)
            and (not order_id or e.order.order_id == order_id) and (not link_id or e.order.link_id == link_id)
            and begin <= e.time_ms <= end]
    return [shapes.fill_fields(m, e) for e in _page(rows, params, lambda e: e.exec_id)]


# --- account -------------------------------------------------------------------------------

def positions(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """Open positions (pos not 0): one record per side in long/short mode, signed `pos` in net."""
    if _choice(params, "instType", ("SWAP", "FUTURES", "MARGIN", "OPTION"), False) not in ("", "SWAP"):
        return []
    wanted = set(filter(None, _text(params, "instId").split(",")))
    if unknown := wanted - {inst_id(s) for s in m.model.states}:
        raise OkxError("51001", f"Instrument ID, Instrument ID code or Spread ID doesn't exist. {sorted(unknown)}")
    rows = shapes.open_positions(m, m.account(key), now_ms)
    return [r for r in rows if not wanted or r["instId"] in wanted]


def positions_history(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """Positions closed, fully (type 2) or in part and still open (type 1), newest first (by
    uTime, the last close); instType, instId, mgnMode, type, posId, after/before (uTime ms),
    limit (100). Derived from the account's fills and funding (okx_private.closed_positions)."""
    if _choice(params, "instType", ("SWAP", "FUTURES", "MARGIN", "OPTION"), False) not in ("", "SWAP"):
        return []
    symbol = _symbol(m, params, required=False)
    mode = _choice(params, "mgnMode", ("cross", "isolated"), False)
    kind = _choice(params, "type", ("1", "2", "3", "4", "5", "6"), False)
    pos_id = _text(params, "posId")
    after, before = _ms(params, "after", 2**62), _ms(params, "before", 0)
    rows = [r for r in shapes.closed_positions(m, m.account(key))
            if (symbol is None or r["instId"] == inst_id(symbol)) and (not mode or r["mgnMode"] == mode)
            and (not kind or r["type"] == kind) and (not pos_id or r["posId"] == pos_id)
            and before < int(r["uTime"]) < after]
    rows.sort(key=lambda r: int(r["uTime"]), reverse=True)
    return rows[:_limit(params)]


def balance(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    data = shapes.balance_fields(m, m.account(key), now_ms)
    wanted = set(filter(None, _text(params, "ccy").split(",")))
    if wanted and "USDT" not in wanted:
        data["details"] = []
    return [data]


def config(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """The account's settings and the key's: `perm` read_only,trade (with withdraw under the
    `key_wallet` fault), `ip` the IPs it is bound to (`key_ips`; "" when unbound)."""
    ips = list(getattr(m.policy, "key_ips", ["127.0.0.1"]))
    wallet = getattr(m.policy, "key_wallet", False)
    account = m.account(key)
    return [{"acctLv": "2", "acctStpMode": "cancel_maker", "autoLoan": False, "ctIsoMode": "automatic",
             "enableSpotBorrow": False, "greeksType": "PA", "ip": "" if "*" in ips else ",".join(ips),
             "kycLv": "2", "label": "simulator", "level": "Lv1", "levelTmp": "", "liquidationGear": "-1",
             "mainUid": shapes.uid(key), "mgnIsoMode": "automatic", "opAuth": "0",
             "perm": "read_only,withdraw,trade" if wallet else "read_only,trade",
             "posMode": "long_short_mode" if account.hedge_symbols else "net_mode", "roleType": "0",
             "spotBorrowAutoRepay": False, "spotOffsetType": "", "spotRoleType": "0", "spotTraderInsts": [],
             "traderInsts": [], "type": "0", "uid": shapes.uid(key)}]


def set_position_mode(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    mode = _choice(params, "posMode", ("long_short_mode", "net_mode"))
    m.switch_all_modes(key, hedge=mode == "long_short_mode")
    return [{"posMode": mode}]


def set_leverage(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """One leverage per instrument (OKX keeps one per margin mode and, isolated in long/short
    mode, per side: the simulator does not)."""
    symbol = _symbol(m, params)
    lever = _decimal(_text(params, "lever", True), "lever")
    mode = _choice(params, "mgnMode", ("cross", "isolated"))
    pos_side = _choice(params, "posSide", ("long", "short", "net"), False)
    if lever < 1:
        raise OkxError("51000", "Parameter lever error")
    if lever > MAX_LEVER:
        raise OkxError("59102")
    if mode == "isolated" and m.account(key).hedge_symbols and pos_side not in ("long", "short"):
        raise OkxError("51000", "Parameter posSide error")
    m.account(key).leverage[symbol] = lever
    return [{"lever": num(lever), "mgnMode": mode, "instId": inst_id(symbol), "posSide": pos_side}]


def trade_fee(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    _choice(params, "instType", ("SWAP", "FUTURES", "SPOT", "MARGIN", "OPTION"))
    maker, taker = num(-m.rules.maker_fee), num(-m.rules.taker_fee)  # negative: a fee charged
    return [{"category": "1", "delivery": "", "exercise": "", "fiat": [], "instType": params["instType"],
             "level": "Lv1", "maker": maker, "makerU": maker, "makerUSDC": "", "ruleType": "normal",
             "taker": taker, "takerU": taker, "takerUSDC": "", "ts": str(now_ms)}]


def bills(m: Matching, key: str, params: Params, now_ms: int) -> list[dict]:
    """Trade (type 2) and funding (type 8) bills of the last executions, newest first
    (`/account/bills` and `/account/bills-archive` alike: the engine keeps its last 10,000)."""
    if _choice(params, "instType", ("SWAP", "FUTURES", "SPOT", "MARGIN", "OPTION"), False) not in ("", "SWAP"):
        return []
    if _text(params, "ccy") not in ("", "USDT"):
        return []
    symbol = _symbol(m, params, required=False)
    kind, sub_type = _text(params, "type"), _text(params, "subType")
    begin, end = _ms(params, "begin", 0), _ms(params, "end", 2**62)
    account = m.account(key)
    rows = []
    for e in reversed(account.executions):
        if (symbol is None or e.symbol == symbol) and begin <= e.time_ms <= end:
            bill = shapes.bill_fields(m, e, m.position(account, e.symbol, e.position_idx).margin_mode)
            if (not kind or bill["type"] == kind) and (not sub_type or bill["subType"] == sub_type):
                rows.append(bill)
    return _page(rows, params, lambda r: r["billId"])


Handler = Callable[[Matching, str, Params, int], list[dict]]
# (method, path) -> (handler, whether refusals answer per item)
HANDLERS: dict[tuple[str, str], tuple[Handler, bool]] = {
    ("POST", "/api/v5/trade/order"): (place_order, True),
    ("POST", "/api/v5/trade/cancel-order"): (cancel_order, True),
    ("POST", "/api/v5/trade/amend-order"): (amend_order, True),
    ("GET", "/api/v5/trade/orders-history"): (orders_history, False),
    ("GET", "/api/v5/account/positions-history"): (positions_history, False),
    ("GET", "/api/v5/trade/order"): (get_order, False),
    ("GET", "/api/v5/trade/orders-pending"): (orders_pending, False),
    ("GET", "/api/v5/trade/fills"): (fills, False),
    ("GET", "/api/v5/account/positions"): (positions, False),
    ("GET", "/api/v5/account/balance"): (balance, False),
    ("GET", "/api/v5/account/config"): (config, False),
    ("POST", "/api/v5/account/set-position-mode"): (set_position_mode, False),
    ("POST", "/api/v5/account/set-leverage"): (set_leverage, False),
    ("GET", "/api/v5/account/trade-fee"): (trade_fee, False),
    ("GET", "/api/v5/account/bills"): (bills, False),
    ("GET", "/api/v5/account/bills-archive"): (bills, False),  # 3 months at OKX; here what the engine keeps
}


def refusal(error: OkxError, per_item: bool, params: Params, now_ms: int) -> tuple[int, dict]:
    """(HTTP status, body) of a refusal: per item on a trade endpoint, else top-level."""
    if per_item and error.item:
        item = {"clOrdId": params.get("clOrdId") or "", "ordId": params.get("ordId") or "", "tag": "",
                "ts": str(now_ms), "sCode": error.code, "sMsg": error.msg, "subCode": ""}
        if {"reqId", "newSz", "newPx"} & set(params):  # amend-order's answer carries reqId back
            item["reqId"] = str(params.get("reqId") or "")
        return 200, {"code": "1", "msg": "All operations failed", "data": [item], **_times(now_ms)}
    return HTTP_STATUS.get(error.code, 200), {"code": error.code, "msg": error.msg, "data": []}


def answer(handler: Handler, per_item: bool, m: Matching, key: str, params: Params,
           now_ms: int) -> tuple[int, dict, str]:
    """(HTTP status, body, code) of a request; the code is the item's sCode when it failed per item."""
    try:
        data = handler(m, key, params, now_ms)
    except Rejected as exc:
        code = REASONS.get(exc.reason)
        error = OkxError(code, MESSAGES[code].format("posSide")) if code else OkxError("51000", exc.message)
    except OkxError as exc:
        error = exc
    else:
        body = {"code": "0", "msg": "", "data": data}
        return 200, ({**body, **_times(now_ms)} if per_item else body), "0"
    status, body = refusal(error, per_item, params, now_ms)
    return status, body, error.code


def _times(now_ms: int) -> dict:
    return {"inTime": str(now_ms * 1000), "outTime": str(now_ms * 1000 + 150)}
