"""Gate v4 USDT-futures market data, in the documented shapes: `/v4/ws/usdt` with
`{"time", "channel", "event": "subscribe", "payload": [...]}`, channels `futures.book_ticker`,
`futures.tickers`, `futures.order_book` (full snapshots, payload [contract, depth, "0"]) and
`futures.trades`; `futures.ping` answered on `futures.pong`; REST
`/api/v4/futures/usdt/contracts` and `/api/v4/spot/time`. Contracts are `BTC_USDT` and sizes
are whole contracts of `quanto_multiplier` base coins, as on Gate.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import SymbolState, plain

_encode = msgspec.json.encode
MULTIPLIER = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.01"), "SOL": Decimal("1"), "DOGE": Decimal("10")}
CHANNEL_EVERY_MS = {"futures.book_ticker": 0, "futures.tickers": 1000, "futures.order_book": 100,
                    "futures.trades": 0}
MAX_DEPTH = 100


def contract(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}_USDT"


def multiplier(symbol: str) -> Decimal:
    return MULTIPLIER.get(symbol.removesuffix("USDT"), Decimal(1))


class GateDialect(Dialect):
    name = "gate"
    ws_paths = ("/v4/ws/usdt",)
    every_ms = CHANNEL_EVERY_MS
    unsnapshotted = frozenset({"futures.trades"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {contract(s): s for s in model.states}
        self._depth: dict[str, int] = {}
        self._tops: dict[str, tuple] = {}

    def _head(self, channel: str, event: str) -> dict:
        now = self.clock_ms()
        return {"time": now // 1000, "time_ms": now, "channel": channel, "event": event}

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        request = self.decode(text) or {}
        channel, event, payload = request.get("channel"), request.get("event"), request.get("payload")
        if channel == "futures.ping":
            return Reply([_encode({**self._head("futures.pong", ""), "result": None})])
        if event not in ("subscribe", "unsubscribe") or channel not in CHANNEL_EVERY_MS or \
                not isinstance(payload, list):
            return Reply([_encode({**self._head(str(channel), str(event)), "result": None,
                                   "error": {"code": 1, "message": f"invalid request: {text[:200]}"}})])
        contracts = payload[:1] if channel == "futures.order_book" else payload
        bad = [c for c in contracts if c not in self.symbols]
        if bad or not contracts:
            return Reply([_encode({**self._head(channel, event), "result": {"status": "failed"},
                                   "error": {"code": 2, "message": f"unknown contract {bad[0] if bad else ''}"}})])
        reply = Reply([_encode({**self._head(channel, event), "result": {"status": "success"}})])
        if channel == "futures.order_book":
            self._depth[contracts[0]] = min(int(payload[1]) if len(payload) > 1 and str(payload[1]).isdigit()
                                            else 20, MAX_DEPTH)
        (reply.subscribe if event == "subscribe" else reply.unsubscribe).extend(f"{channel}:{c}" for c in contracts)
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._tops.pop(topic, None)

    def frames(self, topic: str) -> list[bytes]:
        channel, _, name = topic.partition(":")
        frame = self._frame(topic, channel, self.model.states[self.symbols[name]])
        return [frame] if frame is not None else []

    def _contracts(self, state: SymbolState, lots: int) -> int:
        return int(state.inst.lot * lots / multiplier(state.inst.symbol)) or 1

    def _frame(self, topic: str, channel: str, state: SymbolState) -> bytes | None:
        inst, name, now = state.inst, contract(state.inst.symbol), self.model.now_ms
        if channel == "futures.book_ticker":
            bids, asks = self.quote(state)
            (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
            if self._tops.get(topic) == (bid, bid_n, ask, ask_n):
                return None
            self._tops[topic] = (bid, bid_n, ask, ask_n)
            result = {"t": now, "u": state.book_version, "s": name, "b": inst.price(bid),
                      "B": self._contracts(state, bid_n), "a": inst.price(ask), "A": self._contracts(state, ask_n)}
        elif channel == "futures.tickers":
            mark, index = self.mark_index(state)
            shift = self.model.venue_shift(state, self.name)
            result = [{"contract": name, "last": inst.price(state.last_ticks + shift), "change_percentage": "0",
                       "funding_rate": self.funding(state), "funding_rate_indicative": self.funding(state),
                       "mark_price": mark, "index_price": index,
                       "total_size": str(self._contracts(state, state.open_interest_lots)),
                       "volume_24h": str(self._contracts(state, state.volume_lots)),
                       "low_24h": inst.price(state.low_ticks + shift),
                       "high_24h": inst.price(state.high_ticks + shift)}]
        elif channel == "futures.order_book":
            bids, asks = self.quote(state, self._depth.get(name, 20))
            result = {"t": now, "id": state.book_version, "contract": name,
                      "asks": [{"p": inst.price(p), "s": self._contracts(state, n)} for p, n in sorted(asks.items())],
                      "bids": [{"p": inst.price(p), "s": self._contracts(state, n)}
                               for p, n in sorted(bids.items(), reverse=True)]}
        else:
            result = [{"id": int(t.trade_id), "create_time": t.time_ms // 1000, "create_time_ms": t.time_ms,
                       "contract": name, "price": inst.price(t.price_ticks),
                       "size": self._contracts(state, t.lots) * (-1 if t.side == "Sell" else 1)}
                      for t in state.venues[self.name].trades]
            if not result:
                return None
        return _encode({**self._head(channel, "all" if channel == "futures.order_book" else "update"),
                        "result": result})

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/api/v4/futures/usdt/contracts": self._contract_list, "/api/v4/spot/time": self._time}

    def _time(self, query) -> tuple[int, object]:
        return 200, {"server_time": self.clock_ms()}

    def _contract_list(self, query) -> tuple[int, object]:
        rows, listed = [], set(self.model.listed("gate"))
        for name, symbol in sorted(self.symbols.items()):
            if symbol not in listed:
                continue
            state = self.model.states[symbol]
            mark, index = self.mark_index(state)
            rows.append({"name": name, "type": "direct", "quanto_multiplier": plain(multiplier(symbol)),
                         "leverage_min": "1", "leverage_max": "100", "maintenance_rate": "0.005",
                         "mark_type": "index", "mark_price": mark, "index_price": index,
                         "order_price_round": plain(state.inst.tick), "mark_price_round": plain(state.inst.tick),
                         "funding_rate": self.funding(state), "funding_interval": state.inst.funding_interval_h * 3600,
                         "funding_next_apply": self.model.next_funding_ms(symbol) // 1000, "order_size_min": 1,
                         "order_size_max": 1000000, "in_delisting": False, "status": "trading"})
        return 200, rows
