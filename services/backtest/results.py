"""A backtest's figures (pure, deterministic): PnL split into price, fees and funding; Sharpe and
Sortino of daily returns (annualised with 365 days); max drawdown; win rate; utilization;
APR; and the trades as CSV. The same inputs give the same text, byte for byte.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from decimal import Decimal

from services.backtest.funding_arb import BacktestResult, ClosedTrade, Gap

DAY_MS = 86_400_000


def _day(ts_ms: int) -> int:
    return ts_ms // DAY_MS


def daily_returns(equity: list[tuple[int, Decimal]], capital: Decimal) -> list[float]:
    """The change of equity over each UTC day (the last value of each day), over the capital."""
    closes: dict[int, Decimal] = {}
    for ts, value in equity:
        closes[_day(ts)] = value
    if not closes:
        return []
    days = range(min(closes), max(closes) + 1)
    out, last = [], Decimal(0)
    for day in days:
        value = closes.get(day, last)
        out.append(float((value - last) / capital))
        last = value
    return out


def sharpe(returns: list[float]) -> float | None:
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / sd * math.sqrt(365) if sd else None


def sortino(returns: list[float]) -> float | None:
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    downside = math.sqrt(sum(min(0.0, r) ** 2 for r in returns) / len(returns))
    return mean / downside * math.sqrt(365) if downside else None


def max_drawdown(equity: list[tuple[int, Decimal]], capital: Decimal) -> Decimal:
    """The largest fall of capital + equity from its running peak, as a fraction of the peak."""
    peak, worst = capital, Decimal(0)
    for _, value in equity:
        level = capital + value
        peak = max(peak, level)
        worst = max(worst, (peak - level) / peak)
    return worst


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _totals(trades: list[ClosedTrade]) -> tuple[Decimal, Decimal, Decimal]:
    """Price PnL, fees paid and funding received over the trades."""
    return tuple(sum((getattr(t, k) for t in trades), Decimal(0)) for k in ("price_pnl_usd", "fees_usd", "funding_usd"))


def summary(result: BacktestResult, capital: Decimal) -> dict[str, str]:
    trades = result.trades
    price, fees, funding = _totals(trades)
    pnl = price - fees + funding
    returns = daily_returns(result.equity, capital)
    years = len(returns) / 365 if returns else 0
    wins = sum(1 for t in trades if t.pnl_usd > 0)
    used = [float(e / capital) for _, e in result.exposure]
    past = [-t.closest_to_liquidation for t in trades if t.liquidated]
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    return {
        "trades": str(len(trades)),
        "pnl_usd": f"{pnl:.2f}",
        "price_pnl_usd": f"{price:.2f}",
        "fees_usd": f"{fees:.2f}",
        "funding_usd": f"{funding:.2f}",
        "win_rate": f"{wins / len(trades):.4f}" if trades else "-",
        "liquidations": str(len(past)),
        "closest_to_liquidation": f"{min((t.closest_to_liquidation for t in trades), default=Decimal(1)):.4f}",
        "past_liquidation": f"{max(past):.4f}" if past else "-",
        "sharpe": fmt(sharpe(returns)),
        "sortino": fmt(sortino(returns)),
        "max_drawdown": f"{max_drawdown(result.equity, capital):.4f}",
        "utilization": f"{sum(used) / len(used):.4f}" if used else "0",
        "apr": f"{float(pnl / capital) / years:.4f}" if years else "-",
        "days": str(len(returns)),
        "settlements": str(result.settlements),
        "bars": str(result.bars),
        "gaps": str(len(result.gaps)),
        "entries_skipped": ", ".join(f"{reason} {n}" for reason, n in sorted(result.skipped.items())) or "-",
        "stopped": _utc(result.stopped_ms) if result.stopped_ms is not None else "-",
    }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def render(result: BacktestResult, capital: Decimal, setup: list[tuple[str, str]] = ()) -> str:
    """The report as text: the setup it was measured against (label, value), then the figures."""
    s = summary(result, capital)
    price, fees, funding = _totals(result.trades)
    pnl = price - fees + funding
    past = (f" (seen up to {Decimal(s['past_liquidation']):.2%} past a liquidation price: how far the price went "
            "between two observations is not known; --bars shows it)") if s["past_liquidation"] != "-" else ""
    lines = [f"{label:<15} {value}" for label, value in setup] + [
        f"trades          {s['trades']} (win rate {s['win_rate']}); liquidations {s['liquidations']}{past}, closest "
        f"approach {s['closest_to_liquidation']} of the mark",
        f"PnL             ${pnl:,.2f} = price ${price:,.2f} - fees ${fees:,.2f} + funding ${funding:,.2f}",
        f"risk            Sharpe {s['sharpe']}, Sortino {s['sortino']}, max drawdown {s['max_drawdown']}",
        f"returns         on ${capital:,.2f}: utilization {s['utilization']}, APR {s['apr']} over {s['days']} days",
    ]
    if result.settlements or result.bars:
        lines.append(f"data            {result.settlements:,} settlements, {result.bars:,} bars used, "
                     f"{_count(len(result.gaps), 'gap')}"
                     + "".join(f"; {g.symbol} at {g.venue} from {_utc(g.last_ms)} to "
                               f"{_utc(g.next_ms) if g.next_ms else 'its end'}" for g in result.gaps[:5])
                     + (f"; {len(result.gaps) - 5} more in gaps.csv" if len(result.gaps) > 5 else ""))
    if result.skipped:
        lines.append(f"not entered     {s['entries_skipped']}")
    if result.stopped_ms is not None:
        lines.append(f"stopped         {s['stopped']}: equity reached the stop; nothing was opened after")
    return "\n".join(lines)


def trades_csv(trades: list[ClosedTrade]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["symbol", "long_venue", "short_venue", "opened_utc", "closed_utc", "qty", "notional_usd",
                     "fees_usd", "funding_usd", "price_pnl_usd", "pnl_usd", "closest_to_liquidation", "liquidated",
                     "reason"])
    for t in trades:
        writer.writerow([t.symbol, t.long_venue, t.short_venue, _utc(t.opened_ms), _utc(t.closed_ms), t.qty,
                         f"{t.notional_usd:.2f}", f"{t.fees_usd:.8f}", f"{t.funding_usd:.8f}",
                         f"{t.price_pnl_usd:.8f}", f"{t.pnl_usd:.8f}", f"{t.closest_to_liquidation:.4f}",
                         int(t.liquidated), t.reason])
    return out.getvalue()


def gaps_csv(gaps: list[Gap]) -> str:
    """Each venue's missing settlements: the last one before, and the next (empty: its history ends)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["symbol", "venue", "last_settlement_utc", "next_settlement_utc"])
    for g in gaps:
        writer.writerow([g.symbol, g.venue, _utc(g.last_ms), _utc(g.next_ms) if g.next_ms else ""])
    return out.getvalue()
