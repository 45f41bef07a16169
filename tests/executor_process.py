"""The executor as its own process, trading live (synthetic) at the simulator's Bybit: what the
reliability tests that kill, starve or cut it share. Its settings, a writer of synthetic
signals that carries on while Redis is down, its orderly stop, and the checks of what it left
against what the venue holds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from decimal import Decimal
from pathlib import Path

from redis.exceptions import RedisError

from services.executor import facts as f
from tests.live_venue import SAFETY_OFF
from tests.test_strategy_service import wait_for


def executor_env(settings, sim_port: int | str, redis_url: str | None = None, **more: str) -> dict[str, str]:
    """The environment of `arb executor --mode synthetic`, live at the simulator, with the safety
    stops off (the tests cause failures on purpose; tests/test_executor_safety.py checks them)."""
    env = {**os.environ, "REDIS_URL": redis_url or settings.redis_url, "REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "VENUE_ENV": "sim", "SIM_PORT": str(sim_port), "SYMBOLS_TO_TRADE": ",".join(settings.symbols_to_trade),
           "EXECUTION": "live", "SIM_API_KEY": settings.sim_api_key,
           "SIM_API_SECRET": settings.sim_api_secret.get_secret_value(), "LOG_LEVEL": "INFO",
           **{k.upper(): str(v) for k, v in SAFETY_OFF.items()}}
    return env | more


class Signals:
    """Synthetic signals, one every `every_s` over the symbols in turn; a write Redis refuses
    is skipped and counted (`skipped`)."""

    def __init__(self, r, settings, tag: str, every_s: float = 0.2) -> None:
        self.r, self.stream, self.tag, self.every_s = r, settings.redis_key_prefix + "strategy:signals", tag, every_s
        self.symbols = list(settings.symbols_to_trade)
        self.n = self.skipped = 0

    async def once(self) -> None:
        try:
            await self.r.xadd(self.stream, {
                "id": f"{self.tag}{self.n}", "mode": "synthetic", "symbol": self.symbols[self.n % len(self.symbols)],
                "long_venue": "bybit", "short_venue": "bybit_synthetic", "spread_bps": "50", "funding_delta_8h": "0.01",
                "confidence": "80", "depth_long_usd": "200000", "depth_short_usd": "200000",
                "created_ms": str(time.time_ns() // 1_000_000)})
            self.n += 1
        except (RedisError, OSError):
            self.skipped += 1

    async def keep_on(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await self.once()
            await asyncio.sleep(self.every_s)


async def facts_of(r, events: str) -> list:
    return [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in await r.xrange(events)]


async def all_closed(r, events: str) -> bool:
    """Every trade taken is closed (False while Redis cannot say)."""
    try:
        facts = await facts_of(r, events)
    except (RedisError, OSError):
        return False
    taken = {x.trade_id for x in facts if isinstance(x, f.SignalTaken)}
    return bool(taken) and taken == {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}


async def taken_one(r, events: str) -> bool:
    return any(fields.get(b"type") == b"signal_taken" for _, fields in await r.xrange(events))


async def finish(proc, r, events: str, log: Path, timeout_s: float = 30) -> None:
    """Let the open trades close (the checks afterwards say what did not), then SIGTERM: the
    executor closes the rest and must exit 0."""
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: all_closed(r, events), timeout_s=timeout_s)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 40) == 0, log.read_text()[-3000:]


async def kill(proc) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def venue_losses(facts: list, sim) -> list[str]:
    """Orders at the venue whose fact is missing, or whose fills the facts do not hold exactly."""
    placed = {x.link_id for x in facts if isinstance(x, f.OrderPlaced)}
    fills: dict[str, Decimal] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            fills[x.link_id] = fills.get(x.link_id, Decimal(0)) + x.qty
    account = sim.matching.account(next(iter(sim.gate.secrets)))
    return [o.link_id for o in account.orders.values() if o.link_id not in placed
            or fills.get(o.link_id, Decimal(0)) != o.filled_lots * sim.model.states[o.symbol].inst.lot]


def positions(sim) -> dict:
    """Every position the executor's account holds at the venue: {} when flat."""
    account = sim.matching.account(next(iter(sim.gate.secrets)))
    return {k: p.lots for k, p in account.positions.items() if p.lots}


def facts_written(log: str) -> int:
    """The facts the executor counted as written (their MULTI/EXEC answered OK): its closing line."""
    found = re.findall(r"executor stopped: \{.*'facts': (\d+)", log)
    assert found, log[-2000:]
    return int(found[-1])
