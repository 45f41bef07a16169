"""Reliability item 8: a TCP proxy (tests/tcp_proxy.py) between the executor and Redis, and
another between the executor and the venue, while it trades live on the simulator: 500 ms of
latency on each, a reset of every connection on each, and a link that carries nothing for
longer than the clients' timeouts (6 s) on each, one after the other.

Figures: events lost = 0 (facts the executor counted as written that strategy:events lacks,
orders at the venue without their fact, fills at the venue the facts lack), no position left
at the venue, and the longest stall: the longest time strategy:events went without a fact
while signals kept coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from decimal import Decimal
from itertools import pairwise

import pytest

from services.executor import facts as f
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.figures import figure
from tests.tcp_proxy import TcpProxy
from tests.test_reliability_redis_kill import _all_closed, _taken_one, _written
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


async def test_8_latency_resets_and_dead_links_to_redis_and_the_venue_lose_no_event(settings, r, tmp_path):
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    sim = SimServer(SYMBOLS, seed=9, step_ms=10, api_keys={key: secret})
    log_path = tmp_path / "executor.log"
    redis_host, redis_port = settings.redis_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    async with serve_app(sim.app()) as base:
        sim_port = int(base.rsplit(":", 1)[1])
        to_redis, to_venue = TcpProxy(redis_host, int(redis_port)), TcpProxy("127.0.0.1", sim_port)
        via_redis, via_venue = await to_redis.start(), await to_venue.start()
        settings = settings.model_copy(update={"sim_port": sim_port, "symbols_to_trade": SYMBOLS})
        p = settings.redis_key_prefix
        signals, events = p + "strategy:signals", p + "strategy:events"
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{via_redis}/{settings.redis_url.rsplit('/', 1)[1]}",
               "REDIS_KEY_PREFIX": p, "VENUE_ENV": "sim", "SIM_PORT": str(via_venue),
               "SYMBOLS_TO_TRADE": ",".join(SYMBOLS), "EXECUTION": "live", "SYNTHETIC_HOLD_S": "0.5",
               "SIM_API_KEY": key, "SIM_API_SECRET": secret, "LOG_LEVEL": "INFO", "SAFETY_MAX_FAILURES": "0",
               "SAFETY_MIN_SUCCESS_RATE": "0", "SAFETY_MAX_P99_MS": "0", "SAFETY_MAX_API_ERRORS": "0"}
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        executor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", env=env,
            stderr=log_path.open("ab"))
        n, phases = 0, []

        async def signals_for(seconds: float) -> None:
            nonlocal n
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                await r.xadd(signals, {"id": f"x{n}", "mode": "synthetic", "symbol": SYMBOLS[n % 2],
                                       "long_venue": "bybit", "short_venue": "bybit_synthetic", "spread_bps": "50",
                                       "funding_delta_8h": "0.01", "confidence": "80", "depth_long_usd": "200000",
                                       "depth_short_usd": "200000", "created_ms": str(time.time_ns() // 1_000_000)})
                n += 1
                await asyncio.sleep(0.2)

        async def phase(name: str, seconds: float, bad, good=None) -> None:
            phases.append(name)
            bad()
            await signals_for(seconds)
            if good is not None:
                good()
            await signals_for(1.5)  # and after it, back to normal

        def latency(proxy: TcpProxy, ms: float):
            return lambda: setattr(proxy, "latency_ms", ms)

        try:
            started = time.monotonic()
            while not await _taken_one(r, events):  # up and trading
                assert time.monotonic() - started < 40, log_path.read_text()[-3000:]
                await signals_for(0.4)
            first_ms = int((await r.xrange(events, count=1))[0][0].split(b"-")[0])
            for name, proxy in (("venue", to_venue), ("redis", to_redis)):
                await phase(f"{name} +500 ms", 4.0, latency(proxy, 500), latency(proxy, 0))
                await phase(f"{name} reset", 0.0, proxy.reset)
                await phase(f"{name} dead 6 s", 6.0, proxy.hold, proxy.release)
            last_signal_ms = time.time_ns() // 1_000_000
            with contextlib.suppress(TimeoutError):
                await wait_for(lambda: _all_closed(r, events), timeout_s=40)
            executor.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(executor.wait(), 40) == 0, log_path.read_text()[-3000:]
        finally:
            stop.set()
            await feed
            if executor.returncode is None:
                executor.kill()
                await executor.wait()
            await to_redis.close()
            await to_venue.close()
    entries = await r.xrange(events)
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in entries]
    stamps = [int(i.split(b"-")[0]) for i, _ in entries]
    stamps = [s for s in stamps if first_ms <= s <= last_signal_ms]
    stall_s = max(b - a for a, b in pairwise(stamps)) / 1000
    account = sim.matching.account(key)
    placed = {x.link_id for x in facts if isinstance(x, f.OrderPlaced)}
    fills: dict[str, Decimal] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            fills[x.link_id] = fills.get(x.link_id, Decimal(0)) + x.qty
    lot = {s: sim.model.states[s].inst.lot for s in SYMBOLS}
    lost = [o.link_id for o in account.orders.values() if o.link_id not in placed
            or fills.get(o.link_id, Decimal(0)) != o.filled_lots * lot[o.symbol]]
    written = _written(log_path.read_text())
    lost_count = max(0, written - len(facts)) + len(lost)
    naked = {k: pos.lots for k, pos in account.positions.items() if pos.lots}
    taken = sum(isinstance(x, f.SignalTaken) for x in facts)
    figure(8, f"executor's links to Redis and the venue through a proxy ({'; '.join(phases)}), {taken} trades, "
           f"{to_redis.resets + to_venue.resets} connections reset: events lost / positions left",
           f"{lost_count} of {written:,} / {len(naked)}", "0 / 0", not (lost_count or naked))
    figure(8, "longest stall: strategy:events without a fact while signals kept coming", f"{stall_s:.1f} s",
           "reported", True)
    assert lost_count == 0 and naked == {}
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    assert to_redis.resets and to_venue.resets, "the resets cut nothing"
