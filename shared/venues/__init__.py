"""The venues this system speaks to, by name.

Each is a package `shared/venues/<name>/` with the same modules (see `protocol.py`); this
registry only lists the names and loads the modules, so adding a venue adds a folder and a
name here, and no branch anywhere else.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType

from shared.instruments import Instrument
from shared.venues.protocol import VenueError, VenueFeed
from shared.venues.trading import VenueTrading

log = logging.getLogger("arb.venues")
# a server time outside these (2015-01-01 .. 2100-01-01, ms) is no clock's
PLAUSIBLE_TIME_MS = (1_420_070_400_000, 4_102_444_800_000)
# what a venue module's pure parsing raises on an answer of the wrong shape
MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError)

NAMES = ("bybit", "binance", "okx", "bitget", "kucoin", "gate", "hyperliquid", "paradex")
TITLES = {"bybit": "Bybit", "binance": "Binance", "okx": "OKX", "bitget": "Bitget", "kucoin": "KuCoin",
          "gate": "Gate", "hyperliquid": "Hyperliquid", "paradex": "Paradex"}  # as people write them
MODULES = ("feed", "parser", "rest")  # what every venue package holds
TRADING = ("bybit", "okx", "bitget", "binance")  # the venues with a `trading.py`: a VenueTrading client for live orders


class UnknownVenue(ValueError):
    """A venue name this build has no connector for."""


@dataclass(frozen=True)
class Venue:
    name: str
    feed: type[VenueFeed]
    rest: ModuleType  # HOSTS, INSTRUMENTS, instruments(), SERVER_TIME, server_time_ms(), TIME_POLL_MIN_MS

    def instruments(self, bodies: list[bytes]) -> list[Instrument]:
        """The perpetuals in the venue's answers to its INSTRUMENTS calls. An answer that is not
        one raises VenueError; an instrument whose grid is not finite and > 0 is left out, and
        logged, so that no order is ever sized on it."""
        try:
            listed = self.rest.instruments(bodies)
        except MALFORMED as exc:
            raise VenueError(f"{self.name}: the instruments answer is malformed: {type(exc).__name__}: {exc}") from None
        usable = [i for i in listed if _usable(i)]
        if len(usable) < len(listed):
            bad = [i.venue_symbol for i in listed if not _usable(i)]
            log.warning("%s: left out %d instruments with an unusable tick, lot or contract size: %s", self.name,
                        len(bad), ", ".join(bad[:10]))
        return usable

    def server_time_ms(self, body: bytes) -> int:
        """The venue's clock from its SERVER_TIME answer; VenueError for an answer that is not
        one or a time no clock could show."""
        try:
            ms = self.rest.server_time_ms(body)
        except MALFORMED as exc:
            raise VenueError(f"{self.name}: the server time answer is malformed: {type(exc).__name__}: {exc}") from None
        if not (isinstance(ms, int) and PLAUSIBLE_TIME_MS[0] <= ms <= PLAUSIBLE_TIME_MS[1]):
            raise VenueError(f"{self.name}: server time {ms!r} ms is not a plausible clock")
        return ms


def _usable(inst: Instrument) -> bool:
    return bool(inst.symbol) and all(g is None or (g.is_finite() and g > 0)
                                     for g in (inst.tick, inst.lot, inst.min_size, inst.contract_size))


def trading_client(name: str) -> type[VenueTrading]:
    """The live trading client of venue `name` (the VenueTrading subclass in its trading.py)."""
    if name not in TRADING:
        raise UnknownVenue(f"no live trading at {name!r}; live trading is at: {', '.join(TRADING)}")
    module = importlib.import_module(f"shared.venues.{name}.trading")
    return next(c for c in vars(module).values()
                if isinstance(c, type) and issubclass(c, VenueTrading) and getattr(c, "venue", None) == name)


def venue(name: str) -> Venue:
    if name not in NAMES:
        raise UnknownVenue(f"no market-data connector for venue {name!r}; available: {', '.join(NAMES)}")
    package = f"shared.venues.{name}"
    return Venue(name, importlib.import_module(f"{package}.feed").Feed, importlib.import_module(f"{package}.rest"))
