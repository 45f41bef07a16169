"""Bitget v2 USDT-futures market data (protocol-other-venues.md §3), in the shapes of
venue-samples/bitget: `/v2/ws/public` with `{"op": "subscribe", "args": [{"instType":
"USDT-FUTURES", "channel", "instId"}]}`, channels `ticker` (funding, mark and index ride in
it), `books5` (full snapshots) and `books` (a snapshot, then updates with a CRC32 checksum of
the top 25 levels); plain-text `ping`/`pong`; REST `/api/v2/public/time` and
`/api/v2/mix/market/current-fund-rate`.
"""

from __future__ import annotations

import zlib

import msgspec

from services.sim.dialect import Dialect, Reply, book_diff
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
INST_TYPE = "USDT-FUTURES"
CHANNEL_EVERY_MS = {"ticker": 100, "books5": 100, "books15": 100, "books": 100, "trade": 0}
BOOK_LEVELS = 50


def checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """CRC32 (signed) of the top 25 levels interleaved "bidPx:bidSz:askPx:askSz:...", as
    Bitget documents for `books`."""
    parts = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                parts += side[i][:2]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class BitgetDialect(Dialect):
    name = "bitget"
    ws_paths = ("/v2/ws/public",)
    every_ms = CHANNEL_EVERY_MS

    def __init__(self, model) -> None:
        super().__init__(model)
        self._books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        if text == "ping":
            return Reply([b"pong"])
        request = self.decode(text)
        if request is None or request.get("op") not in ("subscribe", "unsubscribe") or not isinstance(
                request.get("args"), list):
            return Reply([_encode({"event": "error", "code": 30002, "msg": f"illegal request: {text[:200]}"})])
        op, reply = request["op"], Reply()
        for arg in request["args"]:
            arg = arg if isinstance(arg, dict) else {}
            channel, instrument = arg.get("channel"), arg.get("instId")
            if arg.get("instType") != INST_TYPE or channel not in CHANNEL_EVERY_MS or \
                    instrument not in self.model.states:
                reply.frames.append(_encode({"event": "error", "arg": arg, "code": 30001,
                                             "msg": f"instType:{arg.get('instType')},channel:{channel},"
                                                    f"instId:{instrument} doesn't exist"}))
                continue
            reply.frames.append(_encode({"event": op, "arg": {"instType": INST_TYPE, "channel": channel,
                                                              "instId": instrument}}))
            (reply.subscribe if op == "subscribe" else reply.unsubscribe).append(f"{channel}:{instrument}")
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._books.pop(topic, None)

    def frames(self, topic: str) -> list[bytes]:
        channel, _, symbol = topic.partition(":")
        frame = self._frame(topic, channel, self.model.states[symbol])
        return [frame] if frame is not None else []

    def _frame(self, topic: str, channel: str, state: SymbolState) -> bytes | None:
        action = "snapshot"
        if channel == "ticker":
            data = self._ticker(state)
        elif channel in ("books5", "books15"):
            bids, asks = self.quote(state, int(channel[5:]))
            data = self._book_data(state, bids, asks, bids, asks)
        elif channel == "trade":
            data = [{"ts": str(t.time_ms), "price": state.inst.price(t.price_ticks),
                     "size": plain(state.inst.lot * t.lots), "side": t.side.lower(), "tradeId": t.trade_id}
                    for t in state.venues[self.name].trades]
            if not data:
                return None
        else:
            bids, asks = self.quote(state, BOOK_LEVELS)
            old = self._books.get(topic)
            self._books[topic] = (bids, asks)
            if old is None:
                data = self._book_data(state, bids, asks, bids, asks)
            else:
                changed_bids, changed_asks = book_diff(old[0], bids), book_diff(old[1], asks)
                if not changed_bids and not changed_asks:
                    return None
                action = "update"
                data = self._book_data(state, changed_bids, changed_asks, bids, asks)
        arg = {"instType": INST_TYPE, "channel": channel, "instId": state.inst.symbol}
        return _encode({"action": action, "arg": arg, "data": data, "ts": self.model.now_ms})

    def _book_data(self, state, bids, asks, full_bids, full_asks) -> list[dict]:
        top_bids, top_asks = self.levels(state, full_bids, True), self.levels(state, full_asks, False)
        return [{"asks": self.levels(state, asks, False), "bids": self.levels(state, bids, True),
                 "checksum": checksum(top_bids, top_asks), "ts": str(self.model.now_ms)}]

    def _ticker(self, state: SymbolState) -> list[dict]:
        inst = state.inst
        bids, asks = self.quote(state)
        (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
        shift = self.model.venue_shift(state, self.name)
        mark, index = self.mark_index(state)
        last, opened = state.last_ticks + shift, state.open_ticks + shift
        volume = inst.lot * state.volume_lots
        return [{"instId": inst.symbol, "lastPr": inst.price(last), "bidPr": inst.price(bid),
                 "askPr": inst.price(ask), "bidSz": plain(inst.lot * bid_n), "askSz": plain(inst.lot * ask_n),
                 "open24h": inst.price(opened), "high24h": inst.price(state.high_ticks + shift),
                 "low24h": inst.price(state.low_ticks + shift), "change24h": f"{(last - opened) / opened:.5f}",
                 "fundingRate": self.funding(state), "nextFundingTime": str(self.model.next_funding_ms(inst.symbol)),
                 "markPrice": mark, "indexPrice": index, "holdingAmount": plain(inst.lot * state.open_interest_lots),
                 "baseVolume": plain(volume), "quoteVolume": f"{state.turnover:.3f}", "openUtc": inst.price(opened),
                 "symbolType": "1", "symbol": inst.symbol, "deliveryPrice": "0", "ts": str(self.model.now_ms)}]

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/api/v2/public/time": self._time, "/api/v2/mix/market/current-fund-rate": self._fund_rate,
                "/api/v2/mix/market/contracts": self._contracts}

    def _contracts(self, query) -> tuple[int, object]:
        if query.get("productType", "").upper() != INST_TYPE:
            return self._answer(None, "40034", "Parameter productType does not exist")
        rows = []
        for name, state in sorted(self.model.states.items()):
            inst = state.inst
            places = -inst.tick.as_tuple().exponent
            rows.append({"symbol": name, "baseCoin": name.removesuffix("USDT"), "quoteCoin": "USDT",
                         "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "minTradeNum": plain(inst.lot),
                         "priceEndStep": str(int(inst.tick.scaleb(places))), "volumePlace": str(
                             max(0, -inst.lot.as_tuple().exponent)), "pricePlace": str(places),
                         "sizeMultiplier": plain(inst.lot), "symbolType": "perpetual", "minTradeUSDT": "5",
                         "symbolStatus": "normal", "fundInterval": str(inst.funding_interval_h), "minLever": "1",
                         "maxLever": "125", "supportMarginCoins": ["USDT"]})
        return self._answer(rows)

    def _answer(self, data, code: str = "00000", msg: str = "success") -> tuple[int, object]:
        return (200 if code == "00000" else 400), {"code": code, "msg": msg, "requestTime": self.model.now_ms,
                                                   "data": data}

    def _time(self, query) -> tuple[int, object]:
        return self._answer({"serverTime": str(self.clock_ms())})

    def _fund_rate(self, query) -> tuple[int, object]:
        symbol = query.get("symbol", "")
        if query.get("productType", "").upper() != INST_TYPE or symbol not in self.model.states:
            return self._answer(None, "40034", "Parameter symbol or productType does not exist")
        state = self.model.states[symbol]
        return self._answer([{"symbol": symbol, "fundingRate": self.funding(state),
                              "fundingRateInterval": str(state.inst.funding_interval_h),
                              "nextUpdate": str(self.model.next_funding_ms(symbol)),
                              "minFundingRate": "-0.003", "maxFundingRate": "0.003"}])
