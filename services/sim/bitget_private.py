"""The Bitget engine's orders, fills, positions, balance and bills in Bitget V2 mix shapes
(protocol-trading-okx-bitget-binance.md §3.3-3.6): the REST records of `/api/v2/mix/order/detail`,
`orders-pending`, `fills`, `/position/all-position`, `/account/accounts`, `/account/account`,
`/account/bill`, `orders-history`, `/position/history-position`, and the private stream's
`orders`, `fill`, `positions` and `account` pushes.

Sizes are base coin (the engine's lots times the lot). Every number is a string; fees are
negative when paid (`fee`, `fillFee`, `feeDetail[].totalFee`), as on Bitget; a funding bill's
`amount` is negative when paid. The engine's statuses map to Bitget's New -> live,
PartiallyFilled -> partially_filled, Filled -> filled, Cancelled -> canceled; `cancelReason`
is normal_cancel for a cancel the user asked, "" for one the venue made (an IOC's rest, a
post-only that would have taken, the partial-fill fault: Bitget documents no reason for those).

In hedge mode an order's `side` is its position's direction (close long = buy + close) and a
fill's `side` the trade's direction; in one-way mode both are the trade's, with `tradeSide`
buy_single / sell_single.
"""

from __future__ import annotations

import zlib
from decimal import Decimal

from services.sim.market import plain as num
from services.sim.matching import PRICE_PLACES, ZERO, Account, Changes, Execution, Matching, Order, Position

PRODUCT_TYPE = "USDT-FUTURES"
MARGIN_COIN = "USDT"
STATES = {"New": "live", "PartiallyFilled": "partially_filled", "Filled": "filled", "Cancelled": "canceled"}
FORCES = {"GTC": "gtc", "IOC": "ioc", "FOK": "fok", "PostOnly": "post_only"}
HOLD_SIDES = {0: "net", 1: "long", 2: "short"}
MARGIN_MODES = {"cross": "crossed", "isolated": "isolated"}


def uid(key: str) -> str:
    return str(10**10 + zlib.crc32(key.encode()))


def base(m: Matching, symbol: str, lots: int) -> str:
    return num(m.model.states[symbol].inst.lot * lots)


def pos_mode(account: Account, symbol: str) -> str:
    return "hedge_mode" if symbol in account.hedge_symbols else "one_way_mode"


def order_sides(order: Order) -> tuple[str, str]:
    """(side, tradeSide) as Bitget shows an order: hedge mode's side is the position's direction."""
    if order.position_idx == 0:
        return order.side.lower(), f"{order.side.lower()}_single"
    opens = (order.position_idx, order.side) in ((1, "Buy"), (2, "Sell"))
    return ("buy" if order.position_idx == 1 else "sell"), ("open" if opens else "close")


def trade_side(e: Execution) -> str:
    if e.position_idx == 0:
        return f"{e.side.lower()}_single"
    return "open" if (e.position_idx, e.side) in ((1, "Buy"), (2, "Sell")) else "close"


def cancel_reason(order: Order) -> str:
    return "normal_cancel" if order.status == "Cancelled" and order.cancel_type == "CancelByUser" else ""


def _avg(m: Matching, symbol: str, value: Decimal, lots: int) -> str:
    return num((value / (m.model.states[symbol].inst.lot * lots)).quantize(PRICE_PLACES)) if lots else ""


def order_fields(m: Matching, account: Account, order: Order, state_name: str = "state") -> dict:
    """An order as the REST detail (`state`) or orders-pending (`status`) shows it."""
    inst = m.model.states[order.symbol].inst
    side, trade = order_sides(order)
    return {
        "symbol": order.symbol, "size": base(m, order.symbol, order.lots), "orderId": order.order_id,
        "clientOid": order.link_id, "baseVolume": base(m, order.symbol, order.filled_lots),
        "fee": num(-order.cum_fee), "price": "" if order.order_type == "Market" else num(inst.tick * order.price_ticks),
        "priceAvg": _avg(m, order.symbol, order.cum_value, order.filled_lots), state_name: STATES[order.status],
        "side": side, "force": FORCES[order.tif] if order.order_type == "Limit" else "gtc",
        "totalProfits": num(order.gross_pnl), "posSide": HOLD_SIDES[order.position_idx], "marginCoin": MARGIN_COIN,
        "quoteVolume": num(order.cum_value), "leverage": num(m.leverage(account, order.symbol)),
        "marginMode": MARGIN_MODES.get(order.margin_mode, "crossed"), "enterPointSource": "API",
        "tradeSide": trade, "posMode": pos_mode(account, order.symbol), "orderType": order.order_type.lower(),
        "orderSource": "normal", "reduceOnly": "YES" if order.reduce_only and order.position_idx == 0 else "NO",
        "presetStopSurplusPrice": "", "presetStopLossPrice": "", "cancelReason": cancel_reason(order),
        "cTime": str(order.created_ms), "uTime": str(order.updated_ms),
    }


