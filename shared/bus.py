"""Redis Streams bus: capped, pipelined writes and consumer groups.

Writes (`StreamWriter`): each event becomes `XADD stream MAXLEN ~ N * field value ...`; events
are buffered and a flusher sends whatever has accumulated as one pipeline, so a lone message
goes out at once and a burst goes out in batches. Only market-data streams are capped: the
cap is the backpressure queue with drop-oldest semantics. A trimmed entry that is still
pending is lost without an error (XAUTOCLAIM returns it as deleted), so signal and event
streams must never be written through a capped writer.

Reads (`ConsumerGroup`): groups are created idempotently (MKSTREAM, BUSYGROUP tolerated); a
consumer first re-reads its own pending entries, then new ones; it acks only after its
outputs are written; `reclaim` takes over entries idle past a timeout. `group_stats` turns
XINFO into lag and a counted number of entries dropped before the group read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.metrics import LatencyHistogram
from shared.resp import RedisReplyError, RedisUnavailable, RespConnection, pack_command, pack_with_fields

log = logging.getLogger("arb.bus")


@dataclass
class WriterStats:
    """What a writer did: entries acknowledged, dropped by its own buffer cap, refused."""

    pushed: int = 0
    superseded: int = 0  # latest-value entries replaced by a newer one before they were sent
    dropped: int = 0
    errors: int = 0
    batches: int = 0
    outages: int = 0
    outage_ms: float = 0.0  # the longest time writes failed in a row (a Redis down, a master failing over)
    peak_buffered: int = 0  # the most entries the buffer held at once
    error_kinds: dict[str, int] = field(default_factory=dict)


class StreamWriter:
    """Buffered XADD MAXLEN ~ into capped streams, and coalesced latest-value hashes.

    While Redis is unreachable the buffer keeps up to `buffer_max` entries, dropping the oldest
    beyond that (counted in `stats.dropped`) and retrying with backoff. `latency` records, per
    entry added with `received_ns`, the time from receipt to Redis acknowledging the XADD."""

    def __init__(
        self,
        conn: RespConnection,
        *,
        maxlen: int,
        batch_max: int = 1000,
        buffer_max: int = 100_000,
        latency: LatencyHistogram | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.conn = conn
        self.maxlen = str(maxlen)
        self.batch_max = batch_max
        self.buffer_max = buffer_max
        self.latency = latency
        self.stats = WriterStats()
        self._clock_ns = clock_ns
        self._buffer: deque[tuple[bytes, int | None]] = deque()
        self._conflated: dict[tuple[str, str], tuple[Callable[[], dict[str, str]], int | None]] = {}
        self._latest: dict[str, dict[str, str]] = {}
        self._in_flight = 0  # entries of the batch being sent: still held until Redis answers
        self._wake: asyncio.Future | None = None  # set while the flusher waits for data
        self._room: asyncio.Future | None = None  # set while a producer waits for room
        self._redis_down = False
        self.high_water = 4 * batch_max
        self._heads: dict[str, tuple[str, ...]] = {}

    def add(self, stream: str, fields: dict[str, str], received_ns: int | None = None) -> None:
        head = self._heads.get(stream)
        if head is None:
            head = self._heads[stream] = ("XADD", stream, "MAXLEN", "~", self.maxlen, "*")
        buffer = self._buffer
        buffer.append((pack_with_fields(head, fields), received_ns))
        if len(buffer) > self.stats.peak_buffered:
            self.stats.peak_buffered = len(buffer)
        if len(buffer) > self.buffer_max:
            self._buffer.popleft()
            self.stats.dropped += 1
        self._notify()

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def full(self) -> bool:
        """Whether a producer should wait (`room()`) before adding more: Redis is up and
        the writer is more than a few batches behind, so reading faster only grows the buffer."""
        return len(self._buffer) > self.high_water and not self._redis_down

    def room(self) -> asyncio.Future:
        """A future done once the writer is back under its high-water mark, or Redis went down
        (then waiting would only stall the venue socket; the buffer drops its oldest)."""
        if self._room is None or self._room.done():
            self._room = asyncio.get_running_loop().create_future()
            if not self.full():
                self._room.set_result(None)
        return self._room

    def _wake_producers(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def add_conflated(self, stream: str, key: str, fields: Callable[[], dict[str, str]],
                      received_ns: int | None = None) -> None:
        """XADD to `stream` at the next flush, unless a newer entry for `key` replaces it first.

        For values where each entry supersedes the last (a top-of-book snapshot): under load
        only the newest per key is encoded and sent, and the replaced ones are counted."""
        if self._conflated.pop((stream, key), None) is not None:
            self.stats.superseded += 1
        self._conflated[(stream, key)] = (fields, received_ns)
        self._notify()

    def set_latest(self, key: str, fields: dict[str, str]) -> None:
        """HSET `key` with `fields` at the next flush: per field, only the newest value is
        sent (a venue that sends a ticker in parts, like Binance, keeps every part)."""
        pending = self._latest.get(key)
        self._latest[key] = fields if pending is None else pending | fields
        self._notify()

    @property
    def pending(self) -> int:
        """Entries not yet acknowledged by Redis, the batch on its way included."""
        return len(self._buffer) + len(self._conflated) + len(self._latest) + self._in_flight

    async def flush(self) -> None:
        """Send everything buffered, in batches; raises RedisUnavailable (nothing is lost)."""
        while self.pending:
            await self._send_batch()

    async def _send_batch(self) -> None:
        if self._conflated:  # encode the survivors now, in arrival order, behind the plain entries
            conflated, self._conflated = self._conflated, {}
            for (stream, _), (fields, received_ns) in conflated.items():
                self.add(stream, fields(), received_ns)
        n = min(len(self._buffer), self.batch_max)
        batch = [self._buffer.popleft() for _ in range(n)]
        latest, self._latest = self._latest, {}
        packed = b"".join(cmd for cmd, _ in batch) + b"".join(
            pack_with_fields(("HSET", key), fields) for key, fields in latest.items()
        )
        self._in_flight = n + len(latest)
        try:
            replies = await self.conn.execute(packed, n + len(latest))
        except RedisUnavailable:
            self._redis_down = True
            self._wake_producers()
            self._buffer.extendleft(reversed(batch))
            while len(self._buffer) > self.buffer_max:
                self._buffer.popleft()
                self.stats.dropped += 1
            for key, fields in latest.items():
                self._latest.setdefault(key, fields)
            raise
        finally:
            self._in_flight = 0
        self._redis_down = False
        if len(self._buffer) <= self.high_water:
            self._wake_producers()
        now = self._clock_ns()
        refused = [reply for reply in replies if isinstance(reply, RedisReplyError)]
        for reply in refused:
            kind = str(reply).split(" ", 1)[0]
            if kind not in self.stats.error_kinds:
                log.error("Redis refused a write: %s (further ones are counted)", reply)
            self.stats.error_kinds[kind] = self.stats.error_kinds.get(kind, 0) + 1
        self.stats.errors += len(refused)
        self.stats.pushed += n - sum(isinstance(r, RedisReplyError) for r in replies[:n])  # XADDs only
        self.stats.batches += 1
        if self.latency is not None:
            for _, received_ns in batch:
                if received_ns is not None:
                    self.latency.observe_ns(now - received_ns)

    async def run(self, stop: asyncio.Event, retry_max_s: float = 5.0) -> None:
        """Flush as data arrives until `stop` is set and the buffer is empty. If Redis is
        unreachable at shutdown, it keeps trying for about two seconds, then logs how many
        entries were not written."""
        delay = 0.05
        down_since = None
        loop = asyncio.get_running_loop()
        stop_waiter = asyncio.ensure_future(stop.wait())
        stop_waiter.add_done_callback(lambda _: self._notify())
        try:
            while True:
                if not self.pending:
                    if stop.is_set():
                        return
                    self._wake = loop.create_future()
                    await self._wake  # one future, resolved by the next add() or by stop
                    self._wake = None
                    continue
                try:
                    await self.flush()
                    if down_since is not None:
                        gap_ms = (time.monotonic() - down_since) * 1000
                        self.stats.outage_ms = max(self.stats.outage_ms, gap_ms)
                        log.info("Redis at %s is back after %.0f ms; writes resumed", self.conn.describe(), gap_ms)
                        down_since = None
                    delay = 0.05
                except RedisUnavailable as exc:
                    if down_since is None:
                        down_since = time.monotonic()
                    if delay == 0.05:
                        self.stats.outages += 1
                        log.error("%s; holding up to %d entries and retrying", exc, self.buffer_max)
                    if stop.is_set() and delay >= min(1.0, retry_max_s):
                        log.error("shutting down with Redis unreachable: %d entries not written",
                                  self.pending)
                        return
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, retry_max_s)
        finally:
            stop_waiter.cancel()
            await self.conn.close()


# ---------------------------------------------------------------------------------- reads


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _stream_id(value: bytes | str | None) -> tuple[int, int] | None:
    text = _text(value)
    if not text:
        return None
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


# XGROUP CREATE with the read counter a group starting at "$" or "0" really has.
_CREATE_GROUP = """
local added, length, last = 0, 0, '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1]
    elseif info[i] == 'length' then length = info[i + 1]
    elseif info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
