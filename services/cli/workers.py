"""The long-running workers, one process each: `arb ingest`, `arb strategy`, `arb executor`,
`arb latency`, and `arb rebuild` (the executor's read models recomputed from its facts)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.cli.common import _fail, _logging, _run_until_signal, _serve_metrics, _settings, pin_to_cpu
from shared.instruments import UnknownSymbol
from shared.settings import ConfigError, Settings
from shared.venues import NAMES, UnknownVenue
from shared.venues.protocol import NoSuchEnvironment


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
    capped streams of the symbol's shard (MD_SHARDS, 1 by default: md:{0}:tickers,
    md:{0}:books, md:{0}:trades and md:{0}:liquidations; XADD MAXLEN ~ MD_STREAM_MAXLEN: when
    nobody reads, the oldest entries are dropped and counted), tagged with the venue. Ticker
    fields are kept per symbol in the venue's hash, e.g.
    okx:swap:tickers:{SYMBOL}. Ctrl+C or SIGTERM flushes what was received and exits 0.

    Example: `VENUE_ENV=mainnet arb ingest --venue okx --symbols BTCUSDT,ETHUSDT --metrics-port 9101`
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


def strategy(
    mode: Annotated[str, typer.Option(
        help="cross: every symbol and venue pair; synthetic: one venue's mid -/+ SYNTHETIC_SPREAD_BPS/2 "
        "for SYMBOLS_TO_TRADE.")] = "cross",
    scorer: Annotated[str | None, typer.Option(
        help="Confidence scorer: confluence (hard limits on depth, latency and funding, then a weighted score of "
        "funding, book imbalance, open interest, VWAP, volatility and liquidations) or dashboard (spread and "
        "funding, boosted by the books' lean, open interest and time to funding). Default: STRATEGY_SCORER.")
    ] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis to read and write. Default: REDIS_URL.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Pin the process to this CPU (Linux).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
    consumer: Annotated[str | None, typer.Option(
        help="This worker's consumer name in the group `strategy`: keep it across restarts (a restart "
        "re-reads what it had not acked); a second worker needs its own, and takes over what a dead one "
        "left unacked after STRATEGY_CLAIM_IDLE_MS. Default: strategy-1, with --shard strategy-K.")] = None,
    shard: Annotated[str | None, typer.Option(
        help="K/N: decide for shard K (from 0) of N=MD_SHARDS only, holding its lease: a second worker on "
        "the same shard (its own --consumer) stands by and takes over within STRATEGY_CLAIM_IDLE_MS when "
        "the first dies. Default: every shard, no lease.")] = None,
) -> None:
    """Find opportunities in the market-data streams and write signals.

    Reads every shard's md:{K}:tickers, md:{K}:books, md:{K}:trades and md:{K}:liquidations
    (or, with --shard K/N, shard K's) with the consumer group `strategy`; decides on every
    top-of-book or funding change; writes each signal to the
    stream strategy:signals (redis-cli XRANGE strategy:signals - +). Once a second it ranks
    every pair and keeps the top 20 for 60 s in strategy:opportunities:{ms} (redis-cli GET
    strategy:opportunities:latest, then LRANGE that key 0 -1); a shard's worker ranks its own
    symbols into strategy:shard:{K}:opportunities and the top 20 of all shards into those keys.
    Cross mode needs `arb latency`
    running: a venue without a fresh latency verdict is stale, and a stale venue gives
    confidence 0.

    Examples: `arb strategy --mode synthetic --metrics-port 9103`;
    `MD_SHARDS=2 arb strategy --shard 1/2` (and 0/2 in another terminal)
    """
    from services.strategy.service import StrategyService
    from services.strategy.synthetic import never_qualifies
    from shared.shards import Shard

    _check_mode(mode)
    try:
        owned = Shard.parse(shard) if shard is not None else None
    except ValueError as exc:
        raise _fail(f"--shard: {exc}") from None
    settings = _settings({
        "strategy_scorer": ("--scorer", scorer),
        "redis_url": ("--redis-url", redis_url),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    if mode == "synthetic":
        failed = never_qualifies(settings.synthetic_spread_bps, settings.synthetic_funding_delta,
                                 float(settings.estimated_position_size))
        if failed:
            typer.echo(f"warning: with SYNTHETIC_SPREAD_BPS={settings.synthetic_spread_bps:g}, "
                       f"SYNTHETIC_FUNDING_DELTA={settings.synthetic_funding_delta:g} and ESTIMATED_POSITION_SIZE="
                       f"{settings.estimated_position_size:g} no synthetic opportunity can ever qualify: "
                       + "; ".join(failed), err=True)
    try:
        service = StrategyService(settings, mode, consumer or (f"strategy-{owned.index}" if owned else "strategy-1"),
                                  owned)
    except ValueError as exc:
        raise _fail(f"--shard: {exc}") from None
    _run_worker(service, settings, cpu, duration, service.consumer if owned else "strategy")


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
        asyncio.run(_run_until_signal(service.run, duration, (settings, name, service.register_metrics,
                                                                      getattr(service, "ready", None))))
    except ConfigError as exc:
        raise _fail(f"config error: {exc}") from None


def executor(
    mode: Annotated[str, typer.Option(
        help="cross: trade the cross-exchange signals; synthetic: both legs on SYNTHETIC_VENUE.")] = "cross",
    execution: Annotated[str | None, typer.Option(
        help="paper: fills modelled from market data (queue position, book walking); live: orders at the venues "
        "(cross: EXECUTOR_VENUES, among bybit, okx, bitget and binance; synthetic: SYNTHETIC_VENUE) on "
        "VENUE_ENV (sim, demo, testnet, mainnet). Default: EXECUTION.")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis to read and write. Default: REDIS_URL.")] = None,
    cpu: Annotated[int | None, typer.Option(help="Pin the process to this CPU (Linux).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on METRICS_HOST (127.0.0.1) at this port.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
    confirm_mainnet: Annotated[bool, typer.Option(
        "--confirm-mainnet", envvar="ARB_CONFIRM_MAINNET", help="Allow live execution on VENUE_ENV=mainnet (real "
        "money; MAX_DAILY_LOSS and POSITION_SIZE_LIMIT must be set too). Under docker compose: "
        "ARB_CONFIRM_MAINNET=1 in .env.")] = False,
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

    Example: `arb executor --mode synthetic --metrics-port 9104`
    """
    from services.executor.service import ExecutorService

    _check_mode(mode)
    settings = _settings({
        "execution": ("--execution", execution),
        "redis_url": ("--redis-url", redis_url),
        "metrics_port": ("--metrics-port", metrics_port),
    })
    _logging(settings.log_level)
    if settings.execution == "live":
        from services.executor.service import live_venues
        from services.up.plan import missing_keys

        try:
            names = live_venues(settings, mode)
        except ConfigError as exc:
            raise _fail(f"config error: {exc}") from None
        if missing := missing_keys(settings, names):
            raise _fail("\n".join(f"config error: --execution live places {why}" for why in missing))
    if settings.execution == "live" and settings.venue_env == "mainnet":  # as `arb up` asks for that mode
        from services.up import refusals

        errors = refusals(settings, "live", confirm_mainnet) if mode == "synthetic" else \
            refusals(settings, "cross", confirm_mainnet, "live", list(settings.executor_venues))
        if errors:
            raise _fail("\n".join(f"arb executor: {e}" for e in errors))
    _run_worker(ExecutorService(settings, mode), settings, cpu, duration, "executor")


def rebuild(
    check: Annotated[bool, typer.Option("--check", help="Only compare; change nothing.")] = False,
    mode: Annotated[str, typer.Option(help="The executor's mode (cross or synthetic).")] = "cross",
    redis_url: Annotated[str | None, typer.Option(help="Redis holding strategy:events. Default: REDIS_URL.")] = None,
) -> None:
    """Recompute every read model from strategy:events and put right what differs.

    Lists each key of strategy:trades:*, strategy:portfolio:state, strategy:leg_out_events
    and strategy:metrics:daily whose content the facts do not give, then rewrites those
    (unless --check). Exit code 1 with --check when anything differs.

    Example: `arb rebuild --check`
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

    Example: `VENUE_ENV=mainnet arb latency --venues bybit,okx --metrics-port 9102`
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
