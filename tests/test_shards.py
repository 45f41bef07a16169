"""Sharding by symbol: the stable map, the shards' streams, the ingestor's routing, one
strategy worker per shard under a lease with a fencing token, and the merged top 20."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from services.strategy.lease import Lease
from services.strategy.scanner import merge_top
from services.strategy.service import StrategyService
from services.up.plan import plan
from shared.settings import Settings
from shared.shards import Shard, shard_of, tagged


def test_a_symbols_shard_is_the_same_in_every_process_and_release():
    """Ingestors and strategy workers started apart (another PYTHONHASHSEED, another version)
    must agree, so the map is pinned, not Python's salted hash()."""
    pinned = {"BTCUSDT": 3, "ETHUSDT": 0, "DOGEUSDT": 2, "SOLUSDT": 0}
    assert {s: shard_of(s, 4) for s in pinned} == pinned
    code = "from shared.shards import shard_of; print([shard_of(s, 4) for s in ('BTCUSDT', 'DOGEUSDT')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert out.strip() == "[3, 2]"


def test_a_universe_spreads_over_the_shards():
    symbols = [f"SIM{i}USDT" for i in range(400)]
    for n in (2, 3, 4):
        counts = [sum(shard_of(s, n) == k for s in symbols) for k in range(n)]
        assert all(abs(c - 400 / n) < 0.2 * 400 / n for c in counts), (n, counts)


def test_each_shards_streams_carry_its_hash_tag():
    assert tagged("md:books", 3) == "md:{3}:books"
    assert tagged("books", 3) == "books:{3}"
    s = Settings(_env_file=None, md_shards=2, redis_key_prefix="t:")
    assert s.md_streams(1) == {"ticker": "t:md:{1}:tickers", "book": "t:md:{1}:books", "trade": "t:md:{1}:trades",
                               "liquidation": "t:md:{1}:liquidations"}
    assert s.md_route("BTCUSDT") == s.md_streams(1) and s.md_route("ETHUSDT") == s.md_streams(0)
    assert len(s.all_md_streams()) == 8


@pytest.mark.parametrize("text, error", [
    ("2", "is not K/N"), ("2/2", "shards are numbered 0 to 1"), ("0/0", "a shard count is 1 to 256"),
    ("-1/2", "is not K/N"), ("0/300", "a shard count is 1 to 256"),
])
def test_a_bad_shard_says_what_a_shard_is(text, error):
    with pytest.raises(ValueError, match=error):
        Shard.parse(text)


def test_a_brace_in_a_name_is_refused_since_it_would_move_the_streams_slot():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"no \{ or \}"):
        Settings(_env_file=None, redis_key_prefix="a{b}:")


def test_arb_up_runs_one_strategy_worker_per_shard():
    s = Settings(_env_file=None, md_shards=3)
    p = plan(s, "cross", ["bybit", "okx"], [0, 1], 9101)
    strategies = [w for w in p.workers if w.name.startswith("strategy")]
    assert [w.name for w in strategies] == ["strategy-0", "strategy-1", "strategy-2"]
    assert [w.argv[w.argv.index("--shard") + 1] for w in strategies] == ["0/3", "1/3", "2/3"]
    assert [w.health for w in strategies] == ["strategy-0", "strategy-1", "strategy-2"]
    single = plan(Settings(_env_file=None), "cross", ["bybit", "okx"], [0, 1], 9101)
    assert [w.name for w in single.workers if w.name.startswith("strategy")] == ["strategy"]


def test_a_shard_of_another_count_than_the_ingestors_write_is_refused():
    with pytest.raises(ValueError, match="MD_SHARDS=1"):
        StrategyService(Settings(_env_file=None), "cross", shard=Shard(0, 2))


# ---------------------------------------------------------------- through a real Redis

@pytest.mark.redis
async def test_the_ingestor_writes_each_symbol_to_its_shards_streams(settings, r):
    from shared.events import BookUpdate, Ticker
    from tests.replay_server import ReplayServer
    from tests.test_ingest import FRAMES, all_written, parsed, run_ingestor

    settings = settings.model_copy(update={"md_shards": 4})
    async with ReplayServer(FRAMES) as server:
        _, report = await run_ingestor(settings, server.url, all_written(server), md_shards=4)
    expected = parsed(server.frames)
    assert report.dropped == 0 and report.parse_errors == 0
    for k in range(4):
        streams = settings.md_streams(k)
        tickers = [e for e in expected if isinstance(e, Ticker) and shard_of(e.symbol, 4) == k]
        written = {e[1][b"symbol"].decode() for e in await r.xrange(streams["ticker"])}
        assert written == {e.symbol for e in tickers}
        assert await r.xlen(streams["ticker"]) == len(tickers)
        books = {e[1][b"symbol"].decode() for e in await r.xrange(streams["book"])}
        assert books == {e.symbol for e in expected if isinstance(e, BookUpdate) and shard_of(e.symbol, 4) == k}
    assert await r.exists(settings.redis_key_prefix + "md:tickers") == 0  # nothing outside the shards


async def _until(condition, timeout_s: float = 15.0):
    async with asyncio.timeout(timeout_s):
        while not (result := await value if inspect.isawaitable(value := condition()) else value):
            await asyncio.sleep(0.02)
        return result


