"""The simulator's market: per symbol a mid-price process, a book, trades, funding and open
interest. Pure: no clock or I/O inside; `step(now_ms)` advances it and a seed makes a run
reproducible.

Prices live on integer ticks and sizes on integer lots, so every number the venue prints
is exact at the instrument's own precision.
"""

from __future__ import annotations

import difflib
import math
import random
import re
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal


def plain(value: Decimal) -> str:
    """A Decimal as venues print it: plain digits, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


def format_rate(value: float) -> str:
    """A rate as venues print it: up to 8 decimals, no trailing zeros."""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True)
class Instrument:
    """What the simulator needs of a perpetual: price and size grids, starting price."""

    symbol: str
    tick: Decimal  # price step
    lot: Decimal  # size step
    start_price: Decimal
    funding_interval_h: int = 8

    def price(self, ticks: int) -> str:
        return str(self.tick * ticks)

    def size(self, lots: int) -> str:
        return str(self.lot * lots)

    def fine_price(self, ticks: float) -> str:
        """A price off the tick grid (mark, index), at the instrument's price scale."""
        return str((self.tick * Decimal(repr(ticks))).quantize(self.tick))


# A few liquid perpetuals with Bybit's tick and lot sizes (instruments-info, 2026-08);
# any other symbol gets a generic grid.
INSTRUMENTS = {
    "BTCUSDT": Instrument("BTCUSDT", Decimal("0.10"), Decimal("0.001"), Decimal("65000.00")),
    "ETHUSDT": Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.01"), Decimal("1920.00")),
    "SOLUSDT": Instrument("SOLUSDT", Decimal("0.010"), Decimal("0.1"), Decimal("150.000")),
    "DOGEUSDT": Instrument("DOGEUSDT", Decimal("0.00001"), Decimal("1"), Decimal("0.15000")),
}


def instrument(symbol: str) -> Instrument:
    return INSTRUMENTS.get(symbol) or Instrument(symbol, Decimal("0.0001"), Decimal("0.1"), Decimal("1.0000"), 4)


GENERIC = re.compile(r"SIM\d+USDT")  # made-up perpetuals on the generic grid, for load: SIM0USDT, SIM1USDT ...


VENUES = ("bybit", "binance", "okx", "bitget", "kucoin", "gate", "hyperliquid", "paradex")


@dataclass(frozen=True)
class Universe:
    """A made-up market of many perpetuals for `arb sim --universe N`: the modelled real ones
    and SIM0USDT ... SIM{N-1}USDT. The first `full` of those have full books and every step;
    the rest the cheap model. Each venue leaves about one in five of the made-up ones out, so
    some are listed on one venue only and are no cross-venue market."""

    symbols: list[str]
    cheap: frozenset[str]
    unlisted: dict[str, set[str]]

    @classmethod
    def of(cls, n: int, full: int = 4) -> Universe:
        made_up = [f"SIM{i}USDT" for i in range(n)]
        unlisted = {v: {s for s in made_up if zlib.crc32(f"{v}:{s}".encode()) % 5 == 0} for v in VENUES}
        return cls([*INSTRUMENTS, *made_up], frozenset(made_up[full:]), unlisted)


def unmodelled(symbols: list[str]) -> str:
    """Why the simulator cannot stand in for a venue on `symbols` ('' when it can): it models
    the perpetuals of INSTRUMENTS and the made-up SIM{n}USDT, and anything else is most likely
    a typo."""
    missing = [s for s in symbols if s not in INSTRUMENTS and not GENERIC.fullmatch(s)]
    if not missing:
        return ""
    close = {s: difflib.get_close_matches(s, INSTRUMENTS, n=2, cutoff=0.8) for s in missing}
    hints = "; ".join(f"{s}: did you mean {' or '.join(c)}?" for s, c in close.items() if c)
    return (f"{', '.join(missing)} {'is not a perpetual' if len(missing) == 1 else 'are not perpetuals'} the "
            "simulator lists "
            f"(it lists {', '.join(INSTRUMENTS)}, and SIM0USDT, SIM1USDT ... for load)"
            + (f"; {hints}" if hints else ""))


