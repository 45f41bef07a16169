"""Which keys of a Redis are this system's: what `arb up --fresh` deletes, and what `arb up`
counts as somebody else's data when it shares a Redis (every other key is left alone).

They are, under REDIS_KEY_PREFIX: the market-data streams (`md:*`), everything the strategy
and the executor write (`strategy:*`), each venue's ticker snapshots (`bybit:linear:tickers:*`
...), and the health keys and metrics snapshots of this system's own workers by name
(`health:executor`, `metrics:ingest-bybit`, `health:strategy-0` ... of the shards' strategy
workers: the names alone, since `health:*` is a name other programs use too).
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import redis.asyncio as aioredis

from shared.settings import Settings
from shared.venues import NAMES, venue

WORKERS = ("executor", "strategy", "latency", "sim", *(f"ingest-{name}" for name in NAMES))


def patterns(settings: Settings) -> list[str]:
    """Glob patterns (after the prefix) that together match every key this system writes."""
    streams = {name.split(":", 1)[0] for name in (
        settings.stream_tickers, settings.stream_books, settings.stream_trades, settings.stream_liquidations,
        settings.stream_signals, settings.stream_events, settings.stream_control)}
    heads = [f"{head}:*" for head in sorted(streams | {"md", "strategy"})]
    snapshots = [f"{venue(name).feed.snapshot_key_prefix}:*" for name in sorted(NAMES)]
    workers = [f"{kind}:{worker}" for kind in ("health", "metrics") for worker in (*WORKERS, "strategy-*")]
    return heads + snapshots + workers


def _escaped(prefix: str) -> str:
    """The prefix as a SCAN pattern that matches it literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix)


async def own_keys(client: aioredis.Redis, settings: Settings) -> tuple[list[str], int]:
    """This system's keys, and how many keys the database holds besides (one SCAN)."""
    prefix, ours = settings.redis_key_prefix, patterns(settings)
    found, scanned = [], 0
    async for key in client.scan_iter(match=_escaped(prefix) + "*", count=1_000):
        scanned += 1
        name = key if isinstance(key, str) else key.decode(errors="replace")
        if any(fnmatchcase(name[len(prefix):], p) for p in ours):
            found.append(name)
    # SCAN passes over keys that expired and are not yet reclaimed; DBSIZE counts them, so it
    # is asked only for the keys outside a prefix
    outside = max(0, await client.dbsize() - scanned) if prefix else 0
    return sorted(found), scanned - len(found) + outside


async def other_keys(client: aioredis.Redis, settings: Settings) -> int:
    """How many keys of this Redis's database are not this system's."""
    return (await own_keys(client, settings))[1]


async def delete_own(client: aioredis.Redis, settings: Settings) -> int:
    """Delete every key of this system (and only those); how many."""
    keys = (await own_keys(client, settings))[0]
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i:i + 500])
    return len(keys)
