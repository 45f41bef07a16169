"""`arb strategy` end to end through a real Redis: the simulator, ingestors, the latency
monitor and the strategy service; a forced opportunity becomes a signal within 2 s."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from services.ingestor.service import Ingestor
from services.latency.service import LatencyMonitor
from services.sim.server import SimServer
from services.strategy.service import StrategyService
from tests.conftest import serve_app

pytestmark = pytest.mark.redis


async def wait_for(condition, timeout_s: float = 15.0):
    async with asyncio.timeout(timeout_s):
        while not (result := await condition()):
            await asyncio.sleep(0.05)
        return result


async def test_a_forced_opportunity_becomes_a_signal_within_two_seconds(settings, r):
    server = SimServer(["BTCUSDT"], seed=11, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        # The dashboard scorer: the confluence scorer also wants the market's own metrics (VWAP
        # stretch, book imbalance ...) to agree, which a forced price gap alone does not give.
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["BTCUSDT"],
                                               "latency_poll_ms": 100, "strategy_scorer": "dashboard"})
        stop = asyncio.Event()
        services = [Ingestor(settings, v, ["BTCUSDT"]) for v in ("bybit", "binance")]
        monitor = LatencyMonitor(settings, ["bybit", "binance"])
        strategy = StrategyService(settings, "cross")
        tasks = [asyncio.ensure_future(s.run(stop)) for s in (*services, monitor, strategy)]
        signals = settings.redis_key_prefix + "strategy:signals"
        try:
            await wait_for(lambda: _ready(strategy))
            assert await r.xlen(signals) == 0  # the quiet market offers nothing
            async with http.post(f"{base}/admin/opportunity", json={
                    "symbol": "BTCUSDT", "venue": "binance", "spread_bps": 100, "funding_delta": 0.005,
                    "seconds": 30}) as response:
                assert response.status == 200
            forced = time.monotonic()
            entries = await wait_for(lambda: r.xrange(signals), timeout_s=5)
            elapsed = time.monotonic() - forced
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    _, fields = entries[0]
    signal = {k.decode(): v.decode() for k, v in fields.items()}
    assert elapsed < 2.0, elapsed
    assert (signal["symbol"], signal["long_venue"], signal["short_venue"]) == ("BTCUSDT", "bybit", "binance")
    assert float(signal["spread_bps"]) > 40 and int(signal["confidence"]) >= 70
    assert float(signal["projected_profit_after_slippage_usd"]) > 0 and signal["mode"] == "cross"
    latest = await r.get(settings.redis_key_prefix + "strategy:opportunities:latest")
    if latest:  # the once-a-second ranking may not have run yet after the signal
        top = json.loads((await r.lrange(latest, 0, 0))[0])
        assert top["symbol"] == "BTCUSDT"
    assert strategy.counts["bad_entries"] == 0 and strategy.rejections  # quiet scans counted their reasons


async def _ready(strategy: StrategyService) -> bool:
    """Both venues quoted and judged fresh by the latency monitor."""
    state = strategy.core.state.by_symbol.get("BTCUSDT", {})
    return len(state) == 2 and strategy.core.stale == {"binance": False, "bybit": False}
