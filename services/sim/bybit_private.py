"""The matching engine's orders, executions, positions and wallet in Bybit V5's shapes:
the REST lists (`/v5/order/realtime`, `/v5/execution/list`, `/v5/position/list`,
`/v5/account/wallet-balance`) and the private stream topics (`order`, `execution`,
`position`, `wallet`), key for key as in venue-samples/bybit (protocol-bybit-v5.md §4).

Every business number is a string; `positionIdx`, `seq`, booleans and times in the stream
envelope are JSON numbers/booleans as in the samples.
"""

from __future__ import annotations

from services.sim.market import plain as num
from services.sim.matching import PRICE_PLACES, ZERO, Account, Execution, Matching, Order, Position


def order_fields(m: Matching, order: Order, stream: bool) -> dict:
    inst = m.model.states[order.symbol].inst
    filled = inst.lot * order.filled_lots
    avg = num((order.cum_value / filled).quantize(PRICE_PLACES)) if order.filled_lots else ("" if stream else "0")
    leaves_value = inst.tick * order.price_ticks * inst.lot * order.leaves
    fields = {
        "orderId": order.order_id, "orderLinkId": order.link_id, "blockTradeId": "", "symbol": order.symbol,
        "price": inst.price(order.price_ticks), "qty": inst.size(order.lots), "side": order.side,
        "positionIdx": order.position_idx, "orderStatus": order.status, "createType": "CreateByUser",
        "cancelType": order.cancel_type, "rejectReason": order.reject_reason, "avgPrice": avg,
        "leavesQty": inst.size(order.leaves), "leavesValue": num(leaves_value),
        "cumExecQty": inst.size(order.filled_lots), "cumExecValue": num(order.cum_value),
        "cumExecFee": num(order.cum_fee), "timeInForce": order.tif, "orderType": order.order_type,
        "stopOrderType": "UNKNOWN", "orderIv": "", "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0",
        "tpTriggerBy": "UNKNOWN", "slTriggerBy": "UNKNOWN", "triggerDirection": 0, "triggerBy": "UNKNOWN",
        "lastPriceOnCreated": inst.price(order.last_price_on_created), "reduceOnly": order.reduce_only,
        "closeOnTrigger": False, "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "",
        "tpLimitPrice": "", "slLimitPrice": "", "placeType": "", "createdTime": str(order.created_ms),
        "updatedTime": str(order.updated_ms), "cumFeeDetail": {"USDT": num(order.cum_fee)} if order.cum_fee else {},
    }
    if stream:
        fields.update({"category": "linear", "closedPnl": num(order.closed_pnl), "feeCurrency": "",
                       "rpiTakerAccess": False, "rpiMatchedQty": "0"})
    else:
        fields.update({"isLeverage": "", "marketUnit": ""})
    return fields


def execution_fields(m: Matching, e: Execution, stream: bool) -> dict:
    inst = m.model.states[e.symbol].inst
    order = e.order
    fields = {
        "symbol": e.symbol, "orderType": order.order_type if order else "UNKNOWN", "underlyingPrice": "",
        "orderLinkId": order.link_id if order else "", "orderId": order.order_id if order else e.exec_id,
        "stopOrderType": "UNKNOWN", "execTime": str(e.time_ms), "feeCurrency": "USDT" if stream else "",
        "createType": "CreateByUser" if order else "", "feeRate": num(e.fee_rate), "tradeIv": "",
        "blockTradeId": "", "markPrice": num(e.mark_price), "execPrice": num(e.price), "markIv": "",
        "orderQty": inst.size(order.lots) if order else "0",
        "orderPrice": inst.price(order.price_ticks) if order else "0", "execValue": num(e.value),
        "closedSize": inst.size(e.closed_lots), "execType": e.exec_type, "side": e.side, "indexPrice": "",
        "leavesQty": inst.size(e.leaves_lots), "isMaker": e.is_maker, "execFee": num(e.fee), "execId": e.exec_id,
        "marketUnit": "", "execQty": num(e.qty), "execPnl": num(e.pnl),
    }
    fields["seq"] = e.seq  # a number in the stream and in /v5/execution/list alike
    if stream:
        fields.update({"category": "linear", "isLeverage": "0", "extraFees": []})
    return fields


