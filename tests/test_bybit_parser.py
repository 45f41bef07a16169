"""The Bybit V5 public parser against every real frame in venue-samples/bybit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.events import BookUpdate, Liquidation, Ticker, Trade
from shared.feed import Pong, Resync, SubscribeResult
from shared.venues.bybit.parser import Parser as BybitPublicParser
from tests.conftest import BYBIT_SAMPLES, LINEAR_CAPTURE, capture_frames

SPOT_CAPTURE = BYBIT_SAMPLES / "ws_spot_capture_2026-08_cryptofeed.jsonl"
TEXT_CAPTURES = sorted(BYBIT_SAMPLES.glob("ws_*_capture_*_cryptofeed.txt"))
SINGLE_FRAMES = sorted(BYBIT_SAMPLES.glob("ws_linear_*.json"))


def text_capture_frames(path: Path) -> list[bytes]:
    """Received frames of cryptofeed's older text format: `<ts>: <frame>` lines."""
    return [m.group(1).encode() for line in path.read_text().splitlines()
            if (m := re.match(r"^\d+\.\d+: (\{.*)$", line))]


def feed_all(frames, parser=None):
    parser = parser or BybitPublicParser(book_levels=25)
    out = [item for i, frame in enumerate(frames) for item in parser.feed(frame, receive_ts_us=i)]
    return parser, out


@pytest.mark.parametrize("path", [LINEAR_CAPTURE, SPOT_CAPTURE, *TEXT_CAPTURES], ids=lambda p: p.name)
def test_every_captured_frame_parses_without_error(path):
    frames = capture_frames(path) if path.suffix == ".jsonl" else text_capture_frames(path)
    assert frames
    parser, out = feed_all(frames)
    assert parser.stats.error_count == 0, parser.stats.errors
    assert parser.stats.gaps == 0
    assert not [item for item in out if isinstance(item, Resync)]
    assert set(parser.stats.ignored) <= {"kline"}


def test_linear_capture_yields_the_expected_counts():
    parser, out = feed_all(capture_frames())
    counts = {cls: sum(isinstance(i, cls) for i in out) for cls in (Ticker, BookUpdate, Trade, SubscribeResult)}
    # 4 ticker snapshots + 754 deltas, 4 book snapshots + 1594 deltas, 102 trade frames
    assert counts[Ticker] == 758
    assert counts[BookUpdate] == 1598
    assert counts[SubscribeResult] == 17 and all(i.success for i in out if isinstance(i, SubscribeResult))
    raw_trades = sum(len(json.loads(f)["data"]) for f in capture_frames() if b'"publicTrade.' in f)
    assert counts[Trade] == raw_trades
    assert parser.stats.ignored["kline"] == 71


