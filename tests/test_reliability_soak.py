"""Reliability item 12, the soak: the whole stack (`arb up`, cross mode, paper execution) under
ten times the seed's 1,000 market updates/s, 3 minutes in the short form and an hour in the
long one.

Bybit's market data is the real 2026-08 capture replayed at 10,000 WebSocket messages/s by
benchmarks/feed_server.py (its own process, frames encoded once, so the load costs the stack
and not its source); Binance's comes from the simulator, which also runs as in any `arb up`.
Every process's resident memory is sampled every 2 s.

Figures: the rate the Bybit ingestor received; crashes = 0 (`arb up` exits 0 only when every
worker did); each of our services under 100 MB and growing at most 10 % after its warm-up
(its first minute and a half in the short form, its first minute in the hour-long one); drops = 0 below the cap: events the ingestor's
buffer dropped, and md:* entries trimmed before the strategy's or the executor's group read
them. redis-server is reported apart: its memory is the capped streams' data.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.bus import group_stats
from shared.settings import Settings
from tests.conftest import free_port
from tests.figures import figure, scale
from tests.processes import children, rss_mb

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
RATE = 10_000
SERVICES_MB = 100.0


def test_12_the_stack_at_10x_the_seeds_rate_does_not_crash_grow_or_drop(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("the soak runs arb up on its own redis-server")
    seconds = scale(180, 3600)
    # the strategy and the executor settle within a minute of their start (the hour-long run: +3.9 % after it);
    # the short form waits longer: in a fresh clone every process compiles its modules as it starts, all at
    # once on 2 cores, and a CI run measured the strategy's one-time growth (~3 MB) after its first minute
    warm = scale(90.0, 60.0)
    feed_port, state = free_port(), tmp_path / "state"
    feed = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/feed_server.py"), "--port", str(feed_port),
                             "--rate", str(RATE), "--seconds", str(seconds + 120)], stdout=subprocess.PIPE)
    assert feed.stdout.readline().strip() == b"ready"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VENUE_ENV", "ENVIRONMENT")}
    env.update(PYTHONPATH=str(ROOT), SIM_PORT=str(free_port()), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", VENUE_HOSTS=f"bybit=127.0.0.1:{feed_port}",
               EXECUTOR_VENUES="bybit,binance", SYMBOLS_TO_TRADE="BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT")
    # its output to a file: an hour of status lines and reports overflows a pipe nobody reads until the end,
    # and `arb up` would block writing to it, past its --duration
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--mode", "cross", "--venues", "bybit,binance",
                           "--duration", str(seconds), "--state-dir", str(state), "--metrics-port", str(free_port())],
                          cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    peak: dict[str, float] = {}
    after_warm: dict[str, float] = {}
    last: dict[str, float] = {}
    started, stats = None, None
    seen: dict[str, float] = {}  # each process: when it was first seen (its warm-up counts from there)
    try:
        while up.poll() is None:
            if started is None and (state / "redis.url").exists():
                started = time.monotonic()  # the stack is coming up
            for pid, name in children(up.pid).items():
                name = "redis-server" if name.startswith("redis-server") else name  # its title has the port
                if (rss := rss_mb(pid)) is None:
                    continue
                peak[name] = max(peak.get(name, 0.0), rss)
                last[name] = rss
                seen.setdefault(name, time.monotonic())
                if time.monotonic() - seen[name] >= warm:
                    after_warm.setdefault(name, rss)
            if stats is None and started is not None and time.monotonic() - started >= seconds - 10:
                stats = _stats((state / "redis.url").read_text().strip())
            time.sleep(2)
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(60)
        feed.terminate()
        feed.wait(10)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert stats is not None, output[-3000:]
    ours = {n: v for n, v in peak.items() if n != "redis-server"}
    growth = {n: 100 * (last[n] - after_warm[n]) / after_warm[n] for n in ours if after_warm.get(n)}
    worst = max(growth, key=growth.get)
    biggest = max(ours, key=ours.get)
    drops = stats["ingest_dropped"] + sum(stats["group_dropped"].values())
    figure(12, f"soak {seconds / 60:g} min at {RATE:,} Bybit msgs/s offered: received by the ingestor",
           f"{stats['received_per_s']:,.0f} msgs/s", f">= {RATE * 0.95:,.0f}", stats["received_per_s"] >= RATE * 0.95)
    figure(12, "crashes (arb up's exit: 0 only when every worker exited 0)", up.returncode, "0", up.returncode == 0)
    figure(12, f"largest service ({biggest}) / most growth after the {warm:.0f} s warm-up ({worst})",
           f"{ours[biggest]:.1f} MB / {growth[worst]:+.1f} %", f"< {SERVICES_MB:.0f} MB / <= 10 %",
           ours[biggest] < SERVICES_MB and growth[worst] <= 10)
    figure(12, "drops below the cap (ingestor buffer + md entries trimmed before a group read them); "
           f"redis-server {peak.get('redis-server', 0):.0f} MB of capped streams", drops, "0", drops == 0)
    assert up.returncode == 0, output[-3000:]
    assert stats["received_per_s"] >= RATE * 0.95
    assert ours[biggest] < SERVICES_MB, peak
    assert growth[worst] <= 10, {n: f"{after_warm[n]:.1f} -> {last[n]:.1f} MB" for n in growth}
    assert drops == 0, stats


def _stats(url: str) -> dict:
    """What the stack says of itself near the end: the Bybit ingestor's messages and drops
    (its metrics snapshot in Redis), and each group's entries trimmed before it read them."""
    return asyncio.run(_read_stats(url))


async def _read_stats(url: str) -> dict:
    client = aioredis.Redis.from_url(url)
    try:
        snapshot = json.loads(await client.get("metrics:ingest-bybit"))
        started_ms = json.loads(await client.get("health:ingest-bybit"))["started_ms"]
        dropped = {}
        for stream in Settings(_env_file=None).md_streams().values():
            for group in ("strategy", "executor"):
                dropped[f"{stream}/{group}"] = (await group_stats(client, stream, group)).dropped or 0
    finally:
        await client.aclose()
    families = snapshot["families"]
    received = _total(families, "arb_ingest_messages_received_total")
    return {"received_per_s": received / ((snapshot["ts_ms"] - started_ms) / 1000),
            "ingest_dropped": _total(families, "arb_ingest_events_dropped_total"), "group_dropped": dropped}


def _total(families: dict[str, list[list]], sample: str) -> float:
    """A counter's value summed over its labels, from a worker's metrics snapshot."""
    return sum(value for samples in families.values() for name, _, value in samples if name == sample)
