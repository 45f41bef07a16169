"""The opportunity scanner (seed section 4), pure: market state in, ranked opportunities and
counted rejections out.

Cross-exchange mode looks at every symbol and every pair of venues quoting it. Of the two
directions of a pair it keeps the one with the higher projected profit (prices and funding
decide together which venue is long), then applies the filters in the seed's order; the
first one failed is the rejection reason:

1. `hard_depth`, `hard_latency`, `hard_funding`: the hard constraints (confluence.py);
2. `spread_below_costs`: the spread must exceed the round-trip taker fees (both legs, in and
   out) plus any funding cost (strictly: a spread that only pays the fees makes nothing), and
   be at least `MINIMUM_SPREAD_BPS` (5 by default; the deployment guide's live phase: 20);
3. `confidence`: at least 70;
4. `unprofitable`: projected profit after slippage (both legs, in and out) must be > 0;
5. `thin_book`: at least $50,000 within 2 bps of the touch on both venues.

Projected profit assumes the position is held through one funding settlement: profit =
position x (spread - fees + funding delta per 8 h) / 10,000, and after slippage that minus
position x slippage / 10,000. Synthetic mode (`synthetic.py`) rates one venue's symbols
against the dashboard qualification instead, its failed constraint being the reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

from services.strategy.confluence import assess, dashboard_score
from services.strategy.costs import slippage_bps
from services.strategy.state import MarketState, VenueMarket
from services.strategy.synthetic import LONG_VENUE, SHORT_VENUE, synthetic_quote

MIN_SPREAD_BPS = 5.0
CONFIDENCE_MIN = 70
LIQUID_BPS = 2.0
LIQUID_MIN_USD = 50_000.0
TOP_N = 20


@dataclass(frozen=True)
class ScanConfig:
    position_usd: float = 1000.0
    depth_bps: float = 10.0  # the hard constraint's depth window
    scorer: str = "confluence"  # or "dashboard"
    top_n: int = TOP_N
    min_spread_bps: float = MIN_SPREAD_BPS  # MINIMUM_SPREAD_BPS


@dataclass(frozen=True)
class Opportunity:
    symbol: str
    long_venue: str
    short_venue: str
    long_price: float
    short_price: float
    spread_bps: float
    funding_delta_8h: float
    confidence: int
    fees_bps: float
    slippage_bps: float
    projected_profit_usd: float
    projected_profit_after_slippage_usd: float
    depth_long_usd: float
    depth_short_usd: float
    detected_ms: int
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def pair(self) -> tuple[str, str, str]:
        return self.symbol, self.long_venue, self.short_venue


@dataclass
class ScanResult:
    opportunities: list[Opportunity]  # the top ones, best first
    rejections: Counter[str]
    candidates: int = 0


def _profit(position_usd: float, spread_bps: float, fees: float, funding_delta_8h: float) -> float:
    return position_usd * (spread_bps - fees + funding_delta_8h * 10_000.0) / 10_000.0


def evaluate(long: VenueMarket, short: VenueMarket, stale: dict[str, bool], config: ScanConfig,
             now_ms: int) -> Opportunity | str:
    """The trade buying on `long` and selling on `short`, or the reason it is rejected."""
    c = assess(long, short, config.position_usd, stale, config.depth_bps)
    if c is None:
        return "no_quote"
    if not c.hard.passes_all():
        return "hard_" + c.hard.failures()[0]
    fees = 2 * (long.fee_bps + short.fee_bps)
    funding_cost = max(0.0, -c.funding_delta_8h * 10_000.0)
    if not c.spread_bps > fees + funding_cost or c.spread_bps < config.min_spread_bps:
        return "spread_below_costs"
    confidence = c.confidence
    if config.scorer == "dashboard":
        ratios = [m.open_interest / a for m in (long, short) if m.open_interest and (a := m.oi_24h_avg)]
        next_funding = min((m.next_funding_ts_ms for m in (long, short) if m.next_funding_ts_ms), default=None)
        confidence = dashboard_score(c.spread_bps, c.funding_delta_8h, long.imbalance(config.depth_bps),
                                     short.imbalance(config.depth_bps), sum(ratios) / len(ratios) if ratios else None,
                                     (next_funding - now_ms) / 60_000 if next_funding else None)
    if confidence < CONFIDENCE_MIN:
        return "confidence"
    slippage = 2 * (slippage_bps(config.position_usd, c.depth_long_usd)
                    + slippage_bps(config.position_usd, c.depth_short_usd))
    profit = _profit(config.position_usd, c.spread_bps, fees, c.funding_delta_8h)
    after_slippage = profit - config.position_usd * slippage / 10_000.0
    if not after_slippage > 0:
        return "unprofitable"
    if min(long.depth_usd("asks", LIQUID_BPS), short.depth_usd("bids", LIQUID_BPS)) < LIQUID_MIN_USD:
        return "thin_book"
    return Opportunity(
        symbol=long.symbol, long_venue=long.venue, short_venue=short.venue, long_price=long.ask,
        short_price=short.bid, spread_bps=c.spread_bps, funding_delta_8h=c.funding_delta_8h, confidence=confidence,
        fees_bps=fees, slippage_bps=slippage, projected_profit_usd=profit,
        projected_profit_after_slippage_usd=after_slippage, depth_long_usd=c.depth_long_usd,
        depth_short_usd=c.depth_short_usd, detected_ms=now_ms, scores=c.scores)


def top_text(result: ScanResult) -> str:
    """The ranking as the seed logs it: a line for the scan, then one per opportunity, best first."""
    lines = [f"top {len(result.opportunities)} of {result.candidates} pairs"
             + (":" if result.opportunities else ": none")]
    lines += [f"{n:>3}. {o.symbol} long {o.long_venue} @ {o.long_price:g}, short {o.short_venue} @ {o.short_price:g}: "
              f"spread {o.spread_bps:.1f} bps, funding {o.funding_delta_8h * 100:+.4f} %/8h, "
              f"confidence {o.confidence}, ${o.projected_profit_after_slippage_usd:.2f} after slippage"
              for n, o in enumerate(result.opportunities, start=1)]
    return "\n".join(lines)


def spread_covers_fees(long: VenueMarket, short: VenueMarket, min_spread_bps: float = MIN_SPREAD_BPS) -> bool:
    """The cheap first look: can the spread pay the round-trip fees at all, and is it the
    minimum? (Funding can only add a cost, so a spread below the fees is rejected whatever
    else holds; `evaluate` decides the boundary exactly.)"""
    bid, ask = short.bid, long.ask
    if ask is None or bid is None or bid <= ask:
        return False
    return (bid - ask) * 20_000.0 >= max(2 * (long.fee_bps + short.fee_bps), min_spread_bps) * (bid + ask)


def _direction_value(long: VenueMarket, short: VenueMarket) -> float:
    """Which way round a pair is worth more: spread plus funding, in bps (no quote: -inf)."""
    if long.ask is None or short.bid is None:
        return float("-inf")
    spread = (short.bid - long.ask) / ((short.bid + long.ask) / 2) * 10_000.0
    return spread + ((short.funding_8h or 0.0) - (long.funding_8h or 0.0)) * 10_000.0


def scan(state: MarketState, stale: dict[str, bool], config: ScanConfig, now_ms: int,
         symbols: list[str] | None = None) -> ScanResult:
    """Every symbol (or only `symbols`) and venue pair, best direction of each."""
    found, rejections, candidates = [], Counter(), 0
    for symbol in symbols if symbols is not None else sorted(state.by_symbol):
        venues = state.by_symbol.get(symbol, {})
        for a, b in combinations(sorted(venues), 2):
            candidates += 1
            ma, mb = venues[a], venues[b]
            long, short = (ma, mb) if _direction_value(ma, mb) >= _direction_value(mb, ma) else (mb, ma)
            outcome = evaluate(long, short, stale, config, now_ms)
            if isinstance(outcome, str):
                rejections[outcome] += 1
            else:
                found.append(outcome)
    found.sort(key=lambda o: (-o.confidence, -o.projected_profit_after_slippage_usd, o.pair))
    return ScanResult(found[: config.top_n], rejections, candidates)


def scan_synthetic(state: MarketState, venue: str, symbols: list[str], spread_bps: float, funding_delta: float,
                   position_usd: float, now_ms: int) -> ScanResult:
    """Synthetic mode: each configured symbol's quote on `venue` rated by the dashboard rules."""
    found, rejections = [], Counter()
    for symbol in symbols:
        market = state.get(venue, symbol)
        if market is None or market.bid is None or market.ask is None:
            rejections["no_quote"] += 1
            continue
        q = synthetic_quote(symbol, market.bid, market.ask, spread_bps, funding_delta, position_usd)
        if not q.qualifies:
            rejections["synthetic_" + q.reasons[0]] += 1
            continue
        profit = position_usd * (q.profit_bps + q.slippage_bps) / 10_000.0
        found.append(Opportunity(
            symbol=symbol, long_venue=LONG_VENUE, short_venue=SHORT_VENUE, long_price=q.long_price,
            short_price=q.short_price, spread_bps=q.spread_bps, funding_delta_8h=q.funding_delta,
            confidence=q.confidence, fees_bps=q.fees_bps, slippage_bps=q.slippage_bps, projected_profit_usd=profit,
            projected_profit_after_slippage_usd=position_usd * q.profit_bps / 10_000.0, depth_long_usd=q.depth_usd,
            depth_short_usd=q.depth_usd, detected_ms=now_ms))
    found.sort(key=lambda o: (-o.confidence, o.symbol))
    return ScanResult(found, rejections, len(symbols))


def merge_top(rankings: list[list[dict[str, str]]], top_n: int = TOP_N) -> list[dict[str, str]]:
    """The top `top_n` of several shards' rankings (opportunities as written, text fields), in
    the scan's order: confidence, then profit after slippage, highest first; then the pair."""
    def rank(o: dict[str, str]) -> tuple:
        return (-int(o["confidence"]), -float(o["projected_profit_after_slippage_usd"]), o["symbol"],
                o["long_venue"], o["short_venue"])

    return sorted((o for ranking in rankings for o in ranking), key=rank)[:top_n]
