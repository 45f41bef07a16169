"""A backtest's figures and its report, against hand-computed values: the PnL split, the win
rate, daily returns, Sharpe, Sortino, max drawdown, utilization and APR; the text report and
the trades CSV byte for byte; the equity PNG as a PNG reader decodes it, pixel by pixel; and
the HTML report's tables."""

from __future__ import annotations

import math
import statistics
import struct
import time
import zlib
from decimal import Decimal as D

import pytest

from services.backtest.charts import equity_png, report_html
from services.backtest.funding_arb import BacktestResult, ClosedTrade
from services.backtest.results import daily_returns, max_drawdown, render, sharpe, sortino, summary, trades_csv

H, DAY = 3_600_000, 86_400_000
D0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
CAPITAL = D(10_000)


def trade(symbol, long_venue, short_venue, opened, closed, qty, fees, funding, price, closest, liquidated=False,
          reason="funding_converged") -> ClosedTrade:
    return ClosedTrade(symbol, long_venue, short_venue, opened, closed, D(qty), D(10_000), D(fees), D(funding),
                       D(price), D(price) - D(fees) + D(funding), D(closest), liquidated, reason)


def five_trades() -> BacktestResult:
    """Five trades (PnL 19, -6, 0, 0.5, -1,004.25), five days of equity, four exposure samples."""
    return BacktestResult(
        trades=[trade("BTCUSDT", "binance", "bybit", D0, D0 + DAY + 8 * H, "0.1", "11", "30", "0", "0.18"),
                trade("ETHUSDT", "bybit", "binance", D0 + 2 * DAY, D0 + 3 * DAY, "2.5", "11", "5", "0", "0.175"),
                trade("SOLUSDT", "binance", "bybit", D0 + 3 * DAY, D0 + 3 * DAY + 8 * H, "50", "11", "11", "0", "0.19"),
                trade("BTCUSDT", "binance", "bybit", D0 + 3 * DAY, D0 + 4 * DAY, "0.1", "11", "11.5", "0", "0.2"),
                trade("ETHUSDT", "bybit", "binance", D0 + 3 * DAY, D0 + 4 * DAY + H, "2.5", "8.25", "4", "-1000",
                      "0.012", liquidated=True, reason="liquidated")],
        # the last value of each UTC day: day 0 -11, day 1 19, day 2 none (19 carries), day 3 13, day 4 -990.75
        equity=[(D0 + 8 * H, D(-11)), (D0 + DAY + 8 * H, D(19)), (D0 + 3 * DAY, D(5)), (D0 + 3 * DAY + 8 * H, D(13)),
                (D0 + 4 * DAY + H, D("-990.75"))],
        exposure=[(D0, D(4_000)), (D0 + DAY, D(0)), (D0 + 2 * DAY, D(2_000)), (D0 + 3 * DAY, D(2_000))],
        settlements=7)


# the daily returns of five_trades() over $10,000: day 0 -11/10,000; day 1 (19 + 11)/10,000;
# day 2 no change; day 3 (13 - 19)/10,000; day 4 (-990.75 - 13)/10,000
RETURNS = [-0.0011, 0.003, 0.0, -0.0006, -0.100375]


def test_daily_returns_take_each_utc_days_last_equity_and_carry_a_day_without_one():
    assert daily_returns(five_trades().equity, CAPITAL) == pytest.approx(RETURNS, abs=1e-12)
    assert daily_returns([], CAPITAL) == []
    # one value: the day's change from nothing
    assert daily_returns([(D0 + 5 * H, D(25))], CAPITAL) == [0.0025]


def test_sharpe_and_sortino_by_hand():
    # 1 %, -1 %, 3 %: mean 1 %; deviations 0, -2, 2 %: sample variance 8e-4 / 2, sd 2 %: 0.5 a day
    assert sharpe([0.01, -0.01, 0.03]) == pytest.approx(0.5 * math.sqrt(365), rel=1e-9)
    # 1 %, 3 %: mean 2 %, sd sqrt(2e-4 / 1) = 1.414 %: sqrt(2) a day
    assert sharpe([0.01, 0.03]) == pytest.approx(math.sqrt(2) * math.sqrt(365), rel=1e-9)
    assert sharpe([0.01]) is None and sharpe([0.01, 0.01]) is None  # one day; no spread
    # downside deviation over all days: sqrt(1e-4 / 3) = 1 % / sqrt(3); mean 1 %: sqrt(3) a day
    assert sortino([0.01, -0.01, 0.03]) == pytest.approx(math.sqrt(3) * math.sqrt(365), rel=1e-9)
    # 2 %, -1 %: mean 0.5 %, downside sqrt(1e-4 / 2) = 1 % / sqrt(2): sqrt(2) / 2 a day
    assert sortino([0.02, -0.01]) == pytest.approx(math.sqrt(2) / 2 * math.sqrt(365), rel=1e-9)
    assert sortino([-0.01]) is None and sortino([0.01, 0.02]) is None  # one day; no losing day


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    # capital 100 with equity 10, -20, 5: levels 110, 80, 105; the fall from 110 to 80 is 30 / 110
    assert max_drawdown([(1, D(10)), (2, D(-20)), (3, D(5))], D(100)) == D(30) / D(110)
    assert max_drawdown([(1, D(10)), (2, D(20))], D(100)) == 0  # never below a peak
    assert max_drawdown([], D(100)) == 0


