"""Bybit's trading fees by VIP tier (pure, exact).

The table is Bybit's help-center "Trading Fee Structure" for non-VIP and VIP users (percent
of notional per fill), as transcribed on 2026-10 into
`../shared/market-data/bybit/fees/bybit_fee_tiers_transcribed.json`. The base rates
(VIP0 perpetual 0.055 % taker / 0.02 % maker) agree with the loweef fee index of 2026-10-16,
which cites Bybit's own page. Bybit says actual rates can vary by region, so a backtest can
take the account's own rates instead: `FeeSchedule.from_fee_rate` reads
`/v5/account/fee-rate`, and `FeeSchedule(taker, maker)` takes any pair.

A fee is qty x price x rate, exact: Bybit's own execution records give the same figure
(execFee = execValue x feeRate).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PCT = Decimal("0.01")

# percent per fill: (taker, maker)
PERPETUAL_PCT = {
    "VIP0": ("0.0550", "0.0200"), "VIP1": ("0.0400", "0.0180"), "VIP2": ("0.0375", "0.0160"),
    "VIP3": ("0.0350", "0.0140"), "VIP4": ("0.0320", "0.0120"), "VIP5": ("0.0320", "0.0100"),
    "SupremeVIP": ("0.0300", "0.0000"),
}
SPOT_PCT = {
    "VIP0": ("0.1000", "0.1000"), "VIP1": ("0.0800", "0.0675"), "VIP2": ("0.0775", "0.0650"),
    "VIP3": ("0.0750", "0.0625"), "VIP4": ("0.0600", "0.0500"), "VIP5": ("0.0500", "0.0400"),
    "SupremeVIP": ("0.0450", "0.0300"),
}
PRODUCTS = {"perpetual": PERPETUAL_PCT, "spot": SPOT_PCT}


class FeeError(ValueError):
    """An unknown tier or product, or a fee-rate answer without the symbol."""


@dataclass(frozen=True)
class FeeSchedule:
    taker: Decimal  # fraction of notional, e.g. 0.00055
    maker: Decimal

    @classmethod
    def tier(cls, name: str = "VIP0", product: str = "perpetual") -> FeeSchedule:
        table = PRODUCTS.get(product)
        if table is None:
            raise FeeError(f"no product {product!r}; products: {', '.join(PRODUCTS)}")
        if name not in table:
            raise FeeError(f"no {product} tier {name!r}; tiers: {', '.join(table)}")
        taker, maker = table[name]
        return cls(Decimal(taker) * PCT, Decimal(maker) * PCT)

    @classmethod
    def from_fee_rate(cls, result: dict, symbol: str) -> FeeSchedule:
        """The account's own rates for `symbol` from a `/v5/account/fee-rate` result."""
        row = next((r for r in result.get("list") or [] if r.get("symbol") == symbol), None)
        if row is None:
            raise FeeError(f"/v5/account/fee-rate has no {symbol}")
        return cls(Decimal(row["takerFeeRate"]), Decimal(row["makerFeeRate"]))

    def fee(self, qty: Decimal, price: Decimal, maker: bool) -> Decimal:
        """What one fill pays, in quote currency (a negative maker rate is a rebate)."""
        return abs(qty) * price * (self.maker if maker else self.taker)
