"""The simulator's other venues: Binance USD-M, OKX and Bitget market data in the shapes of
their real messages, their sync rules, correlated prices, and the opportunity knob."""

from __future__ import annotations

import json

import aiohttp
import pytest

from services.sim.binance_public import BinanceDialect
from services.sim.bitget_public import BitgetDialect, checksum
from services.sim.market import MarketModel
from services.sim.okx_public import OkxDialect, ct_val
from services.sim.replay import ReplayError, load_klines
from services.sim.server import SimServer
from tests.conftest import SAMPLES, SHARED, serve_app, shape, spread_openings

T0 = 1_800_000_000_000
STEP_MS = 20


def real(venue: str, name: str) -> dict:
    return json.loads((SAMPLES / venue / name).read_text())


def run(dialect_type, topics: list[str], steps: int, seed: int = 4) -> tuple[object, list[dict]]:
    """Subscribe `topics` on a fresh model and step it; every frame, decoded."""
    model = MarketModel(["BTCUSDT", "DOGEUSDT"], seed=seed, start_ms=T0)
    dialect = dialect_type(model)
    frames = [f for t in topics for f in dialect.snapshot(t)]
    for i in range(1, steps + 1):
        model.step(T0 + STEP_MS * i)
        for out in dialect.step_frames(set(topics)).values():
            frames += out
    return dialect, [json.loads(f) for f in frames]


def test_binance_frames_have_the_real_shapes():
    topics = ["btcusdt@bookTicker", "btcusdt@depth@100ms", "btcusdt@aggTrade", "btcusdt@markPrice@1s"]
    _, frames = run(BinanceDialect, topics, 200)
    by_event = {f["e"]: f for f in frames}
    for event, sample in [("bookTicker", real("binance", "ws_usdm_bookTicker_2021_combined.json")["data"]),
                          ("depthUpdate", real("binance", "ws_usdm_depthUpdate_100ms_2021_combined.json")["data"]),
                          ("aggTrade", real("binance", "ws_usdm_aggTrade_2021_combined.json")["data"]),
                          ("markPriceUpdate", real("binance", "docexample_ws_usdm_markPrice.json"))]:
        assert shape(by_event[event]) == shape(sample), event


def test_binance_depth_syncs_from_the_rest_snapshot_as_documented():
    model = MarketModel(["BTCUSDT"], seed=9, start_ms=T0)
    dialect = BinanceDialect(model)
    topic = "btcusdt@depth@100ms"
    buffered = []
    dialect.step_frames({topic})  # the stream starts
    snapshot = None
    for i in range(1, 120):
        model.step(T0 + STEP_MS * i)
        emitted = [json.loads(f) for f in dialect.step_frames({topic}).get(topic, [])]
        if emitted:
            buffered += emitted
            at_last_event = dialect.rest()["/fapi/v1/depth"]({"symbol": "BTCUSDT", "limit": "50"})[1]
        if i == 30:
            _, snapshot = dialect.rest()["/fapi/v1/depth"]({"symbol": "BTCUSDT", "limit": "50"})
    book = {"b": {p: q for p, q in snapshot["bids"]}, "a": {p: q for p, q in snapshot["asks"]}}
    events = [e for e in buffered if e["u"] >= snapshot["lastUpdateId"]]
    assert events[0]["U"] <= snapshot["lastUpdateId"] + 1 <= events[0]["u"] + 1
    previous = None
    for event in events:
        assert previous is None or event["pu"] == previous
        previous = event["u"]
        for side in ("b", "a"):
            for price, qty in event[side]:
                if qty == "0":
                    book[side].pop(price, None)
                else:
                    book[side][price] = qty
    assert at_last_event["lastUpdateId"] == previous
    assert book["b"] == dict(at_last_event["bids"]) and book["a"] == dict(at_last_event["asks"])


