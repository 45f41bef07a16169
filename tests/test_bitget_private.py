"""Bitget's REST rows and private pushes as the trading interface's updates
(shared/venues/bitget/private.py), from the reference's example payloads (§3.4-3.6)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.instruments import Instrument
from shared.venues.bitget.private import Rows
from shared.venues.trading import BadRow, BalanceUpdate, FillUpdate, FundingUpdate, OrderUpdate, PositionUpdate

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


# ---------------------------------------------------------------- fields, fallbacks and reasons

PUSH = ORDERS["data"][0]
REST_FILL = FILL["data"][0]
# demo contracts may be S-prefixed (§3.1): Bitget's symbol is not the canonical one
DEMO_BTC = Instrument(venue="bitget", symbol="BTCUSDT", venue_symbol="SBTCSUSDT", tick=Decimal("0.1"),
                      lot=Decimal("0.001"), min_size=Decimal("0.001"))
DEMO_ROWS = Rows({"SBTCSUSDT": DEMO_BTC}, lambda oid: oid)


def push(**fields) -> dict:
    """The orders push with one row: the reference's, these fields changed (None: left out)."""
    row = {k: v for k, v in {**PUSH, **fields}.items() if v is not None}
    return {**ORDERS, "data": [row]}


def test_a_pushed_order_counts_the_accumulated_fill_not_the_last_one():
    # a second partial fill: baseVolume is that fill (5), accBaseVolume all filled so far (15) (§3.5)
    updates, skipped = ROWS.message(push(accBaseVolume="15", baseVolume="5", tradeId="1111111112"))
    assert skipped == []
    fill, order = updates
    assert (fill.qty, fill.fill_id) == (Decimal("5"), "1111111112")
    assert order.filled_qty == Decimal("15")


def test_the_orders_push_scope_M_is_a_maker_fill_and_T_a_taker_one():
    assert ROWS.message(push(tradeScope="M"))[0][0].maker is True
    assert ROWS.message(push(tradeScope="T"))[0][0].maker is False
    assert ROWS.fill({**REST_FILL, "tradeScope": "maker"}).maker is True
    assert ROWS.fill({**REST_FILL, "tradeScope": "taker"}).maker is False


def test_a_pushed_fill_is_timed_by_its_fill_time_else_the_update_time():
    updates, _ = ROWS.message(push(fillTime="1695718781146", uTime="1695718781150"))
    assert updates[0].ts_ms == 1695718781146
    updates, _ = ROWS.message(push(fillTime=None, uTime="1695718781150"))
    assert updates[0].ts_ms == 1695718781150


def test_a_fill_row_is_timed_by_its_creation_time_else_its_update_time_else_0():
    assert ROWS.fill({**REST_FILL, "cTime": "1703577336606", "uTime": "1703577336999"}).ts_ms == 1703577336606
    no_ctime = {k: v for k, v in REST_FILL.items() if k != "cTime"}
    assert ROWS.fill({**no_ctime, "uTime": "1703577336999"}).ts_ms == 1703577336999
    # a time that is not epoch ms (empty, text, a boolean) is passed over for the next
    for bad in ("", "n/a", "-5", True):
        assert ROWS.fill({**REST_FILL, "cTime": bad, "uTime": "1703577336999"}).ts_ms == 1703577336999
    assert ROWS.fill({**REST_FILL, "cTime": 1703577336606}).ts_ms == 1703577336606  # a JSON number is a time too
    untimed = {k: v for k, v in REST_FILL.items() if k not in ("cTime", "uTime")}
    assert ROWS.fill(untimed).ts_ms == 0  # no time at all: 0, not a made-up one


def test_a_push_without_a_complete_fill_gives_only_the_order_state():
    # a live order's push, or one whose fill fields are empty or zero: nothing to record, nothing malformed
    for fields in ({"status": "live", "accBaseVolume": "0", "baseVolume": "0"},
                   {"tradeId": "", "baseVolume": "10"},
                   {"tradeId": "1111111111", "baseVolume": ""},
                   {"tradeId": None, "fillPrice": None, "fillFee": None}):
        updates, skipped = ROWS.message(push(**fields))
        assert skipped == [] and [type(u) for u in updates] == [OrderUpdate], fields


