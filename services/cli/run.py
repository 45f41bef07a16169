"""Running the whole system: `arb up`, `arb stop`, `arb resume`, `arb reset`, `arb check`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated

import typer
from redis.exceptions import RedisError

from services.cli.common import _fail, _redis_settings, _settings, _state_dir
from shared import redis_io
from shared.venues import NAMES


def up(
    mode: Annotated[str, typer.Option(
        help="synthetic: made-up opportunities on Bybit alone, both legs there, orders at the simulator (or "
        "demo, testnet); cross: every venue's real spreads, paper execution; live: real orders at Bybit on "
        "VENUE_ENV (needs keys and MAX_DAILY_LOSS, POSITION_SIZE_LIMIT; mainnet needs --confirm-mainnet).")
    ] = "synthetic",
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
    symbols: Annotated[str | None, typer.Option(
        help="Comma-separated symbols, or all (cross mode): every USDT perpetual listed on two or more of --venues, "
        "from their instruments lists, read again every UNIVERSE_REFRESH_S (on the simulator: a made-up universe of "
        "SIM_UNIVERSE). Default: SYMBOLS_TO_TRADE.")] = None,
    venues: Annotated[str | None, typer.Option(
        help="Cross mode: the venues to read and trade. Default: EXECUTOR_VENUES (bybit,binance,okx).")] = None,
    execution: Annotated[str | None, typer.Option(
        help="Cross mode: paper (the default: fills modelled from market data) or live (orders at the venues on "
        "VENUE_ENV; live trading is at bybit, okx, bitget and binance, e.g. --venues bybit,okx).")] = None,
    state_dir: Annotated[str, typer.Option(envvar="ARB_STATE_DIR",
                                           help="Where the logs, the pid file and (when arb up starts its own "
                                           "Redis) Redis's data are kept.")] = ".arb",
    metrics_port: Annotated[int, typer.Option(help="First metrics port; each worker takes the next free one.")
                            ] = 9101,
    confirm_mainnet: Annotated[bool, typer.Option("--confirm-mainnet", help="Allow live mode on mainnet.")] = False,
    sim: Annotated[bool, typer.Option(
        help="With VENUE_ENV=sim, start the simulator; --no-sim uses the one already at SIM_HOST:SIM_PORT.")] = True,
    shards: Annotated[int | None, typer.Option(
        help="Market-data shards, each symbol's events in its shard's streams (md:{K}:books ...) and one strategy "
        "worker per shard (arb strategy --shard K/N), their top 20s merged. Default: MD_SHARDS (1).",
        min=1, max=256)] = None,
    redis_cluster: Annotated[bool, typer.Option(
        "--redis-cluster", help="Run on a Redis Cluster: the one REDIS_URL names (with REDIS_CLUSTER=1 for "
        "every worker), else a local one of 3 masters and 3 replicas on 127.0.0.1:7000-7005, its data in "
        "--state-dir. Inspect it with `redis-cli -c -p 7000`.")] = False,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start from a clean state: delete this system's keys (facts, trades, portfolio, market "
        "data) from the Redis it uses, and nothing else. Refused while trades are open at a real venue.")] = False,
) -> None:
    """Run the whole system on this machine: Redis, the simulator, the ingestors, the latency
    monitor, the executor and the strategy, each its own process.

    Redis is the one at REDIS_URL (default 127.0.0.1:6379), so `redis-cli` reaches its data; when
    none answers there, arb up starts a redis-server there with its data (AOF) in --state-dir,
    and stops it last. With VENUE_ENV=sim (the default) the simulator is the venue. Each
    worker's log is in STATE_DIR/logs. A status line shows tickers, signals, trades and PnL.

    Ctrl+C, SIGTERM or `arb stop` stops the strategy, closes every open trade (both legs), stops
    the rest, prints a summary, and exits 0 if nothing is left open (else 1, naming what is).
    A second Ctrl+C says what it is waiting for; a third stops at once. After a crash, the next
    `arb up` in the same folder reconciles the facts with the venue and carries on.

    Settings come from the environment and ./.env; ENVIRONMENT=development|staging|production
    presets VENUE_ENV (sim, demo, mainnet) and POSITION_SIZE_LIMIT (none, $50, $100).

    Examples:

    - `arb up --duration 60`: synthetic trading on the simulator for a minute
    - `arb up --fresh`: the same, forgetting every earlier run's trades first
    - `arb up --mode cross --venues bybit,binance,okx`: every venue's real spreads, paper execution
    - `arb up --mode cross --shards 2`: the same with two strategy workers, a shard of the symbols each
    - `arb up --mode cross --symbols all --shards 2`: every perpetual listed on two or more of the venues
    - `arb up --mode cross --shards 2 --redis-cluster`: the same market data on a local Redis Cluster
    - `arb up --mode cross --execution live --venues bybit,okx`: both legs' orders at Bybit and OKX (the
      simulator's on VENUE_ENV=sim; phase 2 of the deployment guide on VENUE_ENV=demo); any of
      bybit, okx, bitget and binance, e.g. `--venues bybit,okx,bitget,binance` trades every pair
    """
    from pathlib import Path

    from services.sim.market import unmodelled
    from services.up import Stack, StackError, plan, port_free, refusals, running_pid

    settings = _settings({"symbols_to_trade": ("--symbols", symbols), "md_shards": ("--shards", shards),
                          "redis_cluster": ("--redis-cluster", redis_cluster or None)})
    names = [v.strip().lower() for v in (venues or ",".join(settings.executor_venues)).split(",") if v.strip()]
    if unknown := [v for v in names if v not in NAMES]:
        raise _fail(f"--venues: no venue {unknown[0]!r}; venues: {', '.join(NAMES)}")
    live_cross = mode == "cross" and execution == "live"
    if errors := refusals(settings, mode, confirm_mainnet, execution, names if mode == "cross" else None):
        raise _fail("\n".join(f"arb up: {e}" for e in errors))
    if settings.universe and mode != "cross":
        raise _fail(f"--symbols all: {mode} mode trades named symbols on Bybit alone; the universe (every perpetual "
                    "on two or more venues) is cross mode's (--mode cross)")
    if settings.venue_env == "sim" and not settings.universe and (why := unmodelled(settings.symbols_to_trade)):
        raise _fail(f"arb up: {why}")
    if live_cross:  # the executor trades at exactly the venues named
        settings = settings.model_copy(update={"executor_venues": names})
    if mode == "cross" and (missing := [v for v in settings.executor_venues if v not in names]):
        raise _fail(f"--venues: the executor trades EXECUTOR_VENUES, and {', '.join(missing)} would have no market "
                    f"data; add it or set EXECUTOR_VENUES={','.join(names)}")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    stack_plan = plan(settings, mode, names, cpus, metrics_port, free=port_free, confirm_mainnet=confirm_mainnet,
                      execution=execution)
    state = Path(state_dir).resolve()  # redis-server changes into its data folder
    if running := running_pid(state):
        raise _fail(f"arb up is already running from {state} (pid {running}); `arb stop` stops it")
    if (state / "up.pid").exists():  # left by an arb up that could not remove it: it was killed
        typer.echo(f"the last arb up from {state} did not stop cleanly: its facts are replayed and checked against "
                   "the venue")
    stack = Stack(settings, stack_plan, state, "redis_url" in settings.model_fields_set, duration, start_sim=sim,
                  fresh=fresh)
    if symbols:
        stack.env["SYMBOLS_TO_TRADE"] = ",".join(settings.symbols_to_trade)
    if shards:
        stack.env["MD_SHARDS"] = str(shards)
    if settings.universe:  # the universe is what two or more of the venues read list
        stack.env["UNIVERSE_VENUES"] = ",".join(names)
    if live_cross:
        stack.env["EXECUTOR_VENUES"] = ",".join(names)
    try:
        code = asyncio.run(stack.run())
    except StackError as exc:
        raise _fail(f"arb up: {exc}") from None
    raise typer.Exit(code)


def _operator() -> str:
    """Who gave an operator command, as recorded with it."""
    return f"{os.environ.get('USER', 'operator')}@{os.uname().nodename}"


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

    Example: `arb stop --emergency --reason "exchange incident"`
    """
    from pathlib import Path

    from services.up import running_pid

    if emergency:
        _command("halt", "arb stop --emergency", detail=f"arb stop --emergency by {_operator()}"
                 + (f": {reason}" if reason else ""))
        return
    pid = running_pid(Path(state_dir))
    if pid <= 0:
        raise _fail(f"no `arb up` running from {state_dir} (nothing holds {Path(state_dir) / 'up.pid'})")
    os.kill(pid, signal.SIGTERM)
    typer.echo(f"asked arb up (pid {pid}) to stop: it closes the open trades first")


