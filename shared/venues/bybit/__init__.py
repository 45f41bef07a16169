"""Bybit V5 linear perpetuals: the public feed's topics, heartbeat and parser."""

from __future__ import annotations

import itertools

import msgspec

from shared.settings import Settings
from shared.venues.bybit.parser import BybitPublicParser

_encode = msgspec.json.encode


class BybitPublicFeed:
    """What to subscribe on `/v5/public/linear` and how to keep the socket alive.

    Bybit asks for a ping every 20 s and accepts any number of args per futures subscribe up to
    21,000 characters per connection; requests carry 10 args each to stay well inside that."""

    name = "bybit"
    snapshot_key_prefix = "bybit:linear:tickers"
    args_per_request = 10

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._req_ids = itertools.count(1)

    @property
    def url(self) -> str:
        return self.settings.bybit_endpoints().ws_public

    def topics(self, symbols: list[str]) -> list[str]:
        depth = self.settings.bybit_book_depth
        kinds = ("tickers.{}", f"orderbook.{depth}.{{}}", "publicTrade.{}", "allLiquidation.{}")
        return [kind.format(symbol) for symbol in symbols for kind in kinds]

    def subscribe_messages(self, topics: list[str], op: str = "subscribe") -> list[str]:
        step = self.args_per_request
        return [
            _encode({"req_id": f"{op[:5]}-{next(self._req_ids)}", "op": op, "args": topics[i : i + step]}).decode()
            for i in range(0, len(topics), step)
        ]

    def resubscribe_messages(self, topic: str) -> list[str]:
        """Unsubscribe then subscribe again: Bybit answers with a fresh snapshot."""
        return self.subscribe_messages([topic], "unsubscribe") + self.subscribe_messages([topic])

    def ping_message(self) -> str:
        return _encode({"req_id": f"ping-{next(self._req_ids)}", "op": "ping"}).decode()

    def new_parser(self, stats=None) -> BybitPublicParser:
        return BybitPublicParser(self.settings.book_levels, stats)
