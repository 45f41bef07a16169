"""OKX rows as the trading interface's updates (shared/venues/okx/private.py): exact contract
conversion, and private-stream pushes from the reference's captures (protocol-trading-okx-
bitget-binance.md §2.7) and broken ones."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.instruments import Instrument
from shared.venues.okx.private import Rows, to_base, to_contracts
from shared.venues.trading import BadRow, BalanceUpdate, FillUpdate, FundingUpdate, OrderUpdate, PositionUpdate

BTC = Instrument(venue="okx", symbol="BTCUSDT", venue_symbol="BTC-USDT-SWAP", contract_size=Decimal("0.01"),
                 tick=Decimal("0.1"), lot=Decimal("0.01"), min_size=Decimal("0.01"))
ETH = Instrument(venue="okx", symbol="ETHUSDT", venue_symbol="ETH-USDT-SWAP", contract_size=Decimal("0.1"),
                 tick=Decimal("0.01"), lot=Decimal("0.01"), min_size=Decimal("0.01"))
LINKS = {"001BTCUSDT20250106001": "001BTCUSDT-20250106001"}

# NT's capture of a real SWAP orders push, as the reference quotes it (§2.7)
ORDERS_CAPTURE = json.loads("""{"arg":{"channel":"orders","instType":"SWAP"},"data":[{"accFillSz":"0.03",
"avgPx":"103698.9","cTime":"1746947317401","cancelSource":"","category":"normal","ccy":"USDT",
"clOrdId":"001BTCUSDT20250106001","execType":"M","fee":"-0.021776769","feeCcy":"USDT","fillPx":"103698.9",
"fillSz":"0.03","fillTime":"1746947317402","instId":"BTC-USDT-SWAP","instType":"SWAP","lever":"2.0",
"ordId":"2497956918703120384","ordType":"market","pnl":"0","posSide":"long","px":"","rebate":"0",
"rebateCcy":"USDT","reduceOnly":"false","side":"buy","source":"","state":"filled","stpMode":"cancel_maker",
"sz":"0.03","tdMode":"isolated","tradeId":"1518905529","uTime":"1746947317402"}]}""")
# NT's real account push (§2.7), totals filled in
ACCOUNT_CAPTURE = json.loads("""{"arg":{"channel":"account"},"data":[{"details":[{"ccy":"USDT",
"eq":"100.52768569797846","cashBal":"100.52768569797846","availBal":"100.52768569797846",
"availEq":"100.52768569797846","frozenBal":"0","upl":"0","eqUsd":"100.55985455740182","uTime":"1751526647084"}],
"totalEq":"100.55985455740182","uTime":"1751526647084"}]}""")
# the docs' positions push (§2.7), on a linear swap this client trades
POSITIONS_DOC = json.loads("""{"arg":{"channel":"positions","uid":"77982378738415879","instType":"ANY"},
"eventType":"snapshot","curPage":1,"lastPage":true,"data":[{"instId":"ETH-USDT-SWAP","instType":"SWAP",
"mgnMode":"cross","posId":"307173036051017730","posSide":"long","pos":"1","availPos":"1","avgPx":"2566.31",
"markPx":"2353.849","upl":"-0.0000009932766034","lever":"10","liqPx":"2352.8496681818233",
"margin":"0.0003896645377994","fee":"-0.0001","fundingFee":"0","realizedPnl":"0.001","pnl":"0.0011",
"ccy":"USDT","cTime":"1619507758793","uTime":"1619507761462","pTime":"1619507761462"}]}""")


def rows() -> Rows:
    return Rows({"BTC-USDT-SWAP": BTC, "ETH-USDT-SWAP": ETH}, lambda cl: LINKS.get(cl, cl))


def order_push(**fields) -> dict:
    message = copy.deepcopy(ORDERS_CAPTURE)
    message["data"][0].update(fields)
    return message


# ---------------------------------------------------------------------- sizes

def test_contracts_floor_to_the_lot_grid_exactly():
    assert to_contracts(Decimal("0.015"), Decimal("0.01"), Decimal("1")) == 1
    assert to_contracts(Decimal("0.0234"), Decimal("0.1"), Decimal("0.01")) == Decimal("0.23")
    assert to_contracts(Decimal("0.03"), Decimal("0.1"), Decimal("0.01")) == Decimal("0.3")
    assert to_contracts(Decimal("0.009"), Decimal("0.01"), Decimal("1")) == 0
    assert to_contracts(Decimal("0"), Decimal("0.01"), Decimal("1")) == 0
    assert to_base(Decimal("0.03"), Decimal("0.01")) == Decimal("0.0003")


grid_step = st.builds(lambda digits, exponent: Decimal(digits).scaleb(exponent),
                      st.integers(min_value=1, max_value=999), st.integers(min_value=-6, max_value=3))


@given(qty=st.decimals(min_value=Decimal("1e-9"), max_value=Decimal("1e7"), places=9, allow_nan=False),
       ct_val=grid_step, lot=grid_step, min_lots=st.integers(min_value=1, max_value=100))
def test_any_quantity_lands_on_the_grid_at_most_what_was_asked(qty, ct_val, lot, min_lots):
    contracts = to_contracts(qty, ct_val, lot)
    assert (contracts / lot) == (contracts / lot).to_integral_value()  # a multiple of lotSz
    assert to_base(contracts, ct_val) <= qty  # never more than asked
    assert qty - to_base(contracts, ct_val) < lot * ct_val  # and less than one lot short of it
    # min_size (a multiple of lot) is refused by the caller when the result is under it
    assert (contracts >= lot * min_lots) == (qty >= lot * min_lots * ct_val)


# ---------------------------------------------------------------------- orders channel

def test_the_real_orders_capture_is_a_fill_then_the_filled_order():
    updates, skipped = rows().message(ORDERS_CAPTURE)
    assert skipped == []
    assert updates == [
        FillUpdate(link_id="001BTCUSDT-20250106001", fill_id="1518905529", symbol="BTCUSDT", qty=Decimal("0.0003"),
                   price=Decimal("103698.9"), fee=Decimal("0.021776769"), maker=True, ts_ms=1746947317402),
        OrderUpdate(link_id="001BTCUSDT-20250106001", order_id="2497956918703120384", symbol="BTCUSDT",
                    status="filled", filled_qty=Decimal("0.0003")),
    ]


def test_a_fill_fee_is_the_rows_fillfee_and_a_rebate_is_negative():
    paid, _ = rows().message(order_push(fillFee="-0.5", fee="-9", accFillSz="0.05", state="partially_filled"))
    assert paid[0].fee == Decimal("0.5") and paid[1].status == "open" and paid[1].filled_qty == Decimal("0.0005")
    rebate, _ = rows().message(order_push(fillFee="0.01", execType="T"))
    assert rebate[0].fee == Decimal("-0.01") and rebate[0].maker is False


def test_a_later_fill_without_its_own_fee_keeps_the_order_and_skips_the_fill():
    updates, skipped = rows().message(order_push(accFillSz="0.05", state="partially_filled"))
    assert [type(u) for u in updates] == [OrderUpdate]
    assert skipped[0][0] == "fill" and "fillFee" in skipped[0][1]


def test_a_post_only_that_would_take_is_a_cancel_of_kind_post_only():
    updates, _ = rows().message(order_push(state="canceled", cancelSource="31", tradeId="", fillSz="0",
                                           accFillSz="0", ordType="post_only"))
    assert updates == [OrderUpdate(link_id="001BTCUSDT-20250106001", order_id="2497956918703120384",
                                   symbol="BTCUSDT", status="cancelled", filled_qty=Decimal(0),
                                   reason="cancelSource 31: post-only order would take liquidity", kind="post_only")]


@pytest.mark.parametrize(("state", "source", "status", "reason"), [
    ("live", "", "open", ""), ("partially_filled", "", "open", ""),
    ("canceled", "1", "cancelled", "cancelSource 1: canceled by user"),
    ("canceled", "14", "cancelled", "cancelSource 14: IOC remainder canceled"),
    ("canceled", "99", "cancelled", "cancelSource 99: canceled"),
    ("canceled", "", "cancelled", "canceled"), ("mmp_canceled", "", "cancelled", "mmp_canceled"),
])
def test_order_states_and_cancel_reasons(state, source, status, reason):
    updates, skipped = rows().message(order_push(state=state, cancelSource=source, tradeId="", fillSz=""))
    assert skipped == [] and len(updates) == 1
    assert (updates[0].status, updates[0].reason, updates[0].kind) == (status, reason, None)


def test_a_market_order_filled_without_a_trade_is_only_its_state():
    updates, skipped = rows().message(order_push(tradeId="", fillSz="0", fillPx=""))
    assert skipped == [] and [type(u) for u in updates] == [OrderUpdate]
    zero, skipped = rows().message(order_push(fillSz="0"))  # a tradeId with nothing filled: no fill either
    assert skipped == [] and [type(u) for u in zero] == [OrderUpdate]


def test_an_unknown_client_id_parses_under_its_raw_id():
    updates, _ = rows().message(order_push(clOrdId="someoneelse1", tradeId=""))
    assert updates[0].link_id == "someoneelse1"
    manual, _ = rows().message(order_push(clOrdId="", tradeId=""))
    assert manual[0].link_id == ""


@pytest.mark.parametrize(("fields", "why"), [
    ({"state": "effective"}, "state"), ({"ordId": ""}, "ordId"), ({"instId": "XRP-USDT-SWAP"}, "instId"),
    ({"instId": None}, "instId"), ({"accFillSz": "NaN"}, "accFillSz"), ({"accFillSz": "-1"}, "accFillSz"),
])
def test_a_malformed_order_row_is_skipped_whole(fields, why):
    updates, skipped = rows().message(order_push(**fields))
    assert updates == [] and skipped[0][0] == "orders" and why in skipped[0][1]


@pytest.mark.parametrize("fields", [{"fillPx": "0"}, {"fillPx": "Infinity"}, {"fillSz": "-0.03"},
                                    {"fillSz": "abc"}, {"fillFee": "NaN"}, {"fillPx": ""}])
def test_a_malformed_fill_is_skipped_and_its_order_kept(fields):
    updates, skipped = rows().message(order_push(**fields))
    assert [type(u) for u in updates] == [OrderUpdate] and skipped[0][0] == "fill"


# ---------------------------------------------------------------------- positions and account

def test_positions_are_signed_base_units_per_side():
    long_, _ = rows().message(POSITIONS_DOC)
    assert long_ == [PositionUpdate(symbol="ETHUSDT", qty=Decimal("0.1"), position_side="long")]
    message = copy.deepcopy(POSITIONS_DOC)
    message["data"] = [{**message["data"][0], "posSide": "short", "pos": "2.5"},
                       {**message["data"][0], "posSide": "net", "pos": "-3"},
                       {**message["data"][0], "posSide": "long", "pos": "0"}]
    updates, skipped = rows().message(message)
    assert skipped == []
    assert updates == [PositionUpdate(symbol="ETHUSDT", qty=Decimal("-0.25"), position_side="short"),
                       PositionUpdate(symbol="ETHUSDT", qty=Decimal("-0.3"), position_side=None),
                       PositionUpdate(symbol="ETHUSDT", qty=Decimal("0.0"), position_side="long")]


def test_the_docs_inverse_position_is_skipped_not_raised():
    message = copy.deepcopy(POSITIONS_DOC)
    message["data"][0]["instId"] = "ETH-USD-SWAP"
    updates, skipped = rows().message(message)
    assert updates == [] and skipped[0][0] == "positions"


def test_the_real_account_push_is_the_usdt_balance():
    updates, skipped = rows().message(ACCOUNT_CAPTURE)
    assert skipped == []
    assert updates == [BalanceUpdate(currency="USDT", equity=Decimal("100.52768569797846"),
                                     available=Decimal("100.52768569797846"))]
    other = copy.deepcopy(ACCOUNT_CAPTURE)
    other["data"][0]["details"][0]["ccy"] = "BTC"
    assert rows().message(other) == ([], [])
    futures_mode = copy.deepcopy(ACCOUNT_CAPTURE)
    futures_mode["data"][0]["details"][0].update(availEq="", availBal="42")
    assert rows().message(futures_mode)[0][0].available == Decimal(42)


@pytest.mark.parametrize("message", [
    "pong", {"event": "login", "code": "0", "msg": "", "connId": "a4d3ae55"},
    {"event": "subscribe", "arg": {"channel": "orders", "instType": "SWAP"}, "connId": "a4d3ae55"},
    {"event": "error", "code": "60012", "msg": "Invalid request"},
    {"arg": {"channel": "fills"}, "data": [{"x": 1}]},
])
def test_events_and_other_channels_are_nothing(message):
    assert rows().message(message) == ([], [])


@pytest.mark.parametrize("message", [None, "ping", 42, [1], {"arg": {"channel": "orders"}},
                                     {"arg": "orders", "data": []}, {"arg": {"channel": "orders"}, "data": {}},
                                     {"arg": {"channel": "orders"}, "data": [None, 3, "x"]}])
def test_broken_messages_are_skipped_never_raised(message):
    updates, skipped = rows().message(message)
    assert updates == [] and skipped


# ---------------------------------------------------------------------- fuzz

BAD_VALUES = [None, "", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "-1", "0", "-0", "1e999999", "1E-999999999",
              "9" * 300, "abc", " ", 12, 1.5, True, [], {}, "0x10", "1_000"]


def _mutate(message: dict, choices: list[tuple[int, str, object]]) -> dict:
    broken = copy.deepcopy(message)
    for index, key, value in choices:
        data = broken.get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            break
        row = data[0]
        keys = sorted(row)
        if key == "existing" and not keys:  # every field deleted already: nothing left to change
            continue
        name = keys[index % len(keys)] if key == "existing" else key
        if value == "<delete>":
            row.pop(name, None)
        else:
            row[name] = value
    return broken


mutations = st.lists(st.tuples(st.integers(min_value=0, max_value=100),
                               st.sampled_from(["existing", "fillFee", "accFillSz", "tradeId", "details"]),
                               st.sampled_from([*BAD_VALUES, "<delete>"])), min_size=1, max_size=6)


@settings(max_examples=300)
@given(base=st.sampled_from([ORDERS_CAPTURE, ACCOUNT_CAPTURE, POSITIONS_DOC]), choices=mutations)
def test_mutated_pushes_never_raise_nor_make_a_bad_fill(base, choices):
    updates, skipped = rows().message(_mutate(base, choices))
    for update in updates:
        if isinstance(update, FillUpdate):
            assert update.qty.is_finite() and update.qty > 0
            assert update.price.is_finite() and update.price > 0
            assert update.fee.is_finite() and update.fill_id
        if isinstance(update, OrderUpdate):
            assert update.filled_qty.is_finite() and update.filled_qty >= 0 and update.order_id
        if isinstance(update, PositionUpdate):
            assert update.qty.is_finite()
        if isinstance(update, BalanceUpdate):
            assert update.equity.is_finite() and update.available.is_finite()
    assert all(len(entry) == 3 for entry in skipped)


# ---------------------------------------------------------------------- what a user of the rows relies on

def test_a_push_without_its_own_fill_time_is_timed_at_its_update():
    assert rows().message(order_push(fillTime="1746947317399"))[0][0].ts_ms == 1746947317399  # fillTime first
    for gone in ({"fillTime": ""}, {"fillTime": None}):
        updates, skipped = rows().message(order_push(**gone, uTime="1746947317500"))
        assert skipped == [] and updates[0].ts_ms == 1746947317500
    without = order_push(uTime="")
    del without["data"][0]["fillTime"]
    assert rows().message(without)[0][0].ts_ms == 0  # no time at all is 0, not a made-up one


def test_a_trade_id_without_a_fill_size_or_a_size_without_a_trade_id_is_no_fill():
    for fields in ({"fillSz": ""}, {"tradeId": ""}):
        updates, skipped = rows().message(order_push(**fields))
        assert skipped == [] and [type(u) for u in updates] == [OrderUpdate]


def test_a_later_fill_without_its_fee_is_skipped_with_that_reason():
    message = order_push(accFillSz="0.05", state="partially_filled")
    assert rows().message(message)[1] == [("fill", "fillFee missing on a later fill", message["data"][0])]


def test_an_order_without_a_filled_size_has_filled_nothing():
    updates, skipped = rows().message(order_push(state="live", accFillSz="", tradeId="", fillSz=""))
    assert skipped == [] and updates[0].filled_qty == 0 and updates[0].status == "open"
    message = order_push(state="live", tradeId="", fillSz="")
    del message["data"][0]["accFillSz"]
    updates, skipped = rows().message(message)
    assert skipped == [] and updates[0].filled_qty == 0


def test_a_size_too_long_to_convert_exactly_is_refused_not_rounded():
    size = "1" * 250  # contracts * ctVal needs more digits than the exact context holds
    message = order_push(accFillSz=size)
    assert rows().message(message) == ([], [("orders", f"accFillSz={size!r}", message["data"][0])])


def test_a_state_that_is_not_text_is_skipped_with_its_reason():
    message = order_push(state=["filled"])
    assert rows().message(message) == ([], [("orders", "state=['filled']", message["data"][0])])


def test_a_cancel_without_a_source_says_canceled():
    message = order_push(state="canceled", tradeId="", fillSz="", accFillSz="0")
    del message["data"][0]["cancelSource"]
    [order], skipped = rows().message(message)
    assert skipped == [] and (order.status, order.reason, order.kind) == ("cancelled", "canceled", None)


@pytest.mark.parametrize(("words", "reason"), [
    ("Order canceled by user", "cancelSource 1: Order canceled by user"),  # OKX's own words first
    ("", "cancelSource 1: canceled by user"), (7, "cancelSource 1: canceled by user"),  # else the table's
])
def test_a_cancel_reason_uses_okx_words_when_it_sends_them(words, reason):
    updates, _ = rows().message(order_push(state="canceled", cancelSource="1", cancelSourceReason=words,
                                           tradeId="", fillSz=""))
    assert updates[0].reason == reason


def test_an_order_without_a_client_id_is_linked_to_the_empty_id():
    message = order_push(tradeId="")
    del message["data"][0]["clOrdId"]
    [order], _ = rows().message(message)
    assert order.link_id == ""


def test_a_position_without_a_side_is_skipped_with_its_reason():
    message = copy.deepcopy(POSITIONS_DOC)
    message["data"][0]["instId"] = "ETH-USDT-SWAP"
    del message["data"][0]["posSide"]
    assert rows().message(message) == ([], [("positions", "posSide=None", message["data"][0])])


def test_an_account_in_deficit_is_reported_not_dropped():
    message = copy.deepcopy(ACCOUNT_CAPTURE)
    message["data"][0]["details"][0].update(eq="-12.5", availEq="", availBal="-3")
    assert rows().message(message) == ([BalanceUpdate(currency="USDT", equity=Decimal("-12.5"),
                                                       available=Decimal("-3"))], [])


def test_an_account_row_whose_details_is_not_a_list_is_skipped_with_its_reason():
    message = copy.deepcopy(ACCOUNT_CAPTURE)
    message["data"][0]["details"] = {"ccy": "USDT"}
    assert rows().message(message) == ([], [("account", "details is not a list", message["data"][0])])


@pytest.mark.parametrize(("message", "why"), [
    (None, "not an object"), (42, "not an object"), ([1], "not an object"),
    ({"arg": {"channel": "orders"}}, "no channel or no data list"),
    ({"arg": "orders", "data": []}, "no channel or no data list"),
])
def test_a_broken_message_is_skipped_with_its_reason(message, why):
    assert rows().message(message) == ([], [("message", why, message)])


# ---------------------------------------------------------------------- REST fills (§2.7 fills-history)

# a fills-history record with the reference's fields: 3 contracts of BTC-USDT-SWAP (ctVal 0.01) = 0.03 BTC
# taken at 103698.9, fee 0.05 % of 3110.967 charged (negative); ts (the record's) after fillTime (the trade's)
FILL_ROW = {"instId": "BTC-USDT-SWAP", "tradeId": "1518905600", "ordId": "2497956918703120384",
            "clOrdId": "001BTCUSDT20250106001", "billId": "2497956918711508992", "subType": "1",
            "fillPx": "103698.9", "fillSz": "3", "side": "buy", "posSide": "long", "execType": "T",
            "fee": "-1.5554835", "feeCcy": "USDT", "fillPnl": "0", "fillMarkPx": "103700.1",
            "ts": "1746947317450", "fillTime": "1746947317402"}


def test_a_rest_fill_is_base_units_with_the_fee_paid_positive_at_its_trade_time():
    assert rows().fill(FILL_ROW, "L") == FillUpdate(
        link_id="L", fill_id="1518905600", symbol="BTCUSDT", qty=Decimal("0.03"), price=Decimal("103698.9"),
        fee=Decimal("1.5554835"), maker=False, ts_ms=1746947317402)
    assert rows().fill({**FILL_ROW, "execType": "M", "fee": "0.2"}, "L").maker is True
    assert rows().fill({**FILL_ROW, "execType": "M", "fee": "0.2"}, "L").fee == Decimal("-0.2")  # a rebate


def test_a_rest_fill_without_its_trade_time_is_timed_at_the_record():
    for gone in ("", None):
        assert rows().fill({**FILL_ROW, "fillTime": gone}, "L").ts_ms == 1746947317450
    bare = {k: v for k, v in FILL_ROW.items() if k not in ("fillTime", "ts")}
    assert rows().fill(bare, "L").ts_ms == 0


@pytest.mark.parametrize("field", ["fillSz", "fillPx"])
def test_a_rest_fill_of_nothing_or_at_no_price_is_refused(field):
    with pytest.raises(BadRow) as refused:
        rows().fill({**FILL_ROW, field: "0"}, "L")
    assert str(refused.value) == f"{field}='0'"


# ---------------------------------------------------------------------- funding bills (§2.8)

BILL = {"billId": "623950854533513219", "instId": "BTC-USDT-SWAP", "ccy": "USDT", "type": "8", "subType": "173",
        "balChg": "-0.0525", "bal": "100.4", "pnl": "-0.0525", "sz": "3", "px": "103700", "ts": "1746950400000",
        "mgnMode": "cross"}


def test_a_funding_bill_paid_is_positive_and_received_negative():
    assert rows().funding(BILL, "Buy") == FundingUpdate(funding_id="623950854533513219", symbol="BTCUSDT",
                                                        side="Buy", amount=Decimal("0.0525"), ts_ms=1746950400000)
    assert rows().funding({**BILL, "subType": "174", "balChg": "0.03"}, "Sell").amount == Decimal("-0.03")


def test_a_bill_of_another_swap_keeps_its_quote_and_an_odd_inst_id_is_kept_as_sent():
    assert rows().funding({**BILL, "instId": "BTC-USDC-SWAP"}, "Buy").symbol == "BTCUSDC"
    assert rows().funding({**BILL, "instId": "BTC-USDT"}, "Buy").symbol == "BTC-USDT"
    assert rows().funding({**BILL, "instId": "BTCUSDT"}, "Buy").symbol == "BTCUSDT"
