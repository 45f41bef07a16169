"""Downloading Bybit history from the simulator's REST into the cache: paginated, the same
file whether or not it was interrupted, resumed without fetching again what it had, read back
by the loaders, and served from the cache the second time."""

from __future__ import annotations

import aiohttp
import pytest

from services.backtest.data import load_funding, load_klines
from services.backtest.history import Downloader, HistoryError
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
