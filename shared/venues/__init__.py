"""The venues this system speaks to, by name. Each venue is a package with the same modules."""

from __future__ import annotations

from shared.settings import Settings
from shared.venues.bybit import BybitPublicFeed

PUBLIC_FEEDS = {"bybit": BybitPublicFeed}


class UnknownVenue(ValueError):
    """A venue name this build has no connector for."""


def public_feed(name: str, settings: Settings) -> BybitPublicFeed:
    try:
        return PUBLIC_FEEDS[name](settings)
    except KeyError:
        available = ", ".join(sorted(PUBLIC_FEEDS))
        raise UnknownVenue(f"no market-data connector for venue {name!r}; available: {available}") from None
