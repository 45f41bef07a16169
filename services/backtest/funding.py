"""Funding accrual (pure, exact): at each real funding timestamp every open position pays
qty x mark x rate, where the rate is the venue's for its own interval and a positive rate
means longs pay shorts. A long has qty > 0, a short qty < 0, so the sign comes out right for
both: paid > 0, received < 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class FundingRate:
    symbol: str
    ts_ms: int  # the settlement time
    rate: Decimal  # per the venue's interval
    mark: Decimal | None = None  # the venue's mark at settlement, when the history has it
    interval_ms: int | None = None  # the interval the rate is for, when the history states it


def payment(qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Paid by a position of `qty` (long > 0) at one settlement; negative when received."""
    return qty * mark * rate


def accrue(rates: Iterable[FundingRate], qty_at: Callable[[int], Decimal],
           mark_at: Callable[[int], Decimal | None]) -> list[tuple[FundingRate, Decimal]]:
    """Every settlement where a position was open: (the rate, what it paid). The mark is the
    history's own when it has one, else `mark_at(ts)` (e.g. the last bar's close)."""
    out = []
    for r in rates:
        qty = qty_at(r.ts_ms)
        if not qty:
            continue
        mark = r.mark if r.mark is not None else mark_at(r.ts_ms)
        if mark is None:
            raise ValueError(f"{r.symbol}: no mark price at the settlement of {r.ts_ms} to charge funding on")
        out.append((r, payment(qty, mark, r.rate)))
    return out
