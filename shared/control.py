"""Health keys and operator commands, shared by every worker and the CLI.

- **Health.** Each worker sets `health:{service}` (JSON: pid, started and written times) every
  `HEARTBEAT_S` with a TTL of `HEALTH_TTL_S`; `arb check <service>` (docker compose's health
  check) succeeds while the key exists. A worker that hangs or dies lets it expire.
- **Commands.** `arb stop --emergency` and `arb resume` append to the stream
  `strategy:control`, which the executor reads with its consumer group (so a command given
  while it is down is carried out when it starts) and turns into the facts `TradingHalted`
  and `TradingResumed`; the strategy reads those facts and stops or resumes its signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.settings import Settings

log = logging.getLogger("arb.control")
HEARTBEAT_S = 1.0
HEALTH_TTL_S = 5


def health_key(settings: Settings, service: str) -> str:
    return f"{settings.redis_key_prefix}health:{service}"


def _client(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                   decode_responses=True)


async def heartbeat(settings: Settings, service: str, stop: asyncio.Event) -> None:
    """Keep `health:{service}` alive until `stop`; delete it on the way out."""
    client, key = _client(settings), health_key(settings, service)
    started_ms, failing = int(time.time() * 1000), False
    try:
        while not stop.is_set():
            value = json.dumps({"pid": os.getpid(), "started_ms": started_ms, "ts_ms": int(time.time() * 1000)})
            try:
                await client.set(key, value, ex=HEALTH_TTL_S)
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("health key %s not written: %s", key, exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_S)
        with contextlib.suppress(RedisError, OSError):
            await client.delete(key)
    finally:
        await client.aclose()


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