def test_the_summary_of_five_trades_by_hand():
    s = summary(five_trades(), CAPITAL)
    assert s == {
        "trades": "5",
        # price -1,000; fees 4 x 11 + 8.25 = 52.25; funding 30 + 5 + 11 + 11.5 + 4 = 61.5
        "pnl_usd": "-990.75", "price_pnl_usd": "-1000.00", "fees_usd": "52.25", "funding_usd": "61.50",
        "win_rate": "0.4000",  # 19 and 0.5 win; 0 is not a win
        "liquidations": "1",
        "closest_to_liquidation": "0.0120",
        # computed here the textbook way: sample standard deviation; downside over all days
        "sharpe": f"{statistics.mean(RETURNS) / statistics.stdev(RETURNS) * math.sqrt(365):.2f}",
        "sortino": f"{statistics.mean(RETURNS) / math.sqrt(sum(min(0, r) ** 2 for r in RETURNS) / 5) * math.sqrt(365):.2f}",
        "max_drawdown": "0.1008",  # peak 10,019 (day 1), low 9,009.25: 1,009.75 / 10,019
        "utilization": "0.2000",  # 4,000, 0, 2,000, 2,000 of 10,000: mean 0.2
        "apr": "-7.2325",  # -990.75 / 10,000 over 5 days: -0.099075 x 365 / 5
        "days": "5",
        "settlements": "7",
    }
    assert (s["sharpe"], s["sortino"]) == ("-8.40", "-8.43")


def test_the_summary_of_nothing_says_so():
    assert summary(BacktestResult(), CAPITAL) == {
        "trades": "0", "pnl_usd": "0.00", "price_pnl_usd": "0.00", "fees_usd": "0.00", "funding_usd": "0.00",
        "win_rate": "-", "liquidations": "0", "closest_to_liquidation": "1.0000", "sharpe": "-", "sortino": "-",
        "max_drawdown": "0.0000", "utilization": "0", "apr": "-", "days": "0", "settlements": "0"}


def test_the_text_report():
    assert render(five_trades(), CAPITAL) == (
        "trades          5 (win rate 0.4000); liquidations 1, closest approach 0.0120 of the mark\n"
        "PnL             $-990.75 = price $-1000.00 - fees $52.25 + funding $61.50\n"
        "risk            Sharpe -8.40, Sortino -8.43, max drawdown 0.1008\n"
        "capital         $10000: utilization 0.2000, APR -7.2325 over 5 days (7 settlements)")


@pytest.fixture
def new_york():
    """The machine's local time zone is New York's for the test: what must not matter."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()


def test_the_trades_csv_in_utc_whatever_the_machines_zone(new_york):
    rows = trades_csv(five_trades().trades[:1] + five_trades().trades[4:])
    assert rows == (
        "symbol,long_venue,short_venue,opened_utc,closed_utc,qty,notional_usd,fees_usd,funding_usd,price_pnl_usd,"
        "pnl_usd,closest_to_liquidation,liquidated,reason\n"
        "BTCUSDT,binance,bybit,2026-01-01 00:00,2026-01-02 08:00,0.1,10000.00,11.00000000,30.00000000,0.00000000,"
        "19.00000000,0.1800,0,funding_converged\n"
        "ETHUSDT,bybit,binance,2026-01-04 00:00,2026-01-05 01:00,2.5,10000.00,8.25000000,4.00000000,-1000.00000000,"
        "-1004.25000000,0.0120,1,liquidated\n")


def decode_png(png: bytes) -> list[list[tuple[int, int, int]]]:
    """The pixels of an 8-bit RGB PNG without filters, as a PNG reader gets them; every
    chunk's CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        chunks.append((kind, data))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"] and chunks[2][1] == b""
    width, height, depth, colour, *methods = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, methods) == (8, 2, [0, 0, 0])  # 8-bit RGB, no interlace
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + 3 * width)
    rows = [raw[y * (1 + 3 * width):(y + 1) * (1 + 3 * width)] for y in range(height)]
    assert all(row[0] == 0 for row in rows)  # filter type None
    return [[tuple(row[1 + 3 * x:4 + 3 * x]) for x in range(width)] for row in rows]


WHITE, GREY, BLUE = (255, 255, 255), (190, 190, 190), (31, 90, 180)


