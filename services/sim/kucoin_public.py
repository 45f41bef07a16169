"""KuCoin futures market data, in the documented shapes: a token from
`POST /api/v1/bullet-public` naming the WebSocket endpoint (`/` here), then
`{"id", "type": "subscribe", "topic"}` for `/contractMarket/tickerV2`, `level2Depth5|50`,
`execution` and `/contract/instrument` (mark and index every second, funding every minute);
`{"type": "ping"}` answered by `pong`; REST `/api/v1/contracts/active` and `/api/v1/timestamp`.
Contracts are `XBTUSDTM` for BTCUSDT and sizes are lots of `multiplier` coins, as on KuCoin.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import SymbolState

_encode = msgspec.json.encode
MULTIPLIER = {"BTC": Decimal("0.001"), "ETH": Decimal("0.01"), "SOL": Decimal("0.1"), "DOGE": Decimal("100")}
TOPIC_EVERY_MS = {"tickerV2": 0, "level2Depth5": 100, "level2Depth50": 100, "execution": 0, "instrument": 1000}
FUNDING_EVERY_MS = 60_000


def contract(symbol: str) -> str:
    base = symbol.removesuffix("USDT")
    return f"{'XBT' if base == 'BTC' else base}USDTM"


def multiplier(symbol: str) -> Decimal:
    return MULTIPLIER.get(symbol.removesuffix("USDT"), Decimal(1))


class KucoinDialect(Dialect):
    name = "kucoin"
    ws_paths = ("/",)
    every_ms = TOPIC_EVERY_MS
    unsnapshotted = frozenset({"execution"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {contract(s): s for s in model.states}
        self._tops: dict[str, tuple] = {}

    def _split(self, topic: str) -> tuple[str, str] | None:
        name, _, symbol = topic.partition(":")
        kind = name.rsplit("/", 1)[-1]
        prefix = "/contract/" if kind == "instrument" else "/contractMarket/"
        if name != prefix + kind or kind not in TOPIC_EVERY_MS or symbol not in self.symbols:
            return None
        return kind, symbol

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        request = self.decode(text) or {}
        rid, kind, topic = str(request.get("id", "")), request.get("type"), request.get("topic")
        if kind == "ping":
            return Reply([_encode({"id": rid, "type": "pong", "timestamp": self.clock_ms() * 1000})])
        if kind not in ("subscribe", "unsubscribe") or not isinstance(topic, str):
            return Reply([_encode({"id": rid, "type": "error", "code": 400, "data": "invalid request"})])
        if self._split(topic) is None:
            return Reply([_encode({"id": rid, "type": "error", "code": 404, "data": f"topic {topic} is not found"})])
        reply = Reply([_encode({"id": rid, "type": "ack"})] if request.get("response") else [])
        (reply.subscribe if kind == "subscribe" else reply.unsubscribe).append(topic)
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._tops.pop(topic, None)
        self._last_sent.pop(topic + "#funding", None)

    def kind(self, topic: str) -> str:
        return self._split(topic)[0]

    def _lots(self, state: SymbolState, lots: int) -> int:
        return int(state.inst.lot * lots / multiplier(state.inst.symbol)) or 1

    def frames(self, topic: str) -> list[bytes]:
        kind, name = self._split(topic)
        state = self.model.states[self.symbols[name]]
        inst, now = state.inst, self.model.now_ms
        subjects = []
        if kind == "tickerV2":
            bids, asks = self.quote(state)
            (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
            if self._tops.get(topic) == (bid, bid_n, ask, ask_n):
                return []
            self._tops[topic] = (bid, bid_n, ask, ask_n)
            subjects.append(("tickerV2", {"symbol": name, "sequence": state.book_version,
                                          "bestBidSize": self._lots(state, bid_n), "bestBidPrice": inst.price(bid),
                                          "bestAskPrice": inst.price(ask), "bestAskSize": self._lots(state, ask_n),
                                          "ts": now * 1_000_000}))
        elif kind.startswith("level2Depth"):
            bids, asks = self.quote(state, int(kind.removeprefix("level2Depth")))
            subjects.append(("level2", {
                "bids": [[inst.price(p), self._lots(state, n)] for p, n in sorted(bids.items(), reverse=True)],
                "asks": [[inst.price(p), self._lots(state, n)] for p, n in sorted(asks.items())],
                "sequence": state.book_version, "timestamp": now, "ts": now * 1_000_000}))
        elif kind == "execution":
            subjects += [("match", {"symbol": name, "sequence": int(t.trade_id), "side": t.side.lower(),
                                    "size": self._lots(state, t.lots), "price": inst.price(t.price_ticks),
                                    "takerOrderId": uuid.UUID(int=int(t.trade_id)).hex, "makerOrderId": "0" * 24,
                                    "tradeId": f"{int(t.trade_id):024x}", "ts": t.time_ms * 1_000_000})
                         for t in state.venues[self.name].trades]
        else:
            mark, index = self.mark_index(state)
            subjects.append(("mark.index.price", {"granularity": 1000, "indexPrice": float(index),
                                                  "markPrice": float(mark), "timestamp": now}))
            if self.due(topic + "#funding", FUNDING_EVERY_MS):
                subjects.append(("funding.rate", {"granularity": 60000, "fundingRate": float(self.funding(state)),
                                                  "timestamp": now}))
        return [_encode({"type": "message", "topic": topic, "subject": subject, "data": data})
                for subject, data in subjects]

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/api/v1/contracts/active": self._contracts, "/api/v1/timestamp": self._timestamp}

    def rest_post(self):
        return {"/api/v1/bullet-public": self._bullet}

    @staticmethod
    def _answer(data) -> tuple[int, object]:
        return 200, {"code": "200000", "data": data}

    def _timestamp(self, query) -> tuple[int, object]:
        return self._answer(self.clock_ms())

    def _bullet(self, body: dict) -> tuple[int, object]:
        """The server adds `_host`: the address this client reached it at."""
        return self._answer({"token": uuid.uuid4().hex, "instanceServers": [
            {"endpoint": f"ws://{body.get('_host', '127.0.0.1')}/", "encrypt": False, "protocol": "websocket",
             "pingInterval": 18000, "pingTimeout": 10000}]})

    def _contracts(self, query) -> tuple[int, object]:
        rows, listed = [], set(self.model.listed("kucoin"))
        for name, symbol in sorted(self.symbols.items()):
            if symbol not in listed:
                continue
            inst = self.model.states[symbol].inst
            base = name.removesuffix("USDTM")
            rows.append({"symbol": name, "rootSymbol": "USDT", "type": "FFWCSX", "baseCurrency": base,
                         "quoteCurrency": "USDT", "settleCurrency": "USDT", "maxOrderQty": 1000000, "lotSize": 1,
                         "tickSize": float(inst.tick), "multiplier": float(multiplier(symbol)), "isInverse": False,
                         "status": "Open", "fundingRateGranularity": inst.funding_interval_h * 3_600_000,
                         "nextFundingRateTime": self.model.next_funding_ms(symbol) - self.model.now_ms})
        return self._answer(rows)
