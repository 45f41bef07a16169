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

from math import inf, isfinite
from typing import ClassVar

import msgspec

from shared.book import BadLevel, OrderBook
from shared.events import BookUpdate, Liquidation, MarketEvent, Ticker, Trade
from shared.feed import Control, FeedStats, Pong, Resync, SubscribeResult

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
RESYNC_AGAIN_AFTER = 500  # deltas without the requested snapshot before asking again


class BadValue(ValueError):
    """A field that is present but not a usable number or enum."""


def _number(text: str | None, name: str, low: float = 0.0, positive: bool = False) -> float | None:
    """A venue numeric string as a float (empty: not sent); refused below `low`, and at 0
    when `positive`. Funding rates pass `low=-inf`."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{name}={text!r} is not a number") from None
    if not isfinite(value) or value < low or (positive and not value):
        raise BadValue(f"{name}={text!r} is out of range")
    return value


def _check_fill(price: float, size: float) -> None:
    if not (isfinite(price) and isfinite(size)) or price <= 0 or size <= 0:
        raise BadValue(f"price {price} / size {size} is out of range")


def _enum(table: dict[str, str], text: str, name: str) -> str:
    try:
        return table[text]
    except KeyError:
        raise BadValue(f"{name}={text!r} is not one of {sorted(table)}") from None


class BybitPublicParser:
    """Turns raw frames of one public linear connection into events and control items."""

    def __init__(self, book_levels: int = 25, stats: FeedStats | None = None) -> None:
        self.book_levels = book_levels
        self.stats = stats or FeedStats(VENUE)
        self._tickers: dict[str, dict[str, str]] = {}
        self._books: dict[str, OrderBook] = {}
        self._awaiting: dict[str, int] = {}  # topic -> deltas dropped since asking for a snapshot

    def feed(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        """Parse one frame; bad input is counted in `stats` and gives `[]`."""
        self.stats.messages += 1
        try:
            env = _decode_envelope(raw)
        except msgspec.DecodeError as exc:
            self.stats.error("malformed_message", str(exc), raw)
            return []
        if not env.topic:
            return self._control(env, raw)
        kind = env.topic.partition(".")[0]
        handler = self._HANDLERS.get(kind)
        if handler is None:
            self.stats.ignore(kind or "unknown")
            return []
        try:
            out = handler(self, env, receive_ts_us)
        except (msgspec.DecodeError, BadValue) as exc:
            self.stats.error(f"bad_{kind}", str(exc), raw)
            return []
        self.stats.events += sum(1 for item in out if not isinstance(item, Resync))
        return out

    def forget(self, topic: str) -> None:
        """Drop the state of `topic`: a resubscribe is on its way, wait for its snapshot."""
        self._tickers.pop(topic, None)
        self._books.pop(topic, None)
        self._awaiting.setdefault(topic, 0)

    def _resync(self, topic: str, kind: str, reason: str) -> list[MarketEvent | Control]:
        """Ask for a snapshot once; until it comes, drop deltas (asking again now and then)."""
        waited = self._awaiting.get(topic)
        if waited is not None and waited < RESYNC_AGAIN_AFTER:
            self._awaiting[topic] = waited + 1
            self.stats.awaiting_snapshot += 1
            return []
        self._awaiting[topic] = 0
        if kind:
            self.stats.error(kind, f"{topic}: {reason}")
        return [Resync(topic, reason)]

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
                return self._resync(env.topic, "ticker_delta_before_snapshot", "ticker delta before snapshot")
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
            symbol=get("symbol") or env.topic.partition(".")[2],
            exchange_ts_ms=env.ts,
            receive_ts_us=receive_ts_us,
            bid=_number(get("bid1Price"), "bid1Price", positive=True),
            ask=_number(get("ask1Price"), "ask1Price", positive=True),
            bid_size=_number(get("bid1Size"), "bid1Size"),
            ask_size=_number(get("ask1Size"), "ask1Size"),
            last=_number(get("lastPrice"), "lastPrice", positive=True),
            mark=_number(get("markPrice"), "markPrice", positive=True),
            index=_number(get("indexPrice"), "indexPrice", positive=True),
            funding_rate=_number(get("fundingRate"), "fundingRate", low=-inf),
            next_funding_ts_ms=next_funding_ms,
            funding_interval_min=interval_min,
            open_interest=_number(get("openInterest"), "openInterest"),
        )
        self._tickers[env.topic] = state
        self._awaiting.pop(env.topic, None)
        return [ticker]

    def _book(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        data = _decode_book(env.data)
        book = self._books.get(env.topic)
        try:
            if env.type == "snapshot" or data.u == 1:
                if book is None:
                    depth = env.topic.split(".")[1]
                    book = self._books[env.topic] = OrderBook(int(depth) if depth.isdigit() else 1000)
                book.apply_snapshot(data.b, data.a, data.u)
                self._awaiting.pop(env.topic, None)
            elif book is None or book.update_id is None:
                return self._resync(env.topic, "book_delta_before_snapshot", "book delta before snapshot")
            elif data.u != book.update_id + 1:
                self.stats.gaps += 1
                reason = f"update id {data.u} after {book.update_id}"
                book.update_id = None  # unusable until the next snapshot
                return self._resync(env.topic, "", reason)
            else:
                book.apply_delta(data.b, data.a, data.u)
        except BadLevel as exc:
            book.update_id = None  # part-applied: unusable until the next snapshot
            return self._resync(env.topic, "bad_orderbook", str(exc))
        bids, asks = book.top(self.book_levels)
        return [
            BookUpdate(
                venue=VENUE,
                symbol=data.s,
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
        for t in trades:
            _check_fill(t.p, t.v)
        return [
            Trade(
                venue=VENUE,
                symbol=t.s,
                trade_id=t.i,
                price=t.p,
                size=t.v,
                side=_enum(_TAKER_SIDE, t.S, "S"),
                exchange_ts_ms=t.T,
                receive_ts_us=receive_ts_us,
            )
            for t in trades
        ]

    def _liquidations(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        data = _decode_liquidations(env.data)
        items = data if isinstance(data, list) else [data]
        for item in items:
            _check_fill(item.p, item.v)
        return [
            Liquidation(
                venue=VENUE,
                symbol=item.s,
                position_side=_enum(_LIQUIDATED, item.S, "S"),
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
