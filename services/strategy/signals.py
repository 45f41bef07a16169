"""Which opportunities become signals (pure): at most one pending signal or active trade per
(symbol, long venue, short venue), and a cooldown per symbol after each signal.

A signal stays pending until the executor reports the trade (active, then closed) or until
`pending_ttl_ms` passes with no word, so a lost signal cannot block a pair for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.strategy.scanner import Opportunity

Pair = tuple[str, str, str]


def signal_id(pair: Pair, now_ms: int) -> str:
    return "-".join((*pair, str(now_ms)))


def pair_of(signal_id: str) -> Pair | None:
    """The pair a signal id names (None for an id this strategy did not make)."""
    parts = signal_id.rsplit("-", 3)
    return (parts[0], parts[1], parts[2]) if len(parts) == 4 and parts[3].isdigit() else None


@dataclass(frozen=True)
class Signal:
    id: str
    opportunity: Opportunity
    created_ms: int


@dataclass
class SignalGate:
    cooldown_ms: int = 60_000
    pending_ttl_ms: int = 30_000
    pending: dict[Pair, int] = field(default_factory=dict)  # pair -> signalled at
    active: set[Pair] = field(default_factory=set)
    last_signal_ms: dict[str, int] = field(default_factory=dict)  # symbol -> newest signal

    def decide(self, opportunities: list[Opportunity], now_ms: int) -> tuple[list[Signal], dict[str, int]]:
        """Signals for the opportunities that may be acted on now, and why the rest may not."""
        for pair, at in list(self.pending.items()):
            if now_ms - at >= self.pending_ttl_ms:
                del self.pending[pair]
        signals, held = [], {"pending": 0, "active": 0, "cooldown": 0}
        for o in opportunities:
            if o.pair in self.active:
                held["active"] += 1
            elif o.pair in self.pending:
                held["pending"] += 1
            elif now_ms - self.last_signal_ms.get(o.symbol, -self.cooldown_ms) < self.cooldown_ms:
                held["cooldown"] += 1
            else:
                self.pending[o.pair] = self.last_signal_ms[o.symbol] = now_ms
                signals.append(Signal(signal_id(o.pair, now_ms), o, now_ms))
        return signals, held

    def blocked(self, pair: Pair, now_ms: int) -> bool:
        """True while `pair` could not be signalled anyway (a cheap check before evaluating)."""
        pending = self.pending.get(pair)
        return (pair in self.active or (pending is not None and now_ms - pending < self.pending_ttl_ms)
                or now_ms - self.last_signal_ms.get(pair[0], -self.cooldown_ms) < self.cooldown_ms)

    def trade_opened(self, pair: Pair) -> None:
        self.pending.pop(pair, None)
        self.active.add(pair)

    def trade_closed(self, pair: Pair) -> None:
        self.pending.pop(pair, None)
        self.active.discard(pair)
