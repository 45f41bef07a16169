"""The scanner's filters, direction choice, ranking and rejection reasons; the signal gate."""

from __future__ import annotations

import pytest

from services.strategy.scanner import ScanConfig, scan, scan_synthetic
from services.strategy.signals import SignalGate
from services.strategy.state import MarketState
from shared.events import BookUpdate, Ticker

T0 = 1_800_000_000_000
FRESH = {"binance": False, "bybit": False, "okx": False}


def quote(state: MarketState, venue: str, symbol: str, bid: float, ask: float, funding: float = 0.0,
          size: float = 10.0, lean: int = 0, ts: int = T0) -> None:
    """A one-level book of `size` a side; `lean` 1 triples the bids (buyers lean on it), -1 the asks."""
    bids, asks = size * (3 if lean > 0 else 1), size * (3 if lean < 0 else 1)
    state.apply(BookUpdate(venue=venue, symbol=symbol, kind="snapshot", update_id=1, exchange_ts_ms=ts,
                           receive_ts_us=0, bids=((bid, bids),), asks=((ask, asks),)))
    state.apply(Ticker(venue=venue, symbol=symbol, exchange_ts_ms=ts, receive_ts_us=0, funding_rate=funding,
                       funding_interval_min=480))


def test_a_wide_spread_with_funding_in_favour_is_found_the_right_way_round():
    state = MarketState()
    # bybit is 40 bps dearer and pays shorts 0.1 % per 8 h more: long binance, short bybit
    quote(state, "binance", "BTCUSDT", 99.99, 100.0, funding=0.0, size=1000.0, lean=1)
    quote(state, "bybit", "BTCUSDT", 100.40, 100.41, funding=0.001, size=1000.0, lean=-1)
    [o] = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).opportunities
    assert (o.long_venue, o.short_venue, o.long_price, o.short_price) == ("binance", "bybit", 100.0, 100.4)
    assert o.spread_bps == pytest.approx(0.4 / 100.2 * 10_000)
    assert o.fees_bps == 2 * (4.0 + 5.5) and o.funding_delta_8h == pytest.approx(0.001)
    assert o.slippage_bps == pytest.approx(2 * ((2 + 1000 / 100_000 * 3) + (2 + 1000 / 100_400 * 3)))
    assert o.projected_profit_usd == pytest.approx(1000 * (o.spread_bps - 19 + 10) / 10_000)
    assert o.projected_profit_after_slippage_usd == pytest.approx(o.projected_profit_usd - 1000 * o.slippage_bps / 1e4)
    # funding 1, OBI (0.5 + 0.5 + 2) / 4 = 0.75, OI, VWAP, ATR unknown 0.5, no liquidations 1
    assert o.confidence == round(100 * (9 + 8 * 0.75 + 7 * 0.5 + 6 * 0.5 + 5 * 0.5 + 5) / 40)  # 73


@pytest.mark.parametrize(("setup", "reason"), [
    (dict(size=5.0), "hard_depth"),  # $500 a side < 2 x $1,000
    (dict(funding=0.00005), "hard_funding"),
    (dict(stale=True), "hard_latency"),
    (dict(short_bid=100.05), "spread_below_costs"),  # 5 bps < 19 bps of fees
    (dict(funding=0.0002), "confidence"),
    (dict(size=30.0, short_bid=100.195), "unprofitable"),  # 19.5 bps - 19 fees + 10 funding - 12 slippage
    (dict(size=400.0), "thin_book"),  # $40,000 within 2 bps < $50,000
])
def test_each_filter_rejects_with_its_reason(setup, reason):
    state = MarketState()
    quote(state, "binance", "BTCUSDT", 99.99, 100.0, size=setup.get("size", 1000.0), lean=1)
    quote(state, "bybit", "BTCUSDT", setup.get("short_bid", 100.40), 100.41, funding=setup.get("funding", 0.001),
          size=setup.get("size", 1000.0), lean=-1)
    result = scan(state, {**FRESH, "bybit": setup.get("stale", False)}, ScanConfig(position_usd=1000.0), T0)
    assert result.opportunities == [] and result.rejections == {reason: 1} and result.candidates == 1


def test_ranking_by_confidence_then_profit_and_the_top_n():
    state = MarketState()
    for i, symbol in enumerate(["AUSDT", "BUSDT", "CUSDT", "DUSDT"]):
        quote(state, "binance", symbol, 99.99, 100.0, size=1000.0, lean=1 if symbol != "DUSDT" else 0)
        quote(state, "bybit", symbol, 100.40, 100.41, funding=0.001 + i * 0.0002, size=1000.0, lean=-1)
    result = scan(state, FRESH, ScanConfig(position_usd=1000.0, top_n=3), T0)
    # D's long book does not lean: lower confidence, last despite the most funding; A..C tie, by profit
    assert [o.symbol for o in result.opportunities] == ["CUSDT", "BUSDT", "AUSDT"]
    full = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).opportunities
    assert full[-1].symbol == "DUSDT" and full[-1].confidence < full[0].confidence


