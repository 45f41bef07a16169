"""Shared fixtures: a real Redis, per-test key prefixes, and the recorded Bybit frames.

Redis: REDIS_URL when set; else a throwaway redis-server from PATH on a free port; else (not
in CI) fakeredis over TCP. Every test writes only under its own key prefix and deletes
only those keys: REDIS_URL may point at a Redis that other things use.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web

from shared.settings import Settings

# The specification's shared/ folder (real venue samples) sits beside the repository.
SHARED = Path(os.environ.get("ARB_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
SAMPLES = SHARED / "venue-samples"
if not SAMPLES.is_dir():
    raise RuntimeError(f"recorded venue samples not found at {SAMPLES}: the tests read the shared/ folder "
                       "that sits beside this repository; set ARB_SHARED_DIR to where it is")
BYBIT_SAMPLES = SAMPLES / "bybit"
LINEAR_CAPTURE = BYBIT_SAMPLES / "ws_linear_capture_2026-08_cryptofeed.jsonl"


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768-60999 here), so that no outgoing
    connection takes it between now and when a child process listens on it (a port the kernel
    hands out for bind(0) is in that range, and arb up binds its ports seconds later)."""
    for port in random.SystemRandom().sample(range(20_000, 32_000), 500):  # whatever seed a test set
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def start_redis_server(port: int, workdir: str) -> subprocess.Popen:
    """A private redis-server on 127.0.0.1:`port`, ready when this returns."""
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.025)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="session")
def redis_url():
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    if shutil.which("redis-server"):
        port = free_port()
        with tempfile.TemporaryDirectory() as workdir:
            proc = start_redis_server(port, workdir)
            yield f"redis://127.0.0.1:{port}/0"
            proc.terminate()
            proc.wait(10)
        return
    if os.environ.get("CI"):
        pytest.fail("CI must test against a real Redis: set REDIS_URL or put redis-server on PATH")
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{port}/0"
    server.shutdown()


@contextlib.asynccontextmanager
async def serve_app(app: web.Application):
    """Serve an aiohttp app on a free port of 127.0.0.1; yields its http:// base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def taken_port():
    """A port on 127.0.0.1 that something is already listening on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def r(redis_url, prefix):
    """An async client; deletes this test's keys afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
def settings(redis_url, prefix) -> Settings:
    return Settings(redis_url=redis_url, redis_key_prefix=prefix, venue_env="sim",
                    symbols_to_trade="BTCUSDT,ETHUSDT,SOLUSDT,DOGEUSDT", reconnect_initial_s=0.05,
                    reconnect_max_s=0.2, _env_file=None)


def hosts_at(url: str) -> tuple[str, str]:
    """The VENUE_HOSTS entry for a local server at `url` (any scheme and path)."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    return f"http://{host}", f"ws://{host}"


def bybit_instruments():
    """Bybit's real linear instruments list (2026-08, trimmed) as a SymbolMap."""
    from shared.instruments import SymbolMap
    from shared.venues.bybit import rest

    return SymbolMap("bybit", rest.instruments([(BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json")
                                                .read_bytes()]))


def capture_records(path: Path = LINEAR_CAPTURE) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def capture_frames(path: Path = LINEAR_CAPTURE) -> list[bytes]:
    """Every frame the venue sent, in order, as received."""
    return [rec["data"].encode() for rec in capture_records(path) if rec["t"] == "recv"]


def shape(value):
    """Keys and value types, recursively: what 'the same shape as the real message' means."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def spread_openings(seed: int, hours: float = 2.0, step_ms: int = 250, venue: str = "binance",
                    threshold: float = 0.0020) -> tuple[int, float, float]:
    """Run the simulator's market model alone: how many times |venue's basis to Bybit| opened
    to `threshold` or more, the share of time it stayed there, and the longest stretch in s."""
    from services.sim.market import MarketModel, ModelConfig

    model = MarketModel(["BTCUSDT"], seed=seed, start_ms=0, config=ModelConfig(book_levels=5))
    state = model.states["BTCUSDT"].venues[venue]
    steps = int(hours * 3_600_000 / step_ms)
    wide = openings = 0
    run_s = longest = 0.0
    for i in range(1, steps + 1):
        model.step(i * step_ms)
        if abs(state.basis) >= threshold:
            wide += 1
            openings += run_s == 0
            run_s += step_ms / 1000
            longest = max(longest, run_s)
        else:
            run_s = 0.0
    return openings, wide / steps, longest