def fill_fields(m: Matching, account: Account, e: Execution, pushed: bool = False) -> dict:
    """A trade as `/api/v2/mix/order/fills` lists it, or the `fill` channel pushes it."""
    order = e.order
    row = {
        "tradeId": e.exec_id, "symbol": e.symbol, "orderId": order.order_id, "price": num(e.price),
        "baseVolume": num(e.qty), "quoteVolume": num(e.value), "side": e.side.lower(), "profit": num(e.pnl),
        "feeDetail": [{"deduction": "no", "feeCoin": MARGIN_COIN, "totalDeductionFee": "0",
                       "totalFee": num(-e.fee)}],
        "tradeSide": trade_side(e), "posMode": pos_mode(account, e.symbol),
        "tradeScope": "maker" if e.is_maker else "taker", "enterPointSource": "API",
        "orderType": order.order_type.lower(), "cTime": str(e.time_ms),
    }
    if pushed:
        row.update({"clientOid": order.link_id, "uTime": str(e.time_ms)})
    return row


def order_push(m: Matching, account: Account, order: Order, status: str, filled_lots: int, value: Decimal,
               last: Execution | None) -> dict:
    """An `orders` push: the order after `filled_lots` (worth `value`), `last` its latest fill."""
    inst = m.model.states[order.symbol].inst
    side, trade = order_sides(order)
    row = {
        "instId": order.symbol, "orderId": order.order_id, "clientOid": order.link_id,
        "price": "" if order.order_type == "Market" else num(inst.tick * order.price_ticks),
        "size": base(m, order.symbol, order.lots), "notionalUsd": num(inst.tick * order.price_ticks * inst.lot
                                                                      * order.lots),
        "orderType": order.order_type.lower(), "force": FORCES[order.tif] if order.order_type == "Limit" else "gtc",
        "side": side, "posSide": HOLD_SIDES[order.position_idx], "posMode": pos_mode(account, order.symbol),
        "tradeSide": trade, "marginMode": MARGIN_MODES.get(order.margin_mode, "crossed"),
        "marginCoin": MARGIN_COIN, "leverage": num(m.leverage(account, order.symbol)), "status": status,
        "accBaseVolume": base(m, order.symbol, filled_lots), "priceAvg": _avg(m, order.symbol, value, filled_lots),
        "reduceOnly": "yes" if order.reduce_only and order.position_idx == 0 else "no",
        "enterPointSource": "API", "cancelReason": cancel_reason(order) if status == "canceled" else "",
        "cTime": str(order.created_ms), "uTime": str(last.time_ms if last else order.updated_ms),
    }
    if last is not None:
        row.update({"tradeId": last.exec_id, "baseVolume": num(last.qty), "fillPrice": num(last.price),
                    "fillTime": str(last.time_ms), "fillFee": num(-last.fee), "fillFeeCoin": MARGIN_COIN,
                    "feeDetail": [{"feeCoin": MARGIN_COIN, "fee": num(-last.fee)}],
                    "tradeScope": "M" if last.is_maker else "T", "pnl": num(last.pnl)})
    return row


def order_pushes(m: Matching, account: Account, changes: Changes) -> list[dict]:
    """One `orders` record per order event: each fill (the order as it stood after it), then the
    order's state when that is not what its last fill showed (live, canceled)."""
    fills: dict[str, list[Execution]] = {}
    for e in changes.executions:
        if e.order is not None:
            fills.setdefault(e.order.order_id, []).append(e)
    out = []
    for order_id, order in changes.orders.items():
        mine = fills.get(order_id, [])
        lots = order.filled_lots - sum(round(e.qty / m.model.states[e.symbol].inst.lot) for e in mine)
        value = order.cum_value - sum((e.value for e in mine), ZERO)
        status = ""
        for e in mine:
            lots, value = lots + round(e.qty / m.model.states[e.symbol].inst.lot), value + e.value
            status = "filled" if lots == order.lots else "partially_filled"
            out.append(order_push(m, account, order, status, lots, value, e))
        if STATES[order.status] != status:
            out.append(order_push(m, account, order, STATES[order.status], order.filled_lots, order.cum_value, None))
    return out


