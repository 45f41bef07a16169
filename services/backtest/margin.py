"""Isolated margin and liquidation (pure, exact), after Bybit's USDT-contract rules.

A position's tier is the first risk-limit tier whose limit covers its value (entry x qty).
Initial margin = value / leverage; maintenance margin = value x MMR - the tier's deduction.
The position is liquidated when the mark reaches

    long:  entry - (initial margin - maintenance margin) / qty
    short: entry + (initial margin - maintenance margin) / qty

(Bybit's "Liquidation Price (USDT Contract)", without added margin.) The tiers are what
`/v5/market/risk-limit` says for the symbol (`tiers_from_risk_limit`); fees to close are not
in the formula, which makes it a little late, never early.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal


class MarginError(ValueError):
    """A position no tier covers, a leverage above the tier's maximum, or bad tier data."""


@dataclass(frozen=True)
class RiskTier:
    limit_usd: Decimal  # position value up to which the tier applies
    mmr: Decimal  # maintenance margin rate, a fraction (0.005 = 0.5 %)
    max_leverage: Decimal
    mm_deduction: Decimal = Decimal(0)


def tiers_from_risk_limit(rows: Iterable[dict]) -> list[RiskTier]:
    """`/v5/market/risk-limit` list entries of one symbol, lowest limit first. Their
    maintenanceMargin is a fraction ("0.005")."""
    try:
        tiers = [RiskTier(Decimal(r["riskLimitValue"]), Decimal(str(r["maintenanceMargin"])),
                          Decimal(r["maxLeverage"]), Decimal(r.get("mmDeduction") or 0)) for r in rows]
    except (KeyError, ArithmeticError, TypeError) as exc:
        raise MarginError(f"not a risk-limit entry: {exc}") from None
    return sorted(tiers, key=lambda t: t.limit_usd)


DEFAULT_TIERS = [RiskTier(Decimal(10) ** 9, Decimal("0.005"), Decimal(100))]  # one tier at 0.5 % MMR


def tiers_by_symbol(answer: dict) -> dict[str, list[RiskTier]]:
    """A saved `/v5/market/risk-limit` answer (its `result`, or the whole body): symbol -> its tiers."""
    rows = (answer.get("result") or answer).get("list")
    if not isinstance(rows, list):
        raise MarginError("not a /v5/market/risk-limit answer: no list")
    by_symbol: dict[str, list[dict]] = {}
    for row in rows:
        by_symbol.setdefault(str(row.get("symbol")), []).append(row)
    return {symbol: tiers_from_risk_limit(group) for symbol, group in by_symbol.items()}


def tier_for(value: Decimal, tiers: Sequence[RiskTier]) -> RiskTier:
    for tier in tiers:
        if value <= tier.limit_usd:
            return tier
    raise MarginError(f"a position of ${value} is above the highest risk limit ${tiers[-1].limit_usd}")


def liquidation_price(side: str, entry: Decimal, qty: Decimal, leverage: Decimal,
                      tiers: Sequence[RiskTier]) -> Decimal:
    """The mark at which an isolated position of `qty` (> 0) opened at `entry` is liquidated."""
    if qty <= 0 or entry <= 0 or leverage <= 0:
        raise MarginError("qty, entry and leverage must be positive")
    value = entry * qty
    tier = tier_for(value, tiers)
    if leverage > tier.max_leverage:
        raise MarginError(f"leverage {leverage} is above the tier's maximum {tier.max_leverage}")
    cushion = (value / leverage - (value * tier.mmr - tier.mm_deduction)) / qty
    return entry - cushion if side == "long" else entry + cushion


def crossed(side: str, liq: Decimal, low: Decimal, high: Decimal) -> bool:
    """Whether a bar's range reached the liquidation price."""
    return low <= liq if side == "long" else high >= liq


def distance(side: str, liq: Decimal, mark: Decimal) -> Decimal:
    """How far the mark is from liquidation, as a fraction of the mark (0 or less: there)."""
    return (mark - liq) / mark if side == "long" else (liq - mark) / mark
