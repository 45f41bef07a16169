"""Downloading Bybit history from the simulator's REST into the cache: paginated, the same
file whether or not it was interrupted, resumed without fetching again what it had, read back
by the loaders, and served from the cache the second time; and the venues' instruments lists
(Bybit's paged by cursor, Binance's exchangeInfo), saved as answered and read back by
`load_instruments`."""

from __future__ import annotations

import json
from decimal import Decimal

import aiohttp
import pytest

from services.backtest.data import load_funding, load_klines
from services.backtest.history import Downloader, HistoryError, _binance_problem, _bybit_problem
from services.backtest.instruments import load_instruments, order_qty
from services.sim.server import SimServer
from tests.conftest import serve_app

T0 = 1_790_000_000_000 - 1_790_000_000_000 % 3_600_000  # on the hour
MINUTES = 1_000


def _server() -> SimServer:
    """A simulator whose market has run for 1,000 minutes: 1,000 one-minute bars, and funding
    settled every 8 hours."""
    now = [T0 / 1000]
    server = SimServer(["BTCUSDT"], seed=9, clock=lambda: now[0])
    for minute in range(1, MINUTES + 1):
        now[0] = (T0 + minute * 60_000) / 1000
        server.model.step(T0 + minute * 60_000)
    return server


class Interrupted(Exception):
    pass


async def test_an_interrupted_download_resumes_and_gives_the_same_file(tmp_path):
    server = _server()
    start, end = T0 + 60_000, T0 + MINUTES * 60_000
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        whole = Downloader(http, base, tmp_path / "whole", requests_per_s=1000, kline_page=100)
        reference = await whole.klines("BTCUSDT", "1", start, end)

        seen = []

        def stop_after_three_pages(share: float) -> None:
            seen.append(share)
            if len(seen) == 3:
                raise Interrupted  # as a Ctrl+C would, once the third page is written

        cut = Downloader(http, base, tmp_path / "cut", requests_per_s=1000, kline_page=100,
                         progress=stop_after_three_pages)
        with pytest.raises(Interrupted):
            await cut.klines("BTCUSDT", "1", start, end)
        assert not (tmp_path / "cut" / "bybit" / "klines" / reference.name).exists()
        again = Downloader(http, base, tmp_path / "cut", requests_per_s=1000, kline_page=100)
        resumed = await again.klines("BTCUSDT", "1", start, end)
        cached = Downloader(http, base, tmp_path / "cut", requests_per_s=1000, kline_page=100)
        assert await cached.klines("BTCUSDT", "1", start, end) == resumed and cached.requests == 0

    assert resumed.read_text() == reference.read_text()
    # 1,000 bars in pages of 100: the resumed run asked only for the 7 pages the interrupted one
    # had not written
    assert (whole.requests, cut.requests, again.requests) == (10, 3, 7)
    assert seen == pytest.approx([0.1, 0.2, 0.3], abs=0.002)  # progress: the share of the range done
    bars = load_klines(resumed)
    assert [b.ts_ms for b in bars] == list(range(start, end + 1, 60_000))


async def test_funding_history_pages_back_through_the_range(tmp_path):
    server = _server()
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        down = Downloader(http, base, tmp_path, requests_per_s=1000)
        path = await down.funding("BTCUSDT", T0, T0 + MINUTES * 60_000)
        rates = load_funding(path)
        settled = [(t, r) for t, r in server.model.states["BTCUSDT"].fundings]
        assert [r.ts_ms for r in rates] == [t for t, _ in settled] and len(rates) >= 2
        with pytest.raises(HistoryError, match="interval 'x'"):
            await down.klines("BTCUSDT", "x", T0, T0 + 1)
        bad = Downloader(http, base, tmp_path / "bad", requests_per_s=1000, retries=0)
        with pytest.raises(HistoryError, match="Bybit 10001"):
            await bad.klines("NOSUCHUSDT", "1", T0, T0 + 60_000)


