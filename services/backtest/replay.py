"""The spread strategy over a recording of the market-data streams (pure, deterministic): the
live strategy core and the live executor core with paper fills, driven by the recorded
events on a simulated clock (each event's receive time). A backtest is a replay.

A recording (`arb record`) is JSON lines: first the venues' order grids, then one line per
stream entry, as `{"fields": {...}}` in the stream's own field format (shared/codec.py).
Every venue in a recording counts as fresh for the latency constraint (the recording holds
no latency verdicts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from services.backtest.funding_arb import BacktestResult, ClosedTrade
from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, SignalIn
from services.executor.paper import PaperVenue, market_event, route
from services.executor.sizing import Grid
from services.strategy.core import StrategyCore
from services.strategy.scanner import ScanConfig
from services.strategy.signals import SignalGate, pair_of
from shared.codec import CodecError, from_fields
from shared.events import MarketEvent


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file and line."""


def grid_line(grids: dict[tuple[str, str], Grid]) -> str:
    return json.dumps({"grids": {f"{v}:{s}": [str(g.tick), str(g.lot), str(g.min_qty)]
                                 for (v, s), g in sorted(grids.items())}})


def read_recording(path: str | Path) -> tuple[dict[tuple[str, str], Grid], Iterator[MarketEvent], list[int]]:
    """The grids, the events (oldest first as recorded), and a one-item list that ends up
    holding how many entries were skipped as not market events."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror}") from None
    try:
        head = json.loads(lines[0])["grids"] if lines else None
    except (ValueError, KeyError, TypeError):
        head = None
    if head is None:
        raise RecordingError(f"{path}:1: not a recording (the first line holds the grids; see arb record)")
    grids = {}
    for key, (tick, lot, min_qty) in head.items():
        venue, _, symbol = key.partition(":")
        grids[venue, symbol] = Grid(Decimal(tick), Decimal(lot), Decimal(min_qty))
    skipped = [0]

    def events() -> Iterator[MarketEvent]:
        for line in lines[1:]:
            if not line.strip():
                continue
            try:
                event = from_fields(json.loads(line)["fields"])
            except (ValueError, KeyError, TypeError, CodecError):
                skipped[0] += 1  # a line cut short by a crash while recording, say
                continue
            yield event
    return grids, events(), skipped


@dataclass
class ReplayResult:
    core: ExecutorCore
    facts: list[f.AnyFact] = field(default_factory=list)
    events: int = 0
    signals: int = 0

    def backtest(self) -> BacktestResult:
        """The closed trades, the equity after each close and the capital reserved over time,
        in the shape the results and charts take."""
        out = BacktestResult()
        reserved: dict[str, Decimal] = {}
        opened: dict[str, f.SignalTaken] = {}
        equity = Decimal(0)
        for fact in self.facts:
            if isinstance(fact, f.SignalTaken):
                opened[fact.trade_id] = fact
                reserved[fact.trade_id] = fact.size_usd
            elif isinstance(fact, f.TradeClosed):
                t = opened.pop(fact.trade_id)
                reserved.pop(fact.trade_id, None)
                equity += fact.pnl_usd
                out.equity.append((fact.ts_ms, equity))
                out.trades.append(ClosedTrade(
                    t.symbol, t.long_venue, t.short_venue, t.ts_ms, fact.ts_ms, t.qty, t.size_usd, fact.fees_usd,
                    -fact.funding_usd, fact.pnl_usd + fact.fees_usd + fact.funding_usd, fact.pnl_usd, Decimal(1),
                    False, f"{fact.outcome}:{fact.reason}"))
            else:
                continue
            out.exposure.append((fact.ts_ms, sum(reserved.values(), Decimal(0))))
        return out


def run(events: Iterable[MarketEvent], grids: dict[tuple[str, str], Grid], config: ExecConfig,
        scan: ScanConfig, gate: SignalGate) -> ReplayResult:
    strategy = StrategyCore("cross", scan, gate)
    core = ExecutorCore(config, dict(grids))
    paper = PaperVenue(core.market)
    result = ReplayResult(core)
    pairs: dict[str, tuple[str, str, str]] = {}
    now = 0
    for event in events:
        now = max(now, event.receive_ts_us // 1000)  # the simulated clock never runs back
        result.events += 1
        strategy.stale.setdefault(event.venue, False)
        out = market_event(core, paper, event, now)
        for signal in strategy.on_event(event, now):
            result.signals += 1
            o = signal.opportunity
            out += route(core, paper, core.on_signal(SignalIn(
                id=signal.id, mode="cross", symbol=o.symbol, long_venue=o.long_venue, short_venue=o.short_venue,
                spread_bps=o.spread_bps, funding_delta_8h=o.funding_delta_8h, confidence=o.confidence,
                depth_long_usd=o.depth_long_usd, depth_short_usd=o.depth_short_usd, created_ms=now), now), now)
        for fact in out:  # what the strategy service learns from the facts stream
            if isinstance(fact, f.SignalTaken):
                pairs[fact.trade_id] = (fact.symbol, fact.signal_long_venue, fact.signal_short_venue)
                strategy.gate.trade_opened(pairs[fact.trade_id])
            elif isinstance(fact, f.TradeClosed) and fact.trade_id in pairs:
                strategy.gate.trade_closed(pairs.pop(fact.trade_id))
            elif isinstance(fact, f.SignalRejected) and (pair := pair_of(fact.signal_id)) is not None:
                strategy.gate.pending.pop(pair, None)
        result.facts += out
    result.facts += route(core, paper, core.shutdown(now), now)  # the end of the recording: close what is open
    for _ in range(100):  # let the exits finish on the clock: limits, then market after the leg timeout
        if not core.trades:
            break
        deadline = core.next_deadline_ms()
        now = max(now + 1, deadline or now + config.leg_timeout_ms)
        result.facts += route(core, paper, core.step(now), now)
    return result
