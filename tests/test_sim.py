"""The simulator's Bybit V5 public stream: real message shapes, continuity, the server."""

from __future__ import annotations

import asyncio
import itertools
import json

import msgspec
import pytest
from picows import WSListener, WSMsgType, ws_connect

from services.ingestor.service import Ingestor
from services.sim.bybit_public import BybitPublicFrames
from services.sim.market import MarketModel, ModelConfig
from services.sim.server import SimServer
from shared.events import BookUpdate, Ticker
from shared.feed import Resync
from shared.venues.bybit.parser import Parser as BybitPublicParser
from tests.conftest import BYBIT_SAMPLES, hosts_at, serve_app, shape

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TOPICS = [f"{k}.{s}" for s in SYMBOLS for k in ("tickers", "orderbook.1", "orderbook.50", "orderbook.200",
                                                  "publicTrade", "allLiquidation")]


def sample(name: str) -> dict:
    return json.loads((BYBIT_SAMPLES / name).read_text())


def run_model(steps: int, seed: int = 7, config: ModelConfig | None = None) -> tuple[BybitPublicFrames, list[bytes]]:
    model = MarketModel(SYMBOLS, seed=seed, config=config or ModelConfig(), start_ms=1_800_000_000_000)
    frames = BybitPublicFrames(model)
    out = [f for t in TOPICS for f in frames.snapshot(t)]
    for i in range(1, steps + 1):
        model.step(1_800_000_000_000 + 20 * i)
        for topic_frames in frames.step_frames(set(TOPICS)).values():
            out += topic_frames
    return frames, out


def first(frames: list[bytes], prefix: str, kind: str | None = None) -> dict:
    for f in frames:
        msg = json.loads(f)
        if msg["topic"].startswith(prefix) and (kind is None or msg["type"] == kind):
            return msg
    raise AssertionError(f"no {prefix} {kind} frame")


def test_each_topic_is_pushed_at_bybits_cadence_and_a_frame_carries_every_change_since_the_last():
    from services.sim.bybit_public import PUSH_MS

    start = 1_800_000_000_000
    model = MarketModel(SYMBOLS, seed=7, config=ModelConfig(), start_ms=start)
    frames = BybitPublicFrames(model)
    times: dict[str, list[int]] = {}
    held: dict[str, dict] = {}

    def record(topic: str, frame: bytes) -> None:
        msg = json.loads(frame)
        times.setdefault(topic, []).append(msg["ts"])
        if topic.startswith("tickers."):
            held.setdefault(topic, {}).update(msg["data"])
            # a client applying the frames holds what the simulator shows at that moment
            assert held[topic] == frames.ticker_fields(model.states[topic.split(".")[1]])

    for topic in TOPICS:
        for frame in frames.snapshot(topic):
            record(topic, frame)
    for i in range(1, 1001):  # 20 s of 20 ms steps
        model.step(start + 20 * i)
        for topic, out in frames.step_frames(set(TOPICS)).items():
            for frame in out:
                record(topic, frame)
    for topic, sent in times.items():
        kind = topic.rsplit(".", 1)[0]
        if kind in PUSH_MS:
            gaps = [b - a for a, b in itertools.pairwise(sent)]
            assert gaps and min(gaps) >= PUSH_MS[kind], topic
    assert max(len(times[f"tickers.{s}"]) for s in SYMBOLS) <= 20_000 // 100 + 1  # 10 a second at most


def test_frames_have_the_shapes_of_the_real_samples():
    _, frames = run_model(500, config=ModelConfig(liquidations_per_s=2.0))
    real_ticker = sample("ws_linear_tickers_snapshot.json")
    ticker = first(frames, "tickers.", "snapshot")
    assert shape(ticker) == shape(real_ticker)
    delta = first(frames, "tickers.", "delta")
    assert set(delta) == set(sample("ws_linear_tickers_delta.json"))
    assert set(delta["data"]) <= set(real_ticker["data"]) and "symbol" in delta["data"]
    assert all(isinstance(v, str) for v in delta["data"].values())
    for kind in ("snapshot", "delta"):
        real = sample(f"ws_linear_orderbook200_{kind}.json")
        assert shape(first(frames, "orderbook.200.", kind)) == shape(real)
    real_trades = sample("ws_linear_publicTrade.json")
    assert shape(first(frames, "publicTrade.")) == shape(real_trades)
    liquidation = first(frames, "allLiquidation.")
    assert set(liquidation) == {"topic", "type", "ts", "data"}
    assert shape(liquidation["data"][0]) == {"T": "int", "s": "str", "S": "str", "v": "str", "p": "str"}


