"""The funding backtest on the inputs a real run meets: venues at their own funding intervals
(4 h, 1 h, changes) with no decision using anything stamped later, liquidations priced where
they happen, a venue's history that stops or skips, the account's capital and margin, and each
symbol's own lot size."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from services.backtest.data import load_funding
from services.backtest.fees import FeeSchedule
from services.backtest.funding import FundingRate
from services.backtest.funding_arb import EIGHT_HOURS_MS, HOUR_MS, FundingArbConfig, Gap, run, settlements
from services.backtest.instruments import load_instruments
from services.backtest.margin import RiskTier
from tests.conftest import SHARED

DATA = SHARED / "market-data"
BYBIT_CSV = DATA / "bybit/funding/bybit_linear_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"
BINANCE_CSV = DATA / "binance/funding/binance_usdm_funding_BTC_ETH_SOL_2025-08-21_2026-08-21.csv"
INSTRUMENTS = SHARED / "venue-samples/bybit/rest_instruments_info_linear_full_2026-08.json.gz"
FEES = {"a": FeeSchedule(D("0.0005"), D("0.0002")), "b": FeeSchedule(D("0.0005"), D("0.0002"))}
TIERS = [RiskTier(D(10_000_000), D("0.005"), D(100))]
T0 = 1_760_000_000_000 - 1_760_000_000_000 % EIGHT_HOURS_MS
H = HOUR_MS


def row(symbol: str, hour: float, rate: str, mark: str | None = None, interval_h: int | None = 8) -> FundingRate:
    return FundingRate(symbol, T0 + int(hour * H), D(rate), D(mark) if mark else None,
                       interval_h * H if interval_h else None)


def eight_hourly(symbol: str, rows: list[tuple[str, str, str]], start: int = 0) -> dict[str, list[FundingRate]]:
    """(rate at a, rate at b, mark at a) every 8 h from slot `start`."""
    return {"a": [row(symbol, 8 * (start + i), ra, m) for i, (ra, _, m) in enumerate(rows)],
            "b": [row(symbol, 8 * (start + i), rb) for i, (_, rb, _) in enumerate(rows)]}


def merged(*histories: dict[str, list[FundingRate]]) -> dict[str, list[FundingRate]]:
    return {v: [r for h in histories for r in h[v]] for v in ("a", "b")}


# funding at each venue's own interval, without look-ahead


def test_each_venue_pays_at_its_own_interval_compared_per_hour():
    # a settles every 4 h at 0.05 % (0.1 % per 8 h), b every 8 h at 0: short 100 X at a at hour 0
    # (fees 2 x 100 x 100 x 0.05 % = 10). The short receives 100 x 100 x 0.05 % = 5 at hours 4 and 8
    # (b's 0 at hour 8 moves nothing); at hour 12 a settles 0: nothing left between them: closed
    # (another 10 of fees). Funding 10, fees 20.
    rates = {"a": [row("XUSDT", h, r, "100", 4) for h, r in ((0, "0.0005"), (4, "0.0005"), (8, "0.0005"),
                                                            (12, "0"), (16, "0"))],
             "b": [row("XUSDT", h, "0") for h in (0, 8, 16)]}
    result = run(rates, FEES, TIERS)
    (trade,) = result.trades
    assert (trade.short_venue, trade.opened_ms, trade.closed_ms, trade.reason) == (
        "a", T0, T0 + 12 * H, "funding_converged")
    assert (trade.funding_usd, trade.fees_usd, trade.pnl_usd) == (D(10), D(20), D(-10))
    # per hour: 0.05 % over 4 h against 0.08 % over 8 h is 0.1 % against 0.08 % per 8 h: short a
    rates = {"a": [row("XUSDT", h, "0.0005", "100", 4) for h in (0, 4, 8)],
             "b": [row("XUSDT", h, "0.0008") for h in (0, 8)]}
    assert [t.short_venue for t in run(rates, FEES, TIERS, FundingArbConfig(hold_intervals=60)).trades] == ["a"]


def test_a_rate_without_a_known_interval_is_not_compared():
    # a CSV's first row says nothing about its interval: the decision waits for the second
    rates = {"a": [row("XUSDT", h, "0.001", "100", None) for h in (0, 8, 16)],
             "b": [row("XUSDT", h, "0", None, None) for h in (0, 8, 16)]}
    (trade,) = run(rates, FEES, TIERS).trades
    assert trade.opened_ms == T0 + 8 * H


def mixed_history(seed: int, days: int) -> dict[str, list[FundingRate]]:
    """Two symbols: XUSDT at 4 h on a and 8 h on b; YUSDT at 8 h on both, then 1 h on a for a day
    (an interval change), with rates that open and close trades and a wandering mark."""
    rng = random.Random(seed)
    out: dict[str, list[FundingRate]] = {"a": [], "b": []}
    mark = {"XUSDT": 100.0, "YUSDT": 50.0}
    for hour in range(0, days * 24):
        for symbol in ("XUSDT", "YUSDT"):
            mark[symbol] *= 1 + rng.uniform(-0.004, 0.004)
            one_hourly = symbol == "YUSDT" and days * 8 <= hour < days * 8 + 24
            interval = 4 if symbol == "XUSDT" else 1 if one_hourly else 8
            if hour % interval == 0:
                out["a"].append(row(symbol, hour, f"{rng.uniform(-0.0012, 0.0012):.6f}", f"{mark[symbol]:.4f}",
                                    interval))
            if hour % 8 == 0:
                out["b"].append(row(symbol, hour, f"{rng.uniform(-0.0004, 0.0004):.6f}"))
    return out


def truncated(rates: dict[str, list[FundingRate]], cut_ms: int) -> dict[str, list[FundingRate]]:
    """What was known at `cut_ms` (Binance stamps its settlements a few ms late)."""
    return {venue: [r for r in rows if r.ts_ms < cut_ms + 1000] for venue, rows in rates.items()}


def assert_nothing_before_a_cut_changes(rates, cuts, config: FundingArbConfig, fees=FEES) -> int:
    whole = run(rates, fees, TIERS, config)
    for cut in cuts:
        part = run(truncated(rates, cut), fees, TIERS, config)
        assert [d for d in part.decisions if d.ts_ms < cut] == [d for d in whole.decisions if d.ts_ms < cut], cut
        assert [t for t in part.trades if t.closed_ms < cut] == [t for t in whole.trades if t.closed_ms < cut]
        assert [e for e in part.equity if e[0] < cut] == [e for e in whole.equity if e[0] < cut]
    return len(whole.decisions)


def test_no_decision_before_a_cut_uses_anything_after_it_on_mixed_intervals():
    rates = mixed_history(seed=7, days=20)
    cuts = [T0 + k * EIGHT_HOURS_MS for k in range(3, 20 * 3, 2)]
    assert assert_nothing_before_a_cut_changes(rates, cuts, FundingArbConfig(hold_intervals=30)) >= 20


def test_no_decision_before_a_cut_uses_anything_after_it_on_the_real_year():
    bybit, binance = load_funding(BYBIT_CSV), load_funding(BINANCE_CSV)
    start = bybit[0].ts_ms
    rates = {"bybit": [r for r in bybit if r.ts_ms < start + 90 * 86_400_000],
             "binance": [r for r in binance if r.ts_ms < start + 90 * 86_400_000]}
    fees = {"bybit": FeeSchedule.tier("VIP0"), "binance": FeeSchedule(D("0.0005"), D("0.0002"))}
    cuts = [start + k * 5 * 86_400_000 for k in range(1, 18)]
    config = FundingArbConfig(entry_8h=D("0.00005"), exit_8h=D(0), hold_intervals=40)
    assert assert_nothing_before_a_cut_changes(rates, cuts, config, fees) >= 10


def test_a_later_rate_does_not_move_an_earlier_decision():
    # a at 4 h: its 12:00 rate belongs to 12:00, not to the 8:00 slot. Changing it leaves the
    # trade opened at 8:00 as it was.
    def history(rate_at_12: str):
        return {"a": [row("XUSDT", h, r, "100", 4) for h, r in ((0, "0"), (4, "0"), (8, "0.0006"), (12, rate_at_12),
                                                                (16, "0.0006"))],
                "b": [row("XUSDT", h, "0") for h in (0, 8, 16)]}
    opened = [[d for d in run(history(r), FEES, TIERS).decisions if d.action == "open"] for r in ("0.0006", "-0.0006")]
    assert opened[0] == opened[1] != []
    assert opened[0][0].ts_ms == T0 + 8 * H


@pytest.mark.parametrize("venue", ["bybit", "binance"])
def test_every_row_of_the_parquet_histories_is_its_own_settlement(venue):
    pytest.importorskip("pyarrow")
    rows = load_funding(DATA / f"{venue}/funding/zushen_venue={venue}_data.parquet")
    events, _ = settlements({venue: rows, "other": []})
    assert sum(len(s.rows) for s in events) == len(rows)  # none rounded onto another's slot
    # ORDI settles every 4 h: the 8:00 settlement holds 8:00's rate, and 12:00 is one of its own
    ordi = {s.ts_ms: s.rows[venue] for s in events if s.symbol == "ORDIUSDT"}
    eight = 1_776_326_400_000  # 2026-04-16 08:00 UTC
    assert ordi[eight].ts_ms // 1000 == eight // 1000 and eight + 4 * H in ordi
    assert {s.interval_ms[venue] for s in events if s.symbol == "ORDIUSDT"} >= {4 * H}


# liquidation


def test_a_liquidation_seen_only_at_a_settlement_is_priced_at_the_liquidation():
    # the long at b (liquidation 80.5 at x5) meets a mark of 60: the short is closed at 80.5, so the
    # loss is the long's margin (2,000) less the short's 1,950 plus fees: never a profit
    result = run(eight_hourly("XUSDT", [("0.001", "0", "100"), ("0.001", "0", "60"), ("0", "0", "60")]), FEES, TIERS)
    (trade,) = result.trades
    assert trade.liquidated and trade.price_pnl_usd == D(-50) and trade.pnl_usd < 0
    assert trade.closest_to_liquidation == (D(60) - D("80.5")) / D(60)  # seen a third past it: the gap risk


def test_a_bar_that_opens_past_the_liquidation_closes_both_legs_at_its_open():
    from services.backtest.data import Bar

    # the long's liquidation is 80.5; the second bar opens at 78 (the price gapped through it): the
    # long loses its margin, the short is closed at 78 (+2,200), fee 100 x 78 x 0.05 % = 3.9
    bars = {"XUSDT": [Bar(T0 + i * 60_000, D(o), D(o), D(lo), D(lo), D(1)) for i, (o, lo) in
                      enumerate([("100", "90"), ("78", "75")])]}
    result = run(eight_hourly("XUSDT", [("0.001", "0", "100"), ("0", "0", "100")]), FEES, TIERS, bars=bars)
    (trade,) = result.trades
    assert (trade.closed_ms, trade.price_pnl_usd, trade.fees_usd) == (T0 + 2 * 60_000, D(200), D("13.9"))
    assert trade.closest_to_liquidation == (D(75) - D("80.5")) / D(75)


def test_no_reopening_at_the_settlement_where_a_bar_has_just_liquidated_the_symbol():
    from services.backtest.data import Bar

    # the bar closing at hour 8 takes the long past 80.5; the settlement at hour 8 still shows the
    # difference, but the symbol was closed that very moment
    bars = {"XUSDT": [Bar(T0 + 8 * H - 60_000, D(100), D(100), D(70), D(75), D(1))]}
    result = run(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), FEES, TIERS, bars=bars)
    assert [(d.ts_ms - T0, d.action) for d in result.decisions] == [(0, "open"), (8 * H, "close")]


# gaps and the end of the history


def test_no_entry_at_the_last_settlement_both_venues_share():
    # the difference first appears at the last common settlement: opening there would only pay fees
    result = run(eight_hourly("XUSDT", [("0", "0", "100"), ("0.001", "0", "100")]), FEES, TIERS)
    assert (result.trades, result.decisions) == ([], [])


def test_a_venue_whose_history_stops_closes_the_position_at_the_last_real_mark():
    # a's history of X stops after hour 16 while b's goes on: at hour 24 a's settlement is missing;
    # the position is closed there at a's last mark (110), before b's funding, and never reopened
    rates = eight_hourly("XUSDT", [("0.001", "0", "100"), ("0.001", "0", "105"), ("0.001", "0", "110")])
    rates["b"] += [row("XUSDT", 8 * k, "-0.001") for k in range(3, 30)]
    result = run(rates, FEES, TIERS)
    (trade,) = result.trades
    assert (trade.closed_ms, trade.reason) == (T0 + 24 * H, "data_gap")
    assert trade.funding_usd == 100 * (D(105) + D(110)) * D("0.001")  # a's two settlements, none of b's later
    assert trade.fees_usd == 100 * (2 * D(100) + 2 * D(110)) * D("0.0005")
    assert result.gaps == [Gap("XUSDT", "a", T0 + 16 * H, None)]


def test_a_symbol_whose_histories_both_stop_is_closed_when_another_symbol_shows_time_has_passed():
    # Y's histories end at hour 16 at both venues (mark 110) while X's go on with nothing to trade:
    # at X's hour 24 Y's next settlement may still come; at hour 32 it is missing: closed there at
    # 110, not held to the end of the history with no funding
    y = eight_hourly("YUSDT", [("0.001", "0", "100"), ("0.001", "0", "105"), ("0.001", "0", "110")])
    x = eight_hourly("XUSDT", [("0", "0", "50")] * 7)
    result = run(merged(y, x), FEES, TIERS)
    (trade,) = result.trades
    assert (trade.symbol, trade.closed_ms, trade.reason) == ("YUSDT", T0 + 32 * H, "data_gap")
    assert trade.fees_usd == 100 * (2 * D(100) + 2 * D(110)) * D("0.0005")
    assert result.gaps == []  # neither venue's history of Y stops while the other's goes on


def test_a_settlement_missing_in_the_middle_closes_at_the_last_real_mark_and_is_reported():
    # both venues skip hour 24 (and so does the mark): at hour 32 the position is closed at hour
    # 16's mark, and a new one may open at the next settlement
    rows = [("0.001", "0", "100"), ("0.001", "0", "101"), ("0.001", "0", "102"), ("0.001", "0", "140"),
            ("0.001", "0", "141"), ("0.001", "0", "141"), ("0", "0", "141"), ("0", "0", "141")]
    rates = eight_hourly("XUSDT", rows)
    rates = {v: [r for r in rs if r.ts_ms != T0 + 24 * H] for v, rs in rates.items()}
    result = run(rates, FEES, TIERS)
    first, second = result.trades
    assert (first.closed_ms, first.reason, first.price_pnl_usd) == (T0 + 32 * H, "data_gap", 0)
    assert first.fees_usd == 100 * (2 * D(100) + 2 * D(102)) * D("0.0005")  # closed at 102, not 140
    assert second.opened_ms == T0 + 40 * H
    assert result.flows[-1][1:] == (first.funding_usd + second.funding_usd, first.fees_usd + second.fees_usd)
    assert set(result.gaps) == {Gap("XUSDT", v, T0 + 16 * H, T0 + 32 * H) for v in ("a", "b")}


# the account


def test_an_entry_whose_margin_and_fees_are_exactly_the_equity_is_taken():
    # 2 x 10,000 / 5 = 4,000 of margin and 2 x 10,000 x 0.05 % = 10 of fees on 4,010 of capital
    config = FundingArbConfig(capital=D(4_010), max_account_leverage=D(10))
    assert len(run(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), FEES, TIERS, config).trades) == 1
    assert run(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), FEES, TIERS,
               FundingArbConfig(capital=D("4009.99"), max_account_leverage=D(10))).skipped["no free margin"] == 2


def test_entries_wait_for_free_margin():
    # 5,000 of capital: X takes 2 x 2,000 of margin at x5 and 10 of fees; Y's entry at the same
    # time finds 990 free
    two = merged(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), eight_hourly("YUSDT", [("0.001", "0", "100")] * 3))
    result = run(two, FEES, TIERS, FundingArbConfig(capital=D(5_000), max_account_leverage=D(10)))
    assert {t.symbol for t in result.trades} == {"XUSDT"}
    assert result.skipped["no free margin"] == 2  # at hours 0 and 8
    enough = FundingArbConfig(capital=D(8_100), max_account_leverage=D(10))  # 8,090 after X's fees
    assert {t.symbol for t in run(two, FEES, TIERS, enough).trades} == {"XUSDT", "YUSDT"}


def test_entries_keep_the_book_within_the_account_leverage():
    # 20,000 at most x1.5: one trade of 2 x 10,000 fits (20,000 <= 30,000), a second does not
    # (40,000 > 1.5 x 19,990)
    two = merged(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), eight_hourly("YUSDT", [("0.001", "0", "100")] * 3))
    result = run(two, FEES, TIERS, FundingArbConfig(max_account_leverage=D("1.5")))
    assert len(result.trades) == 1 and result.skipped["account leverage"] == 2
    assert len(run(two, FEES, TIERS, FundingArbConfig(max_account_leverage=D(3))).trades) == 2
    # a book of exactly 1 x equity is within it: 2 x 10,000 on 20,000
    assert len(run(two, FEES, TIERS, FundingArbConfig(max_account_leverage=D(1))).trades) == 1


def test_the_equity_stop_closes_everything_and_ends_trading():
    # capital 1,000, stop at half: the short at a pays 100 x 100 x 0.49 % = 49 a settlement once
    # a's rate turns (the exit is set never to trigger); entry fees 10: equity 990, 941, ..., and
    # exactly 500 at hour 80, the stop: closed there, and the later opportunity is not taken
    rows = [("0.001", "0", "100")] + [("-0.0049", "0", "100")] * 12 + [("0.001", "0", "100")] * 3
    config = FundingArbConfig(capital=D(1_000), leverage=D(50), max_account_leverage=D(100), exit_8h=D(-1))
    result = run(eight_hourly("XUSDT", rows), FEES, TIERS, config)
    (trade,) = result.trades
    assert (trade.reason, trade.closed_ms, result.stopped_ms) == ("equity_stop", T0 + 80 * H, T0 + 80 * H)
    assert trade.funding_usd == -10 * D(49) and result.equity[-1][1] == -D(10) - 10 * D(49) - D(10)


def test_equity_below_the_open_legs_maintenance_margin_closes_them():
    # 300 of capital, stop at 0: legs of 10,000 at x100 hold 50 - 10 (the tier's deduction) = 40 of
    # maintenance margin each; after entry fees (10) the short pays 100 x 100 x 0.21 % = 21 a
    # settlement: 269, ..., exactly 80 at hour 80 (not below), 59 at hour 88: closed
    tiers = [RiskTier(D(10_000_000), D("0.005"), D(100), D(10))]
    rows = [("0.001", "0", "100")] + [("-0.0021", "0", "100")] * 14
    config = FundingArbConfig(capital=D(300), leverage=D(100), max_account_leverage=D(100), exit_8h=D(-1),
                              stop_equity=D(0))
    result = run(eight_hourly("XUSDT", rows), FEES, tiers, config)
    (trade,) = result.trades
    assert (trade.reason, trade.closed_ms) == ("margin_call", T0 + 88 * H)
    assert result.stopped_ms is None


# each symbol's own lot


def test_each_symbol_is_sized_on_its_own_lot_at_both_venues():
    lots = load_instruments(INSTRUMENTS)
    history = merged(*(eight_hourly(s, [("0.001", "0", m)] * 3) for s, m in (("SOLUSDT", "187.65"),
                                                                             ("ETHUSDT", "4309.13"),
                                                                             ("NOTAUSDT", "1"))))
    history = {"a": history["a"], "b": history["b"]}
    config = FundingArbConfig(max_account_leverage=D(10), capital=D(100_000))
    result = run(history, FEES, TIERS, config, lots={"a": lots, "b": lots})
    qty = {t.symbol: t.qty for t in result.trades}
    assert qty == {"SOLUSDT": D("53.2"), "ETHUSDT": D("2.32")}  # 10,000 / 187.65 = 53.29...; / 4,309.13 = 2.3206...
    assert result.skipped["no instrument"] == 2  # NOTAUSDT at hours 0 and 8
    # a venue without instruments at all has none of them either
    assert run(history, FEES, TIERS, config, lots={"a": lots}).skipped["no instrument"] == 6
    # 10 USD of SOL is 0.0 SOL in tenths: below the minimum, counted
    small = FundingArbConfig(notional_usd=D(10), capital=D(100_000))
    assert run(eight_hourly("SOLUSDT", [("0.001", "0", "187.65")] * 3), FEES, TIERS, small,
               lots={"a": lots, "b": lots}).skipped == {"below a venue's minimum": 2}


def test_without_instruments_one_step_is_the_only_rule():
    # 50 cents at 100 is 0.005 X: five steps of 0.001, no venue minimum assumed
    config = FundingArbConfig(notional_usd=D("0.5"))
    (trade,) = run(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), FEES, TIERS, config).trades
    assert trade.qty == D("0.005")
    # 10 cents buys no step of 0.01
    assert run(eight_hourly("XUSDT", [("0.001", "0", "100")] * 3), FEES, TIERS,
               FundingArbConfig(notional_usd=D("0.1"), qty_step=D("0.01"))).skipped == {"below a venue's minimum": 2}


# what the run keeps besides the trades


def test_the_decisions_and_the_running_funding_and_fees_by_hand():
    # short b (it pays more) at hour 0, 100 X at 100: fees 10. Hour 8: the rates turn: the long at
    # a pays 100 x 100 x 0.1 % = 10, and a now pays more than b: closed (fees 10 more)
    result = run(eight_hourly("XUSDT", [("0", "0.001", "100"), ("0.001", "0", "100"), ("0.001", "0", "100")]),
                 FEES, TIERS)
    assert result.decisions == [(T0, "XUSDT", "open", "long a short b 100.000 at 100"),
                                (T0 + 8 * H, "XUSDT", "close", "funding_converged at 100")]
    assert result.flows == [(T0, 0, 10), (T0 + 8 * H, -10, 20), (T0 + 16 * H, -10, 20)]
    (trade,) = result.trades
    assert (trade.short_venue, trade.funding_usd, trade.fees_usd) == ("b", -10, 20)


def test_two_venues_exactly():
    with pytest.raises(ValueError, match=r"^a cross-venue backtest needs two venues, not 3$"):
        run({"a": [], "b": [], "c": []}, FEES, TIERS)


def test_stamps_within_half_a_minute_are_one_settlement_and_a_late_one_is_a_gap_only_past_a_minute():
    rows = {"a": [row("XUSDT", h, "0") for h in (0, 8, 16)],
            "b": [FundingRate("XUSDT", T0 + 29_999, D(0), None, 8 * H),
                  FundingRate("XUSDT", T0 + 8 * H + 60_000, D(0), None, 8 * H),
                  FundingRate("XUSDT", T0 + 16 * H + 180_000, D(0))]}
    events, gaps = settlements(rows)
    assert [(e.ts_ms - T0, sorted(e.rows)) for e in events][:1] == [(0, ["a", "b"])]
    # 8 h + 1 min after the last is not late; 8 h + 2 min after that one is
    assert gaps == [Gap("XUSDT", "b", T0 + 8 * H + 60_000, T0 + 16 * H + 180_000)]


def test_two_settlements_of_a_symbol_less_than_an_hour_apart_are_not_a_funding_history():
    rows = {"a": [row("XUSDT", 0, "0"), row("XUSDT", 0.5, "0")], "b": []}
    with pytest.raises(ValueError, match=r"^a's history has settlements of XUSDT 30 min apart at \d+ ms: not a "
                                         r"funding history \(the shortest interval is 1 h\)$"):
        run(rows, FEES, TIERS)


def test_a_late_row_without_a_stated_interval_keeps_the_one_before():
    # CSV rows (no interval): b skips hour 24. At hour 32 the difference appears: b's row there
    # is late, its interval the 8 h before, so it is compared and the trade opens at once
    rows = [("0", "0"), ("0", "0"), ("0", "0"), None, ("0.001", "0"), ("0.001", "0"), ("0.001", "0")]
    rates = {"a": [row("XUSDT", 8 * i, r[0], "100", None) for i, r in enumerate(rows) if r],
             "b": [row("XUSDT", 8 * i, r[1], None, None) for i, r in enumerate(rows) if r]}
    (trade,) = run(rates, FEES, TIERS).trades
    assert trade.opened_ms == T0 + 32 * H


def test_bars_closing_at_the_first_and_the_last_settlement_are_used_and_later_ones_not():
    from services.backtest.data import Bar

    bars = {"XUSDT": [Bar(T0 + m, D(100), D(100), D(100), D(100), D(1)) for m in
                      (-120_000, -60_000, 16 * H - 60_000, 16 * H)]}  # closing at -1 min, 0, 16 h, 16 h + 1 min
    result = run(eight_hourly("XUSDT", [("0", "0", "100")] * 3), FEES, TIERS, bars=bars)
    assert result.bars == 2

