"""OKX v5 public market data for USDT swaps (protocol-other-venues.md §2), in the shapes of
venue-samples/okx: `/ws/v5/public` with `{"op": "subscribe", "args": [{"channel", "instId"}]}`,
channels `tickers`, `funding-rate`, `mark-price`, `index-tickers` (on `BTC-USDT`),
`open-interest`, `books5`, `trades` and `liquidation-orders` (by `instType`, quiet: the model
has no liquidations); the plain-text `ping`/`pong`;
REST `/api/v5/public/time`, `instruments` and `funding-rate`.

Instruments are `BTC-USDT-SWAP` and sizes are in contracts of `ctVal` base units each, as
on OKX, so a client must apply the multiplier.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
CT_VAL = {"BTC": Decimal("0.01"), "ETH": Decimal("0.1"), "SOL": Decimal("1"), "DOGE": Decimal("1000")}
MAX_LIMIT_SZ, MAX_MARKET_SZ = Decimal(100_000_000), Decimal(10_000)  # instruments' maxLmtSz, maxMktSz (contracts)
CHANNEL_EVERY_MS = {"tickers": 100, "books5": 100, "funding-rate": 30_000, "trades": 0, "mark-price": 200,
                    "index-tickers": 100, "open-interest": 3000}


def inst_id(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}-USDT-SWAP"


def ct_val(symbol: str) -> Decimal:
    return CT_VAL.get(symbol.removesuffix("USDT"), Decimal(1))


class OkxDialect(Dialect):
    name = "okx"
    ws_paths = ("/ws/v5/public",)
    every_ms = CHANNEL_EVERY_MS
    unsnapshotted = frozenset({"trades"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {inst_id(s): s for s in model.states}
        self._seq = 0

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
        frame = self._frame(channel, instrument, self.model.states[self.symbols[instrument]])
        return [frame] if frame is not None else []

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
        self._seq += 1
        scale = ct_val(state.inst.symbol)
        return [{"asks": [[*level, "0", "1"] for level in self.levels(state, asks, False, scale)],
                 "bids": [[*level, "0", "1"] for level in self.levels(state, bids, True, scale)],
                 "instId": instrument, "ts": str(self.model.now_ms), "seqId": self._seq}]

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/api/v5/public/time": self._time, "/api/v5/public/instruments": self._instruments,
                "/api/v5/public/funding-rate": self._funding_rate}

    @staticmethod
    def _answer(data: list, code: str = "0", msg: str = "") -> tuple[int, object]:
        return (200 if code == "0" else 400), {"code": code, "data": data, "msg": msg}

    def _time(self, query) -> tuple[int, object]:
        return self._answer([{"ts": str(self.clock_ms())}])

    def _instruments(self, query) -> tuple[int, object]:
        if query.get("instType") != "SWAP":
            return self._answer([], "51000", "Parameter instType error (only SWAP is simulated)")
        rows = []
        for instrument, symbol in sorted(self.symbols.items()):
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
        instrument = query.get("instId", "")
        if instrument not in self.symbols:
            return self._answer([], "51001", "Instrument ID does not exist")
        return self._answer(self._funding(instrument, self.model.states[self.symbols[instrument]]))
