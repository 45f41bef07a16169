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


def test_depth_counts_a_level_exactly_at_the_window_edge():
    m = VenueMarket("okx", "BTCUSDT")
    # 10 bps from 100: asks up to 100 x 1.001 = 100.1, bids down to 100 x 0.999 = 99.9, both included
    m.apply(book(T0, [(100.0, 1.0), (99.9, 2.0), (99.89, 4.0)], [(100.0, 1.0), (100.1, 2.0), (100.11, 4.0)]))
    assert m.depth_usd("asks", 10) == pytest.approx(100.0 + 200.2)
    assert m.depth_usd("bids", 10) == pytest.approx(100.0 + 199.8)
    assert m.depth_usd("asks", 11) == pytest.approx(100.0 + 200.2 + 400.44)  # 100.11 is 11 bps away
    m.apply(book(T0 + 1, [(100.0, 1.0)], [(100.1, 1.0)]))  # a new book: nothing remembered from the old one
    assert (m.depth_usd("asks", 10), m.depth_usd("bids", 10)) == (100.1, 100.0)


def test_a_penny_coins_book_still_has_an_imbalance():
    m = VenueMarket("okx", "PEPEUSDT")
    m.apply(book(T0, [(0.00001, 30_000.0)], [(0.0000101, 10_000.0)]))  # $0.30 of bids, $0.101 of asks
    assert m.imbalance(10) == pytest.approx((0.3 - 0.101) / (0.3 + 0.101))


def test_a_ticker_moves_the_top_only_with_both_sides_and_keeps_what_it_does_not_carry():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(ticker(T0, bid=100.0, ask=100.2, bid_size=1.0, ask_size=2.0, mark=100.1, index=100.05,
                   funding_rate=0.0001, funding_interval_min=480, next_funding_ts_ms=T0 + 3_600_000))
    m.apply(ticker(T0 + 1, bid=100.1, ask=100.3))  # no sizes, marks or funding: the last ones stay
    assert (m.bid, m.ask, m.bid_size, m.ask_size) == (100.1, 100.3, 1.0, 2.0)
    assert (m.mark, m.index, m.funding_rate, m.funding_8h, m.next_funding_ts_ms) == (
        100.1, 100.05, 0.0001, 0.0001, T0 + 3_600_000)
    m.apply(ticker(T0 + 2, bid=100.2, ask=100.4, bid_size=3.0, ask_size=4.0))
    assert (m.bid_size, m.ask_size) == (3.0, 4.0)
    m.apply(ticker(T0 + 3, bid=100.5))  # one side alone is no top of book
    m.apply(ticker(T0 + 3, ask=100.6))
    assert (m.bid, m.ask, m.top_ts_ms) == (100.2, 100.4, T0 + 2)


def test_at_the_same_exchange_time_the_later_top_of_book_wins():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(book(T0, [(100.0, 1.0)], [(100.2, 1.0)]))
    m.apply(ticker(T0, bid=100.1, ask=100.3))
    assert (m.bid, m.ask) == (100.1, 100.3)
    m.apply(book(T0, [(100.05, 5.0)], [(100.25, 6.0)]))
    assert (m.bid, m.ask, m.bid_size, m.ask_size) == (100.05, 100.25, 5.0, 6.0)


def test_the_newest_exchange_time_and_the_last_receive_time_are_kept():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(Ticker(venue="okx", symbol="BTCUSDT", exchange_ts_ms=T0 + 5, receive_ts_us=7, bid=1.0, ask=2.0))
    m.apply(Ticker(venue="okx", symbol="BTCUSDT", exchange_ts_ms=T0, receive_ts_us=9, mark=1.5))  # late
    assert (m.updated_ms, m.received_us) == (T0 + 5, 9)


def test_the_state_builds_each_market_with_its_config():
    state = MarketState(StateConfig(vwap_window_s=2))
    for i, price in enumerate([100.0, 200.0, 300.0]):
        state.apply(trade(T0 + i * 1000, price))
    assert state.get("okx", "BTCUSDT").vwap == 250.0  # the first second left the 2 s window


