"""The scanner's filters, direction choice, ranking and rejection reasons; the signal gate."""

from __future__ import annotations

import dataclasses

import pytest

from services.strategy.scanner import ScanConfig, ScanResult, merge_top, scan, scan_synthetic
from services.strategy.signals import SignalGate
from services.strategy.state import MarketState, VenueMarket
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
    assert o.confidence == round(100 * (9 + 8 * 0.75 + 7 * 0.5 + 6 * 0.5 + 5 * 0.5 + 5) / 40)  # 72.5: 72


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


def open_interest(state: MarketState, venue: str, symbol: str, before: float, now: float) -> None:
    """Open interest a minute ago and now: the 24 h average is their mean."""
    for ts, value in ((T0 - 60_000, before), (T0, now)):
        state.apply(Ticker(venue=venue, symbol=symbol, exchange_ts_ms=ts, receive_ts_us=0, open_interest=value))


def test_the_opportunity_carries_its_depths_scores_and_time():
    o = good_opportunity()
    # within 10 bps: binance asks 1,000 x 100.0, bybit bids 1,000 x 100.4
    assert (o.depth_long_usd, o.depth_short_usd, o.detected_ms) == (100_000.0, pytest.approx(100_400.0), T0)
    # funding 0.001 / 0.001 = 1; OBI long (3 - 1) / 4 = 0.5, short (1 - 3) / 4 = -0.5: (0.5 + 0.5 + 2) / 4
    assert o.scores == {"funding": 1.0, "obi": pytest.approx(0.75), "oi": 0.5, "vwap": 0.5, "volatility": 0.5,
                        "liquidation": 1.0}
    assert o.pair == ("BTCUSDT", "binance", "bybit")


def test_the_dashboard_scorer_reads_both_books_open_interest_and_the_next_funding():
    state = MarketState()
    quote(state, "binance", "BTCUSDT", 99.99, 100.0, size=1000.0, lean=1)
    quote(state, "bybit", "BTCUSDT", 100.40, 100.41, funding=0.001, size=1000.0, lean=-1)
    dashboard = ScanConfig(position_usd=1000.0, scorer="dashboard")
    # spread 0.4 / 100.2 = 39.92 bps x 0.5 + 0.001 / 0.01 x 100 x 0.3 = 42.92 -> 42; both books lean our way +20
    assert scan(state, FRESH, dashboard, T0).rejections == {"confidence": 1}  # 62 < 70
    open_interest(state, "binance", "BTCUSDT", 100.0, 80.0)  # r = 80 / 90 = 0.889
    open_interest(state, "bybit", "BTCUSDT", 50.0, 40.0)  # r = 40 / 45 = 0.889: mean < 0.9, +15
    state.apply(Ticker(venue="bybit", symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0,
                       next_funding_ts_ms=T0 + 300_000))  # 5 minutes to the payout: +15 (not under 5)
    state.apply(Ticker(venue="binance", symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0,
                       next_funding_ts_ms=T0 + 3_600_000))  # the nearer one counts
    [o] = scan(state, FRESH, dashboard, T0).opportunities
    assert o.confidence == 42 + 20 + 15 + 15
    assert scan(state, FRESH, dashboard, T0 + 1).opportunities[0].confidence == 100  # 4.99998 min: 107, capped
    # the confluence scorer on the same market: OI 1 now (r <= 0.9): 73 + 7 x 0.5 x 100 / 40 = 81.75 -> 82
    assert scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).opportunities[0].confidence == round(
        100 * (9 + 8 * 0.75 + 7 + 6 * 0.5 + 5 * 0.5 + 5) / 40)


def test_the_liquid_book_check_reads_the_side_each_leg_takes():
    # $40,000 within 2 bps on the side a leg takes is thin, whatever rests on the other side
    def rejected(long_asks: float, short_bids: float) -> ScanResult:
        state = MarketState()
        for venue, bid, ask, bids, asks in (("binance", 99.99, 100.0, 1200.0, long_asks),
                                            ("bybit", 100.40, 100.41, short_bids, 1200.0)):
            state.apply(BookUpdate(venue=venue, symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                                   receive_ts_us=0, bids=((bid, bids),), asks=((ask, asks),)))
            state.apply(Ticker(venue=venue, symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0,
                               funding_rate=0.001 if venue == "bybit" else 0.0, funding_interval_min=480))
        open_interest(state, "binance", "BTCUSDT", 100.0, 80.0)  # OI leaving: confidence above 70
        open_interest(state, "bybit", "BTCUSDT", 100.0, 80.0)
        return scan(state, FRESH, ScanConfig(position_usd=1000.0), T0)

    assert len(rejected(long_asks=1200.0, short_bids=1200.0).opportunities) == 1
    assert rejected(long_asks=400.0, short_bids=1200.0).rejections == {"thin_book": 1}  # 400 x 100 = $40,000
    assert rejected(long_asks=1200.0, short_bids=400.0).rejections == {"thin_book": 1}  # 400 x 100.4 = $40,160
    assert len(rejected(long_asks=500.0, short_bids=498.1).opportunities) == 1  # $50,000 and $50,009 are enough


