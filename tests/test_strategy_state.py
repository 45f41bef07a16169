"""Market state: each reading against values computed by hand."""

from __future__ import annotations

import math

import pytest

from services.strategy.state import MarketState, StateConfig, VenueMarket
from shared.events import BookUpdate, Liquidation, Ticker, Trade

T0 = 1_800_000_000_000


def ticker(ts: int, **fields) -> Ticker:
    return Ticker(venue="okx", symbol="BTCUSDT", exchange_ts_ms=ts, receive_ts_us=ts * 1000, **fields)


def trade(ts: int, price: float, size: float = 1.0) -> Trade:
    return Trade(venue="okx", symbol="BTCUSDT", trade_id=str(ts), price=price, size=size, side="buy",
                 exchange_ts_ms=ts, receive_ts_us=ts * 1000)


def book(ts: int, bids, asks) -> BookUpdate:
    return BookUpdate(venue="okx", symbol="BTCUSDT", kind="snapshot", update_id=ts, exchange_ts_ms=ts,
                      receive_ts_us=ts * 1000, bids=tuple(bids), asks=tuple(asks))


def test_the_newest_top_of_book_wins_and_partial_tickers_merge():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(ticker(T0 + 10, bid=100.0, ask=100.2, bid_size=1.0, ask_size=2.0))
    m.apply(book(T0 + 5, [(99.0, 1.0)], [(101.0, 1.0)]))  # older than the ticker: levels kept, top not
    assert (m.bid, m.ask, len(m.bids)) == (100.0, 100.2, 1)
    m.apply(ticker(T0 + 20, mark=100.1, funding_rate=0.0001, funding_interval_min=240, open_interest=5.0))
    assert (m.bid, m.mark, m.funding_8h, m.open_interest) == (100.0, 100.1, 0.0002, 5.0)
    m.apply(book(T0 + 30, [(100.05, 3.0)], [(100.15, 4.0)]))
    assert (m.bid, m.ask, m.bid_size, m.mid) == (100.05, 100.15, 3.0, pytest.approx(100.1))


def test_depth_within_bps_of_the_touch_and_imbalance():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(book(T0, [(100.0, 1.0), (99.95, 2.0), (99.80, 5.0)], [(100.1, 1.0), (100.12, 1.0), (100.5, 9.0)]))
    # 10 bps below 100.0 is 99.9: the first two bid levels; 10 bps above 100.1 is 100.2001: two ask levels
    assert m.depth_usd("bids", 10) == pytest.approx(100.0 + 199.9)
    assert m.depth_usd("asks", 10) == pytest.approx(100.1 + 100.12)
    bids, asks = 100.0 + 199.9, 100.1 + 100.12
    assert m.imbalance(10) == pytest.approx((bids - asks) / (bids + asks))
    assert VenueMarket("x", "y").imbalance(10) is None and VenueMarket("x", "y").depth_usd("bids", 10) == 0.0


def test_open_interest_average_takes_each_minutes_last_value_over_a_day():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(ticker(T0, open_interest=10.0))
    m.apply(ticker(T0 + 30_000, open_interest=20.0))  # same minute: replaces 10
    m.apply(ticker(T0 + 60_000, open_interest=40.0))
    assert m.oi_24h_avg == 30.0
    m.apply(ticker(T0 + 86_400_000 + 60_000, open_interest=70.0))  # a day later both old minutes are gone
    assert m.oi_24h_avg == 70.0


def test_vwap_and_deviation_in_standard_deviations():
    m = VenueMarket("okx", "BTCUSDT")
    for i, (price, size) in enumerate([(100.0, 1.0), (102.0, 1.0), (104.0, 2.0)]):
        m.apply(trade(T0 + i * 1000, price, size))
    vwap = (100 + 102 + 208) / 4  # 102.5
    sd = math.sqrt((100**2 + 102**2 + 2 * 104**2) / 4 - vwap**2)
    assert m.vwap == pytest.approx(vwap)
    m.apply(ticker(T0 + 5000, bid=104.0, ask=104.0))
    assert m.vwap_deviation() == pytest.approx((104.0 - vwap) / sd)
    short = VenueMarket("okx", "BTCUSDT", StateConfig(vwap_window_s=2))
    for i, price in enumerate([100.0, 200.0, 300.0]):
        short.apply(trade(T0 + i * 1000, price))
    assert short.vwap == 250.0  # the first second left the 2 s window


