"""Bybit V5's signed trading and account REST over the matching engine
(protocol-bybit-v5.md §5.3): order create, cancel, cancel-all, realtime and history;
execution list; position list and switch-mode; wallet balance and fee rate.

Each handler takes the engine, the caller's API key, the parameters (the query of a GET, the
JSON body of a POST) and the time, and returns `(retCode, retMsg, result)`. A request the
venue refuses answers its retCode and a message saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from services.sim import bybit_private as shapes
from services.sim.bybit_rest import (
    MAX_ORDER_LOTS,
    Answer,
    ParamError,
    Unlisted,
    int_param,
    require_linear,
    require_traded,
    symbol_param,
)
from services.sim.market import MarketModel, plain
from services.sim.matching import MAKER_FEE, TAKER_FEE, Matching, Order, OrderRequest, Rejected

Params = Mapping[str, object]


def _ids(order: Order) -> dict:
    return {"orderId": order.order_id, "orderLinkId": order.link_id}


def _text(params: Params, name: str, required: bool = False) -> str:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ParamError(f"params error: {name} is required")
        return ""
    if not isinstance(value, str):
        raise ParamError(f"params error: {name} must be a string")
    return value


def _steps(text: str, step: Decimal, name: str, filter_name: str) -> int:
    """`text` as a whole number of `step`s, or a ParamError naming the filter it breaks."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ParamError(f"params error: {name} {text!r} is not a number") from None
    if not value.is_finite():
        raise ParamError(f"params error: {name} {text!r} is not a number")
    steps, rest = divmod(value, step)
    if rest:
        raise ParamError(f"params error: {name} {text} is not a multiple of {filter_name} {step}")
    return int(steps)


def order_request(model: MarketModel, params: Params) -> OrderRequest:
    """`/v5/order/create` parameters as an OrderRequest; ParamError (10001) naming what is wrong."""
    require_traded(params)
    symbol = _text(params, "symbol", True)
    if symbol not in model.states:
        raise ParamError("params error: symbol invalid")
    inst = model.states[symbol].inst
    side = _text(params, "side", True)
    if side not in ("Buy", "Sell"):
        raise ParamError(f"params error: side {side} invalid: Buy or Sell")
    order_type = _text(params, "orderType", True)
    if order_type not in ("Market", "Limit"):
        raise ParamError(f"params error: orderType {order_type} invalid: Market or Limit")
    tif = _text(params, "timeInForce") or "GTC"
    if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
        raise ParamError(f"params error: timeInForce {tif} invalid: GTC, IOC, FOK or PostOnly")
    lots = _steps(_text(params, "qty", True), inst.lot, "qty", "qtyStep")
    if lots < 1:
        raise ParamError(f"The number of contracts exceeds minimum limit allowed: qty must be at least {inst.lot}")
    if lots > MAX_ORDER_LOTS:
        raise ParamError(f"The number of contracts exceeds maximum limit allowed: qty must be at most "
                         f"{inst.lot * MAX_ORDER_LOTS}")
    price_ticks = None
    if order_type == "Limit":
        price_ticks = _steps(_text(params, "price", True), inst.tick, "price", "tickSize")
        if price_ticks < 1:
            raise ParamError("params error: price must be positive")
    reduce_only = params.get("reduceOnly", False)
    if not isinstance(reduce_only, bool):
        raise ParamError("params error: reduceOnly must be true or false")
    idx = params.get("positionIdx", 0)
    if idx not in (0, 1, 2, "0", "1", "2"):
        raise ParamError("params error: positionIdx must be 0 (one-way), 1 or 2 (hedge)")
    link_id = _text(params, "orderLinkId")
    if len(link_id) > 36 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in link_id):
        raise ParamError("params error: orderLinkId is at most 36 characters of [A-Za-z0-9-_]")
    return OrderRequest(symbol, side, order_type, tif, price_ticks, lots, reduce_only, int(idx), link_id)


