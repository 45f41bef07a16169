"""What `arb up` shows while it runs and when it stops, read from Redis: the status line, the
summary, and the open trades by name. The counts are the executor's (strategy:portfolio:state),
rendered as `arb status` renders them, so every view says the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.views import money, signal_counts


@dataclass
class Totals:
    ticks: int = 0  # tickers written to md:{K}:tickers since this run started
    portfolio: dict[str, str] = field(default_factory=dict)
    open_trades: list[dict[str, str]] = field(default_factory=list)
    unread: str = ""  # why the final figures could not be read ('' when they were)
    before: dict[str, str] = field(default_factory=dict)  # the portfolio when this run started

    def line(self, elapsed_s: float, rate: float) -> str:
        p = self.portfolio
        halted = p.get("trading") == "halted"
        taken, rejected = int(p.get("signals_taken", 0)), int(p.get("rejected_signals", 0))
        return (f"{elapsed_s:6.0f}s | ticks {self.ticks:,} ({rate:,.0f}/s) | signals {taken:,} taken, {rejected:,} "
                f"rejected | trades open {p.get('active_trades', '0')}, closed {p.get('closed_trades', '0')} | "
                f"PnL {money(p.get('cumulative_pnl'))} | leg-outs {p.get('leg_out_count', '0')}"
                + (f" | HALTED: {p.get('halt_reason')}" if halted else ""))

    def this_run(self, name: str) -> int:
        return int(self.portfolio.get(name, 0)) - int(self.before.get(name, 0))

    def summary(self) -> list[str]:
        p = self.portfolio
        lines = [f"market data   {self.ticks:,} tickers this run"]
        if not p:
            return [*lines, "trades        none: the executor wrote no fact"]
        pnl = Decimal(p.get("cumulative_pnl") or 0) - Decimal(self.before.get("cumulative_pnl") or 0)
        lines.append(f"this run      {self.this_run('signals_taken'):,} signals taken, "
                     f"{self.this_run('rejected_signals'):,} rejected; {self.this_run('closed_trades'):,} trades "
                     f"closed, PnL {money(str(pnl))}")
        if gone := self.this_run("closed_outside_trades"):
            lines.append(f"              {gone} of them found closed outside this system: the venue no longer held "
                         "their legs (`arb trades --closed`, reason closed_outside)")
        if self.before.get("signals_taken"):
            lines.append("all runs      (this Redis's portfolio, strategy:portfolio:state)")
        return [
            *lines,
            f"signals       {signal_counts(p)}",
            f"trades        {p.get('closed_trades', '0')} closed ({p.get('win_count', '0')} won, "
            f"{p.get('loss_count', '0')} lost), {p.get('active_trades', '0')} open",
            f"PnL           {money(p.get('cumulative_pnl'))} (fees {money(p.get('fees_paid'))}, funding "
            f"{money(p.get('funding_paid'))}); capital {money(p.get('available_capital'))} available",
            f"leg-outs      {p.get('leg_out_count', '0')} (loss {money(p.get('leg_out_total_loss'))}); "
            f"emergency closes {p.get('emergency_closes', '0')}",
        ]

    def verdict(self, exit_codes: dict[str, int | None], venue_env: str) -> tuple[list[str], bool]:
        """The summary's lines, a halt and what is left open named; clean when no trade is open
        and every worker exited 0."""
        lines = self.summary()
        if self.unread:
            lines.append(f"UNKNOWN       the final figures could not be read from Redis ({self.unread}): what is open "
                         "is not known; `arb trades` shows it once Redis answers")
        if self.portfolio.get("trading") == "halted":
            lines.append(halt_text(self.portfolio))
        if self.open_trades:
            where = ("at the simulator, which has stopped" if venue_env == "sim"
                     else f"at the venue (VENUE_ENV={venue_env})")
            lines.append(f"OPEN TRADES LEFT {where}; the next `arb up` in this folder picks them up:")
            lines += [f"  {t.get('trade_id')} {t.get('symbol')} ({t.get('status')}): long {t.get('long_held')} at "
                      f"{t.get('long_exchange')}, short {str(t.get('short_held', '')).lstrip('-')} at "
                      f"{t.get('short_exchange')}" for t in self.open_trades]
        bad = {name: code for name, code in exit_codes.items() if code not in (0, None)}
        if bad:
            lines.append("exit codes    " + ", ".join(f"{n} {c}" for n, c in bad.items()))
        return lines, not self.open_trades and not bad and not self.unread


def halt_text(p: dict[str, str]) -> str:
    return (f"trading       HALTED ({p.get('halt_reason')}): {p.get('halt_detail')}. No new trades until "
            "`arb resume` (while arb up runs); the halt is kept across restarts")


async def tickers_added(client: aioredis.Redis, streams: list[str]) -> int:
    """How many entries the streams (every shard's tickers) have ever had added (their length on
    an older Redis)."""
    n = 0
    for stream in streams:
        try:
            info = await client.xinfo_stream(stream)
        except RedisError:  # no such stream yet
            continue
        n += int(info.get("entries-added", info.get("length", 0)))
    return n


async def read_totals(client: aioredis.Redis, prefix: str, totals: Totals, ticks_before: int,
                      ticker_streams: list[str]) -> Totals:
    totals.ticks = max(0, await tickers_added(client, ticker_streams) - ticks_before)
    totals.portfolio = await client.hgetall(prefix + "strategy:portfolio:state")
    return totals


async def read_open_trades(client: aioredis.Redis, prefix: str) -> list[dict[str, str]]:
    keys = sorted([k async for k in client.scan_iter(match=f"{prefix}strategy:trades:active:*", count=1000)])
    return [h for h in [await client.hgetall(k) for k in keys] if h]
