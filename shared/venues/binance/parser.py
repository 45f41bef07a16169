"""Binance USD-M combined streams -> normalized events (pure: no socket, no clock).

Wire shapes (shared/docs/protocol-other-venues.md section 1; real frames in venue-samples/binance):

    {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":..,"s":"BTCUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":..,"E":..}}
    {"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":..,"s":..,"p":mark,"i":index,"r":funding,"T":..}}
    {"stream":"btcusdt@depth20@100ms","data":{"e":"depthUpdate","E":..,"T":..,"s":..,"U":..,"u":..,"pu":..,"b":[[p,q]..],"a":[..]}}
    {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","a":id,"s":..,"p":..,"q":..,"T":..,"m":buyer is maker}}
    {"stream":"btcusdt@forceOrder","data":{"e":"forceOrder","E":..,"o":{"s":..,"S":"SELL","q":..,"p":..,"ap":..,"T":..}}}
    {"result":null,"id":1}  /  {"error":{"code":2,"msg":".."},"id":1}      # answers to SUBSCRIBE

Each stream carries part of a ticker: `bookTicker` the top of book, `markPrice` mark, index
and funding; each gives a Ticker with the fields it has (the snapshot hash merges them).
Partial depth (`depth5/10/20`) is a full top-N book every push, so no REST sync is needed;
diff depth (`depth@100ms`) needs a REST snapshot to start from and is counted as ignored.
Binance has no open-interest stream (REST only). Sizes are base units.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, Liquidation, MarketEvent, Ticker, Trade
from shared.feed import BadValue, Control, FrameParser, SubscribeResult, check_fill, enum, number

VENUE = "binance"


class _Error(msgspec.Struct):
    code: int = 0
    msg: str = ""


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")
    e: str = ""  # a raw (not combined) stream's event type
    id: int | str | None = None
    error: _Error | None = None


class _BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    E: int = 0
    T: int = 0


class _Mark(msgspec.Struct):
    s: str
    E: int
    p: str = ""
    i: str = ""
    r: str = ""
    T: int = 0


class _Depth(msgspec.Struct):
    s: str
    E: int
    u: int
    b: list[tuple[float, float]]
    a: list[tuple[float, float]]
    T: int = 0


class _AggTrade(msgspec.Struct):
    a: int  # aggregate trade id
    s: str
    p: float
    q: float
    T: int
    m: bool  # buyer is the maker: the taker sold


class _ForceOrderData(msgspec.Struct):
    s: str
    S: str  # side of the liquidation order: SELL closes a long
    q: float
    p: float
    T: int
    ap: float = 0.0  # average fill price


class _ForceOrder(msgspec.Struct):
    o: _ForceOrderData


_envelope = msgspec.json.Decoder(_Envelope).decode
_book_ticker = msgspec.json.Decoder(_BookTicker).decode
_mark = msgspec.json.Decoder(_Mark).decode
_depth = msgspec.json.Decoder(_Depth, strict=False).decode
_agg_trade = msgspec.json.Decoder(_AggTrade, strict=False).decode
_force_order = msgspec.json.Decoder(_ForceOrder, strict=False).decode
_LIQUIDATED = {"SELL": "long", "BUY": "short"}
_RAW_KINDS = {"bookTicker": "bookTicker", "markPriceUpdate": "markPrice", "aggTrade": "aggTrade",
              "forceOrder": "forceOrder"}  # a raw stream's event type -> stream kind


def stream_kind(stream: str) -> str:
    """`btcusdt@markPrice@1s` -> `markPrice`; `btcusdt@depth20@100ms` -> `depth20`."""
    return stream.split("@", 2)[1] if "@" in stream else ""


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _envelope(raw)
        if env.stream:
            kind = stream_kind(env.stream)
        elif env.e:
            kind = _RAW_KINDS.get(env.e, env.e)
            env.data = msgspec.Raw(raw if isinstance(raw, bytes) else raw.encode())
        elif env.id is not None:
            message = env.error.msg if env.error else ""
            return [SubscribeResult(env.error is None, message, str(env.id))]
        else:
            raise BadValue("neither a stream event nor an answer to a request")
        if kind.startswith("depth"):  # depth20 is a top-20 book; depth, depthUpdate are diffs
            kind = "depth" if kind[5:].isdigit() else "depth_diff"
        return self.dispatch(kind, env.data, receive_ts_us)

    def _book_ticker(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _book_ticker(data)
        inst = self.instrument(m.s)
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.T or m.E, receive_ts_us=receive_ts_us,
                       bid=number(m.b, "b", positive=True), ask=number(m.a, "a", positive=True),
                       bid_size=number(m.B, "B"), ask_size=number(m.A, "A"))]

    def _mark_price(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _mark(data)
        inst = self.instrument(m.s)
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.E, receive_ts_us=receive_ts_us,
                       mark=number(m.p, "p", positive=True), index=number(m.i, "i", positive=True),
                       funding_rate=number(m.r, "r", low=-1.0), next_funding_ts_ms=m.T or None,
                       funding_interval_min=inst.funding_interval_min)]

    def _depth(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _depth(data)
        inst = self.instrument(m.s)
        n = self.book_levels
        for price, size in (*m.b, *m.a):
            check_fill(price, size)
        return [BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=m.u,
                           exchange_ts_ms=m.T or m.E, receive_ts_us=receive_ts_us,
                           bids=tuple(m.b[:n]), asks=tuple(m.a[:n]))]

    def _agg_trade(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _agg_trade(data)
        inst = self.instrument(m.s)
        check_fill(m.p, m.q)
        return [Trade(venue=VENUE, symbol=inst.symbol, trade_id=str(m.a), price=m.p, size=m.q,
                      side="sell" if m.m else "buy", exchange_ts_ms=m.T, receive_ts_us=receive_ts_us)]

    def _force_order(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        o = _force_order(data).o
        inst = self.instrument(o.s)
        price = o.ap or o.p
        check_fill(price, o.q)
        return [Liquidation(venue=VENUE, symbol=inst.symbol, position_side=enum(_LIQUIDATED, o.S, "S"),
                            price=price, size=o.q, exchange_ts_ms=o.T,
                            receive_ts_us=receive_ts_us)]

    _HANDLERS: ClassVar = {
        "bookTicker": _book_ticker,
        "markPrice": _mark_price,
        "depth": _depth,
        "aggTrade": _agg_trade,
        "forceOrder": _force_order,
    }
