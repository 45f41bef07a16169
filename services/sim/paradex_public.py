"""Paradex perps market data, in the documented shapes: JSON-RPC on `/v1` (`subscribe` with
`{"channel"}`, pushes as `{"method": "subscription", "params": {"channel", "data"}}`), channels
`bbo.{market}`, `markets_summary.{market}`, `order_book.{market}.snapshot@15@100ms` and
`trades.{market}`; REST `/v1/markets` and `/v1/system/time`. Markets are `BTC-USD-PERP`,
sizes are coins, funding is the 8 h rate.
"""

from __future__ import annotations

import re

import msgspec

from services.sim.dialect import Dialect, Reply
from services.sim.market import plain

_encode = msgspec.json.encode
CHANNEL_EVERY_MS = {"bbo": 0, "markets_summary": 1000, "order_book": 100, "trades": 0}
_BOOK = re.compile(r"^order_book\.(?P<market>[A-Z0-9]+-USD-PERP)\.snapshot@(?P<depth>\d+)@(?P<ms>\d+)ms$")


def market(symbol: str) -> str:
    return f"{symbol.removesuffix('USDT')}-USD-PERP"


class ParadexDialect(Dialect):
    name = "paradex"
    ws_paths = ("/v1",)
    every_ms = CHANNEL_EVERY_MS
    unsnapshotted = frozenset({"trades"})

    def __init__(self, model) -> None:
        super().__init__(model)
        self.symbols = {market(s): s for s in model.states}
        self._tops: dict[str, tuple] = {}

    def _parse_channel(self, channel: str) -> tuple[str, str, int] | None:
        """(kind, market, depth) of a channel the simulator serves, else None."""
        if (match := _BOOK.match(channel)) is not None:
            return ("order_book", match["market"], int(match["depth"])) if match["market"] in self.symbols else None
        kind, _, name = channel.partition(".")
        return (kind, name, 0) if kind in ("bbo", "markets_summary", "trades") and name in self.symbols else None

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        request = self.decode(text) or {}
        rid, method, params = request.get("id"), request.get("method"), request.get("params")
        channel = params.get("channel") if isinstance(params, dict) else None
        if method not in ("subscribe", "unsubscribe") or not isinstance(channel, str):
            return Reply([_encode({"jsonrpc": "2.0", "error": {"code": -32600, "message": "invalid request"},
                                   "id": rid})])
        if self._parse_channel(channel) is None:
            return Reply([_encode({"jsonrpc": "2.0", "error": {"code": -32602, "message": f"invalid channel {channel}"},
                                   "id": rid})])
        reply = Reply([_encode({"jsonrpc": "2.0", "result": {"channel": channel}, "id": rid})])
        (reply.subscribe if method == "subscribe" else reply.unsubscribe).append(channel)
        return reply

    def forget(self, topic: str) -> None:
        super().forget(topic)
        self._tops.pop(topic, None)

    def kind(self, topic: str) -> str:
        return topic.partition(".")[0]

    def frames(self, topic: str) -> list[bytes]:
        kind, name, depth = self._parse_channel(topic)
        state = self.model.states[self.symbols[name]]
        inst, now = state.inst, self.model.now_ms
        if kind == "bbo":
            bids, asks = self.quote(state)
            (bid, bid_n), (ask, ask_n) = next(iter(bids.items())), next(iter(asks.items()))
            if self._tops.get(topic) == (bid, bid_n, ask, ask_n):
                return []
            self._tops[topic] = (bid, bid_n, ask, ask_n)
            datas = [{"market": name, "bid": inst.price(bid), "bid_size": plain(inst.lot * bid_n),
                      "ask": inst.price(ask), "ask_size": plain(inst.lot * ask_n), "last_updated_at": now,
                      "seq_no": state.book_version}]
        elif kind == "markets_summary":
            mark, index = self.mark_index(state)
            datas = [{"symbol": name, "oracle_price": index, "mark_price": mark,
                      "last_traded_price": inst.price(state.last_ticks + self.model.venue_shift(state, self.name)),
                      "bid": "", "ask": "", "volume_24h": f"{state.turnover:.2f}", "total_volume": "0",
                      "created_at": now, "underlying_price": index,
                      "open_interest": plain(inst.lot * state.open_interest_lots), "funding_rate": self.funding(state),
                      "price_change_rate_24h": "0"}]
        elif kind == "order_book":
            bids, asks = self.quote(state, depth)
            inserts = [{"side": "BUY", "price": inst.price(p), "size": plain(inst.lot * n)}
                       for p, n in sorted(bids.items(), reverse=True)]
            inserts += [{"side": "SELL", "price": inst.price(p), "size": plain(inst.lot * n)}
                        for p, n in sorted(asks.items())]
            datas = [{"seq_no": state.book_version, "market": name, "last_updated_at": now, "update_type": "s",
                      "deletes": [], "inserts": inserts, "updates": []}]
        else:
            datas = [{"id": f"{t.trade_id}", "market": name, "side": t.side.upper(), "size": plain(inst.lot * t.lots),
                      "price": inst.price(t.price_ticks), "created_at": t.time_ms, "trade_type": "FILL"}
                     for t in state.venues[self.name].trades]
        return [_encode({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": topic, "data": d}})
                for d in datas]

    # --- REST ------------------------------------------------------------------------------

    def rest(self):
        return {"/v1/markets": self._markets, "/v1/system/time": self._time}

    def _time(self, query) -> tuple[int, object]:
        return 200, {"server_time": str(self.clock_ms())}

    def _markets(self, query) -> tuple[int, object]:
        listed = set(self.model.listed("paradex"))
        insts = [(name, self.model.states[symbol].inst) for name, symbol in sorted(self.symbols.items())
                 if symbol in listed]
        return 200, {"results": [
            {"symbol": name, "base_currency": name.split("-")[0], "quote_currency": "USD",
             "settlement_currency": "USDC", "order_size_increment": plain(inst.lot),
             "price_tick_size": plain(inst.tick), "min_notional": "10", "open_at": 0, "expiry_at": 0,
             "asset_kind": "PERP", "funding_period_hours": inst.funding_interval_h, "max_funding_rate": "0.05"}
            for name, inst in insts]}
