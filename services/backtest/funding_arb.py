"""Cross-venue funding arbitrage over real funding histories (pure, exact, deterministic).

At each funding settlement of a symbol, the rates that just settled on the two venues are the
forecast for the next interval (no look-ahead: a decision at time t uses only what settled at
or before t). With no position, when the delta between the venues is at least `entry_8h` per
8 h and `hold_intervals` settlements of it pay the round trip's fees, the backtest goes short
`notional_usd` on the venue with the higher rate and long on the other; it closes when the
delta in its favour falls below `exit_8h`, or at the end of the history.

Both legs fill at the settlement's mark as takers, with each venue's fees (fees.py). Funding
is paid or received at every later settlement on each leg at that settlement's mark
(funding.py). Both legs are marked at the same price (the history holds one mark), so the
price PnL of a hedged pair is zero and the basis between the venues is not in these results:
only funding and fees are. Each leg is isolated at `leverage`; its liquidation price
(margin.py) is checked at every settlement's mark and, when bars are given, against every
bar's low (long) or high (short); the closest approach is reported.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from services.backtest.data import Bar
from services.backtest.fees import FeeSchedule
from services.backtest.funding import FundingRate, payment
from services.backtest.margin import DEFAULT_TIERS, RiskTier, crossed, distance, liquidation_price

EIGHT_HOURS_MS = 8 * 3_600_000


@dataclass(frozen=True)
class FundingArbConfig:
    notional_usd: Decimal = Decimal(10_000)
    entry_8h: Decimal = Decimal("0.0002")  # 0.02 % per 8 h between the venues
    exit_8h: Decimal = Decimal("0.00005")
    hold_intervals: int = 9  # settlements the entry expects to earn (3 days)
    leverage: Decimal = Decimal(5)
    qty_step: Decimal = Decimal("0.001")


@dataclass
class Leg:
    venue: str
    side: str  # long or short
    qty: Decimal
    entry: Decimal
    liquidation: Decimal
    margin: Decimal  # isolated: lost if the leg is liquidated

    def pnl_at(self, mark: Decimal) -> Decimal:
        return self.qty * (mark - self.entry) if self.side == "long" else self.qty * (self.entry - mark)


@dataclass
class Position:
    symbol: str
    opened_ms: int
    long: Leg
    short: Leg
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)  # paid (negative: received)
    closest_to_liquidation: Decimal = Decimal(1)  # the smallest distance seen, as a fraction of the mark


@dataclass(frozen=True)
class ClosedTrade:
    symbol: str
    long_venue: str
    short_venue: str
    opened_ms: int
    closed_ms: int
    qty: Decimal
    notional_usd: Decimal
    fees_usd: Decimal
    funding_usd: Decimal  # received (positive) or paid
    price_pnl_usd: Decimal
    pnl_usd: Decimal
    closest_to_liquidation: Decimal
    liquidated: bool
    reason: str


@dataclass
class BacktestResult:
    trades: list[ClosedTrade] = field(default_factory=list)
    equity: list[tuple[int, Decimal]] = field(default_factory=list)  # (time, realised + open funding - fees)
    exposure: list[tuple[int, Decimal]] = field(default_factory=list)  # (time, margin held by open positions)
    settlements: int = 0
    bars: int = 0


def _aligned(ts_ms: int) -> int:
    """Venues stamp a settlement a few ms apart (Binance: ...00:00.003): the 8-hour slot it is."""
    return round(ts_ms / EIGHT_HOURS_MS) * EIGHT_HOURS_MS


def run(rates: dict[str, Sequence[FundingRate]], fees: dict[str, FeeSchedule],
        tiers: Sequence[RiskTier] | dict[str, Sequence[RiskTier]],
        config: FundingArbConfig = FundingArbConfig(), bars: dict[str, Iterable[Bar]] | None = None,
        bar_ms: int = 60_000) -> BacktestResult:
    """`rates`: venue -> its settlements (any symbols); the venues are two, and a settlement
    counts when both have the symbol at that slot. `tiers` are the risk-limit tiers of every
    symbol, or per symbol (DEFAULT_TIERS for one not given). `bars` (symbol -> bars, oldest first, each
    `bar_ms` long) are optional: with them an open leg is liquidated at the first bar whose
    range reaches its price, and a settlement without a mark takes the last bar's close."""
    (venue_a, venue_b) = sorted(rates)
    slots: dict[tuple[str, int], dict[str, FundingRate]] = defaultdict(dict)
    for venue, rows in rates.items():
        for r in rows:
            slots[r.symbol, _aligned(r.ts_ms)][venue] = r
    settlements = sorted(((ts, 1, symbol), pair) for (symbol, ts), pair in slots.items() if len(pair) == 2)
    streams = [iter(settlements)] + [_bar_events(symbol, rows, bar_ms) for symbol, rows in sorted((bars or {}).items())]
    result = BacktestResult()
    open_: dict[str, Position] = {}
    last_mark: dict[str, Decimal] = {}
    realised = Decimal(0)
    for (ts, kind, symbol), item in heapq.merge(*streams, key=lambda event: event[0]):
        position = open_.get(symbol)
        if kind == 0:  # a bar
            result.bars += 1
            last_mark[symbol] = item.close
            if position is None:
                continue
            legs = ((position.long, item.low), (position.short, item.high))
            hit = next((leg for leg, extreme in legs if crossed(leg.side, leg.liquidation, extreme, extreme)), None)
            if hit is not None:
                realised += _close(position, ts, hit.liquidation, fees, result, "liquidated", liquidated=True)
                del open_[symbol]
            else:
                position.closest_to_liquidation = min(position.closest_to_liquidation, *(
                    distance(leg.side, leg.liquidation, extreme) for leg, extreme in legs))
            continue
        pair = item
        mark = next((r.mark for r in (pair[venue_a], pair[venue_b]) if r.mark is not None), last_mark.get(symbol))
        if mark is None:
            continue
        last_mark[symbol] = mark
        result.settlements += 1
        had_position = position is not None
        if position is not None:  # this settlement's funding on both legs, then the liquidation check
            legs = (position.long, position.short)
            for leg in legs:
                qty = leg.qty if leg.side == "long" else -leg.qty
                position.funding += payment(qty, mark, pair[leg.venue].rate)
            if any(crossed(leg.side, leg.liquidation, mark, mark) for leg in legs):
                realised += _close(position, ts, mark, fees, result, "liquidated", liquidated=True)
                del open_[symbol]
                position = None
            else:
                position.closest_to_liquidation = min(position.closest_to_liquidation,
                                                      *(distance(leg.side, leg.liquidation, mark) for leg in legs))
        delta = pair[venue_a].rate - pair[venue_b].rate  # > 0: venue a pays more, so short a
        if position is not None:
            favour = pair[position.short.venue].rate - pair[position.long.venue].rate
            if favour < config.exit_8h:
                realised += _close(position, ts, mark, fees, result, "funding_converged")
                del open_[symbol]
        elif not had_position and abs(delta) >= config.entry_8h:  # not again at the settlement that closed one
            short_venue, long_venue = (venue_a, venue_b) if delta > 0 else (venue_b, venue_a)
            qty = (config.notional_usd / mark).quantize(config.qty_step, ROUND_DOWN)
            round_trip = 2 * qty * mark * (fees[long_venue].taker + fees[short_venue].taker)
            if qty > 0 and abs(delta) * qty * mark * config.hold_intervals > round_trip:
                symbol_tiers = tiers.get(symbol, DEFAULT_TIERS) if isinstance(tiers, dict) else tiers
                open_[symbol] = _open(symbol, ts, mark, qty, long_venue, short_venue, fees, symbol_tiers, config)
        margin = sum((p.long.margin + p.short.margin for p in open_.values()), Decimal(0))
        unrealised = sum((-p.funding - p.fees for p in open_.values()), Decimal(0))
        result.equity.append((ts, realised + unrealised))
        result.exposure.append((ts, margin))
    last = max((ts for _, ts in slots), default=0)
    for symbol, position in sorted(open_.items()):  # closed at the last mark the history has
        realised += _close(position, last, last_mark[symbol], fees, result, "end_of_history")
    if open_:
        result.equity.append((last, realised))
    return result


