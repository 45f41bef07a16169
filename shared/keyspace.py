"""Which keys of a Redis are this system's: what `arb up --fresh` deletes, and what `arb up`
counts as somebody else's data when it shares a Redis (every other key is left alone).

They are, under REDIS_KEY_PREFIX: the market-data streams (`md:*`), everything the strategy
and the executor write (`strategy:*`), the workers' health keys and metrics snapshots
(`health:*`, `metrics:*`), and each venue's ticker snapshots (`bybit:linear:tickers:*` ...).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from shared.settings import Settings
from shared.venues import NAMES, venue


def patterns(settings: Settings) -> list[str]:
    """SCAN patterns that together match every key this system writes, and no other."""
    p = settings.redis_key_prefix
    streams = {name.split(":", 1)[0] for name in (
        settings.stream_tickers, settings.stream_books, settings.stream_trades, settings.stream_liquidations,
        settings.stream_signals, settings.stream_events, settings.stream_control)}
    heads = sorted(streams | {"md", "strategy", "health", "metrics"})
    snapshots = sorted(venue(name).feed.snapshot_key_prefix for name in NAMES)
    return [f"{p}{head}:*" for head in heads] + [f"{p}{snap}:*" for snap in snapshots]


async def own_keys(client: aioredis.Redis, settings: Settings) -> list[str]:
    keys: set[str] = set()
    for pattern in patterns(settings):
        async for key in client.scan_iter(match=pattern, count=1_000):
            keys.add(key if isinstance(key, str) else key.decode())
    return sorted(keys)


async def other_keys(client: aioredis.Redis, settings: Settings) -> int:
    """How many keys of this Redis's database are not this system's."""
    return max(0, await client.dbsize() - len(await own_keys(client, settings)))


async def delete_own(client: aioredis.Redis, settings: Settings) -> int:
    """Delete every key of this system (and only those); how many."""
    keys = await own_keys(client, settings)
    for i in range(0, len(keys), 500):
        await client.delete(*keys[i:i + 500])
    return len(keys)
