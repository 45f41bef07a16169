"""Ingest-path benchmarks on this machine. Prints figures; asserts nothing.

    python benchmarks/run.py                      # everything, ~1 minute
    python benchmarks/run.py --only parse,bus     # a subset
    python benchmarks/run.py --redis-url redis://127.0.0.1:6379/0

Without --redis-url (or REDIS_URL) it starts a private redis-server from PATH. Keys are
written under a fresh `bench:*:` prefix and deleted afterwards.

  parse    parse + normalize per venue (no I/O): each venue's recorded capture where one
           exists (Bybit 2026-08, Binance 2021, OKX 2022), and for every venue the same
           simulated market (2 symbols, 60 s) in its own wire format
  sim      the simulator's market model and Bybit frames, 10 symbols, no sockets
  spreads  how often the simulated Binance-Bybit spread opens to >= 20 bps in 2 simulated hours
  venues   `arb sim` as its own process: market data to clients of all 4 venues at once over
           WebSockets, while signed orders arrive at 50/s; prints msgs/s, orders/s, latency, CPU
  writers  the same ticker XADDs through redis-py pipelines and through shared/resp.py
  bus      parse + encode + pipelined XADD MAXLEN ~ into Redis, one process, no WebSocket
  ingest   the whole ingestor (WebSocket -> parser -> Redis) fed as fast as it reads
  flood    (not in the default set) the whole ingestor fed as fast as it reads for --flood-seconds
           (60), --flood-runs (10) times per mix: events dropped with Redis up (0 expected in every
           run), the writer buffer's peak against its mark
  latency  WebSocket receive -> XADD acknowledged, p50/p99, at 1,000 and 10,000 msgs/s offered
  strategy the strategy core on replay (events/s, cross mode over a simulated 3-venue minute and
           synthetic mode over the real Bybit capture), then `arb strategy`'s service reading
           md:* from Redis while events are written at 5,000/s: XADD -> decision p50/p99
  executor `arb sim` and `arb ingest --venue bybit` in their own processes, the executor (live,
           synthetic, 4 symbols) here: 120+ trades at Bybit's order rate limit, their success
           rate and failures by kind, signal -> first order sent p50/p99; then 10 trades whose
           easier leg and hedges are refused: the emergency close's time
  executor-cross  the same in cross mode on every pair of Bybit, OKX, Bitget and Binance, one
           leg at each (the simulator's trading APIs, an ingestor each), a row a pair: success
           rate, signal -> first order sent, signal -> both legs' first orders, the harder
           leg's fill -> the easier leg's order, the emergency close
  backtest the funding-arbitrage backtest over 2 years of 1-minute bars of 3 symbols (the real
           30-day files repeated) with the real funding histories: its time and events/s
  floor    (not in the default set) benchmarks/path_floor.py at 200 and 2,000 stamps/s: a stamp
           XADDed and passed on by two relay processes (XREADGROUP -> XADD) to a reader, the hops
           of the traced path with no work in them: what the stack cannot go under here
  e2e      (not in the default set) `arb up` as a user runs it on the simulator, for --e2e-seconds
           (180) after a 20 s warm-up, in synthetic mode and in cross mode (live at Bybit and OKX),
           on 4 symbols (the venues' real rates) and on 40 (10x): the stage table, the traced
           path venue frame -> first order sent (p50/p99/p99.9), where its time went, CPU per process
  scale    (not in the default set) `arb up --mode cross --symbols all` over 304 simulated symbols on
           Bybit, Binance, OKX and Bitget, for --scale-seconds (120) after a 30 s warm-up, on one
           Redis and on a local 3-master cluster, with 1 and 2 strategy shards: events/s, decision
           p99, drops, lag, CPU per process
  stack    (not in the default set) `arb up` on the simulator for --stack-seconds (600): each
           process's resident memory, its peak, after the warm-up and at the end

ingest and latency run twice: on the capture as recorded (63% orderbook.200 deltas on four
symbols) and on its tickers and publicTrade frames only.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # ../shared: the recorded samples and market data
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from services.ingestor.service import Ingestor  # noqa: E402
from shared.metrics import LatencyHistogram  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.venues.bybit.parser import Parser as BybitPublicParser  # noqa: E402
from tests.conftest import (  # noqa: E402
    bybit_instruments,
    capture_frames,
    free_port,
    spread_openings,
    start_redis_server,
)
from tests.processes import children, rss_mb  # noqa: E402
from tests.sim_frames import SIM_SYMBOLS, SIM_TOPICS, sim_instruments, simulated_frames  # noqa: E402

FRAMES = [f for f in capture_frames() if b'"op":"subscribe"' not in f]


def _parse_rate(name: str, make_parser, frames: list[bytes], what: str, min_seconds: float = 1.0) -> str:
    events = messages = 0
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        parser = make_parser()
        for frame in frames:
            events += len(parser.feed(frame, 0))
        messages += len(frames)
        assert parser.stats.error_count == 0, parser.stats.errors
    elapsed = time.perf_counter() - start
    return f"parse {name:<11} {messages / elapsed:>9,.0f} msgs/s  {events / elapsed:>9,.0f} events/s   ({what})"


def bench_parse() -> list[str]:
    from shared.instruments import SymbolMap
    from shared.venues import venue
    from tests.test_venues import binance_map, capture, okx_map

    out = [_parse_rate("bybit", lambda: BybitPublicParser(book_levels=25), FRAMES,
                       f"{len(FRAMES)} frames of the 2026-08 capture, 63% orderbook.200 deltas")]
    frames = capture("binance", "ws_usdm_capture_SUSHIUSDT_2021_cryptofeed.jsonl")
    symbols = binance_map("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT")
    out.append(_parse_rate("binance", lambda: venue("binance").feed.parser(symbols), frames,
                           f"{len(frames)} frames of the 2021 capture; its diff depth is skipped"))
    frames = capture("okx", "ws_capture_UNI-USD-SWAP_2022_cryptofeed.jsonl")
    out.append(_parse_rate("okx", lambda: venue("okx").feed.parser(okx_map()), frames,
                           f"{len(frames)} frames of the 2022 capture, incremental 400-level book"))
    for name in SIM_TOPICS:
        v = venue(name)
        symbols = bybit_instruments() if name == "bybit" else SymbolMap(name, v.rest.instruments(
            sim_instruments(name, SIM_SYMBOLS)))
        frames = simulated_frames(name, SIM_SYMBOLS)
        out.append(_parse_rate(name, lambda v=v, symbols=symbols: v.feed.parser(symbols), frames,
                               f"{len(frames)} simulated frames, 2 symbols, 60 s"))
    return out


async def bench_bus(url: str, prefix: str, seconds: float, batch: int) -> str:
    """The ingestor's own path (parse -> on_events -> writer) without a socket, flushing
    every `batch` frames: what one process can push when frames arrive `batch` at a time."""
    settings = Settings(redis_url=url, redis_key_prefix=prefix, symbols_to_trade="BTCUSDT", _env_file=None)
    ingestor = Ingestor(settings, "bybit", settings.symbols_to_trade)
    parser = BybitPublicParser(book_levels=25, stats=ingestor.feed_stats)
    writer = ingestor.writer
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        for _ in range(batch):
            events = [e for e in parser.feed(FRAMES[i % len(FRAMES)], 0) if hasattr(e, "TYPE")]
            i += 1
            if events:
                ingestor.on_events(events, time.perf_counter_ns())  # flushed below anyway
        await writer.flush()
    elapsed = time.perf_counter() - start
    await writer.conn.close()
    st = writer.stats
    return (f"parser+bus, {batch:>4} frames/flush {ingestor.feed_stats.events / elapsed:>9,.0f} events/s"
            f"   ({st.pushed:,} written + {st.superseded:,} superseded books, {st.errors} errors, {elapsed:.1f}s)")


def bench_sim(seconds: float) -> str:
    """The simulator's market model and Bybit frames for 10 symbols, every topic subscribed,
    stepped as fast as it can (no sockets)."""
    from services.sim.bybit_public import BybitPublicFrames
    from services.sim.market import MarketModel

    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"] + [f"SIM{i}USDT" for i in range(6)]
    model = MarketModel(symbols, seed=1, start_ms=0)
    frames = BybitPublicFrames(model)
    kinds = ("tickers", "orderbook.1", "orderbook.50", "orderbook.200", "publicTrade", "allLiquidation")
    topics = {f"{kind}.{s}" for s in symbols for kind in kinds}
    for topic in topics:
        frames.snapshot(topic)
    steps = produced = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += 1
        model.step(steps * 20)
        produced += sum(len(f) for f in frames.step_frames(topics).values())
    elapsed = time.perf_counter() - start
    return (f"sim frames        {produced / elapsed:>9,.0f} frames/s   ({steps / elapsed:,.0f} steps/s of 20 ms, "
            f"{1000 * elapsed / steps:.1f} ms each; 10 symbols, {len(topics)} topics)")


async def bench_venues(seconds: float, order_rate: float = 50.0) -> list[str]:
    """`arb sim` in its own process, 20 symbols; one client per venue subscribed to its
    tickers, books and trades, and a signed order sender paced at `order_rate`."""
    import aiohttp

    from shared.venues.bybit.signing import auth_headers

    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"] + [f"SIM{i}USDT" for i in range(16)]
    port = free_port()
    env = {**os.environ, "SIM_API_KEY": "bench-key", "SIM_API_SECRET": "bench-secret"}
    arb = Path(sys.executable).parent / "arb"
    proc = subprocess.Popen([str(arb), "sim", "--port", str(port), "--symbols", ",".join(symbols)], env=env,
                            stderr=subprocess.DEVNULL)
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    counts = {"bybit": 0, "binance": 0, "okx": 0, "bitget": 0}
    latencies: list[float] = []
    codes: dict[int, int] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"{base}/v5/market/time"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            async with session.post(f"{base}/admin/faults", json={"rate_limit_per_s": 1000}):
                pass  # one key sends them all; Bybit would allow 10/s per key
            lower = [s.lower() for s in symbols]
            connections = {
                "bybit": (f"{ws_base}/v5/public/linear", [{"op": "subscribe", "args": [
                    f"{k}.{s}" for s in symbols for k in ("tickers", "orderbook.50", "publicTrade")]}]),
                "binance": (f"{ws_base}/public/stream?streams=" + "/".join(
                    f"{s}@{k}" for s in lower for k in ("bookTicker", "depth@100ms")), []),
                "okx": (f"{ws_base}/ws/v5/public", [{"op": "subscribe", "args": [
                    {"channel": c, "instId": f"{s.removesuffix('USDT')}-USDT-SWAP"}
                    for s in symbols for c in ("tickers", "books5", "trades")]}]),
                "bitget": (f"{ws_base}/v2/ws/public", [{"op": "subscribe", "args": [
                    {"instType": "USDT-FUTURES", "channel": c, "instId": s}
                    for s in symbols for c in ("ticker", "books")]}]),
            }
            stop = asyncio.Event()

            async def listen(venue: str, url: str, requests: list) -> None:
                async with session.ws_connect(url, max_msg_size=0) as ws:
                    for request in requests:
                        await ws.send_json(request)
                    while not stop.is_set():
                        msg = await ws.receive()
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            return
                        counts[venue] += 1

            async def orders() -> None:
                sent = 0
                begin = time.perf_counter()
                while not stop.is_set():
                    body = ('{"category":"linear","symbol":"ETHUSDT","side":"%s","orderType":"Market",'
                            '"qty":"0.01"}' % ("Buy" if sent % 2 else "Sell"))
                    headers = auth_headers("bench-key", "bench-secret", int(time.time() * 1000), body)
                    t = time.perf_counter()
                    async with session.post(f"{base}/v5/order/create", data=body, headers=headers) as response:
                        code = (await response.json())["retCode"]
                    latencies.append(time.perf_counter() - t)
                    codes[code] = codes.get(code, 0) + 1
                    sent += 1
                    await asyncio.sleep(max(0.0, begin + sent / order_rate - time.perf_counter()))

            tasks = [asyncio.ensure_future(listen(v, url, reqs)) for v, (url, reqs) in connections.items()]
            await asyncio.sleep(2)  # subscriptions settle, snapshots pass
            for venue in counts:
                counts[venue] = 0
            cpu0 = _cpu_seconds(proc.pid)
            order_task = asyncio.ensure_future(orders())
            start = time.perf_counter()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - start
            cpu = (_cpu_seconds(proc.pid) - cpu0) / elapsed
            got = dict(counts)
            stop.set()
            for task in (*tasks, order_task):
                task.cancel()
            await asyncio.gather(*tasks, order_task, return_exceptions=True)
    finally:
        proc.terminate()
        proc.wait(10)
    latencies.sort()
    p50, p99 = (1000 * latencies[int(len(latencies) * q)] for q in (0.5, 0.99))
    total = sum(got.values())
    per_venue = ", ".join(f"{v} {n / elapsed:,.0f}" for v, n in got.items())
    return [f"sim 4 venues      {total / elapsed:>9,.0f} msgs/s     ({per_venue}; sim CPU {100 * cpu:.0f}%)",
            f"sim orders        {len(latencies) / elapsed:>9,.1f} orders/s   (retCodes {codes}; "
            f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {len(symbols)} symbols)"]


def bench_spreads(seeds=(2, 3, 4), hours: float = 2.0) -> list[str]:
    """The market model alone: openings of |Binance basis| >= 20 bps, their share of the
    time and the longest, per seed."""
    out = []
    for seed in seeds:
        openings, wide, longest = spread_openings(seed, hours)
        out.append(f"spread >= 20 bps  seed {seed}: {openings} openings in {hours:g} h, "
                   f"wide {100 * wide:.1f} % of the time, longest {longest:.0f} s")
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_writers(url: str, prefix: str, n: int = 50_000) -> list[str]:
    """Why shared/resp.py exists: the same real ticker entries, XADD MAXLEN ~ in pipelines
    of 1,000, through redis-py (hiredis) and through the project's StreamWriter."""
    import redis.asyncio as aioredis

    from shared.bus import StreamWriter
    from shared.codec import to_fields
    from shared.resp import RespConnection

    parser = BybitPublicParser()
    fields = [to_fields(e) for f in FRAMES for e in parser.feed(f, 0) if getattr(e, "TYPE", "") == "ticker"]
    stream = prefix + "writers"
    out = []
    client = aioredis.Redis.from_url(url)
    start = time.perf_counter()
    for i in range(0, n, 1000):
        pipe = client.pipeline(transaction=False)
        for j in range(i, i + 1000):
            pipe.xadd(stream, fields[j % len(fields)], maxlen=100_000, approximate=True)
        await pipe.execute()
    rate = n / (time.perf_counter() - start)
    out.append(f"redis-py pipeline  {rate:>9,.0f} XADD/s   ({len(fields[0])}-field tickers)")
    await client.aclose()
    writer = StreamWriter(RespConnection(url), maxlen=100_000, batch_max=1000)
    start = time.perf_counter()
    for i in range(0, n, 1000):
        for j in range(i, i + 1000):
            writer.add(stream, fields[j % len(fields)])
        await writer.flush()
    rate = n / (time.perf_counter() - start)
    out.append(f"StreamWriter       {rate:>9,.0f} XADD/s   (same entries, encode included)")
    await writer.conn.close()
    return out


