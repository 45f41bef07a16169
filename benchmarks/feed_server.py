"""A local WebSocket feed for benchmarks: replays the real Bybit capture at a fixed rate.

    python benchmarks/feed_server.py --port 8901 --rate 10000 --seconds 10

Waits for a subscribe, acknowledges it, then sends the capture's frames in a loop, `rate`
frames per second (0 = as fast as the client reads), until `seconds` after it started, and
closes. Frames are encoded once and written to the socket in chunks, so the server costs
little CPU; it runs as its own process so that it does not share the measured ingestor's
event loop. Plain HTTP on the same port answers the two Bybit REST calls an ingestor makes
first (the recorded instruments list, the server time), so `VENUE_HOSTS=bybit=127.0.0.1:8901`
points a whole stack's Bybit market data here (the reliability soak).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import time
from pathlib import Path

import websockets

SHARED = Path(os.environ.get("ARB_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
CAPTURE = SHARED / "venue-samples/bybit/ws_linear_capture_2026-08_cryptofeed.jsonl"
INSTRUMENTS = SHARED / "venue-samples/bybit/rest_instruments_info_linear_trimmed_2026-08.json"


def frames(mix: str = "capture") -> list[bytes]:
    """The capture's frames, each already a complete server-to-client WebSocket text frame.

    mix "capture": every frame as recorded (63% orderbook.200 deltas on 4 symbols);
    mix "tickers": only the tickers and publicTrade frames."""
    out = []
    for line in CAPTURE.read_text().splitlines():
        record = json.loads(line)
        data = record.get("data", "")
        if record["t"] != "recv" or '"op":"subscribe"' in data:
            continue
        if mix == "tickers" and not data.startswith(('{"topic":"tickers.', '{"topic":"publicTrade.')):
            continue
        out.append(_ws_frame(data.encode()))
    return out


def _ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


def _rest(connection, request):
    """The Bybit REST answers an ingestor needs before it subscribes; None for the WebSocket."""
    path = request.path.split("?", 1)[0]
    if path == "/v5/market/instruments-info":
        return connection.respond(200, INSTRUMENTS.read_text())
    if path == "/v5/market/time":
        now_ns = time.time_ns()
        return connection.respond(200, json.dumps({"retCode": 0, "retMsg": "OK", "result": {
            "timeSecond": str(now_ns // 10**9), "timeNano": str(now_ns)}, "time": now_ns // 10**6}))
    return None


async def serve(port: int, rate: float, seconds: float, mix: str) -> None:
    data = frames(mix)
    until = time.perf_counter() + seconds

    async def handler(ws) -> None:
        request = json.loads(await ws.recv())
        await ws.send(json.dumps({"success": True, "ret_msg": "", "conn_id": "bench", "req_id":
                                  request.get("req_id", ""), "op": "subscribe"}))
        drain = asyncio.ensure_future(_ignore_requests(ws))
        transport = ws.transport  # frames are pre-encoded: write them in chunks, one syscall each
        start = time.perf_counter()
        sent = 0
        try:
            while time.perf_counter() < until and not transport.is_closing():
                elapsed = time.perf_counter() - start
                due = 256 if rate <= 0 else int(rate * elapsed) - sent
                if due > 0:
                    transport.write(b"".join(data[(sent + i) % len(data)] for i in range(due)))
                    sent += due
                while transport.get_write_buffer_size() > 1 << 20:  # the client is behind
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0 if rate <= 0 else max(0.0, (sent + 1) / rate - elapsed))
            await ws.close()
        except (websockets.ConnectionClosed, RuntimeError):  # the client went: RuntimeError after write_eof
            pass
        finally:
            drain.cancel()

    async with websockets.serve(handler, "127.0.0.1", port, compression=None, process_request=_rest):
        print("ready", flush=True)
        await asyncio.sleep(max(0.0, until - time.perf_counter()))


async def _ignore_requests(ws) -> None:
    """Resubscribes are ignored (the loop brings the snapshots round again); pings answered."""
    async for message in ws:
        if '"ping"' in message:
            await ws.send(json.dumps({"success": True, "ret_msg": "pong", "conn_id": "bench", "op": "ping"}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--mix", choices=["capture", "tickers"], default="capture")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.rate, args.seconds, args.mix))
