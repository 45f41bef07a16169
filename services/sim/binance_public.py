"""Binance USD-M futures market data (protocol-other-venues.md §1), in the shapes of
venue-samples/binance: on today's split base paths, `/public` for `bookTicker` and `depth`,
`/market` for `markPrice` and `aggTrade`; raw streams at `/<base>/ws/<streams>` and combined
ones (`{"stream": ..., "data": ...}`) at `/<base>/stream?streams=a/b`; live
`{"method": "SUBSCRIBE"}` requests; REST `/fapi/v1/time`, `depth` and `premiumIndex`.

Depth diffs carry `U`, `u` and `pu` from one per-symbol update id, and REST depth's
`lastUpdateId` is on the same id, so the documented sync (snapshot, drop `u` < lastUpdateId,
then `pu` == previous `u`) works against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.sim.binance_trade import DEFAULT_MIN_NOTIONAL, MIN_NOTIONAL
from services.sim.dialect import Dialect, Reply, book_diff
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
GROUPS = {"public": ("bookTicker", "depth", "depth5", "depth10", "depth20"),
          "market": ("markPrice", "aggTrade", "forceOrder")}
DEPTH_SPEEDS_MS = {"depth": 250, "depth@100ms": 100, "depth@500ms": 500, "depth@0ms": 0}
PARTIAL_SPEEDS_MS = {f"depth{n}{speed}": ms for n in (5, 10, 20)
                     for speed, ms in (("", 250), ("@100ms", 100), ("@500ms", 500))}
MARK_SPEEDS_MS = {"markPrice": 3000, "markPrice@1s": 1000}
DEPTH_LEVELS = 50
REST_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


class BinanceDialect(Dialect):
    name = "binance"
    ws_paths = ("/public/ws", "/public/ws/{streams:.+}", "/public/stream",
                "/market/ws", "/market/ws/{streams:.+}", "/market/stream")

    def __init__(self, model) -> None:
        super().__init__(model)
        # per symbol, the book as of the last step and its update id; per depth topic, the
        # levels changed since its last event, and that event's u
        self._engine: dict[str, tuple[dict[int, int], dict[int, int], int]] = {}
        self._pending: dict[str, tuple[set[int], set[int], int]] = {}
        self._tops: dict[str, tuple] = {}

    def _symbol(self, stream: str) -> str | None:
        name = stream.partition("@")[0].upper()
        return name if name in self.model.states else None

    def valid(self, path: str, stream: str) -> bool:
        _, _, kind = stream.partition("@")
        group = path.strip("/").split("/")[0]
        kinds = {k for k in (*DEPTH_SPEEDS_MS, *PARTIAL_SPEEDS_MS, *MARK_SPEEDS_MS, "bookTicker", "aggTrade",
                             "forceOrder")
                 if k.split("@")[0] in GROUPS.get(group, ())}
        return self._symbol(stream) is not None and kind in kinds

    def on_connect(self, path: str, query: Mapping[str, str]):
        parts = path.strip("/").split("/")
        if parts[1] == "stream":
            streams = [s for s in query.get("streams", "").split("/") if s]
            return [s for s in streams if self.valid(path, s)], _combined
        return [s for s in parts[2:] if self.valid(path, s)], None

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        request = self.decode(text)
        if request is None:
            return Reply([_encode({"error": {"code": 3, "msg": "Invalid JSON"}})])
        rid, method, params = request.get("id"), request.get("method"), request.get("params", [])
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"):
            return Reply([_encode({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                                   "id": rid})])
        if method == "LIST_SUBSCRIPTIONS":
            return Reply([_encode({"result": [], "id": rid})])
        bad = [p for p in params if not isinstance(p, str) or not self.valid(path, p)] if isinstance(
            params, list) else [params]
        if bad:
            return Reply([_encode({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r} "
                                                              f"on {path.split('/')[1]}"}, "id": rid})])
        reply = Reply([_encode({"result": None, "id": rid})])
        (reply.subscribe if method == "SUBSCRIBE" else reply.unsubscribe).extend(params)
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._pending.pop(topic, None)
        self._tops.pop(topic, None)

    def snapshot(self, topic: str) -> list[bytes]:
        return []  # Binance answers a subscribe with its result only

    def step_frames(self, topics: set[str]) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for symbol in {t.partition("@")[0].upper() for t in topics if "@depth" in t}:
            self._advance(self.model.states[symbol], topics)
        for topic in topics:
            state = self.model.states[topic.partition("@")[0].upper()]
            kind = topic.partition("@")[2]
            if kind == "bookTicker":
                frames = self._book_ticker(topic, state)
            elif kind in DEPTH_SPEEDS_MS:
                frames = self._depth(topic, state, DEPTH_SPEEDS_MS[kind])
            elif kind in PARTIAL_SPEEDS_MS:
                frames = [self._partial(state, int(kind[5:].partition("@")[0]))] if self.due(
                    topic, PARTIAL_SPEEDS_MS[kind]) else []
            elif kind == "forceOrder":  # the model has no liquidations
                frames = []
            elif kind in MARK_SPEEDS_MS:
                frames = [self._mark(state)] if self.due(topic, MARK_SPEEDS_MS[kind]) else []
            else:
                frames = [self._agg_trade(state, t) for t in state.venues[self.name].trades]
            if frames:
                out[topic] = frames
        return out

    def _update_id(self, state: SymbolState) -> int:
        return state.book_version * 10

    def _book_ticker(self, topic: str, state: SymbolState) -> list[bytes]:
        bids, asks = self.quote(state)
        (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
        if self._tops.get(topic) == (bid, bid_n, ask, ask_n):
            return []
        self._tops[topic] = (bid, bid_n, ask, ask_n)
        inst, now = state.inst, self.model.now_ms
        return [_encode({"e": "bookTicker", "u": self._update_id(state), "s": inst.symbol,
                         "b": inst.price(bid), "B": _size(state, bid_n), "a": inst.price(ask),
                         "A": _size(state, ask_n), "T": now - 3, "E": now})]

    def _advance(self, state: SymbolState, topics: set[str] = frozenset()) -> None:
        """Bring the symbol's book up to this step, noting what changed for each depth topic.
        An event then carries every level that changed since the last one, so applying it to
        a REST snapshot taken at any point in between gives the same book."""
        symbol, u = state.inst.symbol, self._update_id(state)
        engine = self._engine.get(symbol)
        if engine is not None and engine[2] == u:
            return
        bids, asks = self.quote(state, DEPTH_LEVELS)
        if engine is not None:
            changed_bids, changed_asks = book_diff(engine[0], bids), book_diff(engine[1], asks)
            for topic, (pending_bids, pending_asks, _) in self._pending.items():
                if topic.partition("@")[0].upper() == symbol:
                    pending_bids.update(changed_bids)
                    pending_asks.update(changed_asks)
        self._engine[symbol] = (bids, asks, u)
        for topic in topics:
            if topic not in self._pending and topic.partition("@")[0].upper() == symbol and "@depth" in topic:
                self._pending[topic] = (set(), set(), u)  # the stream starts here; clients sync with REST

    def _depth(self, topic: str, state: SymbolState, every_ms: int) -> list[bytes]:
        pending_bids, pending_asks, last_u = self._pending[topic]
        if not (pending_bids or pending_asks) or not self.due(topic, every_ms):
            return []
        bids, asks, u = self._engine[state.inst.symbol]
        self._pending[topic] = (set(), set(), u)
        now = self.model.now_ms
        return [_encode({"e": "depthUpdate", "E": now, "T": now - 3, "s": state.inst.symbol,
                         "U": last_u + 1, "u": u, "pu": last_u,
                         "b": self.levels(state, {p: bids.get(p, 0) for p in pending_bids}, True),
                         "a": self.levels(state, {p: asks.get(p, 0) for p in pending_asks}, False)})]

    def _partial(self, state: SymbolState, levels: int) -> bytes:
        """A partial book: the top `levels` of each side every push, with the diff stream's ids."""
        bids, asks = self.quote(state, levels)
        now, u = self.model.now_ms, self._update_id(state)
        return _encode({"e": "depthUpdate", "E": now, "T": now - 3, "s": state.inst.symbol, "U": u, "u": u,
                        "pu": u - 10, "b": self.levels(state, bids, True), "a": self.levels(state, asks, False)})

    def _mark(self, state: SymbolState) -> bytes:
        mark, index = self.mark_index(state)
        return _encode({"e": "markPriceUpdate", "E": self.model.now_ms, "s": state.inst.symbol, "p": mark,
                        "i": index, "P": mark, "r": self.funding(state),
                        "T": self.model.next_funding_ms(state.inst.symbol)})

    def _agg_trade(self, state: SymbolState, trade) -> bytes:
        now = self.model.now_ms
        return _encode({"e": "aggTrade", "E": now, "a": int(trade.trade_id), "s": state.inst.symbol,
                        "p": state.inst.price(trade.price_ticks), "q": _size(state, trade.lots),
                        "f": int(trade.trade_id) * 3, "l": int(trade.trade_id) * 3, "T": trade.time_ms,
                        "m": trade.side == "Sell"})

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/fapi/v1/time": self._time, "/fapi/v1/depth": self._rest_depth,
                "/fapi/v1/premiumIndex": self._premium_index, "/fapi/v1/exchangeInfo": self._exchange_info,
                "/fapi/v1/fundingInfo": self._funding_info}

    def _exchange_info(self, query) -> tuple[int, object]:
        symbols = []
        for name, state in sorted(self.model.states.items()):
            inst = state.inst
            symbols.append({
                "symbol": name, "pair": name, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": name.removesuffix("USDT"),
                "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": -inst.tick.as_tuple().exponent,
                "quantityPrecision": max(0, -inst.lot.as_tuple().exponent), "underlyingType": "COIN",
                "filters": [{"filterType": "PRICE_FILTER", "minPrice": str(inst.tick), "tickSize": str(inst.tick),
                             "maxPrice": str(inst.tick * 10_000_000)},
                            {"filterType": "LOT_SIZE", "minQty": str(inst.lot), "stepSize": str(inst.lot),
                             "maxQty": str(inst.lot * 1_000_000)},
                            {"filterType": "MIN_NOTIONAL",
                             "notional": str(MIN_NOTIONAL.get(name, DEFAULT_MIN_NOTIONAL))}],
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
        return 200, {"timezone": "UTC", "serverTime": self.model.now_ms, "futuresType": "U_MARGINED",
                     "rateLimits": [], "exchangeFilters": [], "assets": [], "symbols": symbols}

    def _funding_info(self, query) -> tuple[int, object]:
        """Only symbols whose funding differs from the default 8 h, as on Binance."""
        return 200, [{"symbol": name, "adjustedFundingRateCap": "0.02000000",
                      "adjustedFundingRateFloor": "-0.02000000",
                      "fundingIntervalHours": state.inst.funding_interval_h, "disclaimer": False}
                     for name, state in sorted(self.model.states.items()) if state.inst.funding_interval_h != 8]

    def _time(self, query) -> tuple[int, object]:
        return 200, {"serverTime": self.clock_ms()}

    def _state(self, query) -> SymbolState | tuple[int, object]:
        symbol = query.get("symbol", "")
        if symbol not in self.model.states:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        return self.model.states[symbol]

    def _rest_depth(self, query) -> tuple[int, object]:
        state = self._state(query)
        if isinstance(state, tuple):
            return state
        limit = query.get("limit", "500")
        if not limit.isdigit() or int(limit) not in REST_DEPTH_LIMITS:
            return 400, {"code": -1100, "msg": f"Illegal characters found in parameter 'limit'; legal values "
                                               f"are {', '.join(map(str, REST_DEPTH_LIMITS))}."}
        self._advance(state)
        bids, asks, u = self._engine[state.inst.symbol]
        depth = min(int(limit), DEPTH_LEVELS)
        bids = dict(sorted(bids.items(), reverse=True)[:depth])
        asks = dict(sorted(asks.items())[:depth])
        now = self.model.now_ms
        return 200, {"lastUpdateId": u, "E": now, "T": now - 3,
                     "bids": self.levels(state, bids, True), "asks": self.levels(state, asks, False)}

    def _premium_index(self, query) -> tuple[int, object]:
        state = self._state(query)
        if isinstance(state, tuple):
            return state
        mark, index = self.mark_index(state)
        return 200, {"symbol": state.inst.symbol, "markPrice": mark, "indexPrice": index,
                     "estimatedSettlePrice": mark, "lastFundingRate": self.funding(state), "interestRate": "0.00010000",
                     "nextFundingTime": self.model.next_funding_ms(state.inst.symbol), "time": self.model.now_ms}


def _size(state: SymbolState, lots: int) -> str:
    return plain(state.inst.lot * lots)


def _combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
