"""Binance USD-M rows and user-data events as the trading interface's updates
(shared/venues/binance/private.py), from the reference's examples (§4.3-4.6): orders, a partial
fill, positions in hedge and one-way mode, the balance, FUNDING_FEE, and what is ignored."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.instruments import Instrument
from shared.venues.binance.private import Rows
from shared.venues.trading import BadRow, BalanceUpdate, FillUpdate, FundingUpdate, OrderUpdate, PositionUpdate

BTC = Instrument(venue="binance", symbol="BTCUSDT", venue_symbol="BTCUSDT", tick=Decimal("0.10"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
ROWS = Rows({"BTCUSDT": BTC}, lambda client_id: client_id)

# the reference's ORDER_TRADE_UPDATE (doc example, §4.5)
NEW_EVENT = {"e": "ORDER_TRADE_UPDATE", "E": 1568879465651, "T": 1568879465650, "o": {
    "s": "BTCUSDT", "c": "TEST", "S": "SELL", "o": "TRAILING_STOP_MARKET", "f": "GTC", "q": "0.001", "p": "0",
    "ap": "0", "sp": "7103.04", "x": "NEW", "X": "NEW", "i": 8886774, "l": "0", "z": "0", "L": "0", "N": "USDT",
    "n": "0", "T": 1568879465650, "t": 0, "b": "0", "a": "9.91", "m": False, "R": False, "wt": "CONTRACT_PRICE",
    "ot": "TRAILING_STOP_MARKET", "ps": "LONG", "cp": False, "AP": "7476.89", "cr": "5.0", "pP": False, "si": 0,
    "ss": 0, "rp": "0", "V": "EXPIRE_TAKER", "pm": "OPPONENT", "gtd": 0, "er": "0"}}
# its partial fill (NT's order_update_trade_partial.json as the reference gives it)
PARTIAL = {**NEW_EVENT, "o": {**NEW_EVENT["o"], "x": "TRADE", "X": "PARTIALLY_FILLED", "l": "0.001", "z": "0.001",
                              "L": "7100.50", "t": 12345678, "m": True, "n": "0.00142010", "q": "0.002"}}
ACCOUNT = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938, "a": {
    "m": "ORDER", "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
    "P": [{"s": "BTCUSDT", "pa": "20", "ep": "6563.66500", "bep": "0", "cr": "0", "up": "2850.21200",
           "mt": "isolated", "iw": "13200.70726908", "ps": "LONG"}]}}


def test_a_new_order_event_is_an_open_order():
    assert ROWS.message(NEW_EVENT) == ([OrderUpdate(link_id="TEST", order_id="8886774", symbol="BTCUSDT",
                                                    status="open", filled_qty=Decimal(0))], [])


def test_a_partial_fill_is_a_fill_then_the_order_as_it_stands():
    updates, skipped = ROWS.message(PARTIAL)
    assert skipped == []
    assert updates == [
        FillUpdate(link_id="TEST", fill_id="12345678", symbol="BTCUSDT", qty=Decimal("0.001"),
                   price=Decimal("7100.50"), fee=Decimal("0.00142010"), maker=True, ts_ms=1568879465650),
        OrderUpdate(link_id="TEST", order_id="8886774", symbol="BTCUSDT", status="open",
                    filled_qty=Decimal("0.001"))]


@pytest.mark.parametrize(("x", "status", "f", "er", "expected"), [
    ("CANCELED", "CANCELED", "GTC", "0", ("cancelled", "CANCELED", None)),
    ("EXPIRED", "EXPIRED", "IOC", "2", ("cancelled", "EXPIRED: IOC remainder cancelled", None)),
    ("EXPIRED", "EXPIRED", "GTX", "0", ("cancelled", "EXPIRED: a post-only (GTX) order that would have taken",
                                        "post_only")),
    ("TRADE", "FILLED", "GTC", "0", ("filled", "", None)),
])
def test_order_states(x, status, f, er, expected):
    event = {**NEW_EVENT, "o": {**NEW_EVENT["o"], "x": x, "X": status, "f": f, "er": er,
                                **({"l": "0.001", "z": "0.001", "L": "7100", "t": 9} if x == "TRADE" else {})}}
    updates, skipped = ROWS.message(event)
    order = updates[-1]
    assert skipped == [] and (order.status, order.reason, order.kind) == expected


def test_an_account_update_gives_its_positions_and_no_balance():
    assert ROWS.message(ACCOUNT) == ([PositionUpdate(symbol="BTCUSDT", qty=Decimal(20), position_side="long")], [])
    short = {**ACCOUNT, "a": {**ACCOUNT["a"], "P": [{**ACCOUNT["a"]["P"][0], "pa": "-3", "ps": "SHORT"}]}}
    assert ROWS.message(short)[0] == [PositionUpdate(symbol="BTCUSDT", qty=Decimal(-3), position_side="short")]
    one_way = {**ACCOUNT, "a": {**ACCOUNT["a"], "P": [{**ACCOUNT["a"]["P"][0], "pa": "-3", "ps": "BOTH"}]}}
    assert ROWS.message(one_way)[0] == [PositionUpdate(symbol="BTCUSDT", qty=Decimal(-3), position_side=None)]


def test_a_funding_fee_update_is_left_to_the_income_ledger():
    """Cross positions' FUNDING_FEE carries the balance only, and no ledger id (§4.6)."""
    funding = {"e": "ACCOUNT_UPDATE", "E": 1564745798939, "T": 1564745798938, "a": {
        "m": "FUNDING_FEE", "B": [{"a": "USDT", "wb": "100.1", "cw": "100.1", "bc": "-0.01"}], "P": []}}
    assert ROWS.message(funding) == ([], [])


