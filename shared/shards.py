"""Sharding by symbol (pure): which of N shards a symbol belongs to, and the names of a shard's
market-data streams.

A symbol's shard is CRC-32 of its name modulo N: the same in every process, on every run and
on every machine (Python's own `hash()` of a string is not). Each shard's streams carry the
shard as a Redis hash tag, `md:{3}:books`, so that on a Redis Cluster all of one shard's
streams live in one slot and one XREADGROUP reads them.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

MAX_SHARDS = 256
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def shard_of(symbol: str, shards: int) -> int:
    """The shard (0 .. shards-1) that `symbol` belongs to."""
    return zlib.crc32(symbol.encode()) % shards


def tagged(name: str, shard: int) -> str:
    """`name` as shard `shard`'s stream: the hash tag after its first part (`md:books` ->
    `md:{3}:books`), or at its end when it has one part (`books` -> `books:{3}`)."""
    head, colon, tail = name.partition(":")
    return f"{head}:{{{shard}}}:{tail}" if colon else f"{name}:{{{shard}}}"


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"a shard count is 1 to {MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count}: shards are numbered 0 to {self.count - 1}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N` (shard K of N, K from 0), as `arb strategy --shard` takes it."""
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not K/N (shard K of N, K from 0), e.g. 0/2")
        return cls(int(match[1]), int(match[2]))

    def owns(self, symbol: str) -> bool:
        return shard_of(symbol, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
