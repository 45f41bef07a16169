"""The portfolio (seed section 8) as a fold of the executor's facts (pure, exact Decimal).

Capital is conserved to the cent (seed Property 1, with realised PnL counted in):

    available + open exposure == starting capital + cumulative PnL

where open exposure is the capital reserved by trades not yet closed. PnL (Property 7): the
cumulative PnL is the sum of every closed trade's profit, and the part of it lost to leg-outs
is also kept on its own (`leg_out_total_loss`). The seed subtracts leg-out losses from the
sum; here a trade's profit already includes what its leg-outs cost, so it is not subtracted
twice.

Metrics: win rate = wins / (wins + losses) (a trade that made exactly 0, or never filled, is
neither); average profit = cumulative PnL / closed trades that filled; utilization = open
exposure / starting capital; leg-out loss rate = leg-out loss / cumulative PnL; APR =
(cumulative PnL / starting capital) / (days from the first trade to the newest fact / 365),
given once a day has passed (before that it would say nothing).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from services.executor import facts as f

ZERO = Decimal(0)
DAY_MS = 86_400_000


def day_of(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


@dataclass
class Daily:
    trades: int = 0
    wins: int = 0
    losses: int = 0
    pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    leg_outs: int = 0
    leg_out_loss: Decimal = ZERO
    rejected_signals: int = 0


@dataclass
class Portfolio:
    starting_capital: Decimal
    reserved: dict[str, Decimal] = field(default_factory=dict)  # open trade -> capital it holds
    cumulative_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    wins: int = 0
    losses: int = 0
    closed_trades: int = 0  # that filled at all
    rejected_trades: int = 0  # taken, then nothing filled
    signals_taken: int = 0
    rejected_signals: int = 0  # not taken (stale, halted, too small ...): the daily figures' sum
    emergency_closes: int = 0
    closed_outside: int = 0  # found closed at the venue by something else (PositionGone), after a restart
    leg_out_count: int = 0
    leg_out_total_loss: Decimal = ZERO
    first_trade_ms: int | None = None
    last_fact_ms: int = 0
    daily: dict[str, Daily] = field(default_factory=lambda: defaultdict(Daily))

    @property
    def open_exposure(self) -> Decimal:
        return sum(self.reserved.values(), ZERO)

    @property
    def available(self) -> Decimal:
        return self.starting_capital + self.cumulative_pnl - self.open_exposure

    def apply(self, fact: f.AnyFact) -> None:
        self.last_fact_ms = max(self.last_fact_ms, fact.ts_ms)
        match fact:
            case f.SignalTaken():
                self.reserved[fact.trade_id] = fact.size_usd
                self.signals_taken += 1
                if self.first_trade_ms is None:
                    self.first_trade_ms = fact.ts_ms
            case f.SignalRejected():
                self.rejected_signals += 1
                self.daily[day_of(fact.ts_ms)].rejected_signals += 1
            case f.LegOut():
                self.leg_out_count += 1
                self.daily[day_of(fact.ts_ms)].leg_outs += 1
            case f.TradeClosed():
                self.reserved.pop(fact.trade_id, None)
                day = self.daily[day_of(fact.ts_ms)]
                self.cumulative_pnl += fact.pnl_usd
                self.fees += fact.fees_usd
                self.funding += fact.funding_usd
                self.leg_out_total_loss += fact.leg_out_loss_usd
                day.pnl += fact.pnl_usd
                day.fees += fact.fees_usd
                day.funding += fact.funding_usd
                day.leg_out_loss += fact.leg_out_loss_usd
                if fact.outcome == "rejected" and not fact.fees_usd and not fact.pnl_usd:
                    self.rejected_trades += 1
                    return
                self.closed_trades += 1
                day.trades += 1
                self.emergency_closes += fact.outcome == "emergency_closed"
                self.closed_outside += fact.reason == "closed_outside"
                if fact.pnl_usd > 0:
                    self.wins += 1
                    day.wins += 1
                elif fact.pnl_usd < 0:
                    self.losses += 1
                    day.losses += 1

    def summary(self) -> dict[str, str]:
        """`strategy:portfolio:state`: every figure as text, money exact; time runs to the newest
        fact, so the same facts always give the same state."""
        decided = self.wins + self.losses
        days = (self.last_fact_ms - self.first_trade_ms) / DAY_MS if self.first_trade_ms is not None else 0.0
        # an APR from less than a day of trading says nothing: none until a day has passed
        apr = f"{float(self.cumulative_pnl / self.starting_capital) / (days / 365):.4f}" if days >= 1 else ""
        return {
            "starting_capital": str(self.starting_capital),
            "available_capital": str(self.available),
            "total_open_positions": str(self.open_exposure),
            "active_trades": str(len(self.reserved)),
            "cumulative_pnl": str(self.cumulative_pnl),
            "fees_paid": str(self.fees),
            "funding_paid": str(self.funding),
            "closed_trades": str(self.closed_trades),
            "rejected_trades": str(self.rejected_trades),
            "signals_taken": str(self.signals_taken),
            "rejected_signals": str(self.rejected_signals),
            "win_count": str(self.wins),
            "loss_count": str(self.losses),
            "win_rate": f"{self.wins / decided:.4f}" if decided else "",
            "average_profit": str((self.cumulative_pnl / self.closed_trades).quantize(Decimal("0.0001")))
            if self.closed_trades else "",
            "utilization": f"{float(self.open_exposure / self.starting_capital):.4f}",
            "leg_out_count": str(self.leg_out_count),
            "leg_out_total_loss": str(self.leg_out_total_loss),
            "leg_out_loss_rate": _ratio(self.leg_out_total_loss, self.cumulative_pnl),
            "emergency_closes": str(self.emergency_closes),
            "closed_outside_trades": str(self.closed_outside),
            "realistic_apr": apr,
            "updated_ms": str(self.last_fact_ms),
        }


def _ratio(part: Decimal, whole: Decimal) -> str:
    """part / whole to 4 places ('' when whole is 0), never the '-0.0000' of a tiny negative."""
    if not whole:
        return ""
    text = f"{float(part / whole):.4f}"
    return "0.0000" if text == "-0.0000" else text
