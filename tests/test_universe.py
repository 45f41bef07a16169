"""Universe mode (SYMBOLS_TO_TRADE=all): the rule, the venues' lists through the simulator's
REST, an ingestor following listings and delistings, the cheap market model, and a delisted
symbol's trade closed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from services.ingestor.service import Ingestor, load_symbols, venue_hosts
from services.sim.market import MarketModel, Universe
from services.sim.server import SimServer
from shared.settings import Settings
from shared.universe import Listings, universe
from shared.venues import venue
from tests.conftest import serve_app


def test_the_universe_is_what_two_or_more_venues_list():
    listings = {"bybit": ["A", "B", "C"], "okx": ["B", "C", "D"], "binance": ["C", "E", "E"]}
    assert universe(listings) == ["B", "C"]
    assert universe(listings, min_venues=3) == ["C"]
    assert universe({"bybit": ["A"]}) == []


def test_settings_all_is_universe_mode_and_stands_alone():
    from pydantic import ValidationError

    s = Settings(_env_file=None, symbols_to_trade="all", executor_venues="bybit,okx")
    assert s.universe and s.universe_from() == ["bybit", "okx"]
    assert Settings(_env_file=None, symbols_to_trade="all", universe_venues="okx,gate").universe_from() == [
        "okx", "gate"]
    assert not Settings(_env_file=None).universe
    with pytest.raises(ValidationError, match="'all' stands alone"):
        Settings(_env_file=None, symbols_to_trade="all,BTCUSDT")


def test_the_cheap_model_steps_most_symbols_at_the_ticker_rate_and_the_rest_every_step():
    u = Universe.of(40, full=4)
    model = MarketModel(u.symbols, seed=5, start_ms=0, cheap=u.cheap, unlisted=u.unlisted)
    full, cheap = "SIM0USDT", "SIM20USDT"
    assert full not in u.cheap and cheap in u.cheap and "BTCUSDT" not in u.cheap
    before = {s: model.states[s].book_version for s in (full, cheap)}
    steps = 50  # 1 s of 20 ms steps
    stepped_per_step = []
    for i in range(1, steps + 1):
        versions = {s: st.book_version for s, st in model.states.items()}
        model.step(i * 20)
        stepped_per_step.append(sum(st.book_version != versions[s] for s, st in model.states.items()))
    assert model.states[full].book_version - before[full] == steps
    assert model.states[cheap].book_version - before[cheap] == steps * 20 // 100
    assert len(model.states[cheap].bids) == model.config.cheap_book_levels
    # staggered: every step moves the full ones and about a fifth of the cheap ones, not all at once
    assert max(stepped_per_step) - min(stepped_per_step) <= 2, stepped_per_step
    # each venue leaves about one in five made-up symbols out, and lists the real ones
    for v in ("bybit", "okx"):
        listed = model.listed(v)
        assert "BTCUSDT" in listed and 0.6 * 40 < sum(s.startswith("SIM") for s in listed) < 0.95 * 40


async def test_listings_follow_the_venues_and_a_failed_or_collapsed_list_is_not_believed_at_once():
    u = Universe.of(60)
    server = SimServer([], seed=2, universe=u)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        s = Settings(_env_file=None, sim_port=int(base.rsplit(":", 1)[1]))

        def load(name, http):
            return load_symbols(venue(name), venue_hosts(s, venue(name)), http)

        listings = Listings(["bybit", "okx", "binance"], load)
        assert await listings.read(http) == {}
        expected = universe({v: server.model.listed(v) for v in ("bybit", "okx", "binance")})
        assert listings.symbols() == expected and "BTCUSDT" in expected
        two = next(x for x in expected if sum(x in server.model.listed(v) for v in ("bybit", "okx", "binance")) == 2)
        holder = next(v for v in ("bybit", "okx", "binance") if two in server.model.listed(v))
        async with http.post(f"{base}/admin/listing", json={"symbol": two, "venue": holder, "listed": False}) as r:
            assert r.status == 200
        await listings.read(http)
        assert two not in listings.symbols()  # listed on one venue now: no cross-venue market
        for symbol in server.model.listed("okx"):  # OKX's list collapses
            server.model.list_symbol(symbol, "okx", False)
        await listings.read(http)
        assert len(listings.maps["okx"]) > 0  # suspect: the last list is kept
        await listings.read(http)
        assert len(listings.maps["okx"]) == 0  # said twice: believed
    # the venue does not answer at all: the last lists stay
    gone = Listings(["bybit"], load)
    gone.maps = dict(listings.maps)
    async with aiohttp.ClientSession() as http:
        assert list(await gone.read(http)) == ["bybit"]  # said, with why
    assert gone.maps["bybit"] is listings.maps["bybit"]


@pytest.mark.redis
async def test_an_ingestor_in_universe_mode_reads_its_share_and_follows_a_delisting(settings, r):
    u = Universe.of(40)
    server = SimServer([], seed=3, universe=u)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        settings = settings.model_copy(update={
            "sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": ["ALL"],
            "universe_venues": ["bybit", "okx", "binance"], "universe_refresh_s": 0.3})
        expected = universe({v: server.model.listed(v) for v in ("bybit", "okx", "binance")})
        share = [x for x in expected if x in server.model.listed("okx")]
        ingestor = Ingestor(settings, "okx", ["ALL"])
        stop = asyncio.Event()
        task = asyncio.ensure_future(ingestor.run(stop, report_every_s=3600))
        okx = next(d for d in server.dialects if type(d).__name__ == "OkxDialect")

        def subscribed() -> set[str]:
            return {t.partition(":")[2].removesuffix("-USDT-SWAP").replace("-", "") + "USDT"
                    for t in server.subscribers[okx] if t.startswith("tickers:")}

        try:
            async with asyncio.timeout(20):
                while subscribed() != set(share):
                    await asyncio.sleep(0.05)
            delisted = share[-1]
            async with http.post(f"{base}/admin/listing", json={"symbol": delisted, "venue": "okx",
                                                                "listed": False}) as response:
                assert response.status == 200
            async with asyncio.timeout(20):
                while subscribed() != set(share[:-1]):
                    await asyncio.sleep(0.05)
            assert ingestor.universe_changes == 1
        finally:
            stop.set()
            report = await asyncio.wait_for(task, 15)
    assert report.parse_errors == 0 and report.pushed > 0
    written = {f[b"symbol"].decode() for _, f in await r.xrange(settings.md_streams()["ticker"], count=5000)}
    assert written <= set(share) and len(written) > len(share) // 2
