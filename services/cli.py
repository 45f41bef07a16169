"""`arb`: the command line of the arbitrage system."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry

from shared.instruments import UnknownSymbol
from shared.settings import ConfigError, Settings, load_settings
from shared.venues import NAMES, UnknownVenue
from shared.venues.protocol import NoSuchEnvironment

app = typer.Typer(
    help="Crypto perpetual-futures arbitrage on Redis Streams. Settings come from env vars and "
    "./.env (see README); command-line options override them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def _settings(cli: dict, running: bool = False) -> Settings:
    """Settings with `cli` overrides; with `running`, the Redis of a running `arb up` (from its
    state folder, ARB_STATE_DIR or .arb) unless REDIS_URL or --redis-url says otherwise."""
    try:
        settings = load_settings(cli)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if running and "redis_url" not in settings.model_fields_set:
        from pathlib import Path

        from services.up import running_redis_url

        if url := running_redis_url(Path(os.environ.get("ARB_STATE_DIR", ".arb"))):
            settings = settings.model_copy(update={"redis_url": url})
    return settings


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)


def pin_to_cpu(cpu: int) -> None:
    """Run this process on one CPU only; a clear error where that is not possible."""
    if not hasattr(os, "sched_setaffinity"):
        raise _fail(f"--cpu {cpu}: CPU pinning needs Linux (os.sched_setaffinity); run without --cpu")
    allowed = sorted(os.sched_getaffinity(0))
    if cpu not in allowed:
        raise _fail(f"--cpu {cpu}: not available to this process; allowed CPUs: {allowed}")
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise _fail(f"--cpu {cpu}: cannot pin: {exc}") from None


@app.command()
def ingest(
    venue: Annotated[str, typer.Option(help=f"Venue to read: {', '.join(NAMES)}.")] = "bybit",
    symbols: Annotated[str | None, typer.Option(
        help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT. Default: SYMBOLS_TO_TRADE.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis to write to. Default: REDIS_URL.")] = None,
    venue_env: Annotated[str | None, typer.Option(
        help="Endpoint set: mainnet, testnet, demo (market data from mainnet) or sim (local simulator). "
        "Default: VENUE_ENV, else sim.")] = None,
    hosts: Annotated[str | None, typer.Option(
        help="Market-data hosts instead of the endpoint set's, e.g. okx=127.0.0.1:9000 or "
        "okx=https://www.okx.com|wss://ws.okx.com:8443. Default: VENUE_HOSTS.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Pin the process to this CPU (Linux).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Stream a venue's public market data into Redis.

    Symbols are canonical (BTCUSDT) on every venue; the venue's instruments list maps them to
    its own names (BTC-USDT-SWAP) and size units, and a symbol it does not list stops the run
    with exit code 2. Tickers, top-of-book levels, public trades and liquidations go to the
    capped streams md:tickers, md:books, md:trades and md:liquidations (XADD MAXLEN ~
    MD_STREAM_MAXLEN: when nobody reads, the oldest entries are dropped and counted), tagged
    with the venue. Ticker fields are kept per symbol in the venue's hash, e.g.
    okx:swap:tickers:{SYMBOL}. Ctrl+C or SIGTERM flushes what was received and exits 0.

    Example: VENUE_ENV=mainnet arb ingest --venue okx --symbols BTCUSDT,ETHUSDT --metrics-port 9101
    """
    from services.ingestor.service import Ingestor

    settings = _settings({
        "symbols_to_trade": ("--symbols", symbols),
        "redis_url": ("--redis-url", redis_url),
        "venue_env": ("--venue-env", venue_env),
        "venue_hosts": ("--hosts", hosts),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    try:
        ingestor = Ingestor(settings, venue, settings.symbols_to_trade)
    except (UnknownVenue, NoSuchEnvironment) as exc:
        raise _fail(f"--venue: {exc}") from None
    if cpu is not None:
        pin_to_cpu(cpu)
    if settings.metrics_port:
        _serve_metrics(settings, ingestor.register_metrics)
    try:
        asyncio.run(_run_until_signal(ingestor.run, duration,
                                      (settings, f"ingest-{venue}", ingestor.register_metrics)))
    except UnknownSymbol as exc:
        raise _fail(f"--symbols: {exc}") from None


@app.command()
def strategy(
    mode: Annotated[str, typer.Option(
        help="cross: every symbol and venue pair; synthetic: one venue's mid -/+ SYNTHETIC_SPREAD_BPS/2 "
        "for SYMBOLS_TO_TRADE.")] = "cross",
    scorer: Annotated[str | None, typer.Option(
        help="Confidence scorer: confluence (seed section 3) or dashboard. Default: STRATEGY_SCORER.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis to read and write. Default: REDIS_URL.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Pin the process to this CPU (Linux).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
    consumer: Annotated[str, typer.Option(
        help="This worker's consumer name in the group `strategy`: keep it across restarts (a restart "
        "re-reads what it had not acked); a second worker needs its own, and takes over what a dead one "
        "left unacked after STRATEGY_CLAIM_IDLE_MS.")] = "strategy-1",
) -> None:
    """Find opportunities in the market-data streams and write signals.

    Reads md:tickers, md:books, md:trades and md:liquidations with the consumer group
    `strategy`; decides on every top-of-book or funding change; writes each signal to the
    stream strategy:signals (redis-cli XRANGE strategy:signals - +). Once a second it ranks
    every pair and keeps the top 20 for 60 s in strategy:opportunities:{ms} (redis-cli GET
    strategy:opportunities:latest, then LRANGE that key 0 -1). Cross mode needs `arb latency`
    running: a venue without a fresh latency verdict is stale, and a stale venue gives
    confidence 0.

    Example: arb strategy --mode synthetic --metrics-port 9103
    """
    from services.strategy.service import StrategyService
    from services.strategy.synthetic import never_qualifies

    _check_mode(mode)
    settings = _settings({
        "strategy_scorer": ("--scorer", scorer),
        "redis_url": ("--redis-url", redis_url),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    if mode == "synthetic":
        failed = never_qualifies(settings.synthetic_spread_bps, settings.synthetic_funding_delta,
                                 settings.estimated_position_size)
        if failed:
            typer.echo(f"warning: with SYNTHETIC_SPREAD_BPS={settings.synthetic_spread_bps:g}, "
                       f"SYNTHETIC_FUNDING_DELTA={settings.synthetic_funding_delta:g} and ESTIMATED_POSITION_SIZE="
                       f"{settings.estimated_position_size:g} no synthetic opportunity can ever qualify: "
                       + "; ".join(failed), err=True)
    _run_worker(StrategyService(settings, mode, consumer), settings, cpu, duration, "strategy")


def _check_mode(mode: str) -> None:
    if mode not in ("cross", "synthetic"):
        raise _fail(f"--mode: {mode!r} is not one of: cross, synthetic")


def _run_worker(service, settings: Settings, cpu: int | None, duration: float | None, name: str) -> None:
    """Pinned if asked, metrics served if a port is set, run until Ctrl+C, SIGTERM or `duration`."""
    if cpu is not None:
        pin_to_cpu(cpu)
    if settings.metrics_port:
        _serve_metrics(settings, service.register_metrics)
    try:
        asyncio.run(_run_until_signal(service.run, duration, (settings, name, service.register_metrics)))
    except ConfigError as exc:
        raise _fail(f"config error: {exc}") from None


@app.command()
def executor(
    mode: Annotated[str, typer.Option(
        help="cross: trade the cross-exchange signals; synthetic: both legs on SYNTHETIC_VENUE.")] = "cross",
    execution: Annotated[str | None, typer.Option(
        help="paper: fills modelled from market data (queue position, book walking); live: orders at Bybit on "
        "VENUE_ENV (sim, demo, testnet, mainnet). Default: EXECUTION.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis to read and write. Default: REDIS_URL.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Pin the process to this CPU (Linux).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Trade the strategy's signals: two legs, harder first, never a naked leg.

    Reads strategy:signals and md:* with the consumer group `executor`. Every fact (signal
    taken or rejected, order placed, filled, cancelled, leg-out, trade active, closed) goes to
    the stream strategy:events, never trimmed; the read models follow it:
    strategy:trades:active:{id}, strategy:trades:closed:{id}, strategy:portfolio:state,
    strategy:leg_out_events and strategy:metrics:daily (redis-cli HGETALL
    strategy:portfolio:state). strategy:marks values the open trades at the market every
    second. On start it replays strategy:events; on stop (Ctrl+C) it closes the active trades
    first.

    Example: arb executor --mode synthetic --metrics-port 9104
    """
    from services.executor.service import ExecutorService

    _check_mode(mode)
    settings = _settings({
        "execution": ("--execution", execution),
        "redis_url": ("--redis-url", redis_url),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    if settings.execution == "live" and settings.bybit_credentials() is None:
        raise _fail(f"config error: --execution live on VENUE_ENV={settings.venue_env} needs a Bybit API key and "
                    "secret: BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET for demo, BYBIT_API_KEY and "
                    "BYBIT_API_SECRET for testnet and mainnet")
    _run_worker(ExecutorService(settings, mode), settings, cpu, duration, "executor")


@app.command()
def rebuild(
    check: Annotated[bool, typer.Option("--check", help="Only compare; change nothing.")] = False,
    mode: Annotated[str, typer.Option(help="The executor's mode (cross or synthetic).")] = "cross",
    redis_url: Annotated[str | None, typer.Option(help="Redis holding strategy:events. Default: REDIS_URL.")] = None,
) -> None:
    """Recompute every read model from strategy:events and put right what differs.

    Lists each key of strategy:trades:*, strategy:portfolio:state, strategy:leg_out_events
    and strategy:metrics:daily whose content the facts do not give, then rewrites those
    (unless --check). Exit code 1 with --check when anything differs.

    Example: arb rebuild --check
    """
    from services.executor.rebuild import rebuild as run_rebuild

    settings = _settings({"redis_url": ("--redis-url", redis_url)})
    _logging(settings.log_level)
    try:
        report = asyncio.run(run_rebuild(settings, mode, write=not check))
    except OSError as exc:
        raise _fail(f"cannot reach Redis: {exc}") from None
    for line in report.differences:
        typer.echo(line)
    verb = "differ" if check else "rewritten"
    typer.echo(f"{report.facts} facts, {report.keys} read models; {len(report.differences)} {verb}")
    if check and report.differences:
        raise typer.Exit(1)


@app.command()
def latency(
    venues: Annotated[str, typer.Option(help=f"Comma-separated venues to watch, from: {', '.join(NAMES)}.")] = ",".join(
        NAMES),
    redis_url: Annotated[str | None, typer.Option(help="Redis to write to. Default: REDIS_URL.")] = None,
    venue_env: Annotated[str | None, typer.Option(
        help="Endpoint set: mainnet, testnet, demo or sim. Default: VENUE_ENV, else sim.")] = None,
    hosts: Annotated[str | None, typer.Option(
        help="Hosts instead of the endpoint set's, e.g. okx=127.0.0.1:9000. Default: VENUE_HOSTS.")] = None,
    poll_ms: Annotated[int | None, typer.Option(help="Poll period per venue. Default: LATENCY_POLL_MS (100).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Watch each venue's clock and link: the exchange latency monitor.

    Polls every venue's server time (every 100 ms, slower where the venue's rate limit says
    so), latency = local receipt time - server time, averaged over LATENCY_WINDOW_S (10 s).
    A venue is stale when that average is beyond LATENCY_STALE_MS (200 ms) either way, or
    when no poll succeeded in the window. The state goes to the hash
    strategy:latency:{exchange} (redis-cli hgetall strategy:latency:okx) and to the metrics
    arb_exchange_latency_ms and arb_exchange_stale; turning stale and recovering are logged.

    Example: VENUE_ENV=mainnet arb latency --venues bybit,okx --metrics-port 9102
    """
    from services.latency.service import LatencyMonitor

    settings = _settings({
        "redis_url": ("--redis-url", redis_url),
        "venue_env": ("--venue-env", venue_env),
        "venue_hosts": ("--hosts", hosts),
        "latency_poll_ms": ("--poll-ms", poll_ms),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    names = list(dict.fromkeys(v.strip().lower() for v in venues.split(",") if v.strip()))
    try:
        monitor = LatencyMonitor(settings, names)
    except (UnknownVenue, NoSuchEnvironment) as exc:
        raise _fail(f"--venues: {exc}") from None
    if settings.metrics_port:
        _serve_metrics(settings, monitor.register_metrics)
    asyncio.run(_run_until_signal(monitor.run, duration, (settings, "latency", monitor.register_metrics)))


def _serve_metrics(settings: Settings, register) -> None:
    from shared.metrics import serve

    registry = CollectorRegistry()
    register(registry)
    try:
        serve(registry, settings.metrics_host, settings.metrics_port)
    except OSError as exc:
        raise _fail(f"--metrics-port {settings.metrics_port}: {exc}") from None


async def _run_until_signal(main, duration: float | None, health: tuple | None = None):
    """`main(stop)` until Ctrl+C, SIGTERM or `duration`; with `health` (settings, service name,
    and its register_metrics), the service's health key and metrics snapshots are kept until
    `main` has returned (shared/control.py)."""
    from shared.control import heartbeat

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    done = asyncio.Event()
    beat = asyncio.ensure_future(heartbeat(health[0], health[1], done, *health[2:])) if health else None
    try:
        return await main(stop)
    finally:
        if beat is not None:
            done.set()
            await asyncio.gather(beat, return_exceptions=True)


@app.command()
def sim(
    port: Annotated[int | None, typer.Option(help="Port to listen on. Default: SIM_PORT (8790).")] = None,
    host: Annotated[str | None, typer.Option(
        help="Address to listen on. Default: SIM_HOST (127.0.0.1); 0.0.0.0 in a container.")] = None,
    symbols: Annotated[str | None, typer.Option(
        help="Comma-separated symbols to simulate. Default: SYMBOLS_TO_TRADE.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the market model: the same seed replays the same market.")] = 1,
    faults: Annotated[str | None, typer.Option(
        help="JSON file of faults to inject from the start (latency_ms, jitter_ms, drop_ws_every_s, "
        "clock_skew_ms, reject_next, reject_code, reject_message, drop_order_responses, "
        "drop_order_responses_fraction, reject_link_ids, unfilled, partial_fill_fraction, rate_limit_per_s); "
        "change them later with POST /admin/faults.")] = None,
    klines: Annotated[str | None, typer.Option(
        help="Comma-separated kline CSVs named SYMBOL_*.csv (timestamp,open,high,low,close,volume, as in "
        "market-data/bybit/klines_1m): those symbols replay the recorded prices instead of a random walk.")] = None,
    speed: Annotated[float, typer.Option(help="How many times faster than recorded --klines play.", min=0.001)] = 60.0,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Run a local exchange: Bybit V5 (market data, trading, private stream) and the market
    data of Binance USD-M, OKX and Bitget, for offline runs and tests.

    Bybit: ws://127.0.0.1:PORT/v5/public/linear and /v5/private; REST /v5/market/...,
    /v5/order/..., /v5/execution/list, /v5/position/..., /v5/account/... (signed with SIM_API_KEY /
    SIM_API_SECRET; orders fill against the simulated book, with fees and funding).
    Binance: /public/ws|stream (bookTicker, depth), /market/ws|stream (markPrice, aggTrade),
    /fapi/v1/.... OKX: /ws/v5/public, /api/v5/public/.... Bitget: /v2/ws/public, /api/v2/....
    The venues' prices are correlated; cross-venue spreads open and close on their own, and
    POST /admin/opportunity {"symbol": "BTCUSDT", "venue": "binance", "spread_bps": 30,
    "funding_delta": 0.0005, "seconds": 60} forces one. With VENUE_ENV=sim (the default),
    `arb ingest` connects to it.

    Example: arb sim --symbols BTCUSDT,ETHUSDT & arb ingest --symbols BTCUSDT,ETHUSDT
    """
    from services.sim.faults import FaultError, Faults
    from services.sim.replay import ReplayError, load_klines
    from services.sim.server import serve

    settings = _settings({"sim_port": ("--port", port), "sim_host": ("--host", host),
                          "symbols_to_trade": ("--symbols", symbols)})
    injected = Faults()
    if faults is not None:
        try:
            with open(faults, encoding="utf-8") as file:
                injected.apply(json.load(file))
        except (OSError, ValueError, FaultError) as exc:
            raise _fail(f"--faults {faults}: {exc}") from None
    try:
        paths = {p.symbol: p for p in map(load_klines, filter(None, (klines or "").split(",")))}
    except ReplayError as exc:
        raise _fail(f"--klines: {exc}") from None
    if unknown := set(paths) - set(settings.symbols_to_trade):
        raise _fail(f"--klines: {', '.join(sorted(unknown))} not among --symbols {','.join(settings.symbols_to_trade)}")
    _logging(settings.log_level)

    async def main(stop: asyncio.Event) -> None:
        keys = {settings.sim_api_key: settings.sim_api_secret.get_secret_value()}
        await serve(settings.sim_host, settings.sim_port, settings.symbols_to_trade, seed, stop, keys, injected,
                    paths, speed, settings.sim_step_ms)

    try:
        asyncio.run(_run_until_signal(main, duration))
    except OSError as exc:
        raise _fail(f"--port {settings.sim_port}: cannot listen on {settings.sim_host}: {exc.strerror}") from None


@app.command()
def up(
    mode: Annotated[str, typer.Option(
        help="synthetic: made-up opportunities on Bybit alone, both legs there, orders at the simulator (or "
        "demo, testnet); cross: every venue's real spreads, paper execution; live: real orders at Bybit on "
        "VENUE_ENV (needs keys and MAX_DAILY_LOSS, POSITION_SIZE_LIMIT; mainnet needs --confirm-mainnet).")
    ] = "synthetic",
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols. Default: SYMBOLS_TO_TRADE.")] = None,
    venues: Annotated[str | None, typer.Option(
        help="Cross mode: the venues to read and trade. Default: EXECUTOR_VENUES (bybit,binance,okx).")] = None,
    state_dir: Annotated[str, typer.Option(envvar="ARB_STATE_DIR",
                                           help="Where Redis keeps its data, the logs and the pid file.")] = ".arb",
    metrics_port: Annotated[int, typer.Option(help="First metrics port; each worker takes the next free one.")
                            ] = 9101,
    confirm_mainnet: Annotated[bool, typer.Option("--confirm-mainnet", help="Allow live mode on mainnet.")] = False,
    sim: Annotated[bool, typer.Option(
        help="With VENUE_ENV=sim, start the simulator; --no-sim uses the one already at SIM_HOST:SIM_PORT.")] = True,
) -> None:
    """Run the whole system on this machine: Redis, the simulator, the ingestors, the latency
    monitor, the strategy and the executor, each its own process.

    Redis is REDIS_URL when set; else a private redis-server from PATH with its data (AOF) under
    --state-dir; else an in-process fakeredis that keeps nothing. With VENUE_ENV=sim (the default)
    the simulator is the venue. Each worker's log is in STATE_DIR/logs. A status line shows
    tickers, signals, trades and PnL as they happen. Ctrl+C, SIGTERM or `arb stop` stops new
    entries, closes every open trade (both legs), stops the rest, prints a summary, and exits 0.
    A worker that dies stops the stack with its last log lines and exit code 1.

    Settings come from the environment and ./.env; ENVIRONMENT=development|staging|production
    presets VENUE_ENV (sim, demo, mainnet) and POSITION_SIZE_LIMIT (none, $50, $100).

    Example: arb up --duration 60            (synthetic trading on the simulator for a minute)
    Example: arb up --mode cross --venues bybit,binance,okx
    """
    from services.up import Stack, StackError, plan, port_free, refusals

    settings = _settings({"symbols_to_trade": ("--symbols", symbols)})
    if errors := refusals(settings, mode, confirm_mainnet):
        raise _fail("\n".join(f"arb up: {e}" for e in errors))
    names = [v.strip().lower() for v in (venues or ",".join(settings.executor_venues)).split(",") if v.strip()]
    if unknown := [v for v in names if v not in NAMES]:
        raise _fail(f"--venues: no venue {unknown[0]!r}; venues: {', '.join(NAMES)}")
    if mode == "cross" and (missing := [v for v in settings.executor_venues if v not in names]):
        raise _fail(f"--venues: the executor trades EXECUTOR_VENUES, and {', '.join(missing)} would have no market "
                    f"data; add it or set EXECUTOR_VENUES={','.join(names)}")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    stack_plan = plan(settings, mode, names, cpus, metrics_port, free=port_free)
    from pathlib import Path

    state = Path(state_dir).resolve()  # redis-server changes into its data folder
    if (state / "up.pid").exists() and _alive(int((state / "up.pid").read_text() or 0)):
        raise _fail(f"arb up is already running from {state} (pid {(state / 'up.pid').read_text()}); "
                    "`arb stop` stops it")
    stack = Stack(settings, stack_plan, state, "redis_url" in settings.model_fields_set, duration, start_sim=sim)
    if symbols:
        stack.env["SYMBOLS_TO_TRADE"] = ",".join(settings.symbols_to_trade)

    async def main(stop: asyncio.Event) -> int:
        return await stack.run(stop)

    try:
        code = asyncio.run(_run_until_signal(main, None))
    except StackError as exc:
        raise _fail(f"arb up: {exc}") from None
    raise typer.Exit(code)


def _operator() -> str:
    """Who gave an operator command, as recorded with it."""
    return f"{os.environ.get('USER', 'operator')}@{os.uname().nodename}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command()
def stop(
    emergency: Annotated[bool, typer.Option(
        "--emergency", help="The kill switch: trading halts at once and every open trade is closed at market "
        "(SAFETY_ON_STOP=keep keeps them); the processes keep running so you can look. `arb resume` lifts it.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, recorded in the halt.")] = "",
    state_dir: Annotated[str, typer.Option(envvar="ARB_STATE_DIR", help="The state folder of the `arb up` to stop.")
                         ] = ".arb",
) -> None:
    """Stop `arb up` cleanly (as Ctrl+C does), or with --emergency halt trading everywhere.

    The emergency halt is a command on the stream strategy:control: the executor turns it into
    a TradingHalted fact within a second, even if it is down now (it reads it when it starts),
    and the strategy stops its signals when it sees that fact. It works the same under
    docker compose.

    Example: arb stop --emergency --reason "exchange incident"
    """
    from pathlib import Path

    settings = _settings({}, running=True)
    if emergency:
        from shared.control import send

        who = _operator()
        fields = {"by": who, "detail": f"arb stop --emergency by {who}" + (f": {reason}" if reason else "")}
        try:
            entry = asyncio.run(send(settings, "halt", **fields))
        except OSError as exc:
            raise _fail(f"cannot reach Redis at REDIS_URL: {exc}") from None
        typer.echo(f"halt sent ({settings.redis_key_prefix + settings.stream_control} {entry}); "
                   "`arb status` shows when trading is halted and the trades closed")
        return
    pid_file = Path(state_dir) / "up.pid"
    pid = int(pid_file.read_text() or 0) if pid_file.exists() else 0
    if not _alive(pid):
        raise _fail(f"no `arb up` running from {state_dir} (no live pid in {pid_file})")
    os.kill(pid, signal.SIGTERM)
    typer.echo(f"asked arb up (pid {pid}) to stop: it closes the open trades first")


@app.command()
def resume() -> None:
    """Lift a trading halt (a safety stop or `arb stop --emergency`): the executor takes
    signals again, and the safety windows start afresh."""
    from shared.control import send

    settings = _settings({}, running=True)
    who = _operator()
    try:
        entry = asyncio.run(send(settings, "resume", by=who))
    except OSError as exc:
        raise _fail(f"cannot reach Redis at REDIS_URL: {exc}") from None
    typer.echo(f"resume sent ({entry})")


@app.command()
def check(
    service: Annotated[str, typer.Argument(help="executor, strategy, latency, ingest-<venue>, or sim.")],
) -> None:
    """Exit 0 if the service is alive (its health key in Redis, refreshed every second, expires
    5 s after it stops; for sim, its HTTP API answers), else 1. Docker compose's health check."""
    settings = _settings({}, running=True)
    if service == "sim":
        from services.up import _http_ok

        ok = asyncio.run(_http_ok(f"http://{settings.sim_address}/v5/market/time"))
        typer.echo(f"sim: {'ok' if ok else 'not answering at ' + settings.sim_address}")
        raise typer.Exit(0 if ok else 1)
    from shared.control import health

    try:
        record = asyncio.run(health(settings, service))
    except OSError as exc:
        raise _fail(f"{service}: cannot reach Redis: {exc}") from None
    if record is None:
        typer.echo(f"{service}: no health key (down, hung, or not started)")
        raise typer.Exit(1)
    typer.echo(f"{service}: ok (pid {record['pid']})")


def _read_redis(settings: Settings, read):
    """`await read(client, prefix)` on a client of settings' Redis; a clear error if it is down."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    async def run():
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                         decode_responses=True)
        try:
            return await read(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except (RedisError, OSError) as exc:
        raise _fail(f"cannot read Redis at REDIS_URL: {exc}") from None


def _view(settings: Settings, closed: bool = False):
    from services.views import read_view

    return _read_redis(settings, lambda client, prefix: read_view(client, prefix, closed))


_REDIS_OPTION = typer.Option(help="Redis to read. Default: REDIS_URL.")


@app.command()
def status(redis_url: Annotated[str | None, _REDIS_OPTION] = None) -> None:
    """Portfolio, trading on or halted, workers alive, active trades, the top opportunities and
    each venue's latency, as Redis holds them now."""
    from services.views import render_status

    typer.echo(render_status(_view(_settings({"redis_url": ("--redis-url", redis_url)}, running=True))))


@app.command()
def trades(
    closed: Annotated[bool, typer.Option("--closed", help="The closed trades, newest last.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 20,
    redis_url: Annotated[str | None, _REDIS_OPTION] = None,
) -> None:
    """The active trades (or with --closed the closed ones: outcome, reason, PnL) from
    strategy:trades:*."""
    from services.views import render_trades

    view = _view(_settings({"redis_url": ("--redis-url", redis_url)}, running=True), closed)
    typer.echo("\n".join(render_trades(view, closed, limit)))


@app.command()
def report(redis_url: Annotated[str | None, _REDIS_OPTION] = None) -> None:
    """The metrics report (seed task 15) from the workers' snapshots in Redis: opportunities,
    trades, success rate, p50/p95/p99 of every stage, and the edge cases. Works for a running
    system and for a finished one whose Redis is still there. `arb up` prints it every 60 s."""
    from services.report import read_samples, render

    samples = _read_redis(_settings({"redis_url": ("--redis-url", redis_url)}, running=True), read_samples)
    if not samples.services:
        raise _fail("no metrics snapshots in Redis (metrics:*): no worker has run against it")
    typer.echo(render(samples))


@app.command()
def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.", min=0.5)] = 5.0,
    redis_url: Annotated[str | None, _REDIS_OPTION] = None,
) -> None:
    """A live view, refreshed every 5 s: available capital, active positions, the top 5
    opportunities, PnL, win rate, utilization, leg-outs and exchange latency. Ctrl+C quits."""
    import time as _time

    from services.views import render_status

    settings = _settings({"redis_url": ("--redis-url", redis_url)}, running=True)
    try:
        while True:
            text = render_status(_view(settings))
            stamp = _time.strftime("%H:%M:%S")
            typer.echo("\x1b[2J\x1b[H" + f"arb top  {stamp}  (every {interval:g} s, Ctrl+C quits)\n\n" + text)
            _time.sleep(interval)
    except KeyboardInterrupt:
        pass


@app.command()
def validate(
    venue_env: Annotated[str | None, typer.Option(
        help="Endpoint set to check: sim, demo, testnet or mainnet. Default: VENUE_ENV.")] = None,
) -> None:
    """Check the configured Bybit venue before trading on it: connectivity and clock skew,
    authentication, balance handling, rate-limit headers, error handling (a bad parameter must
    get 10001, a wrong signature 10004), and key security (no Wallet permission, bound to an
    IP). Prints a pass/fail table; exit code 1 if any check fails. No order is placed.

    Example: VENUE_ENV=demo arb validate
    """
    from services.validate import table
    from services.validate import validate as run_validate

    settings = _settings({"venue_env": ("--venue-env", venue_env)})
    checks = asyncio.run(run_validate(settings))
    typer.echo(f"bybit on {settings.venue_env} ({settings.bybit_endpoints().rest})")
    typer.echo(table(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _day_ms(text: str, option: str) -> int:
    from datetime import UTC, datetime

    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option}: {text!r} is not a date like 2025-06-01 or 2025-06-01T08:00") from None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp() * 1000)


@app.command()
def history(
    kind: Annotated[str, typer.Argument(help="klines or funding.")],
    symbol: Annotated[str, typer.Option(help="Canonical symbol, e.g. BTCUSDT.")] = "BTCUSDT",
    start: Annotated[str, typer.Option(help="First day or instant (UTC), e.g. 2025-06-01.")] = "",
    end: Annotated[str, typer.Option(help="Last instant (UTC), e.g. 2025-07-01.")] = "",
    interval: Annotated[str, typer.Option(help="Kline interval: 1, 3, 5, 15, 30, 60, 120, 240, 360, 720, D.")] = "1",
    cache_dir: Annotated[str, typer.Option(help="Where downloads are kept and reused.")] = ".arb/history",
    venue_env: Annotated[str | None, typer.Option(
        help="Where from: mainnet (needs internet) or sim. Default: VENUE_ENV.")] = None,
) -> None:
    """Download Bybit's kline or funding history into the cache (CSV, as `arb backtest` and the
    loaders read it). Paginated and paced; Ctrl+C keeps what arrived, and running the same
    command again carries on from there. A range already in the cache is not fetched again.

    Example: VENUE_ENV=mainnet arb history klines --symbol ETHUSDT --start 2025-06-01 --end 2025-07-01
    """
    from pathlib import Path

    import aiohttp

    from services.backtest.history import Downloader, HistoryError
    from services.ingestor.service import venue_hosts
    from shared.venues import venue as venue_of

    if kind not in ("klines", "funding"):
        raise _fail(f"kind: {kind!r} is not klines or funding")
    if not start or not end:
        raise _fail("--start and --end: both are needed, e.g. --start 2025-06-01 --end 2025-07-01")
    start_ms, end_ms = _day_ms(start, "--start"), _day_ms(end, "--end")
    if end_ms <= start_ms:
        raise _fail(f"--end {end} is not after --start {start}")
    settings = _settings({"venue_env": ("--venue-env", venue_env)})
    rest = venue_hosts(settings, venue_of("bybit")).rest

    async def main():
        with typer.progressbar(length=1000, label=f"{kind} {symbol}") as bar:
            done = [0]

            def progress(share: float) -> None:
                bar.update(int(share * 1000) - done[0])
                done[0] = int(share * 1000)

            async with aiohttp.ClientSession() as http:
                down = Downloader(http, rest, Path(cache_dir), progress=progress)
                if kind == "klines":
                    return await down.klines(symbol.upper(), interval, start_ms, end_ms), down.requests
                return await down.funding(symbol.upper(), start_ms, end_ms), down.requests

    try:
        path, requests = asyncio.run(main())
    except HistoryError as exc:
        raise _fail(f"history: {exc}") from None
    except KeyboardInterrupt:
        raise _fail("interrupted: what arrived is kept; the same command carries on from there") from None
    typer.echo(f"{path} ({requests} requests)")


backtest_app = typer.Typer(help="Backtests: the funding arbitrage over funding histories, and the spread strategy "
                           "over a recording of the market-data streams.", no_args_is_help=True)
app.add_typer(backtest_app, name="backtest")


@backtest_app.command("funding")
def backtest_funding(
    bybit: Annotated[str, typer.Option(help="Bybit funding history CSV (arb history funding, or market-data).")],
    binance: Annotated[str, typer.Option(help="Binance funding history CSV with markPrice.")],
    capital: Annotated[float, typer.Option(help="USD the returns, drawdown and APR are measured on.", min=1)
                       ] = 20_000.0,
    notional: Annotated[float, typer.Option(help="USD per leg of each trade.", min=1)] = 10_000.0,
    entry_bps: Annotated[float, typer.Option(help="Open when the venues' rates differ by this much per 8 h.")
                         ] = 2.0,
    exit_bps: Annotated[float, typer.Option(help="Close when the difference in the trade's favour is below.")
                        ] = 0.5,
    leverage: Annotated[float, typer.Option(help="Isolated leverage of each leg.", min=1, max=100)] = 5.0,
    fee_tier: Annotated[str, typer.Option(help="Bybit VIP tier: VIP0..VIP5, SupremeVIP.")] = "VIP0",
    binance_taker_bps: Annotated[float, typer.Option(help="Binance's taker fee.")] = 5.0,
    risk_limit: Annotated[str | None, typer.Option(
        help="A saved /v5/market/risk-limit answer (JSON): each symbol's maintenance-margin tiers. Default: one "
        "tier at 0.5 %.")] = None,
    bars: Annotated[list[str] | None, typer.Option(
        help="Kline CSVs named SYMBOL_*.csv (repeatable): liquidation is checked on every bar, and a "
        "settlement without a mark takes the last close.")] = None,
    out: Annotated[str, typer.Option(help="Folder for report.txt, trades.csv, equity.png, report.html.")
                   ] = ".arb/backtest",
) -> None:
    """Backtest the cross-venue funding arbitrage over Bybit's and Binance's funding histories.

    At each settlement the rates just settled forecast the next interval (nothing later is
    used). A trade shorts NOTIONAL on the venue paying more and longs it on the other when the
    difference reaches ENTRY_BPS per 8 h and nine intervals of it pay the fees; it closes when
    the difference falls below EXIT_BPS. Fills are takers at the settlement's mark (Bybit's
    VIP tier, Binance's taker fee); funding is paid at every settlement on each leg; a leg whose
    isolated liquidation price (--risk-limit tiers, else 0.5 % MMR) is crossed, at a
    settlement or on a --bars bar, loses its margin. Both legs share the
    history's one mark, so the venues' basis is not in the result: funding and fees are.

    Prints PnL split into price, fees and funding, Sharpe, Sortino, max drawdown, win rate,
    utilization and APR; writes report.txt, trades.csv, the equity curve (equity.png) and a
    self-contained report.html to --out. The same inputs give the same files, byte for byte.

    Example: arb backtest funding --bybit bybit_funding.csv --binance binance_funding.csv --entry-bps 3
    """
    from decimal import Decimal
    from pathlib import Path

    from services.backtest.charts import equity_png, report_html
    from services.backtest.data import DataError, load_funding, load_klines
    from services.backtest.fees import FeeError, FeeSchedule
    from services.backtest.funding_arb import FundingArbConfig, run
    from services.backtest.margin import DEFAULT_TIERS, MarginError, tiers_by_symbol
    from services.backtest.results import render, summary, trades_csv

    def dec(x: float) -> Decimal:
        return Decimal(repr(x))

    try:
        fees = {"bybit": FeeSchedule.tier(fee_tier),
                "binance": FeeSchedule(dec(binance_taker_bps) / 10_000, Decimal("0.0002"))}
        rates = {"bybit": load_funding(bybit), "binance": load_funding(binance)}
        klines = {Path(p).name.split("_")[0].upper(): load_klines(p) for p in bars or []}
        tiers = tiers_by_symbol(json.loads(Path(risk_limit).read_text())) if risk_limit else DEFAULT_TIERS
    except (DataError, FeeError, MarginError, OSError, ValueError) as exc:
        raise _fail(f"backtest: {exc}") from None
    config = FundingArbConfig(notional_usd=dec(notional), entry_8h=dec(entry_bps) / 10_000,
                              exit_8h=dec(exit_bps) / 10_000, leverage=dec(leverage))
    try:
        result = run(rates, fees, tiers, config, klines)
    except MarginError as exc:
        raise _fail(f"backtest: {exc}") from None
    report, trades = render(result, dec(capital)), trades_csv(result.trades)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.txt").write_text(report + "\n")
    (folder / "trades.csv").write_text(trades)
    (folder / "equity.png").write_bytes(equity_png(result.equity))
    (folder / "report.html").write_text(report_html("Funding arbitrage backtest: Bybit / Binance",
                                                    summary(result, dec(capital)), result.equity, trades))
    typer.echo(report)
    typer.echo(f"written to {folder}: report.txt, trades.csv, equity.png, report.html")


@backtest_app.command("spread")
def backtest_spread(
    recording: Annotated[str, typer.Argument(help="A recording made by `arb record`.")],
    out: Annotated[str, typer.Option(help="Folder for report.txt and facts.jsonl.")] = ".arb/backtest",
) -> None:
    """Replay a recording of the market-data streams through the live strategy core and the
    live executor core with paper fills (queue position, book walking), on the recording's
    own clock. Settings (STARTING_CAPITAL, LEG_TIMEOUT_MS, ESTIMATED_POSITION_SIZE, ...) are
    the live ones. At the end of the recording, open trades are closed as on a shutdown.

    Prints the PnL split into price, fees and funding, Sharpe, Sortino, max drawdown, win rate,
    utilization, APR and the leg-outs; writes report.txt, trades.csv, equity.png, report.html,
    and the facts as the executor would have written them to strategy:events (facts.jsonl).

    Example: arb record --out day.jsonl --duration 3600; arb backtest spread day.jsonl
    """
    from pathlib import Path

    import msgspec

    from services.backtest.charts import equity_png, report_html
    from services.backtest.replay import RecordingError, read_recording, run
    from services.backtest.results import render, summary, trades_csv
    from services.executor.service import exec_config
    from services.strategy.scanner import ScanConfig
    from services.strategy.signals import SignalGate

    settings = _settings({})
    try:
        grids, events, skipped = read_recording(recording)
        result = run(events, grids, exec_config(settings, "cross"),
                     ScanConfig(position_usd=settings.estimated_position_size, depth_bps=settings.strategy_depth_bps,
                                scorer=settings.strategy_scorer),
                     SignalGate(int(settings.signal_cooldown_s * 1000), int(settings.signal_pending_ttl_s * 1000)))
    except RecordingError as exc:
        raise _fail(f"backtest: {exc}") from None
    p = result.core.portfolio.summary()
    trades = result.backtest()
    capital = settings.starting_capital
    lines = [f"events          {result.events:,} replayed ({skipped[0]} unreadable lines skipped); "
             f"{result.signals} signals; {p['rejected_trades']} entries rejected",
             f"leg-outs        {p['leg_out_count']} (loss ${p['leg_out_total_loss']}, leg-out loss rate "
             f"{p['leg_out_loss_rate'] or '-'}); emergency closes {p['emergency_closes']}",
             render(trades, capital)]
    text = "\n".join(lines)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.txt").write_text(text + "\n")
    (folder / "trades.csv").write_text(trades_csv(trades.trades))
    (folder / "equity.png").write_bytes(equity_png(trades.equity))
    (folder / "report.html").write_text(report_html("Spread strategy backtest (replay)", {
        **summary(trades, capital), "leg_outs": p["leg_out_count"], "leg_out_loss_usd": p["leg_out_total_loss"]},
        trades.equity, trades_csv(trades.trades)))
    with (folder / "facts.jsonl").open("w") as file:
        for fact in result.facts:
            file.write(msgspec.json.encode(fact).decode() + "\n")
    typer.echo(text)
    typer.echo(f"written to {folder}: report.txt, trades.csv, equity.png, report.html, facts.jsonl")


@app.command()
def record(
    out: Annotated[str, typer.Option(help="The recording file (JSON lines).")] = "recording.jsonl",
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Record the md:* streams from now on into a file, with the order grids of EXECUTOR_VENUES
    first, for `arb backtest spread` and `arb replay`. Ctrl+C stops it; what was written stays.

    Example: arb record --out day.jsonl --duration 86400
    """
    from pathlib import Path

    from services.backtest.recording import record as run_record

    settings = _settings({}, running=True)

    async def main(stop: asyncio.Event) -> int:
        return await run_record(settings, Path(out), stop)

    try:
        n = asyncio.run(_run_until_signal(main, duration))
    except OSError as exc:
        raise _fail(f"record: {exc}") from None
    typer.echo(f"{n:,} entries recorded to {out}")


@app.command()
def replay(
    recording: Annotated[str, typer.Argument(help="A recording made by `arb record`.")],
    speed: Annotated[float, typer.Option(help="0: as fast as Redis takes them; else the recorded pace x this.",
                                         min=0)] = 0.0,
) -> None:
    """Feed a recording back into the md:* streams, as the ingestors would have written it, for
    the live strategy and executor to read.

    Example: arb replay day.jsonl --speed 10
    """
    from pathlib import Path

    from services.backtest.recording import replay_into_streams
    from services.backtest.replay import RecordingError

    settings = _settings({}, running=True)

    async def main(stop: asyncio.Event) -> int:
        return await replay_into_streams(settings, Path(recording), speed, stop)

    try:
        n = asyncio.run(_run_until_signal(main, None))
    except (RecordingError, OSError) as exc:
        raise _fail(f"replay: {exc}") from None
    typer.echo(f"{n:,} entries written to {', '.join(settings.md_streams().values())}")


@app.command()
def config() -> None:
    """Print the effective settings (secrets masked) and exit; 2 if any is invalid."""
    settings = _settings({})
    for name, value in settings.model_dump().items():
        shown = "**********" if hasattr(value, "get_secret_value") else value
        typer.echo(f"{name.upper()}={shown}")
    hosts = settings.bybit_endpoints()
    typer.echo(f"# bybit trading endpoints for {settings.venue_env}: rest {hosts.rest}, private {hosts.ws_private}")


if __name__ == "__main__":
    app()
