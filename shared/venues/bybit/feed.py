"""Bybit V5 linear perpetuals: what to subscribe on `/v5/public/linear`, and the heartbeat.

Bybit asks for a `{"op":"ping"}` every 20 s and accepts up to 21,000 characters of args per
connection (protocol-bybit-v5.md), so a large universe takes several connections, each
symbol's four topics on one; requests carry 10 args each. A resubscribe (unsubscribe,
subscribe) brings a fresh snapshot.
"""

from __future__ import annotations

import msgspec

from shared.venues.bybit.parser import Parser
from shared.venues.protocol import Connection, VenueFeed, split_connections

_encode = msgspec.json.encode
BOOK_DEPTHS = (1, 50, 200, 1000)  # the orderbook.{depth} streams linear offers
ARGS_PER_REQUEST = 10
ARGS_CHARS_PER_CONNECTION = 21_000


class Feed(VenueFeed):
    name = "bybit"
    snapshot_key_prefix = "bybit:linear:tickers"
    ping_interval_s = 20.0
    parser = Parser

    def connections(self) -> list[Connection]:
        depth = next((d for d in BOOK_DEPTHS if d >= self.book_levels), BOOK_DEPTHS[-1])
        kinds = ("tickers.{}", f"orderbook.{depth}.{{}}", "publicTrade.{}", "allLiquidation.{}")
        groups = [[kind.format(symbol) for kind in kinds] for symbol in self.symbols.by_venue_symbol]
        return split_connections("linear", self.hosts.ws + "/v5/public/linear", groups,
                                 max_chars=ARGS_CHARS_PER_CONNECTION)

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        step = ARGS_PER_REQUEST
        return [
            _encode({"req_id": f"{op[:5]}-{next(self._ids)}", "op": op, "args": topics[i : i + step]}).decode()
            for i in range(0, len(topics), step)
        ]

    def ping_message(self) -> str:
        return _encode({"req_id": f"ping-{next(self._ids)}", "op": "ping"}).decode()
