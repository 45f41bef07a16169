"""The cross-venue funding arbitrage backtest: a hand-computed trade to the cent, a leg
liquidated when the mark crosses its price, the same report byte for byte on a second run,
and a run over the real 2025-2026 Bybit and Binance funding histories."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from services.backtest.data import Bar, load_funding
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
EIGHT = EIGHT_HOURS_MS


def history(*rows: tuple[str, str, str]) -> dict[str, list[FundingRate]]:
    """(rate at a, rate at b, mark) per settlement, 8 h apart."""
    return {"a": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS, D(a), D(m), EIGHT)
                  for i, (a, _, m) in enumerate(rows)],
            "b": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS + 3, D(b), None, EIGHT)
                  for i, (_, b, _) in enumerate(rows)]}


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


def test_a_leg_is_liquidated_when_the_mark_crosses_its_price_and_the_other_closes_at_the_same_price():
    # x5: the long (at b) is liquidated at 100 - (2,000 - 50) / 100 = 80.5; the next mark seen is 70.
    # The long loses its margin (2,000); the short is closed at the moment of the liquidation, at
    # 80.5 (+1,950), not at the later 70 (+3,000, a profit the hedge never had), and pays its
    # closing fee 100 x 80.5 x 0.05 % = 4.025 on top of the entry fees of 10. The position was gone
    # before that settlement: no funding. The mark was seen 15 % past the price: the gap risk.
    result = run(history(("0.001", "0", "100"), ("0.001", "0", "70")), FEES, TIERS, FundingArbConfig(leverage=D(5)))
    (trade,) = result.trades
    assert trade.liquidated and trade.reason == "liquidated"
    assert (trade.price_pnl_usd, trade.fees_usd, trade.funding_usd) == (D(-50), D("14.025"), D(0))
    assert trade.pnl_usd == D("-64.025")  # about -0.5 % of the notional: the maintenance margin and fees
    assert trade.closest_to_liquidation == (D(70) - D("80.5")) / D(70)


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


BYBIT_YEAR = DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"
BINANCE_YEAR = DATA / "binance/funding/binance_usdm_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"
INSTRUMENTS = SHARED / "venue-samples/bybit/rest_instruments_info_linear_full_2026-08.json.gz"


def arb(*args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "services.cli", "backtest", "funding", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_arb_backtest_writes_the_same_report_and_trades_twice(tmp_path):
    args = ["--bybit", str(BYBIT_YEAR), "--binance", str(BINANCE_YEAR), "--bybit-instruments", str(INSTRUMENTS)]
    outputs = []
    for name in ("one", "two"):
        done = arb(*args, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert "PnL             $" in done.stdout and "Sharpe" in done.stdout
        outputs.append(tuple((tmp_path / name / f).read_bytes()
                             for f in ("report.txt", "trades.csv", "gaps.csv", "equity.png", "report.html")))
    assert outputs[0] == outputs[1]
    report = outputs[0][0].decode()
    # what the ratios are measured against, and where the data came from
    assert "capital         $20,000.00 (stop at 50 % of it; book at most 3x equity)" in report
    assert f"{BYBIT_YEAR.name}: 3,285 settlements of 3 symbols, 2025-08-21 08:00 to 2026-08-21 00:00 UTC" in report
    assert "lots            Bybit's from rest_instruments_info_linear_full_2026-08.json.gz" in report
    # each symbol on its own lot: SOL in tenths, ETH in hundredths
    trades = outputs[0][1].decode().splitlines()[1:]
    steps = {"BTCUSDT": D("0.001"), "ETHUSDT": D("0.01"), "SOLUSDT": D("0.1")}
    assert trades and all(D(t.split(",")[5]) % steps[t.split(",")[0]] == 0 for t in trades)
    missing = arb("--bybit", "nope.csv", *args[2:])
    assert missing.returncode == 2 and missing.stderr.strip() == "backtest: nope.csv: No such file or directory"


def test_arb_backtest_needs_the_lots_or_a_step_said_out_loud(tmp_path):
    done = arb("--bybit", str(BYBIT_YEAR), "--binance", str(BINANCE_YEAR), "--out", str(tmp_path))
    assert done.returncode == 2 and "--bybit-instruments" in done.stderr and "--qty-step" in done.stderr
    done = arb("--bybit", str(BYBIT_YEAR), "--binance", str(BINANCE_YEAR), "--qty-step", "0.001", "--out",
               str(tmp_path))
    assert done.returncode == 0 and "one step of 0.001 for every symbol (--qty-step)" in done.stdout


def test_inputs_a_user_can_mix_up_are_refused_in_one_line(tmp_path):
    import json

    def refused(*args: str) -> str:
        done = arb(*args, "--out", str(tmp_path))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        return done.stderr.strip()

    year = ["--bybit", str(BYBIT_YEAR), "--binance", str(BINANCE_YEAR)]
    # no price anywhere: Bybit's file twice has no markPrice, and no bars were given
    assert refused("--bybit", str(BYBIT_YEAR), "--binance", str(BYBIT_YEAR), "--qty-step", "0.001") == (
        "backtest: neither funding history has a mark price (Binance's has markPrice) and no --bars were given: "
        "there is no price to trade at")
    header_only = tmp_path / "empty.csv"
    header_only.write_text("symbol,fundingRateTimestamp,fundingRate\n")
    assert refused("--bybit", str(header_only), "--binance", str(BINANCE_YEAR), "--qty-step", "0.001") == (
        f"backtest: --bybit {header_only}: no settlements in it")
    # each venue's parquet file says whose it is
    parquet = {v: DATA / f"{v}/funding/zushen_venue={v}_data.parquet" for v in ("bybit", "binance")}
    assert refused("--bybit", str(parquet["binance"]), "--binance", str(parquet["bybit"]), "--qty-step", "1") == (
        f"backtest: {parquet['binance']}: holds binance's settlements, not bybit's")
    # an exchangeInfo given as Bybit's instruments
    info = tmp_path / "exchangeInfo.json"
    info.write_text(json.dumps({"symbols": [{"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
                                             "filters": [{"filterType": "LOT_SIZE", "stepSize": "0.001",
                                                          "minQty": "0.001", "maxQty": "1000"},
                                                         {"filterType": "MIN_NOTIONAL", "notional": "100"},
                                                         {"filterType": "PRICE_FILTER", "tickSize": "0.1"}]}]}))
    assert refused(*year, "--bybit-instruments", str(info)) == (
        f"backtest: --bybit-instruments {info}: it is binance's answer, not bybit's")
    assert refused(*year, "--qty-step", "0.001", "--entry-bps", "1", "--exit-bps", "2") == (
        "backtest: --exit-bps 2 is above --entry-bps 1: a trade would close as soon as it opened")
    assert refused(*year, "--qty-step", "0") == "backtest: --qty-step must be above 0"


def test_bars_that_miss_the_funding_history_are_refused_and_partial_ones_said(tmp_path):
    bars = DATA / "bybit/klines_1m/BTCUSDT_1m_2025-05-30_2025-06-29.csv"  # May-June 2025
    done = arb("--bybit", str(BYBIT_YEAR), "--binance", str(BINANCE_YEAR), "--qty-step", "0.001", "--bars",
               str(bars), "--out", str(tmp_path))
    assert done.returncode == 2 and not (tmp_path / "report.txt").exists()
    assert ("its bars (2025-05-30 16:39 to 2025-06-29 16:39 UTC) are all outside BTCUSDT's funding history "
            "(2025-08-21 08:00 to 2026-08-21 00:00 UTC)") in done.stderr
    # the excerpt of May-June with the year after it: the bars cover a part, and the report says how much
    excerpt = DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-05-30_2025-06-30_excerpt.csv"
    done = arb("--bybit", str(excerpt), "--binance", str(BINANCE_YEAR), "--qty-step", "0.001", "--bars", str(bars),
               "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "covers 7% of BTCUSDT's funding history" in done.stderr
    assert "bars BTCUSDT    43,200 from 2025-05-30 16:39 to 2025-06-29 16:39 UTC" in done.stdout
    assert ", 43,200 bars used," in done.stdout
    # one file a symbol, of 1-minute bars
    five = DATA / "bybit/klines_5m/BTCUSDT_5m_2025-04-03_2025-07-02.csv"
    for files, message in (([bars, bars], f"--bars {bars}: a second file of BTCUSDT; give one file a symbol"),
                           ([five], f"--bars {five}: its bars are 300 s apart; liquidations are checked on "
                                    "1-minute bars")):
        done = arb("--bybit", str(excerpt), "--binance", str(BINANCE_YEAR), "--qty-step", "0.001",
                   *(a for f in files for a in ("--bars", str(f))), "--out", str(tmp_path))
        assert done.returncode == 2 and done.stderr.strip() == f"backtest: {message}"


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
    assert trade.closest_to_liquidation == (D("80.4") - liq) / D("80.4")  # the bar that liquidated it
    assert result.bars == 5  # YUSDT has no settlements: its bars are not used


def rates(symbol: str, *rows: tuple[str, str, str | None], start: int = 0) -> dict[str, list[FundingRate]]:
    """(rate at a, rate at b, mark at a or None) per settlement, 8 h apart from slot `start`."""
    at = [T0 + (start + i) * EIGHT_HOURS_MS for i in range(len(rows))]
    return {"a": [FundingRate(symbol, t, D(a), D(m) if m else None, EIGHT) for t, (a, _, m) in zip(at, rows, strict=True)],
            "b": [FundingRate(symbol, t + 3, D(b), None, EIGHT) for t, (_, b, _) in zip(at, rows, strict=True)]}


def merged(*histories: dict[str, list[FundingRate]]) -> dict[str, list[FundingRate]]:
    return {v: [r for h in histories for r in h[v]] for v in ("a", "b")}


def test_both_legs_funding_the_equity_and_the_margin_while_open_by_hand():
    # slot 0, mark 100: a pays 0.08 % more: short 100 X at a, long at b; entry fees 2 x 100 x 100 x 0.05 % = 10;
    #   margin 100 x 100 / 5 on each leg: 4,000; liquidation: long 100 - (2,000 - 50) / 100 = 80.5, short 119.5
    # slot 1, mark 90: the long pays 100 x 90 x 0.02 % = 1.8, the short receives 100 x 90 x 0.1 % = 9;
    #   closest approach: the long's (90 - 80.5) / 90
    # slot 2, mark 105: the long pays 2.1, the short receives 10.5: 15.6 received in all
    # slot 3, mark 105: 0.01 % on both (paid and received: 0); nothing in its favour: closed at 105,
    #   the long +500 and the short -500; exit fees 2 x 100 x 105 x 0.05 % = 10.5
    result = run(rates("XUSDT", ("0.001", "0.0002", "100"), ("0.001", "0.0002", "90"), ("0.001", "0.0002", "105"),
                       ("0.0001", "0.0001", "105")), FEES, TIERS)
    (trade,) = result.trades
    assert (trade.symbol, trade.long_venue, trade.short_venue, trade.qty, trade.notional_usd) == (
        "XUSDT", "b", "a", D(100), D(10_000))
    assert (trade.fees_usd, trade.funding_usd, trade.price_pnl_usd, trade.pnl_usd) == (
        D("20.5"), D("15.6"), D(0), D("-4.9"))
    assert trade.closest_to_liquidation == (D(90) - D("80.5")) / D(90)
    assert (trade.closed_ms, trade.reason, trade.liquidated) == (T0 + 3 * EIGHT_HOURS_MS, "funding_converged", False)
    # equity: realised + funding received so far - fees paid so far
    slots = [T0 + i * EIGHT_HOURS_MS for i in range(4)]
    assert result.equity == list(zip(slots, [D(-10), D("-2.8"), D("5.6"), D("-4.9")], strict=True))
    assert result.exposure == list(zip(slots, [D(4_000), D(4_000), D(4_000), D(0)], strict=True))
    assert result.settlements == 4


def test_the_venue_with_the_higher_rate_is_the_short_and_equal_rates_are_no_opportunity():
    (trade,) = run(rates("XUSDT", ("0", "0.001", "100"), ("0", "0", "100")), FEES, TIERS).trades
    assert (trade.short_venue, trade.long_venue, trade.funding_usd) == ("b", "a", 0)
    # 0.03 % on both venues: high, but nothing between them to earn
    assert run(rates("XUSDT", ("0.0003", "0.0003", "100"), ("0.0003", "0.0003", "100")), FEES, TIERS).trades == []


def test_entry_and_exit_at_their_boundaries():
    # a delta of exactly entry_8h (0.02 %) is enough, when the intervals held pay the round trip:
    # 11 x 0.02 % x 10,000 = 22 > 2 x 10,000 x 0.1 % = 20 of fees; 10 intervals (20, not above 20) are not
    two = (("0.0002", "0", "100"), ("0.0002", "0", "100"))
    (trade,) = run(rates("XUSDT", *two), FEES, TIERS, FundingArbConfig(hold_intervals=11)).trades
    assert trade.opened_ms == T0
    assert run(rates("XUSDT", *two), FEES, TIERS, FundingArbConfig(hold_intervals=10)).trades == []
    # a delta in its favour of exactly exit_8h (0.005 %) keeps it open: it closes only below
    (trade,) = run(rates("XUSDT", ("0.001", "0", "100"), ("0.00005", "0", "100")), FEES, TIERS).trades
    assert trade.reason == "end_of_history"


def test_the_quantity_is_the_notional_over_the_mark_rounded_down_to_the_step():
    # 10,000 / 6 = 1,666.666...: 1,666.666 (rounding to nearest would give 1,666.667)
    (trade,) = run(rates("XUSDT", ("0.001", "0", "6"), ("0", "0", "6")), FEES, TIERS).trades
    assert (trade.qty, trade.notional_usd) == (D("1666.666"), D("9999.996"))
    # a quantity below one unit: 10,000 / 100,000 = 0.1
    (trade,) = run(rates("XUSDT", ("0.001", "0", "100000"), ("0", "0", "100000")), FEES, TIERS).trades
    assert trade.qty == D("0.1")


ROUND_TRIP = (("0.001", "0", "100"), ("0", "0", "100"))  # open, then closed at the next: -20 of fees


def test_a_position_open_at_the_end_is_closed_at_the_last_mark_and_counts_in_the_equity():
    # a first trade (-20 of fees), then at slot 2 a second: entry fees 10; the short receives
    # 100 x 110 x 0.1 % = 11 at slot 3 (mark 110), where the history ends: closed there at 110,
    # the long +1,000 and the short -1,000, exit fees 2 x 100 x 110 x 0.05 % = 11
    result = run(merged(rates("XUSDT", *ROUND_TRIP), rates("XUSDT", ("0.001", "0", "100"), ("0.001", "0", "110"),
                                                           start=2)), FEES, TIERS)
    first, second = result.trades
    assert first.pnl_usd == -20
    assert (second.opened_ms, second.closed_ms, second.reason, second.liquidated) == (
        T0 + 2 * EIGHT_HOURS_MS, T0 + 3 * EIGHT_HOURS_MS, "end_of_history", False)
    assert (second.fees_usd, second.funding_usd, second.price_pnl_usd, second.pnl_usd) == (D(21), D(11), 0, D(-10))
    # at slot 3 the open one counts what it has received and paid (11 - 10), then its close realises it
    assert result.equity[-2:] == [(T0 + 3 * EIGHT_HOURS_MS, D(-19)), (T0 + 3 * EIGHT_HOURS_MS, D(-30))]


def test_a_short_leg_liquidated_at_a_settlement_after_an_earlier_trade():
    # after the round trip (-20), a trade opened at slot 2; at slot 3 the mark is 130, past the
    # short's 119.5: it was liquidated before that settlement (no funding), loses its margin
    # (2,000), and the long is closed at 119.5: +1,950, fee 100 x 119.5 x 0.05 % = 5.975
    result = run(merged(rates("XUSDT", *ROUND_TRIP), rates("XUSDT", ("0.001", "0", "100"), ("0.001", "0", "130"),
                                                           start=2)), FEES, TIERS)
    _, second = result.trades
    assert (second.closed_ms, second.reason, second.liquidated) == (T0 + 3 * EIGHT_HOURS_MS, "liquidated", True)
    assert (second.price_pnl_usd, second.fees_usd, second.funding_usd, second.pnl_usd) == (
        D(-50), D("15.975"), D(0), D("-65.975"))
    assert second.closest_to_liquidation == (D("119.5") - D(130)) / D(130)
    assert result.equity[-1] == (T0 + 3 * EIGHT_HOURS_MS, D("-85.975"))  # -20 - 65.975; not opened again there


def test_with_bars_a_short_is_liquidated_at_the_first_high_that_reaches_it_after_an_earlier_trade():
    # the second trade opens at slot 2 (short liquidation 119.5); bars of its first three minutes:
    # highs 110 (the closest: 9.5 / 110), 101, 120 (reaches 119.5). The short loses its margin, the
    # long is closed at 119.5: +1,950, fee 100 x 119.5 x 0.05 % = 5.975
    t2 = T0 + 2 * EIGHT_HOURS_MS
    bars = {"XUSDT": [Bar(t2 + i * 60_000, D(100), D(high), D(99), D(100), D(1))
                      for i, high in enumerate(["110", "101", "120"])]}
    result = run(merged(rates("XUSDT", *ROUND_TRIP), rates("XUSDT", ("0.001", "0", "100"), ("0", "0", "100"),
                                                           start=2)), FEES, TIERS, bars=bars)
    _, second = result.trades
    assert (second.closed_ms, second.reason, second.liquidated) == (t2 + 3 * 60_000, "liquidated", True)
    assert second.closest_to_liquidation == (D("119.5") - D(120)) / D(120)  # the bar that reached it
    assert (second.price_pnl_usd, second.fees_usd, second.pnl_usd) == (D(-50), D("15.975"), D("-65.975"))
    assert result.equity[-1] == (T0 + 3 * EIGHT_HOURS_MS, D("-85.975"))  # -20 - 65.975


def test_a_settlement_without_a_mark_takes_the_last_bars_close_and_one_without_any_is_skipped():
    # slot -1: no mark anywhere yet: skipped. A bar closing at slot 0 at 50: the settlement there
    # has no mark of its own and trades 10,000 / 50 = 200 X; slot 1 has none either: 50 again
    history = {"a": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS, D(r)) for i, r in ((-1, "0.001"), (0, "0.001"),
                                                                                  (1, "0"))],
               "b": [FundingRate("XUSDT", T0 + i * EIGHT_HOURS_MS, D(0)) for i in (-1, 0, 1)]}
    bars = {"XUSDT": [Bar(T0 - 60_000, D(49), D(51), D(49), D(50), D(1))]}
    result = run(history, FEES, TIERS, bars=bars)
    (trade,) = result.trades
    assert (trade.opened_ms, trade.qty, trade.closed_ms, trade.reason) == (
        T0, D(200), T0 + EIGHT_HOURS_MS, "funding_converged")
    assert (result.settlements, result.bars) == (2, 1)


def test_risk_limit_tiers_per_symbol_and_the_default_for_a_symbol_without_its_own():
    # XUSDT's own tier: 5 % maintenance: at x5 the long is liquidated at 100 - (2,000 - 500) / 100 = 85;
    # YUSDT has none given: the default tier (0.5 %), 80.5. Both marked at 84 at slot 1.
    tiers = {"XUSDT": [RiskTier(D(10_000_000), D("0.05"), D(10))]}
    history = merged(rates("XUSDT", ("0.001", "0", "100"), ("0.001", "0", "84")),
                     rates("YUSDT", ("0.001", "0", "100"), ("0.001", "0", "84")))
    result = run(history, FEES, tiers)
    by_symbol = {t.symbol: t for t in result.trades}
    assert by_symbol["XUSDT"].liquidated and by_symbol["XUSDT"].closed_ms == T0 + EIGHT_HOURS_MS
    assert not by_symbol["YUSDT"].liquidated and by_symbol["YUSDT"].reason == "end_of_history"
    assert by_symbol["YUSDT"].closest_to_liquidation == (D(84) - D("80.5")) / D(84)


def test_no_common_settlement_no_trade():
    assert run({"a": [], "b": []}, FEES, TIERS).trades == []
    one_sided = run({"a": rates("XUSDT", ("0.001", "0", "100"), ("0.001", "0", "100"))["a"], "b": []}, FEES, TIERS)
    assert (one_sided.trades, one_sided.decisions) == ([], [])
