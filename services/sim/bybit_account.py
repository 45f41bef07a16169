"""Signed account endpoints of the simulated Bybit: `/v5/account/wallet-balance` and
`/v5/account/fee-rate`, in the shapes of Bybit's documentation examples.

Every key starts with a demo-style balance of 100,000 USDT. Fees are Bybit's VIP0
derivatives rates (taker 0.055 %, maker 0.02 %; protocol-bybit-v5.md §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.sim.bybit_rest import Answer, ParamError, require_linear, symbol_param
from services.sim.market import MarketModel

TAKER_FEE, MAKER_FEE = Decimal("0.00055"), Decimal("0.0002")
START_BALANCE_USDT = Decimal("100000")


class Wallets:
    """USDT wallet balance per API key (positions and PnL come with matching)."""

    def __init__(self) -> None:
        self.usdt: dict[str, Decimal] = {}

    def balance(self, key: str) -> Decimal:
        return self.usdt.setdefault(key, START_BALANCE_USDT)


def wallet_balance(wallets: Wallets, key: str, query: Mapping[str, str]) -> Answer:
    if query.get("accountType") != "UNIFIED":
        raise ParamError("accountType only support UNIFIED")
    wanted = set(filter(None, query.get("coin", "").split(",")))
    usdt = wallets.balance(key)
    total = str(usdt)
    coins = [] if wanted and "USDT" not in wanted else [{
        "availableToBorrow": "", "bonus": "0", "accruedInterest": "0", "availableToWithdraw": "",
        "totalOrderIM": "0", "equity": total, "totalPositionMM": "0", "usdValue": total, "spotHedgingQty": "0",
        "unrealisedPnl": "0", "collateralSwitch": True, "borrowAmount": "0", "totalPositionIM": "0",
        "walletBalance": total, "cumRealisedPnl": "0", "locked": "0", "marginCollateral": True, "coin": "USDT",
        "spotBorrow": "0",
    }]
    account = {
        "totalEquity": total, "accountIMRate": "0", "accountIMRateByMp": "0", "totalMarginBalance": total,
        "totalInitialMargin": "0", "totalInitialMarginByMp": "0", "accountType": "UNIFIED",
        "totalAvailableBalance": total, "accountMMRate": "0", "accountMMRateByMp": "0", "totalPerpUPL": "0",
        "totalWalletBalance": total, "accountLTV": "0", "totalMaintenanceMargin": "0",
        "totalMaintenanceMarginByMp": "0", "coin": coins,
    }
    return 0, "OK", {"list": [account]}


def fee_rate(model: MarketModel, query: Mapping[str, str]) -> Answer:
    require_linear(query)
    symbol = symbol_param(model, query, required=False)
    return 0, "OK", {"list": [{"symbol": name, "takerFeeRate": str(TAKER_FEE), "makerFeeRate": str(MAKER_FEE)}
                              for name in ([symbol] if symbol else sorted(model.states))]}
