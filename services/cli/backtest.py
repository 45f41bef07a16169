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
    bybit: Annotated[str, typer.Option(help="Bybit funding history: CSV (arb history funding) or zushen parquet.")],
    binance: Annotated[str, typer.Option(help="Binance funding history: CSV with markPrice, or zushen parquet.")],
    bybit_instruments: Annotated[str | None, typer.Option(
        help="A saved /v5/market/instruments-info answer (arb history instruments): each symbol's lot size "
        "and minimums. Needed unless --qty-step is given.")] = None,
    binance_instruments: Annotated[str | None, typer.Option(
        help="A saved /fapi/v1/exchangeInfo answer (arb history instruments --venue binance). Without it "
        "Binance's lots are taken to be Bybit's, and the report says so.")] = None,
    qty_step: Annotated[float | None, typer.Option(
        help="Size every symbol on this one step instead of the venues' lots (not orderable in general).",
        min=0)] = None,
    capital: Annotated[float, typer.Option(help="USD in the account: returns, drawdown, APR and margin are "
                                                "measured on it.", min=1)] = 20_000.0,
    notional: Annotated[float, typer.Option(help="USD per leg of each trade.", min=1)] = 10_000.0,
    entry_bps: Annotated[float, typer.Option(
        help="Open when the venues' rates differ by this much per 8 h, and nine 8-hour periods of the difference "
        "pay the round trip's fees (at VIP0 and 5 bps that test alone needs 2.3 bps).", min=0)] = 2.0,
    exit_bps: Annotated[float, typer.Option(help="Close when the difference in the trade's favour is below this "
                                                 "(at most --entry-bps).")] = 0.5,
    leverage: Annotated[float, typer.Option(help="Isolated leverage of each leg.", min=1, max=125)] = 5.0,
    max_leverage: Annotated[float, typer.Option(
        help="The account's limit: all open legs' notional over equity.", min=0.1)] = 3.0,
    stop_equity: Annotated[float, typer.Option(
        help="Close everything and stop trading when equity falls to this share of the capital.", min=0,
        max=1)] = 0.5,
    fee_tier: Annotated[str, typer.Option(help="Bybit VIP tier: VIP0..VIP5, SupremeVIP.")] = "VIP0",
    binance_taker_bps: Annotated[float, typer.Option(help="Binance's taker fee.", min=0)] = 5.0,
    risk_limit: Annotated[str | None, typer.Option(
        help="A saved /v5/market/risk-limit answer (JSON): each symbol's maintenance-margin tiers. Default: one "
        "tier at 0.5 %.")] = None,
    bars: Annotated[list[str] | None, typer.Option(
        help="1-minute kline CSVs named SYMBOL_*.csv, one --bars per file: liquidation is checked on every "
        "bar, and a settlement without a mark takes the last close. Bars outside the funding history are "
        "refused.")] = None,
    out: Annotated[str, typer.Option(help="Folder for report.txt, trades.csv, gaps.csv, equity.png, report.html.")
                   ] = ".arb/backtest",
) -> None:
    """Backtest the cross-venue funding arbitrage over Bybit's and Binance's funding histories.

    Each venue settles at its own times and interval (1 h, 4 h, 8 h); rates are compared per
    hour, and a decision at time t uses nothing stamped after t. A trade shorts NOTIONAL on the
    venue paying more and longs it on the other when the difference reaches ENTRY_BPS per 8 h
    and nine 8-hour periods of it pay the fees; it closes when the difference falls below
    EXIT_BPS. Sizes are floored to every venue's lot. Fills are takers at the mark (Bybit's VIP
    tier, Binance's taker fee); funding is paid at each venue's settlements on its leg.

    Each leg is isolated at LEVERAGE; a leg whose liquidation price (--risk-limit tiers, else
    0.5 % MMR) is crossed, at a settlement or on a --bars bar, loses its margin and the other
    leg is closed at the same price (a bar's open when the price gapped through it). Entries
    need free margin for both legs and their fees and keep the book within MAX_LEVERAGE x
    equity; at STOP_EQUITY everything is closed. A venue's missing settlement
    closes what is open at the last real mark; nothing opens at the last settlement both venues
    share. Both legs are on one mark, so the venues' basis is not in the result.

    Prints the setup, then PnL split into price, fees and funding, Sharpe, Sortino, max drawdown,
    win rate, utilization and APR; writes report.txt, trades.csv, gaps.csv, equity.png (with
    the `charts` extra) and a self-contained report.html to --out. The same inputs give the same
    files, byte for byte.

    Example: `arb backtest funding --bybit bybit_funding.csv --binance binance_funding.csv
    --bybit-instruments .arb/history/bybit/instruments_linear.json`
    """
    from decimal import Decimal
    from pathlib import Path

    from services.backtest import charts
    from services.backtest.data import DataError, load_funding, load_klines
    from services.backtest.fees import FeeError, FeeSchedule
    from services.backtest.funding_arb import FundingArbConfig, run
    from services.backtest.instruments import InstrumentError, load_instruments
    from services.backtest.margin import DEFAULT_TIERS, MarginError, tiers_by_symbol
    from services.backtest.results import gaps_csv, render, summary, trades_csv

    def dec(x: float) -> Decimal:
        return Decimal(repr(x))

    if exit_bps > entry_bps:
        raise _fail(f"backtest: --exit-bps {exit_bps:g} is above --entry-bps {entry_bps:g}: a trade would close "
                    "as soon as it opened")
    if qty_step is not None and qty_step <= 0:
        raise _fail("backtest: --qty-step must be above 0")
    if bybit_instruments is None and qty_step is None:
        raise _fail("backtest: give --bybit-instruments (a saved /v5/market/instruments-info answer: "
                    "`arb history instruments` saves one) so each symbol is sized on its own lot, or --qty-step "
                    "to size every symbol on one step")
    try:
        fees = {"bybit": FeeSchedule.tier(fee_tier),
                "binance": FeeSchedule(dec(binance_taker_bps) / 10_000, Decimal("0.0002"))}
        rates = {"bybit": load_funding(bybit, venue="bybit"), "binance": load_funding(binance, venue="binance")}
        klines = _klines(load_klines, bars or [])
        tiers = tiers_by_symbol(json.loads(Path(risk_limit).read_text())) if risk_limit else DEFAULT_TIERS
        lots = None
        if bybit_instruments is not None:
            bybit_lots = _instruments(load_instruments, bybit_instruments, "bybit")
            lots = {"bybit": bybit_lots, "binance": _instruments(load_instruments, binance_instruments, "binance")
                    if binance_instruments else bybit_lots}
    except (DataError, FeeError, MarginError, InstrumentError, OSError, ValueError) as exc:
        raise _fail(f"backtest: {exc}") from None
    for venue, path in (("bybit", bybit), ("binance", binance)):
        if not rates[venue]:
            raise _fail(f"backtest: --{venue} {path}: no settlements in it")
    if not klines and not any(r.mark is not None for rows in rates.values() for r in rows):
        raise _fail("backtest: neither funding history has a mark price (Binance's has markPrice) and no --bars "
                    "were given: there is no price to trade at")
    spans = _funding_spans(rates)
    warnings = _bar_coverage(klines, spans, bars or [])
    config = FundingArbConfig(notional_usd=dec(notional), entry_8h=dec(entry_bps) / 10_000,
                              exit_8h=dec(exit_bps) / 10_000, leverage=dec(leverage),
                              qty_step=dec(qty_step) if qty_step else Decimal("0.001"), capital=dec(capital),
                              max_account_leverage=dec(max_leverage), stop_equity=dec(stop_equity))
    try:
        result = run(rates, fees, tiers, config, klines, lots=lots)
    except (MarginError, ValueError) as exc:
        raise _fail(f"backtest: {exc}") from None
    setup = _funding_setup(config, fees, fee_tier, {"bybit": bybit, "binance": binance}, rates,
                           {"bybit": bybit_instruments, "binance": binance_instruments}, qty_step, risk_limit,
                           klines, warnings)
    money = dec(capital)
    report, trades = render(result, money, setup), trades_csv(result.trades)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.txt").write_text(report + "\n")
    (folder / "trades.csv").write_text(trades)
    (folder / "gaps.csv").write_text(gaps_csv(result.gaps))
    title = "Funding arbitrage backtest: Bybit / Binance"
    png = _write_chart(folder, title, result, money)
    (folder / "report.html").write_text(charts.report_page(title, summary(result, money), setup, result, money,
                                                           trades, png))
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    typer.echo(report)
    typer.echo(f"written to {folder}: report.txt, trades.csv, gaps.csv, {'equity.png, ' if png else ''}report.html")


