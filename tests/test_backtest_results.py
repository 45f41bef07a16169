"""A backtest's figures and its report, against hand-computed values: the PnL split, the win
rate, daily returns, Sharpe, Sortino, max drawdown, utilization and APR; the text report and
the trades CSV and the gaps byte for byte."""

from __future__ import annotations

import math
import statistics
import time
from decimal import Decimal as D

import pytest

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
                      "-0.03", liquidated=True, reason="liquidated")],
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
        "closest_to_liquidation": "-0.0300",  # the liquidated one, seen 3 % past its price
        "past_liquidation": "0.0300",
        # computed here the textbook way: sample standard deviation; downside over all days
        "sharpe": f"{statistics.mean(RETURNS) / statistics.stdev(RETURNS) * math.sqrt(365):.2f}",
        "sortino": f"{statistics.mean(RETURNS) / math.sqrt(sum(min(0, r) ** 2 for r in RETURNS) / 5) * math.sqrt(365):.2f}",
        "max_drawdown": "0.1008",  # peak 10,019 (day 1), low 9,009.25: 1,009.75 / 10,019
        "utilization": "0.2000",  # 4,000, 0, 2,000, 2,000 of 10,000: mean 0.2
        "apr": "-7.2325",  # -990.75 / 10,000 over 5 days: -0.099075 x 365 / 5
        "days": "5",
        "settlements": "7",
        "bars": "0", "gaps": "0", "entries_skipped": "-", "stopped": "-",
    }
    assert (s["sharpe"], s["sortino"]) == ("-8.40", "-8.43")


def test_the_summary_of_nothing_says_so():
    assert summary(BacktestResult(), CAPITAL) == {
        "trades": "0", "pnl_usd": "0.00", "price_pnl_usd": "0.00", "fees_usd": "0.00", "funding_usd": "0.00",
        "win_rate": "-", "liquidations": "0", "closest_to_liquidation": "1.0000", "past_liquidation": "-",
        "sharpe": "-", "sortino": "-", "max_drawdown": "0.0000", "utilization": "0", "apr": "-", "days": "0",
        "settlements": "0", "bars": "0", "gaps": "0", "entries_skipped": "-", "stopped": "-"}


def test_the_text_report():
    assert render(five_trades(), CAPITAL) == (
        "trades          5 (win rate 0.4000); liquidations 1 (seen up to 3.00% past a liquidation price: how far "
        "the price went between two observations is not known; --bars shows it), closest approach -0.0300 of the "
        "mark\n"
        "PnL             $-990.75 = price $-1,000.00 - fees $52.25 + funding $61.50\n"
        "risk            Sharpe -8.40, Sortino -8.43, max drawdown 0.1008\n"
        "returns         on $10,000.00: utilization 0.2000, APR -7.2325 over 5 days\n"
        "data            7 settlements, 0 bars used, 0 gaps")


def test_the_text_report_states_its_setup_the_gaps_the_entries_not_taken_and_the_stop():
    from services.backtest.funding_arb import Gap
    from services.backtest.results import gaps_csv

    result = five_trades()
    result.gaps = [Gap("TONUSDT", "bybit", D0 + 8 * H, None)] + [Gap("XUSDT", "a", D0, D0 + 16 * H)] * 5
    result.skipped.update({"no free margin": 3, "account leverage": 1})
    result.stopped_ms = D0 + 4 * DAY + H
    result.bars = 1_234
    lines = render(result, CAPITAL, [("capital", "$10,000.00 (stop at 50 %)"), ("bybit funding", "f.csv")])
    assert lines.splitlines()[:2] == ["capital         $10,000.00 (stop at 50 %)", "bybit funding   f.csv"]
    assert lines.splitlines()[-3:] == [
        "data            7 settlements, 1,234 bars used, 6 gaps; TONUSDT at bybit from 2026-01-01 08:00 to its end"
        + "; XUSDT at a from 2026-01-01 00:00 to 2026-01-01 16:00" * 4 + "; 1 more in gaps.csv",
        "not entered     account leverage 1, no free margin 3",
        "stopped         2026-01-05 01:00: equity reached the stop; nothing was opened after"]
    assert gaps_csv(result.gaps[:2]) == (
        "symbol,venue,last_settlement_utc,next_settlement_utc\nTONUSDT,bybit,2026-01-01 08:00,\n"
        "XUSDT,a,2026-01-01 00:00,2026-01-01 16:00\n")
    # one gap is a gap; five are listed whole
    result.gaps = result.gaps[:1]
    assert "1 gap; TONUSDT at bybit" in render(result, CAPITAL)
    result.gaps = [Gap("TONUSDT", "bybit", D0 + 8 * H, None)] * 5
    assert render(result, CAPITAL).splitlines()[-3].endswith("5 gaps" + "; TONUSDT at bybit from 2026-01-01 08:00 to its end" * 5)


def test_a_report_without_liquidations_says_nothing_of_a_gap_risk():
    result = five_trades()
    result.trades = [t for t in result.trades if not t.liquidated]
    assert render(result, CAPITAL).splitlines()[0] == (
        "trades          4 (win rate 0.5000); liquidations 0, closest approach 0.1750 of the mark")


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
        "-1004.25000000,-0.0300,1,liquidated\n")
