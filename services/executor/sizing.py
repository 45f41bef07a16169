"""Which leg goes first, how big a trade is, and its quantity on the venues' grids (pure).

**Harder leg** (seed section 5): the leg on the venue where a fill is least likely goes
first, so that if it does not fill nothing needs undoing. From hardest to easiest: the DEXes
(Hyperliquid, Paradex), Bitget, Gate, KuCoin, OKX, Bybit, Binance; an unknown venue counts as
hardest; on a tie (one venue, synthetic mode) the long leg goes first.

**Size**: the trade size the settings give (`ESTIMATED_POSITION_SIZE`, USD per trade), within
the seed's limits (section 5): at most (spread - fees - funding cost) / spread x available
capital, at most half the available capital, at most half the thinner leg's depth (the depth
hard constraint asks for 2x the position); and within the deployment guide's risk rule: what
the trade loses at its stop loss (the spread 100 bps wider than at entry, plus the round-trip
fees) is at most 1 % of the account (`MAX_TRADE_RISK`). Fees are the taker fees of both legs,
in and out; a funding delta against the trade is a cost. A size below $100 (the seed's dust
floor) is refused, unless the trade size asked for is itself smaller: the guide's first live
phase trades $10.

**Quantity**: size / the leg prices' mean, rounded down to a multiple of the coarser lot of
the two venues, which must be a multiple of the finer one so both legs carry the same
quantity; at least each venue's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from services.strategy.costs import taker_fee_bps

EASE = {"hyperliquid": 0, "paradex": 0, "bitget": 1, "gate": 2, "kucoin": 3, "okx": 4, "bybit": 5, "binance": 6}
MIN_SIZE_USD = Decimal(100)
MAX_SHARE = Decimal("0.5")
CENT = Decimal("0.01")


def harder_leg(long_venue: str, short_venue: str) -> str:
    """'long' or 'short': the leg to send first."""
    return "short" if EASE.get(short_venue, -1) < EASE.get(long_venue, -1) else "long"


def round_trip_fees_bps(long_venue: str, short_venue: str) -> float:
    return 2 * (taker_fee_bps(long_venue) + taker_fee_bps(short_venue))


@dataclass(frozen=True)
class Sizing:
    """The settings a trade's size comes from."""

    target_usd: Decimal | None = None  # ESTIMATED_POSITION_SIZE; None: as much as the limits allow
    max_risk_share: Decimal = Decimal("0.01")  # MAX_TRADE_RISK: of the account, lost at the stop loss
    limit_usd: Decimal | None = None  # POSITION_SIZE_LIMIT: a hard cap, also on the floor

    @property
    def floor_usd(self) -> Decimal:
        return min(MIN_SIZE_USD, self.target_usd or MIN_SIZE_USD, self.limit_usd or MIN_SIZE_USD)


def trade_size_usd(spread_bps: float, funding_delta_8h: float, long_venue: str, short_venue: str,
                   available: Decimal, equity: Decimal, depth_usd: float, sizing: Sizing,
                   stop_loss_bps: float) -> Decimal:
    """The USD to commit, to the cent; 0 when the edge is gone (the caller refuses a size
    below `sizing.floor_usd`). `equity` is the account: starting capital plus realised PnL;
    `stop_loss_bps` the exit rule the risk is measured at."""
    if spread_bps <= 0 or available <= 0:
        return Decimal(0)
    fees = round_trip_fees_bps(long_venue, short_venue)
    funding_cost = max(0.0, -funding_delta_8h * 10_000.0)
    edge = (spread_bps - fees - funding_cost) / spread_bps
    if edge <= 0:
        return Decimal(0)
    at_risk = Decimal(repr(stop_loss_bps + fees)) / 10_000  # lost per USD at the stop loss
    caps = [Decimal(repr(edge)) * available, available * MAX_SHARE, Decimal(repr(max(depth_usd, 0.0))) / 2,
            max(equity, Decimal(0)) * sizing.max_risk_share / at_risk]
    size = min(caps + [x for x in (sizing.target_usd, sizing.limit_usd) if x is not None])
    return size.quantize(CENT, ROUND_DOWN)


@dataclass(frozen=True)
class Grid:
    """One venue's order grid for a symbol, in base units and quote currency."""

    tick: Decimal
    lot: Decimal
    min_qty: Decimal


def at_step(value: Decimal, step: Decimal) -> str:
    """`value` as a person reads it: to as many decimals as `step` is written with (a tick, or
    a price on the tick grid); the exact value is kept elsewhere."""
    return str(value.quantize(Decimal(1).scaleb(min(0, step.as_tuple().exponent))))


class GridError(ValueError):
    """The two venues' lots cannot carry one quantity, or the size is below a minimum."""


def common_qty(size_usd: Decimal, price: Decimal, a: Grid, b: Grid) -> Decimal:
    """The base quantity both legs trade: on both lots, at least both minimums."""
    coarse, fine = (a.lot, b.lot) if a.lot >= b.lot else (b.lot, a.lot)
    if coarse % fine:
        raise GridError(f"lots {a.lot} and {b.lot} have no common multiple to trade on both venues")
    qty = (size_usd / price / coarse).to_integral_value(ROUND_DOWN) * coarse
    need = max(a.min_qty, b.min_qty, coarse)
    if qty < need:
        raise GridError(f"${size_usd} at {price} is {qty}, below the minimum quantity {need}")
    return qty


def round_price(price: Decimal, tick: Decimal, side: str) -> Decimal:
    """A limit price on the tick grid, never more aggressive than `price`: down for a buy, up for a sell."""
    steps = (price / tick).to_integral_value(ROUND_DOWN if side == "Buy" else ROUND_CEILING)
    return steps * tick
