"""`arb record` and `arb replay` (I/O): the live md:* streams into a recording file, and a
recording back into the streams.

The recording's first line holds the order grids of the executor's venues (read from their
instruments lists at the start), so a backtest of it needs nothing else (replay.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from services.backtest.replay import grid_line, read_recording
from shared import redis_io
from shared.codec import to_fields
from shared.settings import Settings


async def record(settings: Settings, path: Path, stop: asyncio.Event, progress=None) -> int:
    """Entries added to md:* from now until `stop`, appended to `path`; how many."""
    from services.executor.service import ExecutorService

    grids_from = ExecutorService(settings, "cross")
    async with aiohttp.ClientSession() as http:
        await grids_from.load_grids(http, settings.executor_venues, stop)
    client = redis_io.client(settings, socket_timeout=10, decode_responses=True)
    # from now on: each stream's newest id now (a `$` kept across reads would skip what arrives
    # on one stream while another is being read)
    streams = {}
    for name in settings.all_md_streams():
        newest = await client.xrevrange(name, "+", "-", count=1)
        streams[name] = newest[0][0] if newest else "0-0"
    n = 0
    try:
        with path.open("w", encoding="utf-8") as out:
            out.write(grid_line(grids_from.core.grids) + "\n")
            while not stop.is_set():
                replies = await client.xread(streams, count=1000, block=500)
                batch = []
                for stream, entries in replies or []:
                    streams[stream] = entries[-1][0]
                    batch += [(_id_key(entry_id), fields) for entry_id, fields in entries]
                for _, fields in sorted(batch, key=lambda item: item[0]):  # one time order across the streams
                    out.write(json.dumps({"fields": fields}, separators=(",", ":")) + "\n")
                n += len(batch)
                out.flush()
                if progress:
                    progress(n)
    finally:
        await client.aclose()
    return n


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def replay_into_streams(settings: Settings, path: Path, speed: float, stop: asyncio.Event) -> int:
    """The recording's events into md:* (MAXLEN ~ as the ingestors write); `speed` 0 is as fast
    as Redis takes them, else the recorded pace times `speed`. How many were written."""
    _, events, _ = read_recording(path)
    client = redis_io.client(settings, socket_timeout=10)
    n, first, started = 0, None, time.monotonic()
    try:
        pipe = client.pipeline(transaction=False)
        for event in events:
            if stop.is_set():
                break
            if speed > 0:
                first = first if first is not None else event.receive_ts_us
                due = (event.receive_ts_us - first) / 1e6 / speed - (time.monotonic() - started)
                if due > 0:
                    await pipe.execute()
                    await asyncio.sleep(due)
            stream = settings.md_route(event.symbol)[event.TYPE]
            pipe.xadd(stream, to_fields(event), maxlen=settings.md_stream_maxlen, approximate=True)
            n += 1
            if n % 500 == 0:
                await pipe.execute()
        await pipe.execute()
    finally:
        await client.aclose()
    return n