def test_synthetic_scan_uses_one_venues_mid():
    state = MarketState()
    quote(state, "bybit", "BTCUSDT", 64999.0, 65001.0)
    result = scan_synthetic(state, "bybit", ["BTCUSDT", "ETHUSDT"], 50.0, 0.01, 1000.0, T0)
    [o] = result.opportunities
    assert (o.long_venue, o.short_venue, o.confidence) == ("bybit", "bybit_synthetic", 80)
    assert result.rejections == {"no_quote": 1}  # no ETHUSDT quote yet
    seed = scan_synthetic(state, "bybit", ["BTCUSDT"], 15.0, 0.0001, 1000.0, T0)
    assert seed.opportunities == [] and seed.rejections == {"synthetic_funding": 1}


def good_opportunity():
    state = MarketState()
    quote(state, "binance", "BTCUSDT", 99.99, 100.0, size=1000.0, lean=1)
    quote(state, "bybit", "BTCUSDT", 100.40, 100.41, funding=0.001, size=1000.0, lean=-1)
    [o] = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).opportunities
    return o


def test_the_gate_holds_pending_pairs_active_trades_and_cools_a_symbol_down():
    o = good_opportunity()
    gate = SignalGate(cooldown_ms=60_000, pending_ttl_ms=30_000)
    [signal], _ = gate.decide([o], T0)
    assert signal.id == f"BTCUSDT-binance-bybit-{T0}" and signal.opportunity is o
    assert gate.decide([o], T0 + 1000) == ([], {"pending": 1, "active": 0, "cooldown": 0})
    gate.trade_opened(o.pair)
    assert gate.decide([o], T0 + 40_000)[1]["active"] == 1
    gate.trade_closed(o.pair)
    assert gate.decide([o], T0 + 50_000)[1]["cooldown"] == 1  # 50 s after the last signal
    assert len(gate.decide([o], T0 + 60_000)[0]) == 1


def test_a_lost_signal_stops_blocking_its_pair_after_the_ttl():
    o = good_opportunity()
    gate = SignalGate(cooldown_ms=0, pending_ttl_ms=30_000)
    assert len(gate.decide([o], T0)[0]) == 1
    assert gate.decide([o], T0 + 29_999)[1]["pending"] == 1
    assert len(gate.decide([o], T0 + 30_000)[0]) == 1


def test_a_spread_that_only_pays_the_fees_is_rejected_and_the_least_spread_is_a_setting():
    import math

    state = MarketState()
    quote(state, "binance", "BTCUSDT", 99.99, 100.0, size=1000.0, lean=1)
    quote(state, "bybit", "BTCUSDT", 100.40, 100.41, funding=0.001, size=1000.0, lean=-1)
    [o] = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).opportunities
    long, short = state.get("binance", "BTCUSDT"), state.get("bybit", "BTCUSDT")

    def with_fees(fees_bps: float, min_spread_bps: float = 5.0):
        long.fee_bps = short.fee_bps = fees_bps / 4  # round trip: 2 x (long + short)
        return scan(state, FRESH, ScanConfig(position_usd=1000.0, min_spread_bps=min_spread_bps), T0)

    # the funding is in favour (no cost): the spread must be above the fees, not equal to them
    assert with_fees(o.spread_bps).rejections == {"spread_below_costs": 1}
    assert len(with_fees(math.nextafter(o.spread_bps, 0)).opportunities) == 1
    # MINIMUM_SPREAD_BPS: the spread (39.9 bps) must be at least it, whatever the fees
    assert with_fees(0.0, min_spread_bps=o.spread_bps).opportunities
    assert with_fees(0.0, min_spread_bps=math.nextafter(o.spread_bps, 99)).rejections == {"spread_below_costs": 1}


def test_the_top_20_are_kept_and_logged_one_line_each_best_first():
    from services.strategy.scanner import top_text

    state = MarketState()
    symbols = [f"S{i:02d}USDT" for i in range(21)]
    for i, symbol in enumerate(symbols):  # each symbol's funding a little more: S20 ranks first
        quote(state, "binance", symbol, 99.99, 100.0, size=1000.0, lean=1)
        quote(state, "bybit", symbol, 100.40, 100.41, funding=0.001 + i * 0.00001, size=1000.0, lean=-1)
    result = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0)
    assert result.candidates == 21 and [o.symbol for o in result.opportunities] == symbols[:0:-1]  # S00 is 21st
    lines = top_text(result).splitlines()
    assert lines[0] == "top 20 of 21 pairs:" and len(lines) == 21
    assert lines[1].startswith("  1. S20USDT long binance @ 100, short bybit @ 100.4: spread 39.9 bps, funding "
                               "+0.1200 %/8h, confidence ")
    assert lines[20].startswith(" 20. S01USDT ") and lines[1].endswith(" after slippage")
    assert top_text(scan(MarketState(), FRESH, ScanConfig(), T0)) == "top 0 of 0 pairs: none"