async def test_bybit_instruments_page_by_cursor_into_one_body_that_loads(tmp_path):
    server = SimServer(["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "XRPUSDT"], seed=9)
    shares = []
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        paged = Downloader(http, base, tmp_path / "paged", requests_per_s=1000, instruments_page=2,
                           progress=shares.append)
        path = await paged.bybit_instruments()
        whole = Downloader(http, base, tmp_path / "whole", requests_per_s=1000)
        one = await whole.bybit_instruments()
        again = await whole.bybit_instruments()  # today's list: fetched again, the file replaced

    assert (paged.requests, whole.requests) == (3, 2) and shares == [1.0]  # 5 symbols in pages of 2
    assert path == tmp_path / "paged" / "bybit" / "instruments_linear.json" and again == one
    body = json.loads(path.read_text())
    assert body["retCode"] == 0 and body["result"]["nextPageCursor"] == ""
    assert [row["symbol"] for row in body["result"]["list"]] == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT",
                                                                 "XRPUSDT"]
    assert body["result"]["list"] == json.loads(one.read_text())["result"]["list"]
    lots = load_instruments(path)
    assert {s: lot.qty_step for s, lot in lots.items()} == {
        "BTCUSDT": Decimal("0.001"), "ETHUSDT": Decimal("0.01"), "SOLUSDT": Decimal("0.1"), "DOGEUSDT": Decimal(1),
        "XRPUSDT": Decimal("0.1")}
    assert lots["BTCUSDT"].min_notional == 5 and lots["BTCUSDT"].tick == Decimal("0.1")
    assert not list((tmp_path / "paged" / "bybit").glob("*.tmp"))


async def test_binance_exchange_info_is_saved_as_answered_and_loads(tmp_path):
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=9)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        down = Downloader(http, base, tmp_path, requests_per_s=1000)
        path = await down.binance_exchange_info()
        async with http.get(f"{base}/fapi/v1/exchangeInfo") as response:
            answered = await response.json()
    assert path == tmp_path / "binance" / "exchangeInfo.json" and down.requests == 1
    saved = json.loads(path.read_text())
    assert saved["symbols"] == answered["symbols"]
    lots = load_instruments(path)
    assert {s: (lot.qty_step, lot.min_notional) for s, lot in lots.items()} == {
        "BTCUSDT": (Decimal("0.001"), Decimal(100)), "ETHUSDT": (Decimal("0.01"), Decimal(20))}


async def test_an_instruments_answer_the_backtest_cannot_read_is_not_saved(tmp_path):
    async with serve_app(SimServer([], seed=9).app()) as base, aiohttp.ClientSession() as http:
        down = Downloader(http, base, tmp_path, requests_per_s=1000)
        with pytest.raises(HistoryError, match=r"the answer for .*instruments_linear\.json: lists no perpetual"):
            await down.bybit_instruments()
        with pytest.raises(HistoryError, match=r"exchangeInfo\.json: lists no perpetual"):
            await down.binance_exchange_info()
        # Binance's errors are an HTTP status and {code, msg}: a 400 is not worth a retry
        patient = Downloader(http, base, tmp_path, requests_per_s=1000, retries=3)
        with pytest.raises(HistoryError, match=r"Binance HTTP 400 -1121: Invalid symbol\.$"):
            await patient._request("/fapi/v1/premiumIndex", {"symbol": "NOPE"}, _binance_problem)
        assert patient.requests == 1
        bybit = Downloader(http, base, tmp_path, requests_per_s=1000, retries=3)
        with pytest.raises(HistoryError, match=r"/fapi/v1/time {}: HTTP 200: not a Bybit answer$"):
            await bybit._request("/fapi/v1/time", {}, _bybit_problem)  # JSON, but no retCode
        assert bybit.requests == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_arb_history_instruments_downloads_either_venues_list_from_the_simulator(tmp_path, monkeypatch):
    """The command as a user runs it, against the simulator (VENUE_ENV=sim, SIM_HOST/SIM_PORT)."""
    import asyncio
    import threading

    from typer.testing import CliRunner

    from services.cli import app

    ready, stop, port = threading.Event(), threading.Event(), []

    async def serve():
        async with serve_app(SimServer(["BTCUSDT", "SOLUSDT"], seed=9).app()) as base:
            port.append(base.rsplit(":", 1)[1])
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    try:
        assert ready.wait(10)
        monkeypatch.chdir(tmp_path)
        env = {"VENUE_ENV": "sim", "SIM_HOST": "127.0.0.1", "SIM_PORT": port[0]}
        runs = {venue: CliRunner().invoke(app, ["history", "instruments", "--venue", venue, "--cache-dir", "cache"],
                                          env=env) for venue in ("bybit", "binance")}
        refused = CliRunner().invoke(app, ["history", "klines", "--venue", "binance", "--start", "2025-06-01",
                                           "--end", "2025-06-02"], env=env)
        unknown = CliRunner().invoke(app, ["history", "instruments", "--venue", "okx"], env=env)
    finally:
        stop.set()
        thread.join(10)
    for result in runs.values():
        assert result.exit_code == 0, result.output
    assert runs["bybit"].output.strip().endswith("cache/bybit/instruments_linear.json (1 requests)")
    assert runs["binance"].output.strip().endswith("cache/binance/exchangeInfo.json (1 requests)")
    bybit = load_instruments(tmp_path / "cache" / "bybit" / "instruments_linear.json")
    binance = load_instruments(tmp_path / "cache" / "binance" / "exchangeInfo.json")
    assert order_qty(Decimal(10_000), Decimal("187.65"), [bybit["SOLUSDT"], binance["SOLUSDT"]]) == Decimal("53.2")
    assert refused.exit_code == 2 and "--venue binance: klines history is downloaded from bybit only" in refused.output
    assert unknown.exit_code == 2 and "--venue okx: bybit or binance" in unknown.output