def fill_pushes(m: Matching, account: Account, changes: Changes) -> list[dict]:
    return [fill_fields(m, account, e, pushed=True) for e in changes.executions if e.order is not None]


def position_fields(m: Matching, account: Account, p: Position, now_ms: int, pushed: bool = False) -> dict:
    """A position row of `all-position` (or the `positions` push: `instId`, `frozen`)."""
    inst = m.model.states[p.symbol].inst
    size = abs(p.lots)
    lever = m.leverage(account, p.symbol)
    mark = m.mark(p.symbol)
    closing = sum(o.leaves for o in account.open_orders(p.symbol) if o.position_idx == p.idx and o.reduce_only)
    margin = p.cost / lever if size else ZERO
    upl = m.unrealised(p)
    entry = num(p.entry_price(inst)) if size else "0"
    side = HOLD_SIDES[p.idx] if p.idx else ("long" if p.lots >= 0 else "short")
    row = {
        "marginCoin": MARGIN_COIN, "symbol": p.symbol, "holdSide": side, "openDelegateSize": "0",
        "marginSize": num(margin), "available": base(m, p.symbol, max(0, size - closing)),
        "locked": base(m, p.symbol, min(size, closing)), "total": base(m, p.symbol, size),
        "leverage": num(lever), "achievedProfits": num(p.cur_realised + p.fees + p.funding),
        "openPriceAvg": entry, "marginMode": MARGIN_MODES.get(p.margin_mode, "crossed"),
        "posMode": pos_mode(account, p.symbol), "unrealizedPL": num(upl), "liquidationPrice": "0",
        "keepMarginRate": "0.005", "markPrice": num(mark), "breakEvenPrice": entry,
        "totalFee": num(-p.funding) if p.funding else "", "deductedFee": num(p.fees),
        "marginRatio": "0", "assetMode": "single", "autoMargin": "off", "posId": str(zlib.crc32(
            f"{account.key}:{p.symbol}:{p.idx}".encode())), "cTime": str(p.created_ms),
        "uTime": str(p.updated_ms or now_ms),
    }
    if pushed:
        row["instId"] = row.pop("symbol")
        row["frozen"] = row.pop("locked")
    return row


def open_positions(m: Matching, account: Account, now_ms: int, pushed: bool = False) -> list[dict]:
    return [position_fields(m, account, p, now_ms, pushed) for _, p in sorted(account.positions.items()) if p.lots]


def account_fields(m: Matching, account: Account, pushed: bool = False) -> dict:
    """The USDT row of `/api/v2/mix/account/accounts` (or the `account` push)."""
    upl, position_im, order_im = m.margin(account)
    equity = account.wallet + upl
    available = account.wallet - position_im - order_im
    if pushed:
        return {"marginCoin": MARGIN_COIN, "frozen": num(order_im), "available": num(available),
                "maxOpenPosAvailable": num(max(ZERO, equity - position_im - order_im)),
                "maxTransferOut": num(max(ZERO, available)), "equity": num(equity), "usdtEquity": num(equity),
                "crossedRiskRate": "0", "unrealizedPL": num(upl), "assetsMode": "single"}
    return {"marginCoin": MARGIN_COIN, "locked": num(order_im), "available": num(available),
            "crossedMaxAvailable": num(max(ZERO, equity - position_im - order_im)), "isolatedMaxAvailable": "0",
            "maxTransferOut": num(max(ZERO, available)), "accountEquity": num(equity), "usdtEquity": num(equity),
            "btcEquity": "", "crossedRiskRate": "0", "unrealizedPL": num(upl), "coupon": "0",
            "crossedUnrealizedPL": num(upl), "isolatedUnrealizedPL": "0", "assetMode": "single"}


def symbol_account(m: Matching, account: Account, symbol: str, margin_mode: str) -> dict:
    """`/api/v2/mix/account/account`: the account as one symbol sees it (its posMode, marginMode)."""
    lever = num(m.leverage(account, symbol))
    row = account_fields(m, account)
    row.update({"symbol": symbol, "marginMode": margin_mode, "posMode": pos_mode(account, symbol),
                "crossedMarginLeverage": lever, "isolatedLongLever": lever, "isolatedShortLever": lever})
    return row


