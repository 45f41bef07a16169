"""The Binance trading client (shared/venues/binance/trading.py) against the in-process
simulator's Binance USD-M (services/sim/binance_routes.py): orders placed, filled, looked up
and cancelled in hedge mode, positions, balance, the income ledger, the simulator's refusals as
kinds (duplicate ids, GTX -5022, the minimum notional, the key), faults, rate limits, and the
user-data stream: its reconnect with a REST catch-up, and a listenKey that expires or is gone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import aiohttp
import pytest

from services.sim import binance_trade
from services.sim.faults import Faults
from services.sim.server import SimServer
from shared.venues.binance import rest as binance_rest
from shared.venues.binance.trading import BinanceTrading
from shared.venues.trading import FillUpdate, OrderSpec, OrderUpdate, OutcomeUnknown, PositionUpdate, Refused
from tests.conftest import serve_app

KEY, SECRET = "binance-sim-key", "binance-sim-secret"
T0 = 1_800_000_000_000


class Venue:
    """The simulator (stepped by hand, on a clock the test moves) and a client of its Binance."""

    def __init__(self, server: SimServer, trading: BinanceTrading, now: list[float]) -> None:
        self.server, self.trading, self.now = server, trading, now
        self.sim = server.trading["binance"]
        self.updates: list[object] = []
        self.skipped: list[tuple] = []

    def price(self, symbol: str, side: str) -> Decimal:
        """Binance's best bid or ask now."""
        state = self.server.model.states[symbol]
        bids, asks = self.sim.matching.view.sides(state)
        ticks = max(bids) if side == "bid" else min(asks)
        return state.inst.tick * ticks

    async def on_message(self, message: object) -> None:
        updates, skipped = self.trading.parse_private(message)
        self.updates += updates
        self.skipped += skipped

    async def heard(self, what, timeout: float = 5.0) -> list:
        """The stream's updates that `what` accepts, once there is one."""
        deadline = time.monotonic() + timeout
        while not (found := [u for u in self.updates if what(u)]):
            assert time.monotonic() < deadline, f"not heard; heard {self.updates}"
            await asyncio.sleep(0.02)
        return found


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def simulated(faults: Faults | None = None, secret: str = SECRET, key: str = KEY, stream: bool = True,
                    real_time: bool = False, hedge: bool = True, **options):
    """The simulator at T0 on a clock the test moves (or one that runs, `real_time`)."""
    now, start = [T0 / 1000], time.monotonic()
    clock = (lambda: T0 / 1000 + time.monotonic() - start) if real_time else (lambda: now[0])
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=clock, api_keys={KEY: SECRET},
                       faults=faults)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        bodies = []
        for path in ("/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"):
            async with http.get(base + path) as response:
                bodies.append(await response.read())
        trading = BinanceTrading.for_account(http, base, base.replace("http", "ws"), (key, secret),
                                             binance_rest.instruments(bodies), demo=True, clock=clock,
                                             spot_url=base, **options)
        venue = Venue(server, trading, now)
        if hedge:
            await trading.ensure_position_mode(["BTCUSDT"])
        stop = asyncio.Event()
        running = None
        if stream:
            connected = asyncio.Event()

            async def on_connected() -> None:
                connected.set()

            running = asyncio.ensure_future(trading.private_stream(venue.on_message, on_connected).run(stop))
            await asyncio.wait_for(connected.wait(), 5)
        try:
            yield venue
        finally:
            stop.set()
            if running is not None:
                await asyncio.wait_for(running, 5)


def spec(link_id: str, side: str = "Buy", qty: str = "0.003", price: Decimal | None = None,
         symbol: str = "BTCUSDT", **fields) -> OrderSpec:
    return OrderSpec(link_id=link_id, symbol=symbol, side=side, qty=Decimal(qty), price=price,
                     position_side=fields.pop("position_side", "long" if side == "Buy" else "short"), **fields)