def create(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    return 0, "OK", _ids(m.create(key, order_request(m.model, params), now_ms))


def amend(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """A resting limit order's `qty` or `price` (either, or both), found by orderId or orderLinkId."""
    require_traded(params)
    symbol = symbol_param(m.model, params, required=True)
    if not (params.get("orderId") or params.get("orderLinkId")):
        raise ParamError("params error: orderId or orderLinkId is required")
    inst = m.model.states[symbol].inst
    qty, price = _text(params, "qty"), _text(params, "price")
    lots = _steps(qty, inst.lot, "qty", "qtyStep") if qty else None
    if lots is not None and not 1 <= lots <= MAX_ORDER_LOTS:
        raise ParamError(f"params error: qty must be in [{inst.lot}, {inst.lot * MAX_ORDER_LOTS}]")
    ticks = _steps(price, inst.tick, "price", "tickSize") if price else None
    if ticks is not None and ticks < 1:
        raise ParamError("params error: price must be positive")
    return 0, "OK", _ids(m.amend(key, dict(params), ticks, lots, now_ms))


def cancel(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_traded(params)
    symbol_param(m.model, params, required=True)
    if not params.get("orderId") and not params.get("orderLinkId"):
        raise ParamError("params error: orderId or orderLinkId is required")
    return 0, "OK", _ids(m.cancel(key, dict(params), now_ms))


def cancel_all(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_traded(params)
    symbol = symbol_param(m.model, params, required=False)
    if symbol is None and params.get("settleCoin") != "USDT":
        raise ParamError("params error: symbol or settleCoin is required for linear")
    return 0, "OK", {"list": [_ids(o) for o in m.cancel_all(key, symbol, now_ms)], "success": "1"}


def _order_list(m: Matching, key: str, params: Params, orders: list[Order], limit: int) -> Answer:
    symbol = symbol_param(m.model, params, required=False)
    wanted = [o for o in orders if (symbol is None or o.symbol == symbol)
              and (not params.get("orderId") or o.order_id == params["orderId"])
              and (not params.get("orderLinkId") or o.link_id == params["orderLinkId"])]
    wanted.sort(key=lambda o: (o.created_ms, o.order_id), reverse=True)
    return 0, "OK", {"list": [shapes.order_fields(m, o, stream=False) for o in wanted[:limit]],
                     "nextPageCursor": "", "category": "linear"}


def realtime(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """Open orders; an order asked for by id is found whatever its status; `openOnly=1`
    lists the recently closed ones (Bybit keeps 500)."""
    require_linear(params)
    if not any(params.get(k) for k in ("symbol", "baseCoin", "settleCoin", "orderId", "orderLinkId")):
        raise ParamError("params error: symbol, baseCoin or settleCoin is required for linear")
    account = m.account(key)
    limit = int_param(params, "limit", 20, 1, 50)
    if params.get("openOnly") == "1":
        orders = [account.orders[i] for i in dict.fromkeys(account.closed)]
    elif params.get("orderId") or params.get("orderLinkId"):
        orders = [o for o in [m.find(account, dict(params))] if o is not None]
    else:
        orders = account.open_orders()
    return _order_list(m, key, params, orders, limit)


def history(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_linear(params)
    account = m.account(key)
    status = params.get("orderStatus")
    orders = [o for o in account.orders.values() if status is None or o.status == status]
    return _order_list(m, key, params, orders, int_param(params, "limit", 20, 1, 50))


def executions(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_linear(params)
    symbol = symbol_param(m.model, params, required=False)
    exec_type = params.get("execType")
    order_id, link_id = params.get("orderId"), params.get("orderLinkId")
    rows = [e for e in reversed(m.account(key).executions)
            if (symbol is None or e.symbol == symbol) and (exec_type is None or e.exec_type == exec_type)
            and (not order_id or (e.order and e.order.order_id == order_id))
            and (not link_id or (e.order and e.order.link_id == link_id))]
    limit = int_param(params, "limit", 50, 1, 100)
    return 0, "OK", {"nextPageCursor": "", "category": "linear",
                     "list": [shapes.execution_fields(m, e, stream=False) for e in rows[:limit]]}


def positions(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """A symbol asked for is listed even when flat; by settleCoin only open positions."""
    require_linear(params)
    symbol = symbol_param(m.model, params, required=False)
    if symbol is None and params.get("settleCoin") != "USDT":
        raise ParamError("params error: symbol or settleCoin is required for linear")
    account = m.account(key)
    if symbol is not None:
        idxs = (1, 2) if symbol in account.hedge_symbols else (0,)
        rows = [m.position(account, symbol, idx) for idx in idxs]
    else:
        rows = [p for _, p in sorted(account.positions.items()) if p.lots]
    limit = int_param(params, "limit", 20, 1, 200)
    return 0, "OK", {"list": [shapes.position_fields(m, account, p, stream=False) for p in rows[:limit]],
                     "nextPageCursor": "", "category": "linear"}


def switch_mode(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """By `symbol`, or by `coin`: every contract settled in it (USDT: all the simulator lists)."""
    require_traded(params)
    symbol = symbol_param(m.model, params, required=False)
    coin = params.get("coin")
    if symbol is None and not coin:
        raise ParamError("params error: symbol or coin is required")
    mode = params.get("mode")
    if mode not in (0, 3, "0", "3"):
        raise ParamError("params error: mode must be 0 (one-way) or 3 (hedge)")
    if symbol is not None:
        m.switch_mode(key, symbol, hedge=int(mode) == 3)
    elif coin == "USDT":
        m.switch_all_modes(key, hedge=int(mode) == 3)
    return 0, "OK", {}


MAX_LEVERAGE = Decimal(100)  # instruments-info's leverageFilter


def set_leverage(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_traded(params)
    symbol = symbol_param(m.model, params, required=True)
    buy, sell = (str(params.get(k) or "") for k in ("buyLeverage", "sellLeverage"))
    if buy != sell:
        raise ParamError("params error: buyLeverage and sellLeverage must be the same")
    try:
        lever = Decimal(buy)
    except ArithmeticError:
        raise ParamError(f"params error: buyLeverage {buy!r} is not a number") from None
    if not (1 <= lever <= MAX_LEVERAGE and lever % Decimal("0.01") == 0):
        raise ParamError(f"params error: leverage must be in [1, {MAX_LEVERAGE}] in steps of 0.01")
    account = m.account(key)
    if m.leverage(account, symbol) == lever:
        return 110043, "Set leverage not modified", {}
    account.leverage[symbol] = lever
    return 0, "OK", {}


def closed_pnl(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """Per closing order, newest first: what its fills closed, at which average entry and exit,
    and the PnL after the fees of those fills."""
    require_linear(params)
    symbol = symbol_param(m.model, params, required=False)
    start = int_param(params, "startTime", 0, 0, 2**62)
    end = int_param(params, "endTime", 2**62, 0, 2**62)
    limit = int_param(params, "limit", 50, 1, 100)
    account = m.account(key)
    closing: dict[str, list] = {}
    for e in account.executions:
        if e.order is not None and e.closed_lots and (symbol is None or e.symbol == symbol):
            closing.setdefault(e.order.order_id, []).append(e)
    rows = []
    for fills in closing.values():
        order, inst = fills[0].order, m.model.states[fills[0].symbol].inst
        if not start <= order.updated_ms <= end:
            continue
        closed = inst.lot * sum(e.closed_lots for e in fills)
        exit_value = sum((e.price * inst.lot * e.closed_lots for e in fills), Decimal(0))
        gross = sum((e.pnl for e in fills), Decimal(0))
        entry_value = exit_value - gross if order.side == "Sell" else exit_value + gross  # a sell closes a long
        rows.append({
            "symbol": order.symbol, "orderType": order.order_type, "leverage": plain(m.leverage(account,
                                                                                               order.symbol)),
            "updatedTime": str(order.updated_ms), "side": order.side, "orderId": order.order_id,
            "closedPnl": plain(gross - sum((e.fee for e in fills), Decimal(0))),
            "avgEntryPrice": plain(entry_value / closed), "qty": inst.size(order.lots),
            "cumEntryValue": plain(entry_value), "createdTime": str(order.created_ms),
            "orderPrice": inst.price(order.price_ticks), "closedSize": inst.size(sum(e.closed_lots for e in fills)),
            "avgExitPrice": plain(exit_value / closed), "execType": "Trade", "fillCount": str(len(fills)),
            "cumExitValue": plain(exit_value)})
    rows.sort(key=lambda r: (int(r["updatedTime"]), r["orderId"]), reverse=True)
    return 0, "OK", {"category": "linear", "list": rows[:limit], "nextPageCursor": ""}


def coin_info(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """USDT and the base coin of every symbol listed, each on one chain; `coin` picks one."""
    coins = ["USDT", *sorted({s.removesuffix("USDT") for s in m.model.states})]
    wanted = params.get("coin")
    return 0, "success", {"rows": [{
        "name": coin, "coin": coin, "remainAmount": "1500000", "chains": [{
            "chainType": coin, "confirmation": "12", "withdrawFee": "1", "depositMin": "0", "withdrawMin": "2",
            "chain": coin, "chainDeposit": "1", "chainWithdraw": "1", "minAccuracy": "8",
            "withdrawPercentageFee": "0", "contractAddress": "", "safeConfirmNumber": "12"}]}
        for coin in coins if not wanted or coin == wanted]}


def wallet_balance(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    if params.get("accountType") != "UNIFIED":
        raise ParamError("accountType only support UNIFIED")
    account = shapes.wallet_fields(m, m.account(key))
    wanted = set(filter(None, str(params.get("coin", "")).split(",")))
    if wanted and "USDT" not in wanted:
        account["coin"] = []
    return 0, "OK", {"list": [account]}


def fee_rate(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    require_linear(params)
    symbol = symbol_param(m.model, params, required=False)
    return 0, "OK", {"list": [{"symbol": name, "takerFeeRate": str(TAKER_FEE), "makerFeeRate": str(MAKER_FEE)}
                              for name in ([symbol] if symbol else sorted(m.model.states))]}


def account_info(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """The unified account's settings, as `/v5/account/info` gives them: a UTA 2.0 account
    (status 5) in regular (cross) margin, its settings unchanged since the simulator started."""
    return 0, "OK", {"marginMode": "REGULAR_MARGIN", "updatedTime": str(m.model.start_ms),
                     "unifiedMarginStatus": 5, "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0,
                     "isMasterTrader": False, "spotHedgingStatus": "OFF"}


def query_api(m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """The key's own description: permissions and IP binding (`key_ips`, `key_wallet` faults)."""
    ips = list(getattr(m.policy, "key_ips", ["127.0.0.1"]))
    wallet = ["AccountTransfer", "SubMemberTransfer"] if getattr(m.policy, "key_wallet", False) else []
    return 0, "", {
        "id": "1", "note": "simulator", "apiKey": key, "readOnly": 0, "secret": "", "type": 1, "ips": ips,
        "permissions": {"ContractTrade": ["Order", "Position"], "Spot": [], "Wallet": wallet, "Options": [],
                        "Derivatives": [], "CopyTrading": [], "BlockTrade": [], "Exchange": [], "NFT": []},
        "deadlineDay": 90 if ips == ["*"] else -1, "unified": 0, "uta": 1, "isMaster": True, "userID": 1}


Handler = Callable[[Matching, str, Params, int], Answer]
# path -> (HTTP method, handler)
HANDLERS: dict[str, tuple[str, Handler]] = {
    "/v5/order/create": ("POST", create),
    "/v5/order/amend": ("POST", amend),
    "/v5/order/cancel": ("POST", cancel),
    "/v5/order/cancel-all": ("POST", cancel_all),
    "/v5/order/realtime": ("GET", realtime),
    "/v5/order/history": ("GET", history),
    "/v5/execution/list": ("GET", executions),
    "/v5/position/list": ("GET", positions),
    "/v5/position/switch-mode": ("POST", switch_mode),
    "/v5/position/set-leverage": ("POST", set_leverage),
    "/v5/position/closed-pnl": ("GET", closed_pnl),
    "/v5/asset/coin/query-info": ("GET", coin_info),
    "/v5/account/wallet-balance": ("GET", wallet_balance),
    "/v5/account/fee-rate": ("GET", fee_rate),
    "/v5/account/info": ("GET", account_info),
    "/v5/user/query-api": ("GET", query_api),
}


def answer(handler: Handler, m: Matching, key: str, params: Params, now_ms: int) -> Answer:
    """The handler's answer, with refusals turned into Bybit's retCodes."""
    try:
        return handler(m, key, params, now_ms)
    except Rejected as exc:
        return exc.ret_code, exc.message, {}
    except ParamError as exc:
        return 10001, str(exc), {}
    except Unlisted as exc:
        return 0, "OK", exc.result()
