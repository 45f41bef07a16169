"""The market-data events every venue is normalized to, declared once.

Each event is a frozen struct with a type tag (`TYPE`) and the schema version it belongs to
(`SCHEMA_VERSION`, written into every stream entry as `v`). Units are in the field names:
`_ms` and `_us` are Unix epoch milliseconds / microseconds, `_min` minutes. Prices are in
quote currency and sizes in base units. A venue that does not send a value leaves it `None`.

Market data is carried as binary floats, on purpose: building and printing a `Decimal` costs
about 0.5 us each here, which would cap one ingestor far below its throughput target. It
loses nothing a venue sent: every decimal with at most 15 significant digits (every price,
size, rate and open interest any venue quotes) comes back exactly from `repr(x)`, so
`Decimal(repr(x))` is the venue's own number. Code that sends orders or books money does that
conversion and rounds to the instrument's tick and lot; the ledger is Decimal.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec
from msgspec.structs import force_setattr

SCHEMA_VERSION = 1

Side = Literal["buy", "sell"]
Level = tuple[float, float]  # (price, size)


class Ticker(msgspec.Struct, frozen=True, kw_only=True):
    """Latest top of book, prices, funding and open interest of one perpetual."""

    TYPE: ClassVar[str] = "ticker"

    venue: str
    symbol: str
    exchange_ts_ms: int
    receive_ts_us: int
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last: float | None = None
    mark: float | None = None
    index: float | None = None
    funding_rate: float | None = None  # per funding interval, as a fraction (0.0001 = 0.01 %)
    next_funding_ts_ms: int | None = None
    funding_interval_min: int | None = None
    open_interest: float | None = None  # base units
    funding_rate_8h: float | None = None  # the same rate per 8 h and per hour, filled in from the
    funding_rate_1h: float | None = None  # two above, so venues settling every 1/4/8 h compare

    def __post_init__(self) -> None:
        if self.funding_rate is not None and self.funding_interval_min and self.funding_rate_8h is None:
            # 480 / 240 = 2.0 and 60 / 480 = 0.125 are exact, so common intervals add no noise
            force_setattr(self, "funding_rate_8h", self.funding_rate * (480 / self.funding_interval_min))
            force_setattr(self, "funding_rate_1h", self.funding_rate * (60 / self.funding_interval_min))


class BookUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Top levels of an order book: a full snapshot of the top `len(bids)` levels, or a delta
    whose levels replace those prices (size 0 deletes the level)."""

    TYPE: ClassVar[str] = "book"

    venue: str
    symbol: str
    kind: Literal["snapshot", "delta"]
    update_id: int
    exchange_ts_ms: int
    receive_ts_us: int
    bids: tuple[Level, ...] = ()  # best (highest) first
    asks: tuple[Level, ...] = ()  # best (lowest) first
    seq: int | None = None  # venue cross sequence, comparable across depths where offered


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One public trade; `side` is the taker's side."""

    TYPE: ClassVar[str] = "trade"

    venue: str
    symbol: str
    trade_id: str
    price: float
    size: float
    side: Side
    exchange_ts_ms: int
    receive_ts_us: int


class Liquidation(msgspec.Struct, frozen=True, kw_only=True):
    """A forced close of a position; `position_side` is the side that was liquidated."""

    TYPE: ClassVar[str] = "liquidation"

    venue: str
    symbol: str
    position_side: Literal["long", "short"]
    price: float
    size: float
    exchange_ts_ms: int
    receive_ts_us: int


MarketEvent = Ticker | BookUpdate | Trade | Liquidation

EVENT_TYPES: dict[str, type[MarketEvent]] = {
    cls.TYPE: cls for cls in (Ticker, BookUpdate, Trade, Liquidation)
}
