"""The backtester's money: Bybit's fees against hand-computed cases and real executions, funding
accrual over the real 2025-2026 Bybit funding file against an independent computation, and a
position forced past its liquidation price liquidated at the right bar of real klines."""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal as D
from fractions import Fraction

import pytest

from services.backtest.data import DataError, load_funding, load_klines
from services.backtest.fees import FeeError, FeeSchedule
from services.backtest.funding import FundingRate, accrue, payment
from services.backtest.margin import (
    MarginError,
    RiskTier,
    crossed,
    distance,
    liquidation_price,
    tiers_by_symbol,
    tiers_from_risk_limit,
)
from tests.conftest import SHARED

SAMPLES = SHARED / "venue-samples" / "bybit"
DATA = SHARED / "market-data"
FUNDING_2025 = DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"
BTC_1M = DATA / "bybit/klines_1m/BTCUSDT_1m_2025-05-30_2025-06-29.csv"


def _executions(name: str):
    def walk(x):
        if isinstance(x, dict):
            if "execFee" in x:
                yield x
            for v in x.values():
                yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)

    return list(walk(json.loads((SAMPLES / name).read_text())))


def test_fee_tiers_by_hand():
    vip0 = FeeSchedule.tier("VIP0")
    assert (vip0.taker, vip0.maker) == (D("0.00055"), D("0.00020"))
    # 0.099 BTC at 100,000.1: taker 0.099 x 100,000.1 x 0.00055 = 5.445005445
    assert vip0.fee(D("0.099"), D("100000.1"), maker=False) == D("5.44500544500")
    assert FeeSchedule.tier("SupremeVIP").fee(D(1), D(50_000), maker=True) == 0
    assert FeeSchedule.tier("VIP2", "spot").taker == D("0.000775")
    with pytest.raises(FeeError, match="tiers: VIP0"):
        FeeSchedule.tier("VIP9")
    answer = json.loads((SAMPLES / "docexample_rest_account_fee_rate.json").read_text())["result"]
    assert FeeSchedule.from_fee_rate(answer, "ETHUSDT") == FeeSchedule(D("0.0006"), D("0.0001"))
    with pytest.raises(FeeError, match="has no BTCUSDT"):
        FeeSchedule.from_fee_rate(answer, "BTCUSDT")


def test_computed_trade_fees_equal_bybits_recorded_execution_fees():
    trades = [e for e in _executions("ccxtrec_rest_orders_executions.json") if e["execType"] == "Trade"]
    assert trades
    for e in trades:
        schedule = FeeSchedule(D(e["feeRate"]), D(e["feeRate"]))
        assert schedule.fee(D(e["execQty"]), D(e["execPrice"]), e["isMaker"]) == D(e["execFee"])
        assert D(e["feeRate"]) == FeeSchedule.tier("VIP0").taker  # a VIP0 account, as the table says


def test_funding_sign_and_a_recorded_settlement():
    assert payment(D(1), D(100), D("0.0001")) == D("0.0100")  # a long pays a positive rate
    assert payment(D(-1), D(100), D("0.0001")) == D("-0.0100")  # a short receives it
    assert payment(D(1), D(100), D("-0.0002")) == D("-0.0200")  # a long receives a negative rate
    recorded = next(e for e in _executions("ccxtrec_rest_orders_executions.json")
                    if e["execType"] == "Funding" and D(e["execValue"]) == D(e["execQty"]) * D(e["execPrice"])
                    and D(e["execFee"]) == D(e["execValue"]) * D(e["feeRate"]))
    assert payment(D(recorded["execQty"]), D(recorded["execPrice"]), D(recorded["feeRate"])) == D(recorded["execFee"])


