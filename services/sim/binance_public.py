"""Binance USD-M futures market data (protocol-other-venues.md §1), in the shapes of
venue-samples/binance and of Binance's USD-M docs, over the shared market model.

WebSocket, on today's split base paths: `/public` for `bookTicker`, `depth` (diff, `@100ms`,
`@500ms`, `@0ms`) and `depth5|10|20`; `/market` for `markPrice` (`@1s`), `aggTrade` and
`forceOrder`; the raw `<symbol>@trade` stream (`"e": "trade"`, `X` "MARKET") on both, since
sources disagree on its path (ccxt routes it to `/market`, Binance's own options streams put
trades on `/public`). Raw streams at `/<base>/ws/<streams>`, combined ones (`{"stream": ...,
"data": ...}`) at `/<base>/stream?streams=a/b`; live `{"method": "SUBSCRIBE"}` requests. A
`trade` event is one `aggTrade`'s single trade: `t` is its `f` (= `l`).

REST: `/fapi/v1/time`, `depth`, `premiumIndex`, `exchangeInfo`, `fundingInfo`,
`ticker/24hr` and `ticker/bookTicker` (one symbol with `symbol`, else a list of all), and
`klines` (Binance's intervals 1m..1M, `limit` 500 by default and at most 1500, `startTime` /
`endTime`; rows oldest first: open time and close time, trade count as numbers, the rest as
strings). Errors as Binance answers them, HTTP 400 with `{"code", "msg"}`: -1121 an unknown
symbol, -1120 an unknown interval, -1102 a missing mandatory parameter, -1100 an illegal value.

Prices are Binance's: the model's (Bybit's) shifted by Binance's basis now
(`MarketModel.venue_shift`), as the other venues' tickers do. `bookTicker` is the top of the
depth snapshot at the same `lastUpdateId`. The 24-hour ticker counts from the start of the
simulation (its `openTime`), on the model's trade tape; klines fold its 1-minute bars
(`state.bars`, the last 1000 minutes) into the interval, weeks from Monday 00:00 UTC, months
from their first day, 3d from the epoch. The model keeps no trade count and no taker side
for its tape, so those (`count`, kline trades and taker-buy volumes) answer 0 and `firstId` /
`lastId` -1, as Binance answers a window it counted no trades in; `lastQty` is the size of
the last step's last trade, "0" when that step printed none.

Depth diffs carry `U`, `u` and `pu` from one per-symbol update id, and REST depth's
`lastUpdateId` is on the same id, so the documented sync (snapshot, drop `u` < lastUpdateId,
then `pu` == previous `u`) works against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from services.sim.binance_trade import DEFAULT_MIN_NOTIONAL, MIN_NOTIONAL
from services.sim.dialect import Dialect, Reply, book_diff
from services.sim.market import SymbolState, fold_bars, plain

_encode = msgspec.json.encode
GROUPS = {"public": ("bookTicker", "depth", "depth5", "depth10", "depth20", "trade"),
          "market": ("markPrice", "aggTrade", "forceOrder", "trade")}
DEPTH_SPEEDS_MS = {"depth": 250, "depth@100ms": 100, "depth@500ms": 500, "depth@0ms": 0}
PARTIAL_SPEEDS_MS = {f"depth{n}{speed}": ms for n in (5, 10, 20)
                     for speed, ms in (("", 250), ("@100ms", 100), ("@500ms", 500))}
MARK_SPEEDS_MS = {"markPrice": 3000, "markPrice@1s": 1000}
DEPTH_LEVELS = 50
REST_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
MINUTE_MS, DAY_MS = 60_000, 86_400_000
# kline intervals -> length in ms ("1w" from Monday, "1M" by calendar month)
KLINE_INTERVALS_MS = {"1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS, "15m": 15 * MINUTE_MS,
                      "30m": 30 * MINUTE_MS, "1h": 60 * MINUTE_MS, "2h": 120 * MINUTE_MS, "4h": 240 * MINUTE_MS,
                      "6h": 360 * MINUTE_MS, "8h": 480 * MINUTE_MS, "12h": 720 * MINUTE_MS, "1d": DAY_MS,
                      "3d": 3 * DAY_MS, "1w": 7 * DAY_MS, "1M": None}
KLINE_LIMIT_DEFAULT, KLINE_LIMIT_MAX = 500, 1500


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
                             "forceOrder", "trade")
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
            elif kind == "trade":
                frames = [self._trade(state, t) for t in state.venues[self.name].trades]
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

    def _trade(self, state: SymbolState, trade) -> bytes:
        """The raw trade behind `_agg_trade`'s aggregate (each holds one: its `f` is this `t`)."""
        return _encode({"e": "trade", "E": self.model.now_ms, "T": trade.time_ms, "s": state.inst.symbol,
                        "t": int(trade.trade_id) * 3, "p": state.inst.price(trade.price_ticks),
                        "q": _size(state, trade.lots), "X": "MARKET", "m": trade.side == "Sell"})

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/fapi/v1/time": self._time, "/fapi/v1/depth": self._rest_depth,
                "/fapi/v1/premiumIndex": self._premium_index, "/fapi/v1/exchangeInfo": self._exchange_info,
                "/fapi/v1/fundingInfo": self._funding_info, "/fapi/v1/ticker/24hr": self._ticker_24hr,
                "/fapi/v1/ticker/bookTicker": self._rest_book_ticker, "/fapi/v1/klines": self._klines}

    def _exchange_info(self, query) -> tuple[int, object]:
        symbols = []
        for name in self.model.listed("binance"):
            inst = self.model.states[name].inst
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

    def _states(self, query) -> list[SymbolState] | tuple[int, object]:
        """The symbol asked for, or every symbol when the query names none."""
        if "symbol" not in query:
            return [self.model.states[name] for name in sorted(self.model.states)]
        state = self._state(query)
        return state if isinstance(state, tuple) else [state]

    def _ticker_24hr(self, query) -> tuple[int, object]:
        states = self._states(query)
        if isinstance(states, tuple):
            return states
        rows = [self._ticker(state) for state in states]
        return 200, rows[0] if "symbol" in query else rows

    def _ticker(self, state: SymbolState) -> dict:
        inst, shift = state.inst, self.model.venue_shift(state, self.name)
        last, opened = state.last_ticks + shift, state.open_ticks + shift
        lots = state.volume_lots
        quote = state.turnover + float(inst.tick * shift * inst.lot * lots)  # each trade at Binance's price
        average = quote / float(inst.tick * inst.lot * lots) if lots else float(last)
        last_lots = state.trades[-1].lots if state.trades else 0
        return {"symbol": inst.symbol, "priceChange": inst.price(last - opened),
                "priceChangePercent": f"{(last - opened) / opened * 100:.3f}",
                "weightedAvgPrice": inst.fine_price(average), "lastPrice": inst.price(last),
                "lastQty": _size(state, last_lots), "openPrice": inst.price(opened),
                "highPrice": inst.price(state.high_ticks + shift), "lowPrice": inst.price(state.low_ticks + shift),
                "volume": _size(state, lots), "quoteVolume": f"{quote:.2f}", "openTime": self.model.start_ms,
                "closeTime": self.model.now_ms, "firstId": -1, "lastId": -1, "count": 0}

    def _rest_book_ticker(self, query) -> tuple[int, object]:
        states = self._states(query)
        if isinstance(states, tuple):
            return states
        rows = []
        for state in states:
            self._advance(state)
            bids, asks, u = self._engine[state.inst.symbol]
            bid, ask = max(bids), min(asks)
            rows.append({"symbol": state.inst.symbol, "bidPrice": state.inst.price(bid),
                         "bidQty": _size(state, bids[bid]), "askPrice": state.inst.price(ask),
                         "askQty": _size(state, asks[ask]), "time": self.model.now_ms - 3, "lastUpdateId": u})
        return 200, rows[0] if "symbol" in query else rows

    def _klines(self, query) -> tuple[int, object]:
        """Bars oldest first, `limit` of them: from `startTime` on when it is given, else the
        latest up to `endTime` (now by default)."""
        for name in ("symbol", "interval"):
            if not query.get(name):
                return 400, {"code": -1102, "msg": f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                                   f"or malformed."}
        state = self._state(query)
        if isinstance(state, tuple):
            return state
        interval = query["interval"]
        if interval not in KLINE_INTERVALS_MS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        numbers = {}
        for name, default in (("limit", KLINE_LIMIT_DEFAULT), ("startTime", None), ("endTime", None)):
            text = query.get(name)
            if text is not None and not (text.isascii() and text.isdigit() and len(text) <= 20):
                return 400, {"code": -1100, "msg": f"Illegal characters found in parameter '{name}'; legal range "
                                                   f"is '^[0-9]{{1,20}}$'."}
            numbers[name] = default if text is None else int(text)
        limit, start, end = numbers["limit"], numbers["startTime"], numbers["endTime"]
        if not 1 <= limit <= KLINE_LIMIT_MAX:
            return 400, {"code": -1100, "msg": f"Illegal characters found in parameter 'limit'; legal range is "
                                               f"'1' to '{KLINE_LIMIT_MAX}'."}
        inst, shift = state.inst, self.model.venue_shift(state, self.name)
        span = {"1w": "week", "1M": "month"}.get(interval, KLINE_INTERVALS_MS[interval])
        bars = [b for b in fold_bars(state.bars, span)
                if (start is None or b[0] >= start) and (end is None or b[0] <= end)]
        bars = bars[:limit] if start is not None else bars[-limit:]
        rows = []
        for t, o, h, low, c, lots, turnover in bars:
            quote = turnover + float(inst.tick * shift * inst.lot * lots)
            rows.append([t, inst.price(o + shift), inst.price(h + shift), inst.price(low + shift),
                         inst.price(c + shift), _size(state, lots), _kline_end(t, interval), f"{quote:.5f}", 0,
                         "0", "0", "0"])
        return 200, rows


def _kline_end(start: int, interval: str) -> int:
    """The close time of the kline opened at `start`: the next one's open time less 1 ms."""
    if interval == "1M":
        day = datetime.fromtimestamp(start / 1000, UTC)
        following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
        return int(following.timestamp() * 1000) - 1
    return start + KLINE_INTERVALS_MS[interval] - 1


def _size(state: SymbolState, lots: int) -> str:
    return plain(state.inst.lot * lots)


def _combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
