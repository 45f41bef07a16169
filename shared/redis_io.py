"""The Redis clients every service uses, for one Redis or a Redis Cluster (REDIS_CLUSTER):
redis-py's client (`client`: reads, consumer groups, the odd command) and the lean pipelined
connection (`lean`: the hot paths' writes and reads, shared/resp.py or shared/cluster.py)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from shared.cluster import ClusterConnection
from shared.resp import RespConnection
from shared.settings import Settings


def client(settings: Settings, **options: Any) -> aioredis.Redis | RedisCluster:
    """redis-py's asyncio client of REDIS_URL: a RedisCluster on a cluster (it follows MOVED and
    ASK and refreshes its slot map itself)."""
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, **options)
    return aioredis.Redis.from_url(settings.redis_url, **options)


def lean(settings: Settings, encoding: str | None = None) -> RespConnection | ClusterConnection:
    """A lean pipelined connection to REDIS_URL (a cluster: one per master, routed by slot)."""
    if settings.redis_cluster:
        return ClusterConnection(settings.redis_url, encoding=encoding)
    return RespConnection(settings.redis_url, encoding=encoding)
