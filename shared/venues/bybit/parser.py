"""Bybit V5 public linear stream -> normalized events (pure: no socket, no clock).

Wire shapes (shared/docs/protocol-bybit-v5.md section 3; real frames in venue-samples/bybit):

    {"topic":"tickers.BTCUSDT","type":"snapshot"|"delta","data":{"symbol":..,"bid1Price":"65114.20",..},"cs":..,"ts":1786310817583}
    {"topic":"orderbook.50.BTCUSDT","type":"snapshot"|"delta","ts":..,"data":{"s":..,"b":[["65114.20","6.054"]],"a":[..],"u":15076953,"seq":..},"cts":..}
    {"topic":"publicTrade.ETHUSDT","type":"snapshot","ts":..,"data":[{"T":..,"s":..,"S":"Buy","v":"0.01","p":"1922.50","i":"19d7..",..}]}
    {"topic":"allLiquidation.ROSEUSDT","type":"snapshot","ts":..,"data":[{"T":..,"s":..,"S":"Sell","v":"20000","p":"0.04499"}]}
    {"success":true,"ret_msg":"","conn_id":"..","req_id":"","op":"subscribe"}      # ack
    {"success":true,"ret_msg":"pong","conn_id":"..","req_id":"","op":"ping"}       # pong

Ticker deltas carry only the fields that changed, so they are merged into the last snapshot.
Book deltas must have `u` = last `u` + 1; a gap (or a delta before any snapshot) drops the
book and asks once for a resubscribe, which brings a fresh snapshot; deltas that arrive
before it are dropped and counted (and the request repeated if none comes).
"""

from __future__ import annotations

from math import inf
from typing import ClassVar

import msgspec

from shared.book import BadLevel, OrderBook
from shared.events import BookUpdate, Liquidation, MarketEvent, Ticker, Trade
from shared.feed import (
    BadValue,
    Control,
    FeedStats,
    FrameParser,
    Pong,
    SubscribeResult,
    check_fill,
    enum,
    number,
)
from shared.instruments import SymbolMap

VENUE = "bybit"


class _Envelope(msgspec.Struct):
    topic: str = ""
    type: str = ""
    ts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"")
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""


class _BookData(msgspec.Struct):
    s: str  # symbol
    b: list[tuple[float, float]]  # bids [price, size] (strings on the wire), size "0" deletes
    a: list[tuple[float, float]]  # asks
    u: int  # update id, +1 per message; 1 after a service restart
    seq: int | None = None  # cross sequence


class _TradeData(msgspec.Struct):
    T: int  # fill time, ms
    s: str  # symbol
    S: str  # taker side, Buy | Sell
    v: float  # size (a string on the wire)
    p: float  # price
    i: str  # trade id


class _LiquidationData(msgspec.Struct):
    T: int  # time, ms
    s: str  # symbol
    S: str  # position side liquidated: Buy = a long
    v: float  # size (a string on the wire)
    p: float  # bankruptcy price


# strict=False lets msgspec turn Bybit's numeric strings into floats in C.
_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_ticker = msgspec.json.Decoder(dict[str, str]).decode
_decode_book = msgspec.json.Decoder(_BookData, strict=False).decode
_decode_trades = msgspec.json.Decoder(list[_TradeData], strict=False).decode
_decode_liquidations = msgspec.json.Decoder(list[_LiquidationData] | _LiquidationData, strict=False).decode

_TAKER_SIDE = {"Buy": "buy", "Sell": "sell"}
_LIQUIDATED = {"Buy": "long", "Sell": "short"}


def _on_topic(topic: str, symbol: str | None) -> str:
    """The symbol of a message on `topic` (tickers.BTCUSDT: BTCUSDT); BadValue when the
    message names another."""
    subscribed = topic.rpartition(".")[2]
    if symbol and symbol != subscribed:
        raise BadValue(f"symbol {symbol!r} on topic {topic!r}")
    return subscribed


