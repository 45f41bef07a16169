"""Backtests and their data: `arb backtest funding`, `arb backtest spread`, `arb history`,
`arb record`, `arb replay`."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from services.cli.common import _fail, _run_until_signal, _settings


def _day_ms(text: str, option: str) -> int:
    from datetime import UTC, datetime

    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option}: {text!r} is not a date like 2025-06-01 or 2025-06-01T08:00") from None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp() * 1000)


def history(
    kind: Annotated[str, typer.Argument(help="klines, funding or instruments.")],
    symbol: Annotated[str, typer.Option(help="Canonical symbol, e.g. BTCUSDT.")] = "BTCUSDT",
    start: Annotated[str, typer.Option(help="First day or instant (UTC), e.g. 2025-06-01.")] = "",
    end: Annotated[str, typer.Option(help="Last instant (UTC), e.g. 2025-07-01.")] = "",
    interval: Annotated[str, typer.Option(help="Kline interval: 1, 3, 5, 15, 30, 60, 120, 240, 360, 720, D.")] = "1",
    cache_dir: Annotated[str, typer.Option(help="Where downloads are kept and reused.")] = ".arb/history",
    venue_env: Annotated[str | None, typer.Option(
        help="Where from: mainnet (needs internet) or sim. Default: VENUE_ENV.")] = None,
    venue: Annotated[str, typer.Option(help="instruments only: bybit or binance.")] = "bybit",
) -> None:
    """Download Bybit's kline or funding history into the cache (CSV, as `arb backtest` and the
    loaders read it). Paginated and paced; Ctrl+C keeps what arrived, and running the same
    command again carries on from there. A range already in the cache is not fetched again.

    `instruments` saves a venue's instruments list as it answers it (JSON, each symbol's lot
    size, minimum order and tick): Bybit's linear instruments-info, every page merged into one
    body (bybit/instruments_linear.json), or Binance USD-M's exchangeInfo
    (binance/exchangeInfo.json). It is today's list: each run fetches it again.

    Example: `VENUE_ENV=mainnet arb history klines --symbol ETHUSDT --start 2025-06-01 --end 2025-07-01`,
    `VENUE_ENV=mainnet arb history instruments --venue binance`
    """
    from pathlib import Path

    import aiohttp

    from services.backtest.history import Downloader, HistoryError
    from services.ingestor.service import venue_hosts
    from shared.venues import venue as venue_of

    if kind not in ("klines", "funding", "instruments"):
        raise _fail(f"kind: {kind!r} is not klines, funding or instruments")
    if venue not in ("bybit", "binance"):
        raise _fail(f"--venue {venue}: bybit or binance")
    if venue != "bybit" and kind != "instruments":
        raise _fail(f"--venue {venue}: {kind} history is downloaded from bybit only")
    if kind != "instruments":  # instruments have no range: the list is today's
        if not start or not end:
            raise _fail("--start and --end: both are needed, e.g. --start 2025-06-01 --end 2025-07-01")
        start_ms, end_ms = _day_ms(start, "--start"), _day_ms(end, "--end")
        if end_ms <= start_ms:
            raise _fail(f"--end {end} is not after --start {start}")
    settings = _settings({"venue_env": ("--venue-env", venue_env)})
    rest = venue_hosts(settings, venue_of(venue)).rest

    async def main():
        with typer.progressbar(length=1000, label=f"{kind} {venue if kind == 'instruments' else symbol}") as bar:
            done = [0]

            def progress(share: float) -> None:
                bar.update(int(share * 1000) - done[0])
                done[0] = int(share * 1000)

            async with aiohttp.ClientSession() as http:
                down = Downloader(http, rest, Path(cache_dir), progress=progress)
                if kind == "instruments":
                    fetch = down.bybit_instruments if venue == "bybit" else down.binance_exchange_info
                    return await fetch(), down.requests
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

    Example: `arb backtest funding --bybit bybit_funding.csv --binance binance_funding.csv --entry-bps 3`
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

    Example, an hour of the market recorded, then backtested:

    - `arb record --out day.jsonl --duration 3600`
    - `arb backtest spread day.jsonl`
    """
    from pathlib import Path

    import msgspec

    from services.backtest.charts import equity_png, report_html
    from services.backtest.replay import RecordingError, read_recording, run
    from services.backtest.results import render, summary, trades_csv
    from services.executor.service import exec_config
    from services.strategy.service import scan_config
    from services.strategy.signals import SignalGate

    settings = _settings({})
    try:
        grids, events, skipped = read_recording(recording)
        result = run(events, grids, exec_config(settings, "cross"),
                     scan_config(settings),
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


def record(
    out: Annotated[str, typer.Option(help="The recording file (JSON lines).")] = "recording.jsonl",
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Record the md:* streams from now on into a file, with the order grids of EXECUTOR_VENUES
    first, for `arb backtest spread` and `arb replay`. Ctrl+C stops it; what was written stays.

    Example: `arb record --out day.jsonl --duration 86400`
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


def replay(
    recording: Annotated[str, typer.Argument(help="A recording made by `arb record`.")],
    speed: Annotated[float, typer.Option(help="0: as fast as Redis takes them; else the recorded pace x this.",
                                         min=0)] = 0.0,
) -> None:
    """Feed a recording back into the md:* streams, as the ingestors would have written it, for
    the live strategy and executor to read.

    Example: `arb replay day.jsonl --speed 10`
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