async def run_ingestor(url: str, prefix: str, rate: float, seconds: float, mix: str) -> Ingestor:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/feed_server.py"), "--port", str(port),
                               "--rate", str(rate), "--seconds", str(seconds), "--mix", mix], stdout=subprocess.PIPE)
    assert server.stdout.readline().strip() == b"ready"
    settings = Settings(redis_url=url, redis_key_prefix=prefix, symbols_to_trade="BTCUSDT", reconnect_initial_s=30,
                        venue_hosts=f"bybit=127.0.0.1:{port}", _env_file=None)
    ingestor = Ingestor(settings, "bybit", settings.symbols_to_trade, bybit_instruments())
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds + 1.0, stop.set)
    cpu, wall = time.process_time(), time.perf_counter()
    await ingestor.run(stop, report_every_s=3600)
    ingestor.cpu_percent = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
    server.wait(10)
    return ingestor


async def bench_ingest(url: str, prefix: str, seconds: float, mix: str) -> str:
    start = time.perf_counter()
    ingestor = await run_ingestor(url, prefix, 0, seconds, mix)
    rep = ingestor.report()
    return (f"whole ingestor, {mix:<8} {rep.events / seconds:>9,.0f} events/s   ({rep.received / seconds:,.0f} msgs/s; "
            f"{rep.pushed:,} written + {rep.superseded:,} superseded books, {rep.dropped} dropped "
            f"(Redis outages {ingestor.writer.stats.outages}), "
            f"{rep.parse_errors} errors, ingestor CPU {ingestor.cpu_percent:.0f}%, "
            f"{time.perf_counter() - start:.1f}s incl. start/stop)")