@pytest.mark.parametrize("event", [
    {"e": "TRADE_LITE", "E": 1568879465651, "T": 1568879465651, "s": "BTCUSDT", "c": "TEST", "S": "BUY",
     "q": "0.001", "p": "7100.50", "i": 8886774, "l": "0.001", "L": "7100.50", "t": 12345678, "m": True},
    {"e": "listenKeyExpired", "E": 1576653824250, "listenKey": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"},
    {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1611646737479, "T": 1611646737476, "ac": {"s": "BTCUSDT", "l": 25}},
])
def test_events_not_the_executors_are_ignored(event):
    assert ROWS.message(event) == ([], [])


def test_malformed_messages_are_skipped_never_raised():
    assert ROWS.message("{broken") == ([], [("message", "not an object", "{broken")])
    bad_fill = {**PARTIAL, "o": {**PARTIAL["o"], "L": "0"}}
    updates, skipped = ROWS.message(bad_fill)
    assert [type(u) for u in updates] == [OrderUpdate] and skipped[0][0] == "fill"  # the order still counts
    other = {**NEW_EVENT, "o": {**NEW_EVENT["o"], "s": "ETHUSDT"}}
    assert ROWS.message(other)[0] == [] and ROWS.message(other)[1][0][0] == "order"
    assert ROWS.message({"a": 1})[1][0][1] == "no event type"


def test_rest_rows():
    order = {"clientOrderId": "testOrder", "cumQty": "0", "cumQuote": "0", "executedQty": "0.004",
             "orderId": 22542179, "avgPrice": "0.00000", "origQty": "10", "price": "0", "side": "BUY",
             "positionSide": "SHORT", "status": "PARTIALLY_FILLED", "symbol": "BTCUSDT", "timeInForce": "GTC"}
    assert ROWS.order(order) == OrderUpdate(link_id="testOrder", order_id="22542179", symbol="BTCUSDT",
                                            status="open", filled_qty=Decimal("0.004"))
    with pytest.raises(BadRow):
        ROWS.order({**order, "status": "PENDING"})
    trade = {"buyer": False, "commission": "-0.07819010", "commissionAsset": "USDT", "id": 698759, "maker": False,
             "orderId": 25851813, "price": "7819.01", "qty": "0.002", "quoteQty": "15.63802",
             "realizedPnl": "-0.91539999", "side": "SELL", "positionSide": "SHORT", "symbol": "BTCUSDT",
             "time": 1569514978020}
    fill = ROWS.fill(trade, "L1")
    assert (fill.fill_id, fill.qty, fill.price, fill.fee, fill.maker) == ("698759", Decimal("0.002"),
                                                                          Decimal("7819.01"), Decimal("0.07819010"),
                                                                          False)
    assert ROWS.fill({**trade, "commission": "0.07819010"}, "L1").fee == Decimal("0.07819010")  # paid either way
    position = {"symbol": "BTCUSDT", "positionSide": "SHORT", "positionAmt": "-0.010", "entryPrice": "60000"}
    assert ROWS.position(position) == PositionUpdate(symbol="BTCUSDT", qty=Decimal("-0.010"), position_side="short")
    balance = [{"accountAlias": "SgsR", "asset": "USDT", "balance": "122607.35137903", "crossWalletBalance": "23",
                "crossUnPnl": "-0.35137903", "availableBalance": "23.72469206", "maxWithdrawAmount": "23.72"}]
    assert ROWS.balance(balance) == BalanceUpdate(currency="USDT", equity=Decimal("122607.00000000"),
                                                  available=Decimal("23.72469206"))
    assert ROWS.balance([]) is None


def test_an_income_row_is_a_funding_payment_paid_when_negative():
    row = {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.01", "asset": "USDT",
           "info": "FUNDING_FEE", "time": 1570636800000, "tranId": 9689322392, "tradeId": ""}
    assert ROWS.funding(row, "Buy") == FundingUpdate(funding_id="9689322392", symbol="BTCUSDT", side="Buy",
                                                     amount=Decimal("0.01"), ts_ms=1570636800000)
    assert ROWS.funding({**row, "income": "0.02", "symbol": "SOLUSDT"}, "Sell").amount == Decimal("-0.02")
    with pytest.raises(BadRow):
        ROWS.funding({**row, "incomeType": "COMMISSION"}, "Buy")


# ------------------------------------------------------------------ what the rows above leave open

TRADE = {"buyer": False, "commission": "0.07819010", "commissionAsset": "USDT", "id": 698759, "maker": False,
         "orderId": 25851813, "price": "7819.01", "qty": "0.002", "quoteQty": "15.63802", "realizedPnl": "-0.91539999",
         "side": "SELL", "positionSide": "SHORT", "symbol": "BTCUSDT", "time": 1569514978020}  # §4.3 userTrades
ORDER = {"clientOrderId": "testOrder", "cumQty": "0", "cumQuote": "0", "executedQty": "0", "orderId": 22542179,
         "avgPrice": "0.00000", "origQty": "10", "price": "0", "side": "BUY", "positionSide": "SHORT",
         "status": "NEW", "symbol": "BTCUSDT", "timeInForce": "GTC"}  # §4.3 the order response


def _order_event(**fields):
    return {**NEW_EVENT, "o": {**NEW_EVENT["o"], **fields}}


def _fill_event(**fields):
    return {**PARTIAL, "o": {**PARTIAL["o"], **fields}}


def test_the_link_id_is_made_from_the_client_id_and_a_missing_one_reads_as_empty():
    rows = Rows({"BTCUSDT": BTC}, lambda client_id: f"link:{client_id}")
    fill, order = rows.message(PARTIAL)[0]
    assert fill.link_id == order.link_id == "link:TEST"
    no_client = {k: v for k, v in PARTIAL["o"].items() if k != "c"}
    assert [u.link_id for u in rows.message({**PARTIAL, "o": no_client})[0]] == ["link:", "link:"]
    assert rows.order(ORDER).link_id == "link:testOrder"
    assert rows.order({k: v for k, v in ORDER.items() if k != "clientOrderId"}).link_id == "link:"


@pytest.mark.parametrize(("fill_t", "event_t", "expected"), [
    (1568879465600, 1568879465650, 1568879465600),  # the trade's own time, not the event's
    (None, 1568879465650, 1568879465650),  # no trade time: the event's transaction time
    (None, None, 1568879465651),  # neither: the event time E
    (0, 0, 1568879465651),  # 0 is no time (as the NEW event's t=0 is no trade)
])
def test_a_fill_is_timed_by_its_trade_then_its_event(fill_t, event_t, expected):
    row = {k: v for k, v in PARTIAL["o"].items() if k != "T"} | ({} if fill_t is None else {"T": fill_t})
    event = {k: v for k, v in PARTIAL.items() if k != "T"} | ({} if event_t is None else {"T": event_t})
    updates, skipped = ROWS.message({**event, "o": row})
    assert skipped == [] and updates[0].ts_ms == expected


@pytest.mark.parametrize(("fields", "fee"), [
    ({"n": None}, Decimal(0)),  # no commission sent: nothing paid (N still says USDT)
    ({"n": ""}, Decimal(0)),
    ({"n": "0.00142010"}, Decimal("0.00142010")),  # > 0 paid
    ({"n": "-0.0005"}, Decimal("-0.0005")),  # < 0 a rebate, as FillUpdate counts it
])
def test_a_fills_commission(fields, fee):
    row = {k: v for k, v in {**PARTIAL["o"], **fields}.items() if v is not None}
    updates, skipped = ROWS.message({**PARTIAL, "o": row})
    assert skipped == [] and updates[0].fee == fee


@pytest.mark.parametrize(("fields", "why"), [
    ({"l": "0"}, "l='0'"),  # a fill of nothing
    ({"l": "-0.001"}, "l='-0.001'"),
    ({"L": "0"}, "L='0'"),
    ({"t": ""}, "t=''"),  # no trade id: it could not be told from another fill
    ({"t": True}, "t=True"),
])
def test_a_trade_without_a_usable_fill_keeps_the_order_and_says_why(fields, why):
    event = _fill_event(**fields)
    updates, skipped = ROWS.message(event)
    assert updates == [OrderUpdate(link_id="TEST", order_id="8886774", symbol="BTCUSDT", status="open",
                                   filled_qty=Decimal("0.001"))]
    assert skipped == [("fill", why, event["o"])]


@pytest.mark.parametrize(("event", "why"), [
    ({"e": "ORDER_TRADE_UPDATE", "E": 1568879465651}, "o is not an object"),
    (_order_event(X="PENDING"), "status='PENDING'"),
    (_order_event(X=["NEW"]), "status=['NEW']"),
    (_order_event(s="ETHUSDT"), "s='ETHUSDT' is not an instrument of this client"),
    (_order_event(i=None), "i=None"),
    (_order_event(i=True), "i=True"),
    (_order_event(z="lots"), "z='lots'"),
])
def test_a_malformed_order_event_is_skipped_with_its_reason(event, why):
    assert ROWS.message(event) == ([], [("order", why, event.get("o"))])


@pytest.mark.parametrize("z", [None, ""])
def test_an_order_event_without_a_cumulative_size_has_filled_nothing(z):
    row = {k: v for k, v in NEW_EVENT["o"].items() if k != "z"} | ({} if z is None else {"z": z})
    assert ROWS.message({**NEW_EVENT, "o": row})[0][0].filled_qty == Decimal(0)


def test_a_post_only_that_filled_before_it_expired_is_not_a_refusal():
    """Only a GTX order expired with nothing filled is the post-only kind (§4.4, -5022's older form)."""
    stream = ROWS.message(_order_event(x="EXPIRED", X="EXPIRED", f="GTX", z="0.001"))[0][0]
    rest = ROWS.order({**ORDER, "status": "EXPIRED", "timeInForce": "GTX", "executedQty": "0.004"})
    for order in (stream, rest):
        assert (order.status, order.reason, order.kind) == ("cancelled", "EXPIRED", None)


def test_rejected_orders_and_rest_states_carry_their_reason():
    assert ROWS.message(_order_event(x="REJECTED", X="REJECTED"))[0][0].reason == "REJECTED"
    assert ROWS.order({**ORDER, "status": "REJECTED"}).reason == "REJECTED"
    assert ROWS.order({**ORDER, "status": "CANCELED"}) == OrderUpdate(
        link_id="testOrder", order_id="22542179", symbol="BTCUSDT", status="cancelled", filled_qty=Decimal(0),
        reason="CANCELED")
    assert ROWS.order({**ORDER, "status": "EXPIRED", "timeInForce": "GTX"}) == OrderUpdate(
        link_id="testOrder", order_id="22542179", symbol="BTCUSDT", status="cancelled", filled_qty=Decimal(0),
        reason="EXPIRED: a post-only (GTX) order that would have taken", kind="post_only")
    with pytest.raises(BadRow, match="status='PENDING'"):
        ROWS.order({**ORDER, "status": "PENDING"})


@pytest.mark.parametrize("executed", [None, ""])
def test_a_rest_order_without_an_executed_size_has_filled_nothing(executed):
    row = {k: v for k, v in ORDER.items() if k != "executedQty"} | ({} if executed is None else
                                                                     {"executedQty": executed})
    assert ROWS.order(row).filled_qty == Decimal(0)


@pytest.mark.parametrize("order_id", [None, True, 22542179.0])
def test_a_rest_order_without_a_usable_id_is_refused(order_id):
    with pytest.raises(BadRow, match="orderId="):
        ROWS.order({**ORDER, "orderId": order_id})


def test_a_malformed_account_update_is_skipped_with_its_reason():
    no_account = {"e": "ACCOUNT_UPDATE", "E": 1564745798939}
    assert ROWS.message(no_account) == ([], [("account", "a is not an object", no_account)])
    bad_p = {**ACCOUNT, "a": {**ACCOUNT["a"], "P": {"s": "BTCUSDT"}}}
    assert ROWS.message(bad_p) == ([], [("account", "P is not a list", bad_p)])


def test_a_bad_position_row_is_skipped_and_the_others_kept():
    good = ACCOUNT["a"]["P"][0]
    odd_side, other = {**good, "ps": "UP"}, {**good, "s": "ETHUSDT"}
    message = {**ACCOUNT, "a": {**ACCOUNT["a"], "P": [odd_side, good, other]}}
    assert ROWS.message(message) == (
        [PositionUpdate(symbol="BTCUSDT", qty=Decimal(20), position_side="long")],
        [("position", "ps='UP'", odd_side), ("position", "s='ETHUSDT' is not an instrument of this client", other)])


def test_one_way_positions_keep_their_sign():
    """`pa`/`positionAmt` is signed in one-way mode (BOTH); a row without a side is one-way."""
    long_one_way = {**ACCOUNT, "a": {**ACCOUNT["a"], "P": [{**ACCOUNT["a"]["P"][0], "pa": "3", "ps": "BOTH"}]}}
    assert ROWS.message(long_one_way)[0] == [PositionUpdate(symbol="BTCUSDT", qty=Decimal(3), position_side=None)]
    assert ROWS.position({"symbol": "BTCUSDT", "positionAmt": "-0.010"}) == PositionUpdate(
        symbol="BTCUSDT", qty=Decimal("-0.010"), position_side=None)


@pytest.mark.parametrize("answer", [{"result": None, "id": 1},  # the answer to a SUBSCRIBE/LIST request
                                    {"error": {"code": 2, "msg": "Invalid request"}, "id": 2}])
def test_answers_to_requests_on_the_socket_are_ignored(answer):
    assert ROWS.message(answer) == ([], [])


@pytest.mark.parametrize("message", [{"a": 1}, {"e": 5, "E": 1}, {"e": "", "E": 1}])
def test_a_message_without_an_event_type_is_skipped(message):
    assert ROWS.message(message) == ([], [("message", "no event type", message)])


def test_a_rest_fill_row_in_full():
    assert ROWS.fill(TRADE, "L1") == FillUpdate(link_id="L1", fill_id="698759", symbol="BTCUSDT",
                                                qty=Decimal("0.002"), price=Decimal("7819.01"),
                                                fee=Decimal("0.07819010"), maker=False, ts_ms=1569514978020)
    assert ROWS.fill({**TRADE, "maker": True}, "L1").maker is True
    assert ROWS.fill({**TRADE, "time": "1569514978020"}, "L1").ts_ms == 1569514978020  # its digits read alike
    assert ROWS.fill({k: v for k, v in TRADE.items() if k != "time"}, "L1").ts_ms == 0  # no time: 0, not refused


@pytest.mark.parametrize(("name", "value"), [("qty", "0"), ("qty", "-0.002"), ("price", "0"), ("price", "-1")])
def test_a_rest_fill_of_nothing_or_at_no_price_is_refused(name, value):
    with pytest.raises(BadRow, match=f"{name}="):
        ROWS.fill({**TRADE, name: value}, "L1")


@pytest.mark.parametrize("time", [1569514978020, 0, -1, 10**17 - 1, 10**17, 10**18])
def test_a_time_reads_the_same_as_a_number_or_as_its_digits(time):
    as_number = ROWS.fill({**TRADE, "time": time}, "L1").ts_ms
    assert as_number == ROWS.fill({**TRADE, "time": str(time)}, "L1").ts_ms
    assert as_number in (time, 0)


def test_the_balance_reads_the_settlement_assets_row_among_others():
    """V3 balance lists every asset (§4.3); an account under water after a liquidation (before
    INSURANCE_CLEAR) has a negative wallet balance and nothing available, read as they are."""
    rows = [{"accountAlias": "SgsR", "asset": "BNB", "balance": "3", "crossUnPnl": "0", "availableBalance": "3"},
            {"accountAlias": "SgsR", "asset": "USDT", "balance": "-12.5", "crossWalletBalance": "-12.5",
             "availableBalance": "-12.5"}]
    assert ROWS.balance(rows) == BalanceUpdate(currency="USDT", equity=Decimal("-12.5"), available=Decimal("-12.5"))
    assert ROWS.balance([{**rows[1], "crossUnPnl": ""}]).equity == Decimal("-12.5")
    assert ROWS.balance(rows, "BNB") == BalanceUpdate(currency="BNB", equity=Decimal(3), available=Decimal(3))
    with pytest.raises(BadRow, match=r"^the balance answer is not a list$"):
        ROWS.balance({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})


def test_an_income_row_of_a_symbol_outside_this_client_keeps_a_usable_name():
    row = {"symbol": "SOLUSDT", "incomeType": "FUNDING_FEE", "income": "0.02", "asset": "USDT", "info": "FUNDING_FEE",
           "time": 1570636800000, "tranId": 9689322393, "tradeId": ""}
    assert ROWS.funding(row, "Sell") == FundingUpdate(funding_id="9689322393", symbol="SOLUSDT", side="Sell",
                                                      amount=Decimal("-0.02"), ts_ms=1570636800000)
    assert ROWS.funding({**row, "symbol": "BTCUSDC"}, "Sell").symbol == "BTCUSDC"  # USDC-settled: as it is
    with pytest.raises(BadRow, match="incomeType='COMMISSION'"):
        ROWS.funding({**row, "incomeType": "COMMISSION"}, "Buy")
