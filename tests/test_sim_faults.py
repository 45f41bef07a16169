"""Faults the simulator injects, each observed from a client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import aiohttp
import pytest
from typer.testing import CliRunner

from services.cli import app
from services.ingestor.service import Ingestor
from services.sim.faults import FaultError, Faults
from services.sim.server import SimServer
from tests.conftest import hosts_at, serve_app

KEY, SECRET = "k", "s"


def test_fault_settings_are_validated_all_or_nothing():
    faults = Faults()
    faults.apply({"latency_ms": 20, "reject_next": 2})
    assert (faults.latency_ms, faults.reject_next) == (20, 2)
    with pytest.raises(FaultError, match="latncy_ms: Extra inputs are not permitted"):
        faults.apply({"latncy_ms": 5})
    with pytest.raises(FaultError, match="jitter_ms: Input should be greater than or equal to 0"):
        faults.apply({"latency_ms": 99, "jitter_ms": -1})
    assert faults.latency_ms == 20  # nothing of a refused change was applied
    with pytest.raises(FaultError, match="partial_fill_fraction: Input should be less than 1"):
        faults.apply({"partial_fill_fraction": 1.5})
    with pytest.raises(FaultError, match="rate_limit_per_s: Input should be greater than or equal to 1"):
        faults.apply({"rate_limit_per_s": 0})
    with pytest.raises(FaultError, match=r"reject_link_ids: .*not a regular expression"):
        faults.apply({"reject_link_ids": "E2(("})
    faults.apply({"reject_link_ids": "E2$", "reject_code": 110007})
    assert faults.rejects_link_id("t1-SE2") == (110007, "Server error") and faults.rejects_link_id("t1-LE1") is None


@pytest.fixture
async def sim(request):
    clock = getattr(request, "param", time.time)
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=3, step_ms=10, clock=clock, api_keys={KEY: SECRET})
    async with serve_app(server.app()) as base, aiohttp.ClientSession(base) as session:
        yield server, session, base


async def signed_get(session, path: str, query: str, timestamp_ms: int) -> dict:
    sign = hmac.new(SECRET.encode(), f"{timestamp_ms}{KEY}5000{query}".encode(), hashlib.sha256).hexdigest()
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": str(timestamp_ms), "X-BAPI-RECV-WINDOW": "5000",
               "X-BAPI-SIGN": sign}
    async with session.get(f"{path}?{query}", headers=headers) as response:
        return await response.json()


async def test_admin_endpoint_changes_faults_and_refuses_bad_ones(sim):
    _, session, _ = sim
    async with session.post("/admin/faults", json={"reject_next": 1, "reject_code": 10016}) as response:
        assert response.status == 200 and (await response.json())["reject_next"] == 1
    async with session.post("/admin/faults", json={"drop_ws_every": 5}) as response:
        assert response.status == 400 and "drop_ws_every: Extra inputs" in (await response.json())["error"]
    async with session.get("/admin/faults") as response:
        assert (await response.json())["reject_code"] == 10016


async def test_next_k_signed_requests_are_rejected_with_the_given_code(sim):
    server, session, _ = sim
    server.faults.apply({"reject_next": 2, "reject_code": 10016, "reject_message": "Server error"})
    codes = [(await signed_get(session, "/v5/account/fee-rate", "category=linear", int(time.time() * 1000)))["retCode"]
             for _ in range(3)]
    assert codes == [10016, 10016, 0]


@pytest.mark.parametrize("sim", [lambda: 1_800_000_000.0], indirect=True)
async def test_a_skewed_exchange_clock_shows_in_server_time_and_in_timestamp_checks(sim):
    server, session, _ = sim
    server.faults.apply({"clock_skew_ms": 7000})
    async with session.get("/v5/market/time") as response:
        body = await response.json()
    assert body["result"]["timeSecond"] == str(1_800_000_007) and body["time"] == 1_800_000_007_000
    answer = await signed_get(session, "/v5/account/fee-rate", "category=linear", 1_800_000_000_000)
    assert answer["retCode"] == 10002  # our clock is now 7 s behind the exchange's


async def test_rest_latency_delays_answers(sim):
    server, session, _ = sim
    server.faults.apply({"latency_ms": 150})
    start = time.perf_counter()
    async with session.get("/v5/market/time") as response:
        assert response.status == 200
    assert time.perf_counter() - start >= 0.15


async def test_the_ingestor_rides_out_dropped_connections(settings, r, sim):
    """Seed scenario 6 against the simulator: drops on demand and on a timer, the ingestor
    reconnects and resubscribes, the books stay gap-free."""
    server, session, base = sim
    settings = settings.model_copy(update={"venue_hosts": {"bybit": hosts_at(base)},
                                           "symbols_to_trade": ["BTCUSDT", "ETHUSDT"]})
    ingestor = Ingestor(settings, "bybit", ["BTCUSDT", "ETHUSDT"])
    stop = asyncio.Event()
    task = asyncio.ensure_future(ingestor.run(stop, report_every_s=3600))

    async def until(condition):
        async with asyncio.timeout(15):
            while not condition():
                await asyncio.sleep(0.02)

    await until(lambda: ingestor.sessions["linear"].subscribed and ingestor.feed_stats.events > 50)
    async with session.post("/admin/drop") as response:
        assert (await response.json())["dropped"] == 1
    await until(lambda: ingestor.sessions["linear"].connects == 2 and ingestor.sessions["linear"].subscribed)
    server.faults.apply({"drop_ws_every_s": 0.3})
    await until(lambda: ingestor.sessions["linear"].connects >= 4)
    events = ingestor.feed_stats.events
    await until(lambda: ingestor.feed_stats.events > events + 50)
    stop.set()
    report = await task
    assert report.parse_errors == 0 and report.gaps == 0 and report.dropped == 0
    assert report.pushed + report.superseded == report.events


def test_cli_refuses_a_bad_faults_file(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text('{"latency_ms": -5}')
    result = CliRunner().invoke(app, ["sim", "--faults", str(path), "--duration", "0"])
    assert result.exit_code == 2 and f"--faults {path}: latency_ms: Input should be greater" in result.output
    result = CliRunner().invoke(app, ["sim", "--faults", str(tmp_path / "missing.json"), "--duration", "0"])
    assert result.exit_code == 2 and "No such file" in result.output


def test_sim_refuses_kline_files_it_cannot_replay(tmp_path):
    missing = tmp_path / "BTCUSDT_1m.csv"
    result = CliRunner().invoke(app, ["sim", "--klines", str(missing), "--duration", "0"])
    assert result.exit_code == 2 and f"--klines: {missing}: No such file" in result.output
    other = tmp_path / "XRPUSDT_1m.csv"
    other.write_text("timestamp,open,high,low,close\n2025-05-30 16:39:00+00:00,1,2,0.5,1.5\n")
    result = CliRunner().invoke(app, ["sim", "--symbols", "BTCUSDT", "--klines", str(other), "--duration", "0"])
    assert result.exit_code == 2 and "--klines: XRPUSDT not among --symbols BTCUSDT" in result.output


async def test_websocket_latency_delays_frames_without_throttling_them(sim):
    """40 ms on every frame: frames arrive late but at the market's own pace and in order."""
    from picows import WSListener, WSMsgType, ws_connect

    server, _, base = sim
    server.faults.apply({"latency_ms": 40})

    class Recorder(WSListener):
        def __init__(self):
            self.frames: list[tuple[float, dict]] = []

        def on_ws_frame(self, transport, frame):
            if frame.msg_type == WSMsgType.TEXT:
                import json

                self.frames.append((time.perf_counter(), json.loads(frame.get_payload_as_bytes())))

    sent = time.perf_counter()
    transport, rec = await ws_connect(Recorder, base.replace("http", "ws") + "/v5/public/linear")
    transport.send(WSMsgType.TEXT, b'{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
    async with asyncio.timeout(10):
        while len(rec.frames) < 60:
            await asyncio.sleep(0.01)
    transport.disconnect()
    assert rec.frames[0][0] - sent >= 0.04  # the ack came no sooner than the latency
    books = [m for _, m in rec.frames if m.get("topic")]
    assert [m["data"]["u"] for m in books] == list(range(books[0]["data"]["u"], books[0]["data"]["u"] + len(books)))
    span = rec.frames[-1][0] - rec.frames[1][0]
    # one latency per frame, one after another, would take 0.04 s x frames (2.4 s here);
    # delayed at the market's own pace it takes well under that
    assert span < 0.75 * 0.04 * len(rec.frames)
