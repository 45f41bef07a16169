"""The simulator's Bybit API with a Bybit ingestor in front, and a live synthetic executor
against it: the harness of the execution scenarios, the safety stops and the reliability
suite's order-path tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import time

import aiohttp

from services.executor.service import ExecutorService
from services.executor.sizing import EASE
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from shared.codec import from_fields
from tests.conftest import serve_app
from tests.test_strategy_service import wait_for

SYMBOL = "BTCUSDT"
# the safety stops off: for tests that cause failures on purpose and check what follows
SAFETY_OFF = {"safety_max_failures": 0, "safety_min_success_rate": 0.0, "safety_max_p99_ms": 0.0,
              "safety_max_api_errors": 0}


class Venue:
    """The simulator, a Bybit ingestor and a live synthetic executor on one Redis."""

    def __init__(self, server: SimServer, base: str, settings, r, http: aiohttp.ClientSession) -> None:
        self.server, self.base, self.settings, self.r, self.http = server, base, settings, r, http
        self.key = settings.sim_api_key
        self.n = 0

    def positions(self) -> dict[tuple[str, int], int]:
        """Every position the account holds at the venue, in lots: {} when flat."""
        return {k: p.lots for k, p in self.account.positions.items() if p.lots}

    @property
    def account(self):
        return self.server.matching.account(self.key)

    def order(self, link_id: str):
        return self.account.orders[self.account.link_ids[link_id]]

    def held(self) -> dict[int, int]:
        return {idx: p.lots for (symbol, idx), p in self.account.positions.items() if symbol == SYMBOL and p.lots}

    async def faults(self, **changes) -> None:
        async with self.http.post(f"{self.base}/admin/faults", json=changes) as response:
            assert response.status == 200, await response.text()

    async def signal(self, created_ms: int | None = None, symbol: str = SYMBOL) -> str:
        self.n += 1
        sid = f"{symbol}-bybit-bybit_synthetic-{self.n}"
        await self.r.xadd(self.settings.redis_key_prefix + "strategy:signals", {
            "id": sid, "mode": "synthetic", "symbol": symbol, "long_venue": "bybit", "short_venue": "bybit_synthetic",
            "spread_bps": "50", "funding_delta_8h": "0.01", "confidence": "80", "depth_long_usd": "50000",
            "depth_short_usd": "50000", "created_ms": str(created_ms or time.time_ns() // 1_000_000)})
        return sid

    def facts(self, executor: ExecutorService, kind: type) -> list:
        return [x for x in executor.facts_written if isinstance(x, kind)]


@contextlib.asynccontextmanager
async def live_venue(settings, r, symbols: tuple[str, ...] = (SYMBOL,)):
    """The simulator (BTCUSDT), its Bybit ingestor, and settings for a live synthetic executor."""
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(list(symbols), seed=3, step_ms=10, api_keys={key: secret})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]),
                                               "symbols_to_trade": list(symbols), "execution": "live",
                                               "synthetic_hold_s": 600.0})
        stop = asyncio.Event()
        feed = asyncio.ensure_future(Ingestor(settings, "bybit", list(symbols)).run(stop))
        await wait_for(lambda: r.xlen(settings.md_streams()["book"]))
        try:
            yield Venue(server, base, settings, r, http)
        finally:
            stop.set()
            await feed


@contextlib.asynccontextmanager
async def executor_running(venue: Venue, _mode: str = "synthetic", _config: dict | None = None, **changes):
    executor = ExecutorService(venue.settings.model_copy(update=changes), _mode)
    if _config:
        executor.core.config = dataclasses.replace(executor.core.config, **_config)
    executor.facts_written = []
    write = executor._write

    async def recording(conn):  # what was written, in order (the stream holds the same)
        pending = list(executor._unwritten)
        await write(conn)
        executor.facts_written += pending

    executor._write = recording
    stop = asyncio.Event()
    task = asyncio.ensure_future(executor.run(stop))
    try:
        await wait_for(lambda: _ready(executor))
        yield executor
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _ready(executor: ExecutorService) -> bool:
    return executor.ready.is_set()


async def trade_one(executor: ExecutorService, send) -> None:
    """One signal after another (`await send()` writes one) until one becomes a trade, then until
    that trade is closed (a signal can be refused for the order rate the trade before used)."""
    closed = len(executor.core.closed)
    while True:
        read = executor.counts["signals"]
        await send()
        await wait_for(lambda n=read: _read_past(executor, n), timeout_s=20)
        if executor.core.trades or len(executor.core.closed) > closed:
            break
        await asyncio.sleep(0.1)
    await wait_for(lambda: _idle(executor), timeout_s=20)


async def _read_past(executor: ExecutorService, n: int) -> bool:
    return executor.counts["signals"] > n


async def _idle(executor: ExecutorService) -> bool:
    return not executor.core.trades


# the venues live cross trading is tested at, and every pair of them
CROSS_VENUES = ("bybit", "okx", "bitget", "binance")
PAIRS = list(itertools.combinations(CROSS_VENUES, 2))


class TwoVenues(Venue):
    """The simulator's trading APIs of two venues, an ingestor for each, and settings for a live
    cross executor trading at both. `hard` is the venue whose leg goes first (the seed's harder
    leg), `easy` the other; `hard` is held `premium_bps` above `easy`."""

    def __init__(self, *args, pair: tuple[str, str]) -> None:
        super().__init__(*args)
        self.pair = pair
        self.hard, self.easy = sorted(pair, key=lambda v: EASE[v])

    def account_at(self, venue: str):
        return self.server.engine(venue).account(self.key)

    def positions_at(self, venue: str) -> dict[tuple[str, int], int]:
        """Every position held at `venue`, in the engine's lots, by (symbol, positionIdx)."""
        return {k: p.lots for k, p in self.account_at(venue).positions.items() if p.lots}

    def orders(self) -> list:
        """Every order either venue holds."""
        return [o for v in self.pair for o in self.account_at(v).orders.values()]

    def flat(self) -> bool:
        return not any(self.positions_at(v) or self.account_at(v).open_orders() for v in self.pair)

    async def cross_signal(self, long_venue: str, short_venue: str, symbol: str = SYMBOL,
                           created_ms: int | None = None, spread_bps: float = 50.0) -> str:
        self.n += 1
        sid = f"{symbol}-{long_venue}-{short_venue}-{self.n}"
        await self.r.xadd(self.settings.redis_key_prefix + "strategy:signals", {
            "id": sid, "mode": "cross", "symbol": symbol, "long_venue": long_venue, "short_venue": short_venue,
            "spread_bps": str(spread_bps), "funding_delta_8h": "0.0005", "confidence": "80",
            "depth_long_usd": "200000", "depth_short_usd": "200000",
            "created_ms": str(created_ms or time.time_ns() // 1_000_000)})
        return sid


def hold_premium(server: SimServer, symbols, dear: str, cheap: str, premium_bps: float, seconds: float) -> None:
    """Hold `dear` `premium_bps` above `cheap`, its funding 0.5 % above, for `seconds`: the
    model's book is Bybit's, so the other venue is moved (both pinned when neither is Bybit)."""
    until = server._now_ms() + int(seconds * 1000)
    for symbol in symbols:
        if dear != "bybit":
            server.model.force(symbol, dear, premium_bps, 0.005, until)
        if cheap != "bybit":
            server.model.force(symbol, cheap, -premium_bps if dear == "bybit" else 0.0,
                               -0.005 if dear == "bybit" else 0.0, until)


@contextlib.asynccontextmanager
async def two_venues(settings, r, symbols: tuple[str, ...] = (SYMBOL,), pair: tuple[str, str] = ("bybit", "okx"),
                     premium_bps: float | None = 60.0):
    """The simulator with its trading APIs, the ingestors of the two venues of `pair`, and
    settings for a live cross executor at both. The harder-leg venue is held `premium_bps`
    above the other, its funding 0.5 % above, for ten minutes (None: as the model moves): a
    trade long the easier venue and short the harder one then stays open until it is closed
    (no funding or spread exit), one the other way exits at once."""
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(list(symbols), seed=3, step_ms=10, api_keys={key: secret},
                       api_passphrases={key: settings.sim_api_passphrase.get_secret_value()})
    hard, easy = sorted(pair, key=lambda v: EASE[v])
    if premium_bps is not None:
        hold_premium(server, symbols, hard, easy, premium_bps, 600)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]),
                                               "symbols_to_trade": list(symbols), "execution": "live",
                                               "executor_venues": list(pair), "exit_max_hold_s": 600.0})
        stop = asyncio.Event()
        feeds = [asyncio.ensure_future(Ingestor(settings, name, list(symbols)).run(stop)) for name in pair]
        await wait_for(lambda: _both_quoted(r, settings.redis_key_prefix, symbols, hard, easy, premium_bps))
        try:
            yield TwoVenues(server, base, settings, r, http, pair=pair)
        finally:
            stop.set()
            await asyncio.gather(*feeds)


