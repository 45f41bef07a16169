"""Market state per venue and symbol, kept from market events (pure: time comes from events).

For each (venue, symbol) it keeps:
- the top of book (the newest of ticker and book by exchange time) and the newest book levels;
- mark, index, the funding rate per 8 h and the next funding time, open interest;
- open interest's 24 h average, from one sample per minute (the minute's last value);
- a rolling VWAP over `vwap_window_s` of trades (per-second sums of p*q, q and p^2*q), and
  the volume-weighted standard deviation of trade prices around it;
- 1-minute bars built from trades, ATR(14) over them, and whether it is falling (below the
  ATR of five bars before);
- liquidations of the last `liquidation_window_s`, grouped into price buckets 0.1 % wide;
  a bucket holding at least `cluster_min_usd` is a cluster.

Depth is the USD resting within N bps of the touch on the side a leg takes: asks for a buy,
bids for a sell. Order-book imbalance is (bid depth - ask depth) / (bid depth + ask depth)
within N bps, from -1 (all asks) to 1 (all bids). Only the levels the feed carries count
(`BOOK_LEVELS`), so depth is a lower bound: a short book can reject a pair, never admit one.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field

from services.strategy.costs import taker_fee_bps
from shared.events import BookUpdate, Level, Liquidation, MarketEvent, Ticker, Trade

MINUTE_MS = 60_000
DAY_MS = 86_400_000
ATR_BARS = 14
ATR_TREND_LAG = 5  # falling: ATR below the ATR this many bars before
BUCKET_WIDTH = 0.001  # liquidation buckets, relative


@dataclass(frozen=True)
class StateConfig:
    vwap_window_s: int = 3600
    liquidation_window_s: int = 4 * 3600
    cluster_min_usd: float = 50_000.0


class _MinuteSamples:
    """The last value of each minute over a day, and their mean."""

    def __init__(self) -> None:
        self._samples: deque[tuple[int, float]] = deque()  # (minute, value)

    def add(self, ts_ms: int, value: float) -> None:
        minute = ts_ms // MINUTE_MS
        samples = self._samples
        if samples and samples[-1][0] == minute:
            samples[-1] = (minute, value)
        elif not samples or minute > samples[-1][0]:
            samples.append((minute, value))
        while samples and samples[0][0] <= minute - DAY_MS // MINUTE_MS:
            samples.popleft()

    def mean(self) -> float | None:
        return math.fsum(v for _, v in self._samples) / len(self._samples) if self._samples else None


class _Vwap:
    """Per-second sums of trades over a window: VWAP and the volume-weighted price spread.

    The sums live in a ring of `window_s` slots (a second's slot is its number modulo the
    window), allocated at the first trade: memory does not grow as the window fills, and the
    readings are C-speed sums over three arrays. A slot is cleared when the newest second
    passes it, so every slot holds only seconds inside the window."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._newest: int | None = None  # the newest trade's second
        self._pq = self._q = self._p2q = array("d")

    def add(self, ts_ms: int, price: float, size: float) -> None:
        second, w = ts_ms // 1000, self.window_s
        if self._newest is None:
            self._pq, self._q, self._p2q = (array("d", bytes(8 * w)) for _ in range(3))
            self._newest = second
        elif second > self._newest:
            for s in range(max(self._newest + 1, second - w + 1), second + 1):
                i = s % w
                self._pq[i] = self._q[i] = self._p2q[i] = 0.0
            self._newest = second
        elif second <= self._newest - w:
            return  # a late trade older than the window
        i = second % w
        self._pq[i] += price * size
        self._q[i] += size
        self._p2q[i] += price * price * size

    def stats(self) -> tuple[float, float] | None:
        """(VWAP, standard deviation of trade prices around it), or None without trades."""
        q = math.fsum(self._q)
        if q <= 0:
            return None
        vwap = math.fsum(self._pq) / q
        variance = math.fsum(self._p2q) / q - vwap * vwap
        return vwap, math.sqrt(max(variance, 0.0))