def test_a_pushed_fill_at_price_0_is_skipped_with_its_reason_and_the_order_kept():
    updates, skipped = ROWS.message(push(fillPrice="0"))
    assert [type(u) for u in updates] == [OrderUpdate]
    assert [(what, why) for what, why, _ in skipped] == [("fill", "fillPrice='0'")]
    updates, skipped = ROWS.message(push(fillFee="lots"))
    assert [(what, why) for what, why, _ in skipped] == [("fill", "fillFee='lots'")]


def test_a_fill_row_of_nothing_or_at_price_0_is_malformed():
    for field in ("baseVolume", "price"):
        updates, skipped = ROWS.message({**FILL, "data": [{**REST_FILL, field: "0"}]})
        assert updates == [] and [(w, why) for w, why, _ in skipped] == [("fill", f"{field}='0'")]


def test_a_fill_fee_is_the_negated_sum_of_its_fee_details_whichever_name_they_use():
    # fillList/fill rows say totalFee; the orders push's feeDetail says fee (§3.4, §3.5)
    row = {**REST_FILL, "feeDetail": [{"feeCoin": "USDT", "fee": "-0.2"}, {"feeCoin": "USDT", "totalFee": "0.05"}]}
    assert ROWS.fill(row).fee == Decimal("0.15")
    for details, why in (([], "feeDetail missing"), (None, "feeDetail missing"), ({"totalFee": "-1"}, "feeDetail missing"),
                         (["-0.1"], "feeDetail row is not an object")):
        updates, skipped = ROWS.message({**FILL, "data": [{**REST_FILL, "feeDetail": details}]})
        assert updates == [] and [(w, reason) for w, reason, _ in skipped] == [("fill", why)], details


def test_rows_without_a_client_id_are_linked_to_none_of_ours():
    # an order placed on the website has no clientOid: its link id is the empty one's
    seen = []
    rows = Rows({"BTCUSDT": BTC}, lambda oid: seen.append(oid) or f"link:{oid}")
    detail = {"symbol": "BTCUSDT", "orderId": "9", "state": "live", "baseVolume": "0"}
    assert rows.order(detail).link_id == "link:"
    assert rows.order({**detail, "clientOid": None}).link_id == "link:"
    no_oid = {k: v for k, v in REST_FILL.items() if k != "clientOid"}
    assert rows.fill(no_oid).link_id == "link:"
    assert rows.fill({**REST_FILL, "clientOid": 5}).link_id == "link:"
    assert seen == ["", "", "", ""]


def test_an_order_without_its_filled_size_has_filled_nothing():
    detail = {"symbol": "BTCUSDT", "orderId": "9", "clientOid": "abc", "state": "live"}
    assert ROWS.order(detail).filled_qty == 0
    assert ROWS.order({**detail, "baseVolume": ""}).filled_qty == 0
    assert ROWS.order({**detail, "baseVolume": "0.004"}).filled_qty == Decimal("0.004")


def test_a_cancelled_order_gives_bitgets_state_and_cancel_reason():
    detail = {"symbol": "BTCUSDT", "orderId": "9", "clientOid": "abc", "state": "canceled", "baseVolume": "0.01",
              "force": "gtc", "cancelReason": "stp_cancel"}
    assert ROWS.order(detail).reason == "canceled: stp_cancel"
    assert ROWS.order({**detail, "cancelReason": ""}).reason == "canceled"
    no_reason = {k: v for k, v in detail.items() if k != "cancelReason"}
    assert ROWS.order(no_reason).reason == "canceled"
    assert ROWS.order({**detail, "state": "filled"}).reason == ""


def test_a_post_only_cancel_is_a_rejection_unless_this_client_asked_that_order_cancelled():
    asked_links = {"0123456789ab-LE2"}
    rows = Rows({"BTCUSDT": BTC}, lambda oid: {"abc": "0123456789ab-LE1", "def": "0123456789ab-LE2"}[oid],
                asked_links.__contains__)
    post_only = {"symbol": "BTCUSDT", "orderId": "9", "clientOid": "abc", "state": "canceled", "baseVolume": "0",
                 "force": "post_only"}
    assert rows.order(post_only).kind == "post_only"
    assert rows.order({**post_only, "clientOid": "def"}).kind is None


