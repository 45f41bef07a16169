"""The emergency-stop conditions (deployment guide, phase 3), as a fold of the executor's facts.

`Safety` keeps what the conditions read, fed by the same facts as the rest of the state (so a
restart that replays them knows what it knew), and `check(now_ms)` names the first condition
that holds:

- `daily_loss`, `weekly_loss`, `monthly_loss`: the realised PnL of the UTC day (week from
  Monday, calendar month) is at or below -MAX_DAILY_LOSS (-MAX_WEEKLY_LOSS, -MAX_MONTHLY_LOSS);
- `failures`: SAFETY_MAX_FAILURES (3) failed trades within SAFETY_FAILURE_WINDOW_S (60 s);
- `success_rate`: under SAFETY_MIN_SUCCESS_RATE (90 %) of the last SAFETY_SUCCESS_WINDOW (20)
  entries filled both legs;
- `latency`: at one venue, the p99 of the last 100 round trips to it (an order sent -> the
  venue's first answer to it: ack, fill or refusal; at least SAFETY_LATENCY_SAMPLES, 20) is
  above SAFETY_MAX_P99_MS (50 ms): the venue or the link is slow. A wait for the venue's rate
  limit is not counted, and the system's own latency is the benchmarks' business;
- `api_errors`: SAFETY_MAX_API_ERRORS (5) orders refused by one venue within the failure window.

The latency and refusal counts are kept per venue, so a slow or refusing venue is named and
another's good answers do not hide it.

A failed trade is a taken signal whose entry did not end with both legs filled (the harder leg
refused or timed out, or a leg-out), or a leg-out on the way out. A count or rate of 0 turns
its condition off. After `TradingResumed` the windows start afresh, and the day's, week's and
month's losses count from the resume.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from services.executor import facts as f
from services.executor.portfolio import DAY_MS

LATENCY_KEEP = 100


def _month(ts_ms: int) -> int:
    d = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    return d.year * 12 + d.month - 1


# loss-limit periods, each a number that changes when a new one starts (UTC; 1970-01-01 was a Thursday)
PERIODS: dict[str, tuple[str, Callable[[int], int]]] = {
    "daily_loss": ("today (UTC)", lambda ts: ts // DAY_MS),
    "weekly_loss": ("this week (UTC, from Monday)", lambda ts: (ts // DAY_MS + 3) // 7),
    "monthly_loss": ("this month (UTC)", _month),
}


@dataclass(frozen=True)
class SafetyLimits:
    max_daily_loss: Decimal | None = None  # USD; None: no limit
    max_weekly_loss: Decimal | None = None
    max_monthly_loss: Decimal | None = None
    max_failures: int = 3
    failure_window_ms: int = 60_000
    min_success_rate: float = 0.90
    success_window: int = 20
    max_p99_ms: float = 50.0
    latency_samples: int = 20  # the p99 is judged once this many are in
    max_api_errors: int = 5
    on_stop: str = "close"  # or keep


class Safety:
    def __init__(self, limits: SafetyLimits) -> None:
        self.limits = limits
        self.stops: Counter[str] = Counter()  # halts by reason, ever
        self._venue_of: dict[str, str] = {}  # an order's link id -> its venue
        self.reset(0)

    def reset(self, now_ms: int) -> None:
        self.failures: deque[int] = deque()  # when each failed trade failed
        self.api_errors: dict[str, deque[int]] = {}  # venue -> when each order it refused was refused
        self.entries: deque[bool] = deque(maxlen=max(1, self.limits.success_window))  # entry filled both legs
        self.latencies_ms: dict[str, deque[float]] = {}  # venue -> its last round trips
        self._p99: dict[str, float] = {}  # of latencies_ms, kept as they come (check runs on every step)
        self.period_pnl = {name: (period(now_ms), Decimal(0)) for name, (_, period) in PERIODS.items()}
        self._failed: set[str] = set()
        self._active: set[str] = set()

    def apply(self, fact: f.AnyFact) -> None:
        match fact:
            case f.TradingHalted():
                self.stops[fact.reason] += 1
            case f.TradingResumed():
                self.reset(fact.ts_ms)
            case f.LegOut() if fact.trade_id not in self._failed:
                self._failed.add(fact.trade_id)
                self.failures.append(fact.ts_ms)
                if fact.phase == "entry":
                    self.entries.append(False)
            case f.TradeActive():
                self._active.add(fact.trade_id)
                if fact.trade_id not in self._failed:
                    self.entries.append(True)
            case f.OrderPlaced():
                self._venue_of[fact.link_id] = fact.venue
            case f.OrderClosed(status="rejected"):
                self.api_errors.setdefault(self._venue_of.get(fact.link_id, ""), deque()).append(fact.ts_ms)
            case f.TradeClosed():
                if fact.trade_id not in self._active and fact.trade_id not in self._failed:
                    self.failures.append(fact.ts_ms)
                    self.entries.append(False)
                self._active.discard(fact.trade_id)
                self._failed.discard(fact.trade_id)
                for name, (_, period) in PERIODS.items():
                    now, (then, pnl) = period(fact.ts_ms), self.period_pnl[name]
                    self.period_pnl[name] = (now, (pnl if now == then else Decimal(0)) + fact.pnl_usd)

    def observe_latency_ms(self, ms: float, venue: str = "") -> None:
        kept = self.latencies_ms.setdefault(venue, deque(maxlen=LATENCY_KEEP))
        kept.append(ms)
        if len(kept) >= max(1, self.limits.latency_samples):
            ordered = sorted(kept)
            self._p99[venue] = ordered[math.ceil(0.99 * len(ordered)) - 1]

    def p99_ms(self, venue: str | None = None) -> float | None:
        """The p99 round trip at `venue`, or (None) the highest of any venue's."""
        if venue is not None:
            return self._p99.get(venue)
        return max(self._p99.values(), default=None)

    def check(self, now_ms: int) -> tuple[str, str] | None:
        """(reason, detail) of the first stop condition that holds at `now_ms`, else None."""
        lim = self.limits
        since = now_ms - lim.failure_window_ms
        for window in (self.failures, *self.api_errors.values()):
            while window and window[0] < since:
                window.popleft()
        for name, limit in (("daily_loss", lim.max_daily_loss), ("weekly_loss", lim.max_weekly_loss),
                            ("monthly_loss", lim.max_monthly_loss)):
            words, period = PERIODS[name]
            key, pnl = self.period_pnl[name]
            if limit is not None and period(now_ms) == key and -pnl >= limit:
                return name, f"lost ${-pnl} {words}, the limit is ${limit}"
        window_s = lim.failure_window_ms // 1000
        if lim.max_failures and len(self.failures) >= lim.max_failures:
            return "failures", f"{len(self.failures)} failed trades within {window_s} s"
        if lim.min_success_rate and lim.success_window and len(self.entries) >= lim.success_window:
            rate = sum(self.entries) / len(self.entries)
            if rate < lim.min_success_rate:
                return "success_rate", (f"{rate:.0%} of the last {len(self.entries)} entries filled both legs, "
                                         f"under {lim.min_success_rate:.0%}")
        for venue, p99 in sorted(self._p99.items()):
            if lim.max_p99_ms and p99 > lim.max_p99_ms:
                return "latency", (f"p99 order sent -> {_named(venue)}'s answer {p99:.1f} ms, above "
                                   f"{lim.max_p99_ms:g} ms")
        for venue, refused in sorted(self.api_errors.items()):
            if lim.max_api_errors and len(refused) >= lim.max_api_errors:
                return "api_errors", f"{len(refused)} orders refused by {_named(venue)} within {window_s} s"
        return None


def _named(venue: str) -> str:
    return venue or "the venue"
