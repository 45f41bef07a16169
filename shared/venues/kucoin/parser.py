"""KuCoin futures public topics -> normalized events (pure: no socket, no clock).

Wire shapes (KuCoin futures WebSocket documentation; no recorded frames exist offline):

    {"type":"message","topic":"/contractMarket/tickerV2:XBTUSDTM","subject":"tickerV2","data":{"symbol":..,
     "sequence":..,"bestBidSize":795,"bestBidPrice":"3200.0","bestAskPrice":"3600.0","bestAskSize":284,"ts":ns}}
    {"type":"message","topic":"/contractMarket/level2Depth5:XBTUSDTM","subject":"level2","data":{"bids":[[p,q]..],
     "asks":[..],"sequence":..,"timestamp":ms}}
    {"type":"message","topic":"/contractMarket/execution:XBTUSDTM","subject":"match","data":{"symbol":..,
     "side":"buy","size":1,"price":"3200.00","tradeId":"..","ts":ns}}
    {"type":"message","topic":"/contract/instrument:XBTUSDTM","subject":"mark.index.price",
     "data":{"indexPrice":4000.23,"markPrice":4010.52,"timestamp":ms}}   (and subject "funding.rate":
     {"fundingRate":-0.002966,"timestamp":ms})
    {"id":"..","type":"welcome"} / {"id":"..","type":"ack"} / {"id":"..","type":"pong"}
    {"id":"..","type":"error","code":404,"data":"topic .. is not found"}

Sizes are lots of the contract's `multiplier` coins; times in `ts` are nanoseconds. Funding
settles on the interval's UTC boundary, so the next funding time is the next multiple of
the interval after the message. KuCoin publishes no liquidations on a public topic.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, MarketEvent, Ticker, Trade
from shared.feed import BadValue, Control, FrameParser, Pong, SubscribeResult, check_fill, enum

VENUE = "kucoin"


class _Envelope(msgspec.Struct):
    type: str = ""
    topic: str = ""
    subject: str = ""
    id: str = ""
    code: int | str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Ticker(msgspec.Struct):
    bestBidPrice: float
    bestBidSize: float
    bestAskPrice: float
    bestAskSize: float
    ts: int


class _Depth(msgspec.Struct):
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    timestamp: int
    sequence: int = 0


class _Match(msgspec.Struct):
    side: str
    size: float
    price: float
    tradeId: str
    ts: int


class _MarkIndex(msgspec.Struct):
    timestamp: int
    markPrice: float | None = None
    indexPrice: float | None = None


class _Funding(msgspec.Struct):
    fundingRate: float
    timestamp: int


_envelope = msgspec.json.Decoder(_Envelope).decode
_ticker = msgspec.json.Decoder(_Ticker, strict=False).decode
_depth = msgspec.json.Decoder(_Depth, strict=False).decode
_match = msgspec.json.Decoder(_Match, strict=False).decode
_mark_index = msgspec.json.Decoder(_MarkIndex, strict=False).decode
_funding = msgspec.json.Decoder(_Funding, strict=False).decode
_text = msgspec.json.Decoder(str).decode
_SIDES = {"buy": "buy", "sell": "sell"}


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _envelope(raw)
        if env.type == "message":
            name, _, symbol = env.topic.partition(":")
            return self.dispatch(name.rsplit("/", 1)[-1], (env, symbol), receive_ts_us)
        if env.type == "ack":
            return [SubscribeResult(True, "", env.id)]
        if env.type == "error":
            return [SubscribeResult(False, f"{env.code} {_text(env.data) if env.data != b'null' else ''}", env.id)]
        if env.type == "pong":
            return [Pong()]
        self.stats.ignore(env.type or "unknown")  # welcome
        return []

    def _ticker(self, message, receive_ts_us: int) -> list[MarketEvent]:
        env, symbol = message
        m, inst = _ticker(env.data), self.instrument(symbol)
        check_fill(m.bestBidPrice, m.bestBidSize or 1.0)
        check_fill(m.bestAskPrice, m.bestAskSize or 1.0)
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.ts // 1_000_000, receive_ts_us=receive_ts_us,
                       bid=m.bestBidPrice, ask=m.bestAskPrice, bid_size=inst.base_size(m.bestBidSize, 1.0),
                       ask_size=inst.base_size(m.bestAskSize, 1.0))]

    def _depth(self, message, receive_ts_us: int) -> list[MarketEvent]:
        env, symbol = message
        m, inst, n = _depth(env.data), self.instrument(symbol), self.book_levels
        for price, size in (*m.bids, *m.asks):
            check_fill(price, size)
        return [BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=m.sequence or m.timestamp,
                           exchange_ts_ms=m.timestamp, receive_ts_us=receive_ts_us,
                           bids=tuple((p, inst.base_size(q, p)) for p, q in m.bids[:n]),
                           asks=tuple((p, inst.base_size(q, p)) for p, q in m.asks[:n]))]

    def _execution(self, message, receive_ts_us: int) -> list[MarketEvent]:
        env, symbol = message
        m, inst = _match(env.data), self.instrument(symbol)
        size = inst.base_size(m.size, m.price)
        check_fill(m.price, size)
        return [Trade(venue=VENUE, symbol=inst.symbol, trade_id=m.tradeId, price=m.price, size=size,
                      side=enum(_SIDES, m.side, "side"), exchange_ts_ms=m.ts // 1_000_000, receive_ts_us=receive_ts_us)]

    def _instrument(self, message, receive_ts_us: int) -> list[MarketEvent]:
        env, symbol = message
        inst = self.instrument(symbol)
        if env.subject == "mark.index.price":
            m = _mark_index(env.data)
            for price in (m.markPrice, m.indexPrice):
                if price is not None and not 0 < price < float("inf"):
                    raise BadValue(f"price {price} is out of range")
            return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.timestamp, receive_ts_us=receive_ts_us,
                           mark=m.markPrice, index=m.indexPrice)]
        if env.subject == "funding.rate":
            f = _funding(env.data)
            if not -1.0 <= f.fundingRate <= 1.0:  # also false for NaN
                raise BadValue(f"fundingRate {f.fundingRate} is out of range")
            interval_ms = (inst.funding_interval_min or 0) * 60_000
            return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=f.timestamp, receive_ts_us=receive_ts_us,
                           funding_rate=f.fundingRate,
                           funding_interval_min=inst.funding_interval_min,
                           next_funding_ts_ms=(f.timestamp // interval_ms + 1) * interval_ms if interval_ms else None)]
        self.stats.ignore(f"instrument_{env.subject}")
        return []

    _HANDLERS: ClassVar = {"tickerV2": _ticker, "level2Depth5": _depth, "level2Depth50": _depth,
                           "execution": _execution, "instrument": _instrument}