def test_every_row_kind_reads_the_contract_under_symbol_or_inst_id():
    # REST rows name it `symbol`, pushes `instId` (§3.3-3.5); both are read wherever they come
    position_rest = {k: v for k, v in POSITIONS["data"][0].items() if k != "instId"}
    assert ROWS.position({**position_rest, "symbol": "BTCUSDT"}).symbol == "BTCUSDT"
    fill_inst = {k: v for k, v in REST_FILL.items() if k != "symbol"}
    assert ROWS.fill({**fill_inst, "instId": "BTCUSDT"}).symbol == "BTCUSDT"
    updates, skipped = ROWS.message(push(instId=None, symbol="BTCUSDT"))
    assert skipped == [] and [type(u) for u in updates] == [FillUpdate, OrderUpdate]


def test_rows_name_the_canonical_symbol_of_a_demo_contract():
    assert DEMO_ROWS.fill({**REST_FILL, "symbol": "SBTCSUSDT"}).symbol == "BTCUSDT"
    position = {**POSITIONS["data"][0], "instId": "SBTCSUSDT"}
    assert DEMO_ROWS.position(position) == PositionUpdate("BTCUSDT", Decimal("-1"), "short")
    bill = {"billId": "3", "symbol": "SBTCSUSDT", "amount": "0.3", "businessType": "contract_settle_fee",
            "cTime": "1700000000000"}
    # funding received: amount > 0 on Bitget, a negative payment here
    assert DEMO_ROWS.funding(bill, "Buy") == FundingUpdate("3", "BTCUSDT", "Buy", Decimal("-0.3"), 1700000000000)
    # a bill of a contract this client does not trade keeps Bitget's symbol: it is still money paid
    other = DEMO_ROWS.funding({**bill, "symbol": "ETHUSDT", "amount": "-0.1"}, "Sell")
    assert (other.symbol, other.amount) == ("ETHUSDT", Decimal("0.1"))


def test_a_bill_that_is_not_a_funding_settlement_is_refused_with_its_type():
    bill = {"billId": "4", "symbol": "BTCUSDT", "amount": "-1", "businessType": "open_long", "cTime": "1"}
    with pytest.raises(BadRow, match="open_long"):
        ROWS.funding(bill, "Buy")


def test_a_negative_equity_or_available_balance_is_reported_not_skipped():
    # a cross-margin account whose losses passed its margin: the user must see it
    row = {**ACCOUNT["data"][0], "equity": "-2.5", "available": "-4"}
    assert ROWS.message({**ACCOUNT, "data": [row]}) == ([BalanceUpdate("USDT", Decimal("-2.5"), Decimal("-4"))], [])


def test_malformed_rows_are_skipped_with_their_reason():
    rows = [{**PUSH, "status": "weird"}, {**PUSH, "instId": "XYZUSDT"},
            {k: v for k, v in PUSH.items() if k != "instId"}, {**PUSH, "status": ["live"]}]
    updates, skipped = ROWS.message({**ORDERS, "data": rows})
    assert updates == [] and [what for what, _, _ in skipped] == ["orders"] * 4
    reasons = [why for _, why, _ in skipped]
    assert "weird" in reasons[0] and "XYZUSDT" in reasons[1] and "symbol" in reasons[2]
    position = {k: v for k, v in POSITIONS["data"][0].items() if k != "holdSide"}
    updates, skipped = ROWS.message({**POSITIONS, "data": [position]})
    assert updates == [] and skipped[0][0] == "positions" and "holdSide" in skipped[0][1]


def test_a_message_without_a_channel_or_a_data_list_is_skipped_whole():
    for message in ({"action": "snapshot", "data": []}, {**ORDERS, "arg": "orders"}, {**ORDERS, "data": None},
                    {**ORDERS, "data": PUSH}):
        assert ROWS.message(message) == ([], [("message", "no channel or no data list", message)])
