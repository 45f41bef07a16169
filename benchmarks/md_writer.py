"""Writes a simulated three-venue minute of market events into md:* at a steady rate, each
entry stamped with its XADD time in `receive_ts_us`, and keeps the three venues' latency
verdicts fresh; a separate process, so the reader being measured has the event loop to itself.
Commands are packed by shared/resp.py (a few µs each), and the stamp is taken as each batch
of one millisecond is packed.

    python benchmarks/md_writer.py --redis-url URL --prefix P --rate 5000 --seconds 10 [--maxlen 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.codec import to_fields  # noqa: E402
from shared.resp import RespConnection, pack_with_fields  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.test_strategy_replay import simulated_events  # noqa: E402


async def write(args) -> int:
    streams = Settings(redis_key_prefix=args.prefix, _env_file=None).md_streams()
    entries = [(("XADD", streams[e.TYPE], "MAXLEN", "~", str(args.maxlen), "*"), to_fields(e))
               for e in simulated_events(seed=21)]
    conn = RespConnection(args.redis_url)
    await conn.connect()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # go
    batch = max(1, int(args.rate / 1000))  # a batch every millisecond
    sent, start, verdicts_at = 0, time.perf_counter(), 0.0
    while (elapsed := time.perf_counter() - start) < args.seconds:
        if elapsed >= verdicts_at:  # every venue fresh, as `arb latency` would say
            now_ms = str(time.time_ns() // 1_000_000)
            await conn.execute(b"".join(
                pack_with_fields(("HSET", f"{args.prefix}strategy:latency:{v}"), {"is_stale": "0",
                                                                                 "local_time_ms": now_ms})
                for v in ("bybit", "binance", "okx")), 3)
            verdicts_at = elapsed + 1.0
        if sent >= elapsed * args.rate:  # ahead: sleep until the next batch is due
            await asyncio.sleep(max(0.0, sent / args.rate - elapsed))
            continue
        now_us = str(time.time_ns() // 1000)
        packed = b"".join(pack_with_fields(head, {**fields, "receive_ts_us": now_us})
                          for head, fields in (entries[(sent + i) % len(entries)] for i in range(batch)))
        await conn.execute(packed, batch)
        sent += batch
    await conn.close()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--maxlen", type=int, default=100_000, help="each md:* stream's cap (XADD MAXLEN ~)")
    print(asyncio.run(write(parser.parse_args())), flush=True)


if __name__ == "__main__":
    main()
