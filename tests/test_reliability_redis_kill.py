"""Reliability item 2: SIGKILL redis-server 10 times while the executor trades live on the
simulator, restarting it each time from its AOF, with `appendfsync always` and `everysec`.

The executor (its own process) and a Bybit ingestor ride through each outage: facts that
cannot be written are held, and no order goes out before its fact is written. Figures:
acknowledged events lost = the facts the executor counted as written (their MULTI/EXEC
answered OK) that strategy:events does not hold after the last restart, plus orders at the
venue without their fact; the replay of the facts equals the read models.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.executor import facts as f
from services.executor.rebuild import rebuild
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import free_port, serve_app
from tests.figures import figure
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
KILLS = 10


def _redis(port: int, data: Path, fsync: str) -> subprocess.Popen:
    return subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir",
                             str(data), "--appendonly", "yes", "--appendfsync", fsync, "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _up(client: aioredis.Redis) -> bool:
    try:
        return await client.ping()
    except (RedisError, OSError):
        return False


@pytest.mark.parametrize("fsync", ["always", "everysec"])
async def test_2_redis_killed_10_times_loses_no_acknowledged_event(settings, tmp_path, fsync):
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server to kill")
    port, data = free_port(), tmp_path / "redis"
    data.mkdir()
    server_proc = _redis(port, data, fsync)
    url = f"redis://127.0.0.1:{port}/0"
    r = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    await wait_for(lambda: _up(r))
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    sim = SimServer(SYMBOLS, seed=6, step_ms=10, api_keys={key: secret})
    log_path = tmp_path / "executor.log"
    async with serve_app(sim.app()) as base:
        sim_port = base.rsplit(":", 1)[1]
        settings = settings.model_copy(update={"redis_url": url, "sim_port": int(sim_port), "symbols_to_trade": SYMBOLS})
        p = settings.redis_key_prefix
        signals, events = p + "strategy:signals", p + "strategy:events"
        env = {**os.environ, "REDIS_URL": url, "REDIS_KEY_PREFIX": p, "VENUE_ENV": "sim", "SIM_PORT": sim_port,
               "SYMBOLS_TO_TRADE": ",".join(SYMBOLS), "EXECUTION": "live", "SYNTHETIC_HOLD_S": "0.5",
               "SIM_API_KEY": key, "SIM_API_SECRET": secret, "LOG_LEVEL": "INFO", "SAFETY_MAX_FAILURES": "0",
               "SAFETY_MIN_SUCCESS_RATE": "0", "SAFETY_MAX_P99_MS": "0", "SAFETY_MAX_API_ERRORS": "0"}
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        executor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", env=env,
            stderr=log_path.open("ab"))
        n, sent_while_down, outages = 0, 0, []

        async def signals_for(seconds: float) -> None:
            nonlocal n, sent_while_down
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                try:
                    await r.xadd(signals, {"id": f"k{n}", "mode": "synthetic", "symbol": SYMBOLS[n % 2],
                                           "long_venue": "bybit", "short_venue": "bybit_synthetic", "spread_bps": "50",
                                           "funding_delta_8h": "0.01", "confidence": "80",
                                           "depth_long_usd": "200000", "depth_short_usd": "200000",
                                           "created_ms": str(time.time_ns() // 1_000_000)})
                    n += 1
                except (RedisError, OSError):
                    sent_while_down += 1
                await asyncio.sleep(0.2)

        try:
            started = time.monotonic()
            while not await _taken_one(r, events):  # the executor is up and trading
                assert time.monotonic() - started < 40, log_path.read_text()[-3000:]
                await signals_for(0.4)
            for _ in range(KILLS):
                await signals_for(1.5)
                server_proc.send_signal(signal.SIGKILL)
                server_proc.wait()
                down = time.monotonic()
                await asyncio.sleep(0.5)
                server_proc = _redis(port, data, fsync)
                await wait_for(lambda: _up(r), timeout_s=20)
                outages.append(time.monotonic() - down)
            await signals_for(2.0)
            with contextlib.suppress(TimeoutError):
                await wait_for(lambda: _all_closed(r, events), timeout_s=30)
            executor.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(executor.wait(), 40) == 0, log_path.read_text()[-3000:]
        finally:
            stop.set()
            await feed
            if executor.returncode is None:
                executor.kill()
                await executor.wait()
        facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
                 for _, fields in await r.xrange(events)]
        written = _written(log_path.read_text())
        differences = (await rebuild(settings, "synthetic", write=False)).differences
        await r.aclose()
        server_proc.terminate()
        server_proc.wait()
    placed = {x.link_id for x in facts if isinstance(x, f.OrderPlaced)}
    orphans = [o.link_id for o in sim.matching.account(key).orders.values() if o.link_id not in placed]
    lost = max(0, written - len(facts)) + len(orphans)
    taken = sum(isinstance(x, f.SignalTaken) for x in facts)
    figure(2, f"redis-server SIGKILLed {KILLS} times (appendfsync {fsync}; outages {min(outages):.1f}-"
           f"{max(outages):.1f} s) over {taken} trades: acknowledged events lost / read models != replay",
           f"{lost} of {written:,} / {len(differences)}", "0 / 0", lost == 0 and not differences)
    assert taken >= KILLS, "too few trades to mean anything"
    assert lost == 0 and differences == []
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    assert {k: pos.lots for k, pos in sim.matching.account(key).positions.items() if pos.lots} == {}


async def _taken_one(r, events: str) -> bool:
    return any(fields.get(b"type") == b"signal_taken" for _, fields in await r.xrange(events))


async def _all_closed(r, events: str) -> bool:
    try:
        facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
                 for _, fields in await r.xrange(events)]
    except (RedisError, OSError):
        return False
    taken = {x.trade_id for x in facts if isinstance(x, f.SignalTaken)}
    return bool(taken) and taken == {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}


def _written(log: str) -> int:
    """The facts the executor counted as written (its last line says so)."""
    found = re.findall(r"executor stopped: \{.*'facts': (\d+)", log)
    assert found, log[-2000:]
    return int(found[-1])
