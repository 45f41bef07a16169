"""The exchange latency monitor: the rolling window's rules, and the monitor against the
simulator flagging venues whose clock is skewed or whose answers are delayed."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from services.latency.service import LatencyMonitor
from services.sim.server import SimServer
from shared.latency import LatencyWindow
from tests.conftest import serve_app

pytestmark = pytest.mark.redis


def test_latency_is_receipt_minus_server_time_averaged_over_the_window():
    window = LatencyWindow("okx", window_ms=10_000, stale_ms=200)
    window.add(local_ms=1_000, server_ms=900, rtt_ms=4)
    window.add(local_ms=2_000, server_ms=1_850, rtt_ms=6)
    state = window.state(now_ms=2_000)
    assert (state.latency_ms, state.last_latency_ms, state.rtt_ms, state.samples) == (125.0, 150.0, 5.0, 2)
    assert not state.is_stale and state.server_time_ms == 1_850
    window.add(local_ms=3_000, server_ms=2_500, rtt_ms=5)  # one slow answer lifts the average past 200
    assert window.state(3_000).is_stale and window.violations == 1
    assert window.state(3_000).reason == "average latency 250 ms is beyond 200 ms"
    later = window.state(12_500)  # the first two samples have left the window: the slow one is alone
    assert (later.samples, later.latency_ms, later.is_stale) == (1, 500.0, True)


def test_a_clock_ahead_is_as_stale_as_a_slow_link_and_silence_is_stale():
    window = LatencyWindow("binance", window_ms=1_000, stale_ms=200)
    window.add(local_ms=1_000, server_ms=1_300, rtt_ms=2)  # the venue's clock runs 300 ms ahead
    assert window.state(1_000).is_stale and window.state(1_000).latency_ms == -300.0
    window.failed("GET http://x/fapi/v1/time: TimeoutError")
    empty = window.state(5_000)
    assert empty.is_stale and empty.latency_ms is None and empty.errors == 1
    assert empty.reason == "no server time in 1s: GET http://x/fapi/v1/time: TimeoutError"
    assert "latency_ms" not in empty.fields() and empty.fields()["is_stale"] == "1"


async def until(condition, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_the_monitor_flags_skewed_clocks_and_delayed_answers(settings, r):
    server = SimServer(["BTCUSDT"], seed=3, step_ms=10)
    async with serve_app(server.app()) as base:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "latency_window_s": 0.5,
                                               "latency_poll_ms": 50})
        monitor = LatencyMonitor(settings, ["bybit", "okx", "bitget", "binance"])
        assert monitor.interval_s("okx") == 0.2  # OKX allows 10 time requests per 2 s
        stop = asyncio.Event()
        task = asyncio.ensure_future(monitor.run(stop))
        states = monitor.states

        def all_(stale: bool) -> bool:
            return len(states) == 4 and all(s.is_stale is stale and s.samples > 0 for s in states.values())

        try:
            await until(lambda: all_(False))
            assert all(abs(s.latency_ms) < 50 for s in states.values())
            server.faults.clock_skew_ms = 600  # the exchange's clock runs ahead
            await until(lambda: all_(True))
            assert all(s.latency_ms < -200 for s in states.values())
            server.faults.clock_skew_ms = 0
            await until(lambda: all_(False))
            server.faults.latency_ms = 300  # answers stamped, then 300 ms on the way
            await until(lambda: all_(True))
            assert all(s.latency_ms > 200 and s.rtt_ms > 200 for s in states.values())
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
    stored = await r.hgetall(settings.redis_key_prefix + "strategy:latency:okx")
    assert stored[b"exchange"] == b"okx" and stored[b"is_stale"] == b"1" and float(stored[b"latency_ms"]) > 200
    registry = CollectorRegistry()
    monitor.register_metrics(registry)
    assert registry.get_sample_value("arb_exchange_stale", {"venue": "okx"}) == 1.0
    assert registry.get_sample_value("arb_exchange_latency_violations_total", {"venue": "bitget"}) > 0


async def test_an_unreachable_venue_is_stale_with_the_reason(settings, taken_port):
    settings = settings.model_copy(update={"venue_hosts": {"okx": (f"http://127.0.0.1:{taken_port}", "ws://x")},
                                           "latency_window_s": 0.3, "latency_poll_ms": 50})
    monitor = LatencyMonitor(settings, ["okx"])
    stop = asyncio.Event()
    task = asyncio.ensure_future(monitor.run(stop))
    try:
        await until(lambda: "okx" in monitor.states and monitor.states["okx"].errors >= 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    state = monitor.states["okx"]
    assert state.is_stale and state.reason.startswith("no server time in 0.3s: GET http://127.0.0.1:")
