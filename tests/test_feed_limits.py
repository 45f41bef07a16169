"""A universe of hundreds of symbols on each venue: the subscriptions split over several
connections within the venue's documented limits per connection, each symbol's topics on
one connection, nothing left out."""

from __future__ import annotations

import pytest

from shared.instruments import Instrument, SymbolMap
from shared.venues import venue
from shared.venues.protocol import Hosts, split_connections

UNIVERSE = 400


def _feed(name: str):
    symbols = SymbolMap(name, [Instrument(venue=name, symbol=f"C{i}USDT", venue_symbol=f"C{i}USDT")
                               for i in range(UNIVERSE)])
    return venue(name).feed(symbols, Hosts("http://127.0.0.1:1", "ws://127.0.0.1:1"), 25)


@pytest.mark.parametrize("name, topics, chars", [
    ("bybit", None, 21_000),  # protocol-bybit-v5.md: args of one public connection
    ("binance", 1024, None),  # streams per connection
    ("okx", 960, None),  # 480 subscribe requests an hour of 20 args: ten full resubscribes
    ("bitget", 480, None),  # 240 an hour of 20 args, likewise (its hard cap: 1,000 channels)
    ("kucoin", 100, None),
])
def test_a_universe_is_split_within_each_venues_limit_per_connection(name, topics, chars):
    connections = _feed(name).connections()
    assert len(connections) > 1 if name != "binance" else len(connections) > 2
    for c in connections:
        assert topics is None or len(c.topics) <= topics
        assert chars is None or sum(map(len, c.topics)) <= chars
    every = [t for c in connections for t in c.topics]
    assert len(every) == len(set(every))
    for i in range(UNIVERSE):  # one symbol's topics, all on one connection per host
        holders = {(c.url, c.label) for c in connections for t in c.topics if f"C{i}USDT" in t.upper()}
        assert len({url for url, _ in holders}) == len(holders)
    assert len({c.label for c in connections}) == len(connections)


def test_a_few_symbols_keep_one_connection_under_its_old_label():
    assert [c.label for c in split_connections("linear", "ws://x", [["a", "b"], ["c"]], max_topics=3)] == ["linear"]
    split = split_connections("public", "ws://x", [["a", "b"], ["c", "d"], ["e"]], max_topics=3, extra=("all",))
    assert [(c.label, c.topics) for c in split] == [("public", ["all", "a", "b"]), ("public-2", ["c", "d", "e"])]
    by_chars = split_connections("linear", "ws://x", [["aaaa"], ["bbbb"], ["cc"]], max_chars=6)
    assert [c.topics for c in by_chars] == [["aaaa"], ["bbbb", "cc"]]
