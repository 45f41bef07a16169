"""What a trade costs, in basis points of its notional (pure).

Taker fees per venue are the synthetic design's table (its dashboard's `get_exchange_taker_fee`):
Binance 4, OKX 5, Bybit 5.5, Bitget 6, KuCoin 6, Hyperliquid 3.5, Paradex 5, Gate 6 bps, any
other venue 6. Slippage is seed Property 5: 2 bps plus 3 bps times size / depth, capped at 5
bps, so always within 2..5 bps. Depth is the USD resting on the side a leg takes.
"""

from __future__ import annotations

TAKER_FEE_BPS = {"binance": 4.0, "okx": 5.0, "bybit": 5.5, "bybit_synthetic": 5.5, "bitget": 6.0, "kucoin": 6.0,
                 "hyperliquid": 3.5, "paradex": 5.0, "gate": 6.0}
DEFAULT_TAKER_FEE_BPS = 6.0
BASE_SLIPPAGE_BPS = 2.0
DEPTH_SLIPPAGE_BPS = 3.0
MAX_SLIPPAGE_BPS = 5.0


def taker_fee_bps(venue: str) -> float:
    return TAKER_FEE_BPS.get(venue.lower(), DEFAULT_TAKER_FEE_BPS)


def slippage_bps(position_usd: float, depth_usd: float) -> float:
    """2 bps + (size / depth) x 3 bps, at most 5 bps; no depth at all costs the cap."""
    if depth_usd <= 0:
        return MAX_SLIPPAGE_BPS
    return min(BASE_SLIPPAGE_BPS + position_usd / depth_usd * DEPTH_SLIPPAGE_BPS, MAX_SLIPPAGE_BPS)
