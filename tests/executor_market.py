"""A hand-made two-venue market for the executor's tests: books, trades and tickers sent to the
executor core and its paper venue, exactly as the service sends the md:* events it reads."""

from __future__ import annotations

from decimal import Decimal

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, SignalIn
from services.executor.paper import PaperVenue, market_event, route
from services.executor.sizing import Grid
from shared.events import BookUpdate, Ticker, Trade

T0 = 1_800_000_000_000
SYMBOL = "BTCUSDT"
GRID = Grid(Decimal("0.1"), Decimal("0.001"), Decimal("0.001"))


class Desk:
    """The executor core, its paper venue, and the facts they produced, with the time."""

    def __init__(self, config: ExecConfig | None = None, venues=("binance", "okx")) -> None:
        self.core = ExecutorCore(config or ExecConfig(), {(v, SYMBOL): GRID for v in venues})
        self.paper = PaperVenue(self.core.market)
        self.facts: list[f.AnyFact] = []
        self.now = T0

    def _run(self, facts: list[f.AnyFact]) -> list[f.AnyFact]:
        facts = route(self.core, self.paper, facts, self.now)
        self.facts += facts
        return facts

    def market(self, *events) -> list[f.AnyFact]:
        out = []
        for event in events:
            out += market_event(self.core, self.paper, event, self.now)
        self.facts += out
        return out

    def book(self, venue: str, bid: float, ask: float, size: float = 2.0, levels: int = 20) -> list[f.AnyFact]:
        return self.market(BookUpdate(
            venue=venue, symbol=SYMBOL, kind="snapshot", update_id=self.now, exchange_ts_ms=self.now,
            receive_ts_us=self.now * 1000, bids=tuple((round(bid - i * 0.1, 1), size) for i in range(levels)),
            asks=tuple((round(ask + i * 0.1, 1), size) for i in range(levels))))

    def trade(self, venue: str, price: float, size: float, side: str) -> list[f.AnyFact]:
        return self.market(Trade(venue=venue, symbol=SYMBOL, exchange_ts_ms=self.now, receive_ts_us=self.now * 1000,
                                 price=price, size=size, side=side, trade_id=str(self.now)))

    def ticker(self, venue: str, **fields) -> list[f.AnyFact]:
        return self.market(Ticker(venue=venue, symbol=SYMBOL, exchange_ts_ms=self.now,
                                  receive_ts_us=self.now * 1000, **fields))

    def signal(self, sid: str = "s1", long_venue: str = "binance", short_venue: str = "okx", spread: float = 70.0,
               funding: float = 0.0004, confidence: int = 80, depth: float = 200_000.0,
               created_ms: int | None = None, mode: str = "cross", **more) -> list[f.AnyFact]:
        s = SignalIn(id=sid, mode=mode, symbol=SYMBOL, long_venue=long_venue, short_venue=short_venue,
                     spread_bps=spread, funding_delta_8h=funding, confidence=confidence, depth_long_usd=depth,
                     depth_short_usd=depth, created_ms=self.now if created_ms is None else created_ms, **more)
        return self._run(self.core.on_signal(s, self.now))

    def at(self, ms_after_t0: int) -> list[f.AnyFact]:
        """Move the clock to T0 + `ms_after_t0` and let the core act on its deadlines."""
        self.now = T0 + ms_after_t0
        return self._run(self.core.step(self.now))

    def of(self, kind: type) -> list:
        return [x for x in self.facts if isinstance(x, kind)]
