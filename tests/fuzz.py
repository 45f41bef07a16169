"""Malformed variants of real messages, for the reliability suite's fuzz tests (item 9).

`Mutator(seed).mutate(frame)` takes one message as the venue sent it and returns it broken
one way: a value replaced by NaN, infinity, a price <= 0, a number out of any range, text,
the wrong type or nothing; a field or a whole branch left out; a list where an object was
(and back); the text truncated or a byte changed. Duplicate and out-of-order ids come from
`replay`, which sends an earlier message again. Seeded, so a failure is reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

BAD = ("NaN", "nan", "Infinity", "-inf", "1e400", "-1", "0", "-0.0", "", " ", "abc", "1,5", "0x10", "９",
       None, True, False, 0, -1, -0.5, 1e308, 2**64, float("nan"), float("inf"), [], {}, [[]], ["1"],
       {"a": 1}, "x" * 300)
KINDS = ("value", "value", "value", "drop", "container", "truncate", "byte")


def _paths(node, path=()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


def _set(node, path: tuple, value):
    if not path:
        return value
    parent = node
    for p in path[:-1]:
        parent = parent[p]
    parent[path[-1]] = value
    return node


def _drop(node, path: tuple):
    parent = node
    for p in path[:-1]:
        parent = parent[p]
    del parent[path[-1]]
    return node


class Mutator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kinds: dict[str, int] = {}

    def mutate(self, frame: bytes) -> bytes:
        rng = self.rng
        kind = rng.choice(KINDS)
        try:
            doc = json.loads(frame)
        except ValueError:
            kind = rng.choice(("truncate", "byte"))
        if kind in ("truncate", "byte") or not isinstance(doc, dict | list):
            return self._bytes(frame, kind)
        paths = list(_paths(doc))
        path = rng.choice(paths[1:] or paths)
        if kind == "drop" and path:
            doc = _drop(doc, path)
        elif kind == "container":
            doc = _set(doc, path, rng.choice(([], {}, [doc] if not path else "", None)))
        else:
            kind = "value"
            doc = _set(doc, path, rng.choice(BAD))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return json.dumps(doc).encode()  # NaN and Infinity as Python writes them: not JSON either

    def _bytes(self, frame: bytes, kind: str) -> bytes:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind == "truncate" or not frame:
            return frame[:self.rng.randrange(len(frame))] if frame else b""
        i = self.rng.randrange(len(frame))
        return frame[:i] + bytes([self.rng.randrange(256)]) + frame[i + 1:]

    def replay(self, sent: list[bytes]) -> bytes:
        """An earlier message again: its ids duplicated, or now out of order."""
        self.kinds["replay"] = self.kinds.get("replay", 0) + 1
        return sent[self.rng.randrange(len(sent))]
