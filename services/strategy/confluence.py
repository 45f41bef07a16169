"""Hard constraints, confluence metrics and the confidence score of one trade (pure).

A trade buys `symbol` on the long venue at its ask and sells it on the short venue at its bid.
Sign conventions: `spread_bps` = (short bid - long ask) / their mean, positive when the short
venue is dearer; `funding_delta_8h` = short venue's rate - long venue's rate per 8 h, positive
when the trade is paid (a positive rate is paid by longs to shorts on every venue here).

Hard constraints (seed section 3; any failure gives confidence 0, Property 2):
- depth: at least 2 x the position within `depth_bps` of the touch on the side each leg takes;
- latency: neither venue of the pair is stale (a stale venue elsewhere costs 30 points,
  Property 8, and every venue stale gives 0);
- funding: `funding_delta_8h` > 0.0001 (0.01 % per 8 h) in the trade's favour.

Soft metrics, each mapped to 0..1 (0.5 = neutral or unknown), weighted 9, 8, 7, 6, 5, 5 and
scaled so a perfect reading scores 100: confidence = round(100 x sum(w x s) / 40).
- funding (9): delta / 0.001, capped at 1: 0.1 % per 8 h in our favour is full marks;
- order-book imbalance (8): (OBI long - OBI short + 2) / 4: buyers leaning on the long venue
  and sellers on the short one, the way prices converge, is 1;
- open interest (7): r = mean of (OI / its 24 h average) on both venues; (1.1 - r) / 0.2
  capped to 0..1: a crowd building (r >= 1.1) is 0, one leaving (r <= 0.9) is 1;
- VWAP (6): (z short - z long) / 4 + 0.5, capped: the short venue above its VWAP and the long
  one below, in standard deviations, is the stretch that reverts;
- volatility (5): per venue 1 if ATR is falling, 0 if rising, 0.5 if unknown; the mean;
- liquidations (5): distance to the nearest cluster on either venue / 2 %, capped at 1; no
  cluster is 1.

The dashboard scorer of the synthetic design is the other choice (`dashboard_score`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.strategy.state import VenueMarket
from services.strategy.synthetic import dashboard_confidence

WEIGHTS = {"funding": 9, "obi": 8, "oi": 7, "vwap": 6, "volatility": 5, "liquidation": 5}
FUNDING_MIN_8H = 0.0001
FUNDING_FULL_8H = 0.001
LATENCY_PENALTY = 30
NEUTRAL = 0.5


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


@dataclass(frozen=True)
class HardConstraints:
    depth_ok: bool
    latency_ok: bool
    funding_ok: bool

    def passes_all(self) -> bool:
        return self.depth_ok and self.latency_ok and self.funding_ok

    def failures(self) -> list[str]:
        return [name for name, ok in (("depth", self.depth_ok), ("latency", self.latency_ok),
                                      ("funding", self.funding_ok)) if not ok]


@dataclass(frozen=True)
class Confluence:
    """Everything the confidence of one (long venue, short venue) trade rests on."""

    spread_bps: float
    funding_delta_8h: float
    depth_long_usd: float
    depth_short_usd: float
    hard: HardConstraints
    scores: dict[str, float] = field(default_factory=dict)  # soft metric -> 0..1
    latency_penalty: int = 0
    confidence: int = 0


def soft_scores(long: VenueMarket, short: VenueMarket, funding_delta_8h: float, depth_bps: float) -> dict[str, float]:
    scores = {"funding": _clamp(funding_delta_8h / FUNDING_FULL_8H)}
    obi_long, obi_short = long.imbalance(depth_bps), short.imbalance(depth_bps)
    scores["obi"] = NEUTRAL if obi_long is None or obi_short is None else _clamp((obi_long - obi_short + 2) / 4)
    ratios = [m.open_interest / avg for m in (long, short)
              if m.open_interest is not None and (avg := m.oi_24h_avg)]
    scores["oi"] = _clamp((1.1 - sum(ratios) / len(ratios)) / 0.2) if ratios else NEUTRAL
    z_long, z_short = long.vwap_deviation(), short.vwap_deviation()
    scores["vwap"] = NEUTRAL if z_long is None or z_short is None else _clamp((z_short - z_long) / 4 + 0.5)
    trends = [m.atr_falling() for m in (long, short)]
    scores["volatility"] = sum(NEUTRAL if t is None else float(t) for t in trends) / 2
    distances = [d for m in (long, short) if (d := m.nearest_cluster_pct()) is not None]
    scores["liquidation"] = _clamp(min(distances) / 2.0) if distances else 1.0
    return scores


def weighted_confidence(scores: dict[str, float]) -> int:
    return round(100 * sum(WEIGHTS[name] * score for name, score in scores.items()) / sum(WEIGHTS.values()))


def assess(long: VenueMarket, short: VenueMarket, position_usd: float, stale: dict[str, bool],
           depth_bps: float = 10.0) -> Confluence | None:
    """The confluence of buying on `long` and selling on `short`; None while either venue has
    no top of book. `stale` maps every watched venue to whether it is stale now."""
    if long.ask is None or short.bid is None:
        return None
    spread = (short.bid - long.ask) / ((short.bid + long.ask) / 2) * 10_000.0
    funding = (short.funding_8h or 0.0) - (long.funding_8h or 0.0)
    depth_long, depth_short = long.depth_usd("asks", depth_bps), short.depth_usd("bids", depth_bps)
    pair_stale = stale.get(long.venue, True) or stale.get(short.venue, True)  # unknown latency is stale
    hard = HardConstraints(depth_ok=min(depth_long, depth_short) >= 2 * position_usd, latency_ok=not pair_stale,
                           funding_ok=funding > FUNDING_MIN_8H)
    if not hard.passes_all():
        return Confluence(spread, funding, depth_long, depth_short, hard)
    scores = soft_scores(long, short, funding, depth_bps)
    penalty = LATENCY_PENALTY if any(stale.values()) else 0
    confidence = max(0, weighted_confidence(scores) - penalty)
    return Confluence(spread, funding, depth_long, depth_short, hard, scores, penalty, confidence)


def dashboard_score(spread_bps: float, funding_delta_8h: float, obi_long: float | None, obi_short: float | None,
                    oi_ratio: float | None, minutes_to_funding: float | None) -> int:
    """The synthetic design's dashboard formula with its boosts: spread x 0.5 + funding x 0.3;
    +20 when both books lean the trade's way (+10 when one does); +15 when open interest is
    below its average (r < 0.9), -10 when above (r > 1.1); +30 with under 5 minutes to a
    funding payout, +15 under 15; capped to 0..100."""
    score = dashboard_confidence(spread_bps, funding_delta_8h)
    leaning = sum(1 for ok in ((obi_long or 0) > 0, (obi_short or 0) < 0) if ok)
    score += 20 if leaning == 2 else 10 if leaning == 1 else 0
    if oi_ratio is not None:
        score += 15 if oi_ratio < 0.9 else -10 if oi_ratio > 1.1 else 0
    if minutes_to_funding is not None:
        score += 30 if minutes_to_funding < 5 else 15 if minutes_to_funding < 15 else 0
    return max(0, min(100, score))
