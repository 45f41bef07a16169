"""Which book, trades, mark price and funding rate a matching engine trades against.

The market model holds one book per symbol, Bybit's; every other venue's book is that book
shifted by the venue's basis (`MarketModel.venue_shift`) with its own sizes
(`MarketModel.venue_book`), its own trades and its own funding rate (`venue_funding`). A
`Matching` engine is given one view and reads the market only through it, so an OKX account
trades on OKX's prices, and an opportunity forced there (`POST /admin/opportunity`) is really
there to take.
"""

from __future__ import annotations

from services.sim.market import MarketModel, SymbolState, Trade


class ModelBook:
    """The model's own book (Bybit's): what a taker takes leaves the model's book, as it does
    for every other reader of it."""

    venue = "bybit"

    def __init__(self, model: MarketModel) -> None:
        self.model = model

    def sides(self, state: SymbolState) -> tuple[dict[int, int], dict[int, int]]:
        """(bids, asks): price ticks -> lots, best first not guaranteed; a taker removes what it takes."""
        return state.bids, state.asks

    def trades(self, state: SymbolState) -> list[Trade]:
        """The trades of the model's last step."""
        return state.trades

    def last_ticks(self, state: SymbolState) -> int:
        return state.last_ticks

    def mark_ticks(self, state: SymbolState) -> int:
        return round(state.mid)

    def funding_rate(self, state: SymbolState, settled_rate: float) -> float:
        """The rate this venue settles at a funding time whose model rate was `settled_rate`."""
        return settled_rate


class ShiftedBook(ModelBook):
    """Another venue's book: the model's book shifted by the venue's basis, with the venue's
    sizes, its trades and funding rate.

    Simpler than Bybit's: the view is drawn afresh from the model's book at every model step,
    so what a taker takes is gone from this venue's book only until the next step (the model's
    own book, and the venue's public feed, never see the hole).
    """

    def __init__(self, model: MarketModel, venue: str) -> None:
        super().__init__(model)
        self.venue = venue
        self._drawn: dict[str, tuple[tuple[int, int], dict[int, int], dict[int, int]]] = {}

    def sides(self, state: SymbolState) -> tuple[dict[int, int], dict[int, int]]:
        key = (state.book_version, self.model.venue_shift(state, self.venue))
        drawn = self._drawn.get(state.inst.symbol)
        if drawn is None or drawn[0] != key:
            depth = max(len(state.bids), len(state.asks))
            drawn = (key, *self.model.venue_book(state, self.venue, depth))
            self._drawn[state.inst.symbol] = drawn
        return drawn[1], drawn[2]

    def trades(self, state: SymbolState) -> list[Trade]:
        return state.venues[self.venue].trades

    def last_ticks(self, state: SymbolState) -> int:
        return state.last_ticks + self.model.venue_shift(state, self.venue)

    def mark_ticks(self, state: SymbolState) -> int:
        return round(state.mid * (1 + state.venues[self.venue].basis))

    def funding_rate(self, state: SymbolState, settled_rate: float) -> float:
        return self.model.venue_funding(state, self.venue)
