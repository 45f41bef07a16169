"""The Redis Streams bus on a real Redis: capped writes, drop accounting, consumer groups."""

from __future__ import annotations

import asyncio
import shutil
import tempfile

import pytest

from shared.bus import ConsumerGroup, StreamWriter, group_stats
from shared.metrics import LatencyHistogram
from shared.resp import RedisUnavailable, RespConnection
from tests.conftest import free_port, start_redis_server

pytestmark = pytest.mark.redis


def writer(url: str, **kw) -> StreamWriter:
    kw.setdefault("maxlen", 1000)
    return StreamWriter(RespConnection(url), **kw)


async def write_numbered(w: StreamWriter, stream: str, count: int, first: int = 0) -> None:
    """Entries {"i": first}, {"i": first + 1}, ... written and flushed."""
    for i in range(first, first + count):
        w.add(stream, {"i": str(i)})
    await w.flush()


async def test_backpressure_100k_into_a_cap_of_1000_keeps_the_newest_and_counts_the_drop(redis_url, r, prefix):
    """Seed scenario 5: the stream is a drop-oldest queue; nothing crashes, the drop is a number."""
    stream = prefix + "md:tickers"
    group = ConsumerGroup(r, "strategy", "c1", [stream], start_id="$")
    await group.ensure()
    w = writer(redis_url, maxlen=1000, batch_max=1000)
    for i in range(100_000):
        w.add(stream, {"i": str(i)})
        if len(w._buffer) >= 5000:
            await w.flush()
    await w.flush()
    assert w.stats.pushed == 100_000 and w.stats.errors == 0 and w.stats.dropped == 0
    length = await r.xlen(stream)
    assert 1000 <= length <= 1100  # MAXLEN ~ trims whole nodes, never below the cap
    newest = await r.xrevrange(stream, count=1)
    assert newest[0][1] == {b"i": b"99999"}
    stats = await group_stats(r, stream, "strategy")
    assert stats.entries_added == 100_000
    assert stats.dropped == 100_000 - length and stats.dropped_exact
    assert stats.lag == 100_000

    # the consumer drains what is left: all of it is lag no longer, the drop stays counted
    read = 0
    while entries := await group.read(count=500, block_ms=None):
        read += len(entries)
        await group.ack(stream, [e.id for e in entries])
    assert read == length
    stats = await group_stats(r, stream, "strategy")
    assert stats.dropped == 100_000 - length and stats.dropped_exact and stats.pending == 0


async def test_group_creation_is_idempotent_and_starts_where_asked(redis_url, r, prefix):
    stream = prefix + "s"
    w = writer(redis_url)
    w.add(stream, {"n": "old"})
    await w.flush()
    late = ConsumerGroup(r, "late", "c", [stream], start_id="$")
    full = ConsumerGroup(r, "full", "c", [stream], start_id="0")
    for g in (late, full, late, full):
        await g.ensure()
    w.add(stream, {"n": "new"})
    await w.flush()
    assert [e.fields[b"n"] for e in await late.read(block_ms=None)] == [b"new"]
    assert [e.fields[b"n"] for e in await full.read(block_ms=None)] == [b"old", b"new"]
    assert (await group_stats(r, stream, "late")).lag == 0


async def test_unacked_entries_come_back_to_the_same_consumer_after_a_restart(redis_url, r, prefix):
    stream = prefix + "s"
    g = ConsumerGroup(r, "g", "worker-1", [stream], start_id="0")
    await g.ensure()
    w = writer(redis_url)
    await write_numbered(w, stream, 5)
    first = await g.read(count=3, block_ms=None)
    await g.ack(stream, [first[0].id])  # outputs of entry 0 written; crash before acking 1 and 2
    restarted = ConsumerGroup(r, "g", "worker-1", [stream], start_id="0")
    again = await restarted.read(count=10, block_ms=None)
    assert [e.fields[b"i"] for e in again] == [b"1", b"2"]
    await restarted.ack(stream, [e.id for e in again])
    rest = await restarted.read(count=10, block_ms=None)
    assert [e.fields[b"i"] for e in rest] == [b"3", b"4"]


async def test_autoclaim_takes_over_idle_entries_and_reports_trimmed_ones(redis_url, r, prefix):
    stream = prefix + "s"
    dead = ConsumerGroup(r, "g", "dead", [stream], start_id="0")
    await dead.ensure()
    w = writer(redis_url, maxlen=10)
    await write_numbered(w, stream, 3)
    taken = await dead.read(count=3, block_ms=None)
    assert len(taken) == 3
    alive = ConsumerGroup(r, "g", "alive", [stream], start_id="0")
    claimed, deleted = await alive.reclaim(stream, min_idle_ms=0)
    assert [e.fields[b"i"] for e in claimed] == [b"0", b"1", b"2"] and deleted == []

    # pending entries trimmed away by the cap are lost: XAUTOCLAIM says so, nothing raises
    await write_numbered(w, stream, 300, first=100)
    claimed, deleted = await dead.reclaim(stream, min_idle_ms=0)
    assert claimed == [] and sorted(deleted) == sorted(e.id for e in taken)


