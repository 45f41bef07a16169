"""Hard constraints, soft metrics and confidence; seed Properties 2, 5 and 8 as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.strategy.confluence import assess, dashboard_score, soft_scores, weighted_confidence
from services.strategy.costs import slippage_bps
from services.strategy.state import VenueMarket
from shared.events import BookUpdate, Ticker

T0 = 1_800_000_000_000


def market(venue: str, bid: float, ask: float, size: float = 10.0, funding: float = 0.0,
           bid_sizes: float | None = None, ask_sizes: float | None = None) -> VenueMarket:
    m = VenueMarket(venue, "BTCUSDT")
    m.apply(BookUpdate(venue=venue, symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                       receive_ts_us=0, bids=((bid, bid_sizes or size),), asks=((ask, ask_sizes or size),)))
    m.apply(Ticker(venue=venue, symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0, funding_rate=funding,
                   funding_interval_min=480))
    return m


FRESH = {"binance": False, "bybit": False, "okx": False}


def test_a_good_trade_passes_the_hard_constraints_and_scores_its_metrics():
    long, short = market("binance", 99.9, 100.0, funding=0.0001), market("bybit", 100.3, 100.4, funding=0.0009)
    c = assess(long, short, position_usd=100.0, stale=FRESH)
    assert c.hard.passes_all() and c.spread_bps == pytest.approx((100.3 - 100.0) / 100.15 * 10_000)
    assert c.funding_delta_8h == pytest.approx(0.0008)
    assert (c.depth_long_usd, c.depth_short_usd) == (1000.0, 1003.0)
    # funding 0.8; books balanced (OBI 0 both) 0.5; no OI, VWAP, ATR: 0.5 each; no liquidation cluster 1
    assert c.scores == {"funding": pytest.approx(0.8), "obi": pytest.approx(0.5, abs=1e-5), "oi": 0.5, "vwap": 0.5, "volatility": 0.5,
                        "liquidation": 1.0}
    assert c.confidence == round(100 * (9 * 0.8 + 8 * 0.5 + 7 * 0.5 + 6 * 0.5 + 5 * 0.5 + 5 * 1.0) / 40)  # 63


def test_each_hard_constraint_failure_is_named_and_scores_zero():
    long, short = market("binance", 99.9, 100.0), market("bybit", 100.3, 100.4, funding=0.0001)
    c = assess(long, short, position_usd=600.0, stale={**FRESH, "bybit": True})
    assert c.confidence == 0 and c.hard.failures() == ["depth", "latency", "funding"]  # 1,000 < 1,200; 0.0001


def test_obi_leaning_the_trades_way_scores_one():
    long = market("binance", 99.9, 100.0, bid_sizes=30.0, ask_sizes=10.0)  # buyers lean on the long venue
    short = market("bybit", 100.3, 100.4, bid_sizes=10.0, ask_sizes=30.0)  # sellers on the short one
    scores = soft_scores(long, short, 0.001, depth_bps=10)
    obi_long, obi_short = long.imbalance(10), short.imbalance(10)
    assert obi_long > 0 > obi_short and scores["obi"] == pytest.approx((obi_long - obi_short + 2) / 4)
    assert scores["funding"] == 1.0 and weighted_confidence({"funding": 1.0, "obi": 1.0, "oi": 1.0, "vwap": 1.0,
                                                               "volatility": 1.0, "liquidation": 1.0}) == 100


books = st.floats(min_value=0.0, max_value=2000.0)


@given(depth_long=books, depth_short=books, funding=st.floats(-0.002, 0.002), stale=st.booleans(),
       position=st.floats(min_value=1.0, max_value=1000.0))
def test_property_2_any_failed_hard_constraint_means_confidence_zero(depth_long, depth_short, funding, stale,
                                                                     position):
    long = market("binance", 99.9, 100.0, size=depth_long / 100.0 or 1e-9, funding=0.0)
    short = market("bybit", 100.3, 100.4, size=depth_short / 100.3 or 1e-9, funding=funding)
    c = assess(long, short, position, {"binance": False, "bybit": stale})
    if not c.hard.passes_all():
        assert c.confidence == 0
    else:
        assert 0 <= c.confidence <= 100


@given(other_stale=st.booleans(), pair_stale=st.booleans(), funding=st.floats(0.0002, 0.002))
def test_property_8_a_stale_venue_gives_zero_or_thirty_points_less(other_stale, pair_stale, funding):
    long, short = market("binance", 99.9, 100.0), market("bybit", 100.3, 100.4, funding=funding)
    fresh = assess(long, short, 100.0, FRESH).confidence
    c = assess(long, short, 100.0, {"binance": False, "bybit": pair_stale, "okx": other_stale})
    if pair_stale:
        assert c.confidence == 0
    elif other_stale:
        assert c.confidence == max(0, fresh - 30)
    else:
        assert c.confidence == fresh


@given(position=st.floats(min_value=0.0, max_value=1e7), depth=st.floats(min_value=1.0, max_value=1e9))
def test_property_5_slippage_is_between_2_and_5_bps_and_grows_with_size(position, depth):
    slip = slippage_bps(position, depth)
    assert 2.0 <= slip <= 5.0
    assert slip >= min(5.0, position / depth * 3.0)


def test_dashboard_scorer_boosts():
    assert dashboard_score(50, 0.01, None, None, None, None) == 80
    assert dashboard_score(20, 0.001, 0.3, -0.2, 0.8, 4.0) == min(100, 20 + 3 + 20 + 15 + 30)
    assert dashboard_score(20, 0.001, 0.3, 0.2, 1.2, 10.0) == 20 + 3 + 10 - 10 + 15
    assert dashboard_score(0, 0, None, None, 1.5, None) == 0  # never below zero