def test_okx_frames_have_the_real_shapes_and_sizes_in_contracts():
    topics = ["tickers:BTC-USDT-SWAP", "funding-rate:BTC-USDT-SWAP", "trades:BTC-USDT-SWAP",
              "books5:DOGE-USDT-SWAP"]
    dialect, frames = run(OkxDialect, topics, 200)
    by_channel = {f["arg"]["channel"]: f for f in frames}
    assert shape(by_channel["tickers"]) == shape(real("okx", "ws_tickers_swap_2022.json"))
    assert shape(by_channel["trades"]) == shape(real("okx", "ws_trades_swap_2022.json"))
    assert shape(by_channel["funding-rate"]) == shape(real("okx", "docexample_ws_funding_rate.json"))
    level = by_channel["books5"]["data"][0]["bids"][0]
    assert len(level) == 4 and all(isinstance(x, str) for x in level)
    state = dialect.model.states["DOGEUSDT"]
    bids, _ = dialect.quote(state, 5)
    best = max(bids)
    assert float(level[1]) * float(ct_val("DOGEUSDT")) == pytest.approx(float(state.inst.lot * bids[best]))


def test_bitget_frames_have_the_real_shapes_and_book_checksums_hold():
    topics = ["ticker:BTCUSDT", "books5:BTCUSDT", "books:BTCUSDT"]
    _, frames = run(BitgetDialect, topics, 300)
    ticker = next(f for f in frames if f["arg"]["channel"] == "ticker")
    assert shape(ticker) == shape(real("bitget", "ccxtcomment_v2_ws_ticker_usdt_futures.json"))
    books5 = next(f for f in frames if f["arg"]["channel"] == "books5")
    assert shape(books5["data"]) == shape(real("bitget", "ccxtcomment_v2_ws_books5_spot.json")["data"])
    book: dict[str, dict[float, list[str]]] = {"bids": {}, "asks": {}}
    updates = [f for f in frames if f["arg"]["channel"] == "books"]
    assert updates[0]["action"] == "snapshot" and {f["action"] for f in updates[1:]} == {"update"}
    for message in updates:
        data = message["data"][0]
        for side in ("bids", "asks"):
            for price, size in data[side]:
                if size == "0":
                    book[side].pop(float(price), None)
                else:
                    book[side][float(price)] = [price, size]
        bids = [book["bids"][p] for p in sorted(book["bids"], reverse=True)]
        asks = [book["asks"][p] for p in sorted(book["asks"])]
        assert checksum(bids, asks) == data["checksum"]


def test_cross_venue_spreads_come_and_go():
    """Over two simulated hours Binance's mid strays 20 bps or more from Bybit's now and then,
    not most of the time, and never for long."""
    runs, wide, longest = spread_openings(seed=2)
    assert 2 <= runs <= 60
    assert wide < 0.1
    assert longest < 300


