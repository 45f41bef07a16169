"""Bitget's REST rows and private pushes as the trading interface's updates
(shared/venues/bitget/private.py), from the reference's example payloads (§3.4-3.6)."""

from __future__ import annotations

from decimal import Decimal

from shared.instruments import Instrument
from shared.venues.bitget.private import Rows
from shared.venues.trading import BalanceUpdate, FillUpdate, FundingUpdate, OrderUpdate, PositionUpdate

BTC = Instrument(venue="bitget", symbol="BTCUSDT", venue_symbol="BTCUSDT", tick=Decimal("0.1"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
ROWS = Rows({"BTCUSDT": BTC}, lambda oid: {"abc": "0123456789ab-LE1"}.get(oid, oid))

# the reference's orders push (HB's test), with Bitget's documented sign: fillFee negative when paid
ORDERS = {"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "orders", "instId": "default"},
          "data": [{"orderId": "1640b725", "clientOid": "abc", "instId": "BTCUSDT", "side": "buy",
                    "posSide": "long", "posMode": "hedge_mode", "tradeSide": "open", "orderType": "limit",
                    "force": "gtc", "price": "100", "size": "20", "status": "partially_filled",
                    "accBaseVolume": "10", "baseVolume": "10", "fillPrice": "100", "priceAvg": "100",
                    "tradeId": "1111111111", "fillTime": "1695718781146", "fillFee": "-0.1", "fillFeeCoin": "USDT",
                    "feeDetail": [{"feeCoin": "USDT", "fee": "-0.1"}], "tradeScope": "T", "marginMode": "crossed",
                    "marginCoin": "USDT", "leverage": "20", "reduceOnly": "no", "cancelReason": "normal_cancel",
                    "cTime": "1695718781129", "uTime": "1695718781146"}], "ts": 1695718781206}
# the official fill-channel example
FILL = {"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "fill", "instId": "default"},
        "data": [{"orderId": "111", "clientOid": "111", "tradeId": "222", "symbol": "BTCUSDT", "side": "buy",
                  "orderType": "market", "posMode": "one_way_mode", "price": "51000.5", "baseVolume": "0.01",
                  "quoteVolume": "510.005", "profit": "0", "tradeSide": "open", "tradeScope": "taker",
                  "feeDetail": [{"feeCoin": "USDT", "deduction": "no", "totalDeductionFee": "0",
                                 "totalFee": "-0.183717"}], "cTime": "1703577336606", "uTime": "1703577336606"}],
        "ts": 1703577336700}
POSITIONS = {"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "positions", "instId": "default"},
             "data": [{"posId": "1", "instId": "BTCUSDT", "marginCoin": "USDT", "marginSize": "10",
                       "marginMode": "crossed", "holdSide": "short", "posMode": "hedge_mode", "total": "1",
                       "available": "1", "frozen": "0", "openPriceAvg": "2500", "leverage": "20",
                       "achievedProfits": "0", "unrealizedPL": "0", "liquidationPrice": "5788.1",
                       "keepMarginRate": "0.005", "marginRate": "0.0044", "breakEvenPrice": "24778.97",
                       "totalFee": "1.45", "deductedFee": "0.388", "markPrice": "2500", "cTime": "1",
                       "uTime": "2", "assetMode": "union", "autoMargin": "off"}], "ts": 1695717430441}
ACCOUNT = {"action": "snapshot", "arg": {"instType": "USDT-FUTURES", "channel": "account", "coin": "default"},
           "data": [{"marginCoin": "USDT", "frozen": "0.00000000", "available": "10", "maxOpenPosAvailable": "10",
                     "maxTransferOut": "10", "equity": "15", "usdtEquity": "11.98", "crossedRiskRate": "0",
                     "unrealizedPL": "0", "unionTotalMargin": "100", "unionAvailable": "20", "unionMm": "15",
                     "assetMode": "union"}], "ts": 1695717225146}


def test_an_orders_push_is_its_fill_then_its_state():
    updates, skipped = ROWS.message(ORDERS)
    assert skipped == []
    assert updates == [
        FillUpdate(link_id="0123456789ab-LE1", fill_id="1111111111", symbol="BTCUSDT", qty=Decimal("10"),
                   price=Decimal("100"), fee=Decimal("0.1"), maker=False, ts_ms=1695718781146),
        OrderUpdate(link_id="0123456789ab-LE1", order_id="1640b725", symbol="BTCUSDT", status="open",
                    filled_qty=Decimal("10"))]


def test_an_orders_push_without_its_fill_fee_leaves_the_fill_to_the_fill_channel():
    # its feeDetail is the order's fee so far: a second partial fill would be charged the first's again
    row = {k: v for k, v in ORDERS["data"][0].items() if k not in ("fillFee", "fillFeeCoin")}
    updates, skipped = ROWS.message({**ORDERS, "data": [row]})
    assert skipped == [] and [type(u) for u in updates] == [OrderUpdate]


def test_a_fill_push_is_read_with_the_trade_direction_and_its_fee_paid():
    updates, skipped = ROWS.message(FILL)
    assert skipped == [] and updates == [
        FillUpdate(link_id="111", fill_id="222", symbol="BTCUSDT", qty=Decimal("0.01"), price=Decimal("51000.5"),
                   fee=Decimal("0.183717"), maker=False, ts_ms=1703577336606)]


def test_positions_and_account_pushes_and_an_empty_positions_snapshot():
    assert ROWS.message(POSITIONS) == ([PositionUpdate("BTCUSDT", Decimal("-1"), "short")], [])
    assert ROWS.message(ACCOUNT) == ([BalanceUpdate("USDT", Decimal("15"), Decimal("10"))], [])
    assert ROWS.message({**POSITIONS, "data": []}) == ([], [])
    one_way = {**POSITIONS["data"][0], "posMode": "one_way_mode", "holdSide": "long", "total": "0.5"}
    assert ROWS.position(one_way) == PositionUpdate("BTCUSDT", Decimal("0.5"), None)


def test_rest_rows_name_the_state_and_the_filled_size_otherwise():
    detail = {"symbol": "BTCUSDT", "orderId": "9", "clientOid": "abc", "state": "filled", "baseVolume": "0.02",
              "force": "gtc", "size": "0.02", "cancelReason": ""}
    assert ROWS.order(detail) == OrderUpdate("0123456789ab-LE1", "9", "BTCUSDT", "filled", Decimal("0.02"))
    pending = {**detail, "status": "live", "baseVolume": "0"}
    del pending["state"]
    assert ROWS.order(pending).status == "open"
    post_only = {**detail, "state": "canceled", "baseVolume": "0", "force": "post_only"}
    assert ROWS.order(post_only).kind == "post_only"
    asked = Rows({"BTCUSDT": BTC}, str, lambda link: True)  # this client asked the cancel
    assert asked.order(post_only).kind is None and asked.order(post_only).status == "cancelled"
    fill = {"tradeId": "5", "symbol": "BTCUSDT", "orderId": "9", "price": "100", "baseVolume": "0.01",
            "side": "sell", "feeDetail": [{"totalFee": "-0.02"}, {"totalFee": "0.005"}], "tradeScope": "maker",
            "cTime": "7"}
    assert ROWS.fill(fill, "L") == FillUpdate("L", "5", "BTCUSDT", Decimal("0.01"), Decimal("100"),
                                              Decimal("0.015"), True, 7)
    bill = {"billId": "3", "symbol": "BTCUSDT", "amount": "-0.42", "fee": "0", "businessType": "contract_settle_fee",
            "coin": "USDT", "balance": "99", "cTime": "1700000000000"}
    assert ROWS.funding(bill, "Sell") == FundingUpdate("3", "BTCUSDT", "Sell", Decimal("0.42"), 1700000000000)
    rest_balance = {"marginCoin": "USDT", "accountEquity": "101.5", "available": "90", "locked": "1"}
    assert ROWS.balance(rest_balance) == BalanceUpdate("USDT", Decimal("101.5"), Decimal("90"))


def test_malformed_rows_are_skipped_not_raised():
    bad = {**ORDERS, "data": [{**ORDERS["data"][0], "status": "weird"}, "row", {**ORDERS["data"][0],
                                                                                 "instId": "XYZUSDT"}]}
    updates, skipped = ROWS.message(bad)
    assert updates == [] and [s[0] for s in skipped] == ["orders"] * 3
    bad_fee = {**ORDERS, "data": [{**ORDERS["data"][0], "fillFee": "lots"}]}
    updates, skipped = ROWS.message(bad_fee)
    assert [type(u) for u in updates] == [OrderUpdate] and [s[0] for s in skipped] == ["fill"]
    assert ROWS.message("pong") == ([], []) and ROWS.message({"event": "login", "code": 0}) == ([], [])
    assert ROWS.message("nonsense")[1] == [("message", "not an object", "nonsense")]