def test_the_stream_parses_with_no_error_and_no_gap():
    _, frames = run_model(1000)
    parser = BybitPublicParser(book_levels=25)
    out = [item for f in frames for item in parser.feed(f, 0)]
    assert parser.stats.error_count == 0, parser.stats.errors
    assert parser.stats.gaps == 0 and not [i for i in out if isinstance(i, Resync)]
    books = [b for b in out if isinstance(b, BookUpdate)]
    assert books and all(b.bids[0][0] < b.asks[0][0] for b in books)  # never crossed
    tickers = [t for t in out if isinstance(t, Ticker)]
    assert tickers and all(t.bid < t.ask for t in tickers)
    assert parser.stats.events > 1000


def test_book_update_ids_rise_by_one_per_topic():
    _, frames = run_model(300)
    last: dict[str, int] = {}
    for f in frames:
        msg = json.loads(f)
        if msg["topic"].startswith("orderbook."):
            u = msg["data"]["u"]
            assert msg["topic"] not in last or u == last[msg["topic"]] + 1
            last[msg["topic"]] = u
    assert len(last) == 6


def test_the_same_seed_replays_the_same_market():
    assert run_model(200, seed=3)[1] == run_model(200, seed=3)[1]
    assert run_model(200, seed=3)[1] != run_model(200, seed=4)[1]


def test_numbers_sit_on_the_instrument_grid():
    _, frames = run_model(200)
    for f in frames:
        msg = json.loads(f)
        if msg["topic"] == "orderbook.200.BTCUSDT":
            for price, size in msg["data"]["b"] + msg["data"]["a"]:
                assert len(price.split(".")[1]) == 2 and price.endswith("0")  # tick 0.10, shown as Bybit does
                assert len(size.split(".")[1]) == 3  # lot 0.001


@pytest.fixture
async def sim_url():
    async with serve_app(SimServer(SYMBOLS, seed=5, step_ms=10).app()) as base:
        yield base.replace("http", "ws") + "/v5/public/linear"


class Recorder(WSListener):
    def __init__(self):
        self.messages: list[dict] = []
        self.arrived = asyncio.Event()

    def on_ws_frame(self, transport, frame):
        if frame.msg_type == WSMsgType.TEXT:
            self.messages.append(msgspec.json.decode(frame.get_payload_as_bytes()))
            self.arrived.set()


async def exchange(url: str, *requests: dict, until) -> list[dict]:
    transport, rec = await ws_connect(Recorder, url)
    for request in requests:
        transport.send(WSMsgType.TEXT, json.dumps(request).encode())
    async with asyncio.timeout(10):
        while not until(rec.messages):
            rec.arrived.clear()
            await rec.arrived.wait()
    transport.disconnect()
    return rec.messages


async def test_server_acks_pongs_and_refuses_unknown_topics_like_bybit(sim_url):
    real_ack = sample("ws_linear_subscribe_ack.json")
    got = await exchange(sim_url, {"req_id": "a1", "op": "subscribe", "args": ["tickers.BTCUSDT"]},
                         {"req_id": "p1", "op": "ping"},
                         {"req_id": "b1", "op": "subscribe", "args": ["tickers.NOPEUSDT"]},
                         until=lambda m: len([x for x in m if "op" in x]) >= 3)
    acks = {m.get("req_id"): m for m in got if "op" in m}
    assert shape(acks["a1"]) == shape(real_ack) and acks["a1"]["success"] is True
    assert acks["p1"]["ret_msg"] == "pong" and acks["p1"]["op"] == "ping"
    assert acks["b1"]["success"] is False and acks["b1"]["ret_msg"] == "error:handler not found,topic:tickers.NOPEUSDT"
    snapshot = next(m for m in got if m.get("topic") == "tickers.BTCUSDT")
    assert snapshot["type"] == "snapshot"  # the snapshot comes before any delta


