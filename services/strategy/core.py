"""The strategy's core (pure): market events in, signals and rankings out; time is passed in.

Decisions are made per event: a top-of-book or funding change on one venue re-evaluates that
symbol's pairs with that venue at once, so an opportunity becomes a signal as soon as the
event that opened it is read. Trades and liquidations only feed the metrics. The ranking of
all symbols and pairs, with every rejection counted by reason, is the once-a-second `scan`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from services.strategy.scanner import (
    Opportunity,
    ScanConfig,
    ScanResult,
    evaluate,
    scan,
    scan_synthetic,
    spread_covers_fees,
)
from services.strategy.signals import Signal, SignalGate
from services.strategy.state import MarketState, StateConfig
from shared.events import MarketEvent


@dataclass(frozen=True)
class SyntheticConfig:
    venue: str = "bybit"
    spread_bps: float = 50.0
    funding_delta: float = 0.01


class StrategyCore:
    def __init__(self, mode: str = "cross", scan_config: ScanConfig | None = None, gate: SignalGate | None = None,
                 symbols: list[str] | None = None, synthetic: SyntheticConfig | None = None,
                 state_config: StateConfig | None = None, max_event_age_ms: int | None = None) -> None:
        if mode not in ("cross", "synthetic"):
            raise ValueError(f"mode {mode!r} is not cross or synthetic")
        self.mode = mode
        self.config = scan_config or ScanConfig()
        self.gate = gate or SignalGate()
        self.symbols = set(symbols) if symbols else None  # None: every symbol seen
        self.synthetic = synthetic or SyntheticConfig()
        self.state = MarketState(state_config)
        self.stale: dict[str, bool] = {}
        self.held: Counter[str] = Counter()  # opportunities not signalled, by why
        self.events = 0
        # an event received longer ago than this (a backlog, entries taken over from a dead
        # consumer) updates the state but decides nothing: no signal from stale prices
        self.max_event_age_ms = max_event_age_ms

    def set_stale(self, stale: dict[str, bool]) -> None:
        """Each venue's latency verdict (a venue missing is stale)."""
        self.stale = stale

    def on_event(self, event: MarketEvent, now_ms: int) -> list[Signal]:
        self.events += 1
        if self.symbols is not None and event.symbol not in self.symbols:
            return []
        market = self.state.apply(event)
        if event.TYPE not in ("ticker", "book"):
            return []
        if self.max_event_age_ms is not None and now_ms - event.receive_ts_us // 1000 > self.max_event_age_ms:
            self.held["stale_event"] += 1
            return []
        if self.mode == "synthetic":
            found = self._synthetic(market, now_ms)
        else:
            found = self._cross(event.symbol, event.venue, now_ms)
        if not found:
            return []
        signals, held = self.gate.decide(found, now_ms)
        self.held.update({k: v for k, v in held.items() if v})
        return signals

    def _cross(self, symbol: str, venue: str, now_ms: int) -> list[Opportunity]:
        venues = self.state.by_symbol[symbol]
        mine = venues[venue]
        found, least = [], self.config.min_spread_bps
        for name, other in venues.items():
            if name == venue:
                continue
            for long, short in ((mine, other), (other, mine)):
                if not spread_covers_fees(long, short, least) or self.gate.blocked((symbol, long.venue, short.venue),
                                                                                    now_ms):
                    continue  # most of the time: no need to look further
                outcome = evaluate(long, short, self.stale, self.config, now_ms)
                if not isinstance(outcome, str):
                    found.append(outcome)
        return found

    def _synthetic(self, market, now_ms: int) -> list[Opportunity]:
        s = self.synthetic
        if market.venue != s.venue:
            return []
        return scan_synthetic(self.state, s.venue, [market.symbol], s.spread_bps, s.funding_delta,
                              self.config.position_usd, now_ms).opportunities

    def scan(self, now_ms: int) -> ScanResult:
        symbols = sorted(self.symbols) if self.symbols is not None else None
        if self.mode == "synthetic":
            return scan_synthetic(self.state, self.synthetic.venue, symbols or sorted(self.state.by_symbol),
                                  self.synthetic.spread_bps, self.synthetic.funding_delta, self.config.position_usd,
                                  now_ms)
        return scan(self.state, self.stale, self.config, now_ms, symbols)