def test_vwap_counts_a_late_trade_inside_its_window_and_forgets_what_left_it():
    m = VenueMarket("okx", "BTCUSDT", StateConfig(vwap_window_s=10))
    m.apply(trade(T0 + 5_000, 100.0))
    m.apply(trade(T0 + 2_000, 110.0))  # 3 s late, a second with no trade yet: still inside the window
    assert m.vwap == 105.0
    m.apply(trade(T0 - 6_000, 500.0))  # 11 s before the newest: outside it
    assert m.vwap == 105.0
    m.apply(trade(T0 + 13_000, 120.0, 2.0))  # the window is now (T0 + 3 s, T0 + 13 s]
    assert m.vwap == pytest.approx((100 + 240) / 3)
    m.apply(trade(T0 + 60_000, 90.0))  # more than a window later: only itself
    assert m.vwap == 90.0


def test_atr_over_one_minute_bars_and_its_trend():
    m = VenueMarket("okx", "BTCUSDT")
    # 21 bars: each opens at 100, high 100 + r, low 100 - r, closes at 100; r shrinks from 21 to 1
    for bar in range(21):
        r = 21 - bar
        for offset, price in ((0, 100.0), (10_000, 100.0 + r), (20_000, 100.0 - r), (30_000, 100.0)):
            m.apply(trade(T0 + bar * 60_000 + offset, price))
    # completed bars are 0..19 (bar 20 still forms); ATR over bars 6..19 has ranges 2r for r = 15..2
    assert m.atr() == pytest.approx(sum(2 * r for r in range(2, 16)) / 14)
    assert m.atr_falling() is True
    assert VenueMarket("x", "y").atr() is None and VenueMarket("x", "y").atr_falling() is None


def test_liquidation_clusters_and_the_distance_to_the_nearest():
    m = VenueMarket("okx", "BTCUSDT", StateConfig(cluster_min_usd=50_000, liquidation_window_s=3600))
    m.apply(ticker(T0, bid=100_000.0, ask=100_000.0))
    for price, size in ((98_000.0, 0.3), (98_010.0, 0.3), (103_000.0, 0.1)):  # $58,803 near 98,005; $10,300
        m.apply(Liquidation(venue="okx", symbol="BTCUSDT", position_side="long", price=price, size=size,
                            exchange_ts_ms=T0 + 1000, receive_ts_us=0))
    [(price, usd)] = m.liquidation_clusters()
    assert usd == pytest.approx(98_000 * 0.3 + 98_010 * 0.3)
    assert price == pytest.approx((98_000 * 29_400 + 98_010 * 29_403) / (29_400 + 29_403))
    assert m.nearest_cluster_pct() == pytest.approx((100_000 - price) / 100_000 * 100)
    m.apply(Liquidation(venue="okx", symbol="BTCUSDT", position_side="short", price=1.0, size=1.0,
                        exchange_ts_ms=T0 + 3_600_000 + 2000, receive_ts_us=0))
    assert m.liquidation_clusters() == []  # an hour later the cluster left the window


def test_market_state_keeps_one_entry_per_venue_and_symbol():
    state = MarketState()
    state.apply(ticker(T0, bid=1.0, ask=2.0))
    state.apply(Ticker(venue="bybit", symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=0, bid=1.5, ask=2.5))
    assert sorted(state.by_symbol["BTCUSDT"]) == ["bybit", "okx"] and state.get("bybit", "BTCUSDT").bid == 1.5
    assert state.get("gate", "BTCUSDT") is None
