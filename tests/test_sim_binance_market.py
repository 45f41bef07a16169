"""The simulator's Binance USD-M market data as a client written from Binance's docs sees it:
raw aiohttp requests and WebSocket frames (not shared/venues/binance), compared with the
documentation's examples key by key and type by type, and checked for values that agree with
each other (the book ticker is the depth's top, klines fold, 24-hour high >= low).

Doc examples: developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/
(24hr-Ticker-Price-Change-Statistics, Symbol-Order-Book-Ticker, Kline-Candlestick-Data); the
`<symbol>@trade` event as fstream sends it (JKorf/Binance.Net#1218, the fields e E T s t p q X m).
"""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from services.sim.server import SimServer
from tests.conftest import serve_app, shape

T0 = 1_800_000_000_000  # on the hour (and the minute) in UTC
QUIET = 10_000_000  # step_ms: the server never steps by itself; the test steps it

DOC_TRADE = {"e": "trade", "E": 1679851564490, "T": 1679851564486, "s": "BTCUSDT", "t": 3493102749,
             "p": "27785.00", "q": "0.014", "X": "MARKET", "m": True}
DOC_AGG_TRADE_KEYS = {"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}
DOC_TICKER_24HR = {"symbol": "BTCUSDT", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
                   "weightedAvgPrice": "0.29628482", "lastPrice": "4.00000200", "lastQty": "200.00000000",
                   "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
                   "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
                   "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76}
# the REST page's example, with the lastUpdateId its WebSocket API twin (ticker.book) carries
DOC_BOOK_TICKER = {"symbol": "BTCUSDT", "bidPrice": "4.00000000", "bidQty": "431.00000000",
                   "askPrice": "4.00000200", "askQty": "9.00000000", "time": 1589437530011, "lastUpdateId": 1027024}
DOC_KLINE = [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
             1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "17928899.62484339"]


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def quiet_server(symbols: list[str], minutes: float = 0.0, every_ms: int = 5_000) -> SimServer:
    """A server stepped by hand from T0 for `minutes` of its clock, one step per `every_ms`."""
    clock = Clock(T0)
    server = SimServer(symbols, seed=3, step_ms=QUIET, clock=clock)
    for _ in range(int(minutes * 60_000 / every_ms)):
        clock.ms += every_ms
        server.step()
    return server


async def get(session: aiohttp.ClientSession, url: str, **params) -> tuple[int, object]:
    async with session.get(url, params=params) as response:
        return response.status, await response.json()


def prices(row: list) -> tuple[Decimal, ...]:
    return tuple(Decimal(x) for x in row[1:5])


# --- <symbol>@trade ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/public/ws/btcusdt@trade", "/market/ws/btcusdt@trade"])
async def test_the_raw_trade_stream_delivers_documented_trade_events(path):
    server = SimServer(["BTCUSDT"], seed=5, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base.replace("http", "ws") + path)
        events = [await ws.receive_json(timeout=10) for _ in range(5)]
        await ws.close()
    for event in events:
        assert shape(event) == shape(DOC_TRADE)
        assert event["e"] == "trade" and event["s"] == "BTCUSDT" and event["X"] == "MARKET"
        assert Decimal(event["p"]) > 0 and Decimal(event["q"]) > 0 and event["E"] >= event["T"]
    ids = [e["t"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_trade_is_subscribed_live_on_public_and_matches_the_aggregate_trades():
    server = SimServer(["BTCUSDT"], seed=5, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        ws_base = base.replace("http", "ws")
        public = await session.ws_connect(f"{ws_base}/public/ws")
        await public.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 4})
        assert await public.receive_json(timeout=5) == {"result": None, "id": 4}
        assert (await public.receive_json(timeout=10))["e"] == "trade"
        await public.close()

        market = await session.ws_connect(f"{ws_base}/market/stream?streams=btcusdt@trade/btcusdt@aggTrade")
        by_stream: dict[str, list[dict]] = {"btcusdt@trade": [], "btcusdt@aggTrade": []}
        while len(by_stream["btcusdt@trade"]) < 6:
            message = await market.receive_json(timeout=10)
            by_stream[message["stream"]].append(message["data"])
        while len(by_stream["btcusdt@aggTrade"]) < len(by_stream["btcusdt@trade"]):
            message = await market.receive_json(timeout=10)
            by_stream[message["stream"]].append(message["data"])
        await market.close()
    aggregates = {a["f"]: a for a in by_stream["btcusdt@aggTrade"]}
    for trade in by_stream["btcusdt@trade"]:
        aggregate = aggregates[trade["t"]]  # a single trade: f == l == t
        assert set(aggregate) == DOC_AGG_TRADE_KEYS and aggregate["l"] == trade["t"]
        assert (aggregate["p"], aggregate["q"], aggregate["T"], aggregate["m"]) == (
            trade["p"], trade["q"], trade["T"], trade["m"])


# --- REST ------------------------------------------------------------------------------------

async def test_24hr_ticker_has_the_documented_shape_and_consistent_prices():
    server = quiet_server(["BTCUSDT", "ETHUSDT"], minutes=20)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        status, one = await get(session, f"{base}/fapi/v1/ticker/24hr", symbol="ETHUSDT")
        status_all, every = await get(session, f"{base}/fapi/v1/ticker/24hr")
    assert status == status_all == 200
    assert isinstance(one, dict) and isinstance(every, list)
    assert [t["symbol"] for t in every] == ["BTCUSDT", "ETHUSDT"]
    for ticker in [one, *every]:
        assert shape(ticker) == shape(DOC_TICKER_24HR)
        high, low, last, opened = (Decimal(ticker[k]) for k in ("highPrice", "lowPrice", "lastPrice", "openPrice"))
        assert high >= low and low <= last <= high and low <= opened <= high
        assert Decimal(ticker["priceChange"]) == last - opened
        assert float(ticker["priceChangePercent"]) == pytest.approx(float((last - opened) / opened * 100), abs=0.001)
        assert low <= Decimal(ticker["weightedAvgPrice"]) <= high
        assert Decimal(ticker["volume"]) > 0 and Decimal(ticker["quoteVolume"]) > 0
        assert ticker["openTime"] == T0 and ticker["closeTime"] == T0 + 20 * 60_000
    assert one == every[1]


async def test_book_ticker_is_the_top_of_the_depth_snapshot():
    server = quiet_server(["BTCUSDT", "DOGEUSDT"], minutes=1)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        url = f"{base}/fapi/v1/ticker/bookTicker"
        for _ in range(3):
            _, one = await get(session, url, symbol="BTCUSDT")
            _, every = await get(session, url)
            _, depth = await get(session, f"{base}/fapi/v1/depth", symbol="BTCUSDT", limit="5")
            assert isinstance(one, dict) and [t["symbol"] for t in every] == ["BTCUSDT", "DOGEUSDT"]
            for ticker in [one, *every]:
                assert shape(ticker) == shape(DOC_BOOK_TICKER)
                assert Decimal(ticker["bidPrice"]) < Decimal(ticker["askPrice"])
                assert Decimal(ticker["bidQty"]) > 0 and Decimal(ticker["askQty"]) > 0
            assert one == every[0]
            assert one["lastUpdateId"] == depth["lastUpdateId"]
            assert [one["bidPrice"], one["bidQty"]] == depth["bids"][0]
            assert [one["askPrice"], one["askQty"]] == depth["asks"][0]
            server.clock.ms += 1_000
            server.step()


async def test_klines_are_documented_rows_oldest_first_and_hours_fold_the_minutes():
    server = quiet_server(["BTCUSDT"], minutes=150)  # T0 .. T0 + 2 h 30 min
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        url = f"{base}/fapi/v1/klines"
        _, minutes = await get(session, url, symbol="BTCUSDT", interval="1m", limit="1500")
        _, hours = await get(session, url, symbol="BTCUSDT", interval="1h")
        _, default = await get(session, url, symbol="BTCUSDT", interval="1m")
        _, latest = await get(session, url, symbol="BTCUSDT", interval="1m", limit="3")
        _, from_start = await get(session, url, symbol="BTCUSDT", interval="1m", startTime=str(T0 + 30 * 60_000),
                                  limit="4")
        _, until_end = await get(session, url, symbol="BTCUSDT", interval="5m", endTime=str(T0 + 60 * 60_000),
                                 limit="2")
        _, window = await get(session, url, symbol="BTCUSDT", interval="15m", startTime=str(T0),
                              endTime=str(T0 + 30 * 60_000))
        _, day = await get(session, url, symbol="BTCUSDT", interval="1d")
        _, month = await get(session, url, symbol="BTCUSDT", interval="1M")
        _, week = await get(session, url, symbol="BTCUSDT", interval="1w")
    assert len(minutes) == 151 and len(default) == 151  # the minute of T0 to that of T0 + 150 min
    assert [row[0] for row in minutes] == [T0 + i * 60_000 for i in range(151)]
    for row in minutes + hours + day + month + week:
        assert shape(row) == shape(DOC_KLINE) and len(row) == len(DOC_KLINE)
        opened, high, low, close = prices(row)
        assert low <= min(opened, close) and max(opened, close) <= high
    assert all(row[6] == row[0] + 59_999 for row in minutes)
    assert latest == minutes[-3:]
    assert from_start == minutes[30:34]
    assert [row[0] for row in until_end] == [T0 + 55 * 60_000, T0 + 60 * 60_000]
    assert [row[0] for row in window] == [T0, T0 + 15 * 60_000, T0 + 30 * 60_000]

    assert [row[0] for row in hours] == [T0, T0 + 3_600_000, T0 + 7_200_000]
    for hour in hours:
        assert hour[6] == hour[0] + 3_599_999
        inside = [m for m in minutes if hour[0] <= m[0] <= hour[6]]
        assert prices(hour) == (prices(inside[0])[0], max(prices(m)[1] for m in inside),
                                min(prices(m)[2] for m in inside), prices(inside[-1])[3])
        assert Decimal(hour[5]) == sum(Decimal(m[5]) for m in inside)
        assert float(hour[7]) == pytest.approx(sum(float(m[7]) for m in inside), abs=0.001)
    day_start = T0 - T0 % 86_400_000
    assert [(row[0], row[6]) for row in day] == [(day_start, day_start + 86_399_999)]
    assert month[0][0] <= T0 < month[0][6] and week[0][0] <= T0 < week[0][6]
    assert prices(day[0]) == prices(month[0]) == prices(week[0]) == (
        prices(minutes[0])[0], max(prices(m)[1] for m in minutes), min(prices(m)[2] for m in minutes),
        prices(minutes[-1])[3])


async def test_errors_are_answered_as_binance_answers_them():
    server = quiet_server(["BTCUSDT"])
    cases = [
        ("/fapi/v1/ticker/24hr", {"symbol": "NOPEUSDT"}, -1121),
        ("/fapi/v1/ticker/bookTicker", {"symbol": "NOPEUSDT"}, -1121),
        ("/fapi/v1/klines", {"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1s"}, -1120),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "60"}, -1120),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT"}, -1102),
        ("/fapi/v1/klines", {"interval": "1m"}, -1102),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, -1100),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1501"}, -1100),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1100),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "yesterday"}, -1100),
    ]
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        for path, params, code in cases:
            status, body = await get(session, base + path, **params)
            assert status == 400 and set(body) == {"code", "msg"} and body["code"] == code, (path, params, body)
            if code == -1121:
                assert body["msg"] == "Invalid symbol."
            if code == -1102:
                missing = "interval" if "symbol" in params else "symbol"
                assert f"'{missing}'" in body["msg"]
        ws = await session.ws_connect(base.replace("http", "ws") + "/public/ws")
        await ws.send_json({"method": "SUBSCRIBE", "params": ["nopeusdt@trade"], "id": 9})
        error = await ws.receive_json(timeout=5)
        assert error["id"] == 9 and "unknown stream" in error["error"]["msg"]
        await ws.close()