async def test_four_venues_stream_at_once_and_the_opportunity_knob_moves_one():
    server = SimServer(["BTCUSDT"], seed=6, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        ws_base = base.replace("http", "ws")
        bybit = await session.ws_connect(f"{ws_base}/v5/public/linear")
        await bybit.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        binance = await session.ws_connect(f"{ws_base}/public/stream?streams=btcusdt@bookTicker")
        okx = await session.ws_connect(f"{ws_base}/ws/v5/public")
        await okx.send_json({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT-SWAP"}]})
        bitget = await session.ws_connect(f"{ws_base}/v2/ws/public")
        await bitget.send_json({"op": "subscribe", "args": [{"instType": "USDT-FUTURES", "channel": "ticker",
                                                             "instId": "BTCUSDT"}]})
        assert (await okx.receive_json(timeout=5))["event"] == "subscribe"
        assert (await bitget.receive_json(timeout=5))["event"] == "subscribe"
        assert (await bybit.receive_json(timeout=5))["success"] is True
        assert (await bybit.receive_json(timeout=5))["type"] == "snapshot"
        assert "data" in await okx.receive_json(timeout=5)
        assert (await bitget.receive_json(timeout=5))["action"] == "snapshot"

        async with session.post(f"{base}/admin/opportunity", json={"symbol": "BTCUSDT", "venue": "binance",
                                                                    "spread_bps": 40, "seconds": 30}) as response:
            assert response.status == 200
        wanted = server.model.states["BTCUSDT"].mid * 0.1 * 1.004
        for _ in range(200):  # frames queued before the knob still arrive first
            tick = (await binance.receive_json(timeout=5))["data"]
            if abs((float(tick["b"]) + float(tick["a"])) / 2 / wanted - 1) < 0.0005:
                break
        else:
            raise AssertionError("Binance never moved 40 bps above Bybit")
        async with session.post(f"{base}/admin/opportunity", json={"symbol": "BTCUSDT", "venue": "kraken",
                                                                    "spread_bps": 40}) as response:
            assert response.status == 400 and "kraken" in (await response.json())["error"]
        for ws in (bybit, binance, okx, bitget):
            await ws.close()


async def test_venue_protocol_errors_are_answered_in_each_venues_words():
    server = SimServer(["BTCUSDT"], seed=6, step_ms=10_000_000)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        ws_base = base.replace("http", "ws")
        binance = await session.ws_connect(f"{ws_base}/market/ws")
        await binance.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 7})
        error = await binance.receive_json(timeout=5)
        assert error["id"] == 7 and "unknown stream" in error["error"]["msg"]  # depth lives on /public
        okx = await session.ws_connect(f"{ws_base}/ws/v5/public")
        await okx.send_str("ping")
        assert await okx.receive_str(timeout=5) == "pong"
        await okx.send_json({"op": "subscribe", "args": [{"channel": "tickers", "instId": "NOPE-USDT-SWAP"}]})
        assert (await okx.receive_json(timeout=5))["code"] == "60018"
        async with session.get(f"{base}/fapi/v1/depth?symbol=NOPE") as response:
            assert response.status == 400 and (await response.json())["code"] == -1121
        async with session.get(f"{base}/fapi/v1/depth?symbol=BTCUSDT&limit=7") as response:
            assert response.status == 400 and (await response.json())["code"] == -1100
        async with session.get(f"{base}/api/v5/public/instruments?instType=PERP") as response:
            assert (await response.json())["code"] == "51000"  # not an instType of OKX's
        bitget = await session.ws_connect(f"{ws_base}/v2/ws/public")
        await bitget.send_json({"op": "subscribe", "args": [{"instType": "SPOT", "channel": "ticker",
                                                             "instId": "BTCUSDT"}]})
        assert (await bitget.receive_json(timeout=5))["code"] == 30001
        await bitget.close()
        async with session.post(f"{base}/admin/opportunity", json={"symbol": "BTCUSDT", "venue": "okx",
                                                                    "spread_bps": 5000}) as response:
            assert response.status == 400 and "spread_bps" in (await response.json())["error"]
        async with session.get(f"{base}/api/v5/public/time") as response:
            assert (await response.json())["data"][0]["ts"].isdigit()
        async with session.get(f"{base}/api/v2/public/time") as response:
            assert (await response.json())["code"] == "00000"
        await binance.close()
        await okx.close()


def test_a_kline_file_drives_the_mid_through_its_recorded_prices(tmp_path):
    path = SHARED / "market-data" / "bybit" / "klines_1m" / "BTCUSDT_1m_2025-05-30_2025-06-29.csv"
    klines = load_klines(path)
    assert klines.symbol == "BTCUSDT" and klines.prices[0] == 104217.5
    model = MarketModel(["BTCUSDT"], seed=1, start_ms=T0, paths={"BTCUSDT": klines}, speed=60.0)
    state = model.states["BTCUSDT"]
    model.step(T0 + 1000)  # one second at 60x: the end of the first minute, its close
    assert float(state.inst.tick) * state.mid == pytest.approx(104337.8)
    assert max(state.bids) < state.mid <= min(state.asks)  # the book straddles the replayed price
    bad = tmp_path / "BTCUSDT_bad.csv"
    bad.write_text("timestamp,open,high,low,close\n2025-05-30 16:39:00+00:00,10,9,8,9\n")
    with pytest.raises(ReplayError, match=r"BTCUSDT_bad.csv:2: .*low <= open"):
        load_klines(bad)