async def test_the_account_is_set_up_in_hedge_mode_and_its_key_checked():
    async with simulated(stream=False, hedge=False) as venue:
        trading = venue.trading
        assert abs(await trading.sync_time()) < 1000
        ok, seen = await trading.position_mode()
        assert ok and seen.startswith("one-way")
        await trading.ensure_position_mode(["BTCUSDT"])
        assert (await trading.position_mode())[1].startswith("hedge mode")
        await trading.ensure_position_mode(["BTCUSDT"])  # already: nothing sent
        # position_mode and each ensure read the mode (4 GETs); only the first ensure switched it (1 POST)
        assert [r.path for r in venue.server.journal].count("/fapi/v1/positionSide/dual") == 5
        await trading.set_leverage("BTCUSDT", 5)
        assert venue.sim.matching.account(KEY).leverage["BTCUSDT"] == 5
        assert await trading.fee_rates("BTCUSDT") == (Decimal("0.0002"), Decimal("0.0005"))
        assert await trading.key_problems() == []  # bound to 127.0.0.1, cannot withdraw, fees in USDT
        balance = await trading.balance()
        assert balance.currency == "USDT" and balance.equity == balance.available == 100_000
        assert await trading.positions() == [] and await trading.open_orders() == []
        await trading.prepare()  # what the simulator's exchangeInfo lists (none yet: then Binance's -4164 decides)
        assert trading.min_notional in ({}, {s: n for s, n in binance_trade.MIN_NOTIONAL.items() if s in ("BTCUSDT",
                                                                                                     "ETHUSDT")})


async def test_a_key_that_may_withdraw_or_is_bound_to_no_ip_is_a_problem():
    async with simulated(Faults(key_wallet=True, key_ips=["*"]), stream=False) as venue:
        assert await venue.trading.key_problems() == ["it may withdraw funds (enableWithdrawals)",
                                                      "it is bound to no IP address (ipRestrict is false)"]


async def test_one_way_mode_cannot_switch_with_a_position_open():
    async with simulated(stream=False, hedge=False) as venue:
        trading = venue.trading
        await trading.rest.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                              "quantity": "0.002"})
        with pytest.raises(Refused) as refusal:
            await trading.ensure_position_mode(["BTCUSDT"])
        assert refusal.value.code == "-4068" and "close every position" in refusal.value.message


async def test_a_resting_order_is_placed_found_heard_and_cancelled():
    async with simulated() as venue:
        trading = venue.trading
        price = (venue.price("BTCUSDT", "bid") * Decimal("0.95")).quantize(Decimal("0.1"))
        order_id = await trading.place(spec("a1b2c3d4e5f6-LE1", price=price))
        found = await trading.order("BTCUSDT", "a1b2c3d4e5f6-LE1")
        assert found == OrderUpdate(link_id="a1b2c3d4e5f6-LE1", order_id=order_id, symbol="BTCUSDT", status="open",
                                    filled_qty=Decimal(0))
        assert [o.link_id for o in await trading.open_orders()] == ["a1b2c3d4e5f6-LE1"]
        await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "open")
        positions = await trading.positions()  # a symbol with an open order shows both sides at 0
        assert {(p.position_side, p.qty) for p in positions} == {("long", 0), ("short", 0)}
        await trading.cancel("BTCUSDT", "a1b2c3d4e5f6-LE1")
        [cancelled] = await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "cancelled")
        assert cancelled.link_id == "a1b2c3d4e5f6-LE1" and cancelled.reason == "CANCELED"
        assert (await trading.order("BTCUSDT", "a1b2c3d4e5f6-LE1")).status == "cancelled"
        with pytest.raises(Refused) as refusal:
            await trading.cancel("BTCUSDT", "a1b2c3d4e5f6-LE1")
        assert (refusal.value.kind, refusal.value.code) == ("too_late", "-2011")
        assert await trading.order("BTCUSDT", "ffffffffffff-XX1") is None
        assert await trading.fills("BTCUSDT", "ffffffffffff-XX1") == []
        assert venue.skipped == []


