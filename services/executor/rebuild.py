"""`arb rebuild`: every read model recomputed from `strategy:events`, compared with Redis and
(unless only checking) written back.

The facts are the truth; the read models are what the executor wrote after each batch. A
rebuild folds every fact into a fresh core, computes every read model (projection.py), and
lists each key whose content differs: a key missing, a key left over (an active trade that is
closed in the facts), a field that differs, a leg-out entry missing or different. Writing
replaces exactly those keys, in one MULTI/EXEC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from services.executor.core import ExecutorCore
from services.executor.projection import Projector, settled_leg_outs
from services.executor.service import exec_config, read_facts
from shared import redis_io
from shared.settings import Settings


@dataclass
class RebuildReport:
    facts: int = 0
    keys: int = 0
    differences: list[str] = field(default_factory=list)


async def _actual(client: aioredis.Redis, key: str) -> object:
    kind = await client.type(key)
    if kind == "none":
        return None
    if kind == "stream":
        return [(i, fields) for i, fields in await client.xrange(key, "-", "+")]
    if kind == "hash":
        return await client.hgetall(key)
    return f"<a {kind}>"


def _describe(key: str, want: object, have: object) -> str:
    if have is None:
        return f"{key}: missing"
    if want is None:
        return f"{key}: left over (not in the facts)"
    if isinstance(want, dict) and isinstance(have, dict):
        fields = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        shown = ", ".join(f"{k} {have.get(k)!r} -> {want.get(k)!r}" for k in fields[:3])
        return f"{key}: {len(fields)} fields differ ({shown}{', ...' if len(fields) > 3 else ''})"
    return f"{key}: {len(have) if isinstance(have, list) else '?'} entries, the facts give {len(want)}"


async def rebuild(settings: Settings, mode: str = "cross", write: bool = True) -> RebuildReport:
    p = settings.redis_key_prefix
    client = redis_io.client(settings, socket_timeout=10, socket_connect_timeout=5,
                                     decode_responses=True)
    report = RebuildReport()
    try:
        core, leg_outs = ExecutorCore(exec_config(settings, mode), {}), []
        async for fact in read_facts(client, p + settings.stream_events):
            core.apply(fact)
            report.facts += 1
            leg_outs += [(fact.ts_ms, lo) for lo in settled_leg_outs(core, fact)]
        projector = Projector(p)
        expected = projector.everything(core, leg_outs)
        report.keys = len(expected)
        present = [k async for k in client.scan_iter(match=p + "strategy:trades:*", count=1000)]
        stale = sorted(k for k in present if k not in expected)
        changed = {}
        for key, want in expected.items():
            have = await _actual(client, key)
            if have != want:
                changed[key] = want
                report.differences.append(_describe(key, want, have))
        report.differences += [_describe(k, None, True) for k in stale]
        if write and (changed or stale):
            pipe = client.pipeline(transaction=True)
            for key in stale + list(changed):
                pipe.delete(key)
            for key, want in changed.items():
                if isinstance(want, dict):
                    pipe.hset(key, mapping=want)
                else:
                    for entry_id, fields in want:
                        pipe.xadd(key, fields, id=entry_id)
            await pipe.execute()
    finally:
        await client.aclose()
    return report
