"""Paradex perps: one JSON-RPC `/v1` connection.

Per market: `bbo`, `markets_summary` (mark, underlying, funding, open interest),
`order_book.{market}.snapshot@15@100ms` (top-15 snapshots) and `trades`. Paradex pings with
WebSocket ping frames, which picows answers; we send none. Topics are the channel names.
"""

from __future__ import annotations

import msgspec

from shared.venues.paradex.parser import Parser
from shared.venues.protocol import Connection, VenueFeed

_encode = msgspec.json.encode
CHANNELS = ("bbo.{}", "markets_summary.{}", "order_book.{}.snapshot@15@100ms", "trades.{}")


class Feed(VenueFeed):
    name = "paradex"
    snapshot_key_prefix = "paradex:perps:tickers"
    ping_interval_s = None
    parser = Parser

    def connections(self) -> list[Connection]:
        topics = [channel.format(m) for m in self.symbols.by_venue_symbol for channel in CHANNELS]
        return [Connection("public", self.hosts.ws + "/v1", topics)]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        return [_encode({"jsonrpc": "2.0", "method": op, "params": {"channel": t}, "id": next(self._ids)}).decode()
                for t in topics]
