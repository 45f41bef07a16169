"""The perpetuals a venue lists, under one canonical name per market.

Every venue names the same market its own way (`BTCUSDT`, `BTC-USDT-SWAP`, `BTC`,
`XBTUSDTM`, `BTC_USDT`, `BTC-USD-PERP`); the rest of the system only sees the canonical
`BTCUSDT`: base coin (with aliases like XBT -> BTC) + `USDT`. Dollar-stable linear perps
settled in USDC (Hyperliquid, Paradex) get the same name, because the strategy compares them
with the USDT ones; `Instrument.quote` keeps what the venue actually settles in.

Venues quote sizes in their own units: `contract_size` is the base units per unit of venue
size (OKX `ctVal`, KuCoin `multiplier`, Gate `quanto_multiplier`; 1 where sizes are already in
base units), and every event carries base units.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from decimal import Decimal

import msgspec

ALIASES = {"XBT": "BTC"}  # venue base-coin names that mean another coin


def canonical(base: str, quote: str = "USDT") -> str:
    """The system's name for a linear perp on `base`, e.g. canonical("XBT") == "BTCUSDT"."""
    return ALIASES.get(base, base) + quote


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """One perpetual on one venue: its names, size unit, grids and funding interval."""

    venue: str
    symbol: str  # canonical, e.g. BTCUSDT
    venue_symbol: str  # as the venue spells it, e.g. BTC-USDT-SWAP
    quote: str = "USDT"  # what it is quoted and settled in
    contract_size: Decimal = Decimal(1)  # base units per unit of venue size
    tick: Decimal | None = None  # price step, quote units
    lot: Decimal | None = None  # size step, venue units
    min_size: Decimal | None = None  # venue units
    funding_interval_min: int | None = None  # None: the venue says per message
    inverse: bool = False  # contract_size is in quote units (OKX BTC-USD-SWAP: 100 USD)

    def base_size(self, size: float, price: float) -> float:
        """A venue size at `price` in base units. Linear sizes are cut to 15 significant digits,
        so 1.4 contracts of 0.01 BTC read 0.014 (not 0.013999999999999999): the exact product of
        two venue decimals has fewer digits than that, so only the binary product's noise goes."""
        if self.inverse:
            return size * float(self.contract_size) / price
        if self.contract_size == 1:
            return size
        return float(f"{size * float(self.contract_size):.15g}")


class UnknownSymbol(ValueError):
    """A canonical symbol the venue does not list as a live perpetual."""


class DuplicateSymbol(ValueError):
    """Two venue instruments map to one canonical symbol: the venue adapter must choose."""


class SymbolMap:
    """Both directions of one venue's naming, built from its instruments list."""

    def __init__(self, venue: str, instruments: Iterable[Instrument]) -> None:
        self.venue = venue
        self.by_symbol: dict[str, Instrument] = {}
        self.by_venue_symbol: dict[str, Instrument] = {}
        for inst in instruments:
            if inst.symbol in self.by_symbol:
                raise DuplicateSymbol(f"{venue}: {inst.venue_symbol} and {self.by_symbol[inst.symbol].venue_symbol} "
                                      f"both map to {inst.symbol}")
            self.by_symbol[inst.symbol] = inst
            self.by_venue_symbol[inst.venue_symbol] = inst

    def __len__(self) -> int:
        return len(self.by_symbol)

    def get(self, symbol: str) -> Instrument:
        """The instrument for a canonical symbol; UnknownSymbol names close matches."""
        inst = self.by_symbol.get(symbol)
        if inst is None:
            close = difflib.get_close_matches(symbol, self.by_symbol, n=3, cutoff=0.75)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownSymbol(f"{self.venue} lists no live perpetual {symbol} "
                                f"({len(self.by_symbol)} listed){hint}")
        return inst

    def select(self, symbols: Iterable[str]) -> SymbolMap:
        """Only these canonical symbols; raises UnknownSymbol for the first one missing."""
        return SymbolMap(self.venue, [self.get(s) for s in symbols])

    def from_venue(self, venue_symbol: str) -> Instrument | None:
        return self.by_venue_symbol.get(venue_symbol)
