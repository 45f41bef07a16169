"""The floor under the running stack's traced path on this machine: the same hops with no work.

    python benchmarks/path_floor.py --redis-url redis://127.0.0.1:6390/0 --rate 200 --seconds 20

A stamp goes through the processes the stack's path goes through, each doing nothing but
passing it on, over the project's lean RespConnection: this process XADDs it to stream 0 (the
ingestor's write), a relay process reads it with XREADGROUP BLOCK and XADDs it to stream 1
(the strategy), a second relay to stream 2 (the executor's read), and a reader task here
reads stream 2. Printed: the time from
the first XADD to each hop's read, p50/p99/p99.9. What the stack adds above these figures is
its work and its processes competing for the same cores; what these figures show is what
three processes and Redis cost on this machine however little they do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.metrics import LatencyHistogram  # noqa: E402
from shared.resp import RespConnection, pack_command, pack_with_fields  # noqa: E402


def _read(source: str) -> bytes:
    return pack_command("XREADGROUP", "GROUP", "g", "c", "COUNT", "100", "BLOCK", "1000", "STREAMS", source, ">")


def _entries(reply) -> list[tuple[str, dict[str, str]]]:
    return [(entry_id, dict(zip(flat[::2], flat[1::2], strict=True))) for _, items in reply or []
            for entry_id, flat in items]


async def relay(url: str, source: str, target: str) -> None:
    """Pass every entry of `source` on to `target`, adding when it was read, until told."""
    conn = RespConnection(url, encoding="utf-8")
    await conn.execute(pack_command("XGROUP", "CREATE", source, "g", "$", "MKSTREAM"), 1)
    print("ready", flush=True)
    read = _read(source)
    while True:
        reply = (await conn.execute(read, 1))[0]
        now_us = str(time.time_ns() // 1000)
        out = []
        for entry_id, fields in _entries(reply):
            fields[f"read_{source[-1]}"] = now_us
            out += [pack_with_fields(("XADD", target, "*"), fields), pack_command("XACK", source, "g", entry_id)]
        if out:
            await conn.execute(b"".join(out), len(out))
        if any("stop" in fields for _, fields in _entries(reply)):
            await conn.close()
            return


async def main(url: str, rate: float, seconds: float, prefix: str) -> list[str]:
    streams = [f"{prefix}floor:{i}" for i in range(3)]
    writer, reader = RespConnection(url, encoding="utf-8"), RespConnection(url, encoding="utf-8")
    relays = [subprocess.Popen([sys.executable, __file__, "--relay", streams[i], streams[i + 1], "--redis-url", url],
                               stdout=subprocess.PIPE) for i in range(2)]
    for proc in relays:
        assert proc.stdout.readline().strip() == b"ready"
    await reader.execute(pack_command("XGROUP", "CREATE", streams[2], "g", "$", "MKSTREAM"), 1)
    hops = {name: LatencyHistogram() for name in ("xadd -> relay 1 read", "xadd -> relay 2 read", "xadd -> last read")}

    async def read_end() -> None:
        read = _read(streams[2])
        while True:
            reply = (await reader.execute(read, 1))[0]
            now_us = time.time_ns() // 1000
            for _, fields in _entries(reply):
                if "stop" in fields:
                    return
                sent = int(fields["sent"])
                hops["xadd -> relay 1 read"].observe_ns(1000 * (int(fields["read_0"]) - sent))
                hops["xadd -> relay 2 read"].observe_ns(1000 * (int(fields["read_1"]) - sent))
                hops["xadd -> last read"].observe_ns(1000 * (now_us - sent))

    end = asyncio.ensure_future(read_end())
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        await writer.execute(pack_command("XADD", streams[0], "*", "sent", str(time.time_ns() // 1000)), 1)
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await writer.execute(pack_command("XADD", streams[0], "*", "stop", "1"), 1)
    await asyncio.wait_for(end, 30)
    for proc in relays:
        proc.wait(10)
    await writer.execute(pack_command("DEL", *streams), 1)
    await writer.close()
    await reader.close()
    return [f"path floor @{rate:,.0f}/s {name:22s} p50 {h.percentile_us(50):6.0f} us  p99 {h.percentile_us(99):6.0f} us"
            f"  p99.9 {h.percentile_us(99.9):6.0f} us   ({h.count:,} stamps)" for name, h in hops.items()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), required="REDIS_URL" not in os.environ)
    parser.add_argument("--rate", type=float, default=200.0, help="stamps a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--prefix", default="bench:")
    parser.add_argument("--relay", nargs=2, metavar=("SOURCE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        asyncio.run(relay(args.redis_url, *args.relay))
    else:
        for line in asyncio.run(main(args.redis_url, args.rate, args.seconds, args.prefix)):
            print(line)
