"""Hyperliquid WebSocket channels -> normalized events (pure: no socket, no clock).

Wire shapes (protocol-other-venues.md section 4; venue-samples/hyperliquid):

    {"channel":"bbo","data":{"coin":"BTC","time":..,"bbo":[{"px":"..","sz":"..","n":3},{..}]}}
    {"channel":"l2Book","data":{"coin":"BTC","time":..,"levels":[[{"px","sz","n"}..bids],[..asks]]}}
    {"channel":"trades","data":[{"coin":"BTC","side":"B"|"A","px":..,"sz":..,"time":..,"tid":..,"hash":..}]}
    {"channel":"activeAssetCtx","data":{"coin":"BTC","ctx":{"funding":..,"openInterest":..,"oraclePx":..,"markPx":..}}}
    {"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{..}}}
    {"channel":"error","data":"Invalid subscription .."} / {"channel":"pong"}

`side` of a trade is the aggressor's (B: a buy took the ask). The asset context is not
stamped, so its ticker carries the receipt time; funding is hourly, and the next funding
time is taken as the next whole hour after receipt (the funding-history fixture in
venue-samples is hourly but stamped at :20 past; not confirmed against the live venue). The oracle price is the index.
Hyperliquid publishes no liquidations.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, MarketEvent, Ticker, Trade
from shared.feed import BadValue, Control, FrameParser, Pong, SubscribeResult, check_fill, enum, number

VENUE = "hyperliquid"
HOUR_MS = 3_600_000


class _Envelope(msgspec.Struct):
    channel: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Level(msgspec.Struct):
    px: float
    sz: float


class _Book(msgspec.Struct):
    coin: str
    time: int
    levels: tuple[list[_Level], list[_Level]]


class _Bbo(msgspec.Struct):
    coin: str
    time: int
    bbo: tuple[_Level | None, _Level | None]


class _Trade(msgspec.Struct):
    coin: str
    side: str
    px: float
    sz: float
    time: int
    tid: int


class _Ctx(msgspec.Struct):
    funding: str = ""
    openInterest: str = ""
    oraclePx: str = ""
    markPx: str = ""


class _AssetCtx(msgspec.Struct):
    coin: str
    ctx: _Ctx


_envelope = msgspec.json.Decoder(_Envelope).decode
_book = msgspec.json.Decoder(_Book, strict=False).decode
_bbo = msgspec.json.Decoder(_Bbo, strict=False).decode
_trades = msgspec.json.Decoder(list[_Trade], strict=False).decode
_asset_ctx = msgspec.json.Decoder(_AssetCtx).decode
_error = msgspec.json.Decoder(str).decode
_SIDES = {"B": "buy", "A": "sell"}


def _levels(levels: list[_Level], n: int) -> tuple[tuple[float, float], ...]:
    for level in levels:
        check_fill(level.px, level.sz)
    return tuple((level.px, level.sz) for level in levels[:n])


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _envelope(raw)
        if env.channel == "pong":
            return [Pong()]
        if env.channel == "subscriptionResponse":
            return [SubscribeResult(True, "")]
        if env.channel == "error":
            return [SubscribeResult(False, _error(env.data))]
        return self.dispatch(env.channel, env.data, receive_ts_us)

    def _bbo(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _bbo(data)
        bid, ask = m.bbo
        for level in (bid, ask):
            if level is not None:
                check_fill(level.px, level.sz)
        return [Ticker(venue=VENUE, symbol=self.instrument(m.coin).symbol, exchange_ts_ms=m.time,
                       receive_ts_us=receive_ts_us, bid=bid.px if bid else None, ask=ask.px if ask else None,
                       bid_size=bid.sz if bid else None, ask_size=ask.sz if ask else None)]

    def _book(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _book(data)
        n = self.book_levels
        return [BookUpdate(venue=VENUE, symbol=self.instrument(m.coin).symbol, kind="snapshot", update_id=m.time,
                           exchange_ts_ms=m.time, receive_ts_us=receive_ts_us, bids=_levels(m.levels[0], n),
                           asks=_levels(m.levels[1], n))]

    def _trades(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _trades(data):
            check_fill(t.px, t.sz)
            out.append(Trade(venue=VENUE, symbol=self.instrument(t.coin).symbol, trade_id=str(t.tid), price=t.px,
                             size=t.sz, side=enum(_SIDES, t.side, "side"), exchange_ts_ms=t.time,
                             receive_ts_us=receive_ts_us))
        return out

    def _asset_ctx(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _asset_ctx(data)
        inst = self.instrument(m.coin)
        received_ms = receive_ts_us // 1000
        rate = number(m.ctx.funding, "funding", low=-1.0)
        if rate is None:
            raise BadValue("asset context without a funding rate")
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=received_ms, receive_ts_us=receive_ts_us,
                       mark=number(m.ctx.markPx, "markPx", positive=True),
                       index=number(m.ctx.oraclePx, "oraclePx", positive=True), funding_rate=rate,
                       next_funding_ts_ms=(received_ms // HOUR_MS + 1) * HOUR_MS,
                       funding_interval_min=inst.funding_interval_min,
                       open_interest=number(m.ctx.openInterest, "openInterest"))]

    _HANDLERS: ClassVar = {"bbo": _bbo, "l2Book": _book, "trades": _trades, "activeAssetCtx": _asset_ctx}
