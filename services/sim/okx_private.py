"""The OKX engine's orders, fills, positions, balance and bills in OKX V5's shapes
(protocol-trading-okx-bitget-binance.md §2.4-2.8): the REST records of `/api/v5/trade/order`,
`/trade/fills`, `/account/positions`, `/account/balance`, `/account/bills`, and the private
stream's `orders`, `positions` and `account` pushes.

Sizes are contracts (`sz`, `accFillSz`, `fillSz`, `pos`): the engine's lots times the lot size
over the contract's `ctVal`. Every number is a string; fees and funding are negative when
paid, as on OKX. The engine's statuses map to OKX's states New -> live, PartiallyFilled ->
partially_filled, Filled -> filled, Cancelled -> canceled, and why an order was cancelled to
`cancelSource`: 1 by the user, 31 a post-only order that would have taken, 13 a FOK not
filled whole, 14 the rest of an IOC or market order, 0 the system (the partial-fill fault).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal

from services.sim.market import plain as num
from services.sim.matching import PRICE_PLACES, ZERO, Account, Changes, Execution, Matching, Order, Position
from services.sim.okx_public import ct_val, inst_id

STATES = {"New": "live", "PartiallyFilled": "partially_filled", "Filled": "filled", "Cancelled": "canceled"}
POS_SIDES = {0: "net", 1: "long", 2: "short"}
ORD_TYPES = {("Market", "IOC"): "market", ("Limit", "GTC"): "limit", ("Limit", "PostOnly"): "post_only",
             ("Limit", "FOK"): "fok", ("Limit", "IOC"): "ioc"}


def uid(key: str) -> str:
    """A stable account id for a key (OKX's `uid`)."""
    return str(10**15 + zlib.crc32(key.encode()))


def contracts(m: Matching, symbol: str, lots: int) -> str:
    return num(m.model.states[symbol].inst.lot * lots / ct_val(symbol))


def cancel_source(order: Order) -> str:
    if order.status != "Cancelled":
        return ""
    if order.cancel_type == "CancelByUser":
        return "1"
    if order.reject_reason == "EC_PostOnlyWillTakeLiquidity":
        return "31"
    return {"FOK": "13", "IOC": "14"}.get(order.tif, "0")


def _price(m: Matching, symbol: str, value: Decimal, lots: int) -> str:
    return num((value / (m.model.states[symbol].inst.lot * lots)).quantize(PRICE_PLACES)) if lots else ""


def order_fields(m: Matching, account: Account, order: Order, state: str, filled_lots: int, value: Decimal,
                 fee: Decimal, pnl: Decimal, last: Execution | None) -> dict:
    """An order as OKX shows it after `filled_lots` (worth `value`, fees `fee`, PnL `pnl`),
    `last` its latest fill; the REST order record."""
    inst = m.model.states[order.symbol].inst
    price = "" if order.order_type == "Market" else num(inst.tick * order.price_ticks)  # a market order has no px
    return {
        "instType": "SWAP", "instId": inst_id(order.symbol), "tgtCcy": "", "ccy": "", "ordId": order.order_id,
        "clOrdId": order.link_id, "tag": "", "px": price,
        "pxUsd": "", "pxVol": "", "pxType": "", "sz": contracts(m, order.symbol, order.lots), "pnl": num(pnl),
        "ordType": ORD_TYPES[(order.order_type, order.tif)], "side": order.side.lower(),
        "posSide": POS_SIDES[order.position_idx], "tdMode": order.margin_mode,
        "accFillSz": contracts(m, order.symbol, filled_lots),
        "fillPx": num(last.price) if last else "", "tradeId": last.exec_id if last else "",
        "fillSz": contracts(m, order.symbol, round(last.qty / inst.lot)) if last else "0",
        "fillTime": str(last.time_ms) if last else "", "avgPx": _price(m, order.symbol, value, filled_lots),
        "state": state, "stpId": "", "stpMode": "cancel_maker",
        "lever": num(m.leverage(account, order.symbol)), "attachAlgoClOrdId": "", "tpTriggerPx": "",
        "tpTriggerPxType": "", "tpOrdPx": "", "slTriggerPx": "", "slTriggerPxType": "", "slOrdPx": "",
        "attachAlgoOrds": [], "linkedAlgoOrd": {"algoId": ""}, "feeCcy": "USDT", "fee": num(-fee),
        "rebateCcy": "USDT", "rebate": "0", "source": "", "category": "normal",
        "reduceOnly": "true" if order.reduce_only else "false", "isTpLimit": "false",
        "cancelSource": cancel_source(order) if state == "canceled" else "", "cancelSourceReason": "",
        "quickMgnType": "", "algoClOrdId": "", "algoId": "", "uTime": str(order.updated_ms),
        "cTime": str(order.created_ms), "tradeQuoteCcy": "",
    }


def last_fill(account: Account, order: Order) -> Execution | None:
    return next((e for e in reversed(account.executions) if e.order is order), None)


def current_order(m: Matching, account: Account, order: Order) -> dict:
    return order_fields(m, account, order, STATES[order.status], order.filled_lots, order.cum_value, order.cum_fee,
                        order.gross_pnl, last_fill(account, order) if order.filled_lots else None)


def fill_fields(m: Matching, e: Execution) -> dict:
    """A trade as `/api/v5/trade/fills` lists it."""
    order = e.order
    inst = m.model.states[e.symbol].inst
    return {
        "instType": "SWAP", "instId": inst_id(e.symbol), "tradeId": e.exec_id, "ordId": order.order_id,
        "clOrdId": order.link_id, "billId": e.exec_id, "subType": trade_sub_type(e), "tag": "",
        "fillPx": num(e.price), "fillSz": contracts(m, e.symbol, round(e.qty / inst.lot)), "fillIdxPx": "",
        "fillPnl": num(e.pnl), "fillPxVol": "", "fillPxUsd": "", "fillMarkVol": "", "fillFwdPx": "",
        "fillMarkPx": num(e.mark_price), "side": e.side.lower(), "posSide": POS_SIDES[e.position_idx],
        "execType": "M" if e.is_maker else "T", "feeCcy": "USDT", "fee": num(-e.fee), "feeRate": num(-e.fee_rate),
        "ts": str(e.time_ms), "fillTime": str(e.time_ms), "tradeQuoteCcy": "",
    }


def trade_sub_type(e: Execution) -> str:
    """Bill subType of a trade: 1 buy, 2 sell (net mode); 3/4 open long/short, 5/6 close long/short."""
    if e.position_idx == 0:
        return "1" if e.side == "Buy" else "2"
    return {(1, "Buy"): "3", (2, "Sell"): "4", (1, "Sell"): "5", (2, "Buy"): "6"}[(e.position_idx, e.side)]


def bill_fields(m: Matching, e: Execution, margin_mode: str) -> dict:
    """A trade (type 2) or funding (type 8: subType 173 paid, 174 received) bill.

    `posSide` is the simulator's addition: OKX's documentation does not promise it on a bill."""
    inst = m.model.states[e.symbol].inst
    funding = e.exec_type == "Funding"
    order = e.order
    change = -e.fee if funding else e.pnl - e.fee
    return {
        "bal": num(e.wallet_after), "balChg": num(change), "billId": e.exec_id, "ccy": "USDT",
        "clOrdId": "" if funding else order.link_id, "execType": "" if funding else ("M" if e.is_maker else "T"),
        "fee": "0" if funding else num(-e.fee), "fillFwdPx": "", "fillIdxPx": "",
        "fillMarkPx": num(e.mark_price), "fillMarkVol": "", "fillPxUsd": "", "fillPxVol": "",
        "fillTime": str(e.time_ms), "from": "", "instId": inst_id(e.symbol), "instType": "SWAP", "interest": "0",
        "mgnMode": margin_mode, "notes": "", "ordId": "" if funding else order.order_id,
        "pnl": num(-e.fee if funding else e.pnl), "posBal": "0", "posBalChg": "0", "px": num(e.price),
        "subType": ("173" if e.fee > 0 else "174") if funding else trade_sub_type(e),
        "sz": contracts(m, e.symbol, round(e.qty / inst.lot)), "tag": "", "to": "",
        "tradeId": "" if funding else e.exec_id, "ts": str(e.time_ms), "type": "8" if funding else "2",
        "posSide": POS_SIDES[e.position_idx],
    }


def position_fields(m: Matching, account: Account, p: Position, now_ms: int) -> dict:
    inst = m.model.states[p.symbol].inst
    mark = m.mark(p.symbol)
    lever = m.leverage(account, p.symbol)
    size = abs(p.lots)
    notional = mark * inst.lot * size
    hedge = p.idx != 0
    closing = sum(o.leaves for o in account.open_orders(p.symbol) if o.position_idx == p.idx and o.reduce_only)
    imr = p.cost / lever if size else ZERO
    upl = m.unrealised(p)
    gross = p.cur_realised + p.fees + p.funding
    entry = num(p.entry_price(inst)) if size else ""
    last = num(inst.tick * m.view.last_ticks(m.model.states[p.symbol]))
    ratio = num((upl / imr).quantize(PRICE_PLACES)) if imr else "0"
    return {
        "adl": "1" if size else "", "availPos": contracts(m, p.symbol, max(0, size - closing)) if hedge else "",
        "avgPx": entry, "baseBal": "", "bePx": entry, "cTime": str(p.created_ms), "ccy": "USDT",
        "closeOrderAlgo": [], "deltaBS": "", "deltaPA": "", "fee": num(-p.fees), "fundingFee": num(-p.funding),
        "gammaBS": "", "gammaPA": "", "idxPx": "", "imr": num(imr) if p.margin_mode == "cross" else "",
        "instId": inst_id(p.symbol), "instType": "SWAP", "interest": "", "last": last, "lever": num(lever),
        "liab": "", "liabCcy": "", "liqPenalty": "0", "liqPx": "",
        "margin": num(imr) if p.margin_mode == "isolated" else "", "markPx": num(mark), "mgnMode": p.margin_mode,
        "mgnRatio": "", "mmr": num(p.cost / 200), "notionalUsd": num(notional), "optVal": "",
        "pendingCloseOrdLiabVal": "", "pnl": num(gross), "pos": contracts(m, p.symbol, size if hedge else p.lots),
        "posCcy": "", "posId": f"{p.idx}{zlib.crc32(f'{account.key}:{p.symbol}'.encode())}",
        "posSide": POS_SIDES[p.idx], "quoteBal": "", "realizedPnl": num(p.cur_realised), "spotInUseAmt": "",
        "spotInUseCcy": "", "thetaBS": "", "thetaPA": "", "tradeId": "", "uTime": str(p.updated_ms or now_ms),
        "upl": num(upl), "uplLastPx": num(upl), "uplRatio": ratio, "uplRatioLastPx": ratio, "usdPx": "",
        "vegaBS": "", "vegaPA": "",
    }


def balance_fields(m: Matching, account: Account, now_ms: int) -> dict:
    """`/api/v5/account/balance` data[0] and the `account` push: USDT only."""
    upl, position_im, order_im = m.margin(account)
    equity = account.wallet + upl
    frozen = position_im + order_im
    mmr = sum((p.cost / 200 for p in account.positions.values() if p.lots), ZERO)
    notional = sum((m.mark(p.symbol) * m.model.states[p.symbol].inst.lot * abs(p.lots)
                    for p in account.positions.values() if p.lots), ZERO)
    ratio = num((equity / mmr).quantize(PRICE_PLACES)) if mmr else ""
    detail = {
        "availBal": num(account.wallet - frozen), "availEq": num(equity - frozen), "borrowFroz": "",
        "cashBal": num(account.wallet), "ccy": "USDT", "crossLiab": "", "disEq": num(equity), "eq": num(equity),
        "eqUsd": num(equity), "fixedBal": "0", "frozenBal": num(frozen), "imr": num(position_im), "interest": "",
        "isoEq": "0", "isoLiab": "", "isoUpl": "0", "liab": "", "maxLoan": "", "mgnRatio": ratio, "mmr": num(mmr),
        "notionalLever": num((notional / equity).quantize(PRICE_PLACES)) if equity else "0",
        "ordFrozen": num(order_im), "rewardBal": "0", "spotInUseAmt": "", "stgyEq": "0", "twap": "0",
        "uTime": str(now_ms), "upl": num(upl), "uplLiab": "",
    }
    return {"adjEq": "", "borrowFroz": "", "details": [detail], "imr": num(frozen), "isoEq": "0",
            "mgnRatio": ratio, "mmr": num(mmr), "notionalUsd": num(notional), "ordFroz": num(order_im),
            "totalEq": num(equity), "uTime": str(now_ms), "upl": num(upl)}


# --- the private stream -----------------------------------------------------------------

def order_pushes(m: Matching, account: Account, changes: Changes) -> list[dict]:
    """One `orders` record per order event: each fill (with fillSz, fillPx, tradeId, fillFee,
    execType, and the order as it stood after that fill), then the order's state if that is
    not what its last fill showed (live, canceled)."""
    fills: dict[str, list[Execution]] = {}
    for e in changes.executions:
        if e.order is not None:
            fills.setdefault(e.order.order_id, []).append(e)
    out = []
    for order_id, order in changes.orders.items():
        mine = fills.get(order_id, [])
        lots = order.filled_lots - sum(round(e.qty / m.model.states[e.symbol].inst.lot) for e in mine)
        value = order.cum_value - sum((e.value for e in mine), ZERO)
        fee = order.cum_fee - sum((e.fee for e in mine), ZERO)
        pnl = order.gross_pnl - sum((e.pnl for e in mine), ZERO)
        state = ""
        for e in mine:
            inst = m.model.states[e.symbol].inst
            lots, value, fee, pnl = lots + round(e.qty / inst.lot), value + e.value, fee + e.fee, pnl + e.pnl
            state = "filled" if lots == order.lots else "partially_filled"
            record = order_fields(m, account, order, state, lots, value, fee, pnl, e)
            record.update({"fillFee": num(-e.fee), "fillFeeCcy": "USDT", "fillPnl": num(e.pnl),
                           "fillMarkPx": num(e.mark_price), "fillNotionalUsd": num(e.value),
                           "execType": "M" if e.is_maker else "T", "uTime": str(e.time_ms),
                           "cancelSource": ""})
            out.append(_push_extras(m, record, order))
        if STATES[order.status] != state:
            record = order_fields(m, account, order, STATES[order.status], order.filled_lots, order.cum_value,
                                  order.cum_fee, order.gross_pnl, None)
            record.update({"fillSz": "0", "fillFee": "0", "fillFeeCcy": "", "fillPnl": "0", "fillMarkPx": "",
                           "fillNotionalUsd": "", "execType": ""})
            out.append(_push_extras(m, record, order))
    return out


def _push_extras(m: Matching, record: dict, order: Order) -> dict:
    inst = m.model.states[order.symbol].inst
    notional = inst.tick * order.price_ticks * inst.lot * order.lots
    record.update({"lastPx": num(inst.tick * m.view.last_ticks(m.model.states[order.symbol])),
                   "notionalUsd": num(notional), "amendResult": "", "reqId": "", "code": "0", "msg": "",
                   "amendSource": ""})
    amend = getattr(order, "okx_amend", None)  # (reqId, time) set by okx_trade.amend_order
    if amend is not None and amend[1] == order.updated_ms:  # the push of that amendment
        record.update({"amendResult": "0", "reqId": amend[0], "amendSource": "1"})
    return record


def pushed_positions(m: Matching, account: Account, changes: Changes, now_ms: int) -> list[dict]:
    """Positions this change touched that are open, or that a fill or funding just changed
    (a close pushes `pos` 0); a side never opened is not pushed."""
    traded = {(e.symbol, e.position_idx) for e in changes.executions}
    return [position_fields(m, account, p, now_ms) for key, p in changes.positions.items()
            if p.lots or key in traded]


def open_positions(m: Matching, account: Account, now_ms: int) -> Iterable[dict]:
    return [position_fields(m, account, p, now_ms) for _, p in sorted(account.positions.items()) if p.lots]


def closed_positions(m: Matching, account: Account) -> list[dict]:
    """`/api/v5/account/positions-history` records, derived from the account's fills (what each
    closed, `closed_lots`) and funding: one record per position from open to flat, type "2"
    once it closed whole, "1" while it is still open after a partial close. `pnl` the closes'
    PnL, `fee` and `fundingFee` negative when paid, `realizedPnl` their sum."""
    runs: dict[tuple[str, int], dict] = {}
    done: list[dict] = []
    for e in account.executions:
        run_key = (e.symbol, e.position_idx)
        run = runs.get(run_key)
        if e.order is None:  # funding on an open position
            if run is not None:
                run["funding"] += e.fee
            continue
        inst = m.model.states[e.symbol].inst
        lots = round(e.qty / inst.lot)
        sign = 1 if e.side == "Buy" else -1
        closing, opening = e.closed_lots, lots - e.closed_lots
        fee_share = e.fee * closing / lots if lots else ZERO
        if run is not None and closing:
            run["closed"] += closing
            run["close_value"] += e.price * inst.lot * closing
            run["pnl"] += e.pnl
            run["fee"] += fee_share
            run["lots"] += sign * closing
            run["u_time"] = e.time_ms
            if run["lots"] == 0:
                done.append(runs.pop(run_key))
                run = None
        if opening:
            if run is None:
                run = runs[run_key] = {"symbol": e.symbol, "idx": e.position_idx, "lots": 0, "opened": 0,
                                       "open_value": ZERO, "max": 0, "closed": 0, "close_value": ZERO,
                                       "pnl": ZERO, "fee": ZERO, "funding": ZERO, "c_time": e.time_ms,
                                       "u_time": e.time_ms, "direction": "long" if sign > 0 else "short"}
            run["lots"] += sign * opening
            run["opened"] += opening
            run["open_value"] += e.price * inst.lot * opening
            run["fee"] += e.fee - fee_share
            run["max"] = max(run["max"], abs(run["lots"]))
    rows = [(run, "2") for run in done] + [(run, "1") for run in runs.values() if run["closed"]]
    return [_history_fields(m, account, run, kind) for run, kind in rows]


def _history_fields(m: Matching, account: Account, run: dict, kind: str) -> dict:
    position = account.positions.get((run["symbol"], run["idx"]))
    realised = run["pnl"] - run["fee"] - run["funding"]
    open_avg = _price(m, run["symbol"], run["open_value"], run["opened"])
    cost = run["open_value"] * run["closed"] / run["opened"] if run["opened"] else ZERO
    lever = m.leverage(account, run["symbol"])
    ratio = num((run["pnl"] / (cost / lever)).quantize(PRICE_PLACES)) if cost else "0"
    return {
        "instType": "SWAP", "instId": inst_id(run["symbol"]), "mgnMode": position.margin_mode if position else "cross",
        "type": kind, "cTime": str(run["c_time"]), "uTime": str(run["u_time"]), "openAvgPx": open_avg,
        "nonSettleAvgPx": open_avg, "closeAvgPx": _price(m, run["symbol"], run["close_value"], run["closed"]),
        "posId": f"{run['idx']}{zlib.crc32((account.key + ':' + run['symbol']).encode())}",
        "openMaxPos": contracts(m, run["symbol"], run["max"]),
        "closeTotalPos": contracts(m, run["symbol"], run["closed"]), "realizedPnl": num(realised),
        "settledPnl": "", "pnlRatio": ratio, "fee": num(-run["fee"]), "fundingFee": num(-run["funding"]),
        "liqPenalty": "0", "pnl": num(run["pnl"]), "posSide": POS_SIDES[run["idx"]], "lever": num(lever),
        "direction": run["direction"], "triggerPx": "", "uly": inst_id(run["symbol"]).removesuffix("-SWAP"),
        "ccy": "USDT",
    }
