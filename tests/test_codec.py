"""Events <-> flat stream fields: every event survives the round trip, bad entries are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.codec import CodecError, from_fields, to_fields
from shared.events import BookUpdate, Liquidation, Ticker, Trade

names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
prices = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False)
rates = st.floats(min_value=-1, max_value=1, allow_nan=False)
opt = lambda s: st.none() | s  # noqa: E731
stamps = st.integers(min_value=0, max_value=2**62)
levels = st.lists(st.tuples(prices, prices), max_size=30).map(tuple)

tickers = st.builds(
    Ticker, venue=names, symbol=names, exchange_ts_ms=stamps, receive_ts_us=stamps,
    bid=opt(prices), ask=opt(prices), bid_size=opt(prices), ask_size=opt(prices), last=opt(prices),
    mark=opt(prices), index=opt(prices), funding_rate=opt(rates), next_funding_ts_ms=opt(stamps),
    funding_interval_min=opt(st.integers(0, 10_000)), open_interest=opt(prices),
)
books = st.builds(
    BookUpdate, venue=names, symbol=names, kind=st.sampled_from(["snapshot", "delta"]),
    update_id=stamps, exchange_ts_ms=stamps, receive_ts_us=stamps, bids=levels, asks=levels, seq=opt(stamps),
)
trades = st.builds(Trade, venue=names, symbol=names, trade_id=names, price=prices, size=prices,
                   side=st.sampled_from(["buy", "sell"]), exchange_ts_ms=stamps, receive_ts_us=stamps)
liquidations = st.builds(Liquidation, venue=names, symbol=names, position_side=st.sampled_from(["long", "short"]),
                         price=prices, size=prices, exchange_ts_ms=stamps, receive_ts_us=stamps)


@given(tickers | books | trades | liquidations)
def test_every_event_round_trips_through_stream_fields(event):
    fields = to_fields(event)
    assert all(isinstance(v, str) for v in fields.values())
    as_redis_returns = {k.encode(): v.encode() for k, v in fields.items()}
    assert from_fields(as_redis_returns) == event
    assert from_fields(fields) == event


def test_fields_read_plainly_in_redis_cli():
    ticker = Ticker(venue="bybit", symbol="BTCUSDT", exchange_ts_ms=1786310817583, receive_ts_us=1786310817590001,
                    bid=65114.2, ask=65114.3, funding_rate=0.0001, funding_interval_min=480)
    assert to_fields(ticker) == {
        "v": "1", "type": "ticker", "venue": "bybit", "symbol": "BTCUSDT", "exchange_ts_ms": "1786310817583",
        "receive_ts_us": "1786310817590001", "bid": "65114.2", "ask": "65114.3", "funding_rate": "0.0001",
        "funding_interval_min": "480", "funding_rate_8h": "0.0001", "funding_rate_1h": "0.0000125",
    }
    book = BookUpdate(venue="bybit", symbol="BTCUSDT", kind="snapshot", update_id=7, exchange_ts_ms=1,
                      receive_ts_us=2, bids=((65114.2, 6.054), (65114.1, 0.002)), asks=((65114.3, 10.47),))
    assert to_fields(book)["bids"] == "65114.2:6.054 65114.1:0.002"
    tiny = Ticker(venue="bybit", symbol="X", exchange_ts_ms=1, receive_ts_us=1, funding_rate=-0.00004709, bid=1e-07)
    assert (to_fields(tiny)["funding_rate"], to_fields(tiny)["bid"]) == ("-0.00004709", "0.0000001")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"v": "2", "type": "ticker"}, "schema version '2' is not supported"),
        ({"type": "ticker"}, "schema version None"),
        ({"v": "1", "type": "candle"}, "unknown event type"),
        ({"v": "1", "type": "trade", "venue": "bybit"}, "trade entry"),
        ({"v": "1", "type": "trade", "venue": "b", "symbol": "X", "trade_id": "1", "price": "abc", "size": "1",
          "side": "buy", "exchange_ts_ms": "1", "receive_ts_us": "1"}, "trade entry"),
        ({"v": "1", "type": "book", "venue": "b", "symbol": "X", "kind": "snapshot", "update_id": "1",
          "exchange_ts_ms": "1", "receive_ts_us": "1", "bids": "65000"}, "not price:size"),
    ],
)
def test_bad_entries_raise_codec_error(fields, message):
    with pytest.raises(CodecError, match=message):
        from_fields(fields)