class _Bars:
    """1-minute OHLC bars from trades, and ATR(14) over them."""

    def __init__(self, keep: int = ATR_BARS + ATR_TREND_LAG + 2) -> None:
        self.bars: deque[list[float]] = deque(maxlen=keep)  # [minute, open, high, low, close]

    def add(self, ts_ms: int, price: float) -> None:
        minute = ts_ms // MINUTE_MS
        bars = self.bars
        if bars and bars[-1][0] == minute:
            bar = bars[-1]
            bar[2] = max(bar[2], price)
            bar[3] = min(bar[3], price)
            bar[4] = price
        elif not bars or minute > bars[-1][0]:
            bars.append([minute, price, price, price, price])

    def atr(self, lag: int = 0) -> float | None:
        """ATR over the 14 completed bars ending `lag` bars before the newest completed one."""
        closed = list(self.bars)[:-1]  # the newest bar is still forming
        end = len(closed) - lag
        if end < ATR_BARS + 1:
            return None
        ranges = [max(high, prev_close) - min(low, prev_close)
                  for (_, _, _, _, prev_close), (_, _, high, low, _) in zip(closed[end - ATR_BARS - 1:end - 1],
                                                                            closed[end - ATR_BARS:end], strict=True)]
        return sum(ranges) / ATR_BARS


