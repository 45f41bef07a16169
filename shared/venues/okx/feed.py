"""OKX v5 public swaps: one `/ws/v5/public` connection (protocol-other-venues.md section 2).

Per instrument: `tickers`, `funding-rate`, `mark-price`, `index-tickers`, `open-interest`,
`books5` and `trades`; plus `liquidation-orders` for all swaps. OKX drops a connection that
has been silent for 30 s, so a plain-text `ping` goes out every 20 s (answered by `pong`).
Topics are `channel:instId`; subscribe requests carry 20 args each. OKX allows 480 requests an
hour per connection, so a connection carries at most 960 topics: ten full resubscribes an hour.
"""

from __future__ import annotations

import msgspec

from shared.venues.okx.parser import Parser
from shared.venues.protocol import Connection, VenueFeed, split_connections

_encode = msgspec.json.encode
ARGS_PER_REQUEST = 20
TOPICS_PER_CONNECTION = 480 // 10 * ARGS_PER_REQUEST
CHANNELS = ("tickers", "funding-rate", "mark-price", "index-tickers", "open-interest", "books5", "trades")
LIQUIDATIONS = "liquidation-orders:SWAP"


def _arg(topic: str) -> dict[str, str]:
    channel, _, inst = topic.partition(":")
    if channel == "liquidation-orders":
        return {"channel": channel, "instType": inst}
    if channel == "index-tickers":
        return {"channel": channel, "instId": inst.removesuffix("-SWAP")}
    return {"channel": channel, "instId": inst}


class Feed(VenueFeed):
    name = "okx"
    snapshot_key_prefix = "okx:swap:tickers"
    ping_interval_s = 20.0
    parser = Parser

    def connections(self) -> list[Connection]:
        groups = [[f"{channel}:{inst}" for channel in CHANNELS] for inst in self.symbols.by_venue_symbol]
        return split_connections("public", self.hosts.ws + "/ws/v5/public", groups, TOPICS_PER_CONNECTION,
                                 extra=(LIQUIDATIONS,))

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        step = ARGS_PER_REQUEST
        return [_encode({"id": str(next(self._ids)), "op": op, "args": [_arg(t) for t in topics[i: i + step]]}).decode()
                for i in range(0, len(topics), step)]

    def ping_message(self) -> str:
        return "ping"
