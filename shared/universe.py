"""Universe mode (SYMBOLS_TO_TRADE=all): every USDT perpetual listed on at least two of the
venues, from their instruments lists.

`universe` is the pure rule. `Listings` keeps each venue's latest list: a venue that does not
answer keeps its last one, so a failed request never shrinks the universe (which would drop
symbols and close their trades for nothing), and a list that lost more than half its
symbols at once is held back as suspect until it is seen twice in a row.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping

import aiohttp

from shared.instruments import SymbolMap
from shared.rest import RestError
from shared.venues.protocol import VenueError

log = logging.getLogger("arb.universe")
MIN_VENUES = 2


def universe(listings: Mapping[str, Iterable[str]], min_venues: int = MIN_VENUES) -> list[str]:
    """The symbols listed on at least `min_venues` of the venues, sorted."""
    counts = Counter(symbol for symbols in listings.values() for symbol in set(symbols))
    return sorted(symbol for symbol, n in counts.items() if n >= min_venues)


class Listings:
    """Each venue's latest instruments list; `read` refreshes them (see the module's note)."""

    def __init__(self, venues: list[str], load) -> None:
        """`load(venue, http)` returns the venue's SymbolMap, or raises RestError or VenueError."""
        self.venues, self._load = venues, load
        self.maps: dict[str, SymbolMap] = {}
        self._suspect: dict[str, frozenset[str]] = {}

    async def read(self, http: aiohttp.ClientSession) -> dict[str, str]:
        """Read every venue's list; those that did not answer (they keep their last), each with
        why."""
        failed = {}
        for venue in self.venues:
            try:
                listed = await asyncio.wait_for(self._load(venue, http), 15)
            except (RestError, VenueError, ValueError, TimeoutError) as exc:
                failed[venue] = str(exc) or type(exc).__name__
                continue
            self._take(venue, listed)
        return failed

    def _take(self, venue: str, listed: SymbolMap) -> None:
        old = self.maps.get(venue)
        new = frozenset(listed.by_symbol)
        if old is not None and len(new) < len(old.by_symbol) / 2 and self._suspect.get(venue) != new:
            self._suspect[venue] = new
            log.warning("%s: its instruments list fell from %d to %d symbols; kept the last until it says so "
                        "twice", venue, len(old.by_symbol), len(new))
            return
        self._suspect.pop(venue, None)
        self.maps[venue] = listed

    def symbols(self) -> list[str]:
        """The universe of the lists held."""
        return universe({v: m.by_symbol for v, m in self.maps.items()})