def test_funding_over_the_real_2025_2026_file_equals_an_independent_sum():
    rates = load_funding(FUNDING_2025)
    assert len(rates) == 3_285 and {r.symbol for r in rates} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    btc = [r for r in rates if r.symbol == "BTCUSDT"]
    # long 0.5 BTC all year, marked at 100,000 at every settlement; short 3 ETH for the second half
    half = btc[len(btc) // 2].ts_ms
    paid = accrue(btc, lambda ts: D("0.5"), lambda ts: D(100_000))
    eth = [r for r in rates if r.symbol == "ETHUSDT"]
    received = accrue(eth, lambda ts: D(-3) if ts >= half else D(0), lambda ts: D(4_000))
    independent_btc, independent_eth = Fraction(0), Fraction(0)
    with FUNDING_2025.open(newline="") as file:
        for row in csv.DictReader(file):
            rate = Fraction(row["fundingRate"])
            if row["symbol"] == "BTCUSDT":
                independent_btc += Fraction(1, 2) * 100_000 * rate
            elif row["symbol"] == "ETHUSDT" and int(row["fundingRateTimestamp"]) >= half:
                independent_eth += -3 * 4_000 * rate
    assert len(paid) == 1_095 and Fraction(sum(p for _, p in paid)) == independent_btc
    assert Fraction(sum(p for _, p in received)) == independent_eth and len(received) == 1_095 - 547


def test_funding_needs_a_mark_and_local_dates_need_their_offset(tmp_path):
    with pytest.raises(ValueError, match="no mark price"):
        accrue([FundingRate("BTCUSDT", 1, D("0.0001"))], lambda ts: D(1), lambda ts: None)
    original = DATA / "bybit/funding/supervik/BTC-USDT_bybit_2021-01-01_2024-01-01_funding_history.csv"
    with pytest.raises(DataError, match="utc_offset_hours"):
        load_funding(original)
    shifted = load_funding(original, utc_offset_hours=3)
    utc = load_funding(original.with_name(original.stem + "_utc.csv"))
    assert [(r.ts_ms, r.rate) for r in shifted] == [(r.ts_ms, r.rate) for r in utc]  # the derived file agrees
    assert all(r.ts_ms % (8 * 3_600_000) == 0 for r in shifted)  # 00:00, 08:00, 16:00 UTC
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,fundingRateTimestamp,fundingRate\nBTCUSDT,1,abc\n")
    with pytest.raises(DataError, match=r"bad\.csv:2"):
        load_funding(bad)


TIERS = [RiskTier(D(2_000_000), D("0.005"), D(100)), RiskTier(D(10_000_000), D("0.01"), D(50), D(10_000))]


def test_liquidation_price_by_hand():
    # 1 BTC long at 100,000 x10: IM 10,000, MM 500: 100,000 - 9,500 = 90,500
    assert liquidation_price("long", D(100_000), D(1), D(10), TIERS) == D(90_500)
    assert liquidation_price("short", D(100_000), D(1), D(10), TIERS) == D(109_500)
    # 30 BTC (3,000,000 USDT, tier 2): IM 300,000, MM 30,000 - 10,000 = 20,000: 100,000 - 280,000/30
    assert liquidation_price("long", D(100_000), D(30), D(10), TIERS) == D(100_000) - D(280_000) / 30
    with pytest.raises(MarginError, match="above the tier's maximum 50"):
        liquidation_price("long", D(100_000), D(30), D(100), TIERS)
    with pytest.raises(MarginError, match="above the highest risk limit"):
        liquidation_price("long", D(100_000), D(200), D(2), TIERS)
    assert distance("long", D(90_500), D(100_000)) == D("0.095")
    rows = [{"riskLimitValue": "2000000", "maintenanceMargin": "0.005", "maxLeverage": "100.00", "mmDeduction": ""},
            {"riskLimitValue": "10000000", "maintenanceMargin": "0.01", "maxLeverage": "50.00", "mmDeduction": "10000"}]
    assert tiers_from_risk_limit(reversed(rows)) == TIERS


def test_a_position_forced_past_its_liquidation_price_is_liquidated_at_the_right_bar():
    bars = load_klines(BTC_1M)
    assert len(bars) == 43_200
    entry = bars[0].close
    for side, leverage in (("long", D(50)), ("short", D(50))):
        liq = liquidation_price(side, entry, D("0.1"), leverage, TIERS)
        hit = next(i for i, b in enumerate(bars[1:], 1) if crossed(side, liq, b.low, b.high))
        # independently: the first bar after entry whose low (long) or high (short) reaches the price
        with BTC_1M.open(newline="") as file:
            rows = list(csv.DictReader(file))[1:]
        want = next(i for i, row in enumerate(rows, 1)
                    if (D(row["low"]) <= liq if side == "long" else D(row["high"]) >= liq))
        assert hit == want
        before = bars[hit - 1]
        assert not crossed(side, liq, before.low, before.high)


def test_the_parquet_funding_file_agrees_with_the_csv_derived_from_it():
    parquet = load_funding(DATA / "bybit/funding/zushen_venue=bybit_data.parquet")
    csv_rows = load_funding(FUNDING_2025)
    wanted = {(r.symbol, r.ts_ms) for r in csv_rows}
    picked = [r for r in parquet if (r.symbol, r.ts_ms) in wanted]
    assert [(r.symbol, r.ts_ms, r.rate) for r in picked] == [(r.symbol, r.ts_ms, r.rate) for r in csv_rows]
    assert len({r.symbol for r in parquet}) >= 40  # the whole file: 51 symbols
    binance = load_funding(DATA / "binance/funding/zushen_venue=binance_data.parquet")
    assert all(r.mark is not None for r in binance[:100])


def test_risk_limit_answers_give_each_symbols_tiers():
    answer = {"retCode": 0, "result": {"category": "linear", "list": [
        {"id": 1, "symbol": "BTCUSDT", "riskLimitValue": "2000000", "maintenanceMargin": "0.005",
         "initialMargin": "0.01", "isLowestRisk": 1, "maxLeverage": "100.00", "mmDeduction": ""},
        {"id": 2, "symbol": "BTCUSDT", "riskLimitValue": "10000000", "maintenanceMargin": "0.01",
         "initialMargin": "0.02", "isLowestRisk": 0, "maxLeverage": "50.00", "mmDeduction": "10000"},
        {"id": 1, "symbol": "SOLUSDT", "riskLimitValue": "200000", "maintenanceMargin": "0.01",
         "initialMargin": "0.02", "isLowestRisk": 1, "maxLeverage": "50.00", "mmDeduction": ""}]}}
    tiers = tiers_by_symbol(answer)
    assert tiers["BTCUSDT"] == TIERS and tiers["SOLUSDT"] == [RiskTier(D(200_000), D("0.01"), D(50))]
    # SOL at x10: IM 10 %, MM 1 %: liquidated 9 % below the entry
    assert liquidation_price("long", D(100), D(10), D(10), tiers["SOLUSDT"]) == D(91)
    with pytest.raises(MarginError, match="no list"):
        tiers_by_symbol({"result": {}})


def test_the_default_fee_tier_and_errors_that_list_what_there_is():
    assert FeeSchedule.tier() == FeeSchedule(D("0.00055"), D("0.00020"))  # VIP0 perpetual, as the table says
    with pytest.raises(FeeError, match=r"^no product 'options'; products: perpetual, spot$"):
        FeeSchedule.tier("VIP0", "options")
    with pytest.raises(FeeError, match=r"^no spot tier 'VIP9'; tiers: VIP0, VIP1, VIP2, VIP3, VIP4, VIP5, SupremeVIP$"):
        FeeSchedule.tier("VIP9", "spot")


def test_funding_takes_the_historys_own_mark_else_the_mark_at_that_settlement():
    rates = [FundingRate("XUSDT", 1_000, D("0.0001"), D(200)), FundingRate("XUSDT", 2_000, D("0.0001")),
             FundingRate("XUSDT", 3_000, D("0.0001"))]
    marks = {1_000: D(1), 2_000: D(300), 3_000: D(400)}  # what the bars say; the history's 200 wins at 1,000
    paid = accrue(rates, lambda ts: D(0) if ts == 3_000 else D(2), marks.get)
    # 2 x 200 x 0.01 % = 0.04; 2 x 300 x 0.01 % = 0.06; nothing open at 3,000
    assert [(r.ts_ms, p) for r, p in paid] == [(1_000, D("0.04")), (2_000, D("0.06"))]


THREE_TIERS = [*TIERS, RiskTier(D(20_000_000), D("0.02"), D(25), D(110_000))]


def test_liquidation_price_refuses_what_is_not_a_position_and_takes_any_positive_one():
    for qty, entry, leverage in ((0, 100, 10), (-1, 100, 10), (1, 0, 10), (1, 100, 0)):
        with pytest.raises(MarginError, match=r"^qty, entry and leverage must be positive$"):
            liquidation_price("long", D(entry), D(qty), D(leverage), TIERS)
    # a price below 1 (DOGE) at x1: 10,000 at 0.1, IM 1,000, MM 5: 0.1 - 995 / 10,000 = 0.0005
    assert liquidation_price("long", D("0.1"), D(10_000), D(1), TIERS) == D("0.0005")
    # x100 is the first tier's maximum, so allowed: 1 BTC at 100,000, IM 1,000, MM 500: 100,000 - 500
    assert liquidation_price("long", D(100_000), D(1), D(100), TIERS) == D(99_500)
    # exactly the first tier's limit (20 x 100,000 = 2,000,000) is the first tier, where x75 is allowed
    # (the second allows x50): IM 2,000,000 / 75, MM 10,000
    assert liquidation_price("long", D(100_000), D(20), D(75), TIERS) == D(100_000) - (D(2_000_000) / 75 - D(10_000)) / 20
    with pytest.raises(MarginError, match=r"^a position of \$30000000 is above the highest risk limit \$20000000$"):
        liquidation_price("long", D(100_000), D(300), D(2), THREE_TIERS)


def test_a_short_is_reached_at_its_price_and_its_distance_is_above_the_mark():
    assert crossed("short", D(110), D(100), D(110)) and not crossed("short", D(110), D(100), D("109.9"))
    assert crossed("long", D(90), D(90), D(100)) and not crossed("long", D(90), D("90.1"), D(100))
    assert distance("short", D(109_500), D(100_000)) == D("0.095")


def test_risk_limit_answers_that_are_not_say_so():
    with pytest.raises(MarginError, match=r"^not a /v5/market/risk-limit answer: no list$"):
        tiers_by_symbol({"result": {}})
    with pytest.raises(MarginError, match=r"^not a risk-limit entry: 'maintenanceMargin'$"):
        tiers_from_risk_limit([{"riskLimitValue": "2000000", "maxLeverage": "100"}])


def test_a_history_file_that_is_missing_or_lacks_a_column_is_named_with_what_it_has(tmp_path):
    for load in (load_klines, load_funding):
        with pytest.raises(DataError, match=rf"^{tmp_path}/nope\.csv: No such file or directory$"):
            load(tmp_path / "nope.csv")
    one = tmp_path / "one.csv"
    one.write_text("symbol,fundingRateTimestamp\nBTCUSDT,1\n")
    with pytest.raises(DataError, match=r"one\.csv: no column fundingRate \(has symbol, fundingRateTimestamp\)$"):
        load_funding(one)
    two = tmp_path / "two.csv"
    two.write_text("timestamp,open,high,low\n")
    with pytest.raises(DataError, match=r"two\.csv: no column close, volume \(has timestamp, open, high, low\)$"):
        load_klines(two)


def test_local_dates_are_shifted_by_their_offset_whatever_the_machines_zone(tmp_path, monkeypatch):
    original = DATA / "bybit/funding/supervik/BTC-USDT_bybit_2021-01-01_2024-01-01_funding_history.csv"
    with pytest.raises(DataError, match=r"its dates are local time without an offset; give utc_offset_hours "
                                        r"\(3 for the supervik files: SOURCES\.md\)$"):
        load_funding(original)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        shifted = load_funding(original, utc_offset_hours=3)
    finally:
        monkeypatch.undo()
        time.tzset()
    utc = load_funding(original.with_name(original.stem + "_utc.csv"))
    assert [(r.symbol, r.ts_ms, r.rate) for r in shifted] == [(r.symbol, r.ts_ms, r.rate) for r in utc]
    assert {r.symbol for r in shifted} == {"BTCUSDT"}  # BTC-USDT in the file
    bad = tmp_path / "bad.csv"
    bad.write_text("Symbol,Date,Funding Rate\nBTC-USDT,2021-01-01 03:00:00,0.0001\nBTC-USDT,yesterday,0.0001\n")
    with pytest.raises(DataError, match=r"bad\.csv:3: Invalid isoformat string: 'yesterday'$"):
        load_funding(bad, utc_offset_hours=3)


def test_kline_rows_are_checked_and_a_bad_one_is_named_by_its_line(tmp_path):
    bars = load_klines(BTC_1M)
    assert bars[0].ts_ms == int(datetime(2025, 5, 30, 16, 39, tzinfo=UTC).timestamp()) * 1000  # the first row's
    assert bars[1].ts_ms - bars[0].ts_ms == 60_000
    header = "timestamp,open,high,low,close,volume\n"
    good = "2025-05-30 16:39:00+00:00,0.2,0.3,0.1,0.25,5\n"  # prices below 1 (DOGE) are prices
    path = tmp_path / "k.csv"
    for rows, error in (
            ("2025-05-30 16:39:00,1,1,1,1,1\n", r"k\.csv:2: timestamp '2025-05-30 16:39:00' has no UTC offset$"),
            ("2025-05-30 16:39:00+00:00,1,1,x,1,1\n", r"k\.csv:2: low 'x' is not a number$"),
            ("2025-05-30 16:39:00+00:00,1,1,1\n", r"k\.csv:2: no close, volume \(the row has 4 fields\)$"),
            ("2025-05-30 16:39:00+00:00,0,1,0,1,1\n", r"k\.csv:2: prices must be positive with low <= open, close <= high$"),
            ("2025-05-30 16:39:00+00:00,1,1.5,1,2,1\n", r"k\.csv:2: prices must be positive"),  # close above high
            (good + good, r"k\.csv:3: timestamps must rise$")):
        path.write_text(header + rows)
        with pytest.raises(DataError, match=error):
            load_klines(path)
    path.write_text(header + good)
    assert [(b.low, b.close) for b in load_klines(path)] == [(D("0.1"), D("0.25"))]
    path.write_bytes(header.encode() + b"\x89PNG\xff\n")
    with pytest.raises(DataError, match=r"k\.csv: not a UTF-8 text file$"):
        load_klines(path)


def test_funding_rows_are_checked_and_a_bad_one_is_named_with_its_column(tmp_path):
    header = "symbol,fundingRateTimestamp,fundingRate,markPrice\n"
    path = tmp_path / "f.csv"
    for rows, error in (("BTCUSDT,1755763200000,abc,1\n", r"f\.csv:2: fundingRate 'abc' is not a number$"),
                        ("BTCUSDT,1755763200000,0.0001,x\n", r"f\.csv:2: markPrice 'x' is not a number$"),
                        ("BTCUSDT,soon,0.0001,1\n", r"f\.csv:2: fundingRateTimestamp 'soon' is not a time in ms$"),
                        ("BTCUSDT,1755763200000\n", r"f\.csv:2: no fundingRate \(the row has 2 fields\)$")):
        path.write_text(header + rows)
        with pytest.raises(DataError, match=error):
            load_funding(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(DataError, match=r"f\.csv: not a UTF-8 text file"):
        load_funding(path)


def test_parquet_rows_predicted_or_without_a_rate_are_left_out(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    at = [datetime(2026, 1, 1, h, tzinfo=UTC) for h in (0, 8, 16)] + [datetime(2026, 1, 2, tzinfo=UTC)]
    table = pa.table({"venue_symbol": ["XUSDT"] * 4,
                      "settlement_ts": pa.array(at, pa.timestamp("us", tz="UTC")),
                      "rate_raw": [0.0001, 0.0003, None, -0.00005],
                      "mark_price": [100.5, None, None, 101.25],
                      "interval_hours": [8.0, 8.0, 8.0, None],
                      "is_predicted": [False, True, False, False]})
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    assert [(r.symbol, r.ts_ms, r.rate, r.mark, r.interval_ms) for r in load_funding(path)] == [
        ("XUSDT", int(at[0].timestamp()) * 1000, D("0.0001"), D("100.5"), 8 * 3_600_000),
        ("XUSDT", int(at[3].timestamp()) * 1000, D("-0.00005"), D("101.25"), None)]  # no interval said
    # a file whose venue column names one venue is refused as the other's
    pq.write_table(table.append_column("venue", pa.array(["binance"] * 4)), path)
    assert len(load_funding(path, venue="binance")) == 2
    with pytest.raises(DataError, match=r"x\.parquet: holds binance's settlements, not bybit's$"):
        load_funding(path, venue="bybit")
    pq.write_table(table.append_column("venue", pa.array(["okx", "binance", "okx", "binance"])), path)
    with pytest.raises(DataError, match=r"x\.parquet: holds binance, okx's settlements, not bybit's$"):
        load_funding(path, venue="bybit")
    not_parquet = tmp_path / "bad.parquet"
    not_parquet.write_text("symbol,fundingRateTimestamp,fundingRate\n")
    with pytest.raises(DataError, match=r"bad\.parquet: "):
        load_funding(not_parquet)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as without the parquet extra
    with pytest.raises(DataError, match=r"x\.parquet: reading parquet needs pyarrow: pip install -e '\.\[parquet\]'$"):
        load_funding(path)
