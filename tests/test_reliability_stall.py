"""Reliability item 3: stall the executor while market data arrives at 5,000 events/s into
capped md:* streams and signals keep coming, then let it go on (SIGCONT). It stops itself
(the failpoint `signal_read=1:stop`) right after reading a signal, so it holds that signal,
and whatever came with it, read and not acked through the stall.

Ticks come from benchmarks/md_writer.py, its own process, into streams capped well below what
the stall piles up, so Redis trims entries the stopped executor had read and not acked.
Figures: signals lost = 0 (every signal written has its decision in strategy:events),
deleted IDs that XAUTOCLAIM returns on the signal and event streams = 0, and md:tickers
never longer than its cap (Redis trims `~` whole nodes of 100 entries). XAUTOCLAIM is asked for
the executor's own consumer, so it claims nothing away from it (it only adds to the delivery
counts).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from services.executor import facts as f
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.figures import figure, scale
from tests.test_strategy_service import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
ROOT = Path(__file__).resolve().parents[1]
CAP = 5_000  # per md:* stream: a second of ticks
NODE = 100  # stream-node-max-entries: how far past the cap `MAXLEN ~` may leave a stream


async def _deleted(r, stream: str, group: str, consumer: str) -> int:
    """IDs XAUTOCLAIM reports as deleted: pending entries whose payload was trimmed away."""
    cursor, deleted = "0-0", 0
    while True:
        reply = await r.xautoclaim(stream, group, consumer, 0, cursor, count=1000)
        cursor, deleted = reply[0], deleted + len(reply[2])
        if cursor in (b"0-0", "0-0"):
            return deleted


async def test_3_a_stalled_executor_loses_no_signal_while_ticks_are_trimmed_at_their_cap(settings, r, tmp_path):
    stall_s = scale(8, 60)
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=2, step_ms=50)
    async with serve_app(server.app()) as base:
        port = base.rsplit(":", 1)[1]
        p = settings.redis_key_prefix
        signals, events, tickers = p + "strategy:signals", p + "strategy:events", p + "md:{0}:tickers"
        env = {**os.environ, "REDIS_URL": settings.redis_url, "REDIS_KEY_PREFIX": p, "VENUE_ENV": "sim",
               "SIM_PORT": port, "SYMBOLS_TO_TRADE": "BTCUSDT,ETHUSDT", "EXECUTION": "paper", "LOG_LEVEL": "INFO",
               "MD_STREAM_MAXLEN": str(CAP), "ARB_FAILPOINTS": "signal_read=1:stop"}
        writer = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "benchmarks/md_writer.py"), "--redis-url", settings.redis_url, "--prefix", p,
            "--rate", "5000", "--seconds", str(stall_s + 25), "--maxlen", str(CAP), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        log = (tmp_path / "executor.log").open("ab")
        executor = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", "executor", env=env,
                                                        stderr=log)
        n, longest = 0, 0

        async def signals_for(seconds: float) -> None:
            nonlocal n, longest
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                await r.xadd(signals, {"id": f"stall-{n}", "mode": "cross", "symbol": "BTCUSDT", "long_venue": "binance",
                                       "short_venue": "okx", "spread_bps": "40", "funding_delta_8h": "0.001",
                                       "confidence": "80", "depth_long_usd": "200000", "depth_short_usd": "200000",
                                       "created_ms": str(time.time_ns() // 1_000_000)})
                n += 1
                longest = max(longest, await r.xlen(tickers))
                await asyncio.sleep(0.05)

        try:
            assert (await writer.stdout.readline()).strip() == b"ready"
            writer.stdin.write(b"go\n")
            try:  # reading market data
                await wait_for(lambda: _md_read(r, tickers), timeout_s=30)
            except TimeoutError:
                raise AssertionError((tmp_path / "executor.log").read_text()[-3000:]) from None
            await signals_for(0.05)  # the first it reads stops it: stalled, holding what it read
            await wait_for(lambda: _stopped(executor.pid), timeout_s=10)
            await signals_for(stall_s)
            held = sum(c["pending"] for c in await r.xinfo_consumers(signals, "executor"))
            deleted_signals = await _deleted(r, signals, "executor", "executor-1")
            trimmed_md = sum([await _deleted(r, p + s, "executor", "executor-1")
                              for s in ("md:{0}:tickers", "md:{0}:books", "md:{0}:trades")])
            executor.send_signal(signal.SIGCONT)
            await signals_for(2.0)
            try:
                await wait_for(lambda: _all_decided(r, events, n), timeout_s=60)
            except TimeoutError:
                raise AssertionError(f"{await _decided(r, events, n)} of {n} decided; {await _undecided(r, events, n)}"
                                     f"{await r.xinfo_consumers(signals, 'executor')} "
                                     + (tmp_path / "executor.log").read_text()[-1500:]) from None
            # the event stream, read by a group of its own as the strategy reads it
            await r.xgroup_create(events, "probe", id="0")
            await r.xreadgroup("probe", "probe-1", {events: ">"}, count=100_000)
            deleted_events = await _deleted(r, events, "probe", "probe-1")
        finally:
            for proc in (executor, writer):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.terminate()
                    await proc.wait()
    decided = await _decided(r, events, n)
    lost = n - decided
    figure(3, f"executor stalled {stall_s} s under 5,000 ticks/s ({n} signals, {held} pending in the "
           f"stall): signals lost / XAUTOCLAIM deleted IDs on signals + events / longest md:tickers (cap {CAP:,})",
           f"{lost} / {deleted_signals + deleted_events} / {longest:,}", f"0 / 0 / <= {CAP + NODE:,}",
           not lost and not (deleted_signals or deleted_events) and longest <= CAP + NODE)
    figure(3, "md:* entries the stalled executor held that Redis trimmed (capped: expected when it held any)",
           f"{trimmed_md:,}", "reported", True)
    assert held >= 1, "the stalled executor held no signal: the stall tested nothing"
    assert lost == 0 and deleted_signals == 0 and deleted_events == 0
    assert longest <= CAP + NODE


async def _decided(r, events: str, n: int) -> int:
    """How many of the n signals have their decision (taken or rejected) among the facts."""
    ids = set()
    for _, fields in await r.xrange(events):
        fact = f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
        if isinstance(fact, f.SignalTaken | f.SignalRejected):
            ids.add(fact.signal_id)
    return len(ids & {f"stall-{i}" for i in range(n)})


async def _md_read(r, stream: str) -> bool:
    try:
        return any(g["name"] == b"executor" and g["entries-read"] for g in await r.xinfo_groups(stream))
    except Exception:  # no stream or no group yet
        return False


async def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


async def _undecided(r, events: str, n: int) -> list[str]:
    ids = set()
    for _, fields in await r.xrange(events):
        fact = f.from_fields({k.decode(): v.decode() for k, v in fields.items()})
        if isinstance(fact, f.SignalTaken | f.SignalRejected):
            ids.add(fact.signal_id)
    return sorted({f"stall-{i}" for i in range(n)} - ids)


async def _all_decided(r, events: str, n: int) -> bool:
    return await _decided(r, events, n) == n
