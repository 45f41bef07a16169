"""Hyperliquid perps: one `/ws` connection (protocol-other-venues.md section 4).

Per coin: `bbo` (top of book), `l2Book` (20 levels a side, full snapshots), `trades` and
`activeAssetCtx` (funding, mark, oracle, open interest). One subscription per message, as
the API takes them. Hyperliquid closes a connection silent for 60 s; `{"method":"ping"}`
goes out every 20 s and is answered on the `pong` channel. Topics are `type:coin`.
"""

from __future__ import annotations

import msgspec

from shared.venues.hyperliquid.parser import Parser
from shared.venues.protocol import Connection, VenueFeed

_encode = msgspec.json.encode
CHANNELS = ("bbo", "l2Book", "trades", "activeAssetCtx")


class Feed(VenueFeed):
    name = "hyperliquid"
    snapshot_key_prefix = "hyperliquid:perps:tickers"
    ping_interval_s = 20.0
    parser = Parser

    def connections(self) -> list[Connection]:
        topics = [f"{channel}:{coin}" for coin in self.symbols.by_venue_symbol for channel in CHANNELS]
        return [Connection("public", self.hosts.ws + "/ws", topics)]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        return [_encode({"method": op, "subscription": dict(zip(("type", "coin"), t.split(":", 1), strict=True))})
                .decode() for t in topics]

    def ping_message(self) -> str:
        return '{"method":"ping"}'
