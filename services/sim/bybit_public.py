"""The simulated market as Bybit V5 public linear frames (shared/docs/protocol-bybit-v5.md §3).

Pure: the server asks for the snapshot of a topic when someone subscribes and for each
step's frames per active topic. Shapes follow the real captures in venue-samples/bybit:
the same keys, numbers as strings, `ts`, `cs`, `type`. Book topics are kept per depth:
a delta lists the levels that changed since the last frame of that topic (size "0" deletes)
and `u` rises by one per frame; depth 1 is snapshot-only, as on Bybit. Each topic is pushed
at most at Bybit's cadence for derivatives (`PUSH_MS`: tickers every 100 ms, books of 1, 50
and 200 levels every 10, 20 and 100 ms): a frame carries every change since the last one.
"""

from __future__ import annotations

import itertools

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import MarketModel, SymbolState, format_rate

DEPTHS = (1, 50, 200)
PUSH_MS = {"tickers": 100, "orderbook.1": 10, "orderbook.50": 20, "orderbook.200": 100}  # the least spacing
_encode = msgspec.json.encode


class BybitPublicFrames(Dialect):
    """Frames for `/v5/public/linear`, per topic, from a `MarketModel`."""

    name = "bybit"
    ws_paths = ("/v5/public/linear",)

    def __init__(self, model: MarketModel) -> None:
        super().__init__(model)
        self._cs = itertools.count(1_000_000)
        self._tickers: dict[str, dict[str, str]] = {}  # topic -> last published fields
        self._books: dict[str, tuple[dict[int, int], dict[int, int], int]] = {}  # topic -> bids, asks, u
        self._pushed_ms: dict[str, int] = {}  # topic -> when its last frame went out

    def valid(self, topic: str) -> bool:
        kind, _, rest = topic.partition(".")
        if kind == "orderbook":
            depth, _, symbol = rest.partition(".")
            return depth.isdigit() and int(depth) in DEPTHS and symbol in self.model.states
        return kind in ("tickers", "publicTrade", "allLiquidation") and rest in self.model.states

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        """subscribe / unsubscribe (ack first, then each topic's snapshot) and ping, with
        the linear stream's replies."""
        request = self.decode(text) or {}
        op = request.get("op")
        reply = {"success": True, "ret_msg": "", "conn_id": conn_id, "req_id": request.get("req_id", "")}
        if op == "ping":
            return Reply([_encode({**reply, "ret_msg": "pong", "op": "ping"})])
        if op not in ("subscribe", "unsubscribe"):
            return Reply([_encode({**reply, "success": False, "ret_msg": f"error:unknown op {op!r}", "op": op or ""})])
        args = request.get("args")
        args = args if isinstance(args, list) else []
        bad = next((a for a in args if not isinstance(a, str) or not self.valid(a)), None)
        if not args or bad is not None:
            return Reply([_encode({**reply, "success": False, "ret_msg": f"error:handler not found,topic:{bad}",
                                   "op": op})])
        return Reply([_encode({**reply, "op": op})], *((args, []) if op == "subscribe" else ([], args)))

    def snapshot(self, topic: str) -> list[bytes]:
        """The frame a new subscriber gets first (tickers and books); none for the rest."""
        kind, _, rest = topic.partition(".")
        self._pushed_ms[topic] = self.model.now_ms  # the cadence counts from the snapshot
        if kind == "tickers":
            fields = self._tickers.get(topic) or self.ticker_fields(self.model.states[rest])
            self._tickers[topic] = fields
            return [self._ticker_frame(topic, "snapshot", fields)]
        if kind == "orderbook":
            depth, _, symbol = rest.partition(".")
            if topic not in self._books:
                bids, asks = self._top(self.model.states[symbol], int(depth))
                self._books[topic] = (bids, asks, 1)
            bids, asks, u = self._books[topic]
            return [self._book_frame(topic, symbol, "snapshot", bids, asks, u)]
        return []

    def forget(self, topic: str) -> None:
        """Nobody listens to `topic` any more: stop keeping its state."""
        self._tickers.pop(topic, None)
        self._books.pop(topic, None)
        self._pushed_ms.pop(topic, None)

    def step_frames(self, topics: set[str]) -> dict[str, list[bytes]]:
        """The frames of the model's latest step for each of `topics`."""
        out: dict[str, list[bytes]] = {}
        now = self.model.now_ms
        for topic in topics:
            kind, _, rest = topic.partition(".")
            every = PUSH_MS.get(kind) or PUSH_MS.get(f"{kind}.{rest.partition('.')[0]}", 0)
            if now - self._pushed_ms.get(topic, -every) < every:
                continue  # not due: the next frame carries these changes too
            frame = None
            if kind == "tickers":
                frame = self._ticker_delta(topic, self.model.states[rest])
            elif kind == "orderbook":
                depth, _, symbol = rest.partition(".")
                frame = self._book_delta(topic, symbol, int(depth))
            elif kind == "publicTrade":
                frame = self._trades(topic, self.model.states[rest])
            elif kind == "allLiquidation":
                frame = self._liquidations(topic, self.model.states[rest])
            if frame is not None:
                out[topic] = [frame]
                self._pushed_ms[topic] = now
        return out

    # --- tickers -------------------------------------------------------------------------

    def book_update_id(self, symbol: str) -> int:
        """The book's version, as REST `/v5/market/orderbook` reports it in `u`."""
        return self.model.states[symbol].book_version

    def ticker_fields(self, s: SymbolState) -> dict[str, str]:
        """The full ticker of one symbol, as a snapshot carries it (all strings)."""
        inst, model = s.inst, self.model
        best_bid, best_ask = max(s.bids), min(s.asks)
        mark = s.mid
        index = s.mid * (1 + 0.0003)  # a small, steady basis
        oi = inst.lot * s.open_interest_lots
        change = (s.last_ticks - s.open_ticks) / s.open_ticks
        return {
            "symbol": inst.symbol,
            "tickDirection": "PlusTick" if s.last_ticks >= s.open_ticks else "MinusTick",
            "price24hPcnt": f"{change:.6f}",
            "lastPrice": inst.price(s.last_ticks),
            "prevPrice24h": inst.price(s.open_ticks),
            "highPrice24h": inst.price(s.high_ticks),
            "lowPrice24h": inst.price(s.low_ticks),
            "prevPrice1h": inst.price(s.open_ticks),
            "markPrice": inst.fine_price(mark),
            "indexPrice": inst.fine_price(index),
            "openInterest": str(oi),
            "openInterestValue": f"{float(oi) * float(inst.tick) * mark:.2f}",
            "turnover24h": f"{s.turnover:.4f}",
            "volume24h": str(inst.lot * s.volume_lots),
            "fundingIntervalHour": str(inst.funding_interval_h),
            "fundingCap": "0.005",
            "singleOpenInterest": str(inst.lot * (s.open_interest_lots // 2)),
            "singleOpenInterestValue": f"{float(oi) * float(inst.tick) * mark / 2:.2f}",
            "nextFundingTime": str(model.next_funding_ms(inst.symbol)),
            "fundingRate": format_rate(s.funding_rate),
            "bid1Price": inst.price(best_bid),
            "bid1Size": inst.size(s.bids[best_bid]),
            "ask1Price": inst.price(best_ask),
            "ask1Size": inst.size(s.asks[best_ask]),
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
        }

    def _ticker_frame(self, topic: str, kind: str, data: dict[str, str]) -> bytes:
        return _encode({"topic": topic, "type": kind, "data": data, "cs": next(self._cs), "ts": self.model.now_ms})

    def _ticker_delta(self, topic: str, s: SymbolState) -> bytes | None:
        last = self._tickers.get(topic)
        fields = self.ticker_fields(s)
        if last is None:
            self._tickers[topic] = fields
            return None
        changed = {k: v for k, v in fields.items() if last.get(k) != v}
        if not changed:
            return None
        self._tickers[topic] = fields
        return self._ticker_frame(topic, "delta", {"symbol": s.inst.symbol, **changed})

    # --- books ---------------------------------------------------------------------------

    @staticmethod
    def _top(s: SymbolState, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        bids = dict(sorted(s.bids.items(), reverse=True)[:depth])
        asks = dict(sorted(s.asks.items())[:depth])
        return bids, asks

    def _book_frame(self, topic: str, symbol: str, kind: str, bids: dict[int, int], asks: dict[int, int],
                    u: int) -> bytes:
        inst = self.model.states[symbol].inst
        now = self.model.now_ms
        data = {
            "s": symbol,
            "b": [[inst.price(p), inst.size(n)] for p, n in sorted(bids.items(), reverse=True)],
            "a": [[inst.price(p), inst.size(n)] for p, n in sorted(asks.items())],
            "u": u,
            "seq": next(self._cs),
        }
        return _encode({"topic": topic, "type": kind, "ts": now, "data": data, "cts": now - 1})

    def _book_delta(self, topic: str, symbol: str, depth: int) -> bytes | None:
        if topic not in self._books:
            return None
        old_bids, old_asks, u = self._books[topic]
        bids, asks = self._top(self.model.states[symbol], depth)
        if bids == old_bids and asks == old_asks:
            return None
        self._books[topic] = (bids, asks, u + 1)
        if depth == 1:
            return self._book_frame(topic, symbol, "snapshot", bids, asks, u + 1)
        changed_bids = {p: n for p, n in bids.items() if old_bids.get(p) != n} | {
            p: 0 for p in old_bids if p not in bids}
        changed_asks = {p: n for p, n in asks.items() if old_asks.get(p) != n} | {
            p: 0 for p in old_asks if p not in asks}
        return self._book_frame(topic, symbol, "delta", changed_bids, changed_asks, u + 1)

    # --- trades and liquidations -----------------------------------------------------------

    def _trades(self, topic: str, s: SymbolState) -> bytes | None:
        if not s.trades:
            return None
        seq = next(self._cs)
        inst = s.inst
        data = [{"T": t.time_ms, "s": inst.symbol, "S": t.side, "v": inst.size(t.lots), "p": inst.price(t.price_ticks),
                 "L": "PlusTick" if t.side == "Buy" else "MinusTick", "i": t.trade_id, "BT": False, "RPI": False,
                 "seq": seq} for t in s.trades]
        return _encode({"topic": topic, "type": "snapshot", "ts": self.model.now_ms, "data": data})

    def _liquidations(self, topic: str, s: SymbolState) -> bytes | None:
        if not s.liquidations:
            return None
        data = [{"T": q.time_ms, "s": s.inst.symbol, "S": q.side, "v": s.inst.size(q.lots),
                 "p": s.inst.price(q.price_ticks)} for q in s.liquidations]
        return _encode({"topic": topic, "type": "snapshot", "ts": self.model.now_ms, "data": data})
