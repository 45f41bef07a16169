"""Hard constraints, soft metrics and confidence; seed Properties 2, 5 and 8 as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.strategy.confluence import assess, dashboard_score, soft_scores, weighted_confidence
from services.strategy.costs import slippage_bps
from services.strategy.state import VenueMarket
from shared.events import BookUpdate, Liquidation, Ticker, Trade

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


def quoted(venue: str, bid: float, ask: float) -> VenueMarket:
    """A venue with a top of book from its ticker only: no book levels, so no depth and no OBI."""
    m = VenueMarket(venue, "BTCUSDT")
    m.apply(Ticker(venue=venue, symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0, bid=bid, ask=ask))
    return m


def test_funding_against_the_trade_scores_zero_and_a_half_book_is_neutral():
    long, short = market("binance", 99.9, 100.0), quoted("bybit", 100.3, 100.4)
    scores = soft_scores(long, short, -0.0005, depth_bps=10)
    # funding -0.0005 / 0.001 = -0.5, capped to 0; the short venue has no levels: OBI unknown, 0.5
    assert scores["funding"] == 0.0 and scores["obi"] == 0.5
    assert soft_scores(short, long, 0.0005, depth_bps=10)["obi"] == 0.5  # the long venue without levels
    assert soft_scores(long, short, 0.0015, depth_bps=10)["funding"] == 1.0  # 1.5, capped to 1


def open_interest(m: VenueMarket, *values: float) -> None:
    """One open-interest reading a minute: the 24 h average is their mean, the last is current."""
    for i, value in enumerate(values):
        m.apply(Ticker(venue=m.venue, symbol=m.symbol, exchange_ts_ms=T0 + i * 60_000, receive_ts_us=0,
                       open_interest=value))


def test_open_interest_score_from_each_venues_ratio_to_its_average():
    long, short = market("binance", 99.9, 100.0), market("bybit", 100.3, 100.4)
    open_interest(long, 100.0, 100.0)  # r = 100 / 100 = 1.0
    open_interest(short, 110.0, 90.0)  # r = 90 / 100 = 0.9
    # mean r 0.95: (1.1 - 0.95) / 0.2 = 0.75
    assert soft_scores(long, short, 0.001, 10)["oi"] == pytest.approx(0.75)
    no_oi = market("okx", 100.3, 100.4)
    assert soft_scores(short, no_oi, 0.001, 10)["oi"] == 1.0  # r = 0.9 alone: (1.1 - 0.9) / 0.2 = 1
    crowd = market("gate", 100.3, 100.4)
    open_interest(crowd, 50.0, 100.0)  # r = 100 / 75 = 4/3: a crowd building
    assert soft_scores(no_oi, crowd, 0.001, 10)["oi"] == 0.0  # (1.1 - 4/3) / 0.2 < 0, capped
    # both: mean r (4/3 + 0.9) / 2 = 1.1167, just above 1.1: capped to 0; with r 1.0, (1.1 - 7/6) / 0.2 < 0
    assert soft_scores(long, crowd, 0.001, 10)["oi"] == 0.0
    assert soft_scores(no_oi, no_oi, 0.001, 10)["oi"] == 0.5  # unknown on both: neutral


def trades(m: VenueMarket, *prices: float) -> None:
    for i, price in enumerate(prices):
        m.apply(Trade(venue=m.venue, symbol=m.symbol, trade_id=str(i), price=price, size=1.0, side="buy",
                      exchange_ts_ms=T0 + i * 1000, receive_ts_us=0))


def test_vwap_score_from_each_venues_stretch_in_standard_deviations():
    # trades at 100 and 102, one each: VWAP 101, variance (100^2 + 102^2) / 2 - 101^2 = 1, sd 1
    long, short = quoted("binance", 100.0, 101.0), quoted("bybit", 101.5, 102.5)
    trades(long, 100.0, 102.0)
    trades(short, 100.0, 102.0)
    # z long = (100.5 - 101) / 1 = -0.5, z short = (102 - 101) / 1 = 1: (1 + 0.5) / 4 + 0.5 = 0.875
    assert soft_scores(long, short, 0.001, 10)["vwap"] == pytest.approx(0.875)
    # the other way round: (-0.5 - 1) / 4 + 0.5 = 0.125
    assert soft_scores(short, long, 0.001, 10)["vwap"] == pytest.approx(0.125)
    no_trades = quoted("okx", 101.5, 102.5)
    assert soft_scores(long, no_trades, 0.001, 10)["vwap"] == 0.5
    assert soft_scores(no_trades, short, 0.001, 10)["vwap"] == 0.5


def minute_bars(m: VenueMarket, shrinking: bool) -> None:
    """21 one-minute bars around 100 whose range shrinks (ATR falling) or grows (rising)."""
    for bar in range(21):
        r = 21 - bar if shrinking else bar + 1
        for offset, price in ((0, 100.0), (10_000, 100.0 + r), (20_000, 100.0 - r), (30_000, 100.0)):
            m.apply(Trade(venue=m.venue, symbol=m.symbol, trade_id=f"{bar}-{offset}", price=price, size=1.0,
                          side="buy", exchange_ts_ms=T0 + bar * 60_000 + offset, receive_ts_us=0))


def test_volatility_score_is_the_mean_of_each_venues_atr_trend():
    falling, rising = market("binance", 99.9, 100.0), market("okx", 99.9, 100.0)
    minute_bars(falling, shrinking=True)
    minute_bars(rising, shrinking=False)
    unknown = market("bybit", 100.3, 100.4)
    assert soft_scores(falling, unknown, 0.001, 10)["volatility"] == 0.75  # (1 + 0.5) / 2
    assert soft_scores(unknown, rising, 0.001, 10)["volatility"] == 0.25  # (0.5 + 0) / 2
    assert soft_scores(falling, rising, 0.001, 10)["volatility"] == 0.5  # (1 + 0) / 2


def liquidation(m: VenueMarket, price: float, usd: float) -> None:
    m.apply(Liquidation(venue=m.venue, symbol=m.symbol, position_side="long", price=price, size=usd / price,
                        exchange_ts_ms=T0, receive_ts_us=0))


def test_liquidation_score_is_the_distance_to_the_nearest_cluster_over_two_percent():
    long, short = quoted("binance", 99_999.0, 100_001.0), quoted("bybit", 100_049.0, 100_051.0)
    liquidation(long, 99_000.0, 60_000.0)  # a $60,000 cluster 1 % below the long venue's mid of 100,000
    # 1 % / 2 % = 0.5
    assert soft_scores(long, short, 0.001, 10)["liquidation"] == pytest.approx(0.5)
    liquidation(short, 99_750.0, 60_000.0)  # the nearest: 0.3 % below 100,050: 0.15
    assert soft_scores(long, short, 0.001, 10)["liquidation"] == pytest.approx(300 / 100_050 * 100 / 2)
    far = quoted("okx", 99_999.0, 100_001.0)
    liquidation(far, 95_000.0, 60_000.0)  # 5 % away: more than 2 %, full marks
    assert soft_scores(far, quoted("gate", 1.0, 1.0), 0.001, 10)["liquidation"] == 1.0


def test_the_weights_9_8_7_6_5_5_out_of_40():
    zero = dict.fromkeys(("funding", "obi", "oi", "vwap", "volatility", "liquidation"), 0.0)
    # one metric at full marks alone: its weight / 40
    assert [weighted_confidence({**zero, name: 1.0}) for name in zero] == [
        round(100 * 9 / 40), round(100 * 8 / 40), round(100 * 7 / 40), round(100 * 6 / 40), round(100 * 5 / 40),
        round(100 * 5 / 40)]  # 22 (22.5 rounds to even), 20, 18 (17.5), 15, 12 (12.5), 12
    assert weighted_confidence({**zero, "funding": 0.5, "obi": 0.25}) == 16  # (4.5 + 2) / 40 = 16.25 %
    assert weighted_confidence(zero) == 0


def test_the_hard_constraints_each_at_and_either_side_of_its_threshold():
    # one level a side: binance asks $1,000 (10 x 100), bybit bids $1,003 (10 x 100.3)
    long, short = market("binance", 99.9, 100.0), market("bybit", 100.3, 100.4, funding=0.0005)
    # depth: at least 2 x the position: $1,000 is exactly 2 x $500, one cent more position fails
    assert assess(long, short, 500.0, FRESH).hard.depth_ok
    assert not assess(long, short, 500.01, FRESH).hard.depth_ok
    thin_short = market("bybit", 100.3, 100.4, size=9.0, funding=0.0005)  # $902.70 of bids: the smaller side
    assert assess(long, thin_short, 451.3, FRESH).hard.depth_ok  # $902.60 needed
    assert assess(long, thin_short, 451.4, FRESH).hard.failures() == ["depth"]  # $902.80 needed
    # funding: strictly above 0.0001 per 8 h
    for delta, ok in ((0.0001, False), (0.00010001, True), (0.00009999, False)):
        c = assess(market("binance", 99.9, 100.0), market("bybit", 100.3, 100.4, funding=delta), 100.0, FRESH)
        assert c.hard.funding_ok is ok and c.hard.failures() == ([] if ok else ["funding"])
    # latency: either venue of the pair stale, or not known at all, fails; a third venue does not
    for stale, ok in (({"binance": True, "bybit": False}, False), ({"binance": False, "bybit": True}, False),
                      ({"bybit": False}, False), ({"binance": False}, False), ({"binance": False, "bybit": False},
                                                                              True)):
        c = assess(long, short, 100.0, stale)
        assert c.hard.latency_ok is ok and (c.confidence > 0) is ok
    assert assess(long, short, 100.0, {"binance": False, "bybit": False, "okx": True}).hard.passes_all()


def test_a_failed_trade_keeps_its_numbers_and_a_missing_quote_gives_none():
    long, short = market("binance", 99.9, 100.0, funding=0.0001), market("bybit", 100.3, 100.4, funding=0.0002)
    c = assess(long, short, 600.0, FRESH)  # fails depth and funding, but says what it saw
    assert c.spread_bps == pytest.approx(0.3 / 100.15 * 10_000) and c.funding_delta_8h == pytest.approx(0.0001)
    assert (c.depth_long_usd, c.depth_short_usd, c.scores, c.latency_penalty, c.confidence) == (1000.0, 1003.0, {},
                                                                                                0, 0)
    assert assess(VenueMarket("binance", "BTCUSDT"), short, 100.0, FRESH) is None  # no ask to buy at
    assert assess(long, VenueMarket("bybit", "BTCUSDT"), 100.0, FRESH) is None  # no bid to sell at
    # a top of book from the ticker alone has no levels: no depth; no funding known: delta 0.0002 - 0, ok
    assert assess(quoted("binance", 99.9, 100.0), short, 100.0, FRESH).hard.failures() == ["depth"]


def test_the_funding_delta_is_the_short_venues_rate_minus_the_long_ones():
    # binance pays 0.0003 per 8 h (480 min), okx 0.0004 per 4 h = 0.0008 per 8 h: delta 0.0005
    long = market("binance", 99.9, 100.0, funding=0.0003)
    short = VenueMarket("okx", "BTCUSDT")
    short.apply(BookUpdate(venue="okx", symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                           receive_ts_us=0, bids=((100.3, 10.0),), asks=((100.4, 10.0),)))
    short.apply(Ticker(venue="okx", symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0, funding_rate=0.0004,
                       funding_interval_min=240))
    c = assess(long, short, 100.0, FRESH)
    assert c.funding_delta_8h == pytest.approx(0.0005) and c.scores["funding"] == pytest.approx(0.5)
    # no funding known on the long venue counts as 0: delta 0.0008
    assert assess(market("binance", 99.9, 100.0), short, 100.0, FRESH).funding_delta_8h == pytest.approx(0.0008)
    no_rate = VenueMarket("bybit", "BTCUSDT")
    no_rate.apply(BookUpdate(venue="bybit", symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                             receive_ts_us=0, bids=((100.3, 10.0),), asks=((100.4, 10.0),)))
    assert assess(long, no_rate, 100.0, FRESH).funding_delta_8h == pytest.approx(-0.0003)  # short unknown: 0


def test_confidence_at_the_depth_window_and_with_a_stale_third_venue():
    # a second ask level 10.5 bps above binance's touch counts in a 20 bps window, not in the default 10
    long = VenueMarket("binance", "BTCUSDT")
    long.apply(BookUpdate(venue="binance", symbol="BTCUSDT", kind="snapshot", update_id=1, exchange_ts_ms=T0,
                          receive_ts_us=0, bids=((99.9, 10.0),), asks=((100.0, 10.0), (100.105, 10.0))))
    short = market("bybit", 100.3, 100.4, funding=0.0008)
    assert assess(long, short, 100.0, FRESH).depth_long_usd == 1000.0
    assert assess(long, short, 100.0, FRESH, depth_bps=20).depth_long_usd == pytest.approx(1000.0 + 1001.05)
    # OBI in the 10 bps window: long (999 - 1000) / 1999, short (1003 - 1004) / 2007; funding 0.8
    c = assess(long, short, 100.0, {**FRESH, "okx": True})
    obi = ((999 - 1000) / 1999 - (1003 - 1004) / 2007 + 2) / 4
    full = round(100 * (9 * 0.8 + 8 * obi + 7 * 0.5 + 6 * 0.5 + 5 * 0.5 + 5 * 1.0) / 40)  # 63
    assert (c.latency_penalty, c.confidence) == (30, full - 30) and c.scores["obi"] == pytest.approx(obi)
    assert assess(long, short, 100.0, FRESH).latency_penalty == 0


def test_a_stale_third_venue_takes_a_weak_trade_to_zero_not_below():
    # the books lean against the trade (OBI long -0.998, short +0.998: 0.001), funding just over the
    # minimum (0.00011 / 0.001 = 0.11), a $60,000 liquidation cluster at the short venue's mid (0)
    long = market("binance", 99.9, 100.0, bid_sizes=0.01, ask_sizes=10.0)
    short = market("bybit", 100.3, 100.4, funding=0.00011, bid_sizes=10.0, ask_sizes=0.01)
    liquidation(short, 100.35, 60_000.0)
    fresh = assess(long, short, 100.0, FRESH)
    # 100 x (9 x 0.11 + 8 x 0.001 + 7 x 0.5 + 6 x 0.5 + 5 x 0.5 + 5 x 0) / 40 = 25: less than the 30 points
    assert fresh.hard.passes_all() and fresh.scores["liquidation"] == 0.0 and fresh.confidence == 25
    assert assess(long, short, 100.0, {**FRESH, "okx": True}).confidence == 0


@pytest.mark.parametrize(("oi_ratio", "minutes", "score"), [
    # base: spread 50 bps -> 100 x 0.5 = 50, no funding; open interest boosts strictly outside 0.9..1.1
    (0.9, None, 50), (0.89, None, 50 + 15), (1.0, None, 50), (1.1, None, 50), (1.11, None, 50 - 10),
    # funding payout: +30 strictly under 5 minutes, +15 under 15, none from 15 on
    (None, 4.9, 50 + 30), (None, 5.0, 50 + 15), (None, 5.5, 50 + 15), (None, 14.9, 50 + 15), (None, 15.0, 50),
    (None, 15.5, 50), (None, 20.0, 50),
])
def test_dashboard_scorer_boosts_at_their_thresholds(oi_ratio, minutes, score):
    assert dashboard_score(50, 0.0, None, None, oi_ratio, minutes) == score


def test_dashboard_scorer_is_capped_at_100_and_counts_each_book_leaning_our_way():
    assert dashboard_score(50, 0.01, 0.5, -0.5, 0.5, 1.0) == 100  # 80 + 20 + 15 + 30 = 145, capped
    assert dashboard_score(50, 0.0, 0.5, 0.5, None, None) == 60  # only the long book leans our way: +10
    assert dashboard_score(50, 0.0, None, -0.5, None, None) == 60  # only the short one: +10
    assert dashboard_score(50, 0.0, 0.0, 0.0, None, None) == 50  # balanced books lean neither way
