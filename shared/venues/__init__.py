"""The venues this system speaks to, by name.

Each is a package `shared/venues/<name>/` with the same modules (see `protocol.py`); this
registry only lists the names and loads the modules, so adding a venue adds a folder and a
name here, and no branch anywhere else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from shared.venues.protocol import VenueFeed

NAMES = ("bybit", "binance", "okx", "bitget", "kucoin", "gate", "hyperliquid", "paradex")
MODULES = ("feed", "parser", "rest")  # what every venue package holds


class UnknownVenue(ValueError):
    """A venue name this build has no connector for."""


@dataclass(frozen=True)
class Venue:
    name: str
    feed: type[VenueFeed]
    rest: ModuleType  # HOSTS, INSTRUMENTS, instruments(), SERVER_TIME, server_time_ms(), TIME_POLL_MIN_MS


def venue(name: str) -> Venue:
    if name not in NAMES:
        raise UnknownVenue(f"no market-data connector for venue {name!r}; available: {', '.join(NAMES)}")
    package = f"shared.venues.{name}"
    return Venue(name, importlib.import_module(f"{package}.feed").Feed, importlib.import_module(f"{package}.rest"))
