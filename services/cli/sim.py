"""`arb sim`: the local exchange (Bybit V5, and the market data of Binance, OKX and Bitget)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from services.cli.common import _fail, _logging, _run_until_signal, _settings


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
    universe: Annotated[int | None, typer.Option(
        help="Serve a made-up universe: BTC, ETH, SOL and DOGE and N perpetuals SIM0USDT ... (the first 4 with full "
        "books, the rest on a cheap model stepped every 100 ms), each venue leaving about one in five out. Default "
        "with --symbols all (SYMBOLS_TO_TRADE=all): SIM_UNIVERSE (300).", min=1, max=5000)] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.", min=0)] = None,
) -> None:
    """Run a local exchange: Bybit V5, OKX V5, Bitget V2 and Binance USD-M (market data, trading,
    private streams) and the market data of others, for offline runs and tests.

    Endpoints (PORT is --port):

    - Bybit: ws://127.0.0.1:PORT/v5/public/linear and /v5/private; REST /v5/market/...,
      /v5/order/..., /v5/execution/list, /v5/position/..., /v5/account/... (signed with
      SIM_API_KEY / SIM_API_SECRET; orders fill against the simulated book, with fees and funding).
    - Binance: /public/ws|stream (bookTicker, depth, trade), /market/ws|stream (markPrice,
      aggTrade, trade), /fapi/v1/... (ticker/24hr, bookTicker, klines ...); trading REST
      /fapi/v1/order, /fapi/v3/positionRisk ..., the listenKey and
      the user-data stream /private/ws?listenKey= (SIM_API_KEY / SIM_API_SECRET, its own account).
    - OKX: /ws/v5/public (books with checksums, books5, tickers ...), /api/v5/public/...,
      /api/v5/market/ticker|tickers|books; trading REST /api/v5/trade/..., /api/v5/account/...
      and the private stream /ws/v5/private (signed with SIM_API_KEY / SIM_API_SECRET and the
      passphrase SIM_API_PASSPHRASE; an OKX account apart from the Bybit one, sizes in contracts).
    - Bitget: /v2/ws/public, /api/v2/... (mix market contracts, ticker, tickers, merge-depth);
      trading REST /api/v2/mix/order/..., /api/v2/mix/account/...
      and the private stream /v2/ws/private (with SIM_API_PASSPHRASE; its own account).

    docs/local-exchange.md lists each venue's calls a client makes, served or not. The venues'
    prices are correlated; cross-venue spreads open and close on their own, and
    POST /admin/opportunity {"symbol": "BTCUSDT", "venue": "binance", "spread_bps": 30,
    "funding_delta": 0.0005, "seconds": 60} forces one. With VENUE_ENV=sim (the default),
    `arb ingest` connects to it.

    Example, the simulator and an ingestor reading it:

    - in one shell: `arb sim --symbols BTCUSDT,ETHUSDT`
    - in another: `arb ingest --symbols BTCUSDT,ETHUSDT`

    A universe, listed and delisted while it runs:

    - `arb sim --symbols all` (and `arb ingest --venue okx --symbols all` beside it)
    - POST /admin/listing {"symbol": "SIM7USDT", "venue": "okx", "listed": false} delists one
    """
    from services.sim.faults import FaultError, Faults
    from services.sim.market import Universe
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
    made_up = universe or (settings.sim_universe if settings.universe else None)
    if unknown := set(paths) - set(Universe.of(made_up).symbols if made_up else settings.symbols_to_trade):
        raise _fail(f"--klines: {', '.join(sorted(unknown))} not among --symbols {','.join(settings.symbols_to_trade)}")
    _logging(settings.log_level)

    async def main(stop: asyncio.Event) -> None:
        keys = {settings.sim_api_key: settings.sim_api_secret.get_secret_value()}
        passphrases = {settings.sim_api_key: settings.sim_api_passphrase.get_secret_value()}
        await serve(settings.sim_host, settings.sim_port, settings.symbols_to_trade, seed, stop, keys, injected,
                    paths, speed, settings.sim_step_ms, passphrases, Universe.of(made_up) if made_up else None)

    try:
        asyncio.run(_run_until_signal(main, duration))
    except OSError as exc:
        raise _fail(f"--port {settings.sim_port}: cannot listen on {settings.sim_host}: {exc.strerror}") from None
