"""Hyperliquid perps market data (protocol-other-venues.md section 4), in the shapes of
venue-samples/hyperliquid and the documented channels: `/ws` with `{"method": "subscribe",
"subscription": {"type", "coin"}}`, channels `bbo`, `l2Book` (20 levels), `trades` and
`activeAssetCtx`; `{"method": "ping"}` answered on `pong`; `POST /info` with `meta` and
`l2Book`. Coins are `BTC` for BTCUSDT, sizes are coins, funding is hourly (the model's 8 h
rate / 8).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import SymbolState, format_rate, plain

_encode = msgspec.json.encode
CHANNEL_EVERY_MS = {"bbo": 100, "l2Book": 500, "trades": 0, "activeAssetCtx": 1000}
BOOK_LEVELS = 20


def coin(symbol: str) -> str:
    return symbol.removesuffix("USDT")


class HyperliquidDialect(Dialect):
    name = "hyperliquid"
    ws_paths = ("/ws",)
    every_ms = CHANNEL_EVERY_MS
    unsnapshotted = frozenset({"trades"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {coin(s): s for s in model.states}
        self._tops: dict[str, tuple] = {}

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        request = self.decode(text)
        method = request.get("method") if request else None
        if method == "ping":
            return Reply([b'{"channel":"pong"}'])
        subscription = request.get("subscription") if request else None
        if method not in ("subscribe", "unsubscribe") or not isinstance(subscription, dict):
            return Reply([_encode({"channel": "error", "data": f"Invalid request: {text[:200]}"})])
        kind, name = subscription.get("type"), subscription.get("coin")
        if kind not in CHANNEL_EVERY_MS or name not in self.symbols:
            text = _encode(subscription).decode()
            return Reply([_encode({"channel": "error", "data": f"Invalid subscription {text}"})])
        reply = Reply([_encode({"channel": "subscriptionResponse", "data": request})])
        (reply.subscribe if method == "subscribe" else reply.unsubscribe).append(f"{kind}:{name}")
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._tops.pop(topic, None)

    def frames(self, topic: str) -> list[bytes]:
        kind, _, name = topic.partition(":")
        frame = self._frame(topic, kind, self.model.states[self.symbols[name]])
        return [frame] if frame is not None else []

    def _frame(self, topic: str, kind: str, state: SymbolState) -> bytes | None:
        name, now = coin(state.inst.symbol), self.model.now_ms
        if kind == "bbo":
            bids, asks = self._book_levels(state, 1)
            if self._tops.get(topic) == (bids, asks):
                return None
            self._tops[topic] = (bids, asks)
            data = {"coin": name, "time": now, "bbo": [bids[0], asks[0]]}
        elif kind == "l2Book":
            data = self.book(state)
        elif kind == "trades":
            data = [{"coin": name, "side": "B" if t.side == "Buy" else "A", "px": state.inst.price(t.price_ticks),
                     "sz": plain(state.inst.lot * t.lots), "time": t.time_ms, "hash": "0x" + "0" * 64,
                     "tid": int(t.trade_id), "users": ["0x0", "0x0"]} for t in state.venues[self.name].trades]
            if not data:
                return None
        else:
            mark, index = self.mark_index(state)
            rate = Decimal(self.funding(state)) / 8
            data = {"coin": name, "ctx": {
                "funding": format_rate(float(rate)), "openInterest": plain(state.inst.lot * state.open_interest_lots),
                "prevDayPx": state.inst.price(state.open_ticks), "dayNtlVlm": f"{state.turnover:.2f}",
                "premium": "0.0", "oraclePx": index, "markPx": mark, "midPx": mark, "impactPxs": [mark, mark],
                "dayBaseVlm": plain(state.inst.lot * state.volume_lots)}}
        return _encode({"channel": kind, "data": data})

    def _book_levels(self, state: SymbolState, depth: int) -> tuple[list[dict], list[dict]]:
        bids, asks = self.quote(state, depth)
        return ([{"px": px, "sz": sz, "n": 1} for px, sz in self.levels(state, bids, True)],
                [{"px": px, "sz": sz, "n": 1} for px, sz in self.levels(state, asks, False)])

    def book(self, state: SymbolState) -> dict:
        bids, asks = self._book_levels(state, BOOK_LEVELS)
        return {"coin": coin(state.inst.symbol), "time": self.clock_ms(), "levels": [bids, asks]}

    # --- REST: POST /info ------------------------------------------------------------------

    def rest_post(self):
        return {"/info": self._info}

    def _info(self, body: dict) -> tuple[int, object]:
        kind = body.get("type")
        if kind == "meta":
            return 200, {"universe": [{"name": coin(symbol), "szDecimals": max(0, -state.inst.lot.as_tuple().exponent),
                                       "maxLeverage": 40, "marginTableId": 56}
                                      for symbol in self.model.listed("hyperliquid")
                                      if (state := self.model.states[symbol])]}
        if kind == "l2Book" and body.get("coin") in self.symbols:
            return 200, self.book(self.model.states[self.symbols[body["coin"]]])
        return 422, "Failed to deserialize the JSON body into the target type"
