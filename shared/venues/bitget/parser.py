"""Bitget v2 USDT-futures public channels -> normalized events (pure: no socket, no clock).

Wire shapes (shared/docs/protocol-other-venues.md section 3; frames in venue-samples/bitget):

    {"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"ticker","instId":"BTCUSDT"},
     "data":[{"instId":..,"lastPr":..,"bidPr":..,"askPr":..,"bidSz":..,"askSz":..,"fundingRate":..,
     "nextFundingTime":..,"markPrice":..,"indexPrice":..,"holdingAmount":..,"ts":".."}],"ts":..}
    {"action":"snapshot","arg":{..,"channel":"books5",..},"data":[{"asks":[[px,sz]..],"bids":[..],"checksum":..,"ts":".."}]}
    {"action":"snapshot","arg":{..,"channel":"trade",..},"data":[{"ts":..,"price":..,"size":..,"side":"buy","tradeId":..}]}
    {"event":"subscribe","arg":{..}} / {"event":"error","code":30001,"msg":".."} / pong

The ticker carries funding, mark, index and open interest (`holdingAmount`, base coins); the
funding interval comes from the contracts list. Bitget publishes no liquidations.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.events import BookUpdate, MarketEvent, Ticker, Trade
from shared.feed import Control, FrameParser, Pong, SubscribeResult, check_fill, enum, number

VENUE = "bitget"


class _Arg(msgspec.Struct):
    channel: str = ""
    instId: str = ""


class _Envelope(msgspec.Struct):
    arg: _Arg | None = None
    data: msgspec.Raw = msgspec.Raw(b"[]")
    action: str = ""
    event: str = ""
    code: int | str = ""
    msg: str = ""


class _Ticker(msgspec.Struct):
    instId: str
    ts: int
    lastPr: str = ""
    bidPr: str = ""
    askPr: str = ""
    bidSz: str = ""
    askSz: str = ""
    fundingRate: str = ""
    nextFundingTime: int | None = None
    markPrice: str = ""
    indexPrice: str = ""
    holdingAmount: str = ""


class _Book(msgspec.Struct):
    asks: list[tuple[float, float]]
    bids: list[tuple[float, float]]
    ts: int
    seq: int | None = None


class _Trade(msgspec.Struct):
    ts: int
    price: float
    size: float
    side: str
    tradeId: str


_envelope = msgspec.json.Decoder(_Envelope).decode
_tickers = msgspec.json.Decoder(list[_Ticker], strict=False).decode
_books = msgspec.json.Decoder(list[_Book], strict=False).decode
_trades = msgspec.json.Decoder(list[_Trade], strict=False).decode
_SIDES = {"buy": "buy", "sell": "sell"}


class Parser(FrameParser):
    venue = VENUE

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        if raw == b"pong" or raw == "pong":
            return [Pong()]
        env = _envelope(raw)
        if env.event:
            if env.event in ("subscribe", "unsubscribe"):
                return [SubscribeResult(True, "")]
            if env.event == "error":
                return [SubscribeResult(False, f"{env.code} {env.msg}")]
            self.stats.ignore(env.event)
            return []
        return self.dispatch(env.arg.channel if env.arg else "", env, receive_ts_us)

    def _tickers(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _tickers(env.data):
            inst = self.instrument(t.instId)
            rate = number(t.fundingRate, "fundingRate", low=-1.0)
            out.append(Ticker(
                venue=VENUE, symbol=inst.symbol, exchange_ts_ms=t.ts, receive_ts_us=receive_ts_us,
                bid=number(t.bidPr, "bidPr", positive=True), ask=number(t.askPr, "askPr", positive=True),
                bid_size=number(t.bidSz, "bidSz"), ask_size=number(t.askSz, "askSz"),
                last=number(t.lastPr, "lastPr", positive=True), mark=number(t.markPrice, "markPrice", positive=True),
                index=number(t.indexPrice, "indexPrice", positive=True), funding_rate=rate,
                next_funding_ts_ms=t.nextFundingTime or None,
                funding_interval_min=inst.funding_interval_min if rate is not None else None,
                open_interest=number(t.holdingAmount, "holdingAmount")))
        return out

    def _books(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        inst = self.instrument(env.arg.instId)
        out = []
        for b in _books(env.data):
            for price, size in (*b.bids, *b.asks):
                check_fill(price, size)
            out.append(BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=b.seq or b.ts,
                                  exchange_ts_ms=b.ts, receive_ts_us=receive_ts_us,
                                  bids=tuple(b.bids[: self.book_levels]), asks=tuple(b.asks[: self.book_levels])))
        return out

    def _trades(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        inst = self.instrument(env.arg.instId)
        trades = _trades(env.data)
        for t in trades:
            check_fill(t.price, t.size)
        return [Trade(venue=VENUE, symbol=inst.symbol, trade_id=t.tradeId, price=t.price, size=t.size,
                      side=enum(_SIDES, t.side, "side"), exchange_ts_ms=t.ts, receive_ts_us=receive_ts_us)
                for t in trades]

    _HANDLERS: ClassVar = {"ticker": _tickers, "books5": _books, "books15": _books, "trade": _trades}
