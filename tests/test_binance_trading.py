"""The Binance trading client's pure parts and account calls (shared/venues/binance/trading.py):
sizes floored to the step as a property, each hedge direction's order request, the local
refusals (minQty, MIN_NOTIONAL, the tick), client ids, and against a scripted Binance the
MIN_NOTIONAL loading, the switch to hedge mode and the income ledger's pages."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.instruments import Instrument
from shared.venues.binance.private import on_grid, to_quantity
from shared.venues.binance.trading import BinanceTrading, client_id, min_notionals, order_request
from shared.venues.trading import OrderSpec, Refused
from tests.binance_fake import KEY, SECRET, FakeBinance, error
from tests.conftest import serve_app

BTC = Instrument(venue="binance", symbol="BTCUSDT", venue_symbol="BTCUSDT", tick=Decimal("0.10"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
ETH = Instrument(venue="binance", symbol="ETHUSDT", venue_symbol="ETHUSDT", tick=Decimal("0.01"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
LINK = "a1b2c3d4e5f6-LE1"
STEPS = st.sampled_from([Decimal("0.001"), Decimal("0.01"), Decimal("1"), Decimal("0.1"), Decimal("10"),
                         Decimal("0.00001"), Decimal("0.5"), Decimal("0.025")])


def spec(**fields) -> OrderSpec:
    return OrderSpec(**{"link_id": LINK, "symbol": "BTCUSDT", "side": "Buy", "qty": Decimal("0.002"),
                        "price": Decimal("60000.1"), "position_side": "long", **fields})


# ---------------------------------------------------------------------- sizes

@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1000000"), places=8), STEPS)
def test_a_quantity_is_floored_to_the_step_exactly(qty, step):
    quantity = to_quantity(qty, step)
    assert quantity <= qty  # never more than asked
    assert qty - quantity < step  # less than one step given away
    assert on_grid(quantity, step)  # a whole number of steps, exactly
    assert to_quantity(quantity, step) == quantity  # what is on the grid stays


@given(st.integers(min_value=1, max_value=10**9), STEPS)
def test_a_multiple_of_the_step_is_sent_as_it_is(steps, step):
    qty = steps * step
    assert to_quantity(qty, step) == qty
    request = order_request(spec(qty=qty, price=None), Instrument(venue="binance", symbol="BTCUSDT",
                                                                  venue_symbol="BTCUSDT", lot=step, min_size=step),
                            LINK)
    assert Decimal(request["quantity"]) == qty and "E" not in request["quantity"]


def test_nothing_or_less_is_zero():
    assert to_quantity(Decimal(0), Decimal("0.001")) == 0 and to_quantity(Decimal(-1), Decimal("0.001")) == 0


# ---------------------------------------------------------------------- order requests

@pytest.mark.parametrize(("side", "position_side", "reduce_only", "expected"), [
    ("Buy", "long", False, ("BUY", "LONG")),  # open long
    ("Sell", "long", True, ("SELL", "LONG")),  # close long
    ("Sell", "short", False, ("SELL", "SHORT")),  # open short
    ("Buy", "short", True, ("BUY", "SHORT")),  # close short
    ("Buy", None, False, ("BUY", "LONG")),  # no side named: the side it opens
    ("Sell", None, True, ("SELL", "LONG")),  # a reduce-only sell closes the long
])
def test_each_hedge_direction(side, position_side, reduce_only, expected):
    request = order_request(spec(side=side, position_side=position_side, reduce_only=reduce_only), BTC, LINK)
    assert (request["side"], request["positionSide"]) == expected
    assert "reduceOnly" not in request  # Binance refuses it in hedge mode


def test_limit_market_and_post_only_requests():
    assert order_request(spec(), BTC, LINK) == {
        "symbol": "BTCUSDT", "side": "BUY", "positionSide": "LONG", "type": "LIMIT", "quantity": "0.002",
        "newClientOrderId": LINK, "timeInForce": "GTC", "price": "60000.1"}
    assert order_request(spec(price=None, qty=Decimal("0.0029")), BTC, LINK) == {
        "symbol": "BTCUSDT", "side": "BUY", "positionSide": "LONG", "type": "MARKET", "quantity": "0.002",
        "newClientOrderId": LINK}
    assert order_request(spec(tif="post_only"), BTC, LINK)["timeInForce"] == "GTX"
    assert order_request(spec(tif="IOC"), BTC, LINK)["timeInForce"] == "IOC"


@pytest.mark.parametrize(("fields", "kind"), [
    ({"qty": Decimal("0.0009")}, "below_minimum"),  # floors to 0, under minQty
    ({"qty": Decimal("0.001")}, "below_minimum"),  # 60 USDT opening, under a MIN_NOTIONAL of 100
    ({"price": Decimal("60000.15")}, "invalid"),  # off the tick
    ({"price": None, "tif": "post_only"}, "invalid"),
    ({"side": "Buy", "position_side": "long", "reduce_only": True}, "invalid"),  # a reduce-only that opens
    ({"qty": Decimal("-1")}, "invalid"),
])
def test_what_binance_could_not_take_is_refused_unsent(fields, kind):
    with pytest.raises(Refused) as refusal:
        order_request(spec(**fields), BTC, LINK, Decimal(100))
    assert (refusal.value.kind, refusal.value.code, refusal.value.venue) == (kind, "local", "binance")


def test_the_minimum_notional_spares_closes_and_market_orders():
    close = spec(side="Sell", qty=Decimal("0.001"), position_side="long")
    assert order_request(close, BTC, LINK, Decimal(100))["positionSide"] == "LONG"
    assert order_request(spec(qty=Decimal("0.001"), price=None), BTC, LINK, Decimal(100))["type"] == "MARKET"
    assert order_request(spec(qty=Decimal("0.002")), BTC, LINK, Decimal(100))["quantity"] == "0.002"  # 120 USDT


def test_a_client_id_is_the_link_id_when_binance_takes_it():
    assert client_id(LINK) == LINK
    assert client_id("x.y:z/w_v-1") == "x.y:z/w_v-1"
    for bad in ("", "a" * 37, "has space", "ü", "a+b"):
        with pytest.raises(ValueError):
            client_id(bad)


def test_min_notionals_are_read_from_exchange_info():
    info = {"symbols": [{"symbol": "BTCUSDT", "filters": [{"filterType": "LOT_SIZE", "minQty": "0.001"},
                                                          {"filterType": "MIN_NOTIONAL", "notional": "100"}]},
                        {"symbol": "ETHUSDT", "filters": [{"filterType": "MIN_NOTIONAL", "notional": "x"}]},
                        {"symbol": "SOLUSDT", "filters": []}, "junk"]}
    assert min_notionals(info) == {"BTCUSDT": Decimal(100)}
    assert min_notionals([]) == {}


# ---------------------------------------------------------------------- against a scripted Binance

@pytest.fixture
async def binance():
    fake = FakeBinance()
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        yield fake, BinanceTrading.for_account(http, base, base.replace("http", "ws"), (KEY, SECRET), [BTC, ETH],
                                               demo=False, recv_window_ms=6000, timeout_s=0.5)


async def test_prepare_loads_the_minimum_notionals(binance):
    fake, trading = binance
    fake.answer("GET", "/fapi/v1/exchangeInfo", {"symbols": [
        {"symbol": "BTCUSDT", "filters": [{"filterType": "MIN_NOTIONAL", "notional": "100"}]},
        {"symbol": "XRPUSDT", "filters": [{"filterType": "MIN_NOTIONAL", "notional": "5"}]}]})
    await trading.prepare()
    assert trading.min_notional == {"BTCUSDT": Decimal(100)}
    assert "signature" not in fake.sent("GET", "/fapi/v1/exchangeInfo")[0]["params"]  # public
    sent = len(fake.requests)
    with pytest.raises(Refused) as refusal:
        await trading.place(spec(qty=Decimal("0.001")))
    assert refusal.value.kind == "below_minimum" and len(fake.requests) == sent


def test_for_account_takes_a_key_and_a_secret():
    trading = BinanceTrading.for_account(None, "http://x", "ws://x", (KEY, SECRET), [BTC], demo=True,
                                         recv_window_ms=7000)
    assert trading.demo and trading.rest.recv_window_ms == 7000 and trading.venue == "binance"
    assert trading.order_rate == (300, 10.0) and trading.ids_reusable and not trading.funding_on_stream
    with pytest.raises(ValueError):
        BinanceTrading.for_account(None, "http://x", "ws://x", (KEY, SECRET, "passphrase"), [BTC], demo=False)


async def test_hedge_mode_is_switched_on_once(binance):
    fake, trading = binance
    fake.answer("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": False})
    fake.answer("POST", "/fapi/v1/positionSide/dual", {"code": 200, "msg": "success"})
    await trading.ensure_position_mode(["BTCUSDT"])
    assert fake.sent("POST", "/fapi/v1/positionSide/dual")[0]["params"]["dualSidePosition"] == "true"
    fake.answers[("GET", "/fapi/v1/positionSide/dual")] = [{"dualSidePosition": True}]
    await trading.ensure_position_mode(["BTCUSDT"])
    assert len(fake.sent("POST", "/fapi/v1/positionSide/dual")) == 1
    assert (await trading.position_mode())[0]


async def test_no_need_to_change_is_success_and_open_positions_say_what_to_do(binance):
    fake, trading = binance
    fake.answer("GET", "/fapi/v1/positionSide/dual", {"dualSidePosition": False})
    fake.answer("POST", "/fapi/v1/positionSide/dual", error(-4059, "No need to change position side."),
                error(-4068, "Position side cannot be changed if there exists position."))
    await trading.ensure_position_mode(["BTCUSDT"])
    with pytest.raises(Refused) as refusal:
        await trading.ensure_position_mode(["BTCUSDT"])
    assert refusal.value.code == "-4068" and "close every position" in refusal.value.message


async def test_the_income_ledger_is_read_in_pages_by_time(binance, monkeypatch):
    from shared.venues.binance import trading as module

    monkeypatch.setattr(module, "INCOME_PAGE", 2)
    fake, trading = binance

    def row(tran_id: int, time_ms: int, income: str, symbol: str = "BTCUSDT") -> dict:
        return {"symbol": symbol, "incomeType": "FUNDING_FEE", "income": income, "asset": "USDT",
                "info": "FUNDING_FEE", "time": time_ms, "tranId": tran_id, "tradeId": ""}

    ledger = [row(1, 1000, "-0.5"), row(2, 2000, "0.25", "ETHUSDT"), row(3, 2000, "-0.1"), row(4, 3000, "-0.2")]

    def page(request: dict) -> list:
        start, limit = int(request["params"]["startTime"]), int(request["params"]["limit"])
        return [r for r in ledger if r["time"] >= start][:limit]

    fake.answer("GET", "/fapi/v1/income", page)
    fake.answer("GET", "/fapi/v3/positionRisk", [
        {"symbol": "BTCUSDT", "positionSide": "LONG", "positionAmt": "0.01"},
        {"symbol": "BTCUSDT", "positionSide": "SHORT", "positionAmt": "0"},
        {"symbol": "ETHUSDT", "positionSide": "SHORT", "positionAmt": "-1"}])
    paid = await trading.funding_payments(since_ms=1000)
    assert [(p.funding_id, p.symbol, p.side, p.amount, p.ts_ms) for p in paid] == [
        ("1", "BTCUSDT", "Buy", Decimal("0.5"), 1000), ("2", "ETHUSDT", "Sell", Decimal("-0.25"), 2000),
        ("3", "BTCUSDT", "Buy", Decimal("0.1"), 2000), ("4", "BTCUSDT", "Buy", Decimal("0.2"), 3000)]
    starts = [r["params"]["startTime"] for r in fake.sent("GET", "/fapi/v1/income")]
    # each page from the last one's time (repeats counted once); a full page all at one ms moves past it
    assert starts == ["1000", "2000", "2001"]
    assert {r["params"]["incomeType"] for r in fake.sent("GET", "/fapi/v1/income")} == {"FUNDING_FEE"}
