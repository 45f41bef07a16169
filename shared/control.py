"""Health keys and operator commands, shared by every worker and the CLI.

- **Health.** Each worker sets `health:{service}` (JSON: pid, started and written times) every
  `HEARTBEAT_S` with a TTL of `HEALTH_TTL_S`; `arb check <service>` (docker compose's health
  check) succeeds while the key exists. A worker that hangs or dies lets it expire.
- **Metrics snapshots.** Every 5 s and at the stop, each worker's metrics (what Prometheus
  scrapes) go to `metrics:{service}` as JSON, so `arb report` can summarise a running or
  finished system from Redis alone.
- **Commands.** `arb stop --emergency` and `arb resume` append to the stream
  `strategy:control`, which the executor reads with its consumer group (so a command given
  while it is down is carried out when it starts) and turns into the facts `TradingHalted`
  and `TradingResumed`; the strategy reads those facts and stops or resumes its signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from shared import redis_io
from shared.metrics import snapshot
from shared.settings import Settings

log = logging.getLogger("arb.control")
HEARTBEAT_S = 1.0
HEALTH_TTL_S = 5
SNAPSHOT_EVERY = 5  # beats between metrics snapshots


def health_key(settings: Settings, service: str) -> str:
    return f"{settings.redis_key_prefix}health:{service}"


def _client(settings: Settings) -> aioredis.Redis:
    return redis_io.client(settings, socket_timeout=5, socket_connect_timeout=5,
                                   decode_responses=True)


async def heartbeat(settings: Settings, service: str, stop: asyncio.Event, register=None,
                    ready: asyncio.Event | None = None) -> None:
    """Keep `health:{service}` alive until `stop`; delete it on the way out. With `register`
    (a service's `register_metrics`), its metrics go to `metrics:{service}` every
    SNAPSHOT_EVERY beats and once more at the stop, for `arb report`. With `ready` (set once the
    service takes work: the executor after its replay and reconcile), the record says whether it
    is, and is written again the moment it becomes so: `arb up` starts the strategy only then."""
    client, key = _client(settings), health_key(settings, service)
    started_ms, failing = int(time.time() * 1000), False
    registry = None
    if register is not None:
        registry = CollectorRegistry()
        register(registry)
    try:
        for beat in itertools.count():
            if stop.is_set():
                break
            record = {"pid": os.getpid(), "started_ms": started_ms, "ts_ms": int(time.time() * 1000)}
            if ready is not None:
                record["ready"] = ready.is_set()
            value = json.dumps(record)
            try:
                await client.set(key, value, ex=HEALTH_TTL_S)
                if registry is not None and beat % SNAPSHOT_EVERY == 0:
                    await _snapshot(client, settings, service, registry)
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("health key %s not written: %s", key, exc)
                failing = True
            waits = [stop.wait()] + ([ready.wait()] if ready is not None and not record["ready"] else [])
            tasks = [asyncio.ensure_future(w) for w in waits]
            await asyncio.wait(tasks, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        with contextlib.suppress(RedisError, OSError):
            await client.delete(key)
            if registry is not None:
                await _snapshot(client, settings, service, registry)
    finally:
        await client.aclose()


async def _snapshot(client: aioredis.Redis, settings: Settings, service: str, registry: CollectorRegistry) -> None:
    data = {"ts_ms": int(time.time() * 1000), "pid": os.getpid(), "families": snapshot(registry)}
    await client.set(metrics_key(settings, service), json.dumps(data, allow_nan=True))


def metrics_key(settings: Settings, service: str) -> str:
    return f"{settings.redis_key_prefix}metrics:{service}"


async def health(settings: Settings, service: str) -> dict | None:
    """The service's health record, or None when it has none (down, hung, or never started)."""
    client = _client(settings)
    try:
        value = await client.get(health_key(settings, service))
    finally:
        await client.aclose()
    return json.loads(value) if value else None


async def send(settings: Settings, command: str, **fields: str) -> str:
    """Append an operator command to the control stream; its entry id."""
    client = _client(settings)
    try:
        return await client.xadd(settings.redis_key_prefix + settings.stream_control,
                                 {"command": command, "ts_ms": str(int(time.time() * 1000)), **fields})
    finally:
        await client.aclose()