async def bench_flood(url: str, prefix: str, seconds: float, mix: str, runs: int) -> str:
    """The ingestor fed as fast as it reads, `runs` times: drops with Redis up must be 0 in every
    run (the socket pauses instead), and the writer's buffer stays near its mark."""
    dropped, peaks, rates, pauses = [], [], [], []
    for i in range(runs):
        ingestor = await run_ingestor(url, f"{prefix}flood{i}:", 0, seconds, mix)
        rep = ingestor.report()
        dropped.append(rep.dropped)
        peaks.append(ingestor.writer.stats.peak_buffered)
        rates.append(rep.events / seconds)
        pauses.append(sum(s.pauses for s in ingestor.sessions.values()))
        assert ingestor.writer.stats.outages == 0, "Redis went away during the flood"
    return (f"flood {mix:<8} {runs} x {seconds:g} s: dropped {dropped} (runs with drops: "
            f"{sum(d > 0 for d in dropped)}), buffer peak max {max(peaks):,} (mark {ingestor.writer.high_water:,}), "
            f"pauses {min(pauses):,}-{max(pauses):,} a run, {min(rates):,.0f}-{max(rates):,.0f} events/s")


async def bench_latency(url: str, prefix: str, rate: int, seconds: float, mix: str) -> str:
    ingestor = await run_ingestor(url, prefix, rate, seconds, mix)
    rep, lat = ingestor.report(), ingestor.latency
    p50, p99 = lat.percentile_us(50), lat.percentile_us(99)
    return (f"ws->XADD ack, {mix:<8} @{rate:>6,}/s  p50 {p50:>6.0f} us  p99 {p99:>6.0f} us"
            f"  p99.9 {lat.percentile_us(99.9):>6.0f} us   CPU {ingestor.cpu_percent:>3.0f}%"
            f"   ({rep.received:,} msgs, {rep.dropped} dropped,"
            f" last {len(lat.samples_ns()):,} samples)")