async def test_a_market_order_fills_into_fills_positions_balance_and_the_stream():
    async with simulated() as venue:
        trading = venue.trading
        before = await trading.balance()
        await trading.place(spec("0123456789ab-LE1", qty="0.0039"))  # floored to the step: 0.003
        found = await trading.order("BTCUSDT", "0123456789ab-LE1")
        assert found.status == "filled" and found.filled_qty == Decimal("0.003")
        fills = await trading.fills("BTCUSDT", "0123456789ab-LE1")
        assert sum(f.qty for f in fills) == Decimal("0.003")
        assert all(f.fee == f.qty * f.price * Decimal("0.0005") and not f.maker for f in fills)
        heard = await venue.heard(lambda u: isinstance(u, FillUpdate))
        await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "filled")
        assert {(f.fill_id, f.fee) for f in heard} == {(f.fill_id, f.fee) for f in fills}
        [position] = [p for p in await trading.positions() if p.qty]
        assert position == PositionUpdate(symbol="BTCUSDT", qty=Decimal("0.003"), position_side="long")
        await venue.heard(lambda u: isinstance(u, PositionUpdate) and u.qty == Decimal("0.003"))
        after = await trading.balance()
        assert after.available < before.available
        assert after.equity - before.equity == venue.sim.matching.unrealised(
            venue.sim.matching.account(KEY).positions[("BTCUSDT", 1)]) - sum(f.fee for f in fills)
        # closing: SELL on the LONG side, no reduceOnly (refused in hedge mode); under the minimum notional is fine
        await trading.place(spec("0123456789ab-LX1", side="Sell", qty="0.003", reduce_only=True,
                                 position_side="long"))
        assert [p.qty for p in await trading.positions() if p.qty] == []
        await venue.heard(lambda u: isinstance(u, PositionUpdate) and u.qty == 0)
        close = [q for q in venue.server.journal if q.link_id == "0123456789ab-LX1"]
        assert close[0].reduce_only and close[0].ret_code == 0
        assert venue.skipped == []


async def test_a_post_only_that_would_take_is_refused_with_5022():
    async with simulated(stream=False) as venue:
        through = venue.price("BTCUSDT", "ask") + Decimal(50)
        with pytest.raises(Refused) as refusal:
            await venue.trading.place(spec("0123456789ab-PO1", price=through, tif="post_only"))
        assert (refusal.value.kind, refusal.value.code) == ("post_only", "-5022")
        assert await venue.trading.order("BTCUSDT", "0123456789ab-PO1") is None  # not recorded
        below = venue.price("BTCUSDT", "bid") - Decimal(50)
        await venue.trading.place(spec("0123456789ab-PO2", price=below, tif="post_only"))
        assert (await venue.trading.order("BTCUSDT", "0123456789ab-PO2")).status == "open"


async def test_sizes_under_the_minimums():
    async with simulated(stream=False) as venue:
        sent = len(venue.server.journal)
        with pytest.raises(Refused) as unsent:
            await venue.trading.place(spec("0123456789ab-MN1", qty="0.0009"))  # under minQty: refused here
        assert (unsent.value.kind, unsent.value.code) == ("below_minimum", "local")
        assert len(venue.server.journal) == sent
        with pytest.raises(Refused) as notional:  # 0.001 BTC is about 65 USDT, under BTCUSDT's 100
            await venue.trading.place(spec("0123456789ab-MN2", qty="0.001"))
        assert (notional.value.kind, notional.value.code) == ("below_minimum", "-4164")
        venue.trading.min_notional["BTCUSDT"] = Decimal(100)  # as prepare() loads it from Binance's exchangeInfo
        price = venue.price("BTCUSDT", "bid") - Decimal(100)
        with pytest.raises(Refused) as local:
            await venue.trading.place(spec("0123456789ab-MN3", qty="0.001", price=price))
        assert (local.value.kind, local.value.code) == ("below_minimum", "local")