def resume() -> None:
    """Lift a trading halt (a safety stop or `arb stop --emergency`): the executor takes
    signals again, and the safety windows start afresh."""
    _command("resume", "arb resume")


def reset(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
    state_dir: Annotated[str, typer.Option(envvar="ARB_STATE_DIR", help="The state folder of the arb up to reset.")
                         ] = ".arb",
) -> None:
    """Forget every earlier run: delete this system's keys (facts, trades, portfolio, market data)
    from its Redis, and nothing else, without starting anything (`arb up --fresh` does the same
    and then starts). When no Redis answers at REDIS_URL, the data arb up's own redis-server left
    in the state folder is deleted instead. Refused while an arb up runs from the folder, and
    while the facts hold trades open at a real venue. Asks first, unless --yes.

    Example: `arb reset --yes`
    """
    import shutil
    from pathlib import Path

    from services.up import running_pid
    from services.up.redis_place import where_to
    from services.up.totals import read_open_trades
    from shared.keyspace import delete_own, own_keys

    state = Path(state_dir)
    if pid := running_pid(state):
        raise _fail(f"arb reset: arb up is running from {state} (pid {pid}); stop it first (`arb stop`)")
    settings = _settings({})
    where = where_to(settings.redis_url)

    async def keys_and_open_trades() -> tuple[list[str], list] | None:
        client = redis_io.client(settings, socket_timeout=5, socket_connect_timeout=2,
                                         decode_responses=True)
        try:
            await client.ping()
        except (RedisError, OSError):
            return None  # no Redis there
        try:
            return (await own_keys(client, settings))[0], await read_open_trades(client, settings.redis_key_prefix)
        finally:
            await client.aclose()

    async def delete() -> int:
        client = redis_io.client(settings, socket_timeout=5, decode_responses=True)
        try:
            return await delete_own(client, settings)
        finally:
            await client.aclose()

    try:
        found = asyncio.run(keys_and_open_trades())
    except (RedisError, OSError) as exc:
        raise _fail(f"arb reset: cannot read the Redis at {where}: {exc}") from None
    if found is None:
        data = state / "redis"
        if not data.is_dir():
            typer.echo(f"nothing to reset: no Redis answers at {where}, and {data} holds no data")
            return
        _confirm(yes, f"no Redis answers at {where}: delete arb up's own Redis data in {data.resolve()}?")
        shutil.rmtree(data)
        typer.echo(f"deleted {data.resolve()}: the next arb up starts clean")
        return
    keys, open_trades = found
    if open_trades and settings.venue_env != "sim":
        raise _fail(f"arb reset: the facts hold {len(open_trades)} open trades on VENUE_ENV={settings.venue_env}, with "
                    "real positions at the venue: run `arb up` and stop it with Ctrl+C (it closes them) first")
    if not keys:
        typer.echo(f"nothing to reset: {where} holds no key of this system")
        return
    _confirm(yes, f"delete this system's {len(keys):,} keys from the Redis at {where} (no other key)?")
    typer.echo(f"deleted this system's {asyncio.run(delete()):,} keys from {where}; other keys are untouched")


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise _fail(f"arb reset: {question} Nobody at a terminal to ask: add --yes")
    if not typer.confirm(question):
        raise typer.Exit(1)


