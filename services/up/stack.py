"""`arb up`: the whole stack on one machine, as separate processes under one supervisor.

The plan (`plan`, pure) says what runs in a mode; the supervisor (`Stack`) starts it in order,
each step shown as it happens:

1. **Redis**: `REDIS_URL` when it is set; else a private `redis-server` from PATH with its data
   (AOF, fsync every second) under the state folder; else an in-process fakeredis, with a
   warning that nothing persists.
2. **The simulator** (`VENUE_ENV=sim`), on SIM_PORT or the next free port.
3. **The ingestors** (one per venue) and the latency monitor; then the **strategy** and the
   **executor**. Each is an `arb` command, pinned to a CPU of its own where the machine has
   four or more, serving its metrics on the next free port from `--metrics-port`. Each is
   up once its health key is (shared/control.py).

Then a status line every second. It stops on Ctrl+C, SIGTERM (`arb stop`), `--duration`, or a
worker that dies: the strategy first (no new signals), then the executor (it closes every
trade, both legs), then the market data, the simulator and Redis. It prints the run's
summary and exits 0 when every worker stopped cleanly and no trade is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.report import read_samples, render
from shared.control import health
from shared.settings import Settings

MODES = ("synthetic", "cross", "live")
PINNED = ("strategy", "executor")  # the latency-critical workers, each on a CPU of its own
REPORT_EVERY_S = 60.0  # the metrics report (seed task 15)
REDIS_URL_FILE = "redis.url"  # which Redis a running `arb up` uses (for arb status, redis-cli -u)


class StackError(Exception):
    """The stack cannot start as configured; the message says why and what to do."""


@dataclass
class Worker:
    name: str
    argv: list[str]
    cpu: int | None = None
    metrics_port: int | None = None
    health: str | None = None  # its health key's service name (None: checked another way)
    proc: asyncio.subprocess.Process | None = None


@dataclass
class Plan:
    mode: str
    execution: str
    strategy_mode: str
    venues: list[str]
    workers: list[Worker] = field(default_factory=list)


def refusals(s: Settings, mode: str, confirm_mainnet: bool) -> list[str]:
    """Why `mode` may not run with these settings (empty: it may)."""
    if mode not in MODES:
        return [f"--mode: {mode!r} is not one of: {', '.join(MODES)}"]
    out = []
    if mode == "synthetic" and s.venue_env == "mainnet":
        out.append("synthetic mode trades made-up opportunities; on VENUE_ENV=mainnet that spends real money "
                   "on them. Use VENUE_ENV=sim, demo or testnet, or --mode live")
    if mode in ("synthetic", "live") and s.bybit_credentials() is None:
        keys = "BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET" if s.venue_env == "demo" else \
            "BYBIT_API_KEY and BYBIT_API_SECRET"
        out.append(f"{mode} mode places orders at Bybit on VENUE_ENV={s.venue_env}: set {keys}")
    if mode == "live":
        if s.venue_env == "mainnet" and not confirm_mainnet:
            out.append("live mode on VENUE_ENV=mainnet trades real money: add --confirm-mainnet")
        missing = [name for name, value in (("MAX_DAILY_LOSS", s.max_daily_loss),
                                            ("POSITION_SIZE_LIMIT", s.position_size_limit)) if value is None]
        if missing:
            out.append(f"live mode needs the safety limits set: {', '.join(missing)} (USD), e.g. "
                       f"MAX_DAILY_LOSS=50 POSITION_SIZE_LIMIT=10 (deployment guide, phase 3)")
    return out


def plan(s: Settings, mode: str, venues: list[str], cpus: list[int], metrics_port: int,
         free=lambda port: True) -> Plan:
    """The workers of `mode`: synthetic and live trade SYMBOLS_TO_TRADE on Bybit alone (both legs
    there); cross reads `venues` and trades on paper."""
    single = mode in ("synthetic", "live")
    p = Plan(mode=mode, execution="live" if single else "paper", strategy_mode="synthetic" if single else "cross",
             venues=[s.synthetic_venue] if single else venues)
    pins = dict(zip(PINNED, cpus[-2:], strict=False)) if len(cpus) >= 4 else {}
    port = metrics_port

    def add(name: str, argv: list[str], health_name: str | None) -> None:
        nonlocal port
        while not free(port):
            port += 1
        p.workers.append(Worker(name, argv, pins.get(name), port, health_name))
        port += 1

    symbols = ",".join(s.symbols_to_trade)
    for v in p.venues:
        add(f"ingest-{v}", ["ingest", "--venue", v, "--symbols", symbols], f"ingest-{v}")
    add("latency", ["latency", "--venues", ",".join(p.venues)], "latency")
    add("strategy", ["strategy", "--mode", p.strategy_mode], "strategy")
    add("executor", ["executor", "--mode", p.strategy_mode, "--execution", p.execution], "executor")
    for w in p.workers:
        w.argv += ["--metrics-port", str(w.metrics_port)] + (["--cpu", str(w.cpu)] if w.cpu is not None else [])
    return p


def running_redis_url(state_dir: Path) -> str | None:
    """The Redis of the `arb up` running from `state_dir`, if one is."""
    try:
        return (state_dir / REDIS_URL_FILE).read_text().strip() or None
    except OSError:
        return None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Totals:
    """What the status line and the summary show, read from Redis."""

    ticks: int = 0
    signals: int = 0
    portfolio: dict[str, str] = field(default_factory=dict)

    def line(self, elapsed_s: float, rate: float) -> str:
        p = self.portfolio
        halted = p.get("trading") == "halted"
        return (f"{elapsed_s:6.0f}s | ticks {self.ticks:,} ({rate:,.0f}/s) | signals {self.signals:,} | trades open "
                f"{p.get('active_trades', '0')}, closed {p.get('closed_trades', '0')}, rejected "
                f"{p.get('rejected_trades', '0')} | PnL ${_money(p.get('cumulative_pnl'))} | leg-outs "
                f"{p.get('leg_out_count', '0')}" + (f" | HALTED: {p.get('halt_reason')}" if halted else ""))


def _money(text: str | None) -> str:
    return f"{Decimal(text or 0):,.2f}"


class Stack:
    def __init__(self, settings: Settings, plan_: Plan, state_dir: Path, redis_explicit: bool,
                 duration: float | None, start_sim: bool = True) -> None:
        self.settings, self.plan, self.state = settings, plan_, state_dir
        self.redis_explicit, self.duration, self.own_sim = redis_explicit, duration, start_sim
        self.env: dict[str, str] = {}
        self.redis_proc: asyncio.subprocess.Process | None = None
        self.fake = None
        self.sim: Worker | None = None
        self.exit_codes: dict[str, int | None] = {}
        self.failed: str = ""
        self.final = Totals()
        self.final_report = ""

    # ------------------------------------------------------------------ start

    async def start_redis(self) -> str:
        if self.redis_explicit:
            url = self.settings.redis_url
            await _ping(url, f"REDIS_URL={_masked(url)}")
            _say(f"redis: {_masked(url)} (REDIS_URL)")
            return url
        if server := shutil.which("redis-server"):
            port, data = free_port(), self.state / "redis"
            data.mkdir(parents=True, exist_ok=True)
            self.redis_proc = await asyncio.create_subprocess_exec(
                server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
                "--logfile", str(self.state / "logs" / "redis.log"), stdout=asyncio.subprocess.DEVNULL)
            url = f"redis://127.0.0.1:{port}/0"
            await _ping(url, "the private redis-server", attempts=50)
            _say(f"redis: redis-server on 127.0.0.1:{port}, data in {data} (AOF, fsync every second)")
            return url
        port = free_port()
        self.fake = fake_redis_server(port)
        _say(f"redis: WARNING no redis-server on PATH and no REDIS_URL: an in-process fakeredis on 127.0.0.1:{port}; "
             "nothing persists when this stops")
        return f"redis://127.0.0.1:{port}/0"

    async def start_sim(self) -> None:
        s = self.settings
        port = s.sim_port if port_free(s.sim_port, s.sim_host) else free_port()
        self.env["SIM_PORT"] = str(port)
        self.sim = Worker("sim", ["sim", "--symbols", ",".join(s.symbols_to_trade)])
        await self._spawn(self.sim)
        url = f"http://{s.sim_host}:{port}/v5/market/time"
        if not await _until(lambda: _http_ok(url), 15, self.sim):
            raise StackError(f"the simulator did not answer {url}: see {self._log(self.sim)}")
        moved = "" if port == s.sim_port else f" (SIM_PORT {s.sim_port} is taken)"
        _say(f"sim: the local exchange on {s.sim_host}:{port}{moved}")

    async def _spawn(self, w: Worker) -> None:
        log = open(self._log(w), "ab")  # noqa: SIM115 - the child owns it from here
        w.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", *w.argv, env={**os.environ, **self.env}, stdout=log, stderr=log,
            start_new_session=True)  # Ctrl+C reaches the supervisor only; it stops them in order
        log.close()

    def _log(self, w: Worker) -> Path:
        return self.state / "logs" / f"{w.name}.log"

    async def start_workers(self, stop: asyncio.Event) -> None:
        total = len(self.plan.workers)
        settings = self.settings.model_copy(update={"redis_url": self.env["REDIS_URL"]})
        for i, w in enumerate(self.plan.workers, 1):
            if stop.is_set():
                raise StackError("stopped while starting")
            await self._spawn(w)
            if not await _until(lambda w=w: health(settings, w.health), 30, w):
                raise StackError(f"{w.name} did not come up: {self._tail(w)}")
            pin = f", CPU {w.cpu}" if w.cpu is not None else ""
            _say(f"[{i}/{total}] {w.name}: up (pid {w.proc.pid}{pin}, metrics http://127.0.0.1:{w.metrics_port}"
                 f"/metrics, log {self._log(w)})")

    def _tail(self, w: Worker, lines: int = 6) -> str:
        try:
            text = self._log(w).read_text(errors="replace").strip().splitlines()
        except OSError:
            text = []
        code = w.proc.returncode if w.proc else None
        exited = f"exited with {code}; " if code is not None else ""
        return exited + ("last lines of its log:\n  " + "\n  ".join(text[-lines:]) if text else "its log is empty")

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> int:
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        pid_file = self.state / "up.pid"
        pid_file.write_text(str(os.getpid()))
        started = time.monotonic()
        totals = Totals()
        try:
            self.env["REDIS_URL"] = await self.start_redis()
            (self.state / REDIS_URL_FILE).write_text(self.env["REDIS_URL"] + "\n")
            if self.settings.venue_env == "sim" and self.own_sim:
                await self.start_sim()
            elif self.settings.venue_env == "sim":
                url = f"http://{self.settings.sim_address}/v5/market/time"
                if not await _http_ok(url):
                    raise StackError(f"--no-sim: no simulator answers at {url}")
                _say(f"sim: using the simulator at {self.settings.sim_address}")
            self.env["VENUE_ENV"] = self.settings.venue_env
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if len(cpus) < 4:
                _say(f"{len(cpus) or 'unknown'} CPUs: the workers share them (pinning needs 4 or more)")
            await self.start_workers(stop)
            _say(f"{self.plan.mode} mode ({self.plan.execution} execution on {self.settings.venue_env}) is up; "
                 f"Ctrl+C or `arb stop` stops it" + (f", or after {self.duration:g} s" if self.duration else ""))
            await self.watch(stop, started, totals)
        except StackError as exc:
            self.failed = str(exc)
        finally:
            await self.stop_all()
            for name in (pid_file, self.state / REDIS_URL_FILE):
                with contextlib.suppress(OSError):
                    name.unlink()
        return self.summary(time.monotonic() - started)

    async def watch(self, stop: asyncio.Event, started: float, totals: Totals) -> None:
        client = aioredis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=5, decode_responses=True)
        deadline = time.monotonic() + self.duration if self.duration else None  # counted from "up"
        tty = sys.stdout.isatty()
        last_print, last_ticks, last_report = 0.0, (started, 0), time.monotonic()
        try:
            while not stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                dead = [w for w in self._all() if w.proc and w.proc.returncode is not None]
                if dead:
                    self.failed = f"{dead[0].name} stopped: {self._tail(dead[0])}"
                    return
                with contextlib.suppress(RedisError, OSError):
                    await read_totals(client, self.settings.redis_key_prefix, totals)
                now = time.monotonic()
                rate = (totals.ticks - last_ticks[1]) / max(1e-3, now - last_ticks[0])
                last_ticks = (now, totals.ticks)
                if now - last_report >= REPORT_EVERY_S:
                    with contextlib.suppress(RedisError, OSError):
                        text = render(await read_samples(client, self.settings.redis_key_prefix))
                        print(("\n" if tty else "") + text + "\n", flush=True)
                    last_report = now
                if tty or now - last_print >= 10:
                    line = totals.line(now - started, rate)
                    print("\r" + line[:160].ljust(160) if tty else line, end="" if tty else "\n", flush=True)
                    last_print = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if tty:
                print()
        finally:
            await client.aclose()

    def _all(self) -> list[Worker]:
        return ([self.sim] if self.sim else []) + self.plan.workers

    # ------------------------------------------------------------------ stop

    async def stop_all(self) -> None:
        """Strategy, then executor (it closes its trades), then the rest; the simulator and Redis last."""
        by_name = {w.name: w for w in self.plan.workers}
        order = [by_name.get("strategy"), by_name.get("executor")]
        order += [w for w in self.plan.workers if w.name not in ("strategy", "executor")]
        timeout = self.settings.shutdown_timeout_s + 15
        for w in [*filter(None, order), *([self.sim] if self.sim else [])]:
            if w.proc is None:
                continue
            if w.proc.returncode is None:
                _say(f"stopping {w.name}" + (" (closing its trades)" if w.name == "executor" else ""))
                w.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(w.proc.wait(), timeout)
                except TimeoutError:
                    _say(f"{w.name} did not stop in {timeout:g} s: killed")
                    w.proc.kill()
                    await w.proc.wait()
            self.exit_codes[w.name] = w.proc.returncode
        if url := self.env.get("REDIS_URL"):  # the final figures, before Redis goes
            client = aioredis.Redis.from_url(url, socket_timeout=5, decode_responses=True)
            with contextlib.suppress(RedisError, OSError):
                await read_totals(client, self.settings.redis_key_prefix, self.final)
                self.final_report = render(await read_samples(client, self.settings.redis_key_prefix))
            await client.aclose()
        if self.redis_proc is not None and self.redis_proc.returncode is None:
            self.redis_proc.send_signal(signal.SIGTERM)  # redis-server flushes its AOF and exits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.redis_proc.wait(), 10)
        if self.fake is not None:
            self.fake.shutdown()

    def summary(self, elapsed_s: float) -> int:
        """The run's figures; 0 when every worker stopped cleanly and no trade is open."""
        p, ok = self.final.portfolio, not self.failed
        _say(f"\n=== arb up: {self.plan.mode} mode, {elapsed_s:.0f} s ===")
        if self.failed:
            _say(f"stopped because {self.failed}")
        _say(f"market data   {self.final.ticks:,} tickers; {self.final.signals:,} signals")
        if not p:
            _say("trades        none: the executor wrote no fact")
        else:
            _say(f"trades        {p.get('closed_trades', '0')} closed ({p.get('win_count', '0')} won, "
                 f"{p.get('loss_count', '0')} lost), {p.get('rejected_trades', '0')} rejected, "
                 f"{p.get('active_trades', '0')} open")
            _say(f"PnL           ${_money(p.get('cumulative_pnl'))} (fees ${_money(p.get('fees_paid'))}, funding "
                 f"${_money(p.get('funding_paid'))}); capital ${_money(p.get('available_capital'))} available")
            _say(f"leg-outs      {p.get('leg_out_count', '0')} (loss ${_money(p.get('leg_out_total_loss'))}); "
                 f"emergency closes {p.get('emergency_closes', '0')}")
        if p.get("trading") == "halted":
            _say(f"trading       HALTED ({p.get('halt_reason')}): {p.get('halt_detail')}; `arb resume` lifts it")
        if p.get("active_trades", "0") != "0":
            ok = False
            _say("OPEN TRADES LEFT: see `arb trades` and the executor's log")
        bad = {name: code for name, code in self.exit_codes.items() if code not in (0, None)}
        if bad:
            ok = False
            _say("exit codes    " + ", ".join(f"{n} {c}" for n, c in bad.items()))
        if self.final_report:
            _say("\n" + self.final_report)
        _say(f"logs          {self.state / 'logs'}")
        return 0 if ok else 1


