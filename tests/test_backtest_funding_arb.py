"""The cross-venue funding arbitrage backtest: a hand-computed trade to the cent, a leg
liquidated when the mark crosses its price, the same report byte for byte on a second run,
and a run over the real 2025-2026 Bybit and Binance funding histories."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from services.backtest.data import load_funding
from services.backtest.fees import FeeSchedule
from services.backtest.funding import FundingRate
from services.backtest.funding_arb import EIGHT_HOURS_MS, FundingArbConfig, run
from services.backtest.margin import RiskTier
from services.backtest.results import render, summary, trades_csv
from tests.conftest import SHARED

DATA = SHARED / "market-data"
FEES = {"a": FeeSchedule(D("0.0005"), D("0.0002")), "b": FeeSchedule(D("0.0005"), D("0.0002"))}
TIERS = [RiskTier(D(10_000_000), D("0.005"), D(100))]
T0 = 1_760_000_000_000 - 1_760_000_000_000 % EIGHT_HOURS_MS


def history(*rows: tuple[str, str, str]) -> dict[str, list[FundingRate]]:
    """(rate at a, rate at b, mark) per settlement, 8 h apart."""
    return {"a": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS, D(a), D(m)) for i, (a, _, m) in enumerate(rows)],
            "b": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS + 3, D(b)) for i, (_, b, _) in enumerate(rows)]}


def test_a_trade_by_hand():
    # slot 0: a pays 0.1 % more: short 100 X at a, long at b (fees 2 x 100 x 100 x 0.05 % = $10)
    # slot 1: the short receives 100 x 100 x 0.1 % = $10; still in favour
    # slot 2: the delta is gone: closed (another $10 of fees)
    result = run(history(("0.001", "0", "100"), ("0.001", "0", "100"), ("0", "0", "100")), FEES, TIERS)
    (trade,) = result.trades
    assert (trade.short_venue, trade.long_venue, trade.qty) == ("a", "b", D(100))
    assert (trade.fees_usd, trade.funding_usd, trade.price_pnl_usd, trade.pnl_usd) == (D(20), D(10), D(0), D(-10))
    assert (trade.opened_ms, trade.closed_ms, trade.reason) == (T0, T0 + 2 * EIGHT_HOURS_MS, "funding_converged")
    assert result.equity[-1] == (T0 + 2 * EIGHT_HOURS_MS, D(-10))
    s = summary(result, D(20_000))
    assert (s["pnl_usd"], s["fees_usd"], s["funding_usd"], s["win_rate"]) == ("-10.00", "20.00", "10.00", "0.0000")


def test_a_delta_too_small_to_pay_the_fees_is_not_traded():
    config = FundingArbConfig(entry_8h=D("0.0001"), hold_intervals=1)  # one interval of 0.015 % < 0.2 % of fees
    assert run(history(("0.00015", "0", "100"), ("0.00015", "0", "100")), FEES, TIERS, config).trades == []


def test_a_leg_is_liquidated_when_the_mark_crosses_its_price():
    # x5: the long (at b) is liquidated near 100 x (1 - 0.2 + 0.005) = 80.5; the mark falls to 70
    result = run(history(("0.001", "0", "100"), ("0.001", "0", "70")), FEES, TIERS, FundingArbConfig(leverage=D(5)))
    (trade,) = result.trades
    assert trade.liquidated and trade.reason == "liquidated"
    # the long loses its margin (100 x 100 / 5 = 2,000); the short gains 100 x 30 = 3,000 and pays
    # its closing fee 100 x 70 x 0.05 % = 3.5 on top of the entry fees of 10
    assert trade.price_pnl_usd == D(1_000) and trade.fees_usd == D("13.5")
    assert trade.funding_usd == D(7)  # the short received 100 x 70 x 0.1 % at that settlement


def test_the_real_histories_give_the_same_report_byte_for_byte():
    bybit = load_funding(DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv")
    binance = load_funding(DATA / "binance/funding/binance_usdm_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv")
    fees = {"bybit": FeeSchedule.tier("VIP0"), "binance": FeeSchedule(D("0.0005"), D("0.0002"))}
    runs = [run({"bybit": bybit, "binance": binance}, fees, TIERS) for _ in range(2)]
    texts = [(render(r, D(20_000)), trades_csv(r.trades)) for r in runs]
    assert texts[0] == texts[1]
    result = runs[0]
    assert result.settlements == 3 * 1_095 and result.trades
    total = sum((t.pnl_usd for t in result.trades), D(0))
    assert total == sum((t.price_pnl_usd - t.fees_usd + t.funding_usd for t in result.trades), D(0))
    assert result.equity[-1][1] == total  # the equity curve ends at the trades' PnL
    assert all(t.opened_ms < t.closed_ms for t in result.trades)


def test_arb_backtest_writes_the_same_report_and_trades_twice(tmp_path):
    import os
    import subprocess
    import sys

    args = [sys.executable, "-m", "services.cli", "backtest", "funding",
            "--bybit", str(DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"),
            "--binance", str(DATA / "binance/funding/binance_usdm_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    outputs = []
    for name in ("one", "two"):
        done = subprocess.run([*args, "--out", str(tmp_path / name)], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "PnL             $" in done.stdout and "Sharpe" in done.stdout
        outputs.append(tuple((tmp_path / name / f).read_bytes()
                             for f in ("report.txt", "trades.csv", "equity.png", "report.html")))
    assert outputs[0] == outputs[1]
    png, page = outputs[0][2], outputs[0][3].decode()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IDAT" in png
    assert "<polyline" in page and "SOLUSDT" in page and "http" not in page.replace("http://www.w3.org", "")
    missing = subprocess.run([*args[:6], "nope.csv", *args[7:]], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip() == "backtest: nope.csv: No such file or directory"


def test_with_bars_a_leg_is_liquidated_at_the_first_bar_that_reaches_its_price():
    from services.backtest.data import Bar
    from services.backtest.margin import liquidation_price

    config = FundingArbConfig(leverage=D(5))
    liq = liquidation_price("long", D(100), D(100), D(5), TIERS)  # 80.5
    lows = ["99", "90", "80.6", "80.4", "70"]  # the fourth bar is the first to reach 80.5
    bars = {"XUSDT": [Bar(T0 + i * 60_000, D(100), D(101), D(low), D(low), D(1)) for i, low in enumerate(lows)],
            "YUSDT": [Bar(T0 + i * 60_000, D(100), D(100), D(100), D(100), D(1)) for i in range(5)]}  # untraded
    result = run(history(("0.001", "0", "100"), ("0", "0", "100")), FEES, TIERS, config, bars)
    (trade,) = result.trades
    assert trade.liquidated and trade.closed_ms == T0 + 4 * 60_000  # the close of the bar opened at minute 3
    # the long's margin (2,000) is gone; the short is closed at the liquidation price: +100 x 19.5
    assert trade.price_pnl_usd == -D(2_000) + D(100) * (D(100) - liq)
    assert trade.closest_to_liquidation == (D("80.6") - liq) / D("80.6")
    assert result.bars == 10