def _command(name: str, what: str, **fields: str) -> None:
    """An operator command onto strategy:control of the running stack's Redis, or of REDIS_URL
    when it is set; refused when neither says which Redis (it would land in an unrelated one)."""
    from shared.control import send

    settings, where, known = _redis_settings({})
    if not known:
        raise _fail(f"{what}: no `arb up` is running from {_state_dir()} and REDIS_URL is not set, so there is no "
                    f"system to send it to; set REDIS_URL to its Redis (e.g. REDIS_URL=redis://127.0.0.1:6379/0 "
                    f"{what}), or ARB_STATE_DIR to the folder of the arb up that runs")
    try:
        entry = asyncio.run(send(settings, name, by=_operator(), **fields))
    except (RedisError, OSError) as exc:
        raise _fail(f"{what}: cannot reach Redis at {where}: {exc}") from None
    typer.echo(f"{name} sent to {where} ({settings.redis_key_prefix + settings.stream_control} {entry}); "
               "`arb status` shows when the executor has acted on it")


def check(
    service: Annotated[str, typer.Argument(
        help="executor, strategy, latency, `ingest-<venue>` (e.g. ingest-bybit), or sim.")],
) -> None:
    """Exit 0 if the service is alive (its health key in Redis, refreshed every second, expires
    5 s after it stops; for sim, its HTTP API answers), else 1. Docker compose's health check."""
    settings = _settings({}, running=True)
    if service == "sim":
        from services.up import http_ok

        ok = asyncio.run(http_ok(f"http://{settings.sim_address}/v5/market/time"))
        typer.echo(f"sim: {'ok' if ok else 'not answering at ' + settings.sim_address}")
        raise typer.Exit(0 if ok else 1)
    from shared.control import health

    try:
        record = asyncio.run(health(settings, service))
    except (RedisError, OSError) as exc:
        raise _fail(f"{service}: cannot reach Redis: {exc}") from None
    if record is None:
        typer.echo(f"{service}: no health key (down, hung, or not started)")
        raise typer.Exit(1)
    typer.echo(f"{service}: ok (pid {record['pid']})")