def position_fields(m: Matching, account, p: Position, stream: bool) -> dict:
    inst = m.model.states[p.symbol].inst
    mark = m.mark(p.symbol)
    lever = m.leverage(account, p.symbol)
    qty = inst.lot * abs(p.lots)
    side = "" if not p.lots else ("Buy" if p.lots > 0 else "Sell")
    entry = num(p.entry_price(inst))
    fields = {
        "positionIdx": p.idx, "tradeMode": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": p.symbol,
        "side": side, "size": inst.size(abs(p.lots)), "leverage": num(lever), "breakEvenPrice": entry,
        "positionValue": num(p.cost), "positionBalance": num(p.cost / lever), "markPrice": num(mark),
        "positionIM": num(p.cost / lever), "positionIMByMp": num(mark * qty / lever), "positionMM": num(p.cost / 200),
        "positionMMByMp": num(mark * qty / 200), "takeProfit": "0", "stopLoss": "0", "trailingStop": "0",
        "unrealisedPnl": num(m.unrealised(p)), "curRealisedPnl": num(p.cur_realised),
        "cumRealisedPnl": num(p.cum_realised), "sessionAvgPrice": "", "createdTime": str(p.created_ms),
        "updatedTime": str(p.updated_ms), "tpslMode": "Full", "liqPrice": "", "bustPrice": "",
        "positionStatus": "Normal", "adlRankIndicator": 2 if p.lots else 0, "autoAddMargin": 0,
        "leverageSysUpdatedTime": "", "mmrSysUpdatedTime": "", "seq": p.seq, "isReduceOnly": False,
    }
    if stream:
        fields.update({"entryPrice": entry, "category": "linear"})
    else:
        fields["avgPrice"] = entry
    return fields


def wallet_fields(m: Matching, account: Account) -> dict:
    upl, position_im, order_im = m.margin(account)
    equity = account.wallet + upl
    available = equity - position_im - order_im
    mm = sum((p.cost / 200 for p in account.positions.values() if p.lots), ZERO)
    im_rate = num((position_im + order_im) / equity) if equity else "0"
    mm_rate = num(mm / equity) if equity else "0"
    coin = {
        "coin": "USDT", "equity": num(equity), "usdValue": num(equity), "walletBalance": num(account.wallet),
        "availableToWithdraw": "", "availableToBorrow": "", "borrowAmount": "0", "accruedInterest": "0",
        "totalOrderIM": num(order_im), "totalPositionIM": num(position_im), "totalPositionMM": num(mm),
        "unrealisedPnl": num(upl), "cumRealisedPnl": num(account.cum_realised), "bonus": "0",
        "collateralSwitch": True, "marginCollateral": True, "locked": "0", "spotHedgingQty": "0", "spotBorrow": "0",
    }
    return {
        "accountIMRate": im_rate, "accountIMRateByMp": im_rate, "accountMMRate": mm_rate, "accountMMRateByMp": mm_rate,
        "totalEquity": num(equity), "totalWalletBalance": num(account.wallet), "totalMarginBalance": num(equity),
        "totalAvailableBalance": num(available), "totalPerpUPL": num(upl),
        "totalInitialMargin": num(position_im + order_im), "totalInitialMarginByMp": num(position_im + order_im),
        "totalMaintenanceMargin": num(mm), "totalMaintenanceMarginByMp": num(mm), "coin": [coin],
        "accountLTV": "0", "accountType": "UNIFIED",
    }


def stream_messages(m: Matching, key: str, changes, now_ms: int, next_id) -> list[tuple[str, dict]]:
    """The private-stream messages for one account's changes, as (topic, message)."""
    out = []

    def message(topic: str, data: list[dict]) -> None:
        if data:
            out.append((topic, {"id": next_id(), "topic": topic, "creationTime": now_ms, "data": data}))

    message("order", [order_fields(m, o, True) for o in changes.orders.values()])
    message("execution", [execution_fields(m, e, True) for e in changes.executions])
    message("position", [position_fields(m, m.account(key), p, True) for p in changes.positions.values()])
    if changes.wallet or changes.executions:
        message("wallet", [wallet_fields(m, m.account(key))])
    return out
