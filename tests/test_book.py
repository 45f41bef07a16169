"""The local order book: replace, insert, delete, bounded depth, best-first output."""

from __future__ import annotations

import pytest

from shared.book import BadLevel, OrderBook


def test_delta_replaces_inserts_and_deletes():
    book = OrderBook(max_levels=50)
    book.apply_snapshot([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.5), (102.0, 3.0)], update_id=1)
    book.apply_delta([(100.0, 0.0), (99.5, 4.0), (99.0, 2.5)], [(100.5, 0.1), (102.0, 0.0)], update_id=2)
    bids, asks = book.top(10)
    assert bids == ((99.5, 4.0), (99.0, 2.5))
    assert asks == ((100.5, 0.1), (101.0, 1.5))
    assert book.update_id == 2


def test_deleting_an_unknown_level_is_harmless():
    book = OrderBook(max_levels=5)
    book.apply_snapshot([(1.0, 1.0)], [], 1)
    book.apply_delta([(2.0, 0.0)], [], 2)
    assert book.top(5) == (((1.0, 1.0),), ())


def test_depth_is_bounded_by_dropping_the_worst_levels():
    book = OrderBook(max_levels=3)
    book.apply_snapshot([(float(p), 1.0) for p in range(90, 100)], [(float(p), 1.0) for p in range(101, 111)], 1)
    bids, asks = book.top(10)
    assert [p for p, _ in bids] == [99.0, 98.0, 97.0]
    assert [p for p, _ in asks] == [101.0, 102.0, 103.0]
    assert len(book) == 6


def test_snapshot_resets_and_top_limits():
    book = OrderBook(max_levels=50)
    book.apply_snapshot([(1.0, 1.0), (2.0, 1.0)], [(3.0, 1.0)], 1)
    book.apply_snapshot([(5.0, 1.0)], [(6.0, 2.0), (7.0, 1.0)], 9)
    assert book.top(1) == (((5.0, 1.0),), ((6.0, 2.0),))
    assert book.top(0) == ((), ())


@pytest.mark.parametrize("level", [(float("nan"), 1.0), (1.0, float("inf")), (0.0, 1.0), (-5.0, 1.0), (1.0, -1.0)])
def test_impossible_levels_are_refused(level):
    with pytest.raises(BadLevel):
        OrderBook(10).apply_snapshot([level], [], 1)
