"""Binance USD-M: today's split hosts, one connection each (protocol-other-venues.md section 1).

`/public/stream` carries the high-frequency `bookTicker` and `depth20@100ms`; `/market/stream`
carries `markPrice@1s`, `aggTrade` and `forceOrder`. Both are combined-stream connections fed
by live SUBSCRIBE requests (at most 10 messages/s and 1,024 streams per connection; requests
carry 50 streams each, sent 5 a second; past 1,024 streams a host takes more connections).
Binance pings every 3 minutes and picows answers; we send nothing.
"""

from __future__ import annotations

import msgspec

from shared.venues.binance.parser import Parser
from shared.venues.protocol import Connection, VenueFeed, split_connections

_encode = msgspec.json.encode
STREAMS_PER_REQUEST = 50
STREAMS_PER_CONNECTION = 1024
BOOK_DEPTHS = (5, 10, 20)  # partial depth streams


class Feed(VenueFeed):
    name = "binance"
    snapshot_key_prefix = "binance:linear:tickers"
    ping_interval_s = None
    messages_per_s = 5.0  # of Binance's 10
    parser = Parser

    def connections(self) -> list[Connection]:
        depth = next((d for d in BOOK_DEPTHS if d >= self.book_levels), BOOK_DEPTHS[-1])
        names = [s.lower() for s in self.symbols.by_venue_symbol]
        public = [[f"{s}@{kind}" for kind in ("bookTicker", f"depth{depth}@100ms")] for s in names]
        market = [[f"{s}@{kind}" for kind in ("markPrice@1s", "aggTrade", "forceOrder")] for s in names]
        return [*split_connections("public", self.hosts.ws + "/public/stream", public, STREAMS_PER_CONNECTION),
                *split_connections("market", self.hosts.ws + "/market/stream", market, STREAMS_PER_CONNECTION)]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        step = STREAMS_PER_REQUEST
        return [_encode({"method": op.upper(), "params": topics[i: i + step], "id": next(self._ids)}).decode()
                for i in range(0, len(topics), step)]
