"""Cross-venue funding arbitrage over real funding histories (pure, exact, deterministic).

**Funding.** Each venue settles at its own times and its own interval (1 h, 4 h, 8 h, and
changes of interval): a row's interval is the one its history states, else the time since the
venue's previous settlement of the symbol. A leg pays or receives its venue's rate at that
venue's settlements only (funding.py), on the settlement's mark: the first venue's (in name
order) that has one, else the last mark known. Stamps within half a minute of each other
(Binance: ...00:00.003) are the same settlement.

**Decisions** are taken whenever either venue settles a symbol, with each venue's latest
settled rate as the forecast of its next interval, compared per hour (and shown per 8 h).
Nothing stamped after the decision's minute is used, apart from the end-of-history rule
below. With no position, when the difference is at least `entry_8h` per 8 h and
`hold_intervals` 8-hour periods of it pay the round trip's fees, the backtest goes short on
the venue paying more and long on the other; it closes when the difference in its favour falls
below `exit_8h`. It does not open again at the moment a position of the symbol closed.

**Data.** Both venues must be current: a venue whose next settlement is missing (none for 8 h,
or for its own longer interval, since a venue goes back to 8 h without a word in the history;
or a row later than its stated interval) stops entries on the symbol, and a position open
across the gap is closed at the last real mark (reported in `gaps`). No entry is taken at the
last settlement both venues share; what is still open at the end is closed at the last mark.

**Sizes** are the notional over the mark, floored to a quantity every venue can order (its
`Lot`: step, minimum quantity and notional), or to `qty_step` when no instruments are given.

**Fills** are takers at the mark, both legs at the same mark, so the price PnL of a hedged
pair is zero and the venues' basis is not in these results.

**Liquidation.** Each leg is isolated at `leverage`; its liquidation price (margin.py) is
checked at every observation of the mark (settlements, and bars when given) before funding.
The liquidated leg loses its margin (the venue keeps what is left as its liquidation fee) and
the other leg is closed at the same moment's price: the liquidation price, or a bar's open
when the price gapped through it. Without bars the path between two settlements is unknown:
how far past the liquidation price the mark was seen is the trade's (negative) closest
approach, the gap risk the history cannot price.

**Account.** Entries need free equity for both legs' initial margin and the entry's fees, and
keep the book's notional within `max_account_leverage` x equity. When equity falls to
`stop_equity` x capital, or below the open legs' maintenance margin, everything is closed and
trading stops.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from services.backtest.data import Bar
from services.backtest.fees import FeeSchedule
from services.backtest.funding import FundingRate, payment
from services.backtest.instruments import Lot, order_qty
from services.backtest.margin import DEFAULT_TIERS, RiskTier, crossed, distance, liquidation_price, tier_for

HOUR_MS = 3_600_000
EIGHT_HOURS_MS = 8 * HOUR_MS
LATE_MS = 60_000  # a settlement this late is missing


@dataclass(frozen=True)
class FundingArbConfig:
    notional_usd: Decimal = Decimal(10_000)  # per leg
    entry_8h: Decimal = Decimal("0.0002")  # 0.02 % per 8 h between the venues
    exit_8h: Decimal = Decimal("0.00005")
    hold_intervals: int = 9  # 8-hour periods the entry expects to earn (3 days)
    leverage: Decimal = Decimal(5)  # isolated, per leg
    qty_step: Decimal = Decimal("0.001")  # when no instruments are given
    capital: Decimal = Decimal(20_000)
    max_account_leverage: Decimal = Decimal(3)  # all open legs' notional / equity
    stop_equity: Decimal = Decimal("0.5")  # of capital: below it everything is closed and trading stops


@dataclass
class Leg:
    venue: str
    side: str  # long or short
    qty: Decimal
    entry: Decimal
    liquidation: Decimal
    margin: Decimal  # isolated: lost if the leg is liquidated
    maintenance: Decimal

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
    lowest: Decimal | None = None  # the range of the mark seen while open
    highest: Decimal | None = None

    @property
    def legs(self) -> tuple[Leg, Leg]:
        return self.long, self.short

    def observe(self, low: Decimal, high: Decimal) -> Leg | None:
        """A mark range seen: the closest approach updated, and the leg it liquidates."""
        if self.lowest is not None and self.lowest <= low and high <= self.highest:
            return None  # inside what was seen: nothing closer (the distance rises with the mark for a long)
        self.lowest = low if self.lowest is None else min(self.lowest, low)
        self.highest = high if self.highest is None else max(self.highest, high)
        extremes = ((self.long, low), (self.short, high))
        self.closest_to_liquidation = min(self.closest_to_liquidation, *(
            distance(leg.side, leg.liquidation, extreme) for leg, extreme in extremes))
        return next((leg for leg, extreme in extremes if crossed(leg.side, leg.liquidation, extreme, extreme)), None)


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


class Decision(NamedTuple):
    ts_ms: int
    symbol: str
    action: str  # open or close
    detail: str  # the venues and size of an open; the reason and price of a close


class Gap(NamedTuple):
    symbol: str
    venue: str
    last_ms: int  # the venue's last settlement before the gap
    next_ms: int | None  # its next one, None when its history ends there


@dataclass
class BacktestResult:
    trades: list[ClosedTrade] = field(default_factory=list)
    equity: list[tuple[int, Decimal]] = field(default_factory=list)  # (time, realised + open funding - fees)
    exposure: list[tuple[int, Decimal]] = field(default_factory=list)  # (time, margin held by open positions)
    flows: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)  # (time, funding in, fees out) so far
    decisions: list[Decision] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # entries not taken, by reason
    settlements: int = 0
    bars: int = 0
    stopped_ms: int | None = None  # when the equity stop ended trading


class Settlement(NamedTuple):
    ts_ms: int
    symbol: str
    rows: dict[str, FundingRate]  # venue -> its row at this minute
    interval_ms: dict[str, int | None]  # venue -> the interval its row's rate is for
    late: tuple[str, ...]  # venues whose row comes after a missing settlement


def _patience(interval_ms: int) -> int:
    """How long a venue's next settlement may take: a venue goes back from a short interval to
    8 h without a word in the history, so a settlement is missing after 8 h (or a longer interval)."""
    return max(interval_ms, EIGHT_HOURS_MS)


def _minute(ts_ms: int) -> int:
    """Settlements fall on the hour: a stamp within half a minute of one is that settlement."""
    return (ts_ms + 30_000) // 60_000 * 60_000


def settlements(rates: dict[str, Sequence[FundingRate]]) -> tuple[list[Settlement], list[Gap]]:
    """Every (minute, symbol) either venue settles at, oldest first, with each row's interval
    (stated, else the time since that venue's previous settlement) and the gaps: a settlement
    later than the previous one's interval."""
    grouped: dict[tuple[int, str], dict[str, tuple[FundingRate, int | None, bool]]] = defaultdict(dict)
    gaps = []
    for venue, rows in rates.items():
        previous: dict[str, tuple[int, int | None]] = {}
        for r in sorted(rows, key=lambda r: (r.symbol, r.ts_ms)):
            ts = _minute(r.ts_ms)
            last_ts, last_interval = previous.get(r.symbol, (None, None))
            spacing = ts - last_ts if last_ts is not None else None
            if spacing is not None and spacing < HOUR_MS:
                raise ValueError(f"{venue}'s history has settlements of {r.symbol} {spacing // 60_000} min apart at "
                                 f"{r.ts_ms} ms: not a funding history (the shortest interval is 1 h)")
            interval = r.interval_ms or spacing
            late = spacing is not None and spacing > (r.interval_ms or _patience(last_interval or spacing)) + LATE_MS
            if late:
                gaps.append(Gap(r.symbol, venue, last_ts, ts))
                interval = r.interval_ms or last_interval
            previous[r.symbol] = (ts, interval)
            grouped[ts, r.symbol][venue] = (r, interval, late)
    out = [Settlement(ts, symbol, {v: r for v, (r, _, _) in by.items()}, {v: i for v, (_, i, _) in by.items()},
                      tuple(v for v, (_, _, late) in sorted(by.items()) if late))
           for (ts, symbol), by in sorted(grouped.items())]
    return out, gaps


class _Venue(NamedTuple):
    """A venue's latest settlement of a symbol."""
    ts_ms: int
    rate: Decimal
    interval_ms: int | None

    def per_8h(self) -> Decimal:
        return self.rate * EIGHT_HOURS_MS / self.interval_ms

    def current_at(self, ts_ms: int) -> bool:
        """Whether its next settlement is not yet missing (one due now is in this minute's rows)."""
        return self.interval_ms is not None and ts_ms < self.ts_ms + _patience(self.interval_ms)


class _Run:
    def __init__(self, venues: tuple[str, str], fees: dict[str, FeeSchedule],
                 tiers: Sequence[RiskTier] | dict[str, Sequence[RiskTier]], config: FundingArbConfig,
                 lots: dict[str, dict[str, Lot]] | None):
        self.venues, self.fees, self.tiers, self.config, self.lots = venues, fees, tiers, config, lots
        self.result = BacktestResult()
        self.open: dict[str, Position] = {}
        self.mark: dict[str, Decimal] = {}
        self.latest: dict[tuple[str, str], _Venue] = {}
        self.realised = Decimal(0)
        self.funding_received = Decimal(0)
        self.fees_paid = Decimal(0)
        self.closed_at: dict[str, int] = {}  # symbol -> when its last position closed
        self.one_step = Lot(config.qty_step, config.qty_step, Decimal(0), config.qty_step)  # without instruments

    # the account

    def equity(self) -> Decimal:
        """Capital + realised + what the open positions have received and paid (their legs'
        price PnL cancels: both are on one mark)."""
        return self.config.capital + self.realised - sum((p.funding + p.fees for p in self.open.values()), Decimal(0))

    def record(self, ts: int) -> None:
        r = self.result
        r.equity.append((ts, self.equity() - self.config.capital))
        r.exposure.append((ts, sum((leg.margin for p in self.open.values() for leg in p.legs), Decimal(0))))
        r.flows.append((ts, self.funding_received, self.fees_paid))

    def check_account(self, ts: int) -> None:
        """The equity stop ends trading (closing what is open); equity below the open legs'
        maintenance margin closes everything too."""
        equity = self.equity()
        maintenance = sum((leg.maintenance for p in self.open.values() for leg in p.legs), Decimal(0))
        if equity <= self.config.stop_equity * self.config.capital:
            reason = "equity_stop"
            if self.result.stopped_ms is None:
                self.result.stopped_ms = ts
        elif self.open and equity < maintenance:
            reason = "margin_call"
        else:
            return
        for symbol in sorted(self.open):
            self.close(self.open[symbol], ts, self.mark[symbol], reason)

    # positions

    def enter(self, s: Settlement, mark: Decimal, long_venue: str, short_venue: str, delta_8h: Decimal) -> None:
        config, skipped = self.config, self.result.skipped
        lots = ([self.one_step] if self.lots is None
                else [self.lots.get(v, {}).get(s.symbol) for v in (long_venue, short_venue)])
        if None in lots:
            skipped["no instrument"] += 1
            return
        qty = order_qty(config.notional_usd, mark, lots)
        if qty is None:
            skipped["below a venue's minimum"] += 1
            return
        value = qty * mark
        entry_fees = value * (self.fees[long_venue].taker + self.fees[short_venue].taker)
        if not abs(delta_8h) * value * config.hold_intervals > 2 * entry_fees:
            return  # not worth it: not a skip
        equity = self.equity()
        used = sum((leg.margin for p in self.open.values() for leg in p.legs), Decimal(0))
        book = sum((leg.qty * leg.entry for p in self.open.values() for leg in p.legs), Decimal(0))
        if used + 2 * value / config.leverage + entry_fees > equity:
            skipped["no free margin"] += 1
            return
        if book + 2 * value > config.max_account_leverage * equity:
            skipped["account leverage"] += 1
            return
        tiers = self.tiers.get(s.symbol, DEFAULT_TIERS) if isinstance(self.tiers, dict) else self.tiers
        legs = [self._leg(venue, side, qty, mark, tiers) for venue, side in ((long_venue, "long"),
                                                                             (short_venue, "short"))]
        position = Position(s.symbol, s.ts_ms, *legs)
        position.fees = sum((self.fees[leg.venue].fee(qty, mark, maker=False) for leg in legs), Decimal(0))
        self.fees_paid += position.fees
        self.open[s.symbol] = position
        self.result.decisions.append(Decision(s.ts_ms, s.symbol, "open", f"long {long_venue} short {short_venue} "
                                              f"{qty} at {mark}"))

    def _leg(self, venue: str, side: str, qty: Decimal, mark: Decimal, tiers: Sequence[RiskTier]) -> Leg:
        value = qty * mark
        tier = tier_for(value, tiers)
        return Leg(venue, side, qty, mark, liquidation_price(side, mark, qty, self.config.leverage, tiers),
                   value / self.config.leverage, value * tier.mmr - tier.mm_deduction)

    def close(self, p: Position, ts: int, price: Decimal, reason: str, liquidated: Leg | None = None) -> None:
        """Both legs closed at `price` as takers; a liquidated leg instead loses its margin."""
        pnl_price = Decimal(0)
        for leg in p.legs:
            if leg is liquidated:
                pnl_price -= leg.margin
            else:
                pnl_price += leg.pnl_at(price)
                fee = self.fees[leg.venue].fee(leg.qty, price, maker=False)
                p.fees += fee
                self.fees_paid += fee
        pnl = pnl_price - p.fees - p.funding
        self.realised += pnl
        self.result.trades.append(ClosedTrade(
            p.symbol, p.long.venue, p.short.venue, p.opened_ms, ts, p.long.qty, p.long.qty * p.long.entry, p.fees,
            -p.funding, pnl_price, pnl, p.closest_to_liquidation, liquidated is not None, reason))
        self.result.decisions.append(Decision(ts, p.symbol, "close", f"{reason} at {price}"))
        del self.open[p.symbol]
        self.closed_at[p.symbol] = ts

    # events

    def bar(self, ts: int, symbol: str, bar: Bar) -> None:
        self.result.bars += 1
        self.mark[symbol] = bar.close
        position = self.open.get(symbol)
        if position is None:
            return
        hit = position.observe(bar.low, bar.high)
        if hit is not None:
            # the range reached the price; a bar opening beyond it gapped through it
            through = bar.open if crossed(hit.side, hit.liquidation, bar.open, bar.open) else hit.liquidation
            self.close(position, ts, through, "liquidated", liquidated=hit)

    def settle(self, s: Settlement, last_shared: int) -> None:
        a, b = self.venues
        position = self.open.get(s.symbol)
        for venue, row in s.rows.items():
            self.latest[venue, s.symbol] = _Venue(s.ts_ms, row.rate, s.interval_ms[venue])
        current = [self.latest.get((v, s.symbol)) for v in (a, b)]
        both_current = all(v is not None and v.current_at(s.ts_ms) for v in current)
        if position is not None and (s.late or not both_current):
            # a settlement went missing: what the position earned since is unknown
            self.close(position, s.ts_ms, self.mark[s.symbol], "data_gap")
            position = None
        for symbol in sorted(self.open.keys() - {s.symbol}):  # a symbol whose histories both stopped
            if not all(self.latest[v, symbol].current_at(s.ts_ms - LATE_MS) for v in (a, b)):
                self.close(self.open[symbol], s.ts_ms, self.mark[symbol], "data_gap")
        mark = next((r.mark for _, r in sorted(s.rows.items()) if r.mark is not None), self.mark.get(s.symbol))
        if mark is None:
            return
        self.mark[s.symbol] = mark
        self.result.settlements += 1
        if position is not None:
            hit = position.observe(mark, mark)
            if hit is not None:  # crossed somewhere since the last observation: at its price at the latest
                self.close(position, s.ts_ms, hit.liquidation, "liquidated", liquidated=hit)
                position = None
            else:
                for leg in position.legs:
                    row = s.rows.get(leg.venue)
                    if row is not None:
                        paid = payment(leg.qty if leg.side == "long" else -leg.qty, mark, row.rate)
                        position.funding += paid
                        self.funding_received -= paid
        if both_current and self.result.stopped_ms is None:
            delta = current[0].per_8h() - current[1].per_8h()  # > 0: a pays more, so short a
            if position is not None:
                favour = delta if position.short.venue == a else -delta
                if favour < self.config.exit_8h:
                    self.close(position, s.ts_ms, mark, "funding_converged")
            elif (self.closed_at.get(s.symbol) != s.ts_ms  # not again at the moment one closed
                  and s.ts_ms < last_shared and abs(delta) >= self.config.entry_8h):
                self.enter(s, mark, *((b, a) if delta > 0 else (a, b)), delta)
        self.check_account(s.ts_ms)
        self.record(s.ts_ms)


def run(rates: dict[str, Sequence[FundingRate]], fees: dict[str, FeeSchedule],
        tiers: Sequence[RiskTier] | dict[str, Sequence[RiskTier]],
        config: FundingArbConfig = FundingArbConfig(), bars: dict[str, Iterable[Bar]] | None = None,
        bar_ms: int = 60_000, lots: dict[str, dict[str, Lot]] | None = None) -> BacktestResult:
    """`rates`: venue -> its settlements (any symbols); the venues are two. `tiers` are the
    risk-limit tiers of every symbol, or per symbol (DEFAULT_TIERS for one not given). `bars`
    (symbol -> bars, oldest first, each `bar_ms` long) are optional: with them an open leg is
    liquidated at the first bar whose range reaches its price, and a settlement without a mark
    takes the last bar's close; bars outside the symbol's settlements are not used. `lots`
    (venue -> symbol -> Lot) size the trades; without them `config.qty_step`."""
    venues = tuple(sorted(rates))
    if len(venues) != 2:
        raise ValueError(f"a cross-venue backtest needs two venues, not {len(venues)}")
    events, gaps = settlements(rates)
    last_shared: dict[str, int] = {}
    span: dict[str, tuple[int, int]] = {}
    for s in events:
        if len(s.rows) == 2:
            last_shared[s.symbol] = s.ts_ms
        first, _ = span.get(s.symbol, (s.ts_ms, s.ts_ms))
        span[s.symbol] = (first, s.ts_ms)
    state = _Run(venues, fees, tiers, config, lots)
    state.result.gaps = gaps
    streams: list[Iterator] = [((s.ts_ms, 1, s.symbol), s) for s in events]
    streams = [iter(streams)] + [_bar_events(symbol, rows, bar_ms, span[symbol])
                                 for symbol, rows in sorted((bars or {}).items()) if symbol in span]
    for (ts, kind, symbol), item in heapq.merge(*streams, key=lambda event: event[0]):
        if kind == 0:
            state.bar(ts, symbol, item)
        else:
            state.settle(item, last_shared.get(symbol, ts))
    last = max((s.ts_ms for s in events), default=0)
    if state.open:
        for symbol, position in sorted(state.open.items()):  # closed at the last mark the history has
            state.close(position, last, state.mark[symbol], "end_of_history")
        state.record(last)
    for venue in venues:  # a venue's history of a symbol that stops while the other's goes on is a gap too
        for symbol, (_, end) in span.items():
            seen = state.latest.get((venue, symbol))
            if seen is not None and seen.interval_ms and not seen.current_at(end):
                state.result.gaps.append(Gap(symbol, venue, seen.ts_ms, None))
    return state.result


def _bar_events(symbol: str, bars: Iterable[Bar], bar_ms: int, span: tuple[int, int]):
    """A symbol's bars within its settlements as merge events; a bar counts at its close."""
    first, last = span
    for bar in bars:
        close = bar.ts_ms + bar_ms
        if close > last:
            return
        if close >= first:
            yield (close, 0, symbol), bar