BARS_KEPT = 1000
FUNDING_CAP = 0.005  # instruments-info upperFundingRate / lowerFundingRate


@dataclass(frozen=True)
class ModelConfig:
    volatility_per_s: float = 0.0004  # standard deviation of log mid per second
    jump_probability_per_s: float = 0.002
    jump_size: float = 0.004
    trades_per_s: float = 8.0
    liquidations_per_s: float = 0.05
    book_levels: int = 200
    level_usd: float = 20_000.0  # mean notional of a level near the touch (deeper ones hold more)
    # other venues: basis to Bybit's mid, mean-reverting, with spikes that open a spread
    basis_sd: float = 0.0003  # stationary standard deviation (3 bps)
    basis_half_life_s: float = 20.0
    spikes_per_hour: float = 6.0  # per symbol and venue
    spike_bps: tuple[float, float] = (20.0, 60.0)
    funding_offset_sd: float = 0.00005  # venue funding rate minus Bybit's
    # the cheap model most of a universe's symbols get: a shallower book, fewer trades, and
    # a step every `cheap_step_ms` (the venues' ticker rate) rather than every server step
    cheap_book_levels: int = 50
    cheap_trades_per_s: float = 1.0
    cheap_step_ms: int = 100


@dataclass
class Trade:
    time_ms: int
    side: str  # taker side, Buy | Sell
    price_ticks: int
    lots: int
    trade_id: str


@dataclass
class Liquidation:
    time_ms: int
    side: str  # position side liquidated, Buy = a long
    price_ticks: int
    lots: int


@dataclass
class VenueState:
    """Another venue's view of a symbol: Bybit's mid times (1 + basis), its own funding."""

    size_factor: float  # its book holds this multiple of Bybit's sizes
    basis: float = 0.0
    funding_offset: float = 0.0
    forced: tuple[int, float, float] | None = None  # (until_ms, basis, funding offset)
    trades: list[Trade] = field(default_factory=list)


VENUE_SIZE_FACTORS = {"binance": 1.6, "okx": 0.9, "bitget": 0.6, "hyperliquid": 0.4, "gate": 0.5,
                      "paradex": 0.3, "kucoin": 0.7}


@dataclass
class SymbolState:
    inst: Instrument
    mid: float  # in ticks
    bids: dict[int, int] = field(default_factory=dict)  # price ticks -> lots
    asks: dict[int, int] = field(default_factory=dict)
    last_ticks: int = 0
    funding_rate: float = 0.0001
    open_interest_lots: int = 0
    book_version: int = 0
    volume_lots: int = 0
    turnover: float = 0.0
    high_ticks: int = 0
    low_ticks: int = 0
    open_ticks: int = 0
    trades: list[Trade] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    # 1-minute bars since the start: [start_ms, open, high, low, close ticks, lots, turnover]
    bars: deque[list] = field(default_factory=lambda: deque(maxlen=BARS_KEPT))
    fundings: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=200))  # (time, rate)
    venues: dict[str, VenueState] = field(default_factory=dict)
    levels: int = 200  # book levels a side
    trades_per_s: float = 8.0
    every_ms: int = 0  # stepped at most this often (0: every step)
    stepped_ms: int = 0


