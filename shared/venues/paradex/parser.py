"""Paradex JSON-RPC WebSocket channels -> normalized events (pure: no socket, no clock).

Wire shapes (Paradex API documentation; no recorded frames exist offline):

    {"jsonrpc":"2.0","method":"subscription","params":{"channel":"bbo.BTC-USD-PERP","data":{"market":..,
     "bid":"..","bid_size":"..","ask":"..","ask_size":"..","last_updated_at":..,"seq_no":..}}}
    {..,"params":{"channel":"markets_summary.BTC-USD-PERP","data":{"symbol":..,"mark_price":..,
     "underlying_price":..,"last_traded_price":..,"funding_rate":..,"open_interest":..,"created_at":..}}}
    {..,"params":{"channel":"order_book.BTC-USD-PERP.snapshot@15@100ms","data":{"market":..,"seq_no":..,
     "last_updated_at":..,"update_type":"s","inserts":[{"side":"BUY","price":..,"size":..}],..}}}
    {..,"params":{"channel":"trades.BTC-USD-PERP","data":{"id":..,"market":..,"side":"BUY","size":..,
     "price":..,"created_at":..}}}
    {"jsonrpc":"2.0","result":{"channel":".."},"id":1} / {"jsonrpc":"2.0","error":{"code":..,"message":..},"id":1}

Funding accrues continuously; `funding_rate` is the rate per `funding_period_hours` (8 h), so
a ticker carries it with that interval and no next funding time. The underlying (spot
oracle) price is the index. Paradex publishes no liquidations.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, MarketEvent, Ticker, Trade
from shared.feed import BadValue, Control, FrameParser, SubscribeResult, check_fill, enum, number

VENUE = "paradex"


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""


class _Params(msgspec.Struct):
    channel: str
    data: msgspec.Raw


class _Envelope(msgspec.Struct):
    method: str = ""
    params: _Params | None = None
    result: msgspec.Raw = msgspec.Raw(b"")  # empty when absent
    error: _Error | None = None
    id: int | str | None = None


class _Bbo(msgspec.Struct):
    market: str
    bid: str
    bid_size: str
    ask: str
    ask_size: str
    last_updated_at: int


class _Summary(msgspec.Struct):
    symbol: str
    created_at: int
    mark_price: str = ""
    underlying_price: str = ""
    last_traded_price: str = ""
    funding_rate: str = ""
    open_interest: str = ""


class _Level(msgspec.Struct):
    side: str
    price: float
    size: float


class _Book(msgspec.Struct):
    market: str
    seq_no: int
    last_updated_at: int
    update_type: str
    inserts: list[_Level]


class _Trade(msgspec.Struct):
    id: str
    market: str
    side: str
    size: float
    price: float
    created_at: int


_envelope = msgspec.json.Decoder(_Envelope).decode
_bbo = msgspec.json.Decoder(_Bbo).decode
_summary = msgspec.json.Decoder(_Summary).decode
_book = msgspec.json.Decoder(_Book, strict=False).decode
_trade = msgspec.json.Decoder(_Trade, strict=False).decode
_SIDES = {"BUY": "buy", "SELL": "sell"}


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        env = _envelope(raw)
        if env.error is not None:
            return [SubscribeResult(False, f"{env.error.code} {env.error.message}", str(env.id or ""))]
        if env.params is None:
            if env.result:
                return [SubscribeResult(True, "", str(env.id or ""))]
            raise BadValue("neither a subscription message nor an answer")
        return self.dispatch(env.params.channel.partition(".")[0], env.params.data, receive_ts_us)

    def _bbo(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _bbo(data)
        return [Ticker(venue=VENUE, symbol=self.instrument(m.market).symbol, exchange_ts_ms=m.last_updated_at,
                       receive_ts_us=receive_ts_us, bid=number(m.bid, "bid", positive=True),
                       ask=number(m.ask, "ask", positive=True), bid_size=number(m.bid_size, "bid_size"),
                       ask_size=number(m.ask_size, "ask_size"))]

    def _summary(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _summary(data)
        inst = self.instrument(m.symbol)
        rate = number(m.funding_rate, "funding_rate", low=-1.0)
        return [Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=m.created_at, receive_ts_us=receive_ts_us,
                       last=number(m.last_traded_price, "last_traded_price", positive=True),
                       mark=number(m.mark_price, "mark_price", positive=True),
                       index=number(m.underlying_price, "underlying_price", positive=True), funding_rate=rate,
                       funding_interval_min=inst.funding_interval_min if rate is not None else None,
                       open_interest=number(m.open_interest, "open_interest"))]

    def _order_book(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        m = _book(data)
        if m.update_type != "s":
            raise BadValue(f"update_type {m.update_type!r}: only snapshot books are subscribed")
        for level in m.inserts:
            check_fill(level.price, level.size)
        bids = sorted(((x.price, x.size) for x in m.inserts if x.side == "BUY"), reverse=True)
        asks = sorted((x.price, x.size) for x in m.inserts if x.side == "SELL")
        n = self.book_levels
        return [BookUpdate(venue=VENUE, symbol=self.instrument(m.market).symbol, kind="snapshot", update_id=m.seq_no,
                           exchange_ts_ms=m.last_updated_at, receive_ts_us=receive_ts_us, bids=tuple(bids[:n]),
                           asks=tuple(asks[:n]))]

    def _trades(self, data: msgspec.Raw, receive_ts_us: int) -> list[MarketEvent]:
        t = _trade(data)
        check_fill(t.price, t.size)
        return [Trade(venue=VENUE, symbol=self.instrument(t.market).symbol, trade_id=t.id, price=t.price,
                      size=t.size, side=enum(_SIDES, t.side, "side"), exchange_ts_ms=t.created_at,
                      receive_ts_us=receive_ts_us)]

    _HANDLERS: ClassVar = {"bbo": _bbo, "markets_summary": _summary, "order_book": _order_book, "trades": _trades}