if ARGV[2] == '$' then
  return redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], last, 'MKSTREAM', 'ENTRIESREAD', added)
end
return redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0-0', 'MKSTREAM', 'ENTRIESREAD', added - length)
"""


@dataclass(frozen=True)
class Entry:
    stream: str
    id: str
    fields: dict[bytes, bytes]


class ConsumerGroup:
    """One consumer of one group over one or more streams (redis-py with hiredis)."""

    def __init__(self, redis: aioredis.Redis, group: str, consumer: str, streams: list[str],
                 start_id: str = "$", fast: RespConnection | None = None) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.streams = streams
        self.start_id = start_id
        self.fast = fast  # reads (and their piggybacked acks) go over this lean connection when given
        self._backlog = {s: True for s in streams}  # own pending entries still to re-read

    async def ensure(self) -> None:
        """Create the group on every stream (and the stream) unless it exists.

        The group gets an explicit ENTRIESREAD, computed atomically: without it Redis keeps
        no read counter and its `lag` then leaves out entries trimmed before the group read
        them, which would hide exactly the drops this bus promises to count."""
        for stream in self.streams:
            try:
                if self.start_id in ("$", "0", "0-0"):
                    await self.redis.eval(_CREATE_GROUP, 1, stream, self.group, self.start_id)
                else:
                    await self.redis.xgroup_create(stream, self.group, id=self.start_id, mkstream=True)
            except ResponseError as exc:
                if "unknown command" in str(exc):  # no Lua (fakeredis without lupa): no exact lag then
                    with contextlib.suppress(ResponseError):  # BUSYGROUP
                        await self.redis.xgroup_create(stream, self.group, id=self.start_id, mkstream=True)
                elif "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, count: int = 1000, block_ms: int | None = 1000,
                   acks: dict[str, list[str]] | None = None) -> list[Entry]:
        """The next entries: first this consumer's own unacked ones (after a restart), then new.
        `acks` (stream -> ids) are acknowledged in the same round trip, before the read."""
        while True:
            backlog = any(self._backlog.values())
            ids = {s: ("0" if self._backlog[s] else ">") for s in self.streams}
            try:
                if self.fast is not None:
                    reply = await self._fast_read(ids, count, None if backlog else block_ms, acks)
                    acks = None
                elif acks:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for stream, done in acks.items():
                            pipe.xack(stream, self.group, *done)
                        pipe.xreadgroup(self.group, self.consumer, ids, count=count,
                                        block=None if backlog else block_ms)
                        reply = (await pipe.execute())[-1]
                    acks = None
                else:
                    reply = await self.redis.xreadgroup(
                        self.group, self.consumer, ids, count=count, block=None if backlog else block_ms
                    )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("group %s vanished (stream deleted?); recreating it", self.group)
                await self.ensure()
                return []
            entries = []
            for stream, items in reply or []:
                name = _text(stream)
                if self._backlog[name] and not items:
                    self._backlog[name] = False
                for entry_id, fields in items:
                    # a pending entry whose payload was trimmed away reads as None
                    entries.append(Entry(name, _text(entry_id), fields or {}))
            if entries or not backlog:
                return entries

    async def _fast_read(self, ids: dict[str, str], count: int, block_ms: int | None,
                         acks: dict[str, list[str]] | None) -> list | None:
        """XACKs then XREADGROUP in one round trip over the lean connection, in redis-py's shape."""
        commands = [pack_command("XACK", stream, self.group, *done) for stream, done in (acks or {}).items()]
        block = ("BLOCK", str(block_ms)) if block_ms is not None else ()
        commands.append(pack_command("XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", str(count), *block,
                                     "STREAMS", *ids, *ids.values()))
        try:
            replies = await self.fast.execute(b"".join(commands), len(commands))
        except RedisUnavailable as exc:
            raise RedisConnectionError(str(exc)) from None
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise ResponseError(str(reply))
        return [(stream, [(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else None)
                          for entry_id, flat in items])
                for stream, items in replies[-1] or []]

    async def ack(self, stream: str, ids: list[str]) -> int:
        return await self.redis.xack(stream, self.group, *ids) if ids else 0

    async def close(self) -> None:
        if self.fast is not None:
            await self.fast.close()

    async def reclaim(self, stream: str, min_idle_ms: int, count: int = 100) -> tuple[list[Entry], list[str]]:
        """Take over entries other consumers left idle; also returns IDs whose payload was
        trimmed before anyone acked it (lost entries, to be counted and alerted on)."""
        reply = await self.redis.xautoclaim(stream, self.group, self.consumer, min_idle_ms, "0-0", count=count)
        claimed = [Entry(stream, _text(i), f or {}) for i, f in reply[1]]
        deleted = [_text(i) for i in reply[2]] if len(reply) > 2 else []
        return claimed, deleted


