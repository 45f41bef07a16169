"""OKX v5 public channels -> normalized events (pure: no socket, no clock).

Wire shapes (shared/docs/protocol-other-venues.md section 2; real frames in venue-samples/okx):

    {"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[{"last":..,"askPx":..,"askSz":..,"bidPx":..,"bidSz":..,"ts":".."}]}
    {"arg":{"channel":"funding-rate",..},"data":[{"fundingRate":..,"fundingTime":next,"nextFundingTime":..,"ts":..}]}
    {"arg":{"channel":"mark-price",..},"data":[{"markPx":..,"ts":..}]}
    {"arg":{"channel":"index-tickers","instId":"BTC-USDT"},"data":[{"idxPx":..,"ts":..}]}
    {"arg":{"channel":"open-interest",..},"data":[{"oi":contracts,"oiCcy":base coins,"ts":..}]}
    {"arg":{"channel":"books5",..},"data":[{"asks":[[px,sz,"0",orders]..],"bids":[..],"ts":..,"seqId":..}]}
    {"arg":{"channel":"books",..},"action":"snapshot"|"update","data":[{"asks":..,"bids":..,"ts":..,"checksum":..}]}
    {"arg":{"channel":"trades",..},"data":[{"tradeId":..,"px":..,"sz":..,"side":"buy"|"sell","ts":..}]}
    {"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"instId":..,"details":[{"posSide":..,"side":..,"bkPx":..,"sz":..,"ts":..}]}]}
    {"event":"subscribe","arg":{..},"connId":".."} / {"event":"error","code":"60012","msg":".."} / pong

Sizes are contracts and become base units through the instrument (`ctVal`; inverse
contracts are USD, divided by the price). The funding interval is `nextFundingTime -
fundingTime`. `books` (400 levels, incremental) is kept as a local book and published as its
top levels; an update before its snapshot asks for a resubscribe. Its CRC32 checksum is not
verified (it needs the venue's exact strings, which the book does not keep).
"""

from __future__ import annotations

from math import inf
from typing import ClassVar

import msgspec

from shared.book import BadLevel, OrderBook
from shared.events import BookUpdate, Liquidation, MarketEvent, Ticker, Trade
from shared.feed import BadValue, Control, FrameParser, Pong, SubscribeResult, check_fill, enum, number

VENUE = "okx"

class _Arg(msgspec.Struct):
    channel: str = ""
    instId: str = ""

class _Envelope(msgspec.Struct):
    arg: _Arg | None = None
    data: msgspec.Raw = msgspec.Raw(b"[]")
    action: str = ""
    event: str = ""
    code: str = ""
    msg: str = ""
    id: str = ""

class _Ticker(msgspec.Struct):
    instId: str
    ts: int
    last: str = ""
    askPx: str = ""
    askSz: str = ""
    bidPx: str = ""
    bidSz: str = ""

class _Funding(msgspec.Struct):
    instId: str
    fundingRate: str
    fundingTime: int
    ts: int
    nextFundingTime: int | None = None

class _Mark(msgspec.Struct):
    instId: str
    markPx: str
    ts: int

class _Index(msgspec.Struct):
    instId: str  # the index, e.g. BTC-USDT
    idxPx: str
    ts: int

class _OpenInterest(msgspec.Struct):
    instId: str
    oiCcy: str
    ts: int

class _Book(msgspec.Struct):
    asks: list[list[float]]  # [price, size, "0" (deprecated), orders]
    bids: list[list[float]]
    ts: int
    seqId: int | None = None
    prevSeqId: int | None = None

class _Trade(msgspec.Struct):
    instId: str
    tradeId: str
    px: float
    sz: float
    side: str
    ts: int

class _LiquidationDetail(msgspec.Struct):
    side: str
    bkPx: float
    sz: float
    ts: int
    posSide: str = ""

class _Liquidation(msgspec.Struct):
    instId: str
    details: list[_LiquidationDetail]

