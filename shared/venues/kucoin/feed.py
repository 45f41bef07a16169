"""KuCoin futures: one connection on a tokened URL from `POST /api/v1/bullet-public`.

Per contract: `/contractMarket/tickerV2`, `/contractMarket/level2Depth5` or `level2Depth50`
(full snapshots), `/contractMarket/execution` and `/contract/instrument` (mark, index,
funding). Every connection asks for a fresh token first. KuCoin has no protocol-level
ping: `{"id","type":"ping"}` goes out every 18 s (its `pingInterval`), answered by `pong`.
KuCoin takes 100 messages per 10 s from a client and 100 topics per connection (one topic a
request here): requests go out 9 a second and a universe takes a connection per 25 contracts.
"""

from __future__ import annotations

import uuid

import aiohttp
import msgspec

from shared.rest import fetch
from shared.venues.kucoin.parser import Parser
from shared.venues.kucoin.rest import BULLET, connect_url
from shared.venues.protocol import Connection, VenueFeed, split_connections

_encode = msgspec.json.encode
TOPICS_PER_CONNECTION = 100
TOPICS = ("/contractMarket/tickerV2:{}", "/contractMarket/level2Depth{depth}:{}", "/contractMarket/execution:{}",
          "/contract/instrument:{}")


class Feed(VenueFeed):
    name = "kucoin"
    snapshot_key_prefix = "kucoin:futures:tickers"
    ping_interval_s = 18.0
    messages_per_s = 9.0
    parser = Parser

    def connections(self) -> list[Connection]:
        depth = 5 if self.book_levels <= 5 else 50
        groups = [[t.format(s, depth=depth) for t in TOPICS] for s in self.symbols.by_venue_symbol]
        return split_connections("public", self.hosts.rest + BULLET.path, groups, TOPICS_PER_CONNECTION)

    async def resolve_url(self, connection: Connection) -> str:
        async with aiohttp.ClientSession() as http:
            body = await fetch(http, self.hosts.rest, BULLET)
        return connect_url(body, uuid.uuid4().hex)

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        return [_encode({"id": str(next(self._ids)), "type": op, "topic": t, "privateChannel": False,
                         "response": True}).decode() for t in topics]

    def ping_message(self) -> str:
        return _encode({"id": str(next(self._ids)), "type": "ping"}).decode()