def test_the_hard_depth_window_is_a_setting():
    # binance's asks: $20 at the touch, $100,050 five... 15 bps above it: inside 20 bps, outside 10
    state = MarketState()
    state.apply(BookUpdate(venue="binance", symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                           receive_ts_us=0, bids=((99.99, 3000.0),), asks=((100.0, 0.2), (100.15, 1000.0))))
    quote(state, "bybit", "BTCUSDT", 100.40, 100.41, funding=0.001, size=1000.0, lean=-1)
    assert scan(state, FRESH, ScanConfig(position_usd=1000.0), T0).rejections == {"hard_depth": 1}  # $20 < $2,000
    assert scan(state, FRESH, ScanConfig(position_usd=1000.0, depth_bps=20.0), T0).rejections != {"hard_depth": 1}


def test_a_venue_without_a_quote_and_rejections_counted_per_symbol():
    state = MarketState()
    for symbol in ("AUSDT", "BUSDT"):
        quote(state, "bybit", symbol, 100.40, 100.41, funding=0.001, size=1000.0)
        state.apply(Ticker(venue="binance", symbol=symbol, exchange_ts_ms=T0, receive_ts_us=0, funding_rate=0.0,
                           funding_interval_min=480))  # funding known, no top of book yet
    result = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0)
    assert (result.rejections, result.candidates) == ({"no_quote": 2}, 2)
    only = scan(state, FRESH, ScanConfig(position_usd=1000.0), T0, symbols=["BUSDT", "CUSDT"])  # C is unknown
    assert (only.rejections, only.candidates) == ({"no_quote": 1}, 1)


def pair_market(binance: tuple[float, float, float], bybit: tuple[float, float, float],
                sizes: tuple[float, float] = (1000.0, 1000.0)) -> MarketState:
    """binance and bybit quoting BTCUSDT: (bid, ask, funding per 8 h) each; (binance asks, bybit asks) sizes."""
    state = MarketState()
    for venue, (bid, ask, funding), asks in (("binance", binance, sizes[0]), ("bybit", bybit, sizes[1])):
        state.apply(BookUpdate(venue=venue, symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                               receive_ts_us=0, bids=((bid, 1000.0),), asks=((ask, asks),)))
        state.apply(Ticker(venue=venue, symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0, funding_rate=funding,
                           funding_interval_min=480))
    return state


def test_the_direction_is_the_one_worth_more_in_spread_plus_funding():
    # long binance, short bybit: spread (100.05 - 100) / 100.025 = +5 bps, funding 0.0005 - 0.00125 = -7.5 bps:
    # -2.5; long bybit, short binance: (99.99 - 100.06) / 100.025 = -7 bps, funding +7.5: +0.5 (the better)
    funding_wins = pair_market((99.99, 100.0, 0.00125), (100.05, 100.06, 0.0005))
    # long bybit has a negative spread: it fails on the spread; the other way would fail on funding
    assert scan(funding_wins, FRESH, ScanConfig(), T0).rejections == {"spread_below_costs": 1}
    # long binance, short bybit: +20 bps, funding -10 bps: +10; long bybit: -22 bps, +10: -12
    spread_wins = pair_market((99.99, 100.0, 0.001), (100.2, 100.21, 0.0))
    assert scan(spread_wins, FRESH, ScanConfig(), T0).rejections == {"hard_funding": 1}
    # binance dearer and paying shorts: long bybit, short binance (binance is first by name) passes the hard
    # constraints and the spread; balanced books score 0.5: 9 + 4 + 3.5 + 3 + 2.5 + 5 = 27 / 40 = 68 < 70
    dearer_first = pair_market((100.40, 100.41, 0.001), (99.99, 100.0, 0.0))
    assert scan(dearer_first, FRESH, ScanConfig(), T0).rejections == {"confidence": 1}


def test_a_tie_between_directions_keeps_the_first_venue_by_name_long():
    # the same quotes and funding on both: both ways are worth the same; long binance, whose asks are thin
    tie = pair_market((100.0, 100.1, 0.0), (100.0, 100.1, 0.0), sizes=(1.0, 1000.0))
    assert scan(tie, FRESH, ScanConfig(), T0).rejections == {"hard_depth": 1}  # long bybit would fail on funding