class SlotGroups:
    """One consumer of one group over streams that live in several Redis Cluster slots, where
    one XREADGROUP may only name keys of one slot: a ConsumerGroup per slot, each read by a task
    of its own on a connection of its own (blocking reads in parallel), their entries handed on
    in the order they arrive. The same calls as ConsumerGroup; acks go with their slot's next
    read. `close` stops the readers and closes their connections."""

    def __init__(self, redis, group: str, consumer: str, streams: list[str], start_id: str = "$",
                 fast_factory: Callable[[], Any] | None = None, block_ms: int = 200) -> None:
        from redis.crc import key_slot

        by_slot: dict[int, list[str]] = {}
        for stream in streams:
            by_slot.setdefault(key_slot(stream.encode()), []).append(stream)
        self.group, self.consumer, self.streams, self.block_ms = group, consumer, streams, block_ms
        self.parts = [ConsumerGroup(redis, group, consumer, names, start_id, fast_factory() if fast_factory else None)
                      for names in by_slot.values()]
        self._of = {name: part for part in self.parts for name in part.streams}
        self._acks: dict[int, dict[str, list[str]]] = {id(part): {} for part in self.parts}
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=2 * len(self.parts))
        self._readers: list[asyncio.Future] = []
        self._count = 1000
        self._error: BaseException | None = None

    async def ensure(self) -> None:
        for part in self.parts:
            await part.ensure()

    async def read(self, count: int = 1000, block_ms: int | None = 1000,
                   acks: dict[str, list[str]] | None = None) -> list[Entry]:
        for stream, ids in (acks or {}).items():
            if stream in self._of:
                self._acks[id(self._of[stream])].setdefault(stream, []).extend(ids)
            else:  # not one of these streams (another group's reader handed its acks on): acked directly
                await self.parts[0].redis.xack(stream, self.group, *ids)
        self._count = count
        if not self._readers:
            self._readers = [asyncio.ensure_future(self._pump(part)) for part in self.parts]
        if self._error is not None and self._queue.empty():
            error, self._error = self._error, None
            raise error
        entries: list[Entry] = []
        try:
            first = await asyncio.wait_for(self._queue.get(), None if block_ms is None else block_ms / 1000)
        except TimeoutError:
            return entries
        for got in (first, *(self._queue.get_nowait() for _ in range(self._queue.qsize()))):
            if isinstance(got, BaseException):
                self._error = got  # raised once the entries read with it have been handed on
            else:
                entries += got
        if not entries and self._error is not None:
            error, self._error = self._error, None
            raise error
        return entries

    async def _pump(self, part: ConsumerGroup) -> None:
        pending = self._acks[id(part)]
        while True:
            acks = dict(pending)
            pending.clear()
            try:
                entries = await part.read(self._count, self.block_ms, acks or None)
            except asyncio.CancelledError:  # not known to be sent: acked by close()
                for stream, ids in acks.items():
                    pending.setdefault(stream, []).extend(ids)
                raise
            except Exception as exc:  # Redis down, a node lost: said to the reader, tried again
                for stream, ids in acks.items():
                    pending.setdefault(stream, []).extend(ids)
                await self._queue.put(exc)
                await asyncio.sleep(0.2)
                continue
            if entries:
                await self._queue.put(entries)

    async def ack(self, stream: str, ids: list[str]) -> int:
        part = self._of.get(stream, self.parts[0])
        return await part.ack(stream, ids)

    async def reclaim(self, stream: str, min_idle_ms: int, count: int = 100) -> tuple[list[Entry], list[str]]:
        return await self._of[stream].reclaim(stream, min_idle_ms, count)

    async def close(self) -> None:
        """Stop the readers, ack what was handed on for acking (if Redis answers), close."""
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []
        for part in self.parts:
            pending, self._acks[id(part)] = self._acks[id(part)], {}
            with contextlib.suppress(RedisConnectionError, ResponseError, OSError):
                for stream, ids in pending.items():
                    await part.ack(stream, ids)
        for part in self.parts:
            if part.fast is not None:
                await part.fast.close()