def bill_fields(m: Matching, e: Execution) -> dict:
    """A trade (open_long, close_short, buy, ...) or funding (contract_settle_fee) bill."""
    funding = e.exec_type == "Funding"
    if funding:
        business, amount, fee = "contract_settle_fee", -e.fee, ZERO
    else:
        side = trade_side(e)
        held = {1: "long", 2: "short"}.get(e.position_idx)
        business = f"{side}_{held}" if held else e.side.lower()
        amount, fee = e.pnl, -e.fee
    return {"billId": e.exec_id, "symbol": e.symbol, "amount": num(amount), "fee": num(fee), "feeByCoupon": "",
            "businessType": business, "coin": MARGIN_COIN, "balance": num(e.wallet_after), "cTime": str(e.time_ms)}


def closed_positions(m: Matching, account: Account) -> list[dict]:
    """`/api/v2/mix/position/history-position` rows: each position the account's executions
    took from flat back to flat, newest first. Walked fill by fill per (symbol, position): a
    fill's closed lots close (at its price, its PnL, its fee's share), the rest opens; funding
    paid meanwhile counts. `pnl` is before fees and funding, `netProfit` after them; fees and
    funding are negative when paid, as in fills and bills. `positionId` is the opening fill's id."""
    live: dict[tuple[str, int], dict] = {}
    rows = []
    for e in account.executions:
        pos = live.get((e.symbol, e.position_idx))
        if e.order is None:  # funding
            if pos is not None:
                pos["funding"] += e.fee
            continue
        lot = m.model.states[e.symbol].inst.lot
        lots = round(e.qty / lot)
        sign = 1 if e.side == "Buy" else -1
        if e.closed_lots and pos is not None:
            pos["close_lots"] += e.closed_lots
            pos["close_value"] += e.price * lot * e.closed_lots
            pos["pnl"] += e.pnl
            pos["close_fee"] += e.fee * e.closed_lots / lots
            pos["lots"] += sign * e.closed_lots
            pos["utime"] = e.time_ms
            if pos["lots"] == 0:
                rows.append(_closed_row(m, account, e.symbol, e.position_idx, pos))
                del live[(e.symbol, e.position_idx)]
                pos = None
        opening = lots - e.closed_lots
        if opening:
            if pos is None:
                pos = live[(e.symbol, e.position_idx)] = {
                    "id": e.exec_id, "long": sign > 0, "lots": 0, "open_lots": 0, "open_value": ZERO, "close_lots": 0,
                    "close_value": ZERO, "pnl": ZERO, "open_fee": ZERO, "close_fee": ZERO, "funding": ZERO,
                    "ctime": e.time_ms, "utime": e.time_ms, "margin_mode": e.order.margin_mode}
            pos["open_lots"] += opening
            pos["open_value"] += e.price * lot * opening
            pos["open_fee"] += e.fee * opening / lots
            pos["lots"] += sign * opening
            pos["utime"] = e.time_ms
    rows.sort(key=lambda r: int(r["positionId"]), reverse=True)
    return rows


def _closed_row(m: Matching, account: Account, symbol: str, idx: int, pos: dict) -> dict:
    lot = m.model.states[symbol].inst.lot
    side = HOLD_SIDES[idx] if idx else ("long" if pos["long"] else "short")
    fees = pos["open_fee"] + pos["close_fee"]
    return {
        "positionId": pos["id"], "marginCoin": MARGIN_COIN, "symbol": symbol, "holdSide": side,
        "openAvgPrice": num((pos["open_value"] / (lot * pos["open_lots"])).quantize(PRICE_PLACES)),
        "closeAvgPrice": num((pos["close_value"] / (lot * pos["close_lots"])).quantize(PRICE_PLACES)),
        "marginMode": MARGIN_MODES.get(pos["margin_mode"], "crossed"),
        "openTotalPos": base(m, symbol, pos["open_lots"]),
        "closeTotalPos": base(m, symbol, pos["close_lots"]), "pnl": num(pos["pnl"]),
        "netProfit": num(pos["pnl"] - fees - pos["funding"]), "totalFunding": num(-pos["funding"]),
        "openFee": num(-pos["open_fee"]), "closeFee": num(-pos["close_fee"]), "posMode": pos_mode(account, symbol),
        "ctime": str(pos["ctime"]), "utime": str(pos["utime"]),
    }
