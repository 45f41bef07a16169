"""Bitget v2 USDT-futures: one `/v2/ws/public` connection (protocol-other-venues.md section 3).

Per symbol: `ticker` (prices, funding, open interest), `books5` or `books15` (full snapshots)
and `trade`. A plain-text `ping` goes out every 20 s (Bitget closes sockets silent for 30 s
and suggests pinging every 30 s), answered by `pong`. Topics are `channel:instId`.
"""

from __future__ import annotations

import msgspec

from shared.venues.bitget.parser import Parser
from shared.venues.bitget.rest import PRODUCT_TYPE
from shared.venues.protocol import Connection, VenueFeed

_encode = msgspec.json.encode
ARGS_PER_REQUEST = 20


class Feed(VenueFeed):
    name = "bitget"
    snapshot_key_prefix = "bitget:usdt:tickers"
    ping_interval_s = 20.0
    parser = Parser

    def connections(self) -> list[Connection]:
        books = "books5" if self.book_levels <= 5 else "books15"
        topics = [f"{channel}:{s}" for s in self.symbols.by_venue_symbol for channel in ("ticker", books, "trade")]
        return [Connection("public", self.hosts.ws + "/v2/ws/public", topics)]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        args = [dict(zip(("channel", "instId"), t.split(":", 1), strict=True)) | {"instType": PRODUCT_TYPE}
                for t in topics]
        step = ARGS_PER_REQUEST
        return [_encode({"op": op, "args": args[i: i + step]}).decode() for i in range(0, len(args), step)]

    def ping_message(self) -> str:
        return "ping"
