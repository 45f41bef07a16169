"""The executor's facts, declared once: every one is an entry of `strategy:events`.

The executor's state is the fold of these facts (`core.ExecutorCore.apply`), so a restart
replays the stream and arrives where it was. A fact is written before what it describes is
sent: `OrderPlaced` is the order the executor is about to send (its `link_id`, derived from
the trade and leg, is the venue's idempotency key), `CancelRequested` the cancel.

Money and sizes are Decimal (exact); sizes are in base units (BTC for BTCUSDT); times are
Unix epoch milliseconds (`_ms`). In the stream every field is text, `type` names the fact and
`v` the schema version.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

SCHEMA_VERSION = 1

Leg = Literal["long", "short"]
Purpose = Literal["entry", "hedge", "exit", "unwind"]


class Fact(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    ts_ms: int


class SignalTaken(Fact, tag="signal_taken"):
    """A signal became a trade: its plan, and the capital it reserves."""

    signal_id: str
    trade_id: str
    mode: str
    symbol: str
    long_venue: str  # where each leg trades (synthetic mode: both on one venue, hedge mode)
    short_venue: str
    signal_long_venue: str  # as the strategy named them (synthetic mode: bybit / bybit_synthetic)
    signal_short_venue: str
    harder: Leg  # the leg sent first
    qty: Decimal  # base units, on both legs' lot grids
    size_usd: Decimal  # the capital reserved
    long_price: Decimal  # the limit prices of the entry orders
    short_price: Decimal
    entry_spread_bps: float  # as the signal saw it
    funding_delta_8h: float
    projected_profit_usd: Decimal  # at this size, after fees, slippage and one funding settlement
    confidence: int
    signal_ms: int
    source: str | None = None  # "{stream} {entry id}": the market event that decided the signal
    frame_us: int | None = None  # when the ingestor received that event's venue frame (Unix us)


class SignalRejected(Fact, tag="signal_rejected"):
    signal_id: str
    symbol: str
    reason: str  # a short code, counted in metrics
    detail: str = ""


class OrderPlaced(Fact, tag="order_placed"):
    """An order the executor sends now (written first, so a crash cannot forget it)."""

    trade_id: str
    link_id: str  # orderLinkId: <= 36 characters of [A-Za-z0-9_-], one per order ever
    leg: Leg
    purpose: Purpose
    venue: str
    symbol: str
    side: Literal["Buy", "Sell"]
    order_type: Literal["Limit", "Market"]
    qty: Decimal
    price: Decimal | None = None  # the limit; None for a market order
    reduce_only: bool = False
    position_idx: int = 0  # 1 long / 2 short on a venue in hedge mode, else 0
    touch: Decimal | None = None  # the far touch on its venue when sent: the market it was priced from


class CancelRequested(Fact, tag="cancel_requested"):
    trade_id: str
    link_id: str


class OrderAcked(Fact, tag="order_acked"):
    trade_id: str
    link_id: str
    venue_order_id: str


class OrderFilled(Fact, tag="order_filled"):
    """One execution of an order (several make a partial fill)."""

    trade_id: str
    link_id: str
    fill_id: str  # the venue's execution id: a fill seen twice is applied once
    qty: Decimal
    price: Decimal
    fee: Decimal  # paid, in quote currency (a rebate is negative)
    maker: bool


class OrderClosed(Fact, tag="order_closed"):
    """The order can fill no more: cancelled, expired (IOC rest), or rejected by the venue."""

    trade_id: str
    link_id: str
    status: Literal["cancelled", "rejected"]
    reason: str = ""


class LegOut(Fact, tag="leg_out"):
    """One leg filled and the other did not within the time allowed."""

    trade_id: str
    phase: Literal["entry", "exit"]
    filled_leg: Leg
    unfilled_leg: Leg
    filled_at_ms: int
    action: Literal["hedge", "unwind"]  # market order on the unfilled leg, or close the filled one


class TradeActive(Fact, tag="trade_active"):
    trade_id: str
    long_qty: Decimal
    short_qty: Decimal
    long_avg: Decimal
    short_avg: Decimal


class ExitStarted(Fact, tag="exit_started"):
    trade_id: str
    reason: str  # funding_converged, profit_target, spread_widening, stop_loss, max_hold, delisted, shutdown, ...
    spread_bps: float  # the spread when it was decided


class FundingPaid(Fact, tag="funding_paid"):
    trade_id: str
    leg: Leg
    amount: Decimal  # paid; negative when received
    source_id: str | None = None  # live: the venue's ledger entry it is (part of): never counted twice


class PositionGone(Fact, tag="position_gone"):
    """The venue no longer holds (part of) a leg the facts hold: it was closed outside this system
    (by hand at the venue, a liquidation, or a simulator that restarted empty). Found when the
    executor compares the venue's positions with its facts after a restart."""

    trade_id: str
    leg: Leg
    qty: Decimal  # how much of the leg is gone, base units (> 0)
    price: Decimal  # what it is taken to have closed at
    price_source: str  # touch (a fresh quote when it was found), entry (no fresh price: no price PnL)
    detail: str = ""


class TradeClosed(Fact, tag="trade_closed"):
    """The trade is flat on both legs: what it made, and the capital it gives back."""

    trade_id: str
    outcome: Literal["closed", "rejected", "emergency_closed"]
    reason: str
    pnl_usd: Decimal  # all of it: prices, fees and funding
    fees_usd: Decimal
    funding_usd: Decimal
    leg_out_loss_usd: Decimal  # the part of pnl_usd lost to leg-outs (hedges and unwinds)
    size_usd: Decimal  # the capital released


class TradingHalted(Fact, tag="trading_halted"):
    """No new signals from here on: a safety limit was reached, or the operator said stop."""

    reason: str  # daily_loss, weekly_loss, monthly_loss, failures, success_rate, latency, api_errors, manual
    detail: str
    action: Literal["close", "keep"]  # close the open trades at market, or keep them (hedged) running


class TradingResumed(Fact, tag="trading_resumed"):
    """The operator lifted the halt (`arb resume`); the safety windows start afresh."""

    by: str = "operator"


AnyFact = (SignalTaken | SignalRejected | OrderPlaced | CancelRequested | OrderAcked | OrderFilled | OrderClosed
           | LegOut | TradeActive | ExitStarted | FundingPaid | PositionGone | TradeClosed | TradingHalted
           | TradingResumed)


class FactError(ValueError):
    """A stream entry that is not a fact of this schema."""


def to_fields(fact: Fact) -> dict[str, str]:
    """Flat text fields for XADD; None is left out, booleans are 1/0."""
    out = {"v": str(SCHEMA_VERSION)}
    for name, value in msgspec.to_builtins(fact).items():
        if value is None:
            continue
        out[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


def from_fields(fields: dict[str, str]) -> AnyFact:
    if fields.get("v") != str(SCHEMA_VERSION):
        raise FactError(f"schema version {fields.get('v')!r}, expected {SCHEMA_VERSION}")
    data = {k: v for k, v in fields.items() if k != "v"}
    for name in ("maker", "reduce_only"):
        if name in data:
            data[name] = data[name] == "1"
    try:
        return msgspec.convert(data, AnyFact, strict=False)
    except msgspec.ValidationError as exc:
        raise FactError(f"{fields.get('type', '?')}: {exc}") from None
