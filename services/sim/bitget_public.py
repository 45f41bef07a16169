"""Bitget v2 USDT-futures market data (protocol-other-venues.md §3), in the shapes of
venue-samples/bitget: `/v2/ws/public` with `{"op": "subscribe", "args": [{"instType":
"USDT-FUTURES", "channel", "instId"}]}`, channels `ticker` (funding, mark and index ride in
it), `books5` (full snapshots) and `books` (a snapshot, then updates with a CRC32 checksum of
the top 25 levels); plain-text `ping`/`pong`.

REST, in Bitget's envelope `{"code": "00000", "msg": "success", "requestTime", "data"}`
(shapes from Bitget's classic contract market pages, bitget.com/api-doc/contract/market/*):

    GET /api/v2/public/time                                    {"serverTime"}
    GET /api/v2/mix/market/contracts?productType=[&symbol=]    contract configs
    GET /api/v2/mix/market/current-fund-rate?productType=[&symbol=]
    GET /api/v2/mix/market/ticker?symbol=&productType=         [one ticker row]
    GET /api/v2/mix/market/tickers?productType=                every ticker row
    GET /api/v2/mix/market/merge-depth?symbol=&productType=[&precision=scale0..scale3][&limit=1|5|15|50|100|max]

`productType` is any of Bitget's six, in any case (the pages' curl examples write
`usdt-futures`): USDT-FUTURES lists the simulated symbols; COIN-FUTURES, USDC-FUTURES and the
demo SUSDT-, SCOIN- and SUSDC-FUTURES list nothing here, so their lists are empty ("00000",
`data` []: the venue has none there; the Bitget client's demo probe reads that as "no S-
contracts"). A symbol is looked up whichever valid type names it (live, merge-depth served
BTCPERP under USDT-FUTURES). Ticker rows carry every string field of the Get-Ticker page; a
perpetual's `deliveryStartTime`/`deliveryTime` are null and `deliveryStatus` "" (Get-All-Tickers
example, live captures). merge-depth levels are JSON numbers `[price, size]` as the page's
example and the live venue send them (its table says String); `scaleN` merges bids down and
asks up to a step of tick x 10^N, `scale` is that step, `isMaxPrecision` YES at scale3; at most
100 levels a side (the default, and what `max` gave live).

Errors are HTTP 400 with `data` null: no productType (or no symbol where one is required)
400172 "Parameter verification failed"; an unknown productType 40034 "Parameter productType
does not exist"; an unknown symbol 40034 "Parameter <symbol> does not exist"; a limit or
precision outside the enumerations 40020 "Parameter <name> error".
"""

from __future__ import annotations

import msgspec

from services.sim.dialect import Dialect, Reply, book_diff, checksum
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
INST_TYPE = "USDT-FUTURES"
# every productType Bitget's V2 mix market pages list; only INST_TYPE has contracts here
PRODUCT_TYPES = ("USDT-FUTURES", "COIN-FUTURES", "USDC-FUTURES", "SUSDT-FUTURES", "SCOIN-FUTURES", "SUSDC-FUTURES")
DEPTH_LIMITS = {"1": 1, "5": 5, "15": 15, "50": 50, "100": 100, "max": 100}  # merge-depth `limit`; 100 the default
PRECISIONS = ("scale0", "scale1", "scale2", "scale3")  # merge-depth `precision`: a step of tick x 10^N
# the Get-Ticker page's fields, in its order; the WS ticker's (`_ticker`) carry the simulated values
REST_TICKER_FIELDS = ("symbol", "lastPr", "askPr", "bidPr", "bidSz", "askSz", "high24h", "low24h", "ts", "change24h",
                      "baseVolume", "quoteVolume", "usdtVolume", "openUtc", "changeUtc24h", "indexPrice", "fundingRate",
                      "holdingAmount", "deliveryStartTime", "deliveryTime", "deliveryStatus", "open24h", "markPrice")
