"""The metrics report (seed task 15): opportunities, trades, success rate, p50/p95/p99 of every
stage, and the edge cases, from the workers' metrics snapshots in Redis (`metrics:{service}`,
shared/control.py). `arb report` prints it for a running or finished system, and `arb up`
every 60 s and at the end.

Percentiles come from the histograms' buckets, interpolated as Prometheus's
histogram_quantile does, so the report and the dashboards agree.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from shared.metrics import LATENCY_BUCKETS_S, bucket_quantile

STAGES = [  # (histogram, what it times), in pipeline order; the seed's targets in the README
    ("arb_ingest_ws_to_stream_seconds", "WebSocket -> queue (XADD acked)"),
    ("arb_strategy_queue_seconds", "queue -> strategy"),
    ("arb_strategy_decision_seconds", "opportunity detection"),
    ("arb_strategy_receipt_to_decision_seconds", "receive -> decision"),
    ("arb_executor_signal_to_order_seconds", "signal -> order sent"),
    ("arb_executor_order_ack_seconds", "order sent -> venue's answer"),
    ("arb_executor_end_to_end_seconds", "exchange stamp -> venue's answer"),
    ("arb_executor_hedge_seconds", "leg-out -> hedged"),
]
TRACED = [  # one frame's path to the order it caused, per trade; the stages' means add up to the whole
    ("arb_trace_frame_to_order_seconds", "venue frame -> first order sent"),
    ("arb_trace_frame_to_strategy_seconds", "  frame -> strategy (parse, XADD, read)"),
    ("arb_trace_strategy_to_signal_seconds", "  strategy -> signal written"),
    ("arb_trace_signal_to_executor_seconds", "  signal -> executor"),
    ("arb_trace_executor_to_order_seconds", "  executor -> order sent"),
]
EDGE_CASES = [("arb_executor_partial_fills_total", "partial fills"),
              ("arb_executor_cancellations_total", "cancellations"),
              ("arb_executor_timeouts_total", "timeouts"),
              ("arb_executor_emergency_closes_total", "emergency closes"),
              ("arb_executor_leg_outs_total", "leg-outs"),
              ("arb_executor_order_rejections_total", "venue refusals"),
              ("arb_ingest_events_dropped_total", "market events dropped")]


@dataclass
class Samples:
    """Every worker's snapshot, merged: sums of counters and gauges, buckets added per bound."""

    values: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[str, dict[float, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    services: dict[str, int] = field(default_factory=dict)  # service -> snapshot time (ms)

    def add(self, service: str, snapshot: dict) -> None:
        self.services[service] = snapshot.get("ts_ms", 0)
        for samples in snapshot.get("families", {}).values():
            for name, labels, value in samples:
                if name.endswith("_bucket"):
                    self.buckets[name.removesuffix("_bucket")][float(labels["le"])] += value
                else:
                    self.values[name] += value

    def quantile(self, histogram: str, q: float) -> float | None:
        """The q-quantile in seconds; inf when it lies above the highest finite bucket (only a
        lower bound is known there)."""
        buckets = self.buckets.get(histogram, {})
        finite = [b for b in buckets if b != math.inf]
        if finite and buckets.get(math.inf, 0) and q * buckets[math.inf] > buckets[max(finite)]:
            return math.inf
        return bucket_quantile(q, list(buckets.items()))


async def read_samples(client: aioredis.Redis, prefix: str = "") -> Samples:
    out = Samples()
    async for key in client.scan_iter(match=f"{prefix}metrics:*", count=100):
        if raw := await client.get(key):
            try:
                snapshot = json.loads(raw)
            except ValueError:  # some other program's metrics:* key on a shared Redis
                continue
            if isinstance(snapshot, dict) and isinstance(snapshot.get("families"), dict):
                out.add(key.removeprefix(f"{prefix}metrics:"), snapshot)
    return out


def _ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds == math.inf:
        return f">{LATENCY_BUCKETS_S[-1] * 1000:g}"
    return f"{seconds * 1000:.3f}" if seconds < 0.01 else f"{seconds * 1000:.1f}"


def render(s: Samples, trades: bool = True) -> str:
    """The report; without `trades` (arb up's summary, which has its own), no trades and PnL lines."""
    v = s.values
    ok, failed = v["arb_executor_trades_successful_total"], v["arb_executor_trades_failed_total"]
    rate = f"{ok / (ok + failed):.1%}" if ok + failed else "-"
    lines = [
        f"opportunities  {v['arb_strategy_opportunities']:.0f} in the latest scan; "
        f"{v['arb_strategy_signals_total']:.0f} signals written",
        *([f"trades         {v['arb_executor_trades_executed_total']:.0f} executed: {ok:.0f} successful, "
           f"{failed:.0f} failed (success rate {rate}); {v['arb_executor_active_trades']:.0f} open",
           f"PnL            {'-' if v['arb_executor_cumulative_pnl_usd'] < 0 else ''}"
           f"${abs(v['arb_executor_cumulative_pnl_usd']):,.2f}"] if trades else []),
        "edge cases     " + ", ".join(f"{label} {v[name]:.0f}" for name, label in EDGE_CASES),
        "",
        f"{'stage':38s} {'count':>9s} {'mean ms':>9s} {'p50 ms':>9s} {'p95 ms':>9s} {'p99 ms':>9s}",
    ]
    for name, label in [*STAGES, ("", "traced path, per trade:"), *TRACED]:
        if not name:
            lines.append(label)
            continue
        count = v.get(name + "_count", 0.0)
        mean = v.get(name + "_sum", 0.0) / count if count else None
        lines.append(f"{label:38s} {count:9.0f} {_ms(mean):>9s} " + " ".join(f"{_ms(s.quantile(name, q)):>9s}"
                                                                           for q in (0.5, 0.95, 0.99)))
    return "\n".join(lines)
