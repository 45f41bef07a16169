"""`arb status`, `arb trades` and `arb top`: what Redis holds, as text for a terminal.

`read_view` reads everything in one go (the read models of the executor, the strategy's
latest opportunities, the latency monitor's hashes, the workers' health keys); the `render_*`
functions are pure, so what they print is tested against what was written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal

import redis.asyncio as aioredis

from shared.venues import NAMES


@dataclass
class View:
    portfolio: dict[str, str] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)  # strategy:marks: the open trades valued now
    active: list[dict[str, str]] = field(default_factory=list)
    closed: list[dict[str, str]] = field(default_factory=list)
    opportunities: list[dict[str, str]] = field(default_factory=list)
    latency: dict[str, dict[str, str]] = field(default_factory=dict)
    health: dict[str, dict] = field(default_factory=dict)
    now_ms: int = 0


async def _hashes(client: aioredis.Redis, pattern: str) -> list[dict[str, str]]:
    keys = sorted([k async for k in client.scan_iter(match=pattern, count=1000)])
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return [h for h in await pipe.execute() if h] if keys else []


async def read_view(client: aioredis.Redis, prefix: str = "", closed: bool = False) -> View:
    """Everything the views show (closed trades only when asked: there may be many)."""
    s = f"{prefix}strategy:"
    view = View(now_ms=int(time.time() * 1000))
    view.portfolio = await client.hgetall(s + "portfolio:state")
    view.marks = await client.hgetall(s + "marks")
    view.active = sorted(await _hashes(client, s + "trades:active:*"), key=lambda t: int(t.get("entry_time", 0)))
    if closed:
        view.closed = sorted(await _hashes(client, s + "trades:closed:*"), key=lambda t: int(t.get("exit_time", 0)))
    if latest := await client.get(s + "opportunities:latest"):
        view.opportunities = [json.loads(x) for x in await client.lrange(latest, 0, -1)]
    for venue in NAMES:
        if fields := await client.hgetall(f"{s}latency:{venue}"):
            view.latency[venue] = fields
    async for key in client.scan_iter(match=f"{prefix}health:*", count=100):
        if value := await client.get(key):
            view.health[key.removeprefix(f"{prefix}health:")] = json.loads(value)
    return view


def money(text: str | None) -> str:
    value = Decimal(text or 0).quantize(Decimal("0.01"))  # to the cent first: no -$0.00
    return f"-${-value:,.2f}" if value < 0 else f"${abs(value):,.2f}"  # abs: -0.00 is $0.00, not $-0.00


def _pct(text: str | None) -> str:
    return f"{float(text):.1%}" if text else "-"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def render_portfolio(v: View) -> list[str]:
    p = v.portfolio
    if not p:
        return ["portfolio: nothing yet (no executor has written strategy:portfolio:state)"]
    trading = f"HALTED ({p.get('halt_reason')}): {p.get('halt_detail')}" if p.get("trading") == "halted" else "on"
    return [
        f"trading        {trading}",
        f"capital        {money(p.get('available_capital'))} available of {money(p.get('starting_capital'))}; "
        f"{money(p.get('total_open_positions'))} in {p.get('active_trades', '0')} active trades "
        f"(utilization {_pct(p.get('utilization'))})",
        f"PnL            {money(p.get('cumulative_pnl'))} over {p.get('closed_trades', '0')} closed trades "
        f"(fees {money(p.get('fees_paid'))}, funding {money(p.get('funding_paid'))})",
        f"win rate       {_pct(p.get('win_rate'))} ({p.get('win_count', '0')} won, {p.get('loss_count', '0')} lost)",
        f"signals        {signal_counts(p)}",
        f"leg-outs       {p.get('leg_out_count', '0')} (loss {money(p.get('leg_out_total_loss'))}); "
        f"emergency closes {p.get('emergency_closes', '0')}"
        + (f"; {n} closed outside this system" if (n := p.get("closed_outside_trades", "0")) != "0" else ""),
        *render_marks(v),
    ]


def signal_counts(p: dict[str, str]) -> str:
    """The executor's signals, as every view shows them (the counts of strategy:portfolio:state,
    whose daily parts are strategy:metrics:daily)."""
    taken, rejected = int(p.get("signals_taken", 0)), int(p.get("rejected_signals", 0))
    return (f"{taken + rejected:,} read: {taken:,} taken, {rejected:,} rejected; "
            f"{int(p.get('rejected_trades', 0)):,} taken were never filled")


def render_marks(v: View) -> list[str]:
    m = v.marks
    if not m:
        return []
    unpriced = int(m.get("unpriced_trades", 0))
    return [f"unrealised     {money(m.get('unrealised_pnl_usd'))} on {m.get('open_trades', '0')} open trades"
            f"{f' ({unpriced} not priced yet)' if unpriced else ''}; equity {money(m.get('equity_usd'))} "
            f"(marked {_age(v, m.get('ts_ms'))} ago)"]


def _age(v: View, ms: str | None) -> str:
    if not ms:
        return "-"
    s = max(0, (v.now_ms - int(ms)) // 1000)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render_trades(v: View, closed: bool = False, limit: int = 20) -> list[str]:
    trades = v.closed[-limit:] if closed else v.active[:limit]
    if not trades:
        return [f"no {'closed' if closed else 'active'} trades"]
    if closed:
        rows = [[t.get("trade_id", ""), t.get("symbol", ""), f"{t.get('long_exchange')}/{t.get('short_exchange')}",
                 t.get("qty", ""), money(t.get("position_size_usd")), t.get("outcome", ""), t.get("close_reason", ""),
                 f"{t.get('entry_long_price', '-')}/{t.get('entry_short_price', '-')}",
                 f"{t.get('exit_long_price', '-')}/{t.get('exit_short_price', '-')}",
                 money(t.get("projected_profit_usd")), money(t.get("price_pnl_usd")), money(t.get("fees_usd")),
                 money(t.get("funding_usd")), money(t.get("actual_profit_usd")), t.get("leg_out_events", "0")]
                for t in trades]
        return _table(rows, ["trade", "symbol", "long/short", "qty", "size", "outcome", "reason", "entry long/short",
                             "exit long/short", "projected", "price", "fees", "funding", "PnL", "leg-outs"])
    def now(t: dict[str, str], name: str) -> str | None:
        return v.marks.get(f"{t.get('trade_id')}:{name}")

    rows = [[t.get("trade_id", ""), t.get("symbol", ""), f"{t.get('long_exchange')}/{t.get('short_exchange')}",
             t.get("status", ""), t.get("qty", ""), money(t.get("position_size_usd")),
             f"{float(t.get('entry_spread_bps', 0)):.1f}", f"{float(x):.1f}" if (x := now(t, "spread_bps")) else "-",
             money(t.get("projected_profit_usd")), money(x) if (x := now(t, "unrealised_pnl_usd")) else "-",
             _age(v, t.get("entry_time"))] for t in trades]
    return _table(rows, ["trade", "symbol", "long/short", "status", "qty", "size", "entry bps", "now bps",
                         "projected", "unrealised", "age"])


def render_opportunities(v: View, n: int = 5) -> list[str]:
    if not v.opportunities:
        return ["no opportunities in the last minute"]
    rows = [[o.get("symbol", ""), f"{o.get('long_venue')}->{o.get('short_venue')}",
             f"{float(o.get('spread_bps', 0)):.1f}", o.get("confidence", ""),
             f"${float(o.get('projected_profit_after_slippage_usd', 0)):.2f}"] for o in v.opportunities[:n]]
    return _table(rows, ["symbol", "long->short", "spread bps", "confidence", "profit"])


def render_latency(v: View) -> list[str]:
    if not v.latency:
        return ["no latency readings (is `arb latency` running?)"]
    rows = [[venue, f"{float(x['latency_ms']):.1f}" if x.get("latency_ms") else "-",
             f"{float(x['rtt_ms']):.1f}" if x.get("rtt_ms") else "-",
             "STALE " + x.get("reason", "") if x.get("is_stale") == "1" else "ok",
             _age(v, x.get("local_time_ms"))] for venue, x in sorted(v.latency.items())]
    return _table(rows, ["venue", "latency ms", "rtt ms", "state", "updated"])


def render_health(v: View) -> list[str]:
    if not v.health:
        return ["no worker has a health key"]
    return ["workers        " + ", ".join(f"{name} (pid {h.get('pid')}, up {_age(v, str(h.get('started_ms')))})"
                                          for name, h in sorted(v.health.items()))]


def render_status(v: View) -> str:
    return "\n".join([
        *render_portfolio(v), *render_health(v),
        "", "active trades", *render_trades(v),
        "", "top opportunities", *render_opportunities(v),
        "", "exchange latency", *render_latency(v),
    ])