async def _both_quoted(r, prefix: str, symbols: tuple[str, ...], dear: str, cheap: str,
                       premium_bps: float | None) -> bool:
    """Each symbol has books in md:books and quotes in md:tickers from both venues, `dear`'s at
    the premium held (so that an executor started now sees the market the venues trade at, not
    the model's first step)."""
    booked = {(from_fields(fields).venue, from_fields(fields).symbol)
              for _, fields in await r.xrevrange(prefix + "md:{0}:books", count=400)}
    quotes = {}
    for _, fields in await r.xrevrange(prefix + "md:{0}:tickers", count=400):
        event = from_fields(fields)
        if event.bid and event.ask:
            quotes.setdefault((event.venue, event.symbol), event)
    for symbol in symbols:
        high, low = quotes.get((dear, symbol)), quotes.get((cheap, symbol))
        if not (high and low and {(dear, symbol), (cheap, symbol)} <= booked):
            return False
        if premium_bps is not None and high.bid < low.ask * (1 + premium_bps / 2 / 10_000):
            return False
    return True


@contextlib.asynccontextmanager
async def cross_executor(venues: TwoVenues, **changes):
    """A live cross executor at the two venues (see `executor_running`). The funding exit is off:
    the funding the executor sees of a venue may be pushed only every 30 s, so a trade could exit
    on a rate read before the harness's premium; these tests close trades by time or by stopping."""
    async with executor_running(venues, _mode="cross", _config={"funding_exit_8h": -1.0}, **changes) as executor:
        yield executor