async def test_a_client_id_is_refused_while_its_order_is_open_and_free_after():
    async with simulated(stream=False) as venue:
        trading = venue.trading
        price = (venue.price("BTCUSDT", "bid") * Decimal("0.9")).quantize(Decimal("0.1"))
        await trading.place(spec("0123456789ab-DU1", price=price))
        with pytest.raises(Refused) as again:
            await trading.place(spec("0123456789ab-DU1", price=price))
        assert (again.value.kind, again.value.code) == ("duplicate", "-4116")
        await trading.cancel("BTCUSDT", "0123456789ab-DU1")
        await trading.place(spec("0123456789ab-DU1", price=price))  # Binance's ids are unique among open orders
        assert (await trading.order("BTCUSDT", "0123456789ab-DU1")).status == "open"


async def test_real_refusals_of_the_engine():
    async with simulated(stream=False) as venue:
        trading = venue.trading
        price = (venue.price("BTCUSDT", "bid") * Decimal("0.9")).quantize(Decimal("0.1"))
        with pytest.raises(Refused) as too_much:
            await trading.place(spec("0123456789ab-BG2", qty="100", price=price))
        assert (too_much.value.kind, too_much.value.code) == ("insufficient_margin", "-2019")
        with pytest.raises(Refused) as nothing_to_close:
            await trading.place(spec("0123456789ab-CL1", side="Sell", qty="0.002", position_side="long"))
        assert (nothing_to_close.value.kind, nothing_to_close.value.code) == ("reduce_only", "-2022")
        with pytest.raises(Refused) as one_way:  # a one-way order in hedge mode
            await trading.rest.request("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY",
                                                                  "type": "MARKET", "quantity": "0.002"})
        assert (one_way.value.kind, one_way.value.code) == ("invalid", "-4061")


@pytest.mark.parametrize(("code", "kind", "binance"), [
    (110007, "insufficient_margin", "-2019"), (110072, "duplicate", "-4116"), (5022, "post_only", "-5022"),
    (4164, "below_minimum", "-4164"), (110017, "reduce_only", "-2022"), (10004, "bad_signature", "-1022"),
    (10003, "unknown_key", "-2015"), (10001, "invalid", "-1102"), (4061, "invalid", "-4061"),
    (2019, "insufficient_margin", "-2019")])
async def test_the_simulators_refusals_arrive_as_kinds(code, kind, binance):
    async with simulated(Faults(reject_next=1, reject_code=code), stream=False, hedge=False) as venue:
        with pytest.raises(Refused) as refusal:
            await venue.trading.place(spec("0123456789ab-RJ1"))
        assert (refusal.value.kind, refusal.value.code) == (kind, binance)


@pytest.mark.parametrize("code", [10016, 1007, 1006, 99999])
async def test_the_simulators_answers_that_do_not_say_are_outcome_unknown(code):
    async with simulated(Faults(reject_next=1, reject_code=code), stream=False, hedge=False) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.trading.place(spec("0123456789ab-UK1"))


async def test_reject_link_ids_matches_the_new_client_order_id():
    async with simulated(Faults(reject_link_ids="E2$", reject_code=110007), stream=False) as venue:
        await venue.trading.place(spec("0123456789ab-LE1"))
        with pytest.raises(Refused) as refusal:
            await venue.trading.place(spec("0123456789ab-LE2"))
        assert refusal.value.code == "-2019"


async def test_a_dropped_answer_raises_outcome_unknown_and_the_order_is_found():
    async with simulated(Faults(drop_order_responses=1), stream=False) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.trading.place(spec("0123456789ab-DR1"))
        found = await venue.trading.order("BTCUSDT", "0123456789ab-DR1")
        assert found is not None and found.status == "filled" and found.filled_qty == Decimal("0.003")
        assert sum(f.qty for f in await venue.trading.fills("BTCUSDT", "0123456789ab-DR1")) == Decimal("0.003")
        assert [q.dropped for q in venue.server.journal if q.path == "/fapi/v1/order"] == [True, False]


