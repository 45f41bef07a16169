"""The seed's exit rules at and either side of each boundary, and the harder-leg order of every
venue pair: each written so that changing the constant or the comparison makes it fail.

The trade: long binance at 100,000.1, short okx at 100,700.0, entered at a 70 bps spread
(tests/executor_market.py). The market is then set directly, and `exit_reason` asked."""

from __future__ import annotations

from itertools import permutations

import pytest

from services.executor.core import ExecConfig
from services.executor.sizing import EASE, harder_leg
from tests.executor_market import SYMBOL, Desk

ENTRY_BPS = 70.0
LONG_MID = 100_000.0


def _active(config: ExecConfig | None = None):
    desk = Desk(config)
    desk.book("binance", 100_000.0, 100_000.1)
    desk.book("okx", 100_700.0, 100_700.1)
    desk.signal(spread=ENTRY_BPS)
    trade = next(iter(desk.core.trades.values()))
    assert trade.status == "active" and trade.taken.entry_spread_bps == ENTRY_BPS
    return desk, trade


def _spread(desk: Desk, bps: float) -> None:
    """Both mids set so that (short mid - long mid) / their mean is `bps` (to 1e-9 bps)."""
    long_m, short_m = desk.core.market.get("binance", SYMBOL), desk.core.market.get("okx", SYMBOL)
    short_mid = LONG_MID * (1 + bps / 20_000) / (1 - bps / 20_000)
    long_m.bid, long_m.ask = LONG_MID - 0.05, LONG_MID + 0.05
    short_m.bid, short_m.ask = short_mid - 0.05, short_mid + 0.05
    assert desk.core.spread_bps(next(iter(desk.core.trades.values()))) == pytest.approx(bps, abs=1e-6)


@pytest.mark.parametrize("above_entry, reason", [
    (49.99, None),  # the seed's 50 bps widening: not yet
    (50.01, "spread_widening"),
    (99.99, "spread_widening"),  # the seed's 100 bps stop loss: not yet
    (100.01, "stop_loss"),
])
def test_the_spread_rules_fire_at_50_and_100_bps_above_the_entry_spread(above_entry, reason):
    desk, trade = _active()
    _spread(desk, ENTRY_BPS + above_entry)
    assert desk.core.exit_reason(trade, desk.now) == reason


@pytest.mark.parametrize("delta_8h, reason", [
    (0.0000501, None),  # the seed's 0.005 % per 8 h: still paying
    (0.00005, None),  # at it exactly: "below" is what the seed asks for
    (0.0000499, "funding_converged"),
    (-0.0001, "funding_converged"),
])
def test_funding_converged_fires_when_the_delta_falls_below_0_005_percent_per_8h(delta_8h, reason):
    desk, trade = _active()
    _spread(desk, ENTRY_BPS)  # no spread rule
    desk.core.market.get("binance", SYMBOL).funding_8h = 0.0  # so that the delta is exactly delta_8h
    desk.core.market.get("okx", SYMBOL).funding_8h = delta_8h
    assert desk.core.exit_reason(trade, desk.now) == reason


def test_the_thresholds_are_the_seeds():
    c = ExecConfig()
    assert (c.funding_exit_8h, c.profit_target_share, c.widening_bps, c.stop_loss_bps) == (0.00005, 0.9, 50.0, 100.0)
    assert (c.max_hold_ms, c.leg_timeout_ms, c.confidence_min, c.signal_max_age_ms) == (8 * 3_600_000, 500, 70, 2_000)


def test_max_hold_fires_at_the_hold_time_and_not_a_millisecond_before():
    desk, trade = _active(ExecConfig(max_hold_ms=60_000))
    _spread(desk, ENTRY_BPS)
    start = trade.active.ts_ms
    assert desk.core.exit_reason(trade, start + 59_999) is None
    assert desk.core.exit_reason(trade, start + 60_000) == "max_hold"


def test_the_harder_leg_of_every_venue_pair_is_on_the_venue_least_likely_to_fill():
    order = ["hyperliquid", "bitget", "gate", "kucoin", "okx", "bybit", "binance"]  # hardest first
    assert set(order) | {"paradex"} == set(EASE)  # every venue with a rank is in the order
    for long_venue, short_venue in permutations(order, 2):
        harder = long_venue if order.index(long_venue) < order.index(short_venue) else short_venue
        expected = "long" if harder == long_venue else "short"
        assert harder_leg(long_venue, short_venue) == expected, (long_venue, short_venue)
    assert harder_leg("paradex", "binance") == "long" and harder_leg("binance", "paradex") == "short"
    assert harder_leg("bybit", "bybit") == "long"  # synthetic mode: one venue, the long leg first
    assert harder_leg("binance", "newdex") == "short"  # an unknown venue counts as hardest


def test_the_profit_target_counts_the_exit_fees_so_the_close_realises_90_percent_of_the_projection():
    from decimal import Decimal

    from services.executor import facts as f

    desk, trade = _active()
    target = trade.taken.projected_profit_usd * Decimal("0.9")
    long_m, short_m = desk.core.market.get("binance", SYMBOL), desk.core.market.get("okx", SYMBOL)

    def at(gap: float) -> tuple[Decimal, Decimal]:
        """Binance's bid and OKX's ask `gap` apart; the mark and the value after the exit's fees."""
        long_m.bid, long_m.ask = 100_300.0, 100_300.1
        short_m.bid, short_m.ask = 100_300.0 + gap - 0.1, 100_300.0 + gap
        return desk.core.unrealised_pnl(trade), desk.core.exit_value(trade)

    # where the mark has reached the target but what a close would realise has not: no exit
    gap = next(g / 10 for g in range(2_000, -2_000, -1) if at(g / 10)[0] >= target)
    mark, value = at(gap)
    assert mark >= target > value and desk.core.exit_reason(trade, desk.now) is None
    # where the value after fees reaches it: the exit, and the close realises that value
    gap = next(g / 10 for g in range(int(gap * 10), -2_000, -1) if at(g / 10)[1] >= target)
    value = at(gap)[1]
    assert desk.core.exit_reason(trade, desk.now) == "profit_target"
    desk.now += 1_000  # the same prices as books the paper venue fills from (OKX's last: the exit then)
    desk.book("okx", 100_700.0, 100_700.1)
    desk.book("binance", 100_300.0, 100_300.1)
    assert desk.of(f.TradeClosed) == []
    desk.book("okx", 100_300.0 + gap - 0.1, 100_300.0 + gap)
    closed = desk.of(f.TradeClosed)[0]
    assert closed.reason == "profit_target" and closed.pnl_usd == value >= target
