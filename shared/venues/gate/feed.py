"""Gate USDT futures: one `/v4/ws/usdt` connection.

Per contract: `futures.book_ticker`, `futures.tickers` (funding, mark, index, open interest),
`futures.order_book` (full top-20 snapshots) and `futures.trades`. Gate drops idle sockets;
`{"channel":"futures.ping"}` goes out every 15 s, answered on `futures.pong`. Topics are
`channel:contract`; one request per channel carries every contract.
"""

from __future__ import annotations

import time

import msgspec

from shared.venues.gate.parser import Parser
from shared.venues.protocol import Connection, VenueFeed

_encode = msgspec.json.encode
CHANNELS = ("futures.book_ticker", "futures.tickers", "futures.order_book", "futures.trades")
BOOK_DEPTHS = (1, 5, 10, 20, 50, 100)


class Feed(VenueFeed):
    name = "gate"
    snapshot_key_prefix = "gate:futures:tickers"
    ping_interval_s = 15.0
    parser = Parser

    def connections(self) -> list[Connection]:
        topics = [f"{channel}:{c}" for channel in CHANNELS for c in self.symbols.by_venue_symbol]
        return [Connection("usdt", self.hosts.ws + "/v4/ws/usdt", topics)]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        depth = next((d for d in BOOK_DEPTHS if d >= self.book_levels), BOOK_DEPTHS[-1])
        by_channel: dict[str, list[str]] = {}
        for topic in topics:
            channel, _, contract = topic.partition(":")
            by_channel.setdefault(channel, []).append(contract)
        messages = []
        for channel, contracts in by_channel.items():
            # the order book takes one [contract, depth, interval] per request
            payloads = [[c, str(depth), "0"] for c in contracts] if channel == "futures.order_book" else [contracts]
            messages += [_encode({"time": int(time.time()), "channel": channel, "event": op, "payload": p}).decode()
                         for p in payloads]
        return messages

    def ping_message(self) -> str:
        return _encode({"time": int(time.time()), "channel": "futures.ping"}).decode()
