"""Synthetic test mode (seeds/synthetic-test-mode-design.md section 2), pure.

From one venue's real top of book: mid = (bid + ask) / 2, a long price at mid x (1 - spread/2)
and a short price at mid x (1 + spread/2), both on that venue (`bybit` and `bybit_synthetic`).
The dashboard's qualification, kept exactly:

1. funding: |funding delta| > 0.0001 (0.01 % per 8 h);
2. depth, estimated from the spread (> 200 bps: $5,000; > 100 bps: $10,000; else $50,000),
   must be >= 2 x the position on both legs;
3. confidence = spread score x 0.5 + funding score x 0.3, truncated to an integer, where the
   spread score is min(spread / 50 bps, 1) x 100 and the funding score min(|delta| / 0.01, 1) x
   100 (no order-book, open-interest or funding-gravity boost: none is known here); >= 70;
4. profit = spread - both legs' taker fees - 10 bps funding cost - slippage > 0 bps.

With the seed's 15 bps and 0.0001 nothing qualifies: the funding check fails (0.0001 is not
above 0.0001); confidence is min(15 / 50, 1) x 100 x 0.5 + min(0.0001 / 0.01, 1) x 100 x 0.3
= 15 + 0.3 = 15 (< 70); and the profit is 15 - 11 - 10 - 2.06 = -8.06 bps. Confidence 70
needs both scores: a spread of 50 bps or more gives 50, and then the funding delta must give
20, i.e. at least 0.0067. The defaults are therefore 50 bps and 0.01: confidence 50 + 30 =
80, profit 50 - 11 - 10 - 2.06 = 26.94 bps on a $1,000 position.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.strategy.costs import slippage_bps, taker_fee_bps

LONG_VENUE, SHORT_VENUE = "bybit", "bybit_synthetic"
FUNDING_MIN = 0.0001
CONFIDENCE_MIN = 70
FUNDING_COST_BPS = 10.0


@dataclass(frozen=True)
class SyntheticQuote:
    """The synthetic opportunity of one symbol, with every number of its qualification."""

    symbol: str
    long_price: float
    short_price: float
    spread_bps: float
    funding_delta: float
    depth_usd: float
    confidence: int
    fees_bps: float
    slippage_bps: float
    profit_bps: float
    failed: tuple[str, ...]  # the constraints it fails, in words; empty when it qualifies
    reasons: tuple[str, ...] = ()  # the same as keys: funding, depth, confidence, profit

    @property
    def qualifies(self) -> bool:
        return not self.failed


def estimated_depth_usd(spread_bps: float) -> float:
    if spread_bps > 200.0:
        return 5_000.0
    if spread_bps > 100.0:
        return 10_000.0
    return 50_000.0


def dashboard_confidence(spread_bps: float, funding_delta: float) -> int:
    spread_score = min(spread_bps / 50.0, 1.0) * 100.0
    funding_score = min(abs(funding_delta) / 0.01, 1.0) * 100.0
    return int(spread_score * 0.5 + funding_score * 0.3)


def synthetic_costs_bps(spread_bps: float, position_usd: float) -> tuple[float, float]:
    """(fees, slippage) of a synthetic opportunity, in bps: both legs' taker fees, and the
    slippage of `position_usd` into the depth estimated from the spread."""
    return taker_fee_bps(LONG_VENUE) + taker_fee_bps(SHORT_VENUE), slippage_bps(position_usd,
                                                                                estimated_depth_usd(spread_bps))


def synthetic_profit_bps(spread_bps: float, position_usd: float) -> float:
    """The dashboard's projected profit: spread - fees - 10 bps funding cost - slippage. The
    funding delta is not income here: the dashboard counts funding as a cost."""
    fees, slippage = synthetic_costs_bps(spread_bps, position_usd)
    return spread_bps - fees - FUNDING_COST_BPS - slippage


def synthetic_quote(symbol: str, bid: float, ask: float, spread_bps: float, funding_delta: float,
                    position_usd: float) -> SyntheticQuote:
    mid = (bid + ask) / 2.0
    depth = estimated_depth_usd(spread_bps)
    confidence = dashboard_confidence(spread_bps, funding_delta)
    fees, slippage = synthetic_costs_bps(spread_bps, position_usd)
    profit = synthetic_profit_bps(spread_bps, position_usd)
    failed: dict[str, str] = {}
    if not abs(funding_delta) > FUNDING_MIN:
        failed["funding"] = f"funding delta {funding_delta:g} is not above {FUNDING_MIN:g} per 8 h"
    if depth < 2.0 * position_usd:
        failed["depth"] = f"estimated depth ${depth:,.0f} is below 2 x the ${position_usd:,.0f} position"
    if confidence < CONFIDENCE_MIN:
        failed["confidence"] = f"confidence {confidence} is below {CONFIDENCE_MIN}"
    if not profit > 0.0:
        failed["profit"] = (f"projected profit {profit:.2f} bps = {spread_bps:g} spread - {fees:g} fees - "
                            f"{FUNDING_COST_BPS:g} funding - {slippage:.2f} slippage is not above 0")
    return SyntheticQuote(symbol=symbol, long_price=mid * (1.0 - spread_bps / 20_000.0),
                          short_price=mid * (1.0 + spread_bps / 20_000.0), spread_bps=spread_bps,
                          funding_delta=funding_delta, depth_usd=depth, confidence=confidence, fees_bps=fees,
                          slippage_bps=slippage, profit_bps=profit, failed=tuple(failed.values()),
                          reasons=tuple(failed))


def never_qualifies(spread_bps: float, funding_delta: float, position_usd: float) -> tuple[str, ...]:
    """The constraints these settings fail whatever the market does (empty if they can pass):
    nothing in the qualification depends on the price, so one evaluation decides."""
    return synthetic_quote("ANY", 100.0, 100.0, spread_bps, funding_delta, position_usd).failed