def _bar_events(symbol: str, bars: Iterable[Bar], bar_ms: int):
    """A symbol's bars as merge events; a bar counts at its close."""
    for bar in bars:
        yield (bar.ts_ms + bar_ms, 0, symbol), bar


def _open(symbol: str, ts: int, mark: Decimal, qty: Decimal, long_venue: str, short_venue: str,
          fees: dict[str, FeeSchedule], tiers, config: FundingArbConfig) -> Position:
    margin = qty * mark / config.leverage
    long = Leg(long_venue, "long", qty, mark, liquidation_price("long", mark, qty, config.leverage, tiers), margin)
    short = Leg(short_venue, "short", qty, mark, liquidation_price("short", mark, qty, config.leverage, tiers),
                margin)
    position = Position(symbol, ts, long, short)
    position.fees = fees[long_venue].fee(qty, mark, maker=False) + fees[short_venue].fee(qty, mark, maker=False)
    return position


def _close(p: Position, ts: int, mark: Decimal, fees: dict[str, FeeSchedule], result: BacktestResult,
           reason: str, liquidated: bool = False) -> Decimal:
    """Both legs closed at `mark` as takers; a liquidated leg instead loses its margin (and pays
    no closing fee of ours), the other is closed at the mark."""
    legs = (p.long, p.short)
    gone = next((leg for leg in legs if crossed(leg.side, leg.liquidation, mark, mark)), None) if liquidated else None
    price = Decimal(0)
    for leg in legs:
        if leg is gone:
            price -= leg.margin
        else:
            price += leg.pnl_at(mark)
            p.fees += fees[leg.venue].fee(leg.qty, mark, maker=False)
    pnl = price - p.fees - p.funding
    result.trades.append(ClosedTrade(
        p.symbol, p.long.venue, p.short.venue, p.opened_ms, ts, p.long.qty, p.long.qty * p.long.entry, p.fees,
        -p.funding, price, pnl, p.closest_to_liquidation, liquidated, reason))
    return pnl
