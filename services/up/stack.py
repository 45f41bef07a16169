"""The supervisor of `arb up`: starts the plan's processes in order, shows a status line, and
stops them in order on Ctrl+C, SIGTERM (`arb stop`), `--duration` or a worker that dies.

Stopping: the strategy (every shard's) first (no new signals), then the executor (it closes every trade, both
legs, and writes its facts), then the market data, the latency monitor and the simulator; the
summary is read; Redis last. A second Ctrl+C says what it is waiting for; a third kills what is
left and the summary names what it left open. Exit 0 only when every worker stopped cleanly and
no trade is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.report import read_samples, render
from services.up import processes
from services.up.plan import Plan, Worker
from services.up.processes import Interrupts, StackError, say
from services.up.redis_place import RedisPlace, place, place_cluster, where_to
from services.up.totals import Totals, halt_text, read_open_trades, read_totals, tickers_added
from shared import redis_io
from shared.control import HEALTH_TTL_S, health
from shared.keyspace import WORKERS, delete_own
from shared.settings import Settings

REPORT_EVERY_S = 60.0  # the metrics report while it runs
REDIS_URL_FILE = "redis.url"  # which Redis a running `arb up` uses (for arb status, arb stop ...)
READY_TIMEOUT_S = {"executor": 120.0}  # it replays every fact and reconciles with the venue first
READY_TIMEOUT_DEFAULT_S = 30.0


class Interrupted(Exception):
    """Ctrl+C or SIGTERM while the stack was starting."""


def running_redis_url(state_dir: Path) -> str | None:
    """The Redis of the `arb up` running from `state_dir`, if one is (not one that was killed)."""
    return running_redis(state_dir)[0]


def running_redis(state_dir: Path) -> tuple[str | None, bool]:
    """The Redis of the `arb up` running from `state_dir` (None if none is), and whether it is a
    Redis Cluster."""
    try:
        lines = (state_dir / REDIS_URL_FILE).read_text().split() if processes.running_pid(state_dir) else []
    except OSError:
        lines = []
    return (lines[0] if lines else None), lines[1:2] == ["cluster"]


class Stack:
    def __init__(self, settings: Settings, plan_: Plan, state_dir: Path, redis_explicit: bool,
                 duration: float | None, start_sim: bool = True, fresh: bool = False) -> None:
        self.settings, self.plan, self.state = settings, plan_, state_dir
        self.redis_explicit, self.duration, self.own_sim, self.fresh = redis_explicit, duration, start_sim, fresh
        self.env: dict[str, str] = {}
        self.redis: RedisPlace | None = None
        self.sim: Worker | None = None
        self.keys = Interrupts()
        self.exit_codes: dict[str, int | None] = {}
        self.failed = ""  # why it stopped, when that was not asked for
        self.note = ""  # why it stopped early, when it was asked
        self.final = Totals()
        self.final_report = ""
        self.ticks_before = 0
        self.ticker_streams = [settings.md_streams(k)["ticker"] for k in range(settings.md_shards)]
        self.halt_said = False

    @property
    def prefix(self) -> str:
        return self.settings.redis_key_prefix

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.keys.press, sig)
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        lock, url_file = processes.PidLock(self.state), self.state / REDIS_URL_FILE
        lock.acquire()
        started = time.monotonic()
        try:
            await self.start()
            say(f"{self.plan.mode} mode ({self.plan.execution} execution on {self.settings.venue_env}) is up; "
                "Ctrl+C or `arb stop` stops it" + (f", or after {self.duration:g} s" if self.duration else ""))
            await self.watch(started)
        except StackError as exc:
            self.failed = str(exc)
        except Interrupted as exc:
            self.note = str(exc)
        finally:
            await self.stop_all()
            with contextlib.suppress(OSError):
                url_file.unlink()
            lock.release()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return self.summary(time.monotonic() - started)

    async def start(self) -> None:
        if self.settings.redis_cluster:
            self.redis = await place_cluster(self.settings, self.state, self.redis_explicit)
            self.env["REDIS_CLUSTER"] = "1"
        else:
            self.redis = await place(self.settings, self.state, self.redis_explicit, self.keys.stop)
        url = self.env["REDIS_URL"] = self.redis.url
        with open(os.open(self.state / REDIS_URL_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(url + ("\ncluster\n" if self.redis.clustered else "\n"))  # it may hold the password
        say(f"inspect:  {self.redis.cli_line()} HGETALL {self.prefix}strategy:portfolio:state   "
            f"(`arb status` finds it by itself)")
        client = self.client()
        try:
            await self.alone(client)
            if self.fresh:
                await self.clear(client)
            self.ticks_before = await tickers_added(client, self.ticker_streams)
            self.final.before = await client.hgetall(self.prefix + "strategy:portfolio:state")
        finally:
            await client.aclose()
        s = self.settings
        if s.venue_env == "sim" and self.own_sim:
            await self.start_sim()
        elif s.venue_env == "sim":
            if not await processes.http_ok(f"http://{s.sim_address}/v5/market/time"):
                raise StackError(f"--no-sim: no simulator answers at http://{s.sim_address}")
            say(f"sim: using the simulator at {s.sim_address}")
        self.env["VENUE_ENV"] = s.venue_env
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) < 4:
            say(f"{len(cpus) or 'unknown'} CPUs: the workers share them (pinning needs 4 or more)")
        await self.start_workers()

    async def alone(self, client: aioredis.Redis) -> None:
        """Refuse to start a second system where one already runs (another arb up, or docker
        compose, on this Redis and prefix): two executors would trade one account from two
        folds of the facts. A killed run's health keys expire within HEALTH_TTL_S: waited for."""
        keys = [f"{self.prefix}health:{name}" for name in WORKERS]
        for attempt in range(int(HEALTH_TTL_S / 0.2) + 5):
            values = await (client.mget_nonatomic(keys) if self.settings.redis_cluster else client.mget(keys))
            live = {key.rsplit(":", 1)[1]: value for key, value in zip(keys, values, strict=True) if value}
            if not live:
                return
            if attempt == 0:
                say(f"redis: workers' health keys are there ({', '.join(live)}); waiting up to {HEALTH_TTL_S + 1:g} s "
                    "for them to expire, as a stopped or killed run's do")
            if self.keys.stop.is_set():
                raise Interrupted("stopped while starting, before anything was started")
            await asyncio.sleep(0.2)
        raise StackError(f"another system is running on the Redis at {where_to(self.redis.url)} (its "
                         f"{', '.join(live)} keep their health keys fresh): stop it first (`arb stop`, or docker "
                         "compose down), or give this one another REDIS_URL or REDIS_KEY_PREFIX")

    async def clear(self, client: aioredis.Redis) -> None:
        """--fresh: this system's keys go (on a real venue, only when no trade is open there)."""
        if self.settings.venue_env != "sim" and (open_ := await read_open_trades(client, self.prefix)):
            raise StackError(
                f"--fresh: the facts hold {len(open_)} open trades on VENUE_ENV={self.settings.venue_env}, with real "
                "positions at the venue: run `arb up` and stop it with Ctrl+C (it closes them), then --fresh")
        n = await delete_own(client, self.settings)
        say(f"fresh: deleted this system's {n:,} keys from {where_to(self.redis.url)}; other keys are untouched")

    async def start_sim(self) -> None:
        s = self.settings
        port = s.sim_port if processes.port_free(s.sim_port, s.sim_host) else processes.free_port()
        self.env["SIM_PORT"] = str(port)
        self.sim = Worker("sim", ["sim", "--symbols", ",".join(s.symbols_to_trade)])
        await self.spawn(self.sim)
        url = f"http://{s.sim_host}:{port}/v5/market/time"
        if not await processes.until(lambda: processes.http_ok(url), 15, self.sim, self.keys.stop):
            if self.keys.stop.is_set():
                raise Interrupted("stopped while starting, before the simulator was up")
            raise StackError(f"the simulator did not answer {url}: {self.tail(self.sim)}")
        moved = "" if port == s.sim_port else f" (SIM_PORT {s.sim_port} is taken)"
        say(f"sim: the local exchange on {s.sim_host}:{port}{moved}")

    async def spawn(self, w: Worker) -> None:
        await processes.spawn(w, {**os.environ, **self.env}, self.log(w))

    def log(self, w: Worker) -> Path:
        return self.state / "logs" / f"{w.name}.log"

    async def start_workers(self) -> None:
        total = len(self.plan.workers)
        settings = self.settings.model_copy(update={"redis_url": self.env["REDIS_URL"]})  # the cluster flag too
        for i, w in enumerate(self.plan.workers, 1):
            if self.keys.stop.is_set():
                raise Interrupted(f"stopped while starting, before {w.name} was up")
            self.keys.stage = f"starting {w.name}"
            await self.spawn(w)

            async def ready(w: Worker = w) -> bool:  # its own record: not one a killed run left behind
                record = await health(settings, w.health)
                return record is not None and record.get("pid") == w.proc.pid and record.get("ready", True)

            timeout = READY_TIMEOUT_S.get(w.name, READY_TIMEOUT_DEFAULT_S)
            if not await processes.until(ready, timeout, w, self.keys.stop):
                if self.keys.stop.is_set():
                    raise Interrupted(f"stopped while starting, before {w.name} was up")
                raise StackError(f"{w.name} did not come up in {timeout:g} s: {self.tail(w)}")
            pin = f", CPU {w.cpu}" if w.cpu is not None else ""
            say(f"[{i}/{total}] {w.name}: up (pid {w.proc.pid}{pin}, metrics http://127.0.0.1:{w.metrics_port}"
                f"/metrics, log {self.log(w)})")

    def tail(self, w: Worker, lines: int = 6) -> str:
        try:
            text = self.log(w).read_text(errors="replace").strip().splitlines()
        except OSError:
            text = []
        code = w.proc.returncode if w.proc else None
        exited = f"exited with {code}; " if code is not None else ""
        return exited + ("last lines of its log:\n  " + "\n  ".join(text[-lines:]) if text else "its log is empty")

    # ------------------------------------------------------------------ watch

    async def watch(self, started: float) -> None:
        self.keys.stage = "running"
        client = self.client()
        deadline = time.monotonic() + self.duration if self.duration else None  # counted from "up"
        tty = sys.stdout.isatty()
        totals = Totals()
        last_print, last_ticks, last_report = 0.0, (started, 0), time.monotonic()
        try:
            while not self.keys.stop.is_set():
                if deadline and time.monotonic() >= deadline:
                    break
                if dead := [w for w in self.all() if w.proc and w.proc.returncode is not None]:
                    self.failed = f"{dead[0].name} stopped: {self.tail(dead[0])}"
                    return
                with contextlib.suppress(RedisError, OSError):
                    await read_totals(client, self.prefix, totals, self.ticks_before, self.ticker_streams)
                now = time.monotonic()
                rate = (totals.ticks - last_ticks[1]) / max(1e-3, now - last_ticks[0])
                last_ticks = (now, totals.ticks)
                if totals.portfolio.get("trading") == "halted" and not self.halt_said:
                    self.halt_said = True
                    say(("\n" if tty else "") + halt_text(totals.portfolio))
                if now - last_report >= REPORT_EVERY_S:
                    with contextlib.suppress(RedisError, OSError, ValueError):
                        text = render(await read_samples(client, self.prefix))
                        say(("\n" if tty else "") + text + "\n")
                    last_report = now
                if tty or now - last_print >= 10:
                    line = totals.line(now - started, rate)
                    print("\r" + line[:160].ljust(160) if tty else line, end="" if tty else "\n", flush=True)
                    last_print = now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.keys.stop.wait(), 1.0)
            if tty:
                print()
        finally:
            await client.aclose()

    def client(self):
        """redis-py's client of the Redis (or Redis Cluster) this run uses."""
        return redis_io.client(self.settings.model_copy(update={"redis_url": self.redis.url}), socket_timeout=5,
                               decode_responses=True)

    def all(self) -> list[Worker]:
        return ([self.sim] if self.sim else []) + self.plan.workers

    # ------------------------------------------------------------------ stop

    async def stop_all(self) -> None:
        by_name = {w.name: w for w in self.plan.workers}
        first = [w for w in self.plan.workers if w.name.startswith("strategy")] + [by_name.get("executor")]
        order = [*filter(None, first), *[w for w in self.plan.workers if w not in first]]
        for w in order + ([self.sim] if self.sim else []):
            if w.proc is None:
                continue
            if w.proc.returncode is None:
                timeout = self.settings.shutdown_timeout_s + 15 if w.name == "executor" else 15.0
                doing = "closing its open trades" if w.name == "executor" else "stopping"
                who = {"latency": "latency monitor", "sim": "simulator"}.get(w.name, w.name)
                self.keys.stage = f"waiting for the {who} (pid {w.proc.pid}), {doing}, up to {timeout:g} s"
                say(f"stopping {w.name}" + (" (closing its open trades)" if w.name == "executor" else ""))
                if outcome := await processes.stop(w, timeout, self.keys.force):
                    say(f"{w.name}: {outcome}")
            self.exit_codes[w.name] = w.proc.returncode
        if self.redis is not None:
            self.keys.stage = "reading the summary from Redis"
            client = self.client()
            try:
                await read_totals(client, self.prefix, self.final, self.ticks_before, self.ticker_streams)
                self.final.open_trades = await read_open_trades(client, self.prefix)
                self.final_report = render(await read_samples(client, self.prefix), trades=False)
            except (RedisError, OSError, ValueError) as exc:  # the figures are lost, not the stop
                self.final.unread = f"{type(exc).__name__}: {exc}"
            finally:
                await client.aclose()
            if self.redis.owned:
                self.keys.stage = "stopping Redis (writing its AOF)"
                await self.redis.stop()

    def summary(self, elapsed_s: float) -> int:
        """The run's figures; 0 when every worker stopped cleanly and no trade is open."""
        say(f"\n=== arb up: {self.plan.mode} mode, {elapsed_s:.0f} s ===")
        if self.failed or self.note:
            say(f"stopped early: {self.failed}" if self.failed else self.note)
        lines, clean = self.final.verdict(self.exit_codes, self.settings.venue_env)
        for line in lines + (["", self.final_report] if self.final_report else []):
            say(line)
        say(f"logs          {self.state / 'logs'}")
        return 0 if clean and not self.failed else 1