async def test_stats_when_the_group_is_inside_the_stream_is_a_lower_bound(redis_url, r, prefix):
    stream = prefix + "s"
    g = ConsumerGroup(r, "g", "c", [stream], start_id="$")
    await g.ensure()
    w = writer(redis_url, maxlen=100)
    await write_numbered(w, stream, 1000)
    await g.read(count=10, block_ms=None)
    stats = await group_stats(r, stream, "g")
    assert not stats.dropped_exact
    assert stats.dropped == stats.lag - stats.length
    assert stats.dropped <= 1000 - stats.length


async def test_latest_values_are_coalesced_per_key(redis_url, r, prefix):
    w = writer(redis_url)
    for i in range(10):
        w.set_latest(prefix + "h", {"bid": str(i), "ask": str(i + 1)})
    await w.flush()
    assert await r.hgetall(prefix + "h") == {b"bid": b"9", b"ask": b"10"}
    assert w.stats.batches == 1


async def test_non_ascii_values_are_written_byte_exact(redis_url, r, prefix):
    w = writer(redis_url)
    w.add(prefix + "s", {"name": "Ωmega ✓", "n": "1"})
    await w.flush()
    [(_, fields)] = await r.xrange(prefix + "s")
    assert fields == {b"name": "Ωmega ✓".encode(), b"n": b"1"}


async def test_a_refused_write_is_counted_not_fatal(redis_url, r, prefix):
    await r.set(prefix + "not-a-stream", "x")
    w = writer(redis_url)
    w.add(prefix + "not-a-stream", {"a": "1"})
    w.add(prefix + "s", {"a": "2"})
    await w.flush()
    assert w.stats.errors == 1 and w.stats.pushed == 1
    assert w.stats.error_kinds == {"WRONGTYPE": 1}


async def test_latency_is_recorded_from_receipt_to_acknowledgement(redis_url, prefix):
    clock = iter([1_000_000]).__next__
    hist = LatencyHistogram()
    w = StreamWriter(RespConnection(redis_url), maxlen=100, latency=hist, clock_ns=clock)
    w.add(prefix + "s", {"a": "1"}, received_ns=400_000)
    w.add(prefix + "s", {"a": "2"})  # not the last event of its message: not measured
    await w.flush()
    assert hist.samples_ns() == [600_000] and hist.percentile_us(99) == 600.0


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server to stop and start")
async def test_writer_holds_data_while_redis_is_down_and_delivers_it_after():
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    w = writer(url, buffer_max=1000)
    for i in range(1500):
        w.add("md:tickers", {"i": str(i)})
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port}"):
        await w.flush()
    assert w.stats.dropped == 500 and w.pending == 1000  # the oldest beyond the buffer went first

    stop = asyncio.Event()
    with tempfile.TemporaryDirectory() as workdir:
        task = asyncio.ensure_future(w.run(stop, retry_max_s=0.2))
        await asyncio.sleep(0.3)
        assert w.stats.outages == 1 and w.pending == 1000
        proc = start_redis_server(port, workdir)
        try:
            stop.set()
            await asyncio.wait_for(task, 10)
            import redis as sync_redis

            client = sync_redis.Redis(port=port)
            entries = client.xrange("md:tickers")
            assert [int(f[b"i"]) for _, f in entries] == list(range(500, 1500))
            assert w.stats.pushed == 1000
        finally:
            proc.terminate()
            proc.wait(10)


async def test_a_writer_behind_redis_asks_producers_to_wait_until_it_catches_up(redis_url, prefix):
    w = writer(redis_url, batch_max=10)  # high water: 4 batches
    for i in range(41):
        w.add(prefix + "s", {"i": str(i)})
    assert w.full()
    waiting = w.room()
    assert not waiting.done() and w.room() is waiting
    await w._send_batch()  # one batch written: back under the mark
    await asyncio.wait_for(waiting, 1)
    assert not w.full() and w.stats.pushed == 10


async def test_a_writer_never_makes_producers_wait_while_redis_is_down():
    w = writer(f"redis://127.0.0.1:{free_port()}/0", batch_max=10, buffer_max=1000)
    for i in range(100):
        w.add("md:tickers", {"i": str(i)})
    with pytest.raises(RedisUnavailable):
        await w.flush()
    assert not w.full()  # stalling the venue socket would not help: the buffer drops its oldest
    assert w.room().done()
