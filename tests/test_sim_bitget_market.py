"""The simulator's Bitget V2 mix public market REST, called as a client written from Bitget's
pages would call it (plain aiohttp, not shared/venues/bitget): contracts, current-fund-rate,
ticker, tickers and merge-depth for each of Bitget's product types, the rows' shapes against
the pages' examples, the book's top against the ticker, and Bitget's refusals.

Doc examples: bitget.com/api-doc/contract/market/Get-Ticker, Get-All-Symbol-Ticker (a
perpetual's delivery times are null), Get-Merge-Depth (levels are JSON numbers there, as the
live venue sends them) and Get-Current-Funding-Rate.
"""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from services.sim.server import SimServer
from tests.conftest import serve_app

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
PRODUCT_TYPES = ["USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES", "SUSDT-FUTURES", "SCOIN-FUTURES", "SUSDC-FUTURES"]
NOT_SIMULATED = PRODUCT_TYPES[1:]
MARKET = "/api/v2/mix/market"

# Get-All-Symbol-Ticker's first row, the perpetual BTCUSD (Get-Ticker's example has the same keys)
DOC_TICKER = {
    "symbol": "BTCUSD", "lastPr": "29904.5", "askPr": "29904.5", "bidPr": "29903.5", "bidSz": "0.5091",
    "askSz": "2.2694", "high24h": "0", "low24h": "0", "ts": "1695794271400", "change24h": "0", "baseVolume": "0",
    "quoteVolume": "0", "usdtVolume": "0", "openUtc": "0", "changeUtc24h": "0", "indexPrice": "29132.353333",
    "fundingRate": "-0.0007", "holdingAmount": "125.6844", "deliveryStartTime": None, "deliveryTime": None,
    "deliveryStatus": "delivery_normal", "open24h": "0", "markPrice": "12345"}
DOC_DEPTH = {"asks": [[26347.5, 0.25], [26348.0, 0.16]], "bids": [[26346.5, 0.16], [26346.0, 0.32]],
             "ts": "1695870968804", "scale": "0.1", "precision": "scale0", "isMaxPrecision": "NO"}
DOC_FUND_RATE = {"symbol": "BTCUSDT", "fundingRate": "0.000068", "fundingRateInterval": "8",
                 "nextUpdate": "1743062400000", "minFundingRate": "-0.003", "maxFundingRate": "0.003"}
DOC_CONTRACT_KEYS = {"symbol", "baseCoin", "quoteCoin", "makerFeeRate", "takerFeeRate", "minTradeNum",
                     "priceEndStep", "volumePlace", "pricePlace", "sizeMultiplier", "symbolType", "minTradeUSDT",
                     "symbolStatus", "fundInterval", "minLever", "maxLever", "supportMarginCoins"}
NUMERIC_TICKER_FIELDS = [k for k, v in DOC_TICKER.items() if v is not None and k not in ("symbol", "deliveryStatus")]


@pytest.fixture
async def get():
    """GET a path with a query on a fresh simulator whose book stands still: (HTTP status, body)."""
    server = SimServer(SYMBOLS, seed=7, step_ms=10_000_000)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        async def call(path: str, **query: str) -> tuple[int, dict]:
            async with http.get(f"{base}{MARKET}/{path}", params=query) as response:
                return response.status, await response.json()

        yield call


def ok(status: int, body: dict):
    assert status == 200, body
    assert body["code"] == "00000" and body["msg"] == "success" and isinstance(body["requestTime"], int)
    assert list(body) == ["code", "msg", "requestTime", "data"]
    return body["data"]


def refused(status: int, body: dict, code: str, msg: str) -> None:
    assert (status, body["code"], body["msg"], body["data"]) == (400, code, msg, None)


def types_of(row: dict) -> dict:
    return {k: type(v).__name__ for k, v in row.items()}


# --- product types ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["contracts", "tickers", "current-fund-rate"])
async def test_every_product_type_answers_its_list_empty_where_not_simulated(get, path):
    for product in NOT_SIMULATED:
        for spelled in (product, product.lower()):  # the pages' curl examples write usdt-futures
            assert ok(*await get(path, productType=spelled)) == []
    for spelled in ("USDT-FUTURES", "usdt-futures", "Usdt-Futures"):
        assert [row["symbol"] for row in ok(*await get(path, productType=spelled))] == SYMBOLS


@pytest.mark.parametrize("path, query", [
    ("contracts", {}), ("tickers", {}), ("current-fund-rate", {}), ("ticker", {"symbol": "BTCUSDT"}),
    ("merge-depth", {"symbol": "BTCUSDT"})])
async def test_an_unknown_or_missing_product_type_is_refused(get, path, query):
    for product in ("NOPE-FUTURES", "SPOT", "USDT-FUTURES "):
        refused(*await get(path, productType=product, **query), "40034", "Parameter productType does not exist")
    refused(*await get(path, **query), "400172", "Parameter verification failed")


