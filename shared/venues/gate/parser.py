"""Gate futures WebSocket v4 channels -> normalized events (pure: no socket, no clock).

Wire shapes (Gate API v4 futures WebSocket documentation; no recorded frames exist offline):

    {"time":..,"time_ms":..,"channel":"futures.book_ticker","event":"update",
     "result":{"t":..,"u":..,"s":"BTC_USDT","b":"54696.6","B":37000,"a":"54696.7","A":47061}}
    {"channel":"futures.tickers","event":"update","result":[{"contract":"BTC_USDT","last":..,
     "funding_rate":..,"mark_price":..,"index_price":..,"total_size":contracts,..}]}
    {"channel":"futures.order_book","event":"all","result":{"t":..,"id":..,"contract":..,
     "asks":[{"p":"..","s":12}],"bids":[..]}}
    {"channel":"futures.trades","event":"update","result":[{"id":..,"create_time_ms":..,"contract":..,
     "size":-108,"price":".."}]}
    {"channel":"futures.tickers","event":"subscribe","result":{"status":"success"}}
    {"channel":"..","event":"subscribe","error":{"code":2,"message":".."},"result":null}
    {"channel":"futures.pong","event":"","result":null}

Sizes are contracts (`quanto_multiplier` base coins each); a trade's negative size is a
taker sell. The ticker is not stamped per contract: it carries the frame's `time_ms`. Gate
settles funding on the interval's UTC boundary, so the next funding time is the next
multiple of the interval after that stamp.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, MarketEvent, Ticker, Trade
from shared.feed import Control, FrameParser, Pong, SubscribeResult, amount, check_fill, number

VENUE = "gate"


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""


class _Envelope(msgspec.Struct):
    channel: str = ""
    event: str = ""
    time_ms: int = 0
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: _Error | None = None


class _BookTicker(msgspec.Struct):
    t: int
    s: str
    b: str
    B: float
    a: str
    A: float


class _Ticker(msgspec.Struct):
    contract: str
    last: str = ""
    funding_rate: str = ""
    mark_price: str = ""
    index_price: str = ""
    total_size: str = ""


class _Level(msgspec.Struct):
    p: float
    s: float


class _Book(msgspec.Struct):
    t: int
    contract: str
    asks: list[_Level]
    bids: list[_Level]
    id: int = 0


class _Trade(msgspec.Struct):
    id: int
    create_time_ms: int
    contract: str
    size: float
    price: float


_envelope = msgspec.json.Decoder(_Envelope).decode
_book_ticker = msgspec.json.Decoder(_BookTicker, strict=False).decode
_tickers = msgspec.json.Decoder(list[_Ticker], strict=False).decode
_book = msgspec.json.Decoder(_Book, strict=False).decode
_trades = msgspec.json.Decoder(list[_Trade], strict=False).decode


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _envelope(raw)
        if env.channel == "futures.pong":
            return [Pong()]
        if env.event in ("subscribe", "unsubscribe"):
            if env.error is not None:
                return [SubscribeResult(False, f"{env.error.code} {env.error.message}")]
            return [SubscribeResult(True, "")]
        return self.dispatch(env.channel.removeprefix("futures."), env, receive_ts_us)

    def _book_ticker(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        m = _book_ticker(env.result)
        inst = self.instrument(m.s)
        bid, ask = number(m.b, "b", positive=True), number(m.a, "a", positive=True)
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.t, receive_ts_us=receive_ts_us, bid=bid,
                       ask=ask, bid_size=inst.base_size(amount(m.B, "B"), bid or 1.0),
                       ask_size=inst.base_size(amount(m.A, "A"), ask or 1.0))]

    def _tickers(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _tickers(env.result):
            inst = self.instrument(t.contract)
            interval_ms = (inst.funding_interval_min or 0) * 60_000
            contracts = number(t.total_size, "total_size")
            out.append(Ticker(
                venue=VENUE, symbol=inst.symbol, exchange_ts_ms=env.time_ms, receive_ts_us=receive_ts_us,
                last=number(t.last, "last", positive=True), mark=number(t.mark_price, "mark_price", positive=True),
                index=number(t.index_price, "index_price", positive=True),
                funding_rate=number(t.funding_rate, "funding_rate", low=-1.0),
                next_funding_ts_ms=(env.time_ms // interval_ms + 1) * interval_ms if interval_ms else None,
                funding_interval_min=inst.funding_interval_min,
                open_interest=inst.base_size(contracts, 1.0) if contracts is not None else None))
        return out

    def _order_book(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        m = _book(env.result)
        inst, n = self.instrument(m.contract), self.book_levels
        for level in (*m.bids, *m.asks):
            check_fill(level.p, level.s)
        return [BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=m.id or m.t,
                           exchange_ts_ms=m.t, receive_ts_us=receive_ts_us,
                           bids=tuple((x.p, inst.base_size(x.s, x.p)) for x in m.bids[:n]),
                           asks=tuple((x.p, inst.base_size(x.s, x.p)) for x in m.asks[:n]))]

    def _trades(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _trades(env.result):
            inst = self.instrument(t.contract)
            size = inst.base_size(abs(t.size), t.price)
            check_fill(t.price, size)
            out.append(Trade(venue=VENUE, symbol=inst.symbol, trade_id=str(t.id), price=t.price, size=size,
                             side="sell" if t.size < 0 else "buy", exchange_ts_ms=t.create_time_ms,
                             receive_ts_us=receive_ts_us))
        return out

    _HANDLERS: ClassVar = {"book_ticker": _book_ticker, "tickers": _tickers, "order_book": _order_book,
                           "trades": _trades}
