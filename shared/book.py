"""A local order book kept from snapshots and deltas: pure and bounded."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from math import inf

from shared.events import Level


class BadLevel(ValueError):
    """A level with a price or size that no book can hold (NaN, infinite, <= 0)."""


class _Side:
    """One side: price -> (price, size) level, with the prices kept sorted ascending."""

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[float, Level] = {}
        self.prices: list[float] = []

    def clear(self) -> None:
        self.levels.clear()
        self.prices.clear()

    def apply(self, updates: Iterable[tuple[float, float]]) -> None:
        levels, prices = self.levels, self.prices
        for price, size in updates:
            if not (0 < price < inf and 0 <= size < inf):  # also false for NaN
                raise BadLevel(f"level {price}:{size} is out of range")
            if not size:
                if levels.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
            else:
                if price not in levels:
                    insort(prices, price)
                levels[price] = (price, size)

    def drop(self, excess: int, worst_first: bool) -> None:
        doomed = self.prices[:excess] if worst_first else self.prices[-excess:]
        for price in doomed:
            del self.levels[price]
        if worst_first:
            del self.prices[:excess]
        else:
            del self.prices[-excess:]


class OrderBook:
    """Both sides of one symbol's book, limited to `max_levels` per side like the venue's feed.

    `apply_snapshot` resets it; `apply_delta` replaces, inserts or (size 0) deletes levels.
    A bad level raises `BadLevel` with the book part-applied: drop it and resync."""

    def __init__(self, max_levels: int) -> None:
        self.max_levels = max_levels
        self.update_id: int | None = None
        self._bids = _Side()
        self._asks = _Side()

    def apply_snapshot(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]],
                       update_id: int) -> None:
        self._bids.clear()
        self._asks.clear()
        self.apply_delta(bids, asks, update_id)

    def apply_delta(self, bids: Iterable[tuple[float, float]], asks: Iterable[tuple[float, float]],
                    update_id: int) -> None:
        self._bids.apply(bids)
        self._asks.apply(asks)
        if len(self._bids.prices) > self.max_levels:  # worst bids are the lowest, at the front
            self._bids.drop(len(self._bids.prices) - self.max_levels, worst_first=True)
        if len(self._asks.prices) > self.max_levels:  # worst asks are the highest, at the back
            self._asks.drop(len(self._asks.prices) - self.max_levels, worst_first=False)
        self.update_id = update_id

    def top(self, n: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """The best `n` levels of each side, best first."""
        bids = tuple(map(self._bids.levels.__getitem__, self._bids.prices[: -n - 1 : -1])) if n else ()
        asks = tuple(map(self._asks.levels.__getitem__, self._asks.prices[:n]))
        return bids, asks

    def __len__(self) -> int:
        return len(self._bids.prices) + len(self._asks.prices)