def test_merged_ticker_equals_the_last_values_in_the_capture():
    """Oracle: merge the raw JSON deltas field by field, independently of the parser."""
    expected: dict[str, dict] = {}
    last_ts: dict[str, int] = {}
    for frame in capture_frames():
        msg = json.loads(frame)
        if msg.get("topic", "").startswith("tickers."):
            expected.setdefault(msg["topic"], {}).update(msg["data"])
            last_ts[msg["topic"]] = msg["ts"]
    _, out = feed_all(capture_frames())
    final = {f"tickers.{t.symbol}": t for t in out if isinstance(t, Ticker)}
    assert set(final) == set(expected) == {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT", "tickers.DOGEUSDT"}
    for topic, raw in expected.items():
        t = final[topic]
        assert (t.bid, t.ask) == (float(raw["bid1Price"]), float(raw["ask1Price"]))
        assert (t.bid_size, t.ask_size) == (float(raw["bid1Size"]), float(raw["ask1Size"]))
        assert (t.last, t.mark, t.index) == (float(raw["lastPrice"]), float(raw["markPrice"]), float(raw["indexPrice"]))
        assert t.funding_rate == float(raw["fundingRate"])
        assert t.next_funding_ts_ms == int(raw["nextFundingTime"])
        assert t.funding_interval_min == int(raw["fundingIntervalHour"]) * 60
        assert t.open_interest == float(raw["openInterest"])
        assert t.exchange_ts_ms == last_ts[topic]


def test_final_book_equals_an_independent_rebuild():
    books: dict[str, dict[str, dict[float, float]]] = {}
    for frame in capture_frames():
        msg = json.loads(frame)
        if msg.get("topic", "").startswith("orderbook."):
            if msg["type"] == "snapshot":
                books[msg["topic"]] = {"b": {}, "a": {}}
            for side in "ba":
                for price, size in msg["data"][side]:
                    if float(size) == 0:
                        books[msg["topic"]][side].pop(float(price), None)
                    else:
                        books[msg["topic"]][side][float(price)] = float(size)
    _, out = feed_all(capture_frames())
    last = {f"orderbook.200.{b.symbol}": b for b in out if isinstance(b, BookUpdate)}
    for topic, book in books.items():
        bids = sorted(book["b"].items(), reverse=True)[:25]
        asks = sorted(book["a"].items())[:25]
        assert last[topic].bids == tuple(bids) and last[topic].asks == tuple(asks)
        assert last[topic].bids[0][0] < last[topic].asks[0][0]


@pytest.mark.parametrize("path", SINGLE_FRAMES, ids=lambda p: p.name)
def test_single_sample_frames_parse(path):
    parser = BybitPublicParser()
    frame = path.read_bytes()
    if json.loads(frame).get("type") == "delta":  # a delta needs its snapshot first
        kind = "tickers" if "tickers" in path.name else "orderbook200"
        parser.feed((BYBIT_SAMPLES / f"ws_linear_{kind}_snapshot.json").read_bytes(), 0)
        if kind == "tickers":
            snap = json.loads((BYBIT_SAMPLES / "ws_linear_tickers_snapshot.json").read_bytes())
            snap["topic"] = json.loads(frame)["topic"]
            snap["data"]["symbol"] = snap["topic"].split(".")[1]  # a snapshot names its topic's symbol
            parser.feed(json.dumps(snap).encode(), 0)
    out = parser.feed(frame, 0)
    assert parser.stats.error_count == 0, parser.stats.errors
    assert out or parser.stats.ignored


def test_ticker_snapshot_fields_are_normalized():
    [t] = BybitPublicParser().feed((BYBIT_SAMPLES / "ws_linear_tickers_snapshot.json").read_bytes(), 42)
    assert t == Ticker(venue="bybit", symbol="BTCUSDT", exchange_ts_ms=1786310817583, receive_ts_us=42,
                       bid=65114.2, ask=65114.3, bid_size=5.954, ask_size=10.47, last=65114.3, mark=65117.44,
                       index=65137.76, funding_rate=0.0001, next_funding_ts_ms=1786320000000,
                       funding_interval_min=480, open_interest=59891.732)


def test_delta_keeps_unchanged_fields_and_changes_the_rest():
    parser = BybitPublicParser()
    parser.feed((BYBIT_SAMPLES / "ws_linear_tickers_snapshot.json").read_bytes(), 0)
    [t] = parser.feed((BYBIT_SAMPLES / "ws_linear_tickers_delta_mark_oi.json").read_bytes(), 1)
    assert (t.mark, t.index, t.bid_size) == (65118.03, 65138.36, 10.128)
    assert (t.funding_rate, t.open_interest, t.last) == (0.0001, 59891.732, 65114.3)


def test_trades_and_liquidations():
    [first, *_] = BybitPublicParser().feed((BYBIT_SAMPLES / "ws_linear_publicTrade.json").read_bytes(), 0)
    assert first == Trade(venue="bybit", symbol="ETHUSDT", trade_id="19d7df56-4f10-5290-a969-d9d9f2c74cc3",
                          price=1922.5, size=0.01, side="buy", exchange_ts_ms=1786310820346, receive_ts_us=0)
    doc = (b'{"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":1739502303204,'
           b'"data":[{"T":1739502302929,"s":"ROSEUSDT","S":"Sell","v":"20000","p":"0.04499"}]}')
    as_object = doc.replace(b'"data":[', b'"data":').replace(b'}]}', b'}}')
    for frame in (doc, as_object):
        assert BybitPublicParser().feed(frame, 0) == [Liquidation(
            venue="bybit", symbol="ROSEUSDT", position_side="short", price=0.04499, size=20000.0,
            exchange_ts_ms=1739502302929, receive_ts_us=0)]


def test_book_gap_asks_for_resync_and_a_snapshot_restores():
    frames = [f for f in capture_frames() if b'"orderbook.200.BTCUSDT"' in f]
    snapshot, deltas = frames[0], frames[1:]
    parser = BybitPublicParser()
    parser.feed(snapshot, 0)
    parser.feed(deltas[0], 0)
    out = parser.feed(deltas[2], 0)  # deltas[1] lost
    assert len(out) == 1 and isinstance(out[0], Resync) and out[0].topic == "orderbook.200.BTCUSDT"
    assert "after" in out[0].reason and parser.stats.gaps == 1
    parser.forget(out[0].topic)  # what the session does before resubscribing
    assert parser.feed(deltas[3], 0) == [] and parser.feed(deltas[4], 0) == []  # asked once, not again
    assert parser.stats.awaiting_snapshot == 2 and parser.stats.error_count == 0
    [book] = parser.feed(snapshot, 0)
    assert isinstance(book, BookUpdate) and book.bids
    [book] = parser.feed(deltas[0], 0)  # the snapshot's successor continues the book
    assert book.update_id == json.loads(deltas[0])["data"]["u"]


def test_resync_is_asked_again_if_the_snapshot_never_comes(monkeypatch):
    monkeypatch.setattr(BybitPublicParser, "resync_again_after", 20)
    frames = [f for f in capture_frames() if b'"orderbook.200.ETHUSDT"' in f]
    parser = BybitPublicParser()
    asks = [o for f in frames[1:23] for o in parser.feed(f, 0)]  # ask, 20 dropped, ask again
    assert [type(o) for o in asks] == [Resync, Resync]
    assert parser.stats.awaiting_snapshot == 20


def test_control_messages():
    parser = BybitPublicParser()
    assert parser.feed((BYBIT_SAMPLES / "ws_linear_subscribe_ack.json").read_bytes(), 0) == [SubscribeResult(True, "", "")]
    refused = b'{"success":false,"ret_msg":"error:handler not found,topic:tickers.FOOUSDT","conn_id":"x","req_id":"7","op":"subscribe"}'
    assert parser.feed(refused, 0) == [SubscribeResult(False, "error:handler not found,topic:tickers.FOOUSDT", "7")]
    assert parser.feed(b'{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}', 0) == [Pong()]
    assert parser.feed(b'{"req_id":"t","op":"pong","args":["1675418560633"],"conn_id":"x"}', 0) == [Pong()]


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"not json", "malformed_message"),
        (b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT","bid1Price":"abc"}}', "bad_tickers"),
        (b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT","bid1Price":"NaN"}}', "bad_tickers"),
        (b'{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{"symbol":"BTCUSDT","bid1Price":5}}', "bad_tickers"),
        (b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["-1","2"]],"a":[],"u":3}}', "bad_orderbook"),
        (b'{"topic":"orderbook.50.X","type":"snapshot","ts":1,"data":{"s":"X","b":[["1"]],"a":[],"u":3}}', "bad_orderbook"),
        (b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"s":"X","S":"Up","v":"1","p":"2","i":"a"}]}', "bad_publicTrade"),
        (b'{"topic":"publicTrade.X","type":"snapshot","ts":1,"data":[{"T":1,"s":"X","S":"Buy","v":"0","p":"2","i":"a"}]}', "bad_publicTrade"),
        (b'{"op":"auth"}', "unknown_message"),
    ],
)
def test_bad_frames_are_counted_and_skipped(frame, kind):
    parser = BybitPublicParser()
    assert [i for i in parser.feed(frame, 0) if not isinstance(i, Resync)] == []
    assert parser.stats.errors == {kind: 1}


def test_a_bad_delta_does_not_poison_the_merged_ticker():
    parser = BybitPublicParser()
    parser.feed((BYBIT_SAMPLES / "ws_linear_tickers_snapshot.json").read_bytes(), 0)
    parser.feed(b'{"topic":"tickers.BTCUSDT","type":"delta","ts":2,"data":{"symbol":"BTCUSDT","bid1Price":"x"}}', 0)
    [t] = parser.feed((BYBIT_SAMPLES / "ws_linear_tickers_delta.json").read_bytes(), 0)
    assert t.bid == 65114.2 and parser.stats.errors == {"bad_tickers": 1}


def test_delta_before_snapshot_asks_for_resync():
    parser = BybitPublicParser()
    out = parser.feed((BYBIT_SAMPLES / "ws_linear_tickers_delta.json").read_bytes(), 0)
    assert out == [Resync("tickers.BTCUSDT", "ticker delta before snapshot")]