class MarketModel:
    """All simulated symbols. `step(now_ms)` moves prices, refreshes books and prints trades;
    the trades and liquidations of the last step are in each state's lists."""

    def __init__(self, symbols: list[str], seed: int = 1, config: ModelConfig = ModelConfig(),
                 start_ms: int = 0, paths: dict | None = None, speed: float = 60.0,
                 cheap: frozenset[str] = frozenset(), unlisted: dict[str, set[str]] | None = None) -> None:
        """`paths` (symbol -> replay.KlinePath) replace the random walk of those symbols by
        recorded prices, played `speed` times faster than they happened. The `cheap` symbols
        get the cheap model (ModelConfig.cheap_*); `unlisted` (venue -> symbols) are the
        symbols a venue does not list (`listed`), changed while running by `list_symbol`."""
        self.config = config
        self.paths = paths or {}
        self.speed = speed
        self.start_ms = start_ms
        self.rng = random.Random(seed)
        self.now_ms = start_ms
        self.venue_rng = random.Random(seed * 7919 + 1)  # apart, so Bybit's run is the same with or without
        self._trade_ids = self._venue_trade_ids = 0
        self.states: dict[str, SymbolState] = {}
        self.unlisted: dict[str, set[str]] = {v: set(s) for v, s in (unlisted or {}).items()}
        cheap_ones = [s for s in symbols if s in cheap]
        for symbol in symbols:
            inst = instrument(symbol)
            mid = float(inst.start_price / inst.tick)
            if symbol in self.paths:
                mid = self.paths[symbol].prices[0] / float(inst.tick)
            state = SymbolState(inst, mid, open_interest_lots=int(5_000_000 / float(inst.start_price * inst.lot)),
                                venues={v: VenueState(f) for v, f in VENUE_SIZE_FACTORS.items()},
                                levels=config.book_levels, trades_per_s=config.trades_per_s, stepped_ms=start_ms)
            if symbol in cheap:  # staggered, so that each server step moves an even share of them
                state.levels, state.trades_per_s, state.every_ms = (
                    config.cheap_book_levels, config.cheap_trades_per_s, config.cheap_step_ms)
                state.stepped_ms -= cheap_ones.index(symbol) * config.cheap_step_ms // len(cheap_ones)
            state.last_ticks = state.high_ticks = state.low_ticks = state.open_ticks = round(mid)
            self.states[symbol] = state
            self._rebuild_book(state, full=True)

    def next_funding_ms(self, symbol: str) -> int:
        period = self.states[symbol].inst.funding_interval_h * 3_600_000
        return (self.now_ms // period + 1) * period

    def listed(self, venue: str) -> list[str]:
        """The symbols `venue` lists, sorted."""
        gone = self.unlisted.get(venue, set())
        return [s for s in sorted(self.states) if s not in gone]

    def list_symbol(self, symbol: str, venue: str, listed: bool) -> None:
        """List (or delist) a modelled symbol on `venue` from now on."""
        if symbol not in self.states:
            raise KeyError(symbol)
        (self.unlisted.setdefault(venue, set()).discard if listed else self.unlisted.setdefault(venue, set()).add)(
            symbol)

    def step(self, now_ms: int) -> None:
        settled = {s: self.next_funding_ms(s) for s in self.states if self.next_funding_ms(s) <= now_ms}
        self.now_ms = now_ms
        cfg, rng = self.config, self.rng
        for state in self.states.values():
            if state.every_ms and now_ms - state.stepped_ms < state.every_ms:
                if state.trades or state.liquidations:  # printed last step: not again
                    state.trades.clear()
                    state.liquidations.clear()
                for venue in state.venues.values():
                    venue.trades.clear()
                continue
            dt_s = max(0.0, (now_ms - state.stepped_ms) / 1000)
            state.stepped_ms = now_ms
            burst_s = min(dt_s, 1.0)  # after a long pause, print one second's trades, not a flood
            state.trades.clear()
            state.liquidations.clear()
            move = rng.gauss(0, cfg.volatility_per_s * math.sqrt(dt_s))
            if rng.random() < cfg.jump_probability_per_s * dt_s:
                move += rng.choice((-1, 1)) * cfg.jump_size
            path = self.paths.get(state.inst.symbol)
            replayed = path.price_at((now_ms - self.start_ms) * self.speed) if path else None
            if replayed is not None:
                state.mid = max(10.0, replayed / float(state.inst.tick))
            else:
                state.mid = max(10.0, state.mid * math.exp(move))
            # mean-reverting toward 0.01 %, exact for any step length, within Bybit's ±0.5 % cap
            pull = (0.0001 - state.funding_rate) * (1 - math.exp(-0.1 * dt_s))
            state.funding_rate = min(FUNDING_CAP, max(-FUNDING_CAP, state.funding_rate + pull + rng.gauss(0, 0.000002)))
            state.open_interest_lots = max(1, state.open_interest_lots + round(rng.gauss(0, 50)))
            self._rebuild_book(state)
            for _ in range(self._poisson(state.trades_per_s * burst_s)):
                self._trade(state)
            for _ in range(self._poisson(cfg.liquidations_per_s * burst_s)):
                side = rng.choice(("Buy", "Sell"))
                price = min(state.bids) if side == "Buy" else max(state.asks)
                state.liquidations.append(Liquidation(now_ms, side, price, 1 + int(rng.expovariate(0.1))))
            self._bar(state)
            for venue in state.venues.values():
                self._step_venue(state, venue, dt_s, burst_s)
        for symbol, at in settled.items():  # stepped or not (a cheap symbol), at its settlement time
            self.states[symbol].fundings.append((at, self.states[symbol].funding_rate))

    # --- other venues --------------------------------------------------------------------

    def force(self, symbol: str, venue: str, spread_bps: float, funding_delta: float, until_ms: int) -> None:
        """Hold `venue`'s price `spread_bps` above Bybit's (below if negative) and its funding
        rate `funding_delta` above Bybit's until `until_ms`: an opportunity on demand."""
        self.states[symbol].venues[venue].forced = (until_ms, spread_bps / 10_000, funding_delta)

    def venue_shift(self, state: SymbolState, venue: str) -> int:
        """How many ticks `venue`'s book sits above Bybit's."""
        return round(state.mid * state.venues[venue].basis)

    def venue_book(self, state: SymbolState, venue: str, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        """`venue`'s top `depth` levels a side: Bybit's book shifted by the basis, its own sizes."""
        shift, factor = self.venue_shift(state, venue), state.venues[venue].size_factor
        bids = {p + shift: max(1, round(n * factor)) for p, n in sorted(state.bids.items(), reverse=True)[:depth]}
        asks = {p + shift: max(1, round(n * factor)) for p, n in sorted(state.asks.items())[:depth]}
        return bids, asks

    def venue_funding(self, state: SymbolState, venue: str) -> float:
        return min(FUNDING_CAP, max(-FUNDING_CAP, state.funding_rate + state.venues[venue].funding_offset))

    def _step_venue(self, state: SymbolState, venue: VenueState, dt_s: float, burst_s: float) -> None:
        cfg, rng = self.config, self.venue_rng
        venue.trades.clear()
        if venue.forced is not None and venue.forced[0] > self.now_ms:
            venue.basis, venue.funding_offset = venue.forced[1], venue.forced[2]
        else:
            venue.forced = None
            keep = math.exp(-math.log(2) * dt_s / cfg.basis_half_life_s)  # exact Ornstein-Uhlenbeck step
            venue.basis = venue.basis * keep + rng.gauss(0, cfg.basis_sd * math.sqrt(1 - keep * keep))
            if rng.random() < cfg.spikes_per_hour / 3600 * burst_s:
                venue.basis += rng.choice((-1, 1)) * rng.uniform(*cfg.spike_bps) / 10_000
            venue.funding_offset = venue.funding_offset * keep + rng.gauss(
                0, cfg.funding_offset_sd * math.sqrt(1 - keep * keep))
        shift = round(state.mid * venue.basis)
        for _ in range(self._poisson(state.trades_per_s * burst_s, rng)):
            side = "Buy" if rng.random() < 0.5 else "Sell"
            price = (min(state.asks) if side == "Buy" else max(state.bids)) + shift
            self._venue_trade_ids += 1
            venue.trades.append(Trade(self.now_ms, side, price, 1 + int(rng.expovariate(0.3)),
                                      str(self._venue_trade_ids)))

    def _bar(self, state: SymbolState) -> None:
        """Fold this step into the current 1-minute bar (close = last trade, else the mid)."""
        minute = self.now_ms - self.now_ms % 60_000
        price = state.trades[-1].price_ticks if state.trades else round(state.mid)
        lots = sum(t.lots for t in state.trades)
        turnover = sum(float(state.inst.tick * t.price_ticks * state.inst.lot * t.lots) for t in state.trades)
        bars = state.bars
        if not bars or bars[-1][0] != minute:
            bars.append([minute, price, price, price, price, 0, 0.0])
        bar = bars[-1]
        bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
        bar[5] += lots
        bar[6] += turnover

    def _poisson(self, mean: float, rng: random.Random | None = None) -> int:
        rng = rng or self.rng
        limit, k, p = math.exp(-mean), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k

    def _rebuild_book(self, state: SymbolState, full: bool = False) -> None:
        """Best bid one tick below the mid (at least), ask above; sizes churn near the touch."""
        rng, levels = self.rng, state.levels
        unit = max(1.0, self.config.level_usd / 5 / float(state.inst.start_price * state.inst.lot))  # lots
        state.book_version += 1
        best_bid = math.ceil(state.mid) - 1  # strictly below the mid
        best_ask = best_bid + 1 + (rng.random() < 0.2)  # mostly a one-tick spread
        for side, best, step in ((state.bids, best_bid, -1), (state.asks, best_ask, 1)):
            wanted = {best + step * i for i in range(levels)}
            for price in [p for p in side if p not in wanted]:
                del side[price]
            for i, price in enumerate(sorted(wanted, reverse=step < 0)):
                if full or price not in side or (i < 10 and rng.random() < 0.3):
                    side[price] = 1 + int(rng.expovariate(1 / (5 + 20 * i / levels)) * unit)

    def _trade(self, state: SymbolState) -> None:
        rng = self.rng
        side = "Buy" if rng.random() < 0.5 else "Sell"
        book = state.asks if side == "Buy" else state.bids
        price = min(book) if side == "Buy" else max(book)
        lots = min(book[price], 1 + int(rng.expovariate(0.3)))
        self._trade_ids += 1
        state.trades.append(Trade(self.now_ms, side, price, lots, f"sim-{self._trade_ids}"))
        state.last_ticks = price
        state.high_ticks = max(state.high_ticks, price)
        state.low_ticks = min(state.low_ticks, price)
        state.volume_lots += lots
        state.turnover += float(state.inst.tick * price * state.inst.lot * lots)


DAY_MS = 86_400_000


def bar_start(t: int, span_ms: int | str) -> int:
    """The open time (UTC) of the bar holding time `t`: `span_ms` long from the epoch, or a
    "week" from Monday 00:00, or a calendar "month"."""
    if span_ms == "month":
        day = datetime.fromtimestamp(t / 1000, UTC)
        return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)
    if span_ms == "week":
        return t - t % DAY_MS - (t // DAY_MS + 3) % 7 * DAY_MS  # 1970-01-01 was a Thursday
    return t - t % span_ms


def fold_bars(bars, span_ms: int | str) -> list[list]:
    """The 1-minute bars [start, open, high, low, close ticks, lots, turnover] folded into
    bars of `span_ms` (see `bar_start`), oldest first."""
    folded: dict[int, list] = {}
    for t, o, h, low, c, lots, turnover in bars:
        key = bar_start(t, span_ms)
        bar = folded.get(key)
        if bar is None:
            folded[key] = [key, o, h, low, c, lots, turnover]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], h), min(bar[3], low), c
            bar[5] += lots
            bar[6] += turnover
    return [folded[k] for k in sorted(folded)]