def bench_strategy_core(min_seconds: float = 2.0) -> list[str]:
    from services.strategy.core import StrategyCore
    from services.strategy.scanner import ScanConfig
    from services.strategy.signals import SignalGate
    from tests.test_strategy_replay import capture_events, simulated_events

    out = []
    runs = (("cross", simulated_events(seed=21), "dashboard"), ("synthetic", capture_events(), "confluence"))
    for mode, events, scorer in runs:
        n, signals, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            core = StrategyCore(mode, ScanConfig(scorer=scorer), SignalGate(cooldown_ms=10_000),
                                symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"] if mode == "synthetic" else None)
            core.set_stale({"bybit": False, "binance": False, "okx": False})
            for event in events:
                signals += len(core.on_event(event, event.exchange_ts_ms))
            n += len(events)
        rate = n / (time.perf_counter() - start)
        what = "simulated minute on bybit+binance+okx" if mode == "cross" else "real 2026-08 Bybit capture"
        out.append(f"strategy core {mode:<9} {rate:>9,.0f} events/s   ({len(events):,} events of the {what}; "
                   f"{signals / (n / len(events)):.0f} signals per pass)")
    return out


def _start_md_writer(url: str, prefix: str, rate: float, seconds: float) -> subprocess.Popen:
    writer = subprocess.Popen([sys.executable, str(ROOT / "benchmarks/md_writer.py"), "--redis-url", url,
                               "--prefix", prefix, "--rate", str(rate), "--seconds", str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert writer.stdout.readline().strip() == b"ready"
    return writer


async def _go(writer: subprocess.Popen) -> int:
    writer.stdin.write(b"go\n")
    writer.stdin.flush()
    sent = int((await asyncio.to_thread(writer.stdout.readline)).strip())
    writer.wait(10)
    return sent


async def bench_read_floor(url: str, prefix: str, rate: float, seconds: float) -> str:
    """The same writer, read by a bare XREADGROUP loop that only takes each entry's stamp:
    what this machine's Redis path costs before any strategy work."""
    from shared.resp import RespConnection, pack_command

    streams = list(Settings(redis_key_prefix=prefix, _env_file=None).md_streams().values())
    client = redis.Redis.from_url(url)
    for stream in streams:
        client.xgroup_create(stream, "floor", id="$", mkstream=True)
    conn, latency = RespConnection(url, encoding="utf-8"), LatencyHistogram()
    read = pack_command("XREADGROUP", "GROUP", "floor", "c", "COUNT", "1000", "BLOCK", "100", "STREAMS", *streams,
                        *[">"] * len(streams))
    writer = _start_md_writer(url, prefix, rate, seconds)
    done = asyncio.ensure_future(_go(writer))
    while not done.done():
        reply = (await conn.execute(read, 1))[0]
        now_ns = time.time_ns()
        for _, items in reply or []:
            for _, flat in items:
                latency.observe_ns(now_ns - int(dict(zip(flat[::2], flat[1::2], strict=True))["receive_ts_us"]) * 1000)
    await conn.close()
    return (f"bare XREADGROUP  @{rate:,.0f}/s  XADD->read     p50 {latency.percentile_us(50):6.0f} us  "
            f"p99 {latency.percentile_us(99):6.0f} us   (the floor under the row below; {await done:,} events)")


async def bench_strategy_service(url: str, prefix: str, rate: float, seconds: float) -> str:
    """md:* written at `rate`/s by benchmarks/md_writer.py (its own process), each entry stamped
    at its XADD; the service's latency from that stamp to its decision is XADD -> decision."""
    from services.strategy.service import StrategyService

    settings = Settings(redis_url=url, redis_key_prefix=prefix, strategy_scorer="dashboard", _env_file=None)
    service = StrategyService(settings, "cross")
    writer = _start_md_writer(url, prefix, rate, seconds)
    stop = asyncio.Event()
    task = asyncio.ensure_future(service.run(stop))
    await asyncio.sleep(0.5)  # the group exists before the first write
    cpu, wall = time.process_time(), time.perf_counter()
    sent = await _go(writer)
    await asyncio.sleep(0.5)
    stop.set()
    await task
    cpu_pct = 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)
    lat, dec = service.receipt_latency, service.decision_latency
    return (f"strategy service @{rate:,.0f}/s  XADD->decision p50 {lat.percentile_us(50):6.0f} us  "
            f"p99 {lat.percentile_us(99):6.0f} us   (decision alone p99 {dec.percentile_us(99):.0f} us; "
            f"{service.counts['consumed']:,} of {sent:,} events; strategy CPU {cpu_pct:.0f}%)")


async def bench_executor(url: str, prefix: str, trades: int = 120, emergencies: int = 10,
                         mode: str = "synthetic", pair: tuple[str, str] = ("bybit", "okx")) -> list[str]:
    """Live trades at the simulator: `synthetic`, both legs at Bybit; `cross`, one leg at each
    venue of `pair`, long the easier venue and short the harder one (held 60 bps above), whose
    leg goes first."""
    import aiohttp

    from services.executor import facts as f
    from services.executor.core import trade_id_for
    from services.executor.service import ExecutorService
    from services.executor.sizing import EASE

    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]
    hard, easy = sorted(pair, key=lambda v: EASE[v])
    venues = [easy, hard] if mode == "cross" else ["bybit"]
    port = free_port()
    settings = Settings(redis_url=url, redis_key_prefix=prefix, venue_env="sim", sim_port=port, execution="live",
                        symbols_to_trade=symbols, synthetic_hold_s=0.3, exit_max_hold_s=0.3, max_concurrent_trades=4,
                        executor_venues=venues, safety_max_api_errors=0, safety_max_failures=0,
                        safety_min_success_rate=0, _env_file=None)  # the emergencies below fail on purpose
    env = {**os.environ, "REDIS_URL": url, "REDIS_KEY_PREFIX": prefix, "SIM_PORT": str(port), "VENUE_ENV": "sim",
           "SIM_API_KEY": settings.sim_api_key, "SIM_API_SECRET": settings.sim_api_secret.get_secret_value(),
           "SIM_API_PASSPHRASE": settings.sim_api_passphrase.get_secret_value()}
    arb = str(Path(sys.executable).parent / "arb")
    procs = [subprocess.Popen([arb, "sim", "--port", str(port), "--symbols", ",".join(symbols)], env=env,
                              stderr=subprocess.DEVNULL)]
    client = redis.Redis.from_url(url)
    signals = prefix + "strategy:signals"
    out = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/v5/market/time"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            # an opportunity that lasts the whole run: the harder venue 60 bps above the easier one (the
            # simulator's book is Bybit's: the other venue moves, both pinned when neither is Bybit)
            held = {hard: (60, 0.005), easy: (0, 0.0)} if hard != "bybit" else {easy: (-60, -0.005)}
            for symbol in symbols if mode == "cross" else ():
                for venue, (bps, delta) in held.items():
                    if venue == "bybit":
                        continue
                    async with http.post(f"http://127.0.0.1:{port}/admin/opportunity", json={
                            "symbol": symbol, "venue": venue, "spread_bps": bps, "funding_delta": delta,
                            "seconds": 3600}) as response:
                        assert response.status == 200
            for venue in venues:
                procs.append(subprocess.Popen([arb, "ingest", "--venue", venue, "--symbols", ",".join(symbols)],
                                              env=env, stderr=subprocess.DEVNULL))
            while client.xlen(prefix + "md:{0}:books") < 100 * len(venues):
                await asyncio.sleep(0.1)
            executor = ExecutorService(settings, mode)
            stop = asyncio.Event()
            task = asyncio.ensure_future(executor.run(stop))
            await executor.ready.wait()

            def signal(n: int) -> None:
                symbol = symbols[n % len(symbols)]
                legs = (easy, hard) if mode == "cross" else ("bybit", "bybit_synthetic")
                client.xadd(signals, {"id": f"bench-{n}", "mode": mode, "symbol": symbol,
                                      "long_venue": legs[0], "short_venue": legs[1], "spread_bps": "60",
                                      "funding_delta_8h": "0.005" if mode == "cross" else "0.01", "confidence": "80",
                                      "depth_long_usd": "200000", "depth_short_usd": "200000",
                                      "created_ms": str(time.time_ns() // 1_000_000),
                                      "created_us": str(time.time_ns() // 1000)})

            n, started = 0, time.monotonic()
            while len(executor.core.closed) < trades and time.monotonic() - started < 180:
                signal(n)  # 2 a second: 4 creates per trade stays under Bybit's 10 creates/s
                n += 1
                await asyncio.sleep(0.5)
            while executor.core.trades and time.monotonic() - started < 200:
                await asyncio.sleep(0.1)
            closed = list(executor.core.closed.values())
            done = [t for t in closed if t.active is not None]
            clean = [t for t in done if not t.leg_outs]
            failures: dict[str, int] = {}
            for t in closed:
                if t.active is None:
                    failures[f"{t.closed.outcome}:{t.closed.reason}"] = failures.get(
                        f"{t.closed.outcome}:{t.closed.reason}", 0) + 1
            rejected = {k: v for k, v in executor.core.rejections.items() if v}
            lat, read = executor.order_latency, executor.read_to_order
            out.append(f"executor live/{mode} at {' and '.join(venues)} on the sim: {len(closed)} trades from {n} "
                       f"signals, both legs filled "
                       f"{len(done)} ({100 * len(done) / max(1, len(closed)):.1f} %), without a leg-out {len(clean)}; "
                       f"failures {failures or 'none'}; signals not taken {rejected or 'none'}")
            out.append(f"signal -> first order sent  p50 {lat.percentile_us(50):6.0f} us  "
                       f"p99 {lat.percentile_us(99):6.0f} us   "
                       f"(read by the executor -> sent: p50 {read.percentile_us(50):.0f} us, "
                       f"p99 {read.percentile_us(99):.0f} us; {lat.count} trades)")
            both = sorted(min(o.placed.ts_ms for o in t.legs(easy_leg, "entry")) - t.taken.signal_ms
                          for t in done for easy_leg in [("long", "short")[t.taken.harder == "long"]])
            if both:
                out.append(f"signal -> both legs' first orders sent (the easier one after the harder one's fill)  "
                           f"p50 {both[len(both) // 2]} ms  p99 {both[min(len(both) - 1, int(len(both) * 0.99))]} ms")
            gaps = sorted(min(o.placed.ts_ms for o in t.legs(easy, "entry")) - max(o.done_ms for o in hard)
                          for t in done for easy in [("long", "short")[t.taken.harder == "long"]]
                          for hard in [t.legs(t.taken.harder, "entry")] if all(o.done_ms for o in hard))
            if gaps:
                out.append(f"harder leg filled (heard) -> easier leg's order sent  p50 {gaps[len(gaps) // 2]} ms  "
                           f"p99 {gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]} ms  ({len(gaps)} trades)")
            # the emergency close: the harder leg fills, the easier leg and three hedges are refused
            times = []
            for i in range(emergencies):
                await asyncio.sleep(1.1)  # a fresh second of Bybit's 10 creates/s: the close is not paced
                async with http.post(f"http://127.0.0.1:{port}/admin/faults",
                                     json={"reject_skip": 1, "reject_next": 4, "reject_code": 110007,
                                           "reject_message": "ab not enough for new order"}) as response:
                    assert response.status == 200
                signal(n + i)
                trade_id = trade_id_for(f"bench-{n + i}")
                while trade_id not in executor.core.closed and time.monotonic() - started < 260:
                    await asyncio.sleep(0.01)
                t = executor.core.closed.get(trade_id)
                if t is None:
                    continue
                harder_filled = max(o.done_ms for o in t.legs(t.taken.harder, "entry"))
                if t.closed.outcome == "emergency_closed":
                    times.append(t.closed.ts_ms - harder_filled)
            times.sort()
            out.append(f"emergency close (harder leg filled -> both legs flat): {len(times)} of {emergencies}, "
                       f"median {times[len(times) // 2] if times else 0} ms, max {times[-1] if times else 0} ms")
            stop.set()
            await task
            kinds = {}
            for _, fields in client.xrange(prefix + "strategy:events"):
                name = f.from_fields({k.decode(): v.decode() for k, v in fields.items()}).__class__.__name__
                kinds[name] = kinds.get(name, 0) + 1
            listed = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
            out.append(f"facts written: {sum(kinds.values()):,} ({listed})")
    finally:
        for proc in reversed(procs):  # the ingestor first, then the venue it reads
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def bench_stack(seconds: float, mode: str = "synthetic") -> list[str]:
    """`arb up` for `seconds` on the simulator; every process's RSS sampled every 2 s: the most,
    after the warm-up (the first sixth of the run, at most 60 s), and at the end."""
    state = tempfile.mkdtemp(prefix="arb-stack-")
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # arb up starts its own there
    env.update(SYNTHETIC_HOLD_S="5", SIGNAL_COOLDOWN_S="5", SIM_PORT=str(free_port()))
    up = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--mode", mode, "--duration", str(seconds),
                           "--state-dir", state, "--metrics-port", str(free_port())], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started, warm = time.monotonic(), min(60.0, seconds / 6)
    peak: dict[str, float] = {}
    after_warm: dict[str, float] = {}
    last: dict[str, float] = {}
    while up.poll() is None:
        for pid, name in children(up.pid).items():
            if (rss := rss_mb(pid)) is None:
                continue
            peak[name] = max(peak.get(name, 0.0), rss)
            last[name] = rss
            if time.monotonic() - started >= warm:
                after_warm.setdefault(name, rss)
        time.sleep(2)
    out = up.stdout.read() if up.stdout else ""
    shutil.rmtree(state, ignore_errors=True)
    lines = [f"stack {mode} {seconds:g} s: arb up exited {up.returncode}; "
             + "; ".join(line.strip() for line in out.splitlines() if line.startswith(("trades ", "PnL ")))]
    for name in sorted(peak):
        base = after_warm.get(name)
        growth = f"{100 * (last[name] - base) / base:+.1f} %" if base else "-"
        lines.append(f"stack rss {name:16s} max {peak[name]:6.1f} MB  after warm-up {base or 0:6.1f} MB  "
                     f"end {last[name]:6.1f} MB  growth {growth}")
    return lines


E2E_ROWS = [("arb_ingest_ws_to_stream_seconds", "WebSocket -> queue (XADD acked)"),
            ("arb_strategy_queue_seconds", "queue -> strategy"),
            ("arb_strategy_decision_seconds", "opportunity detection"),
            ("arb_executor_order_ack_seconds", "order sent -> venue's answer"),
            ("arb_trace_frame_to_order_seconds", "venue frame -> first order sent"),
            ("arb_trace_frame_to_strategy_seconds", "  frame -> strategy (parse, XADD, read)"),
            ("arb_trace_strategy_to_signal_seconds", "  strategy -> signal written"),
            ("arb_trace_signal_to_executor_seconds", "  signal -> executor"),
            ("arb_trace_executor_to_order_seconds", "  executor -> order sent")]
E2E_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]


def _since(end, start):
    """The metrics samples taken between two snapshots (end minus start)."""
    from services.report import Samples

    out = Samples()
    for name, value in end.values.items():
        out.values[name] = value - start.values.get(name, 0.0)
    for name, buckets in end.buckets.items():
        for bound, n in buckets.items():
            out.buckets[name][bound] = n - start.buckets.get(name, {}).get(bound, 0.0)
    return out


async def bench_e2e(mode: str, scale: int, seconds: float, warm_s: float = 20.0) -> list[str]:
    """`arb up` as a user runs it, on the simulator: `mode` synthetic (both legs at Bybit) or cross
    (live at Bybit and OKX, the deployment guide's phase 2; an opportunity forced every few
    seconds), on 4 symbols (the venues' real rates) or 40 (`scale` 10: ten times the messages).
    Figures are taken between the end of the warm-up and the end: the stage table, the traced path
    frame -> first order sent, where its time went, and each process's CPU."""
    import redis.asyncio as aioredis


    symbols = E2E_SYMBOLS + [f"SIM{i}USDT" for i in range(len(E2E_SYMBOLS) * (scale - 1))]
    state = tempfile.mkdtemp(prefix="arb-e2e-")
    sim_port, url = free_port(), f"redis://127.0.0.1:{free_port()}/0"  # arb up starts its own Redis there
    env = {**os.environ, "REDIS_URL": url, "SIM_PORT": str(sim_port), "SYMBOLS_TO_TRADE": ",".join(symbols),
           "SYNTHETIC_HOLD_S": "2", "EXIT_MAX_HOLD_S": "2", "SIGNAL_COOLDOWN_S": "2", "MAX_CONCURRENT_TRADES": "4"}
    argv = [sys.executable, "-m", "services.cli", "up", "--mode", mode, "--duration", str(warm_s + seconds + 60),
            "--state-dir", state, "--metrics-port", str(free_port())]
    if mode == "cross":
        argv += ["--venues", "bybit,okx", "--execution", "live"]
    log = Path(state) / "up.out"
    up = subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        started = time.monotonic()
        while not await _running(client):  # arb up has started every worker
            if up.poll() is not None or time.monotonic() - started > 180:
                raise RuntimeError(f"arb up did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(1)
        # OKX 40 bps above Bybit for 3 s on one symbol after another
        ask = (lambda n: {"symbol": symbols[n % len(symbols)], "venue": "okx", "spread_bps": 40,
                          "funding_delta": 0.001, "seconds": 3}) if mode == "cross" else None
        start, end, elapsed, cpu = await _window(up, client, warm_s, seconds, sim_port, ask, settle_s=6)
        if not end.values.get("arb_trace_frame_to_order_seconds_count"):  # say why nothing was traced
            executor_log = Path(state) / "logs" / "executor.log"
            said = [line for line in executor_log.read_text().splitlines()
                    if "HALTED" in line or "rejected" in line] if executor_log.exists() else []
            print(f"no trade traced; the executor's log says: {said[:3] or 'nothing'}", flush=True)
    finally:
        await client.aclose()
        if up.poll() is None:
            up.send_signal(signal.SIGINT)  # as Ctrl+C: the executor closes its trades, Redis writes its AOF
        up.wait(120)
        shutil.rmtree(state, ignore_errors=True)
    d = _since(end, start)
    rate = d.values.get("arb_ingest_events_parsed_total", 0.0) / elapsed
    out = [f"e2e {mode} x{scale}: {len(symbols)} symbols, {rate:,.0f} market events/s, {elapsed:.0f} s after "
           f"{warm_s:g} s warm-up; arb up exited {up.returncode}",
           f"  {'stage':40s} {'count':>7s} {'mean ms':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'p99.9 ms':>8s}"]
    means = {}
    for name, label in E2E_ROWS:
        count = d.values.get(name + "_count", 0.0)
        means[name] = d.values.get(name + "_sum", 0.0) / count if count else 0.0
        qs = " ".join(f"{_e2e_ms(d.quantile(name, q)):>8s}" for q in (0.5, 0.99, 0.999))
        out.append(f"  {label:40s} {count:7.0f} {1000 * means[name]:8.3f} {qs}")
    whole = means["arb_trace_frame_to_order_seconds"]
    if whole:
        out.append("  where the traced time went: " + ", ".join(
            f"{label.strip()} {100 * means[name] / whole:.0f} %" for name, label in E2E_ROWS[5:]))
    out.append("  CPU: " + ", ".join(f"{name} {pct:.0f} %" for name, pct in sorted(cpu.items(), key=lambda x: -x[1])))
    return out


async def bench_scale(cluster: bool, shards: int, seconds: float, universe: int = 300,
                      warm_s: float = 30.0) -> list[str]:
    """`arb up --mode cross --symbols all` over a simulated universe (`universe` made-up symbols
    and 4 real ones, on Bybit, Binance, OKX and Bitget at their real rates), on one Redis or a
    local 3-master cluster, with `shards` strategy workers: market events/s, decision p99,
    receipt -> decision p99, drops, the strategy groups' lag at the end and each process's CPU."""
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster


    state = tempfile.mkdtemp(prefix="arb-scale-")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "SIM_PORT": str(free_port()), "SIM_UNIVERSE": str(universe)}
    env.pop("REDIS_URL", None) if cluster else env.update(REDIS_URL=url)
    argv = [sys.executable, "-m", "services.cli", "up", "--mode", "cross", "--venues", "bybit,binance,okx,bitget",
            "--symbols", "all", "--shards", str(shards), "--duration", str(warm_s + seconds + 120),
            "--state-dir", state, "--metrics-port", str(free_port())] + (["--redis-cluster"] if cluster else [])
    log = Path(state) / "up.out"
    up = subprocess.Popen(argv, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    client = None
    try:
        started = time.monotonic()
        while client is None:  # the Redis (or cluster) it uses, once it says
            text = log.read_text() if log.exists() else ""
            if cluster and "redis: started a Redis Cluster" in text:
                first = text.split("127.0.0.1:", 1)[1].split(",", 1)[0].split(" ", 1)[0]
                client = RedisCluster.from_url(f"redis://127.0.0.1:{first}/0", decode_responses=True)
            elif not cluster and "redis:" in text:
                client = aioredis.Redis.from_url(url, decode_responses=True)
            if up.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError(f"arb up did not start: {text[-2000:]}")
            await asyncio.sleep(0.5)
        while "is up;" not in log.read_text():
            if up.poll() is not None or time.monotonic() - started > 240:
                raise RuntimeError(f"arb up did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(1)
        start, end, elapsed, cpu = await _window(  # a spread on one made-up symbol after another
            up, client, warm_s, seconds, int(env["SIM_PORT"]),
            lambda n: {"symbol": f"SIM{(7 * n) % universe}USDT", "venue": "binance", "spread_bps": 60,
                       "funding_delta": 0.003, "seconds": 3})
    finally:
        if client is not None:
            await client.aclose()
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
        up.wait(180)
        text = log.read_text()
        shutil.rmtree(state, ignore_errors=True)
    d = _since(end, start)
    universe_line = next((line for line in text.splitlines() if "universe of" in line), "")
    events = d.values.get("arb_ingest_events_parsed_total", 0.0) / elapsed
    consumed = d.values.get("arb_strategy_events_total", 0.0) / elapsed
    dropped = d.values.get("arb_ingest_events_dropped_total", 0.0) + d.values.get("arb_strategy_claim_deleted_total",
                                                                                  0.0)
    lag = end.values.get("arb_stream_lag_entries", 0.0)
    q = {name: _e2e_ms(d.quantile(name, 0.99)) for name in (
        "arb_strategy_decision_seconds", "arb_strategy_receipt_to_decision_seconds", "arb_ingest_ws_to_stream_seconds",
        "arb_strategy_queue_seconds")}
    return [f"scale {'3-master cluster' if cluster else 'one Redis'}, {shards} shard(s), {universe + 4} symbols on 4 "
            f"venues{(' (' + universe_line.split('universe of ')[1].split(';')[0] + ')') if universe_line else ''}: "
            f"{events:,.0f} market events/s in, {consumed:,.0f}/s decided; decision p99 "
            f"{q['arb_strategy_decision_seconds']} ms, receipt -> decision p99 "
            f"{q['arb_strategy_receipt_to_decision_seconds']} ms (WS -> queue {q['arb_ingest_ws_to_stream_seconds']}, "
            f"queue -> strategy {q['arb_strategy_queue_seconds']}); dropped {dropped:,.0f}; lag at the end "
            f"{lag:,.0f} entries; trades {d.values.get('arb_executor_trades_executed_total', 0.0):,.0f}"
            + (f", facts -> WAIT p50/p99 {_e2e_ms(d.quantile('arb_executor_fact_replication_seconds', 0.5))}/"
               f"{_e2e_ms(d.quantile('arb_executor_fact_replication_seconds', 0.99))} ms" if cluster else "")
            + f"; arb up exited {up.returncode}",
            "  CPU: " + ", ".join(f"{name} {pct:.0f} %" for name, pct in sorted(cpu.items(), key=lambda x: -x[1]))]


async def _window(up, client, warm_s: float, seconds: float, sim_port: int, ask=None, settle_s: float = 0.0):
    """After `warm_s`, `seconds` of a running `arb up`: a spread forced every 4 s (`ask(n)`, the
    n-th one's /admin/opportunity body, when given). The metrics snapshots at its start and end
    (`settle_s` after it, for the next snapshot), its length, and each process's CPU over it (%)."""
    import aiohttp

    from services.report import read_samples

    await asyncio.sleep(warm_s)
    procs = children(up.pid)
    cpu0 = {pid: _cpu_seconds(pid) for pid in procs}
    start, t0 = await read_samples(client), time.monotonic()
    async with aiohttp.ClientSession() as http:
        n = 0
        while time.monotonic() - t0 < seconds:
            if ask is not None:
                async with http.post(f"http://127.0.0.1:{sim_port}/admin/opportunity", json=ask(n)) as response:
                    assert response.status == 200, await response.text()
                n += 1
            await asyncio.sleep(min(4.0, max(0.0, seconds - (time.monotonic() - t0))))
    await asyncio.sleep(settle_s)
    end, elapsed = await read_samples(client), time.monotonic() - t0
    cpu = {procs[pid]: 100 * (_cpu_seconds(pid) - c) / elapsed for pid, c in cpu0.items()
           if Path(f"/proc/{pid}").exists()}
    return start, end, elapsed, cpu


async def _running(client) -> bool:
    from redis.exceptions import RedisError

    try:
        return bool(await client.exists("health:strategy"))
    except (RedisError, OSError):
        return False


def _e2e_ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    return ">1000" if seconds == math.inf else f"{1000 * seconds:.2f}"


def bench_backtest(years: float = 2.0) -> list[str]:
    """`arb backtest funding` with bars: the real 30-day 1-minute files of BTC, ETH and SOL
    repeated to `years`, with the real 2025-2026 Bybit and Binance funding repeated alongside."""
    from decimal import Decimal

    from services.backtest.data import Bar, load_funding, load_klines
    from services.backtest.fees import FeeSchedule
    from services.backtest.funding import FundingRate
    from services.backtest.funding_arb import run
    from services.backtest.margin import RiskTier

    data = SHARED / "market-data"
    year_ms = 365 * 86_400_000
    start = 1_755_763_200_000  # the funding files' first settlement, 2025-08-21 08:00 UTC
    end = start + int(years * year_ms)
    funding = {}
    for venue, name in (("bybit", "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"),
                        ("binance", "binance/funding/binance_usdm_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv")):
        one = load_funding(data / name)
        # marks from the bars (the repeated month), not the file's: the two come from different months
        funding[venue] = [FundingRate(r.symbol, r.ts_ms + k * year_ms, r.rate)
                          for k in range(math.ceil(years)) for r in one if r.ts_ms + k * year_ms < end]
    month = {s: load_klines(data / f"bybit/klines_1m/{s}_1m_2025-05-30_2025-06-29.csv") for s in
             ("BTCUSDT", "ETHUSDT", "SOLUSDT")}

    def repeated(bars: list[Bar]):
        span = bars[-1].ts_ms - bars[0].ts_ms + 60_000
        k = 0
        while True:
            for b in bars:
                ts = start + k * span + (b.ts_ms - bars[0].ts_ms)
                if ts >= end:
                    return
                yield Bar(ts, b.open, b.high, b.low, b.close, b.volume)
            k += 1

    fees = {"bybit": FeeSchedule.tier("VIP0"), "binance": FeeSchedule(Decimal("0.0005"), Decimal("0.0002"))}
    t0 = time.perf_counter()
    result = run(funding, fees, [RiskTier(Decimal(10) ** 9, Decimal("0.005"), Decimal(100))],
                 bars={s: repeated(b) for s, b in month.items()})
    elapsed = time.perf_counter() - t0
    events = result.bars + result.settlements
    return [f"backtest  {years:g} years, 3 symbols: {result.bars:,} 1-minute bars + {result.settlements:,} "
            f"settlements in {elapsed:.1f} s = {events / elapsed:,.0f} events/s; {len(result.trades)} trades"]


async def main(args) -> None:
    only = set(args.only.split(","))
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    url = args.redis_url or os.environ.get("REDIS_URL")
    proc = None
    workdir = tempfile.mkdtemp()
    if not url and only - {"parse", "sim", "spreads", "venues", "stack", "backtest", "e2e", "scale"}:
        if not shutil.which("redis-server"):
            sys.exit("no Redis: pass --redis-url or put redis-server on PATH")
        port = free_port()
        proc = start_redis_server(port, workdir)
        url = f"redis://127.0.0.1:{port}/0"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  python {sys.version.split()[0]}  cpus {os.cpu_count()}"
          f"  loop {args.loop}  redis {url or '-'}")
    try:
        if "parse" in only:
            print("\n".join(bench_parse()))
        if "sim" in only:
            print(bench_sim(args.seconds / 2))
        if "spreads" in only:
            for line in bench_spreads():
                print(line)
        if "venues" in only:
            for line in await bench_venues(args.seconds):
                print(line)
        if "writers" in only:
            for line in await bench_writers(url, prefix):
                print(line)
        if "bus" in only:
            for batch in (1, 10, 100):
                print(await bench_bus(url, prefix, args.seconds / 2, batch))
        if "strategy" in only:
            for line in bench_strategy_core():
                print(line)
            print(await bench_read_floor(url, prefix + "floor:", 5_000, args.seconds))
            print(await bench_strategy_service(url, prefix, 5_000, args.seconds))
        if "executor" in only:
            for line in await bench_executor(url, prefix + "exec:"):
                print(line)
        if "executor-cross" in only:
            from tests.live_venue import PAIRS

            for i, pair in enumerate(PAIRS):
                for line in await bench_executor(url, f"{prefix}cross{i}:", trades=60, mode="cross", pair=pair):
                    print(line, flush=True)
        if "backtest" in only:
            for line in bench_backtest():
                print(line, flush=True)
        if "floor" in only:
            for rate in (200, 2_000):
                done = subprocess.run([sys.executable, str(ROOT / "benchmarks/path_floor.py"), "--redis-url", url,
                                       "--rate", str(rate), "--seconds", str(args.seconds), "--prefix", prefix],
                                      capture_output=True, text=True, check=True)
                print(done.stdout.rstrip(), flush=True)
        if "scale" in only:
            for case in args.scale_cases.split(","):
                where, _, shards = case.partition(":")
                for line in await bench_scale(where == "cluster", int(shards or 1), args.scale_seconds):
                    print(line, flush=True)
        if "e2e" in only:
            for case in args.e2e_cases.split(","):
                mode, _, scale = case.partition(":")
                for line in await bench_e2e(mode, int(scale or 1), args.e2e_seconds):
                    print(line, flush=True)
        if "stack" in only:
            for line in bench_stack(args.stack_seconds):
                print(line, flush=True)
        for mix in ("capture", "tickers"):
            if "ingest" in only:
                print(await bench_ingest(url, prefix, args.seconds, mix))
            if "flood" in only:
                print(await bench_flood(url, prefix, args.flood_seconds, mix, args.flood_runs), flush=True)
            if "latency" in only:
                for rate in (1_000, 10_000):
                    print(await bench_latency(url, prefix, rate, args.seconds, mix))
    finally:
        if url:
            client = redis.Redis.from_url(url)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        if proc:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="Redis to measure against (default: REDIS_URL, else a private one)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run")
    parser.add_argument("--only", default="parse,sim,spreads,venues,writers,bus,ingest,latency,strategy,executor,"
                        "executor-cross,backtest",
                        help="comma-separated subset")
    parser.add_argument("--scale-seconds", type=float, default=120.0, help="length of each `--only scale` run")
    parser.add_argument("--scale-cases", default="single:1,single:2,cluster:1,cluster:2",
                        help="`--only scale`: redis:shards runs, redis single (one Redis) or cluster (3 masters)")
    parser.add_argument("--e2e-seconds", type=float, default=180.0, help="length of each `--only e2e` run")
    parser.add_argument("--e2e-cases", default="synthetic:1,synthetic:10,cross:1,cross:10",
                        help="`--only e2e`: mode:scale runs, scale 10 = ten times the symbols")
    parser.add_argument("--flood-seconds", type=float, default=60.0, help="length of each `--only flood` run")
    parser.add_argument("--flood-runs", type=int, default=10, help="`--only flood` runs per mix")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--stack-seconds", type=float, default=600.0,
                        help="how long `--only stack` runs arb up (the issue's figure is for 10 minutes)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