async def test_ingestor_runs_against_the_simulator(settings, r, sim_url):
    settings = settings.model_copy(update={"venue_hosts": {"bybit": hosts_at(sim_url)}, "symbols_to_trade": SYMBOLS})
    ingestor = Ingestor(settings, "bybit", SYMBOLS)
    stop = asyncio.Event()
    task = asyncio.ensure_future(ingestor.run(stop, report_every_s=3600))
    streams = settings.md_streams()
    async with asyncio.timeout(15):
        while await r.xlen(streams["trade"]) < 20 or await r.xlen(streams["book"]) < 50:
            await asyncio.sleep(0.05)
    stop.set()
    report = await task
    assert report.parse_errors == 0 and report.gaps == 0 and report.dropped == 0
    stored = await r.hgetall(settings.redis_key_prefix + "bybit:linear:tickers:ETHUSDT")
    assert float(stored[b"bid"]) < float(stored[b"ask"])


def test_sim_on_a_taken_port_exits_2_with_a_clear_message(taken_port):
    from typer.testing import CliRunner

    from services.cli import app

    result = CliRunner().invoke(app, ["sim", "--port", str(taken_port), "--duration", "1"])
    assert result.exit_code == 2
    assert f"--port {taken_port}: cannot listen on 127.0.0.1" in result.output
    assert "address already in use" in result.output


# --- REST ---------------------------------------------------------------------------------

@pytest.fixture
async def sim_http():
    """A simulator whose clock the test moves, with 20 simulated minutes already run."""
    clock = [1_800_000_000.0]
    server = SimServer(SYMBOLS, seed=9, step_ms=10_000_000, clock=lambda: clock[0])
    for _ in range(240):
        clock[0] += 5.0
        server.step()
    import aiohttp

    async with serve_app(server.app()) as base, aiohttp.ClientSession(base) as session:
        async def get(path: str, **params) -> dict:
            async with session.get(path, params=params) as response:
                assert response.status == 200
                return await response.json()
        yield get


def real_rest(description_start: str) -> dict:
    entries = json.loads((BYBIT_SAMPLES / "ccxtrec_rest_market_tickers_orderbook_trades.json").read_text())
    return next(e["response"] for e in entries if e["_ccxt_description"].startswith(description_start))


