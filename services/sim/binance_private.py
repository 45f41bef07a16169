"""The Binance engine's orders, trades, positions, balance and income in Binance USD-M's shapes
(protocol-trading-okx-bitget-binance.md §4.3-4.6): the REST order object, `/fapi/v1/userTrades`,
`/fapi/v3/positionRisk`, `/fapi/v3/balance` and `/fapi/v1/income` rows, and the user-data
stream's `ORDER_TRADE_UPDATE` and `ACCOUNT_UPDATE` events.

Sizes are base coin (the engine's lots times the lot size); prices and money are strings, ids
numbers, as Binance prints them. The engine's statuses map to Binance's New -> NEW,
PartiallyFilled -> PARTIALLY_FILLED, Filled -> FILLED, Cancelled -> CANCELED when the user
cancelled it, else EXPIRED (the rest of an IOC, FOK or market order, or of an order the
partial-fill fault cut). A trade's `commission` is positive when paid (UNSURE: the docs'
example prints it negative); the income ledger's `income` is negative when paid.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

from services.sim.market import plain as num
from services.sim.matching import PRICE_PLACES, ZERO, Account, Changes, Execution, Matching, Order, Position

POSITION_SIDES = {0: "BOTH", 1: "LONG", 2: "SHORT"}
TIME_IN_FORCE = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "PostOnly": "GTX"}
EXPIRY_REASONS = {"IOC": "2", "FOK": "2"}  # `er` of an order's expiry (§4.4); a market order's rest is 9


def status(order: Order) -> str:
    if order.status != "Cancelled":
        return {"New": "NEW", "PartiallyFilled": "PARTIALLY_FILLED", "Filled": "FILLED"}[order.status]
    return "CANCELED" if order.cancel_type == "CancelByUser" else "EXPIRED"


def alias(key: str) -> str:
    """A stable account alias for a key (Binance's `accountAlias`)."""
    return f"Sg{zlib.crc32(key.encode()):08x}"


def _lots(m: Matching, symbol: str, lots: int) -> str:
    return num(m.model.states[symbol].inst.lot * lots)


def _avg(m: Matching, symbol: str, value: Decimal, lots: int) -> str:
    return num((value / (m.model.states[symbol].inst.lot * lots)).quantize(PRICE_PLACES)) if lots else "0"


def order_fields(m: Matching, order: Order, shown: str | None = None, filled_lots: int | None = None,
                 value: Decimal | None = None) -> dict:
    """An order as GET /fapi/v1/order shows it (`shown`, `filled_lots` and `value` to show an
    earlier state of it, as the ACK of its create)."""
    inst = m.model.states[order.symbol].inst
    lots = order.filled_lots if filled_lots is None else filled_lots
    worth = order.cum_value if value is None else value
    kind = "MARKET" if order.order_type == "Market" else "LIMIT"
    return {
        "orderId": int(order.order_id), "symbol": order.symbol, "status": shown or status(order),
        "clientOrderId": order.link_id, "price": "0" if kind == "MARKET" else num(inst.tick * order.price_ticks),
        "avgPrice": _avg(m, order.symbol, worth, lots), "origQty": _lots(m, order.symbol, order.lots),
        "executedQty": _lots(m, order.symbol, lots), "cumQty": _lots(m, order.symbol, lots), "cumQuote": num(worth),
        "timeInForce": "GTC" if kind == "MARKET" else TIME_IN_FORCE[order.tif], "type": kind,
        "reduceOnly": order.reduce_only and order.position_idx == 0, "closePosition": False,
        "side": order.side.upper(), "positionSide": POSITION_SIDES[order.position_idx], "stopPrice": "0",
        "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": kind, "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": order.created_ms,
        "updateTime": order.updated_ms,
    }


def trade_fields(m: Matching, e: Execution) -> dict:
    """A trade as GET /fapi/v1/userTrades lists it."""
    order = e.order
    return {
        "buyer": e.side == "Buy", "commission": num(e.fee), "commissionAsset": "USDT", "id": int(e.exec_id),
        "maker": e.is_maker, "orderId": int(order.order_id), "price": num(e.price), "qty": num(e.qty),
        "quoteQty": num(e.value), "realizedPnl": num(e.pnl), "side": e.side.upper(),
        "positionSide": POSITION_SIDES[e.position_idx], "symbol": e.symbol, "time": e.time_ms,
    }


def income_rows(e: Execution) -> list[dict]:
    """The income ledger's entries of one execution: FUNDING_FEE for funding; COMMISSION and
    (when it realised any) REALIZED_PNL for a trade. `tranId` is unique per income type."""
    base = {"symbol": e.symbol, "asset": "USDT", "time": e.time_ms, "tranId": int(e.exec_id)}
    if e.exec_type == "Funding":
        return [{**base, "incomeType": "FUNDING_FEE", "income": num(-e.fee), "info": "FUNDING_FEE", "tradeId": ""}]
    rows = [{**base, "incomeType": "COMMISSION", "income": num(-e.fee), "info": "COMMISSION",
             "tradeId": e.exec_id}]
    if e.pnl:
        rows.append({**base, "incomeType": "REALIZED_PNL", "income": num(e.pnl), "info": "REALIZED_PNL",
                     "tradeId": e.exec_id})
    return rows


def position_fields(m: Matching, account: Account, p: Position, now_ms: int) -> dict:
    """A row of GET /fapi/v3/positionRisk: `positionAmt` signed (a SHORT side's negative)."""
    inst = m.model.states[p.symbol].inst
    mark = m.mark(p.symbol)
    size = inst.lot * p.lots
    entry = num(p.entry_price(inst)) if p.lots else "0"
    margin = p.cost / m.leverage(account, p.symbol) if p.lots else ZERO
    orders = sum((m._order_cost(account, o, o.leaves) for o in account.open_orders(p.symbol)
                  if o.position_idx == p.idx and not o.reduce_only), ZERO)
    return {
        "symbol": p.symbol, "positionSide": POSITION_SIDES[p.idx], "positionAmt": num(size), "entryPrice": entry,
        "breakEvenPrice": entry, "markPrice": num(mark), "unRealizedProfit": num(m.unrealised(p)),
        "liquidationPrice": "0", "isolatedMargin": "0", "notional": num(mark * size), "marginAsset": "USDT",
        "isolatedWallet": "0", "initialMargin": num(margin + orders), "maintMargin": num(p.cost / 200),
        "positionInitialMargin": num(margin), "openOrderInitialMargin": num(orders), "adl": 1 if p.lots else 0,
        "bidNotional": "0", "askNotional": "0", "updateTime": p.updated_ms or now_ms,
    }


def positions(m: Matching, account: Account, now_ms: int, symbol: str | None = None) -> list[dict]:
    """Symbols with a position or an open order: every side of theirs the account has used (in
    hedge mode both sides, a side at 0 included)."""
    symbols = {p.symbol for p in account.positions.values() if p.lots} | {o.symbol for o in account.open_orders()}
    sides = (1, 2)
    rows = []
    for s in sorted(symbols):
        if symbol is not None and s != symbol:
            continue
        for idx in (sides if s in account.hedge_symbols else (0,)):
            rows.append(position_fields(m, account, m.position(account, s, idx), now_ms))
    return rows


def account_fields(m: Matching, account: Account, now_ms: int) -> dict:
    """GET /fapi/v3/account (single-asset mode, USDT): the totals, the USDT asset, and the
    positions /fapi/v3/positionRisk lists, in the docs' shorter rows."""
    upl, position_im, order_im = m.margin(account)
    rows = positions(m, account, now_ms)
    maint = sum((Decimal(r["maintMargin"]) for r in rows), ZERO)
    wallet, available = num(account.wallet), num(m.available(account))
    margin_balance = num(account.wallet + upl)
    totals = {"totalInitialMargin": num(position_im + order_im), "totalMaintMargin": num(maint),
              "totalWalletBalance": wallet, "totalUnrealizedProfit": num(upl), "totalMarginBalance": margin_balance,
              "totalPositionInitialMargin": num(position_im), "totalOpenOrderInitialMargin": num(order_im),
              "totalCrossWalletBalance": wallet, "totalCrossUnPnl": num(upl), "availableBalance": available,
              "maxWithdrawAmount": available}
    asset = {"asset": "USDT", "walletBalance": wallet, "unrealizedProfit": num(upl), "marginBalance": margin_balance,
             "maintMargin": num(maint), "initialMargin": num(position_im + order_im),
             "positionInitialMargin": num(position_im), "openOrderInitialMargin": num(order_im),
             "crossWalletBalance": wallet, "crossUnPnl": num(upl), "availableBalance": available,
             "maxWithdrawAmount": available, "updateTime": now_ms}
    return {**totals, "assets": [asset], "positions": [
        {"symbol": r["symbol"], "positionSide": r["positionSide"], "positionAmt": r["positionAmt"],
         "unrealizedProfit": r["unRealizedProfit"], "isolatedMargin": r["isolatedMargin"], "notional": r["notional"],
         "isolatedWallet": r["isolatedWallet"], "initialMargin": r["initialMargin"], "maintMargin": r["maintMargin"],
         "updateTime": r["updateTime"]} for r in rows]}


def balance_fields(m: Matching, account: Account, now_ms: int) -> list[dict]:
    upl, _, _ = m.margin(account)
    available = num(m.available(account))
    return [{"accountAlias": alias(account.key), "asset": "USDT", "balance": num(account.wallet),
             "crossWalletBalance": num(account.wallet), "crossUnPnl": num(upl), "availableBalance": available,
             "maxWithdrawAmount": available, "marginAvailable": True, "updateTime": now_ms}]


# --- the user-data stream ---------------------------------------------------------------

def _order_event(m: Matching, order: Order, execution: Execution | None, shown: str, lots: int, value: Decimal,
                 now_ms: int) -> dict:
    inst = m.model.states[order.symbol].inst
    kind = "MARKET" if order.order_type == "Market" else "LIMIT"
    expired = shown == "EXPIRED"
    row = {
        "s": order.symbol, "c": order.link_id, "S": order.side.upper(), "o": kind,
        "f": "GTC" if kind == "MARKET" else TIME_IN_FORCE[order.tif], "q": _lots(m, order.symbol, order.lots),
        "p": "0" if kind == "MARKET" else num(inst.tick * order.price_ticks), "ap": _avg(m, order.symbol, value, lots),
        "sp": "0", "x": "TRADE" if execution else {"NEW": "NEW", "CANCELED": "CANCELED"}.get(shown, "EXPIRED"),
        "X": shown, "i": int(order.order_id), "l": num(execution.qty) if execution else "0",
        "z": _lots(m, order.symbol, lots), "L": num(execution.price) if execution else "0", "N": "USDT",
        "n": num(execution.fee) if execution else "0", "T": execution.time_ms if execution else now_ms,
        "t": int(execution.exec_id) if execution else 0, "b": "0", "a": "0",
        "m": execution.is_maker if execution else False, "R": order.reduce_only and order.position_idx == 0,
        "wt": "CONTRACT_PRICE", "ot": kind, "ps": POSITION_SIDES[order.position_idx], "cp": False,
        "rp": num(execution.pnl) if execution else "0", "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER",
        "pm": "NONE", "gtd": 0, "er": ("9" if kind == "MARKET" else EXPIRY_REASONS.get(order.tif, "0")) if expired
        else "0",
    }
    return {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": row["T"], "o": row}


_AMENDED = "_binance_amended"  # on the engine: ids of orders modified since the last push


def note_amendment(m: Matching, order_id: str) -> None:
    """An order modified (PUT /fapi/v1/order): its next events start with an AMENDMENT."""
    m.__dict__.setdefault(_AMENDED, set()).add(order_id)


def forget_amendment(m: Matching, order_id: str) -> None:
    m.__dict__.get(_AMENDED, set()).discard(order_id)


def order_events(m: Matching, changes: Changes, announced: set[str], now_ms: int) -> list[dict]:
    """`ORDER_TRADE_UPDATE` events of one change: NEW for an order not announced yet, one TRADE
    per fill (the order as it stood after it), then CANCELED or EXPIRED if it closed so; a
    modified order AMENDMENT first (its new price and quantity, before what the change filled)."""
    amended = m.__dict__.get(_AMENDED, set())
    fills: dict[str, list[Execution]] = {}
    for e in changes.executions:
        if e.order is not None:
            fills.setdefault(e.order.order_id, []).append(e)
    out = []
    for order_id, order in changes.orders.items():
        mine = fills.get(order_id, [])
        lots = order.filled_lots - sum(round(e.qty / m.model.states[e.symbol].inst.lot) for e in mine)
        value = order.cum_value - sum((e.value for e in mine), ZERO)
        if order_id not in announced:
            announced.add(order_id)
            out.append(_order_event(m, order, None, "NEW", lots, value, order.created_ms))
        shown = "NEW"
        if order_id in amended:
            amended.discard(order_id)
            shown = "PARTIALLY_FILLED" if lots else "NEW"
            event = _order_event(m, order, None, shown, lots, value, now_ms)
            event["o"]["x"] = "AMENDMENT"
            out.append(event)
        for e in mine:
            lots += round(e.qty / m.model.states[e.symbol].inst.lot)
            value += e.value
            shown = "FILLED" if lots == order.lots else "PARTIALLY_FILLED"
            out.append(_order_event(m, order, e, shown, lots, value, now_ms))
        final = status(order)
        if final in ("CANCELED", "EXPIRED") and final != shown:
            out.append(_order_event(m, order, None, final, order.filled_lots, order.cum_value, now_ms))
        if not order.is_open:
            announced.discard(order_id)
    return out


def _position_row(m: Matching, account: Account, p: Position) -> dict:
    inst = m.model.states[p.symbol].inst
    entry = num(p.entry_price(inst)) if p.lots else "0"
    return {"s": p.symbol, "pa": num(inst.lot * p.lots), "ep": entry, "bep": entry, "cr": num(p.cum_realised),
            "up": num(m.unrealised(p)), "mt": "isolated" if p.margin_mode == "isolated" else "cross", "iw": "0",
            "ps": POSITION_SIDES[p.idx]}


def account_events(m: Matching, account: Account, changes: Changes, now_ms: int) -> list[dict]:
    """`ACCOUNT_UPDATE` events: reason ORDER after fills (the wallet and the positions they
    touched), FUNDING_FEE after funding (the wallet only: cross positions carry none, §4.6)."""
    trades = [e for e in changes.executions if e.exec_type == "Trade"]
    funding = [e for e in changes.executions if e.exec_type == "Funding"]
    out = []
    if trades:
        touched = {(e.symbol, e.position_idx) for e in trades}
        rows = [_position_row(m, account, p) for key, p in changes.positions.items() if key in touched]
        change = -sum((e.fee for e in trades), ZERO)
        out.append({"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
            "m": "ORDER", "B": [{"a": "USDT", "wb": num(account.wallet), "cw": num(account.wallet),
                                 "bc": num(change)}], "P": rows}})
    if funding:
        out.append({"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
            "m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": num(account.wallet), "cw": num(account.wallet),
                                       "bc": num(-sum((e.fee for e in funding), ZERO))}], "P": []}})
    return out