CHANNEL_EVERY_MS = {"ticker": 100, "books5": 100, "books15": 100, "books": 100, "trade": 0}
BOOK_LEVELS = 50


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

    def snapshot(self, topic: str) -> list[bytes]:
        """A subscriber joining a `books` topic that is already streaming gets the book its
        last frame left, so the updates every subscriber gets next apply to it too."""
        channel, _, symbol = topic.partition(":")
        if channel != "books" or topic not in self._books:
            return super().snapshot(topic)
        bids, asks = self._books[topic]
        state = self.model.states[symbol]
        arg = {"instType": INST_TYPE, "channel": channel, "instId": symbol}
        return [_encode({"action": "snapshot", "arg": arg, "data": self._book_data(state, bids, asks, bids, asks),
                         "ts": self.model.now_ms})]

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
                "/api/v2/mix/market/contracts": self._contracts, "/api/v2/mix/market/ticker": self._rest_ticker,
                "/api/v2/mix/market/tickers": self._rest_tickers, "/api/v2/mix/market/merge-depth": self._merge_depth}

    def _answer(self, data, code: str = "00000", msg: str = "success") -> tuple[int, object]:
        return (200 if code == "00000" else 400), {"code": code, "msg": msg, "requestTime": self.model.now_ms,
                                                   "data": data}

    def _scope(self, query, symbol_required: bool) -> tuple[str | None, str | None, tuple | None]:
        """(productType upper-cased, symbol or None, None), or (None, None, the refusal)."""
        product, symbol = query.get("productType", ""), query.get("symbol", "")
        if not product or (symbol_required and not symbol):
            return None, None, self._answer(None, "400172", "Parameter verification failed")
        if product.upper() not in PRODUCT_TYPES:
            return None, None, self._answer(None, "40034", "Parameter productType does not exist")
        if symbol and symbol not in self.model.states:
            return None, None, self._answer(None, "40034", f"Parameter {symbol} does not exist")
        return product.upper(), symbol or None, None

    def _listed(self, product: str) -> list[str]:
        """The symbols `product` lists here: the simulated ones under USDT-FUTURES, none elsewhere."""
        return self.model.listed("bitget") if product == INST_TYPE else []

    def _time(self, query) -> tuple[int, object]:
        return self._answer({"serverTime": str(self.clock_ms())})

    def _contracts(self, query) -> tuple[int, object]:
        product, symbol, refused = self._scope(query, symbol_required=False)
        if refused:
            return refused
        rows = []
        for name in self._listed(product):
            if symbol not in (None, name):
                continue
            inst = self.model.states[name].inst
            places = -inst.tick.as_tuple().exponent
            rows.append({"symbol": name, "baseCoin": name.removesuffix("USDT"), "quoteCoin": "USDT",
                         "makerFeeRate": "0.0002", "takerFeeRate": "0.0006", "minTradeNum": plain(inst.lot),
                         "priceEndStep": str(int(inst.tick.scaleb(places))), "volumePlace": str(
                             max(0, -inst.lot.as_tuple().exponent)), "pricePlace": str(places),
                         "sizeMultiplier": plain(inst.lot), "symbolType": "perpetual", "minTradeUSDT": "5",
                         "symbolStatus": "normal", "fundInterval": str(inst.funding_interval_h), "minLever": "1",
                         "maxLever": "125", "supportMarginCoins": ["USDT"]})
        return self._answer(rows)

    def _fund_rate(self, query) -> tuple[int, object]:
        product, symbol, refused = self._scope(query, symbol_required=False)
        if refused:
            return refused
        rows = []
        for name in [symbol] if symbol else self._listed(product):
            state = self.model.states[name]
            rows.append({"symbol": name, "fundingRate": self.funding(state),
                         "fundingRateInterval": str(state.inst.funding_interval_h),
                         "nextUpdate": str(self.model.next_funding_ms(name)),
                         "minFundingRate": "-0.003", "maxFundingRate": "0.003"})
        return self._answer(rows)

    def _rest_ticker_row(self, state: SymbolState) -> dict:
        """Get-Ticker's row from the WS ticker's values (a perpetual: no delivery times)."""
        pushed = self._ticker(state)[0]
        pushed |= {"usdtVolume": pushed["quoteVolume"], "changeUtc24h": pushed["change24h"],
                   "deliveryStartTime": None, "deliveryTime": None, "deliveryStatus": ""}
        return {key: pushed[key] for key in REST_TICKER_FIELDS}

    def _rest_ticker(self, query) -> tuple[int, object]:
        _, symbol, refused = self._scope(query, symbol_required=True)
        if refused:
            return refused
        return self._answer([self._rest_ticker_row(self.model.states[symbol])])

    def _rest_tickers(self, query) -> tuple[int, object]:
        product, _, refused = self._scope({"productType": query.get("productType", "")}, symbol_required=False)
        if refused:
            return refused
        return self._answer([self._rest_ticker_row(self.model.states[name]) for name in self._listed(product)])

    def _merge_depth(self, query) -> tuple[int, object]:
        _, symbol, refused = self._scope(query, symbol_required=True)
        if refused:
            return refused
        precision, limit = query.get("precision") or "scale0", query.get("limit") or "100"  # empty: absent
        if precision not in PRECISIONS:
            return self._answer(None, "40020", "Parameter precision error")
        if limit not in DEPTH_LIMITS:
            return self._answer(None, "40020", "Parameter limit error")
        state = self.model.states[symbol]
        inst, step = state.inst, 10 ** PRECISIONS.index(precision)  # in ticks
        bids, asks = self.quote(state, max(self.model.config.book_levels, DEPTH_LIMITS["max"]))
        merged_bids: dict[int, int] = {}
        merged_asks: dict[int, int] = {}
        for price, lots in bids.items():  # a bid merges down to the step, an ask up
            merged_bids[price // step * step] = merged_bids.get(price // step * step, 0) + lots
        for price, lots in asks.items():
            merged_asks[-(-price // step) * step] = merged_asks.get(-(-price // step) * step, 0) + lots
        count = DEPTH_LIMITS[limit]

        def levels(side: dict[int, int], descending: bool) -> list[list[float]]:
            return [[float(inst.tick * price), float(inst.lot * lots)]
                    for price, lots in sorted(side.items(), reverse=descending)[:count]]

        return self._answer({"asks": levels(merged_asks, False), "bids": levels(merged_bids, True),
                             "ts": str(self.model.now_ms), "scale": plain(inst.tick * step), "precision": precision,
                             "isMaxPrecision": "YES" if precision == PRECISIONS[-1] else "NO"})
