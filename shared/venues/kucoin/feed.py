"""KuCoin futures: one connection on a tokened URL from `POST /api/v1/bullet-public`.

Per contract: `/contractMarket/tickerV2`, `/contractMarket/level2Depth5` or `level2Depth50`
(full snapshots), `/contractMarket/execution` and `/contract/instrument` (mark, index,
funding). Every connection asks for a fresh token first. KuCoin has no protocol-level
ping: `{"id","type":"ping"}` goes out every 18 s (its `pingInterval`), answered by `pong`.
"""

from __future__ import annotations

import uuid

import aiohttp
import msgspec

from shared.rest import fetch
from shared.venues.kucoin.parser import Parser
from shared.venues.kucoin.rest import BULLET, connect_url
from shared.venues.protocol import Connection, VenueFeed

_encode = msgspec.json.encode
TOPICS = ("/contractMarket/tickerV2:{}", "/contractMarket/level2Depth{depth}:{}", "/contractMarket/execution:{}",
          "/contract/instrument:{}")


class Feed(VenueFeed):
    name = "kucoin"
    snapshot_key_prefix = "kucoin:futures:tickers"
    ping_interval_s = 18.0
    parser = Parser

    def connections(self) -> list[Connection]:
        depth = 5 if self.book_levels <= 5 else 50
        topics = [t.format(s, depth=depth) for s in self.symbols.by_venue_symbol for t in TOPICS]
        return [Connection("public", self.hosts.rest + BULLET.path, topics)]

    async def resolve_url(self, connection: Connection) -> str:
        async with aiohttp.ClientSession() as http:
            body = await fetch(http, self.hosts.rest, BULLET)
        return connect_url(body, uuid.uuid4().hex)

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        return [_encode({"id": str(next(self._ids)), "type": op, "topic": t, "privateChannel": False,
                         "response": True}).decode() for t in topics]

    def ping_message(self) -> str:
        return _encode({"id": str(next(self._ids)), "type": "ping"}).decode()
