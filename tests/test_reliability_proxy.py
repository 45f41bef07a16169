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
import sys
import time
from itertools import pairwise

import pytest

from services.executor import facts as f
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.executor_process import (
    Signals,
    executor_env,
    facts_written,
    finish,
    kill,
    positions,
    taken_one,
    venue_losses,
)
from tests.figures import figure
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


async def test_8_latency_resets_and_dead_links_to_redis_and_the_venue_lose_no_event(settings, r, tmp_path):
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    sim = SimServer(SYMBOLS, seed=9, step_ms=10, api_keys={key: secret})
    log_path = tmp_path / "executor.log"
    redis_host, redis_port = settings.redis_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    async with serve_app(sim.app()) as base:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": SYMBOLS})
        to_redis, to_venue = TcpProxy(redis_host, int(redis_port)), TcpProxy("127.0.0.1", settings.sim_port)
        via_redis, via_venue = await to_redis.start(), await to_venue.start()
        events = settings.redis_key_prefix + "strategy:events"
        db = settings.redis_url.rsplit("/", 1)[1]
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", SYMBOLS).run(stop))
        executor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "executor", "--mode", "synthetic", stderr=log_path.open("ab"),
            env=executor_env(settings, via_venue, f"redis://127.0.0.1:{via_redis}/{db}", SYNTHETIC_HOLD_S="0.5"))
        signals, phases = Signals(r, settings, "x"), []

        async def phase(name: str, seconds: float, bad, good=None) -> None:
            phases.append(name)
            bad()
            await signals.keep_on(seconds)
            if good is not None:
                good()
            await signals.keep_on(1.5)  # and after it, back to normal

        def latency(proxy: TcpProxy, ms: float):
            return lambda: setattr(proxy, "latency_ms", ms)

        try:
            started = time.monotonic()
            while not await taken_one(r, events):  # up and trading
                assert time.monotonic() - started < 40, log_path.read_text()[-3000:]
                await signals.keep_on(0.4)
            first_ms = int((await r.xrange(events, count=1))[0][0].split(b"-")[0])
            for name, proxy in (("venue", to_venue), ("redis", to_redis)):
                await phase(f"{name} +500 ms", 4.0, latency(proxy, 500), latency(proxy, 0))
                await phase(f"{name} reset", 0.0, proxy.reset)
                await phase(f"{name} dead 6 s", 6.0, proxy.hold, proxy.release)
            last_signal_ms = time.time_ns() // 1_000_000
            await finish(executor, r, events, log_path, timeout_s=40)
        finally:
            stop.set()
            await feed
            await kill(executor)
            await to_redis.close()
            await to_venue.close()
    entries = await r.xrange(events)
    facts = [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in entries]
    stamps = [s for s in (int(i.split(b"-")[0]) for i, _ in entries) if first_ms <= s <= last_signal_ms]
    stall_s = max(b - a for a, b in pairwise(stamps)) / 1000
    written = facts_written(log_path.read_text())
    lost = max(0, written - len(facts)) + len(venue_losses(facts, sim))
    naked = positions(sim)
    taken = sum(isinstance(x, f.SignalTaken) for x in facts)
    figure(8, f"executor's links to Redis and the venue through a proxy ({'; '.join(phases)}), {taken} trades, "
           f"{to_redis.resets + to_venue.resets} connections reset: events lost / positions left",
           f"{lost} of {written:,} / {len(naked)}", "0 / 0", not (lost or naked))
    figure(8, "longest stall: strategy:events without a fact while signals kept coming", f"{stall_s:.1f} s",
           "reported", True)
    assert lost == 0 and naked == {}
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    assert to_redis.resets and to_venue.resets, "the resets cut nothing"