async def test_contracts_rows_have_the_pages_fields_and_a_symbol_narrows_them(get):
    rows = ok(*await get("contracts", productType="USDT-FUTURES"))
    assert all(set(row) == DOC_CONTRACT_KEYS for row in rows)
    assert all(isinstance(v, str) for row in rows for k, v in row.items() if k != "supportMarginCoins")
    btc = rows[0]
    assert (btc["baseCoin"], btc["quoteCoin"], btc["symbolType"], btc["supportMarginCoins"]) == (
        "BTC", "USDT", "perpetual", ["USDT"])
    assert ok(*await get("contracts", productType="USDT-FUTURES", symbol="ETHUSDT")) == [rows[1]]
    assert ok(*await get("contracts", productType="SUSDT-FUTURES", symbol="BTCUSDT")) == []
    refused(*await get("contracts", productType="USDT-FUTURES", symbol="NOPEUSDT"), "40034",
            "Parameter NOPEUSDT does not exist")


async def test_current_fund_rate_with_and_without_a_symbol(get):
    rows = ok(*await get("current-fund-rate", productType="USDT-FUTURES"))
    assert [types_of(row) for row in rows] == [types_of(DOC_FUND_RATE)] * 2
    assert ok(*await get("current-fund-rate", productType="usdt-futures", symbol="ETHUSDT")) == [rows[1]]
    refused(*await get("current-fund-rate", productType="USDT-FUTURES", symbol="NOPEUSDT"), "40034",
            "Parameter NOPEUSDT does not exist")


# --- ticker and tickers ---------------------------------------------------------------------

async def test_ticker_has_the_pages_keys_and_types(get):
    [row] = ok(*await get("ticker", symbol="BTCUSDT", productType="USDT-FUTURES"))
    assert list(row) == list(DOC_TICKER)
    assert types_of(row) == types_of(DOC_TICKER)  # strings; a perpetual's delivery times null
    assert row["symbol"] == "BTCUSDT" and row["deliveryStatus"] == ""
    for key in NUMERIC_TICKER_FIELDS:
        Decimal(row[key])  # every number is a decimal string
    assert Decimal(row["bidPr"]) < Decimal(row["askPr"])
    assert Decimal(row["bidSz"]) > 0 and Decimal(row["askSz"]) > 0
    assert Decimal(row["low24h"]) <= Decimal(row["lastPr"]) <= Decimal(row["high24h"])
    assert row["usdtVolume"] == row["quoteVolume"] and Decimal(row["holdingAmount"]) > 0
    assert int(row["ts"]) > 1_600_000_000_000 and Decimal(row["indexPrice"]) > 0 and Decimal(row["markPrice"]) > 0


async def test_tickers_lists_each_symbol_as_ticker_does(get):
    rows = ok(*await get("tickers", productType="USDT-FUTURES"))
    assert [row["symbol"] for row in rows] == SYMBOLS
    for row in rows:
        assert list(row) == list(DOC_TICKER) and types_of(row) == types_of(DOC_TICKER)
        assert ok(*await get("ticker", symbol=row["symbol"], productType="USDT-FUTURES")) == [row]


async def test_ticker_bid_and_ask_are_merge_depths_top(get):
    for symbol in SYMBOLS:
        [ticker] = ok(*await get("ticker", symbol=symbol, productType="USDT-FUTURES"))
        book = ok(*await get("merge-depth", symbol=symbol, productType="USDT-FUTURES", limit="1"))
        (bid, bid_size), (ask, ask_size) = book["bids"][0], book["asks"][0]
        assert Decimal(ticker["bidPr"]) == Decimal(str(bid)) < Decimal(str(ask)) == Decimal(ticker["askPr"])
        assert (Decimal(ticker["bidSz"]), Decimal(ticker["askSz"])) == (Decimal(str(bid_size)), Decimal(str(ask_size)))


async def test_a_symbol_is_served_under_any_valid_product_type(get):
    """Live, merge-depth served BTCPERP (USDC-M) under USDT-FUTURES: a symbol is looked up by name."""
    [usdt] = ok(*await get("ticker", symbol="BTCUSDT", productType="USDT-FUTURES"))
    [demo] = ok(*await get("ticker", symbol="BTCUSDT", productType="susdt-futures"))
    assert demo == usdt


async def test_ticker_refusals(get):
    refused(*await get("ticker", symbol="NOPEUSDT", productType="USDT-FUTURES"), "40034",
            "Parameter NOPEUSDT does not exist")
    refused(*await get("ticker", productType="USDT-FUTURES"), "400172", "Parameter verification failed")
    refused(*await get("ticker", symbol="BTCUSDT_UMCBL", productType="USDT-FUTURES"), "40034",
            "Parameter BTCUSDT_UMCBL does not exist")  # a V1 name


# --- merge-depth ----------------------------------------------------------------------------