async def test_unfilled_and_partial_fill_faults():
    async with simulated(Faults(unfilled=True), stream=False) as venue:
        await venue.trading.place(spec("0123456789ab-UF1"))
        found = await venue.trading.order("BTCUSDT", "0123456789ab-UF1")
        assert (found.status, found.filled_qty) == ("open", 0)
    async with simulated(Faults(partial_fill_fraction=0.5, partial_fill_orders=1)) as venue:
        await venue.trading.place(spec("0123456789ab-PF1", qty="0.004"))
        found = await venue.trading.order("BTCUSDT", "0123456789ab-PF1")
        assert (found.status, found.filled_qty, found.reason) == ("cancelled", Decimal("0.002"), "EXPIRED")
        await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "cancelled")
        assert sum(u.qty for u in venue.updates if isinstance(u, FillUpdate)) == Decimal("0.002")


async def test_funding_settled_on_a_position_is_in_the_income_ledger():
    async with simulated(stream=False) as venue:
        trading, server = venue.trading, venue.server
        await trading.place(spec("0123456789ab-FD1", qty="0.005"))
        await trading.place(spec("0123456789ab-FD2", side="Sell", qty="0.02", symbol="ETHUSDT"))
        settle = server.model.next_funding_ms("BTCUSDT")
        venue.now[0] = settle / 1000
        server.step()
        paid = await trading.funding_payments(since_ms=T0)
        engine = [e for e in venue.sim.matching.account(KEY).executions if e.exec_type == "Funding"]
        assert len(paid) == len(engine) == 2
        by_symbol = {p.symbol: p for p in paid}
        assert by_symbol["BTCUSDT"].side == "Buy" and by_symbol["ETHUSDT"].side == "Sell"
        assert {p.amount for p in paid} == {e.fee for e in engine}  # paid > 0, as the engine counts it
        assert all(p.ts_ms == settle for p in paid)
        assert await trading.funding_payments(since_ms=settle + 1) == []


async def test_a_rate_limited_order_waits_and_goes_through():
    async with simulated(Faults(rate_limit_per_s=2), stream=False, real_time=True) as venue:
        for n in range(3):
            await venue.trading.place(spec(f"0123456789ab-RL{n}"))
        assert venue.trading.rest.counts["rate_limited"] >= 1
        refused = [r for r in venue.server.journal if r.ret_code == -1003]
        assert refused and all(r.path == "/fapi/v1/order" for r in refused)
        assert len([p for p in await venue.trading.positions() if p.qty]) == 1


async def test_the_order_count_headers_are_read():
    async with simulated(stream=False) as venue:
        for n in range(2):
            await venue.trading.place(spec(f"0123456789ab-HC{n}"))
        used = venue.trading.rest.used
        assert used["x-mbx-order-count-10s"][0] == 2 and used["x-mbx-order-count-1m"][0] == 2
        assert used["x-mbx-used-weight-1m"][0] > 0


async def test_a_skewed_clock_is_measured_again_after_1021():
    async with simulated(Faults(clock_skew_ms=8_000), stream=False, hedge=False) as venue:
        balance = await venue.trading.balance()
        assert balance.equity == 100_000 and venue.trading.rest.counts["clock_resyncs"] == 1
        assert [q.ret_code for q in venue.server.journal] == [-1021, 0]


