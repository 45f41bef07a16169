"""The stack on a real Redis Cluster (3 masters, 3 replicas, on loopback ports): the lean
connection's routing, and a failover while trading. The ingestors, two strategy shards and the
paper executor run on it; the master holding the executor's facts is killed; its replica takes
over, every service goes on, no acknowledged fact is lost, no leg is left naked, and market
data resumes with the gap measured."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time

import aiohttp
import pytest

from shared.settings import Settings

pytestmark = [pytest.mark.redis, pytest.mark.skipif(not shutil.which("redis-server") or not shutil.which("redis-cli"),
                                                   reason="needs redis-server and redis-cli on PATH")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from shared.local_cluster import start_cluster

    c = start_cluster(tmp_path_factory.mktemp("cluster"), node_timeout_ms=1000)
    try:
        yield c
    finally:
        c.stop()


async def test_the_lean_connection_routes_each_command_to_its_slots_master(cluster):
    from redis.asyncio.cluster import RedisCluster

    from shared.cluster import ClusterConnection
    from shared.resp import pack_command, pack_with_fields

    conn = ClusterConnection(cluster.url, encoding="utf-8")
    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    try:
        streams = [f"rt:md:{{{k}}}:tickers" for k in range(6)]  # over all three masters
        assert len({cluster.master_of(s) for s in streams}) == 3
        packed = b"".join(pack_with_fields(("XADD", s, "*"), {"k": str(i)}) for i, s in enumerate(streams))
        ids = await conn.execute(packed + pack_command("GET", "rt:nothing"), len(streams) + 1)
        assert ids[-1] is None and all("-" in i for i in ids[:-1])
        assert [(await client.xrange(s))[0][1]["k"] for s in streams] == [str(i) for i in range(6)]
        # a transaction stays whole on its slot's node, and WAIT goes where it went
        replies = await conn.execute(pack_command("MULTI") + pack_command("XADD", "rt:events", "*", "a", "1")
                                     + pack_command("EXEC") + pack_command("WAIT", "1", "2000"), 4)
        assert replies[0] == "OK" and replies[3] == 1
        before = conn.refreshes
        await conn.execute(pack_command("SET", "rt:x", "1"), 1)
        assert conn.refreshes == before  # the map is kept
        # a key moved under it: MOVED is followed and the map refreshed
        conn.slots = [conn.slots[0]] * 16384  # as if every slot were on one master
        got = await conn.execute(b"".join(pack_command("GET", f"rt:{{{k}}}") for k in range(6)), 6)
        assert got == [None] * 6 and conn.redirects > 0 and conn.refreshes > before
    finally:
        await conn.close()
        await client.aclose()


async def test_a_master_killed_while_trading_loses_no_acknowledged_fact_and_leaves_no_naked_leg(cluster, tmp_path):
    from redis.asyncio.cluster import RedisCluster

    from services.executor.service import ExecutorService
    from services.ingestor.service import Ingestor
    from services.latency.service import LatencyMonitor
    from services.sim.server import SimServer
    from services.strategy.service import StrategyService
    from shared.shards import Shard
    from tests.conftest import serve_app
    from tests.figures import figure

    prefix = "fo:"
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=21, step_ms=10)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        s = Settings(_env_file=None, redis_url=cluster.url, redis_cluster=True, redis_key_prefix=prefix, md_shards=2,
                     sim_port=int(base.rsplit(":", 1)[1]), symbols_to_trade=["BTCUSDT", "ETHUSDT"],
                     executor_venues=["bybit", "binance"], strategy_scorer="dashboard", latency_poll_ms=100,
                     signal_cooldown_s=0, strategy_claim_idle_ms=3000, safety_max_p99_ms=0)
        client = RedisCluster.from_url(cluster.url, decode_responses=True)
        stop = asyncio.Event()
        ingestors = [Ingestor(s, v, s.symbols_to_trade) for v in ("bybit", "binance")]
        strategies = [StrategyService(s, "cross", f"s{k}", Shard(k, 2)) for k in range(2)]
        executor = ExecutorService(s, "cross")
        services = [*ingestors, LatencyMonitor(s, ["bybit", "binance"]), executor, *strategies]
        tasks = [asyncio.ensure_future(x.run(stop)) for x in services]
        events = prefix + "strategy:events"

        async def taken() -> list[str]:
            return [i for i, fields in await client.xrange(events) if fields.get("type") == "signal_taken"]

        async def force(symbol: str) -> None:
            async with http.post(f"{base}/admin/opportunity", json={
                    "symbol": symbol, "venue": "binance", "spread_bps": 100, "funding_delta": 0.005,
                    "seconds": 20}) as response:
                assert response.status == 200

        try:
            async with asyncio.timeout(60):
                while not (executor.ready.is_set() and all(x.lease and x.lease.token for x in strategies)
                           and all(x.core.stale == {"binance": False, "bybit": False} for x in strategies
                                   if x.core.state.by_symbol)):
                    await asyncio.sleep(0.1)
                await force("BTCUSDT")
                while not await taken():
                    await asyncio.sleep(0.1)
            acknowledged = [i for i, _ in await client.xrange(events)]  # every one passed WAIT before acting
            victim = cluster.master_of(events)
            md_before = {k: await client.xlen(s.md_streams(k)["ticker"]) for k in range(2)}
            victim_shards = [k for k in range(2) if cluster.master_of(s.md_streams(k)["ticker"]) == victim]
            cluster.kill(victim)
            killed, killed_ms = time.monotonic(), time.time_ns() // 1_000_000
            async with asyncio.timeout(60):
                while cluster.master_of(events) == victim:
                    await asyncio.sleep(0.1)
            promoted = time.monotonic() - killed
            first = len(await taken())
            async with asyncio.timeout(60):
                await force("ETHUSDT")
                while len(await taken()) <= first:  # every service back: data in, a signal, a trade
                    await asyncio.sleep(0.2)
                for k in range(2):  # market data flows on every shard again
                    while await client.xlen(s.md_streams(k)["ticker"]) <= md_before[k]:
                        await asyncio.sleep(0.1)
            after = [i for i, _ in await client.xrange(events)]
            # the longest pause in each shard's tickers around the kill, from their entry ids
            gaps = []
            for k in range(2):
                ids = [int(i.split("-")[0]) for i, _ in await client.xrange(s.md_streams(k)["ticker"])]
                around = [t for t in ids if t >= killed_ms - 1000]
                gaps.append(max((b - a for a, b in itertools.pairwise(around)), default=0))
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
    assert cluster.role(next(p for p in cluster.procs if cluster.master_of(events) == p)) == "master"
    lost = [i for i in acknowledged if i not in set(after)]
    figure(26, "cluster failover: acknowledged facts lost", len(lost), "0", not lost)
    naked = [t.id for t in executor.core.trades.values() if t.held["long"] + t.held["short"] != 0]
    figure(26, "cluster failover: naked legs", len(naked), "0", not naked)
    figure(26, "cluster failover: replica promoted after (s)", promoted, "node timeout 1 s + election", True)
    figure(26, "cluster failover: longest pause in market data, shards on the killed master "
           f"{victim_shards or 'none'} (ms)", max(gaps), "counted", True)
    figure(26, "cluster failover: longest failed-write run of an ingestor (ms)",
           max(x.writer.stats.outage_ms for x in ingestors), "counted", True)
    assert not lost and not naked
    assert executor.counts["facts"] > len(acknowledged) and executor.replication_wait.count > 0


def test_arb_up_redis_cluster_runs_the_shards_on_a_local_cluster_and_the_readmes_lines_reach_it(tmp_path):
    """`arb up --mode cross --shards 2 --redis-cluster`, as the README gives it: a cluster of six
    nodes, both shards' workers, a forced spread traded; then the README's `redis-cli -c` lines,
    typed as printed (on the ports this run's cluster took), show the data."""
    import json
    import os
    import re
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from tests.conftest import free_port

    root = Path(__file__).resolve().parents[1]
    lines = re.findall(r"^(redis-cli -c .+)$", (root / "README.md").read_text(), re.M)
    assert lines, "the README gives no redis-cli -c line"
    sim_port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VENUE_ENV", "ENVIRONMENT",
                                                            "REDIS_KEY_PREFIX")}
    env.update(PYTHONPATH=str(root), SIM_PORT=str(sim_port), ARB_STATE_DIR=str(tmp_path / "state"),
               SIGNAL_COOLDOWN_S="2", EXIT_MAX_HOLD_S="3", EXECUTOR_VENUES="bybit,binance", TERM="dumb")
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--mode", "cross", "--venues", "bybit,binance",
                           "--shards", "2", "--redis-cluster", "--duration", "90", "--metrics-port", str(free_port())],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    try:
        deadline = time.monotonic() + 150
        while not any("is up;" in line for line in said):
            line = up.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(said)[-3000:]
            said.append(line)
        port = re.search(r"Redis Cluster of 3 masters and 3 replicas on 127\.0\.0\.1:(\d+)", "".join(said))[1]
        ask = urllib.request.Request(f"http://127.0.0.1:{sim_port}/admin/opportunity", method="POST", data=json.dumps(
            {"symbol": "BTCUSDT", "venue": "binance", "spread_bps": 80, "funding_delta": 0.004,
             "seconds": 30}).encode(), headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(ask).status == 200
        shown = {}
        while time.monotonic() < deadline:
            shown = {line: subprocess.run(line.replace("-p 7000", f"-p {port}"), shell=True, capture_output=True,
                                          text=True, timeout=10) for line in lines}
            if all(done.returncode == 0 and done.stdout.strip() and "ERR" not in done.stdout
                   for done in shown.values()) and "closed_trades" in "".join(d.stdout for d in shown.values()):
                break
            time.sleep(1)
        else:
            raise AssertionError({line: (d.stdout[-300:], d.stderr[-300:]) for line, d in shown.items()})
    finally:
        up.send_signal(2)  # as Ctrl+C
        rest = up.communicate(timeout=120)[0]
    text = "".join(d.stdout for d in shown.values())
    assert "venue" in text and "strategy-1@" in text and "symbol" in text  # a book, shard 1's lease, the ranking
    assert up.returncode == 0, rest[-3000:]
    assert "0 open" in rest
