"""What every simulated venue's public market data has in common: the server's side of the
contract (`Dialect`), and the venue's prices, funding and books read from the model.

A dialect is pure. The server hands it the text a client sends and gets back the frames to
answer and the topics to (un)subscribe; it asks for a topic's snapshot frames when someone
subscribes and for each step's frames per active topic; its REST handlers take the query
and return (HTTP status, JSON body).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

import msgspec

from services.sim.market import MarketModel, SymbolState, format_rate, plain

RestHandler = Callable[[Mapping[str, str]], tuple[int, object]]


@dataclass
class Reply:
    frames: list[bytes] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)


class Dialect:
    """One venue's public protocol over the shared market model."""

    name: str = ""
    ws_paths: tuple[str, ...] = ()

    def __init__(self, model: MarketModel) -> None:
        self.model = model
        self._last_sent: dict[str, int] = {}
        self.clock_ms: Callable[[], int] = lambda: model.now_ms  # the server sets its live clock

    # the server's side of the contract
    def on_connect(self, path: str, query: Mapping[str, str]) -> tuple[list[str], Callable[[str, bytes], bytes] | None]:
        """Topics a connection subscribes to by its URL, and how to wrap its frames."""
        return [], None

    def on_text(self, path: str, text: str, conn_id: str) -> Reply:
        raise NotImplementedError

    # Most venues push each topic on its own timer. Such a dialect sets `every_ms` (topic kind
    # -> push interval in ms, 0: whenever there is news) and `unsnapshotted` (kinds a subscribe
    # is not answered with a frame, like trades), and gives `kind` and `frames`; `snapshot` and
    # `step_frames` then follow. Dialects with another rhythm override those two.
    every_ms: ClassVar[Mapping[str, int]] = {}
    unsnapshotted: ClassVar[frozenset[str]] = frozenset()

    def kind(self, topic: str) -> str:
        return topic.partition(":")[0]

    def frames(self, topic: str) -> list[bytes]:
        """The frames `topic` has to send now (none when nothing changed)."""
        raise NotImplementedError

    def snapshot(self, topic: str) -> list[bytes]:
        """The frames a new subscriber of `topic` gets first."""
        kind = self.kind(topic)
        if kind in self.unsnapshotted:
            return []
        self.due(topic, self.every_ms[kind])
        return self.frames(topic)

    def step_frames(self, topics: set[str]) -> dict[str, list[bytes]]:
        out = {}
        for topic in topics:
            if self.due(topic, self.every_ms[self.kind(topic)]) and (frames := self.frames(topic)):
                out[topic] = frames
        return out

    def forget(self, topic: str) -> None:
        self._last_sent.pop(topic, None)

    def rest(self) -> dict[str, RestHandler]:
        return {}

    def rest_post(self) -> dict[str, Callable[[dict], tuple[int, object]]]:
        """POST routes taking the JSON body (Hyperliquid's /info)."""
        return {}

    # helpers for the venues
    @staticmethod
    def decode(text: str) -> dict | None:
        """A client's JSON object request, or None for anything else."""
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return None
        return request if isinstance(request, dict) else None

    def due(self, topic: str, every_ms: int) -> bool:
        """True at most once per `every_ms` for `topic` (a venue's push interval)."""
        now = self.model.now_ms
        if now - self._last_sent.get(topic, -every_ms) < every_ms:
            return False
        self._last_sent[topic] = now
        return True

    def quote(self, state: SymbolState, depth: int = 1) -> tuple[dict[int, int], dict[int, int]]:
        return self.model.venue_book(state, self.name, depth)

    def mark_index(self, state: SymbolState) -> tuple[str, str]:
        """This venue's mark and index prices, at the instrument's price scale."""
        mid = state.mid * (1 + state.venues[self.name].basis)
        return state.inst.fine_price(mid), state.inst.fine_price(state.mid)

    def funding(self, state: SymbolState) -> str:
        return format_rate(self.model.venue_funding(state, self.name))

    @staticmethod
    def levels(state: SymbolState, side: dict[int, int], descending: bool, scale: Decimal = Decimal(1)) -> list:
        inst = state.inst
        return [[inst.price(p), plain(inst.lot * n / scale)]
                for p, n in sorted(side.items(), reverse=descending)]


def book_diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    """Levels that changed from `old` to `new`; 0 for a level that went away."""
    return {p: n for p, n in new.items() if old.get(p) != n} | {p: 0 for p in old if p not in new}


def checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """The book checksum OKX and Bitget document alike: CRC32, as a signed 32-bit int, of the
    first 25 bids and asks interleaved "bidPx:bidSz:askPx:askSz:..." (a side with fewer levels
    just runs out)."""
    parts = []
    for i in range(25):
        for side in (bids, asks):
            if i < len(side):
                parts += side[i][:2]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value