async def test_a_wrong_secret_or_key_is_refused_as_a_key_problem():
    async with simulated(secret="not-it", stream=False, hedge=False) as venue:
        with pytest.raises(Refused) as refusal:
            await venue.trading.balance()
        assert refusal.value.kind == "bad_signature" and "not-it" not in str(refusal.value)
    async with simulated(key="someone-else", stream=False, hedge=False) as venue:
        with pytest.raises(Refused) as refusal:
            await venue.trading.balance()
        assert (refusal.value.kind, refusal.value.code) == ("unknown_key", "-2015")

        async def on_connected() -> None:
            raise AssertionError("never connected")

        stream = venue.trading.private_stream(venue.on_message, on_connected)
        with pytest.raises(Refused) as listen_key:
            await asyncio.wait_for(stream.run(asyncio.Event()), 5)
        assert listen_key.value.kind == "unknown_key" and stream.connects == 0


# ---------------------------------------------------------------------- the user-data stream

@contextlib.asynccontextmanager
async def streaming(venue: Venue, on_connected=None):
    connects: list[int] = []

    async def connected() -> None:
        connects.append(stream.connects)
        if on_connected is not None:
            await on_connected(stream.connects)

    stream = venue.trading.private_stream(venue.on_message, connected)
    stop = asyncio.Event()
    running = asyncio.ensure_future(stream.run(stop))
    try:
        await asyncio.wait_for(stream.connected.wait(), 5)
        yield stream, connects
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)


async def test_the_stream_reconnects_after_a_drop_and_catches_up_a_fill_made_meanwhile():
    async with simulated(stream=False) as venue:
        trading = venue.trading
        placed = asyncio.Event()
        caught_up: list[object] = []

        async def on_connected(n: int) -> None:
            if n == 2:  # the catch-up after the reconnect, by REST, as the executor does it
                await placed.wait()
                caught_up.append(await trading.order("BTCUSDT", "0123456789ab-RC1"))
                caught_up.extend(await trading.fills("BTCUSDT", "0123456789ab-RC1"))

        async with streaming(venue, on_connected) as (stream, connects):
            first_key = next(iter(venue.sim.listen_keys))
            assert venue.server.drop_all() >= 1
            await until(lambda: not stream.connected.is_set())
            await trading.place(spec("0123456789ab-RC1"))  # filled while the stream is down
            placed.set()
            await until(lambda: stream.connects == 2)
            assert connects == [1, 2]
            await until(lambda: len(caught_up) >= 2)
            order, *fills = caught_up
            assert order.status == "filled" and sum(f.qty for f in fills) == Decimal("0.003")
            assert stream.keys_asked == 2 and list(venue.sim.listen_keys) == [first_key]  # the same key, extended
            # the stream works again
            await trading.place(spec("0123456789ab-RC2"))
            await venue.heard(lambda u: isinstance(u, FillUpdate) and u.link_id == "0123456789ab-RC2")


async def test_an_expired_listen_key_is_replaced_by_a_new_one():
    async with simulated(stream=False) as venue, streaming(venue) as (stream, connects):
        [first_key] = venue.sim.listen_keys
        venue.now[0] += 61 * 60  # no keepalive for over an hour of the simulator's clock
        venue.server.step()
        await until(lambda: stream.connects == 2)
        [second_key] = venue.sim.listen_keys
        assert second_key != first_key and stream.keys_asked == 2 and connects == [1, 2]
        await venue.trading.place(spec("0123456789ab-EX1"))
        await venue.heard(lambda u: isinstance(u, FillUpdate) and u.link_id == "0123456789ab-EX1")


async def test_a_keepalive_of_a_key_that_is_gone_gets_a_new_key():
    async with simulated(stream=False, keepalive_s=0.2) as venue, streaming(venue) as (stream, _):
        await until(lambda: stream.keepalives >= 1)
        [first_key] = venue.sim.listen_keys
        venue.sim.listen_keys.clear()  # Binance forgot it: the next keepalive answers -1125
        await until(lambda: stream.connects == 2)
        assert list(venue.sim.listen_keys) != [first_key] and len(venue.sim.listen_keys) == 1
        assert any(q.ret_code == -1125 for q in venue.server.journal)