class Parser(FrameParser):
    """Turns raw frames of one public linear connection into events and control items.

    Bybit's linear symbols are the canonical names and its sizes are base units, so symbols
    pass through as they are, once they agree with the topic the message came on."""

    venue = VENUE

    def __init__(self, symbols: SymbolMap | None = None, book_levels: int = 25, stats: FeedStats | None = None) -> None:
        super().__init__(symbols or SymbolMap(VENUE, ()), book_levels, stats)
        self._tickers: dict[str, dict[str, str]] = {}
        self._books: dict[str, OrderBook] = {}

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _decode_envelope(raw)
        if not env.topic:
            return self._control(env, raw)
        return self.dispatch(env.topic.partition(".")[0], env, receive_ts_us)

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._tickers.pop(topic, None)
        self._books.pop(topic, None)

    def _control(self, env: _Envelope, raw: bytes | str) -> list[MarketEvent | Control]:
        if env.op in ("subscribe", "unsubscribe"):
            return [SubscribeResult(bool(env.success), env.ret_msg, env.req_id)]
        if env.op == "pong" or (env.op == "ping" and env.ret_msg == "pong"):
            return [Pong()]
        self.stats.error("unknown_message", f"op={env.op!r} without topic", raw)
        return []

    def _ticker(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        data = _decode_ticker(env.data)
        if env.type == "snapshot":
            state = data
        else:
            last = self._tickers.get(env.topic)
            if last is None:
                return self.resync(env.topic, "ticker_delta_before_snapshot", "ticker delta before snapshot")
            state = last | data  # kept only if it validates, so a bad delta cannot stick
        get = state.get
        interval_h = get("fundingIntervalHour")
        next_funding = get("nextFundingTime")
        try:
            interval_min = int(interval_h) * 60 if interval_h else None
            next_funding_ms = int(next_funding) if next_funding else None
        except ValueError:
            raise BadValue(f"funding times {interval_h!r}/{next_funding!r} are not integers") from None
        ticker = Ticker(
            venue=VENUE,
            symbol=_on_topic(env.topic, get("symbol")),
            exchange_ts_ms=env.ts,
            receive_ts_us=receive_ts_us,
            bid=number(get("bid1Price"), "bid1Price", positive=True),
            ask=number(get("ask1Price"), "ask1Price", positive=True),
            bid_size=number(get("bid1Size"), "bid1Size"),
            ask_size=number(get("ask1Size"), "ask1Size"),
            last=number(get("lastPrice"), "lastPrice", positive=True),
            mark=number(get("markPrice"), "markPrice", positive=True),
            index=number(get("indexPrice"), "indexPrice", positive=True),
            funding_rate=number(get("fundingRate"), "fundingRate", low=-inf),
            next_funding_ts_ms=next_funding_ms,
            funding_interval_min=interval_min,
            open_interest=number(get("openInterest"), "openInterest"),
        )
        self._tickers[env.topic] = state
        self.snapshot_arrived(env.topic)
        return [ticker]

    def _book(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        data = _decode_book(env.data)
        symbol = _on_topic(env.topic, data.s)
        book = self._books.get(env.topic)
        try:
            if env.type == "snapshot" or data.u == 1:
                if book is None:
                    depth = env.topic.split(".")[1]
                    book = self._books[env.topic] = OrderBook(int(depth) if depth.isdigit() else 1000)
                book.apply_snapshot(data.b, data.a, data.u)
                self.snapshot_arrived(env.topic)
            elif book is None or book.update_id is None:
                return self.resync(env.topic, "book_delta_before_snapshot", "book delta before snapshot")
            elif data.u != book.update_id + 1:
                self.stats.gaps += 1
                reason = f"update id {data.u} after {book.update_id}"
                book.update_id = None  # unusable until the next snapshot
                return self.resync(env.topic, "", reason)
            else:
                book.apply_delta(data.b, data.a, data.u)
        except BadLevel as exc:
            book.update_id = None  # part-applied: unusable until the next snapshot
            return self.resync(env.topic, "bad_orderbook", str(exc))
        bids, asks = book.top(self.book_levels)
        return [
            BookUpdate(
                venue=VENUE,
                symbol=symbol,
                kind="snapshot",
                update_id=data.u,
                seq=data.seq,
                exchange_ts_ms=env.ts,
                receive_ts_us=receive_ts_us,
                bids=bids,
                asks=asks,
            )
        ]

    def _trades(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        trades = _decode_trades(env.data)
        symbol = _on_topic(env.topic, None)
        for t in trades:
            check_fill(t.p, t.v)
            _on_topic(env.topic, t.s)
        return [
            Trade(
                venue=VENUE,
                symbol=symbol,
                trade_id=t.i,
                price=t.p,
                size=t.v,
                side=enum(_TAKER_SIDE, t.S, "S"),
                exchange_ts_ms=t.T,
                receive_ts_us=receive_ts_us,
            )
            for t in trades
        ]

    def _liquidations(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        data = _decode_liquidations(env.data)
        items = data if isinstance(data, list) else [data]
        symbol = _on_topic(env.topic, None)
        for item in items:
            check_fill(item.p, item.v)
            _on_topic(env.topic, item.s)
        return [
            Liquidation(
                venue=VENUE,
                symbol=symbol,
                position_side=enum(_LIQUIDATED, item.S, "S"),
                price=item.p,
                size=item.v,
                exchange_ts_ms=item.T,
                receive_ts_us=receive_ts_us,
            )
            for item in items
        ]

    _HANDLERS: ClassVar = {
        "tickers": _ticker,
        "orderbook": _book,
        "publicTrade": _trades,
        "allLiquidation": _liquidations,
    }