@dataclass
class VenueMarket:
    """One symbol on one venue."""

    venue: str
    symbol: str
    config: StateConfig = field(default_factory=StateConfig)
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    top_ts_ms: int = 0  # exchange time of the newest top of book
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    mark: float | None = None
    index: float | None = None
    funding_8h: float | None = None
    funding_rate: float | None = None  # per the venue's own interval: what one settlement pays
    next_funding_ts_ms: int | None = None
    open_interest: float | None = None
    updated_ms: int = 0  # exchange time of the newest event
    received_us: int = 0

    def __post_init__(self) -> None:
        self.fee_bps = taker_fee_bps(self.venue)
        self._depth: dict[tuple[str, float], float] = {}  # (side, bps) -> USD, for the current book
        self._oi = _MinuteSamples()
        self._vwap = _Vwap(self.config.vwap_window_s)
        self._bars = _Bars()
        self._liquidations: deque[tuple[int, float, float]] = deque()  # (ts, price, usd)

    # --- updates -------------------------------------------------------------------------
    def apply(self, event: MarketEvent) -> None:
        self.updated_ms = max(self.updated_ms, event.exchange_ts_ms)
        self.received_us = event.receive_ts_us
        if type(event) is Ticker:
            self._ticker(event)
        elif type(event) is BookUpdate:
            self.bids, self.asks = event.bids, event.asks
            self._depth.clear()
            if event.bids and event.asks and event.exchange_ts_ms >= self.top_ts_ms:
                (self.bid, self.bid_size), (self.ask, self.ask_size) = event.bids[0], event.asks[0]
                self.top_ts_ms = event.exchange_ts_ms
        elif type(event) is Trade:
            self._vwap.add(event.exchange_ts_ms, event.price, event.size)
            self._bars.add(event.exchange_ts_ms, event.price)
        elif type(event) is Liquidation:
            self._liquidation(event)

    def _ticker(self, t: Ticker) -> None:
        if t.bid is not None and t.ask is not None and t.exchange_ts_ms >= self.top_ts_ms:
            self.bid, self.ask, self.top_ts_ms = t.bid, t.ask, t.exchange_ts_ms
            self.bid_size = t.bid_size if t.bid_size is not None else self.bid_size
            self.ask_size = t.ask_size if t.ask_size is not None else self.ask_size
        if t.mark is not None:
            self.mark = t.mark
        if t.index is not None:
            self.index = t.index
        if t.funding_rate_8h is not None:
            self.funding_8h = t.funding_rate_8h
        if t.funding_rate is not None:
            self.funding_rate = t.funding_rate
        if t.next_funding_ts_ms is not None:
            self.next_funding_ts_ms = t.next_funding_ts_ms
        if t.open_interest is not None:
            self.open_interest = t.open_interest
            self._oi.add(t.exchange_ts_ms, t.open_interest)

    def _liquidation(self, event: Liquidation) -> None:
        self._liquidations.append((event.exchange_ts_ms, event.price, event.price * event.size))
        horizon = event.exchange_ts_ms - self.config.liquidation_window_s * 1000
        while self._liquidations and self._liquidations[0][0] <= horizon:
            self._liquidations.popleft()

    # --- readings ------------------------------------------------------------------------
    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0

    def depth_usd(self, side: str, within_bps: float) -> float:
        """USD resting within `within_bps` of the touch: `asks` (what a buy takes) or `bids`
        (remembered until the next book)."""
        cached = self._depth.get((side, within_bps))
        if cached is not None:
            return cached
        self._depth[side, within_bps] = total = self._sum_depth(side, within_bps)
        return total

    def _sum_depth(self, side: str, within_bps: float) -> float:
        levels = self.asks if side == "asks" else self.bids
        if not levels:
            return 0.0
        best = levels[0][0]
        limit = best * (1 + within_bps / 10_000.0) if side == "asks" else best * (1 - within_bps / 10_000.0)
        total = 0.0
        for price, size in levels:
            if (price > limit) if side == "asks" else (price < limit):
                break
            total += price * size
        return total

    def imbalance(self, within_bps: float) -> float | None:
        bids, asks = self.depth_usd("bids", within_bps), self.depth_usd("asks", within_bps)
        return (bids - asks) / (bids + asks) if bids + asks > 0 else None

    @property
    def oi_24h_avg(self) -> float | None:
        return self._oi.mean()

    def vwap_deviation(self) -> float | None:
        """(mid - VWAP) in standard deviations of trade prices; None without a spread of prices."""
        stats, mid = self._vwap.stats(), self.mid
        if stats is None or mid is None or stats[1] <= 0:
            return None
        return (mid - stats[0]) / stats[1]

    @property
    def vwap(self) -> float | None:
        stats = self._vwap.stats()
        return stats[0] if stats else None

    def atr(self) -> float | None:
        return self._bars.atr()

    def atr_falling(self) -> bool | None:
        now, before = self._bars.atr(), self._bars.atr(ATR_TREND_LAG)
        return None if now is None or before is None else now < before

    def liquidation_clusters(self) -> list[tuple[float, float]]:
        """(price, USD) of every bucket holding at least `cluster_min_usd`, by price."""
        buckets: dict[int, list[float]] = {}
        for _, price, usd in self._liquidations:
            key = math.floor(math.log(price) / math.log1p(BUCKET_WIDTH))
            bucket = buckets.setdefault(key, [0.0, 0.0])
            bucket[0] += price * usd
            bucket[1] += usd
        return sorted((pu / usd, usd) for pu, usd in buckets.values() if usd >= self.config.cluster_min_usd)

    def nearest_cluster_pct(self) -> float | None:
        """Distance from mid to the nearest liquidation cluster, in % of mid; None if none."""
        mid = self.mid
        clusters = self.liquidation_clusters()
        if mid is None or not clusters:
            return None
        return min(abs(price - mid) for price, _ in clusters) / mid * 100.0


class MarketState:
    """Every (venue, symbol) seen, by symbol."""

    def __init__(self, config: StateConfig | None = None) -> None:
        self.config = config or StateConfig()
        self.by_symbol: dict[str, dict[str, VenueMarket]] = {}

    def apply(self, event: MarketEvent) -> VenueMarket:
        venues = self.by_symbol.get(event.symbol)
        if venues is None:
            venues = self.by_symbol[event.symbol] = {}
        market = venues.get(event.venue)
        if market is None:
            market = venues[event.venue] = VenueMarket(event.venue, event.symbol, self.config)
        market.apply(event)
        return market

    def get(self, venue: str, symbol: str) -> VenueMarket | None:
        return self.by_symbol.get(symbol, {}).get(venue)