async def test_rest_envelope_and_market_shapes_match_bybit(sim_http):
    get = sim_http
    time_doc = sample("docexample_rest_market_time.json")
    assert shape(await get("/v5/market/time")) == shape(time_doc)

    tickers = await get("/v5/market/tickers", category="linear", symbol="BTCUSDT")
    assert set(tickers) == {"retCode", "retMsg", "result", "retExtInfo", "time"} and tickers["retCode"] == 0
    real_item = real_rest("swap ticker")["result"]["list"][0]
    [item] = tickers["result"]["list"]
    assert set(real_item) <= set(item) and all(isinstance(v, str) for v in item.values())

    book = (await get("/v5/market/orderbook", category="linear", symbol="ETHUSDT", limit="5"))["result"]
    assert set(book) == {"s", "b", "a", "ts", "u", "seq", "cts"} and len(book["b"]) == len(book["a"]) == 5
    assert float(book["b"][0][0]) < float(book["a"][0][0])

    real_info = json.loads((BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json").read_text())
    info = (await get("/v5/market/instruments-info", category="linear", symbol="BTCUSDT"))["result"]
    assert shape(info["list"][0]) == shape(real_info["result"]["list"][0])
    assert info["list"][0]["priceFilter"]["tickSize"] == "0.10" and info["list"][0]["lotSizeFilter"]["qtyStep"] == "0.001"


async def test_kline_is_newest_first_and_consistent(sim_http):
    get = sim_http
    bars = (await get("/v5/market/kline", category="linear", symbol="BTCUSDT", interval="1", limit="5"))["result"]["list"]
    assert len(bars) == 5 and all(len(b) == 7 and all(isinstance(x, str) for x in b) for b in bars)
    starts = [int(b[0]) for b in bars]
    assert starts == sorted(starts, reverse=True) and all(s % 60_000 == 0 for s in starts)
    for _, o, h, low, c, _, _ in bars:
        assert float(low) <= min(float(o), float(c)) <= max(float(o), float(c)) <= float(h)
    five = (await get("/v5/market/kline", category="linear", symbol="BTCUSDT", interval="5"))["result"]["list"]
    assert all(int(b[0]) % 300_000 == 0 for b in five) and 4 <= len(five) <= 5


async def test_categories_the_simulator_does_not_trade_answer_as_empty_ones(sim_http):
    get = sim_http
    for category in ("spot", "inverse", "option"):
        for path, params in (("/v5/market/tickers", {}), ("/v5/market/instruments-info", {}),
                             ("/v5/market/kline", {"symbol": "BTCUSDT", "interval": "1"}),
                             ("/v5/market/funding/history", {"symbol": "BTCUSDT"})):
            answer = await get(path, category=category, **params)
            assert (answer["retCode"], answer["result"]["category"], answer["result"]["list"]) == (0, category, [])
        book = (await get("/v5/market/orderbook", category=category, symbol="BTCUSDT"))
        assert book["retCode"] == 0 and (book["result"]["s"], book["result"]["b"], book["result"]["a"]) == (
            "BTCUSDT", [], [])
    # the linear book's default depth is 25 levels (and the simulated book is deeper than that)
    assert len((await get("/v5/market/orderbook", category="linear", symbol="BTCUSDT"))["result"]["b"]) == 25


async def test_kline_defaults_to_linear_and_folds_weeks_from_monday_and_months(sim_http):
    from datetime import UTC, datetime

    get = sim_http
    plain = (await get("/v5/market/kline", symbol="BTCUSDT", interval="1"))["result"]
    assert plain["category"] == "linear" and plain["list"]
    for interval, start_of in (("W", lambda d: d.weekday() == 0), ("M", lambda d: d.day == 1)):
        [bar, *_] = (await get("/v5/market/kline", category="linear", symbol="BTCUSDT", interval=interval))["result"]["list"]
        opened = datetime.fromtimestamp(int(bar[0]) / 1000, UTC)
        assert start_of(opened) and (opened.hour, opened.minute) == (0, 0)
        ones = (await get("/v5/market/kline", symbol="BTCUSDT", interval="1", limit="1000"))["result"]["list"]
        assert float(bar[2]) == max(float(b[2]) for b in ones if int(b[0]) >= int(bar[0]))


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/v5/market/tickers", {}, "params error: category is required"),
        ("/v5/market/tickers", {"category": "linear", "symbol": "NOPEUSDT"}, "params error: symbol invalid"),
        ("/v5/market/orderbook", {"category": "linear"}, "params error: symbol is required"),
        ("/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT", "limit": "0"}, "params error: limit"),
        ("/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "7"}, "params error: interval"),
        ("/v5/market/funding/history", {"category": "linear", "symbol": "BTCUSDT", "startTime": "1"},
         "params error: startTime cannot be passed without endTime"),
        ("/v5/market/tickers", {"category": "futures"}, "params error: category futures is invalid"),
        ("/v5/market/orderbook", {"category": "option", "symbol": "BTC-1JAN27-1-C", "limit": "26"},
         "params error: limit must be an integer in [1, 25]"),
        ("/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT", "limit": "1001"}, "params error: limit"),
        ("/v5/market/kline", {"symbol": "BTCUSDT", "interval": "2"}, "params error: interval"),
        ("/v5/market/instruments-info", {"category": "linear", "limit": "1001"}, "params error: limit"),
        ("/v5/market/instruments-info", {"category": "linear", "cursor": "NOPEUSDT"}, "params error: cursor invalid"),
    ],
)
async def test_bad_parameters_answer_10001_with_a_reason(sim_http, path, params, message):
    get = sim_http
    answer = await get(path, **params)
    assert answer["retCode"] == 10001 and answer["retMsg"].startswith(message) and answer["result"] == {}


def test_funding_settles_at_funding_times():
    model = MarketModel(["BTCUSDT"], seed=2, start_ms=8 * 3_600_000 - 2_000)
    for i in range(1, 5):
        model.step(8 * 3_600_000 - 2_000 + 1_000 * i)
    assert [t for t, _ in model.states["BTCUSDT"].fundings] == [8 * 3_600_000]
