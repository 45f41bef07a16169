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