def _write_chart(folder, title: str, result, capital) -> bytes | None:
    """equity.png when the charts extra is installed; else a word on how to get it."""
    from services.backtest import charts

    if not charts.available():
        typer.echo("charts: not drawn (pip install -e '.[charts]' for equity.png)", err=True)
        (folder / "equity.png").unlink(missing_ok=True)  # an earlier run's would pass for this one's
        return None
    png = charts.report_png(result, capital, title)
    (folder / "equity.png").write_bytes(png)
    return png


def _klines(load, paths: list[str]) -> dict:
    """Symbol (the file name's first part) -> its 1-minute bars; one file a symbol."""
    from pathlib import Path

    klines: dict = {}
    for path in paths:
        symbol, rows = Path(path).name.split("_")[0].upper(), load(path)
        if symbol in klines:
            raise ValueError(f"--bars {path}: a second file of {symbol}; give one file a symbol")
        if len(rows) > 1 and rows[1].ts_ms - rows[0].ts_ms != 60_000:
            raise ValueError(f"--bars {path}: its bars are {(rows[1].ts_ms - rows[0].ts_ms) // 1000} s apart; "
                             "liquidations are checked on 1-minute bars")
        klines[symbol] = rows
    return klines


def _instruments(load, path: str, venue: str):
    """A venue's saved instruments answer, refused when it is the other venue's."""
    lots = load(path)
    other = {lot.venue for lot in lots.values()} - {venue}
    if other:
        raise ValueError(f"--{venue}-instruments {path}: it is {', '.join(sorted(other))}'s answer, not {venue}'s")
    return lots