_envelope = msgspec.json.Decoder(_Envelope).decode
_tickers = msgspec.json.Decoder(list[_Ticker], strict=False).decode
_funding = msgspec.json.Decoder(list[_Funding], strict=False).decode
_marks = msgspec.json.Decoder(list[_Mark], strict=False).decode
_indexes = msgspec.json.Decoder(list[_Index], strict=False).decode
_open_interest = msgspec.json.Decoder(list[_OpenInterest], strict=False).decode
_books = msgspec.json.Decoder(list[_Book], strict=False).decode
_trades = msgspec.json.Decoder(list[_Trade], strict=False).decode
_liquidations = msgspec.json.Decoder(list[_Liquidation], strict=False).decode
_SIDES = {"buy": "buy", "sell": "sell"}
_LIQUIDATED = {"long": "long", "short": "short"}
_CLOSED_BY = {"sell": "long", "buy": "short"}  # net mode: the order's side closes the other
BOOK_LEVELS = 400

class Parser(FrameParser):
    venue = VENUE

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._books: dict[str, OrderBook] = {}

    def parse(self, raw: bytes | str, receive_ts_us: int) -> list[MarketEvent | Control]:
        if raw == b"pong" or raw == "pong":
            return [Pong()]
        env = _envelope(raw)
        if env.event:
            if env.event in ("subscribe", "unsubscribe"):
                return [SubscribeResult(True, "", env.id)]
            if env.event == "error":
                return [SubscribeResult(False, f"{env.code} {env.msg}", env.id)]
            self.stats.ignore(env.event)
            return []
        return self.dispatch(env.arg.channel if env.arg else "", env, receive_ts_us)

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._books.pop(topic, None)

    def _tickers(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _tickers(env.data):
            inst = self.instrument(t.instId)
            bid, ask = number(t.bidPx, "bidPx", positive=True), number(t.askPx, "askPx", positive=True)
            bid_size, ask_size = number(t.bidSz, "bidSz"), number(t.askSz, "askSz")
            out.append(Ticker(
                venue=VENUE, symbol=inst.symbol, exchange_ts_ms=t.ts, receive_ts_us=receive_ts_us, bid=bid, ask=ask,
                bid_size=inst.base_size(bid_size, bid) if bid and bid_size is not None else None,
                ask_size=inst.base_size(ask_size, ask) if ask and ask_size is not None else None,
                last=number(t.last, "last", positive=True)))
        return out

    def _funding(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for f in _funding(env.data):
            inst = self.instrument(f.instId)
            interval = (f.nextFundingTime - f.fundingTime) // 60_000 if f.nextFundingTime else None
            if interval is not None and interval <= 0:
                raise BadValue(f"nextFundingTime {f.nextFundingTime} is not after fundingTime {f.fundingTime}")
            out.append(Ticker(venue=VENUE, symbol=inst.symbol, exchange_ts_ms=f.ts, receive_ts_us=receive_ts_us,
                              funding_rate=number(f.fundingRate, "fundingRate", low=-1.0),
                              next_funding_ts_ms=f.fundingTime, funding_interval_min=interval))
        return out

    def _marks(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        return [Ticker(venue=VENUE, symbol=self.instrument(m.instId).symbol, exchange_ts_ms=m.ts,
                       receive_ts_us=receive_ts_us, mark=number(m.markPx, "markPx", positive=True))
                for m in _marks(env.data)]

    def _indexes(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        return [Ticker(venue=VENUE, symbol=self.instrument(i.instId + "-SWAP").symbol, exchange_ts_ms=i.ts,
                       receive_ts_us=receive_ts_us, index=number(i.idxPx, "idxPx", positive=True))
                for i in _indexes(env.data)]

    def _open_interest(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        return [Ticker(venue=VENUE, symbol=self.instrument(o.instId).symbol, exchange_ts_ms=o.ts,
                       receive_ts_us=receive_ts_us, open_interest=number(o.oiCcy, "oiCcy"))
                for o in _open_interest(env.data)]

    def _books5(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        inst = self.instrument(env.arg.instId)
        out = []
        for b in _books(env.data):
            bids, asks = self._levels(inst, b.bids, whole=True), self._levels(inst, b.asks, whole=True)
            out.append(BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=b.seqId or b.ts,
                                  exchange_ts_ms=b.ts, receive_ts_us=receive_ts_us,
                                  bids=bids[: self.book_levels], asks=asks[: self.book_levels]))
        return out

    @staticmethod
    def _levels(inst, rows: list[list[float]], whole: bool = False) -> tuple[tuple[float, float], ...]:
        """[price, size, ..] rows in base units; a snapshot's (`whole`) sizes are all > 0."""
        for row in rows:
            if len(row) < 2 or not (0 < row[0] < inf and 0 <= row[1] < inf) or (whole and not row[1]):
                raise BadValue(f"book level {row} is not [price, size, ..] in range")
        return tuple((row[0], inst.base_size(row[1], row[0])) for row in rows)

    def _book(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent | Control]:
        inst = self.instrument(env.arg.instId)
        topic = f"books:{env.arg.instId}"
        books = _books(env.data)
        if len(books) != 1:
            raise BadValue(f"{len(books)} books in one message, not 1")
        b = books[0]
        book = self._books.get(topic)
        bids, asks = self._levels(inst, b.bids), self._levels(inst, b.asks)
        try:
            if env.action == "snapshot":
                book = self._books[topic] = OrderBook(BOOK_LEVELS)
                book.apply_snapshot(bids, asks, b.seqId or 0)
                self.snapshot_arrived(topic)
            elif book is None or book.update_id is None:
                return self.resync(topic, "book_update_before_snapshot", "book update before snapshot")
            elif b.prevSeqId is not None and book.update_id and b.prevSeqId != book.update_id:
                self.stats.gaps += 1
                reason = f"prevSeqId {b.prevSeqId} after seqId {book.update_id}"
                book.update_id = None
                return self.resync(topic, "", reason)
            else:
                book.apply_delta(bids, asks, b.seqId or 0)
        except BadLevel as exc:
            book.update_id = None
            return self.resync(topic, "bad_books", str(exc))
        top_bids, top_asks = book.top(self.book_levels)
        return [BookUpdate(venue=VENUE, symbol=inst.symbol, kind="snapshot", update_id=b.seqId or b.ts,
                           exchange_ts_ms=b.ts, receive_ts_us=receive_ts_us, bids=top_bids, asks=top_asks)]

    def _trades(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for t in _trades(env.data):
            inst = self.instrument(t.instId)
            size = inst.base_size(t.sz, t.px) if t.px > 0 else 0.0
            check_fill(t.px, size)
            out.append(Trade(venue=VENUE, symbol=inst.symbol, trade_id=t.tradeId, price=t.px, size=size,
                             side=enum(_SIDES, t.side, "side"), exchange_ts_ms=t.ts, receive_ts_us=receive_ts_us))
        return out

    def _liquidations(self, env: _Envelope, receive_ts_us: int) -> list[MarketEvent]:
        out = []
        for item in _liquidations(env.data):
            inst = self.symbols.from_venue(item.instId)
            if inst is None:  # the channel carries every swap; keep the ones subscribed
                self.stats.ignore("liquidation_other_symbol")
                continue
            for d in item.details:
                size = inst.base_size(d.sz, d.bkPx) if d.bkPx > 0 else 0.0
                check_fill(d.bkPx, size)
                side = (enum(_LIQUIDATED, d.posSide, "posSide") if d.posSide in _LIQUIDATED
                        else enum(_CLOSED_BY, d.side, "side"))
                out.append(Liquidation(venue=VENUE, symbol=inst.symbol, position_side=side, price=d.bkPx,
                                       size=size, exchange_ts_ms=d.ts, receive_ts_us=receive_ts_us))
        return out

    _HANDLERS: ClassVar = {
        "tickers": _tickers,
        "funding-rate": _funding,
        "mark-price": _marks,
        "index-tickers": _indexes,
        "open-interest": _open_interest,
        "books5": _books5,
        "books": _book,
        "trades": _trades,
        "liquidation-orders": _liquidations,
    }