def test_vwap_sums_trades_within_a_second_and_keeps_the_window_to_the_second():
    m = VenueMarket("okx", "BTCUSDT", StateConfig(vwap_window_s=10))
    m.apply(trade(T0, 100.0))
    m.apply(trade(T0 + 300, 102.0))  # the same second: both count
    m.apply(ticker(T0 + 300, bid=102.0, ask=102.0))
    # VWAP 101, variance (100^2 + 102^2) / 2 - 101^2 = 1: mid 102 is one standard deviation above
    assert m.vwap == 101.0 and m.vwap_deviation() == pytest.approx(1.0)
    m.apply(trade(T0 + 9_999, 104.0))  # second 9 of a 10 s window: the first second is still in
    assert m.vwap == pytest.approx((100 + 102 + 104) / 3)
    m.apply(trade(T0 + 10_000, 110.0))  # second 10: second 0 leaves
    assert m.vwap == pytest.approx((104 + 110) / 2)
    m.apply(trade(T0, 1000.0))  # a late trade exactly 10 s before the newest: outside the window
    assert m.vwap == pytest.approx((104 + 110) / 2)
    jump = VenueMarket("okx", "BTCUSDT", StateConfig(vwap_window_s=10))
    jump.apply(trade(T0, 500.0))
    jump.apply(trade(T0 + 19_000, 100.0))  # 19 s later: nothing of second 0 is left
    assert jump.vwap == 100.0


def test_vwap_deviation_needs_a_quote_and_a_spread_of_prices():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(trade(T0, 100.0))
    m.apply(trade(T0 + 1000, 101.0))
    assert m.vwap_deviation() is None  # no quote yet
    m.apply(ticker(T0 + 2000, bid=101.0, ask=101.0))
    # VWAP 100.5, variance (100^2 + 101^2) / 2 - 100.5^2 = 0.25, sd 0.5: (101 - 100.5) / 0.5 = 1
    assert m.vwap_deviation() == pytest.approx(1.0)
    flat = VenueMarket("okx", "BTCUSDT")
    flat.apply(trade(T0, 100.0, 3.0))
    flat.apply(ticker(T0, bid=101.0, ask=101.0))
    assert flat.vwap == 100.0 and flat.vwap_deviation() is None  # every trade at one price: no spread
    assert VenueMarket("x", "y").vwap is None and VenueMarket("x", "y").oi_24h_avg is None


def test_open_interest_ignores_a_late_reading_from_an_earlier_minute():
    m = VenueMarket("okx", "BTCUSDT")
    m.apply(ticker(T0, open_interest=100.0))
    m.apply(ticker(T0 + 60_000, open_interest=200.0))
    m.apply(ticker(T0 + 1_000, open_interest=50.0))  # a minute already closed: not averaged in
    assert m.oi_24h_avg == 150.0


def bars(m: VenueMarket, count: int, prices=(100.0, 103.0, 101.0), start: int = T0) -> None:
    """`count` one-minute bars, each trading `prices` in that order."""
    for bar in range(count):
        for i, price in enumerate(prices):
            m.apply(trade(start + bar * 60_000 + i * 10_000, price))


def test_atr_needs_fifteen_completed_bars_and_reads_each_bars_low():
    m = VenueMarket("okx", "BTCUSDT")
    bars(m, 15)  # 14 completed bars: one short of a true range for each of 14
    assert m.atr() is None
    bars(m, 1, start=T0 + 15 * 60_000)
    # each bar: open 100, high 103, low 100 (not the close of 101), close 101: true range 103 - 100 = 3
    assert m.atr() == pytest.approx(3.0) and m.atr_falling() is None  # no ATR five bars before yet
    m.apply(trade(T0 + 60_000, 200.0))  # a late trade in a closed minute: no new bar
    assert m.atr() == pytest.approx(3.0)
    bars(m, 5, start=T0 + 16 * 60_000)
    assert m.atr() == pytest.approx(3.0) and m.atr_falling() is False  # the same ATR five bars before: not falling


def test_a_liquidation_exactly_the_window_old_leaves_and_a_bucket_at_the_minimum_is_a_cluster():
    m = VenueMarket("okx", "BTCUSDT", StateConfig(cluster_min_usd=50_000, liquidation_window_s=3600))
    m.apply(ticker(T0, bid=100.0, ask=100.0))
    for ts in (T0, T0 + 1000):  # $25,000 each, a second apart, both at 99: one $50,000 cluster
        m.apply(Liquidation(venue="okx", symbol="BTCUSDT", position_side="long", price=99.0, size=25_000 / 99.0,
                            exchange_ts_ms=ts, receive_ts_us=0))
    [(price, usd)] = m.liquidation_clusters()
    assert price == pytest.approx(99.0, abs=1e-9) and usd == pytest.approx(50_000.0)
    m.apply(Liquidation(venue="okx", symbol="BTCUSDT", position_side="short", price=1.0, size=1.0,
                        exchange_ts_ms=T0 + 3_600_000, receive_ts_us=0))  # the first is exactly an hour old
    assert m.liquidation_clusters() == []