def test_the_equity_png_draws_the_curve_and_the_zero_line_where_they_belong():
    # 60 x 50 with a margin of 20: x from 20 (first time) to 40 (last), y from 30 (lowest value,
    # or 0) up to 20 (highest, or 0). Equity 0 then 10: the curve runs from (20, 30) to (40, 20);
    # the zero line is y 30 from x 20 to 39; halfway, (30, 25) is on the curve.
    pixels = decode_png(equity_png([(0, D(0)), (100, D(10))], 60, 50))
    assert len(pixels) == 50 and len(pixels[0]) == 60
    assert pixels[30][20] == pixels[20][40] == pixels[25][30] == BLUE
    assert pixels[30][30] == pixels[30][39] == GREY and pixels[30][19] == pixels[30][40] == WHITE
    assert pixels[0][0] == pixels[49][59] == pixels[20][20] == WHITE
    assert sum(row.count(BLUE) for row in pixels) == 21  # one pixel per step of x
    # equity -4 then -8: 0 is the top (y 20), -8 the bottom (y 30): from (20, 25) to (40, 30)
    pixels = decode_png(equity_png([(0, D(-4)), (100, D(-8))], 60, 50))
    assert pixels[25][20] == pixels[30][40] == BLUE and pixels[20][30] == GREY
    # one point at 0: no span of time or value to scale by (no division by zero); a line needs
    # two points, so only the zero line shows, at the bottom (the value range is taken as 0 to 1)
    pixels = decode_png(equity_png([(7, D(0))], 60, 50))
    assert pixels[30][20] == pixels[30][39] == GREY and {p for row in pixels for p in row} == {WHITE, GREY}
    # no equity: a blank canvas
    assert {p for row in decode_png(equity_png([], 60, 50)) for p in row} == {WHITE}
    # the default size, as the report uses it
    pixels = decode_png(equity_png([(0, D(0)), (100, D(10))]))
    assert (len(pixels), len(pixels[0])) == (320, 900) and pixels[300][20] == pixels[20][880] == BLUE


def test_the_curve_is_scaled_from_its_own_first_time_and_from_zero_and_drawn_without_gaps():
    def blue(equity, width=60, height=50):
        return {(x, y) for y, row in enumerate(decode_png(equity_png(equity, width, height)))
                for x, p in enumerate(row) if p == BLUE}

    # from t 100 to 200, values 5 to 10 (0 kept in range): (20, 30 - 5) to (40, 20)
    assert {(20, 25), (40, 20)} <= blue([(100, D(5)), (200, D(10))])
    # two points 1 ms apart span the width
    assert {(20, 30), (40, 20)} <= blue([(0, D(0)), (1, D(10))])
    # steeper than wide: one pixel on every row it crosses, 20 to 100 (81), not one per column (21)
    assert len(blue([(0, D(0)), (100, D(10))], 60, 120)) == 81
    # two points on the same pixel: that pixel
    assert blue([(5, D(0)), (5, D(0))]) == {(20, 30)}


def test_a_canvas_smaller_than_its_margins_clips_the_curve_to_it():
    # 20 x 20 with margins of 20: times 0, 50, 100 at x 20, 10, 0; values 0, 10, 0 at y 0, 20, 0.
    # What falls on the canvas is drawn, to its very edges (x 0, y 0); what falls off (x 20, y 20) is not
    pixels = decode_png(equity_png([(0, D(0)), (50, D(10)), (100, D(0))], 20, 20))
    assert (len(pixels), len(pixels[0])) == (20, 20)
    assert pixels[0][0] == pixels[1][0] == pixels[19][10] == pixels[2][19] == BLUE
    assert pixels[0][19] == pixels[19][0] == WHITE


def test_the_html_report_escapes_what_it_shows_and_holds_the_curve_and_both_tables():
    page = report_html("Funding <arb> & co", {"trades": "2", "pnl<x": "a&b"}, [(0, D(0)), (100, D(10))],
                       "symbol,reason\nBTCUSDT,a<b\nETHUSDT,end\n")
    assert "<title>Funding &lt;arb&gt; &amp; co</title>" in page and "<h1>Funding &lt;arb&gt; &amp; co</h1>" in page
    # 900 x 320 with a margin of 20: from (20, 300) to (880, 20)
    assert '<polyline fill="none" stroke="#1f5ab4" stroke-width="1.5" points="20,300 880,20"/>' in page
    assert ("<h2>Figures</h2><table><tr><th>trades</th><td>2</td></tr><tr><th>pnl&lt;x</th><td>a&amp;b</td></tr>"
            "</table>") in page
    assert ("<h2>Trades</h2><table><tr><th>symbol</th><th>reason</th></tr><tr><td>BTCUSDT</td><td>a&lt;b</td></tr>"
            "<tr><td>ETHUSDT</td><td>end</td></tr></table>") in page
    assert 'points=""' in report_html("t", {}, [], "symbol\n")
