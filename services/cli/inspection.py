"""Looking at a system, running or finished, and at its settings: `arb status`, `arb trades`,
`arb report`, `arb top`, `arb config`, `arb validate`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.cli.common import _REDIS_OPTION, _fail, _read_redis, _settings
from shared.settings import Settings


def _view(settings: Settings, closed: bool = False):
    from services.views import read_view

    return _read_redis(settings, lambda client, prefix: read_view(client, prefix, closed))


def status(redis_url: Annotated[str | None, _REDIS_OPTION] = None) -> None:
    """Portfolio, trading on or halted, workers alive, active trades, the top opportunities and
    each venue's latency, as Redis holds them now."""
    from services.views import render_status

    typer.echo(render_status(_view(_settings({"redis_url": ("--redis-url", redis_url)}, running=True))))


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


def report(redis_url: Annotated[str | None, _REDIS_OPTION] = None) -> None:
    """The metrics report from the workers' snapshots in Redis: opportunities,
    trades, success rate, p50/p95/p99 of every stage, and the edge cases. Works for a running
    system and for a finished one whose Redis is still there. `arb up` prints it every 60 s."""
    from services.report import read_samples, render

    samples = _read_redis(_settings({"redis_url": ("--redis-url", redis_url)}, running=True), read_samples)
    if not samples.services:
        raise _fail("no metrics snapshots in Redis (metrics:*): no worker has run against it")
    typer.echo(render(samples))


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


def config() -> None:
    """Print the effective settings (secrets masked) and exit; 2 if any is invalid."""
    settings = _settings({})
    for name, value in settings.model_dump().items():
        shown = "**********" if hasattr(value, "get_secret_value") else value
        typer.echo(f"{name.upper()}={shown}")
    from shared.venues import TRADING

    for name in TRADING:
        hosts = settings.trading_endpoints(name)
        typer.echo(f"# {name} trading endpoints for {settings.venue_env}: rest {hosts.rest}, private "
                   f"{hosts.ws_private}")


def validate(
    venue_env: Annotated[str | None, typer.Option(
        help="Endpoint set to check: sim, demo, testnet or mainnet. Default: VENUE_ENV.")] = None,
    venues: Annotated[str, typer.Option(
        help="The venues to check, comma-separated, among bybit, okx, bitget and binance (e.g. "
        "bybit,okx,bitget,binance).")
    ] = "bybit",
) -> None:
    """Check the configured venues before trading on them. Bybit: connectivity and clock skew,
    authentication, balance handling, rate-limit headers, error handling (a bad parameter must
    get 10001, a wrong signature 10004), and key security (no Wallet permission, bound to an
    IP). OKX, Bitget and Binance, through their trading clients: connectivity and clock skew,
    authentication (OKX's and Bitget's passphrase too), balance, the position mode (hedge mode:
    long/short, hedge_mode, dualSidePosition), error handling (a wrong signature must be refused
    as a bad signature, an order that does not exist found as none), key security (may trade,
    may not withdraw, bound to an IP, where the venue says). Prints a pass/fail table per venue;
    exit code 1 if any check fails. No order is placed.

    Example: `VENUE_ENV=demo arb validate --venues bybit,okx,bitget,binance`
    """
    from services.validate import table, validate_venue
    from services.validate import validate as run_validate
    from shared.venues import TRADING

    settings = _settings({"venue_env": ("--venue-env", venue_env)})
    names = [v.strip().lower() for v in venues.split(",") if v.strip()]
    if unknown := [v for v in names if v not in TRADING]:
        raise _fail(f"--venues: no live trading at {unknown[0]!r} to validate; venues: {', '.join(TRADING)}")
    failed = False
    for i, name in enumerate(names):
        checks = asyncio.run(run_validate(settings) if name == "bybit" else validate_venue(settings, name))
        rest = settings.trading_endpoints(name).rest
        typer.echo(("\n" if i else "") + f"{name} on {settings.venue_env} ({rest})")
        typer.echo(table(checks))
        failed = failed or not all(c.ok for c in checks)
    if failed:
        raise typer.Exit(1)
