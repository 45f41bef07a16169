"""OKX v5 public market data for USDT swaps (protocol-other-venues.md §2), in the shapes of
venue-samples/okx and OKX's docs (docs-v5: order book channel, Get ticker, Get tickers, Get
order book, REST error codes):

* `/ws/v5/public` with `{"op": "subscribe", "args": [{"channel", "instId"}]}` (an `id` is
  echoed), channels `tickers`, `funding-rate`, `mark-price`, `index-tickers` (on `BTC-USDT`),
  `open-interest`, `books5`, `books`, `trades` and `liquidation-orders` (by `instType`, quiet:
  the model has no liquidations); the plain-text `ping`/`pong`.
* `books`: up to 400 levels a side (the model's book has `ModelConfig.book_levels`, 200 by
  default), `"action": "snapshot"` on subscribing (`prevSeqId` -1), then every 100 ms that
  the book changed an `"update"` with the changed levels (size "0" deletes one); each carries
  `checksum`, OKX's CRC32 (signed) of the first 25 levels of the whole book interleaved
  "bidPx:bidSz:askPx:askSz:...", `ts`, and `seqId`/`prevSeqId` chained (`prevSeqId` is the
  previous message's `seqId`). After 60 s without a change an update with empty sides and
  `prevSeqId` == `seqId` says the stream is alive. A second subscriber gets the snapshot of
  the book the stream last sent, so the updates that follow apply to it.
* Levels are `[price, size, "0", orders]` (the third is OKX's deprecated field).
  `seqId` numbers the versions of an instrument's book: `books`, `books5` and REST
  `market/books` share it, and it grows by the number of levels that changed.
* REST `/api/v5/public/time`, `instruments` and `funding-rate`; `/api/v5/market/ticker?instId=`,
  `tickers?instType=SWAP` (SPOT, MARGIN, FUTURES and OPTION answer an empty list: only swaps
  are simulated) and `books?instId=&sz=` (sz 1 by default, at most 400; `ts`, `seqId`).
  Errors as OKX answers them: 50014 "Parameter {name} can not be empty." (HTTP 400), 51000
  "Parameter {name} error" (400), 51001 for an unknown instrument (HTTP 200).

Instruments are `BTC-USDT-SWAP` and sizes are in contracts of `ctVal` base units each, as
on OKX, so a client must apply the multiplier.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

from services.sim.dialect import Dialect, Reply, book_diff, checksum
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
CT_VAL = {"BTC": Decimal("0.01"), "ETH": Decimal("0.1"), "SOL": Decimal("1"), "DOGE": Decimal("1000")}
MAX_LIMIT_SZ, MAX_MARKET_SZ = Decimal(100_000_000), Decimal(10_000)  # instruments' maxLmtSz, maxMktSz (contracts)
CHANNEL_EVERY_MS = {"tickers": 100, "books5": 100, "books": 100, "funding-rate": 30_000, "trades": 0,
                    "mark-price": 200, "index-tickers": 100, "open-interest": 3000}
BOOK_DEPTH = 400  # `books` and REST `market/books` at most
QUIET_MS = 60_000  # `books` says it is alive after this long without a change
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
# OKX's REST errors (error-code-rest-api-public): their messages and HTTP statuses (200 otherwise)
INSTRUMENT_UNKNOWN = "Instrument ID, Instrument ID code or Spread ID doesn't exist."
HTTP_STATUS = {"50014": 400, "51000": 400}


def inst_id(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}-USDT-SWAP"


def ct_val(symbol: str) -> Decimal:
    return CT_VAL.get(symbol.removesuffix("USDT"), Decimal(1))


def orders_at(lots: int) -> str:
    """How many orders a level of `lots` shows (the model has sizes, not orders)."""
    return str(math.isqrt(lots)) if lots else "0"


class OkxDialect(Dialect):
    name = "okx"
    ws_paths = ("/ws/v5/public",)
    every_ms = CHANNEL_EVERY_MS
    unsnapshotted = frozenset({"trades"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {inst_id(s): s for s in model.states}
        # instId -> the book last read (BOOK_DEPTH levels a side) and its seqId
        self._versions: dict[str, tuple[dict[int, int], dict[int, int], int]] = {}
        # `books` topic -> the book its stream last sent, that book's seqId, when it last pushed
        self._books: dict[str, tuple[dict[int, int], dict[int, int], int, int]] = {}

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        if text == "ping":
            return Reply([b"pong"])
        request = self.decode(text)
        if request is None or request.get("op") not in ("subscribe", "unsubscribe"):
            return Reply([_encode({"event": "error", "code": "60012", "msg": f"Invalid request: {text[:200]}",
                                   "connId": conn_id})])
        op, args = request["op"], request.get("args")
        head = {"id": request["id"]} if "id" in request else {}
        if not isinstance(args, list) or not args:
            return Reply([_encode({**head, "event": "error", "code": "60012", "msg": "Invalid request: args",
                                   "connId": conn_id})])
        reply = Reply()
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            if channel == "liquidation-orders" and arg.get("instType") == "SWAP":
                reply.frames.append(_encode({**head, "event": op, "arg": arg, "connId": conn_id}))
                continue
            instrument = arg.get("instId") if isinstance(arg, dict) else None
            if channel == "index-tickers" and isinstance(instrument, str):
                instrument += "-SWAP"  # the index is BTC-USDT; kept by the swap it prices
            if channel not in CHANNEL_EVERY_MS or instrument not in self.symbols:
                reply.frames.append(_encode({**head, "event": "error", "code": "60018", "connId": conn_id,
                                             "msg": f"Wrong URL or channel:{channel},instId:{instrument} "
                                                    "doesn't exist"}))
                continue
            reply.frames.append(_encode({**head, "event": op, "arg": {"channel": channel, "instId": arg["instId"]},
                                         "connId": conn_id}))
            (reply.subscribe if op == "subscribe" else reply.unsubscribe).append(f"{channel}:{instrument}")
        return reply

    def frames(self, topic: str) -> list[bytes]:
        channel, _, instrument = topic.partition(":")
        state = self.model.states[self.symbols[instrument]]
        frame = self._books_step(topic, instrument, state) if channel == "books" else \
            self._frame(channel, instrument, state)
        return [frame] if frame is not None else []

    def snapshot(self, topic: str) -> list[bytes]:
        channel, _, instrument = topic.partition(":")
        if channel != "books":
            return super().snapshot(topic)
        state = self.model.states[self.symbols[instrument]]
        if topic not in self._books:  # the first subscriber starts the stream
            self.due(topic, CHANNEL_EVERY_MS[channel])
            self._books[topic] = (*self._version(instrument, state), self.model.now_ms)
        bids, asks, seq, pushed_ms = self._books[topic]
        return [self._books_frame("snapshot", instrument, state, bids, asks, bids, asks, -1, seq, pushed_ms)]

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._books.pop(topic, None)

    def _version(self, instrument: str, state: SymbolState) -> tuple[dict[int, int], dict[int, int], int]:
        """The instrument's book now and its seqId, which grows by the levels that changed."""
        bids, asks = self.quote(state, BOOK_DEPTH)
        old = self._versions.get(instrument)
        if old is None:
            seq = len(bids) + len(asks)
        else:
            changed = len(book_diff(old[0], bids)) + len(book_diff(old[1], asks))
            if not changed:
                return old
            seq = old[2] + changed
        self._versions[instrument] = bids, asks, seq
        return bids, asks, seq

    def _books_step(self, topic: str, instrument: str, state: SymbolState) -> bytes | None:
        """The `books` update since the stream's last push, or the keepalive when quiet long."""
        if topic not in self._books:  # stepped without a subscribe: it starts with the snapshot
            return self.snapshot(topic)[0]
        old_bids, old_asks, old_seq, pushed_ms = self._books[topic]
        bids, asks, seq = self._version(instrument, state)
        now = self.model.now_ms
        if seq == old_seq:
            if now - pushed_ms < QUIET_MS:
                return None
            self._books[topic] = bids, asks, seq, now
            return self._books_frame("update", instrument, state, {}, {}, bids, asks, seq, seq, now)
        self._books[topic] = bids, asks, seq, now
        return self._books_frame("update", instrument, state, book_diff(old_bids, bids), book_diff(old_asks, asks),
                                 bids, asks, old_seq, seq, now)

    def _books_frame(self, action: str, instrument: str, state: SymbolState, bids: dict[int, int],
                     asks: dict[int, int], full_bids: dict[int, int], full_asks: dict[int, int], prev_seq: int,
                     seq: int, ts: int) -> bytes:
        top_bids = self._levels(state, dict(sorted(full_bids.items(), reverse=True)[:25]), True)
        top_asks = self._levels(state, dict(sorted(full_asks.items())[:25]), False)
        data = {"asks": self._levels(state, asks, False), "bids": self._levels(state, bids, True), "ts": str(ts),
                "checksum": checksum(top_bids, top_asks), "prevSeqId": prev_seq, "seqId": seq}
        return _encode({"arg": {"channel": "books", "instId": instrument}, "action": action, "data": [data]})

    def _levels(self, state: SymbolState, side: dict[int, int], descending: bool) -> list[list[str]]:
        """[price, size in contracts, "0", orders] from best to worst."""
        inst, scale = state.inst, ct_val(state.inst.symbol)
        return [[inst.price(p), plain(inst.lot * n / scale), "0", orders_at(n)]
                for p, n in sorted(side.items(), reverse=descending)]

    def _frame(self, channel: str, instrument: str, state: SymbolState) -> bytes | None:
        if channel == "tickers":
            data = self._ticker(instrument, state)
        elif channel == "funding-rate":
            data = self._funding(instrument, state)
        elif channel == "books5":
            data = self._books5(instrument, state)
        elif channel == "mark-price":
            mark, _ = self.mark_index(state)
            data = [{"instType": "SWAP", "instId": instrument, "markPx": mark, "ts": str(self.model.now_ms)}]
        elif channel == "index-tickers":
            _, index = self.mark_index(state)
            instrument = instrument.removesuffix("-SWAP")
            data = [{"instId": instrument, "idxPx": index, "high24h": index, "low24h": index, "open24h": index,
                     "sodUtc0": index, "sodUtc8": index, "ts": str(self.model.now_ms)}]
        elif channel == "open-interest":
            inst = state.inst
            data = [{"instType": "SWAP", "instId": instrument, "oi": self._contracts(state, state.open_interest_lots),
                     "oiCcy": plain(inst.lot * state.open_interest_lots),
                     "oiUsd": f"{float(inst.lot * state.open_interest_lots) * float(self.mark_index(state)[0]):.2f}",
                     "ts": str(self.model.now_ms)}]
        else:
            data = [{"instId": instrument, "tradeId": t.trade_id, "px": state.inst.price(t.price_ticks),
                     "sz": self._contracts(state, t.lots), "side": t.side.lower(), "ts": str(t.time_ms)}
                    for t in state.venues[self.name].trades]
            if not data:
                return None
        return _encode({"arg": {"channel": channel, "instId": instrument}, "data": data})

    def _contracts(self, state: SymbolState, lots: int) -> str:
        return plain(state.inst.lot * lots / ct_val(state.inst.symbol))

    def _ticker(self, instrument: str, state: SymbolState) -> list[dict]:
        inst = state.inst
        bids, asks = self.quote(state)
        (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
        shift = self.model.venue_shift(state, self.name)
        volume = inst.lot * state.volume_lots
        return [{"instType": "SWAP", "instId": instrument, "last": inst.price(state.last_ticks + shift),
                 "lastSz": self._contracts(state, 1), "askPx": inst.price(ask), "askSz": self._contracts(state, ask_n),
                 "bidPx": inst.price(bid), "bidSz": self._contracts(state, bid_n),
                 "open24h": inst.price(state.open_ticks + shift), "high24h": inst.price(state.high_ticks + shift),
                 "low24h": inst.price(state.low_ticks + shift), "sodUtc0": inst.price(state.open_ticks + shift),
                 "sodUtc8": inst.price(state.open_ticks + shift), "volCcy24h": plain(volume),
                 "vol24h": plain(volume / ct_val(inst.symbol)), "ts": str(self.model.now_ms)}]

    def _funding(self, instrument: str, state: SymbolState) -> list[dict]:
        next_ms = self.model.next_funding_ms(state.inst.symbol)
        period = state.inst.funding_interval_h * 3_600_000
        rate = self.funding(state)
        return [{"formulaType": "withRate", "fundingRate": rate, "fundingTime": str(next_ms),
                 "impactValue": "", "instId": instrument, "instType": "SWAP", "interestRate": "0.0001",
                 "method": "current_period", "maxFundingRate": "0.0075", "minFundingRate": "-0.0075",
                 "nextFundingRate": "", "nextFundingTime": str(next_ms + period), "premium": "0.0000512",
                 "settFundingRate": rate, "settState": "settled", "ts": str(self.model.now_ms)}]

    def _books5(self, instrument: str, state: SymbolState) -> list[dict]:
        bids, asks = self.quote(state, 5)
        return [{"asks": self._levels(state, asks, False), "bids": self._levels(state, bids, True),
                 "instId": instrument, "ts": str(self.model.now_ms), "seqId": self._version(instrument, state)[2]}]

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/api/v5/public/time": self._time, "/api/v5/public/instruments": self._instruments,
                "/api/v5/public/funding-rate": self._funding_rate, "/api/v5/market/ticker": self._ticker_rest,
                "/api/v5/market/tickers": self._tickers_rest, "/api/v5/market/books": self._books_rest}

    @staticmethod
    def _answer(data: list, code: str = "0", msg: str = "") -> tuple[int, object]:
        return HTTP_STATUS.get(code, 200), {"code": code, "msg": msg, "data": data}

    def _instrument(self, query) -> tuple[str, tuple[int, object] | None]:
        """The query's instId, or OKX's refusal when it has none or an unknown one."""
        instrument = query.get("instId", "")
        if not instrument:
            return instrument, self._answer([], "50014", "Parameter instId can not be empty.")
        if instrument not in self.symbols:
            return instrument, self._answer([], "51001", INSTRUMENT_UNKNOWN)
        return instrument, None

    def _ticker_rest(self, query) -> tuple[int, object]:
        instrument, refused = self._instrument(query)
        if refused:
            return refused
        return self._answer(self._ticker(instrument, self.model.states[self.symbols[instrument]]))

    def _tickers_rest(self, query) -> tuple[int, object]:
        inst_type = query.get("instType", "")
        if not inst_type:
            return self._answer([], "50014", "Parameter instType can not be empty.")
        if inst_type not in INST_TYPES:
            return self._answer([], "51000", "Parameter instType error")
        if inst_type != "SWAP":
            return self._answer([])  # listed on OKX, not simulated
        return self._answer([row for instrument, symbol in sorted(self.symbols.items())
                             for row in self._ticker(instrument, self.model.states[symbol])])

    def _books_rest(self, query) -> tuple[int, object]:
        instrument, refused = self._instrument(query)
        if refused:
            return refused
        size = query.get("sz", "1")
        if not size.isdigit() or not 1 <= int(size) <= BOOK_DEPTH:
            return self._answer([], "51000", "Parameter sz error")
        state = self.model.states[self.symbols[instrument]]
        bids, asks, seq = self._version(instrument, state)
        bids, asks = dict(sorted(bids.items(), reverse=True)[:int(size)]), dict(sorted(asks.items())[:int(size)])
        return self._answer([{"asks": self._levels(state, asks, False), "bids": self._levels(state, bids, True),
                              "ts": str(self.model.now_ms), "seqId": seq}])

    def _time(self, query) -> tuple[int, object]:
        return self._answer([{"ts": str(self.clock_ms())}])

    def _instruments(self, query) -> tuple[int, object]:
        """SWAP lists the simulated instruments; OKX's other instTypes are empty here."""
        inst_type = query.get("instType")
        if not inst_type:
            return self._answer([], "50014", "Parameter instType can not be empty.")
        if inst_type not in INST_TYPES:
            return self._answer([], "51000", "Parameter instType error")
        if inst_type != "SWAP":
            return self._answer([])
        rows = []
        listed = set(self.model.listed("okx"))
        for instrument, symbol in sorted(self.symbols.items()):
            if symbol not in listed:
                continue
            inst = self.model.states[symbol].inst
            val = ct_val(symbol)
            rows.append({"alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear",
                         "ctVal": plain(val), "ctValCcy": symbol.removesuffix("USDT"), "expTime": "",
                         "instId": instrument, "instType": "SWAP", "lever": "100", "listTime": "1611916828000",
                         "lotSz": plain(inst.lot / val), "maxIcebergSz": "100000000", "maxLmtSz": plain(MAX_LIMIT_SZ),
                         "maxMktSz": plain(MAX_MARKET_SZ), "maxStopSz": "10000", "maxTriggerSz": "100000000",
                         "maxTwapSz": "100000000", "minSz": plain(inst.lot / val), "optType": "", "quoteCcy": "",
                         "settleCcy": "USDT", "state": "live", "stk": "", "tickSz": plain(inst.tick),
                         "uly": instrument.removesuffix("-SWAP")})
        return self._answer(rows)

    def _funding_rate(self, query) -> tuple[int, object]:
        instrument, refused = self._instrument(query)
        if refused:
            return refused
        return self._answer(self._funding(instrument, self.model.states[self.symbols[instrument]]))