def _utc(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _funding_spans(rates) -> dict[str, tuple[int, int]]:
    """Symbol -> its first and last settlement at either venue."""
    spans: dict[str, tuple[int, int]] = {}
    for rows in rates.values():
        for r in rows:
            first, last = spans.get(r.symbol, (r.ts_ms, r.ts_ms))
            spans[r.symbol] = (min(first, r.ts_ms), max(last, r.ts_ms))
    return spans


def _bar_coverage(klines, spans, paths: list[str]) -> list[str]:
    """Bars that would not be used are refused with both spans; bars that cover part of their
    symbol's history are a warning."""
    warnings = []
    for (symbol, rows), path in zip(klines.items(), paths, strict=True):
        if not rows:
            raise _fail(f"backtest: --bars {path}: no bars in the file")
        bars_from, bars_to = rows[0].ts_ms, rows[-1].ts_ms + 60_000
        if symbol not in spans:
            raise _fail(f"backtest: --bars {path}: no funding history of {symbol} (the files have "
                        f"{', '.join(sorted(spans)) or 'none'})")
        first, last = spans[symbol]
        covered = min(last, bars_to) - max(first, bars_from)
        if covered <= 0:
            raise _fail(f"backtest: --bars {path}: its bars ({_utc(bars_from)} to {_utc(bars_to)} UTC) are all "
                        f"outside {symbol}'s funding history ({_utc(first)} to {_utc(last)} UTC): none would be used")
        if covered < last - first:
            warnings.append(f"--bars {path} ({_utc(bars_from)} to {_utc(bars_to)} UTC) covers "
                            f"{covered / (last - first):.0%} of {symbol}'s funding history ({_utc(first)} to "
                            f"{_utc(last)} UTC); liquidations outside it are seen at settlements only")
    return warnings


def _funding_setup(config, fees, fee_tier, sources, rates, instruments, qty_step, risk_limit, klines,
                   warnings) -> list[tuple[str, str]]:
    """What the report's figures are measured against, as (label, value)."""
    from pathlib import Path

    pct = lambda x: f"{float(x) * 100:g} %"  # noqa: E731
    bps = lambda x: f"{float(x) * 10_000:g} bps"  # noqa: E731
    lines = [
        ("capital", f"${config.capital:,.2f} (stop at {pct(config.stop_equity)} of it; book at most "
                    f"{float(config.max_account_leverage):g}x equity)"),
        ("each trade", f"${config.notional_usd:,.2f} a leg, isolated at {float(config.leverage):g}x; entry "
                       f"{bps(config.entry_8h)}, exit {bps(config.exit_8h)} per 8 h, paying the fees over "
                       f"{config.hold_intervals} x 8 h"),
        ("fees", f"Bybit {fee_tier} taker {pct(fees['bybit'].taker)}, Binance taker {pct(fees['binance'].taker)}"),
        ("margin", f"risk-limit tiers from {Path(risk_limit).name}" if risk_limit
         else "one tier at 0.5 % maintenance margin (no --risk-limit)"),
    ]
    if qty_step is not None:
        lines.append(("lots", f"one step of {config.qty_step} for every symbol (--qty-step)"))
    else:
        binance = Path(instruments["binance"]).name if instruments["binance"] else "taken to be Bybit's"
        lines.append(("lots", f"Bybit's from {Path(instruments['bybit']).name}; Binance's {binance}"))
    for venue, rows in rates.items():
        if rows:
            first, last = min(r.ts_ms for r in rows), max(r.ts_ms for r in rows)
            lines.append((f"{venue} funding", f"{Path(sources[venue]).name}: {len(rows):,} settlements of "
                                              f"{len({r.symbol for r in rows})} symbols, {_utc(first)} to "
                                              f"{_utc(last)} UTC"))
    for symbol, rows in klines.items():
        lines.append((f"bars {symbol}", f"{len(rows):,} from {_utc(rows[0].ts_ms)} to "
                                        f"{_utc(rows[-1].ts_ms + 60_000)} UTC"))
    lines += [("warning", w) for w in warnings]
    return lines


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

    from services.backtest import charts
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
    setup = [("capital", f"${capital:,.2f} (STARTING_CAPITAL)"),
             ("settings", f"the live ones: ESTIMATED_POSITION_SIZE {settings.estimated_position_size}, "
                          f"LEG_TIMEOUT_MS {settings.leg_timeout_ms}, EXECUTOR_VENUES "
                          f"{','.join(settings.executor_venues)}"),
             ("recording", f"{Path(recording).name}: {result.events:,} events")]
    text = render(trades, capital, [
        *setup,
        ("events", f"{result.events:,} replayed ({skipped[0]} unreadable lines skipped); {result.signals} signals; "
                   f"{p['rejected_trades']} entries rejected"),
        ("leg-outs", f"{p['leg_out_count']} (loss ${p['leg_out_total_loss']}, leg-out loss rate "
                     f"{p['leg_out_loss_rate'] or '-'}); emergency closes {p['emergency_closes']}")])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.txt").write_text(text + "\n")
    (folder / "trades.csv").write_text(trades_csv(trades.trades))
    title = "Spread strategy backtest (replay)"
    png = _write_chart(folder, title, trades, capital)
    (folder / "report.html").write_text(charts.report_page(title, {
        **summary(trades, capital), "leg_outs": str(p["leg_out_count"]),
        "leg_out_loss_usd": str(p["leg_out_total_loss"])}, setup, trades, capital, trades_csv(trades.trades), png))
    with (folder / "facts.jsonl").open("w") as file:
        for fact in result.facts:
            file.write(msgspec.json.encode(fact).decode() + "\n")
    typer.echo(text)
    typer.echo(f"written to {folder}: report.txt, trades.csv, {'equity.png, ' if png else ''}report.html, "
               "facts.jsonl")


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
    typer.echo(f"{n:,} entries written to {', '.join(settings.all_md_streams())}")
