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
from tests.executor_process import (
    Signals,
    executor_env,
    facts_of,
    facts_written,
    finish,
    kill,
    positions,
    taken_one,
    venue_losses,
)
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
        settings = settings.model_copy(update={"redis_url": url, "sim_port": int(base.rsplit(":", 1)[1]),
                                               "symbols_to_trade": SYMBOLS})
        events = settings.redis_key_prefix + "strategy:events"
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        executor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic",
            env=executor_env(settings, settings.sim_port, SYNTHETIC_HOLD_S="0.5"), stderr=log_path.open("ab"))
        signals, outages = Signals(r, settings, "k"), []
        try:
            started = time.monotonic()
            while not await taken_one(r, events):  # the executor is up and trading
                assert time.monotonic() - started < 40, log_path.read_text()[-3000:]
                await signals.keep_on(0.4)
            for _ in range(KILLS):
                await signals.keep_on(1.5)
                server_proc.send_signal(signal.SIGKILL)
                server_proc.wait()
                down = time.monotonic()
                await asyncio.sleep(0.5)
                server_proc = _redis(port, data, fsync)
                await wait_for(lambda: _up(r), timeout_s=20)
                outages.append(time.monotonic() - down)
            await signals.keep_on(2.0)
            await finish(executor, r, events, log_path)
        finally:
            stop.set()
            await feed
            await kill(executor)
        facts = await facts_of(r, events)
        written = facts_written(log_path.read_text())
        differences = (await rebuild(settings, "synthetic", write=False)).differences
        await r.aclose()
        server_proc.terminate()
        server_proc.wait()
    lost = max(0, written - len(facts)) + len(venue_losses(facts, sim))
    taken = sum(isinstance(x, f.SignalTaken) for x in facts)
    figure(2, f"redis-server SIGKILLed {KILLS} times (appendfsync {fsync}; outages {min(outages):.1f}-"
           f"{max(outages):.1f} s) over {taken} trades: acknowledged events lost / read models != replay",
           f"{lost} of {written:,} / {len(differences)}", "0 / 0", lost == 0 and not differences)
    assert taken >= KILLS, "too few trades to mean anything"
    assert lost == 0 and differences == []
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    assert positions(sim) == {}