def consumer_group(redis, group: str, consumer: str, streams: list[str], start_id: str = "$",
                   fast_factory: Callable[[], Any] | None = None, cluster: bool = False) -> ConsumerGroup | SlotGroups:
    """A ConsumerGroup; on a Redis Cluster, with streams of several slots, SlotGroups."""
    if cluster:
        from redis.crc import key_slot

        if len({key_slot(s.encode()) for s in streams}) > 1:
            return SlotGroups(redis, group, consumer, streams, start_id, fast_factory)
    return ConsumerGroup(redis, group, consumer, streams, start_id, fast_factory() if fast_factory else None)


@dataclass(frozen=True)
class GroupStats:
    """A group's position in its stream.

    `lag` is Redis's own: entries added to the stream that the group has not read, whether
    they are still there or were trimmed. `dropped` is the part of the lag that was trimmed
    before the group read it; `dropped_exact` is False when only a lower bound is known
    (the group is inside the stream and behind its end)."""

    stream: str
    group: str
    length: int
    entries_added: int
    entries_read: int | None
    lag: int | None
    pending: int
    dropped: int | None
    dropped_exact: bool


async def group_stats(redis: aioredis.Redis, stream: str, group: str) -> GroupStats:
    pipe = redis.pipeline(transaction=True)
    pipe.execute_command("XINFO", "STREAM", stream)
    pipe.execute_command("XINFO", "GROUPS", stream)
    info_raw, groups_raw = await pipe.execute()
    info = _pairs(info_raw)
    groups = [_pairs(g) for g in groups_raw]
    mine = next((g for g in groups if _text(g["name"]) == group), None)
    if mine is None:
        raise LookupError(f"no group {group!r} on stream {stream!r}")
    length = int(info["length"])
    first = _stream_id(info["first-entry"][0]) if info.get("first-entry") else None
    last = _stream_id(info["last-entry"][0]) if info.get("last-entry") else None
    delivered = _stream_id(mine["last-delivered-id"]) or (0, 0)
    lag = mine.get("lag")
    lag = None if lag is None else int(lag)
    entries_read = mine.get("entries-read")
    if length == 0 or (last is not None and delivered >= last):
        unread: int | None = 0
    elif first is not None and delivered < first:
        unread = length
    else:
        unread = None
    if lag is None:
        dropped, exact = None, False
    elif unread is None:
        dropped, exact = max(0, lag - length), False
    else:
        dropped, exact = max(0, lag - unread), True
    return GroupStats(
        stream=stream,
        group=group,
        length=length,
        entries_added=int(info["entries-added"]),
        entries_read=None if entries_read is None else int(entries_read),
        lag=lag,
        pending=int(mine["pending"]),
        dropped=dropped,
        dropped_exact=exact,
    )


def _pairs(flat: Any) -> dict[str, Any]:
    if isinstance(flat, dict):
        return {_text(k): v for k, v in flat.items()}
    return {_text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
