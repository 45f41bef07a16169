"""A strategy shard's lease, with a fencing token: one worker decides for a shard at a time.

The lease is a key, `strategy:shard:{K}:lease`, holding its owner and token, with a TTL of
STRATEGY_CLAIM_IDLE_MS; its owner renews it three times per TTL. A worker that finds it held
waits (a standby) and takes it once it expires: a dead owner's shard is taken over within
the claim idle time, and its unacked entries with it (XAUTOCLAIM, same idle time).

Each take increments `strategy:shard:{K}:fence`, and the signals of that owner carry the
number. A worker that stalled past its TTL (a pause, a partition) and wakes still believing it
owns the shard writes signals with an older token than its successor's: the executor rejects
them (`fenced`). Both keys carry the shard's hash tag, so on a Redis Cluster they live in the
shard's slot and each script touches one slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.shards import Shard

log = logging.getLogger("arb.strategy")

# KEYS: lease, fence; ARGV: owner, ttl ms. The token if taken (or already this owner's), else 0.
_TAKE = """
local held = redis.call('GET', KEYS[1])
if held then
  local owner, token = string.match(held, '^(.*) (%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
"""
# KEYS: lease; ARGV: owner and token as held, ttl ms (0: release). 1 if it was still held so.
_KEEP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


def lease_key(prefix: str, shard: Shard) -> str:
    return f"{prefix}strategy:shard:{{{shard.index}}}:lease"


def fence_key(prefix: str, shard: Shard) -> str:
    return f"{prefix}strategy:shard:{{{shard.index}}}:fence"


class Lease:
    """This process's claim on `shard`. `token` is its fencing token while held, else 0."""

    def __init__(self, client: aioredis.Redis, prefix: str, shard: Shard, consumer: str, ttl_ms: int) -> None:
        self.client, self.shard, self.ttl_ms = client, shard, ttl_ms
        self.keys = [lease_key(prefix, shard), fence_key(prefix, shard)]
        # unique per process: a restarted worker under the same consumer name is a new owner
        self.owner = f"{consumer}@{socket.gethostname()}:{os.getpid()}"
        self.token = 0
        self.lost = asyncio.Event()

    async def take(self) -> int:
        """One attempt; the token, or 0 while another owner holds it."""
        self.token = int(await self.client.eval(_TAKE, 2, *self.keys, self.owner, self.ttl_ms))
        if self.token:
            self.lost.clear()
        return self.token

    async def wait_take(self, stop: asyncio.Event) -> int:
        """Take the lease, waiting as a standby while another holds it; 0 if stopped first."""
        waited = False
        while not stop.is_set():
            if await self.take():
                return self.token
            if not waited:
                holder = await self.client.get(self.keys[0])
                log.info("standby for shard %s: its lease is held by %s; taking it over when that lapses",
                         self.shard, holder)
                waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl_ms / 10_000)
        return 0

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew three times per TTL until `stop`; on finding it gone (or Redis unreachable past
        the TTL) set `lost` and return."""
        held_until = asyncio.get_running_loop().time() + self.ttl_ms / 1000
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl_ms / 3000)
            if stop.is_set():
                return
            now = asyncio.get_running_loop().time()
            try:
                kept = await self.client.eval(_KEEP, 1, self.keys[0], self._held(), self.ttl_ms)
            except (OSError, RedisError) as exc:
                if now < held_until:
                    continue
                log.warning("shard %s: lease not renewed for its whole TTL (%s); stepping down", self.shard, exc)
                kept = 0
            if not kept:
                log.warning("shard %s: lease %d lost; stepping down", self.shard, self.token)
                self.token = 0
                self.lost.set()
                return
            held_until = now + self.ttl_ms / 1000

    async def release(self) -> None:
        """Give the lease up (a clean stop): a standby takes it at once, not after the TTL."""
        if self.token:
            with contextlib.suppress(OSError, RedisError):
                await self.client.eval(_KEEP, 1, self.keys[0], self._held(), 0)
            self.token = 0

    def _held(self) -> str:
        return f"{self.owner} {self.token}"