@pytest.mark.redis
async def test_one_worker_decides_for_a_shard_and_a_standby_takes_over_a_clean_stop_at_once(settings, r):
    settings = settings.model_copy(update={"md_shards": 2, "strategy_claim_idle_ms": 60_000})
    first = StrategyService(settings, "cross", "a", Shard(1, 2))
    second = StrategyService(settings, "cross", "b", Shard(1, 2))
    stops = asyncio.Event(), asyncio.Event()
    task = asyncio.ensure_future(first.run(stops[0]))
    await _until(lambda: first.lease is not None and first.lease.token)
    standby = asyncio.ensure_future(second.run(stops[1]))
    try:
        await _until(lambda: second.lease is not None)
        assert await second.lease.take() == 0  # held: a minute's TTL, renewed
        assert first.streams[:4] == list(settings.md_streams(1).values())
        held = (await r.get(settings.redis_key_prefix + "strategy:shard:{1}:lease")).decode()
        assert held.startswith("a@") and held.endswith(f" {first.lease.token}")
        token = first.lease.token
        stops[0].set()
        await asyncio.wait_for(task, 10)  # releases its lease: no wait for the TTL
        assert await _until(lambda: second.lease.token) == token + 1
    finally:
        stops[0].set()
        stops[1].set()
        await asyncio.gather(task, standby)
    assert await r.get(settings.redis_key_prefix + "strategy:shard:{1}:lease") is None


@pytest.mark.redis
async def test_a_killed_shard_worker_is_replaced_within_the_claim_idle_time_and_its_signals_fenced(settings, r):
    """`arb strategy --shard 0/2` in its own process, SIGKILLed: its lease lapses after
    STRATEGY_CLAIM_IDLE_MS and the standby takes it with the next token, which its signals carry."""
    from services.strategy.scanner import Opportunity
    from services.strategy.signals import Signal

    idle_ms = 2_500  # above STRATEGY_MAX_EVENT_AGE_MS (2,000), as settings require
    settings = settings.model_copy(update={"md_shards": 2, "strategy_claim_idle_ms": idle_ms})
    env = {**os.environ, "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "MD_SHARDS": "2", "STRATEGY_CLAIM_IDLE_MS": str(idle_ms)}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "strategy", "--shard", "0/2", "--consumer",
                             "doomed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lease_key = settings.redis_key_prefix + "strategy:shard:{0}:lease"
    standby = StrategyService(settings, "cross", "standby", Shard(0, 2))
    stop = asyncio.Event()
    task = None
    try:
        held = await _until(lambda: r.get(lease_key), timeout_s=30)
        old_token = int(held.decode().rsplit(" ", 1)[1])
        task = asyncio.ensure_future(standby.run(stop))
        await _until(lambda: standby.lease is not None)
        assert await standby.lease.take() == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        assert await _until(lambda: standby.lease.token, timeout_s=10) == old_token + 1
        taken_after_s = time.monotonic() - killed
        o = Opportunity(symbol="ETHUSDT", long_venue="bybit", short_venue="okx", long_price=1.0, short_price=1.1,
                        spread_bps=10.0, funding_delta_8h=0.0, confidence=80, fees_bps=1.0, slippage_bps=1.0,
                        projected_profit_usd=1.0, projected_profit_after_slippage_usd=1.0, depth_long_usd=1.0,
                        depth_short_usd=1.0, detected_ms=1)
        fields = standby.signal_fields(Signal(id="ETHUSDT-bybit-okx-1", created_ms=1, opportunity=o))
        assert (fields["shard"], fields["fence"]) == ("0/2", str(old_token + 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 10)
    # the dead owner's lease lapsed after its TTL, and the standby polls ten times per TTL
    assert taken_after_s <= (idle_ms + idle_ms / 10) / 1000 + 1.0, taken_after_s


@pytest.mark.redis
async def test_each_shards_worker_writes_the_top_20_of_all_shards(settings, r):
    from shared.resp import RespConnection
    from tests.test_strategy_scanner import quote

    settings = settings.model_copy(update={"md_shards": 2})
    now_ms = time.time_ns() // 1_000_000
    for venue in ("binance", "bybit"):
        await r.hset(settings.redis_key_prefix + f"strategy:latency:{venue}",
                     mapping={"is_stale": "0", "local_time_ms": str(now_ms)})
    workers = [StrategyService(settings, "cross", f"w{k}", Shard(k, 2)) for k in range(2)]
    for stream in settings.all_md_streams():  # the groups the workers make when they run
        await r.xgroup_create(stream, "strategy", id="$", mkstream=True)
    symbols = [f"S{i:02d}USDT" for i in range(30)]
    for w in workers:
        w.lease = Lease(r, settings.redis_key_prefix, w.shard, w.consumer, 60_000)
        assert await w.lease.take()
        for i, symbol in enumerate(s for s in symbols if w.shard.owns(s)):
            quote(w.core.state, "binance", symbol, 99.99, 100.0, size=1000.0, lean=1, ts=now_ms)
            quote(w.core.state, "bybit", symbol, 100.40, 100.41, funding=0.001 + i * 0.00001, size=1000.0,
                  lean=-1, ts=now_ms)
    conn = RespConnection(settings.redis_url, encoding="utf-8")
    try:
        own = [await w.scan_once(conn) for w in workers]
    finally:
        await conn.close()
    p = settings.redis_key_prefix
    shard_lists = [json.loads(await r.get(f"{p}strategy:shard:{{{k}}}:opportunities")) for k in range(2)]
    assert [len(x) for x in shard_lists] == [len(x.opportunities) for x in own]
    assert {o["symbol"] for o in shard_lists[0]} | {o["symbol"] for o in shard_lists[1]} == set(symbols)
    latest = (await r.get(p + "strategy:opportunities:latest")).decode()
    merged = [json.loads(x) for x in await r.lrange(latest, 0, -1)]
    assert merged == merge_top(shard_lists) and len(merged) == 20
    assert {o["symbol"] for o in merged} & {o["symbol"] for o in shard_lists[0]}
    assert {o["symbol"] for o in merged} & {o["symbol"] for o in shard_lists[1]}
    assert 58 <= await r.ttl(f"{p}strategy:shard:{{0}}:opportunities") <= 60
