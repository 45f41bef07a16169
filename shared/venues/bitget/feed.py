"""Bitget v2 USDT-futures: one `/v2/ws/public` connection (protocol-other-venues.md section 3).

Per symbol: `ticker` (prices, funding, open interest), `books5` or `books15` (full snapshots)
and `trade`. A plain-text `ping` goes out every 20 s (Bitget closes sockets silent for 30 s
and suggests pinging every 30 s), answered by `pong`. Topics are `channel:instId`. Bitget
takes 10 messages a second and 240 subscribe requests an hour per connection (of 20 args
here), so requests go out 5 a second and a connection carries at most 480 topics: ten full
resubscribes an hour (its hard cap is 1,000).
"""

from __future__ import annotations

import msgspec

from shared.venues.bitget.parser import Parser
from shared.venues.bitget.rest import PRODUCT_TYPE
from shared.venues.protocol import Connection, VenueFeed, split_connections

_encode = msgspec.json.encode
ARGS_PER_REQUEST = 20
TOPICS_PER_CONNECTION = 240 // 10 * ARGS_PER_REQUEST


class Feed(VenueFeed):
    name = "bitget"
    snapshot_key_prefix = "bitget:usdt:tickers"
    ping_interval_s = 20.0
    messages_per_s = 5.0
    parser = Parser

    def connections(self) -> list[Connection]:
        books = "books5" if self.book_levels <= 5 else "books15"
        groups = [[f"{channel}:{s}" for channel in ("ticker", books, "trade")] for s in self.symbols.by_venue_symbol]
        return split_connections("public", self.hosts.ws + "/v2/ws/public", groups, TOPICS_PER_CONNECTION)

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        args = [dict(zip(("channel", "instId"), t.split(":", 1), strict=True)) | {"instType": PRODUCT_TYPE}
                for t in topics]
        step = ARGS_PER_REQUEST
        return [_encode({"op": op, "args": args[i: i + step]}).decode() for i in range(0, len(args), step)]

    def ping_message(self) -> str:
        return "ping"
