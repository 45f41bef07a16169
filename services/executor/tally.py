"""What the executor did, counted (seed task 13's TestMetricsCollector), as a fold of its facts:
the same facts always give the same counts, so a restart resumes them.

- trades executed: signals taken;
- successful: entries that filled both legs without a leg-out;
- failed: entries that did not (the harder leg refused or timed out, or a leg-out);
- timeouts: entries whose harder leg was cancelled unfilled at the leg timeout;
- cancellations: orders closed by a cancel; partial fills: those that had filled in part;
- orders placed; rejections: orders the venue refused;
- hedge times: a leg-out's start to the trade standing hedged (ms).
"""

from __future__ import annotations

from collections import Counter

from services.executor import facts as f
from shared.metrics import LatencyHistogram


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.hedge = LatencyHistogram(keep=1_000)
        self._filled: dict[str, dict[str, bool]] = {}  # open trade -> its orders: link id -> has a fill
        self._hedging: dict[str, int] = {}  # trade id -> when its entry leg-out began
        self._failed: set[str] = set()
        self._active: set[str] = set()

    def apply(self, fact: f.AnyFact) -> None:
        c = self.counts
        match fact:
            case f.SignalTaken():
                c["trades_executed"] += 1
            case f.OrderPlaced():
                c["orders_placed"] += 1
                self._filled.setdefault(fact.trade_id, {})[fact.link_id] = False
            case f.OrderFilled():
                self._filled.get(fact.trade_id, {})[fact.link_id] = True
            case f.OrderClosed():
                had_fill = self._filled.get(fact.trade_id, {}).get(fact.link_id, False)
                if fact.status == "rejected":
                    c["order_rejections"] += 1
                else:
                    c["cancellations"] += 1
                    c["partial_fills"] += had_fill
            case f.LegOut():
                if fact.phase == "entry" and fact.trade_id not in self._failed:
                    self._failed.add(fact.trade_id)
                    c["trades_failed"] += 1
                if fact.action == "hedge":
                    self._hedging[fact.trade_id] = fact.ts_ms
            case f.TradeActive():
                self._active.add(fact.trade_id)
                if fact.trade_id not in self._failed:
                    c["trades_successful"] += 1
                self._hedged(fact.trade_id, fact.ts_ms)
            case f.TradeClosed():
                if fact.trade_id not in self._active and fact.trade_id not in self._failed:
                    c["trades_failed"] += 1
                    c["timeouts"] += fact.reason == "harder_leg_timeout"
                self._hedged(fact.trade_id, fact.ts_ms)
                self._active.discard(fact.trade_id)
                self._failed.discard(fact.trade_id)
                self._filled.pop(fact.trade_id, None)

    def _hedged(self, trade_id: str, ts_ms: int) -> None:
        began = self._hedging.pop(trade_id, None)
        if began is not None:
            self.hedge.observe_ns((ts_ms - began) * 1_000_000)
