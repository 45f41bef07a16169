"""A backtest is a replay: the md:* streams recorded while the simulator forces a cross-venue
opportunity, then replayed through the live strategy and executor cores on the recording's
clock (the same facts on every run), and fed back into the streams."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

import aiohttp
import pytest

from services.backtest.recording import record, replay_into_streams
from services.backtest.replay import RecordingError, read_recording, run
from services.executor import facts as f
from services.executor.service import exec_config
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from services.strategy.scanner import ScanConfig
from services.strategy.signals import SignalGate
from tests.conftest import serve_app
from tests.test_strategy_service import wait_for

pytestmark = pytest.mark.redis


def _replay(settings, path):
    grids, events, skipped = read_recording(path)
    result = run(events, grids, exec_config(settings, "cross"),
                 ScanConfig(position_usd=float(settings.estimated_position_size), scorer="dashboard"), SignalGate(60_000, 30_000))
    return result, skipped[0]


@pytest.mark.slow
async def test_a_recording_replays_through_the_live_cores_to_the_same_facts(settings, r, tmp_path):
    server = SimServer(["BTCUSDT"], seed=11, step_ms=10)
    path = tmp_path / "rec.jsonl"
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={
            "sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["BTCUSDT"],
            "executor_venues": ["bybit", "binance"], "strategy_scorer": "dashboard"})
        stop, stop_recording = asyncio.Event(), asyncio.Event()
        feeds = [asyncio.ensure_future(Ingestor(settings, v, ["BTCUSDT"]).run(stop)) for v in ("bybit", "binance")]
        async with http.post(f"{base}/admin/opportunity", json={  # open for the whole recording
                "symbol": "BTCUSDT", "venue": "binance", "spread_bps": 100, "funding_delta": 0.005,
                "seconds": 60}) as response:
            assert response.status == 200
        recording = asyncio.ensure_future(record(settings, path, stop_recording))
        try:
            await wait_for(lambda: _lines(path, 3_000), timeout_s=30)
        finally:
            stop_recording.set()
            n = await recording
            stop.set()
            await asyncio.gather(*feeds)

    grids, _, _ = read_recording(path)
    assert ("binance", "BTCUSDT") in grids and ("bybit", "BTCUSDT") in grids
    first, skipped = _replay(settings, path)
    second, _ = _replay(settings, path)
    assert first.events == n and skipped == 0
    assert [f.to_fields(x) for x in first.facts] == [f.to_fields(x) for x in second.facts]  # deterministic
    taken = [x for x in first.facts if isinstance(x, f.SignalTaken)]
    assert taken and taken[0].short_venue == "binance"  # the forced opportunity was traded
    p = first.core.portfolio
    assert not first.core.trades and p.closed_trades + p.rejected_trades == len(taken)  # all closed at the end
    assert p.available + p.open_exposure == p.starting_capital + p.cumulative_pnl
    trades = first.backtest()  # the shape the results take: the same money, split
    assert sum((t.pnl_usd for t in trades.trades), D(0)) == p.cumulative_pnl == trades.equity[-1][1]
    assert all(t.pnl_usd == t.price_pnl_usd - t.fees_usd + t.funding_usd for t in trades.trades)

    before = await r.xlen(settings.md_streams()["book"])
    written = await replay_into_streams(settings, path, 0, asyncio.Event())
    assert written == n
    assert await r.xlen(settings.md_streams()["book"]) > before


async def _lines(path, n: int) -> bool:
    return path.exists() and path.read_text().count("\n") >= n


def test_a_file_that_is_not_a_recording_is_refused_and_a_cut_line_skipped(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\n")
    with pytest.raises(RecordingError, match=r"bad\.jsonl:1: not a recording"):
        read_recording(bad)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(json.dumps({"grids": {}}) + "\n" + '{"fields": {"v": "1", "type": "tick' + "\n")
    _, events, skipped = read_recording(cut)
    assert list(events) == [] and skipped == [1]