def fake_redis_server(port: int):
    """fakeredis over TCP on 127.0.0.1:`port`, serving from a thread of this process. Its
    handler closes the connection after any error reply (BUSYGROUP, say); this one answers
    the error and keeps the connection, as Redis does."""
    import select
    import threading

    from redis.exceptions import ResponseError

    try:
        from fakeredis import TcpFakeServer
        from fakeredis._clients._tcp_server import TCPFakeRequestHandler
    except ImportError:
        raise StackError("no Redis: set REDIS_URL, or install redis-server (apt-get install redis-server), "
                         "or pip install fakeredis for one that keeps nothing") from None

    class KeepOpen(TCPFakeRequestHandler):
        def handle(self) -> None:
            while not self.server._shutdown_event.is_set():
                try:
                    if self.current_client.can_read():
                        self.writer.dump(self.current_client.read_response())
                        continue
                    data = self.rfile.readline()
                    if data == b"":
                        if not select.select([self.connection], [], [], 0.01)[0]:
                            continue
                        if (data := self.rfile.readline()) == b"":
                            return  # the client closed
                    self.current_client.get_socket().sendall(data)
                except ConnectionError:
                    return
                except ResponseError as exc:
                    self.writer.dump(exc)

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    server.RequestHandlerClass = KeepOpen
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def read_totals(client: aioredis.Redis, prefix: str, totals: Totals) -> Totals:
    info = await _stream_info(client, prefix + "md:tickers")
    totals.ticks = int(info.get("entries-added", info.get("length", 0))) if info else 0
    totals.signals = await client.xlen(prefix + "strategy:signals")
    totals.portfolio = await client.hgetall(prefix + "strategy:portfolio:state")
    return totals


async def _stream_info(client: aioredis.Redis, stream: str) -> dict:
    try:
        return await client.xinfo_stream(stream)
    except RedisError:  # no such stream yet
        return {}


async def _ping(url: str, what: str, attempts: int = 1) -> None:
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        for attempt in range(attempts):
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                if attempt == attempts - 1:
                    raise StackError(f"cannot reach {what}: {exc}") from None
                await asyncio.sleep(0.1)
    finally:
        await client.aclose()


async def _until(check, timeout_s: float, worker: Worker | None = None) -> bool:
    """Poll `check` (async, truthy when done) every 100 ms; False on timeout or if `worker` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker is not None and worker.proc is not None and worker.proc.returncode is not None:
            return False
        with contextlib.suppress(RedisError, OSError):
            if await check():
                return True
        await asyncio.sleep(0.1)
    return False


async def _http_ok(url: str) -> bool:
    import aiohttp

    try:
        async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _masked(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, auth = head.partition("://")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{tail}"
