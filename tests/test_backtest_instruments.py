"""Each symbol's lot, minimum and tick from saved instruments answers (Bybit's real 2026-08 list,
the simulator's and a documented Binance exchangeInfo), and the quantity an order can have at
every venue at once: a multiple of their steps' least common multiple, floored, refused below a
venue's minimum with the venue named."""

from __future__ import annotations

import gzip
import json
import os
from decimal import Decimal as D
from fractions import Fraction

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.backtest.instruments import InstrumentError, Lot, Sized, lcm, load_instruments, order_qty, size_order
from services.sim.server import SimServer
from tests.conftest import BYBIT_SAMPLES, serve_app

FULL = BYBIT_SAMPLES / "rest_instruments_info_linear_full_2026-08.json.gz"
TRIMMED = BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json"
EXAMPLES = int(os.environ.get("ARB_HYPOTHESIS_EXAMPLES", 300))  # fewer in a mutation run


def _write(tmp_path, answer, name="answer.json"):
    path = tmp_path / name
    path.write_text(json.dumps(answer))
    return path


def _bybit_row(symbol="BTCUSDT", **lot):
    lots = {"maxOrderQty": "1500.000", "minOrderQty": "0.001", "qtyStep": "0.001", "maxMktOrderQty": "150.000",
            "minNotionalValue": "5", **lot}
    return {"symbol": symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"}, "lotSizeFilter": lots}


def _binance_symbol(symbol, contract="PERPETUAL", status="TRADING", step="0.001", min_qty="0.001",
                    max_qty="1000", market=None, notional="5"):
    filters = [{"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
               {"filterType": "LOT_SIZE", "stepSize": step, "maxQty": max_qty, "minQty": min_qty},
               {"filterType": "MAX_NUM_ORDERS", "limit": 200},
               {"filterType": "MIN_NOTIONAL", "notional": notional},
               {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                "multiplierDecimal": "4"}]
    if market is not None:
        filters.insert(2, {"filterType": "MARKET_LOT_SIZE", **market})
    return {"symbol": symbol, "pair": symbol, "contractType": contract, "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": status, "baseAsset": symbol.removesuffix("USDT"),
            "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3,
            "filters": filters, "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}


# Binance USD-M exchangeInfo in the documented shape (protocol-trading-okx-bitget-binance.md,
# "Instruments / sizing"): a perpetual, one delisted since (SETTLING), a quarterly future
BINANCE_DOC = {
    "timezone": "UTC", "serverTime": 1565246363776, "futuresType": "U_MARGINED",
    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
    "exchangeFilters": [], "assets": [],
    "symbols": [
        _binance_symbol("BTCUSDT_260925", contract="CURRENT_QUARTER"),
        _binance_symbol("BTCUSDT", market={"stepSize": "0.001", "minQty": "0.001", "maxQty": "120"},
                        notional="100"),
        _binance_symbol("SOLUSDT", step="1", min_qty="1", max_qty="1000000",
                        market={"stepSize": "0.25", "minQty": "2", "maxQty": "0"}),
        _binance_symbol("OLDUSDT", status="SETTLING", step="10", min_qty="10", market={"stepSize": "0",
                                                                                         "minQty": "0",
                                                                                         "maxQty": "0"}),
    ]}


def test_the_real_bybit_list_gives_each_perpetuals_step_minimum_and_tick():
    lots = load_instruments(FULL)  # gzip, read as is
    assert len(lots) == 760  # of 800 rows: the 40 dated futures (BTCUSDT-14AUG26...) have no funding
    assert "BTCUSDT-14AUG26" not in lots
    steps = {s: (lot.qty_step, lot.min_qty, lot.min_notional, lot.tick, lot.max_qty) for s, lot in lots.items()
             if s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "WIFUSDT")}
    assert steps == {"BTCUSDT": (D("0.001"), D("0.001"), D(5), D("0.1"), D(150)),
                     "ETHUSDT": (D("0.01"), D("0.01"), D(5), D("0.01"), D(2000)),
                     "SOLUSDT": (D("0.1"), D("0.1"), D(5), D("0.01"), D(12000)),
                     "WIFUSDT": (D(1), D(1), D(5), D("0.00001"), D(300000))}
    assert lots["BTCUSDT"] == Lot(D("0.001"), D("0.001"), D(5), D("0.10"), D("150.000"), "bybit", "BTCUSDT")
    assert lots["1000000BABYDOGEUSDT"].qty_step == 100  # a step that quantize() cannot express
    assert {lot.venue for lot in lots.values()} == {"bybit"}
    assert all(s == lot.symbol for s, lot in lots.items())

    trimmed = load_instruments(TRIMMED)
    assert sorted(trimmed) == ["0GUSDT", "ACEUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(lot == lots[s] for s, lot in trimmed.items())


def test_a_bybit_answer_loads_whole_as_its_result_as_pages_and_gzipped(tmp_path):
    body = json.loads(gzip.decompress(FULL.read_bytes()))
    whole = load_instruments(FULL)
    rows = body["result"]["list"]
    pages = [{**body, "result": {**body["result"], "list": rows[i:i + 300], "nextPageCursor": f"c{i}"}}
             for i in range(0, len(rows), 300)]
    assert load_instruments(_write(tmp_path, body["result"], "result.json")) == whole
    assert load_instruments(_write(tmp_path, pages, "pages.json")) == whole
    assert load_instruments(_write(tmp_path, [p["result"] for p in pages], "results.json")) == whole
    gz = tmp_path / "no-suffix"
    gz.write_bytes(gzip.compress(TRIMMED.read_bytes()))
    assert load_instruments(gz) == load_instruments(TRIMMED)
    no_category = {"list": [_bybit_row()]}  # a result without category is taken as linear
    assert load_instruments(_write(tmp_path, no_category))["BTCUSDT"].qty_step == D("0.001")
    no_market_max = {"list": [_bybit_row(maxMktOrderQty="")]}
    assert load_instruments(_write(tmp_path, no_market_max))["BTCUSDT"].max_qty is None
    twice = [{"list": [_bybit_row()]}, {"list": [_bybit_row()]}]  # the same row on two pages: one symbol
    assert list(load_instruments(_write(tmp_path, twice))) == ["BTCUSDT"]
    numbers = {"list": [_bybit_row(qtyStep=0.5, minOrderQty=1, minNotionalValue=5)]}  # JSON numbers, as text
    assert load_instruments(_write(tmp_path, numbers))["BTCUSDT"].qty_step == D("0.5")


def test_binance_exchange_info_in_the_documented_shape(tmp_path):
    lots = load_instruments(_write(tmp_path, BINANCE_DOC))
    assert sorted(lots) == ["BTCUSDT", "OLDUSDT", "SOLUSDT"]  # perpetuals of every status; no quarterly
    assert lots["BTCUSDT"] == Lot(D("0.001"), D("0.001"), D(100), D("0.10"), D(120), "binance", "BTCUSDT")
    # a market order meets LOT_SIZE and MARKET_LOT_SIZE: LCM of the steps, the larger minimum, the
    # smaller maximum, and a MARKET_LOT_SIZE maximum of 0 sets no rule
    assert lots["SOLUSDT"] == Lot(D(1), D(2), D(5), D("0.10"), D(1000000), "binance", "SOLUSDT")
    assert lots["OLDUSDT"] == Lot(D(10), D(10), D(5), D("0.10"), D(1000), "binance", "OLDUSDT")
    no_max = {"symbols": [_binance_symbol("XUSDT", max_qty="0")]}
    assert load_instruments(_write(tmp_path, no_max))["XUSDT"].max_qty is None
    quarter_step = {"symbols": [_binance_symbol("XUSDT", step="0.1", market={"stepSize": "0.25", "minQty": "0",
                                                                             "maxQty": "50"})]}
    assert load_instruments(_write(tmp_path, quarter_step))["XUSDT"].qty_step == D("0.5")


async def test_the_simulators_exchange_info_gives_binances_minimum_notionals(tmp_path):
    server = SimServer(["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"], seed=3)
    async with (serve_app(server.app()) as base, aiohttp.ClientSession() as http,
                http.get(f"{base}/fapi/v1/exchangeInfo") as response):
        answer = await response.json()
    lots = load_instruments(_write(tmp_path, answer))
    assert {s: (lot.qty_step, lot.min_qty, lot.min_notional, lot.tick) for s, lot in lots.items()} == {
        "BTCUSDT": (D("0.001"), D("0.001"), D(100), D("0.1")), "ETHUSDT": (D("0.01"), D("0.01"), D(20), D("0.01")),
        "SOLUSDT": (D("0.1"), D("0.1"), D(5), D("0.01")), "DOGEUSDT": (D(1), D(1), D(5), D("0.00001"))}
    bybit = load_instruments(FULL)
    # Bybit's $5 would take 0.001 BTC at 65,000; the simulator's Binance wants $100
    both = [bybit["BTCUSDT"], lots["BTCUSDT"]]
    assert size_order(D(99), D(65000), both) == Sized(None, "0.001 x 65000 is below BTCUSDT's minimum notional "
                                                             "100 at binance")
    assert order_qty(D(200), D(65000), both) == D("0.003")


def test_the_quantity_is_floored_to_the_steps_least_common_multiple():
    bybit = load_instruments(FULL)
    sol = bybit["SOLUSDT"]
    assert order_qty(D(10_000), D("187.65"), [sol]) == D("53.2")  # 53.29...: floored, not rounded to 53.3
    assert order_qty(D(10_000), D("187.65"), [bybit["BTCUSDT"]]) == D("53.290")  # what a 0.001 step would give
    assert str(order_qty(D(10_000), D("187.65"), [bybit["WIFUSDT"]])) == "53"  # as the step writes it
    assert str(order_qty(D(10_000), D("187.65"), [sol])) == "53.2"
    assert order_qty(D(10_000), D(2000), [sol]) == D(5)  # exactly on a step: kept
    binance_quarter = Lot(D("0.25"), D(0), D(0), D("0.01"))
    assert order_qty(D(10_000), D("187.65"), [sol, binance_quarter]) == D("53.0")  # steps of 0.5
    assert order_qty(D(10_000), D(2000), [sol, binance_quarter]) == D(5)
    assert order_qty(D(100), D(1), [bybit["1000000BABYDOGEUSDT"]]) == D(100)
    assert order_qty(D(199), D(1), [bybit["1000000BABYDOGEUSDT"]]) == D(100)


def test_least_common_multiple_of_decimal_steps():
    assert lcm(D("0.01"), D("0.001")) == D("0.01")
    assert lcm(D("0.1"), D("0.25")) == D("0.5")
    assert lcm(D("0.3"), D("0.2")) == D("0.6")
    assert lcm(D("0.001")) == D("0.001")
    assert lcm(D(100), D("0.5")) == D(100)
    assert str(lcm(D(100), D(1))) == "100" and str(lcm(D("0.1"), D("0.25"))) == "0.50"  # no digits added
    assert lcm(D("1E+2"), D(3)) == D(300)
    assert lcm(D("0.010"), D("0.1")) == D("0.1")
    assert lcm(D("4"), D("6"), D("0.5")) == D(12)
    assert lcm(D("1E-30"), D("3E-30")) == D("3E-30")
    for bad in ([], [D(0)], [D("0.1"), D(-1)], [D("NaN")], [D("Infinity")]):
        with pytest.raises(ValueError, match="steps must be positive"):
            lcm(*bad)


def test_an_order_below_a_venues_minimum_is_refused_with_the_venue_named():
    bybit = load_instruments(FULL)
    btc, sol = bybit["BTCUSDT"], bybit["SOLUSDT"]
    assert size_order(D(60), D(65000), [btc]) == Sized(None, "0.000 is below BTCUSDT's minimum 0.001 at bybit")
    assert size_order(D(65), D(65000), [btc]) == Sized(D("0.001"))  # exactly the minimum quantity
    assert size_order(D(4), D(20), [sol]) == Sized(None, "0.2 x 20 is below SOLUSDT's minimum notional 5 at bybit")
    assert size_order(D("5.1"), D(25), [sol]) == Sized(D("0.2"))  # 0.2 x 25: exactly the minimum notional
    strict = Lot(D("0.001"), D("0.01"), D(0), D("0.1"), venue="binance", symbol="XUSDT")
    assert size_order(D(9), D(1000), [btc, strict]) == Sized(None, "0.009 is below XUSDT's minimum 0.01 at binance")
    assert size_order(D(10), D(1000), [btc, strict]) == Sized(D("0.010"))
    free = Lot(D("0.1"), D(0), D(0), D("0.1"), venue="bybit", symbol="FREEUSDT")
    assert size_order(D("0.5"), D(10), [free]) == Sized(None, "0.5 USD at 10 is less than one step of 0.1")
    assert size_order(D(0), D(10), [free]).qty is None
    assert size_order(D(1), D(10), [free]) == Sized(D("0.1"))


def test_a_market_order_maximum_caps_the_quantity_and_says_so():
    capped = Lot(D("0.01"), D("0.01"), D(5), D("0.1"), D("150.005"), "bybit", "ETHUSDT")
    loose = Lot(D("0.001"), D("0.001"), D(5), D("0.1"), D(1000), "binance", "ETHUSDT")
    assert size_order(D(1_000_000), D(2000), [loose, capped]) == Sized(
        D("150.00"), "capped at ETHUSDT's market order maximum 150.005 at bybit")
    assert size_order(D(300_000), D(2000), [loose, capped]) == Sized(D("150.00"))  # at the maximum: not capped
    assert size_order(D(2_001_000), D(2000), [capped, loose]) == Sized(  # each maximum in turn: the smaller
        D("150.00"), "capped at ETHUSDT's market order maximum 150.005 at bybit")
    assert size_order(D(2_001_000), D(2000), [loose, capped]) == Sized(
        D("150.00"), "capped at ETHUSDT's market order maximum 150.005 at bybit")
    assert size_order(D(1_000_000), D(2000), [capped, loose]).qty == D(150)
    assert size_order(D(1_000_000), D(2000), [loose]) == Sized(D(500))
    assert size_order(D(2_000_000), D(2000), [loose]) == Sized(D(1000))  # exactly the maximum: not capped
    assert size_order(D(2_001_000), D(2000), [loose]) == Sized(
        D(1000), "capped at ETHUSDT's market order maximum 1000 at binance")
    tiny = Lot(D("0.01"), D("0.5"), D(0), D("0.1"), D("0.2"), "bybit", "XUSDT")
    assert size_order(D(100), D(1), [tiny]) == Sized(None, "0.20 is below XUSDT's minimum 0.5 at bybit")


def test_sizing_needs_a_venue_a_positive_price_and_a_notional_not_negative():
    lot = Lot(D("0.1"), D(0), D(0), D("0.1"))
    with pytest.raises(ValueError, match=r"^no venue to size an order for$"):
        size_order(D(1), D(1), [])
    with pytest.raises(ValueError, match="price 0 must be positive"):
        size_order(D(1), D(0), [lot])
    with pytest.raises(ValueError, match="notional -1 not negative"):
        size_order(D(-1), D(1), [lot])


@pytest.mark.parametrize(("content", "message"), [
    (None, "No such file or directory"),
    (b"{not json", "not JSON"),
    (b"\x1f\x8b\x08\x00broken", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"42", "neither a Bybit /v5/market/instruments-info answer (result.list) nor a Binance /fapi/v1/exchangeInfo "
            "(symbols): it has a int"),
    (b'{"code": -1121, "msg": "Invalid symbol."}', "neither a Bybit /v5/market/instruments-info answer (result.list) "
                                                   "nor a Binance /fapi/v1/exchangeInfo (symbols): it has keys code, msg"),
    (b'{"retCode": 0, "result": {"list": {}}}', "neither a Bybit /v5/market/instruments-info answer (result.list) "
                                                "nor a Binance /fapi/v1/exchangeInfo (symbols): it has keys list"),
    (b'{"retCode": 10001, "retMsg": "params error", "result": {}}', "Bybit answered retCode 10001: params error"),
    (b'{"retCode": 0, "result": {"category": "inverse", "list": []}}',
     "category inverse: only linear contracts are sized in coins"),
    (b'{"retCode": 0, "result": {"category": "linear", "list": []}}', "lists no perpetual"),
    (b"[]", "lists no perpetual"),
    (b'{"symbols": {}}', "exchangeInfo's symbols is not a list"),
    (b'{"list": ["BTCUSDT"]}', "a row is not an object: 'BTCUSDT'"),
    (b'{"list": [{"symbol": "BTCUSDT"}]}', "BTCUSDT: no contractType"),
    (b'{"list": [{"contractType": "LinearPerpetual"}]}', "a row: no symbol"),
])
def test_a_file_that_is_not_an_instruments_answer_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "instruments.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InstrumentError) as refused:
        load_instruments(path)
    assert str(refused.value).startswith(f"{path}: {message}")


BYBIT_BAD = [
    ({"qtyStep": None}, "BTCUSDT: no lotSizeFilter.qtyStep"),
    ({"qtyStep": ""}, "BTCUSDT: no lotSizeFilter.qtyStep"),
    ({"minOrderQty": None}, "BTCUSDT: no lotSizeFilter.minOrderQty"),
    ({"minNotionalValue": None}, "BTCUSDT: no lotSizeFilter.minNotionalValue"),
    ({"qtyStep": "0"}, "BTCUSDT: lotSizeFilter.qtyStep is 0"),
    ({"qtyStep": "abc"}, "BTCUSDT: lotSizeFilter.qtyStep 'abc' is not a number >= 0"),
    ({"qtyStep": "-0.1"}, "BTCUSDT: lotSizeFilter.qtyStep '-0.1' is not a number >= 0"),
    ({"qtyStep": "NaN"}, "BTCUSDT: lotSizeFilter.qtyStep 'NaN' is not a number >= 0"),
    ({"qtyStep": "Infinity"}, "BTCUSDT: lotSizeFilter.qtyStep 'Infinity' is not a number >= 0"),
    ({"qtyStep": True}, "BTCUSDT: lotSizeFilter.qtyStep True is not a number >= 0"),
    ({"qtyStep": ["0.1"]}, "BTCUSDT: lotSizeFilter.qtyStep ['0.1'] is not a number >= 0"),
    ({"qtyStep": {"value": "0.1"}}, "BTCUSDT: lotSizeFilter.qtyStep {'value': '0.1'} is not a number >= 0"),
    ({"maxMktOrderQty": "x"}, "BTCUSDT: lotSizeFilter.maxMktOrderQty 'x' is not a number >= 0"),
]


@pytest.mark.parametrize(("change", "message"), BYBIT_BAD)
def test_a_bybit_row_with_a_field_missing_or_wrong_stops_the_load(tmp_path, change, message):
    row = _bybit_row(**{k: v for k, v in change.items() if v is not None})
    for key in (k for k, v in change.items() if v is None):
        del row["lotSizeFilter"][key]
    path = _write(tmp_path, {"retCode": 0, "result": {"category": "linear", "list": [_bybit_row("ETHUSDT"), row]}})
    with pytest.raises(InstrumentError) as refused:
        load_instruments(path)
    assert str(refused.value) == f"{path}: {message}"


def test_bybit_rows_without_a_filter_a_tick_or_with_two_lots_for_a_symbol_stop_the_load(tmp_path):
    no_price = _bybit_row()
    del no_price["priceFilter"]
    no_tick = _bybit_row()
    no_tick["priceFilter"]["tickSize"] = ""
    zero_tick = _bybit_row()
    zero_tick["priceFilter"]["tickSize"] = "0.00"
    no_lot = _bybit_row()
    no_lot["lotSizeFilter"] = None
    for row, message in ((no_price, "BTCUSDT: no priceFilter"), (no_tick, "BTCUSDT: no priceFilter.tickSize"),
                         (zero_tick, "BTCUSDT: priceFilter.tickSize is 0"), (no_lot, "BTCUSDT: no lotSizeFilter")):
        with pytest.raises(InstrumentError, match=message):
            load_instruments(_write(tmp_path, {"list": [row]}))
    future = {**_bybit_row("BTCUSDT-14AUG26"), "contractType": "LinearFutures", "lotSizeFilter": {}}
    assert list(load_instruments(_write(tmp_path, {"list": [future, _bybit_row()]}))) == ["BTCUSDT"]  # not read
    pages = [{"list": [_bybit_row()]}, {"list": [_bybit_row(qtyStep="0.01")]}]
    with pytest.raises(InstrumentError, match="BTCUSDT is listed twice with different lots"):
        load_instruments(_write(tmp_path, pages))


def _binance_without(symbol: dict, filter_type: str, key: str | None = None) -> dict:
    symbol = json.loads(json.dumps(symbol))
    for f in list(symbol["filters"]):
        if f["filterType"] == filter_type:
            if key is None:
                symbol["filters"].remove(f)
            else:
                del f[key]
    return {"symbols": [symbol]}


@pytest.mark.parametrize(("answer", "message"), [
    (_binance_without(BINANCE_DOC["symbols"][1], "LOT_SIZE"), "BTCUSDT: no LOT_SIZE filter"),
    (_binance_without(BINANCE_DOC["symbols"][1], "MIN_NOTIONAL"), "BTCUSDT: no MIN_NOTIONAL filter"),
    (_binance_without(BINANCE_DOC["symbols"][1], "PRICE_FILTER"), "BTCUSDT: no PRICE_FILTER filter"),
    (_binance_without(BINANCE_DOC["symbols"][1], "LOT_SIZE", "stepSize"), "BTCUSDT: no stepSize"),
    (_binance_without(BINANCE_DOC["symbols"][1], "LOT_SIZE", "minQty"), "BTCUSDT: no minQty"),
    (_binance_without(BINANCE_DOC["symbols"][1], "MIN_NOTIONAL", "notional"), "BTCUSDT: no notional"),
    (_binance_without(BINANCE_DOC["symbols"][1], "PRICE_FILTER", "tickSize"), "BTCUSDT: no tickSize"),
    (_binance_without(BINANCE_DOC["symbols"][1], "MARKET_LOT_SIZE", "stepSize"), "BTCUSDT: no stepSize"),
    (_binance_without(BINANCE_DOC["symbols"][1], "MARKET_LOT_SIZE", "minQty"), "BTCUSDT: no minQty"),
    ({"symbols": [_binance_symbol("BTCUSDT", step="0")]}, "BTCUSDT: stepSize is 0"),
    ({"symbols": [{**_binance_symbol("BTCUSDT"), "filters": [
        {**f, "tickSize": "0.0"} if f["filterType"] == "PRICE_FILTER" else f
        for f in _binance_symbol("BTCUSDT")["filters"]]}]}, "BTCUSDT: tickSize is 0"),
    ({"symbols": [_binance_symbol("BTCUSDT", max_qty="lots")]}, "BTCUSDT: maxQty 'lots' is not a number"),
    ({"symbols": [_binance_symbol("BTCUSDT", market={"stepSize": "0.001", "minQty": "0", "maxQty": "-1"})]},
     "BTCUSDT: maxQty '-1' is not a number >= 0"),
    ({"symbols": [{**_binance_symbol("BTCUSDT"), "filters": None}]}, "BTCUSDT: no filters"),
    ({"symbols": [{**_binance_symbol("BTCUSDT"), "contractType": None}]}, "BTCUSDT: no contractType"),
    ({"symbols": [{**_binance_symbol("BTCUSDT"), "symbol": ""}]}, "a row: no symbol"),
    ({"symbols": [_binance_symbol("BTCUSDT"), _binance_symbol("BTCUSDT", notional="100")]},
     "BTCUSDT is listed twice with different lots"),
    ({"symbols": [_binance_symbol("BTCUSDT_260925", contract="CURRENT_QUARTER")]}, "lists no perpetual"),
])
def test_a_binance_symbol_with_a_filter_or_field_missing_stops_the_load(tmp_path, answer, message):
    path = _write(tmp_path, answer)
    with pytest.raises(InstrumentError) as refused:
        load_instruments(path)
    assert str(refused.value).startswith(f"{path}: {message}")


def test_binance_filters_that_are_not_objects_are_not_filters(tmp_path):
    symbol = _binance_symbol("BTCUSDT")
    symbol["filters"].append("LOT_SIZE")
    assert load_instruments(_write(tmp_path, {"symbols": [symbol]}))["BTCUSDT"].qty_step == D("0.001")
    symbol["filters"] = ["LOT_SIZE", "MIN_NOTIONAL", "PRICE_FILTER"]
    with pytest.raises(InstrumentError, match="BTCUSDT: no LOT_SIZE filter"):
        load_instruments(_write(tmp_path, {"symbols": [symbol]}))


# steps as venues write them: 1 to 250 units of 10^-8 to 10^2
STEPS = st.builds(lambda n, e: D(n).scaleb(e), st.integers(1, 250), st.integers(-8, 2))
AMOUNTS = st.decimals(min_value=D("0.00000001"), max_value=D(10) ** 9, places=8, allow_nan=False,
                      allow_infinity=False)


@settings(max_examples=EXAMPLES, deadline=None)
@given(notional=AMOUNTS, price=AMOUNTS, steps=st.lists(STEPS, min_size=1, max_size=3))
def test_the_quantity_is_the_largest_common_multiple_of_the_steps_within_the_notional(notional, price, steps):
    lots = [Lot(step, D(0), D(0), D("0.01")) for step in steps]
    step = lcm(*steps)
    assert all(Fraction(step) / Fraction(s) == int(Fraction(step) / Fraction(s)) for s in steps)
    qty = order_qty(notional, price, lots)
    most = Fraction(notional) / Fraction(price)
    if qty is None:
        assert most < Fraction(step)  # not even one step
        return
    assert all((Fraction(qty) / Fraction(s)).denominator == 1 for s in steps)
    assert 0 < Fraction(qty) <= most < Fraction(qty) + Fraction(step)


@settings(max_examples=EXAMPLES, deadline=None)
@given(notional=AMOUNTS, price=AMOUNTS, step=STEPS, min_qty=AMOUNTS, min_notional=AMOUNTS)
def test_an_order_is_refused_exactly_when_the_floored_quantity_is_below_a_minimum(notional, price, step, min_qty,
                                                                                  min_notional):
    sized = size_order(notional, price, [Lot(step, min_qty, min_notional, D("0.01"), venue="bybit", symbol="X")])
    floored = int(Fraction(notional) / Fraction(price) / Fraction(step)) * Fraction(step)
    ok = floored >= min_qty and floored * Fraction(price) >= min_notional and floored > 0
    assert (sized.qty is not None) == ok
    assert sized.qty == floored if ok else "below X's minimum" in sized.reason or "one step" in sized.reason
