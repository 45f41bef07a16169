"""The simulator's Bybit V5 public stream: real message shapes, continuity, the server."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from aiohttp import web
from picows import WSListener, WSMsgType, ws_connect

from services.ingestor.service import Ingestor
from services.sim.bybit_public import BybitPublicFrames
from services.sim.market import MarketModel, ModelConfig
from services.sim.server import SimServer
from shared.events import BookUpdate, Ticker
from shared.feed import Resync
from shared.venues.bybit.parser import BybitPublicParser
from tests.conftest import BYBIT_SAMPLES

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TOPICS = [f"{k}.{s}" for s in SYMBOLS for k in ("tickers", "orderbook.1", "orderbook.50", "orderbook.200",
                                                  "publicTrade", "allLiquidation")]


def sample(name: str) -> dict:
    return json.loads((BYBIT_SAMPLES / name).read_text())


def shape(value):
    """Keys and value types, recursively: what 'the same shape as the real message' means."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def run_model(steps: int, seed: int = 7, config: ModelConfig | None = None) -> tuple[BybitPublicFrames, list[bytes]]:
    model = MarketModel(SYMBOLS, seed=seed, config=config or ModelConfig(), start_ms=1_800_000_000_000)
    frames = BybitPublicFrames(model)
    out = [frames.snapshot(t) for t in TOPICS]
    for i in range(1, steps + 1):
        model.step(1_800_000_000_000 + 20 * i)
        for topic_frames in frames.step_frames(set(TOPICS)).values():
            out += topic_frames
    return frames, [f for f in out if f is not None]


def first(frames: list[bytes], prefix: str, kind: str | None = None) -> dict:
    for f in frames:
        msg = json.loads(f)
        if msg["topic"].startswith(prefix) and (kind is None or msg["type"] == kind):
            return msg
    raise AssertionError(f"no {prefix} {kind} frame")


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
    server = SimServer(SYMBOLS, seed=5, step_ms=10)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"ws://127.0.0.1:{port}/v5/public/linear"
    await runner.cleanup()


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
    settings = settings.model_copy(update={"bybit_ws_public_url": sim_url, "symbols_to_trade": SYMBOLS})
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


def test_sim_on_a_taken_port_exits_2_with_a_clear_message():
    import socket

    from typer.testing import CliRunner

    from services.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["sim", "--port", str(port), "--duration", "1"])
    assert result.exit_code == 2
    assert f"--port {port}: cannot listen on 127.0.0.1" in result.output and "address already in use" in result.output