def test_spread_covers_fees_at_its_edges():
    from services.strategy.scanner import spread_covers_fees

    def legs(long_venue: str, ask: float, short_venue: str, bid: float):
        state = MarketState()
        quote(state, long_venue, "X", ask - 1.0, ask)
        quote(state, short_venue, "X", bid, bid + 1.0)
        return state.get(long_venue, "X"), state.get(short_venue, "X")

    # 999 -> 1001: (1001 - 999) / 1000 = exactly 20 bps, above the 19 bps of binance (4) + bybit (5.5) fees x 2
    long, short = legs("binance", 999.0, "bybit", 1001.0)
    assert spread_covers_fees(long, short, 20.0) and not spread_covers_fees(long, short, 20.0005)
    assert spread_covers_fees(long, short, 5.0) and not spread_covers_fees(short, long, 0.0)  # the wrong way round
    # 9991 -> 10009: exactly 18 bps, binance (4) + okx (5) x 2 = 18: enough; 10008: 17 bps is not
    assert spread_covers_fees(*legs("binance", 9991.0, "okx", 10009.0), 5.0)
    assert not spread_covers_fees(*legs("binance", 9991.0, "okx", 10008.0), 5.0)
    assert not spread_covers_fees(*legs("okx", 9991.0, "bitget", 10009.0), 5.0)  # 2 x (5 + 6) = 22 bps
    # a locked book (bid = ask) never covers anything, not even with no fees and no minimum
    long, short = legs("binance", 100.0, "bybit", 100.0)
    long.fee_bps = short.fee_bps = 0.0
    assert not spread_covers_fees(long, short, 0.0)
    assert not spread_covers_fees(VenueMarket("binance", "X"), short, 0.0)  # no ask to buy at


def test_synthetic_scan_counts_each_rejection_and_values_the_opportunity():
    state = MarketState()
    for symbol in ("AUSDT", "CUSDT"):
        quote(state, "bybit", symbol, 99.0, 101.0)  # mid 100
    result = scan_synthetic(state, "bybit", ["ZUSDT", "YUSDT", "CUSDT", "AUSDT"], 50.0, 0.01, 1000.0, T0)
    assert result.rejections == {"no_quote": 2} and result.candidates == 4
    assert [o.symbol for o in result.opportunities] == ["AUSDT", "CUSDT"]
    o = result.opportunities[0]
    # 50 bps: long at 100 x (1 - 0.0025), short at 100 x 1.0025; fees 5.5 x 2; slippage 2 + 1,000 / 50,000 x 3
    assert (o.long_price, o.short_price) == (pytest.approx(99.75), pytest.approx(100.25))
    assert (o.spread_bps, o.funding_delta_8h, o.fees_bps, o.slippage_bps) == (50.0, 0.01, 11.0, pytest.approx(2.06))
    # profit 50 - 11 - 10 funding cost = 29 bps = $2.90 on $1,000; after 2.06 bps slippage 26.94 bps = $2.694
    assert o.projected_profit_usd == pytest.approx(2.90) and o.projected_profit_after_slippage_usd == pytest.approx(
        2.694)
    assert (o.depth_long_usd, o.depth_short_usd, o.detected_ms) == (50_000.0, 50_000.0, T0)
    seed = scan_synthetic(state, "bybit", ["AUSDT", "CUSDT"], 15.0, 0.0001, 1000.0, T0)
    assert seed.rejections == {"synthetic_funding": 2}
    mixed = scan_synthetic(state, "bybit", ["AUSDT", "CUSDT"], 50.0, 0.01, 1000.0, T0)
    assert len(mixed.opportunities) == 2


def test_a_signal_id_names_its_pair_and_only_ours_are_read_back():
    from services.strategy.signals import pair_of, signal_id

    assert signal_id(("BTCUSDT", "binance", "bybit"), T0) == f"BTCUSDT-binance-bybit-{T0}"
    assert pair_of(f"BTCUSDT-binance-bybit-{T0}") == ("BTCUSDT", "binance", "bybit")
    # a symbol with a dash in it (OKX's BTC-USDT-SWAP) keeps it: the pair is the last three dashes
    assert pair_of(signal_id(("BTC-USDT-SWAP", "okx", "bybit"), 5)) == ("BTC-USDT-SWAP", "okx", "bybit")
    for foreign in ("binance-bybit-123", "BTCUSDT-binance-bybit-12a", "manual close", "BTCUSDT binance bybit 1"):
        assert pair_of(foreign) is None