async def test_merge_depth_has_the_pages_shape_and_a_sorted_book(get):
    book = ok(*await get("merge-depth", symbol="BTCUSDT", productType="USDT-FUTURES"))
    assert list(book) == ["asks", "bids", "ts", "scale", "precision", "isMaxPrecision"]
    assert {k: type(v).__name__ for k, v in book.items()} == types_of(DOC_DEPTH)
    for side in ("asks", "bids"):
        assert all(len(level) == 2 and all(isinstance(x, float | int) and x > 0 for x in level)
                   for level in book[side])  # [price, size] as JSON numbers, as the example
    bids, asks = [p for p, _ in book["bids"]], [p for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert len(set(bids)) == len(bids) and len(set(asks)) == len(asks)
    assert (book["scale"], book["precision"], book["isMaxPrecision"]) == ("0.1", "scale0", "NO")  # BTCUSDT's tick
    assert int(book["ts"]) > 1_600_000_000_000


@pytest.mark.parametrize("limit, levels", [("1", 1), ("5", 5), ("15", 15), ("50", 50), ("max", 100), (None, 100)])
async def test_merge_depth_limits(get, limit, levels):
    query = {"symbol": "ETHUSDT", "productType": "USDT-FUTURES"} | ({"limit": limit} if limit else {})
    book = ok(*await get("merge-depth", **query))
    assert (len(book["bids"]), len(book["asks"])) == (levels, levels)
    full = ok(*await get("merge-depth", symbol="ETHUSDT", productType="USDT-FUTURES", limit="max"))
    assert book["bids"] == full["bids"][:levels] and book["asks"] == full["asks"][:levels]


async def test_merge_depth_precisions_merge_bids_down_and_asks_up(get):
    raw = ok(*await get("merge-depth", symbol="BTCUSDT", productType="USDT-FUTURES", limit="max"))
    for n, precision in enumerate(["scale1", "scale2", "scale3"], start=1):
        book = ok(*await get("merge-depth", symbol="BTCUSDT", productType="USDT-FUTURES", precision=precision))
        step = Decimal("0.1") * 10 ** n
        assert (Decimal(book["scale"]), book["precision"]) == (step, precision)
        assert book["isMaxPrecision"] == ("YES" if precision == "scale3" else "NO")
        for side in ("bids", "asks"):
            assert all(Decimal(str(p)) % step == 0 for p, _ in book[side])
        top_bid, top_ask = Decimal(str(book["bids"][0][0])), Decimal(str(book["asks"][0][0]))
        assert top_bid <= Decimal(str(raw["bids"][0][0])) and top_ask >= Decimal(str(raw["asks"][0][0]))
        # the top merged level holds every raw level that rounds onto it (those the raw book shows)
        in_bid = sum(Decimal(str(s)) for p, s in raw["bids"] if Decimal(str(p)) >= top_bid)
        in_ask = sum(Decimal(str(s)) for p, s in raw["asks"] if Decimal(str(p)) <= top_ask)
        assert Decimal(str(book["bids"][0][1])) >= in_bid > 0 and Decimal(str(book["asks"][0][1])) >= in_ask > 0
    scale0 = ok(*await get("merge-depth", symbol="BTCUSDT", productType="USDT-FUTURES", precision="scale0",
                           limit="max"))
    assert scale0 == raw


async def test_merge_depth_refusals(get):
    query = {"symbol": "BTCUSDT", "productType": "USDT-FUTURES"}
    for limit in ("7", "0", "101", "abc"):
        refused(*await get("merge-depth", **query, limit=limit), "40020", "Parameter limit error")
    for precision in ("scale4", "step0", "0"):
        refused(*await get("merge-depth", **query, precision=precision), "40020", "Parameter precision error")
    refused(*await get("merge-depth", symbol="NOPEUSDT", productType="USDT-FUTURES"), "40034",
            "Parameter NOPEUSDT does not exist")
    refused(*await get("merge-depth", productType="USDT-FUTURES"), "400172", "Parameter verification failed")


def test_a_second_subscriber_to_a_streaming_book_gets_the_last_sent_book_and_both_stay_in_sync():
    import json

    from services.sim.bitget_public import BitgetDialect, checksum
    from services.sim.market import MarketModel

    start = 1_800_000_000_000
    model = MarketModel(["BTCUSDT"], seed=3, start_ms=start)
    dialect = BitgetDialect(model)
    topic = "books:BTCUSDT"

    def apply(book: dict, frame: bytes) -> None:
        message = json.loads(frame)
        [data] = message["data"]
        if message["action"] == "snapshot":
            book.clear()
            book.update({"bids": {}, "asks": {}})
        for side in ("bids", "asks"):
            for price, size in data[side]:
                book[side].pop(price, None) if Decimal(size) == 0 else book[side].__setitem__(price, size)
        bids = sorted(book["bids"].items(), key=lambda level: -Decimal(level[0]))
        asks = sorted(book["asks"].items(), key=lambda level: Decimal(level[0]))
        assert checksum([list(b) for b in bids], [list(a) for a in asks]) == data["checksum"]

    first: dict = {}
    for frame in dialect.snapshot(topic):
        apply(first, frame)
    second: dict = {}
    for i in range(1, 400):
        model.step(start + 20 * i)
        for frame in dialect.step_frames({topic}).get(topic, []):
            apply(first, frame)
            if second:
                apply(second, frame)
        if i == 150:  # joins while the topic streams, between two pushes
            [joined] = dialect.snapshot(topic)
            assert json.loads(joined)["action"] == "snapshot"
            apply(second, joined)
            assert second == first
    assert second == first and first["bids"]