def test_the_gate_blocks_at_the_millisecond_its_cooldown_and_pending_ttl_say():
    o = good_opportunity()
    other = ("BTCUSDT", "okx", "bybit")  # the same symbol on another pair: cooled down with it
    gate = SignalGate(cooldown_ms=60_000, pending_ttl_ms=30_000)
    assert not gate.blocked(o.pair, 0) and not gate.blocked(o.pair, T0)  # nothing signalled yet, even at time 0
    gate.decide([o], T0)
    gate.trade_closed(o.pair)  # the executor's word ends the pending signal at once; the cooldown stays
    assert gate.pending == {} and gate.blocked(o.pair, T0 + 1) and gate.blocked(other, T0 + 59_999)
    assert not gate.blocked(o.pair, T0 + 60_000) and not gate.blocked(other, T0 + 60_000)
    assert not gate.blocked(("ETHUSDT", "binance", "bybit"), T0 + 1)  # another symbol is free

    no_cooldown = SignalGate(cooldown_ms=0, pending_ttl_ms=30_000)
    no_cooldown.decide([o], T0)
    assert no_cooldown.blocked(o.pair, T0 + 29_999) and not no_cooldown.blocked(other, T0 + 1)
    assert not no_cooldown.blocked(o.pair, T0 + 30_000)  # a lost signal stops blocking at the TTL
    no_cooldown.trade_opened(o.pair)  # an open trade blocks its pair for as long as it is open
    assert no_cooldown.pending == {} and no_cooldown.blocked(o.pair, T0 + 3_600_000)
    no_cooldown.trade_closed(o.pair)
    assert not no_cooldown.blocked(o.pair, T0 + 3_600_000)
    fresh = SignalGate()
    fresh.trade_opened(other)  # a trade this gate never signalled (a restart): it is active all the same
    assert fresh.blocked(other, T0) and fresh.decide([o], T0)[1] == {"pending": 0, "active": 0, "cooldown": 0}


def test_the_gate_decides_at_the_millisecond_and_counts_what_it_holds():
    o = good_opportunity()
    twin = dataclasses.replace(o, long_venue="okx")  # same symbol, another pair
    elsewhere = dataclasses.replace(o, symbol="ETHUSDT")
    gate = SignalGate(cooldown_ms=60_000, pending_ttl_ms=30_000)
    signals, held = gate.decide([o, twin, elsewhere], T0)
    # the first of a symbol is signalled; its twin is cooled down by it; another symbol goes too
    assert [s.opportunity for s in signals] == [o, elsewhere] and held == {"pending": 0, "active": 0, "cooldown": 1}
    assert [s.id for s in signals] == [f"BTCUSDT-binance-bybit-{T0}", f"ETHUSDT-binance-bybit-{T0}"]
    assert all(s.created_ms == T0 for s in signals) and gate.pending == {o.pair: T0, elsewhere.pair: T0}
    assert gate.last_signal_ms == {"BTCUSDT": T0, "ETHUSDT": T0}
    assert gate.decide([o, twin, o, twin], T0 + 29_999)[1] == {"pending": 2, "active": 0, "cooldown": 2}
    # at the TTL the pending signals are dropped; the symbol is still cooling down until 60 s
    assert gate.decide([o], T0 + 30_000) == ([], {"pending": 0, "active": 0, "cooldown": 1})
    assert gate.pending == {}
    gate.trade_opened(elsewhere.pair)
    assert gate.decide([elsewhere, elsewhere], T0 + 59_999)[1] == {"pending": 0, "active": 2, "cooldown": 0}
    assert gate.decide([o], T0 + 59_999)[1]["cooldown"] == 1
    [again], _ = gate.decide([twin, o], T0 + 60_000)  # the cooldown is over at 60 s: the first one goes
    assert again.opportunity is twin and again.id == f"BTCUSDT-okx-bybit-{T0 + 60_000}"
    # a gate's first signal needs no earlier one, even at time 0
    assert len(SignalGate().decide([o], 0)[0]) == 1


def test_the_top_20_of_every_shard_in_the_scans_order():
    def o(symbol: str, confidence: int, profit: float) -> dict[str, str]:
        return {"symbol": symbol, "long_venue": "bybit", "short_venue": "okx", "confidence": str(confidence),
                "projected_profit_after_slippage_usd": str(profit)}

    a = [o("A1", 90, 1.0), o("A2", 80, 9.0)]
    b = [o("B1", 90, 2.0), o("B2", 70, 50.0), o("B3", 80, 9.0)]
    assert [x["symbol"] for x in merge_top([a, b])] == ["B1", "A1", "A2", "B3", "B2"]
    assert [x["symbol"] for x in merge_top([a, b], top_n=2)] == ["B1", "A1"]
    many = [[o(f"S{k}{i:02d}", 80, float(i)) for i in range(15)] for k in range(2)]
    assert len(merge_top(many)) == 20
