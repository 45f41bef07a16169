"""The OKX trading client (shared/venues/okx/trading.py) against the in-process simulator's
OKX V5 (services/sim/okx_trade.py): orders placed, filled, looked up and cancelled, positions,
balance, funding bills and the private stream's events, refusals as kinds, and an answer
dropped in flight raising OutcomeUnknown while order() then finds the order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import aiohttp
import pytest

from services.sim.faults import Faults
from services.sim.server import SimServer
from shared.venues.okx import rest as okx_rest
from shared.venues.okx.trading import OkxTrading
from shared.venues.trading import (
    BalanceUpdate,
    FillUpdate,
    OrderSpec,
    OrderUpdate,
    OutcomeUnknown,
    PositionUpdate,
    Refused,
)
from tests.conftest import serve_app

KEY, SECRET, PASSPHRASE = "okx-sim-key", "okx-sim-secret", "okx-sim-pass"
T0 = 1_800_000_000_000


class Venue:
    """The simulator (stepped by hand, on a clock the test moves) and a client of its OKX."""

    def __init__(self, server: SimServer, trading: OkxTrading, now: list[float]) -> None:
        self.server, self.trading, self.now = server, trading, now
        self.updates: list[object] = []
        self.skipped: list[tuple] = []

    def okx_price(self, symbol: str, side: str) -> Decimal:
        """OKX's best bid or ask now."""
        state = self.server.model.states[symbol]
        bids, asks = self.server.okx_matching.view.sides(state)
        ticks = max(t for t, lots in bids.items() if lots) if side == "bid" else min(t for t, lots in asks.items()
                                                                                      if lots)
        return Decimal(str(state.inst.tick)) * ticks

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


@contextlib.asynccontextmanager
async def simulated(faults: Faults | None = None, passphrase: str = PASSPHRASE, stream: bool = True,
                    real_time: bool = False):
    """The simulator at T0 on a clock the test moves (or one that runs, `real_time`)."""
    now, start = [T0 / 1000], time.monotonic()
    clock = (lambda: T0 / 1000 + time.monotonic() - start) if real_time else (lambda: now[0])
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=clock,
                       api_keys={KEY: SECRET}, api_passphrases={KEY: PASSPHRASE}, faults=faults)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v5/public/instruments", params={"instType": "SWAP"}) as response:
            instruments = okx_rest.instruments([await response.read()])
        trading = OkxTrading(http, base, f"{base.replace('http', 'ws')}/ws/v5/private", KEY, SECRET, passphrase,
                             instruments, clock=clock)
        venue = Venue(server, trading, now)
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


def spec(link_id: str, side: str = "Buy", qty: str = "0.03", price: Decimal | None = None, symbol: str = "BTCUSDT",
         **fields) -> OrderSpec:
    return OrderSpec(link_id=link_id, symbol=symbol, side=side, qty=Decimal(qty), price=price,
                     position_side=fields.pop("position_side", "long" if side == "Buy" else "short"), **fields)


async def test_the_account_is_set_up_and_its_key_checked():
    async with simulated(stream=False) as venue:
        trading = venue.trading
        assert abs(await trading.sync_time()) < 1000
        await trading.ensure_position_mode(["BTCUSDT"])
        await trading.set_leverage("BTCUSDT", 5)
        assert await trading.fee_rates("BTCUSDT") == (Decimal("0.0002"), Decimal("0.0005"))
        assert await trading.key_problems() == []  # the simulator's key is bound to 127.0.0.1 and cannot withdraw
        balance = await trading.balance()
        assert balance.currency == "USDT" and balance.equity > 0 and balance.available > 0
        assert await trading.positions() == [] and await trading.open_orders() == []
        await trading.rest.request("POST", "/api/v5/account/set-position-mode", {"posMode": "net_mode"})
        await trading.ensure_position_mode(["BTCUSDT"])
        [config] = await trading.rest.request("GET", "/api/v5/account/config", {})
        assert config["posMode"] == "long_short_mode"


async def test_a_key_that_may_withdraw_or_is_bound_to_no_ip_is_a_problem():
    async with simulated(Faults(key_wallet=True, key_ips=["*"]), stream=False) as venue:
        assert await venue.trading.key_problems() == ["it may withdraw funds (perm: read_only, withdraw, trade)",
                                                      "it is bound to no IP address (ip is empty)"]


async def test_the_stream_reconnects_after_a_drop_and_catches_up_again():
    async with simulated(stream=False) as venue:
        connects: list[int] = []

        async def on_connected() -> None:
            connects.append(1)

        stream = venue.trading.private_stream(venue.on_message, on_connected)
        stop = asyncio.Event()
        running = asyncio.ensure_future(stream.run(stop))
        try:
            await asyncio.wait_for(stream.connected.wait(), 5)
            venue.server.drop_all()
            deadline = time.monotonic() + 5
            while stream.connects < 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert len(connects) == 2
            await venue.trading.place(spec("0123456789ab-RC1", qty="0.01"))
            await venue.heard(lambda u: isinstance(u, FillUpdate) and u.link_id == "0123456789ab-RC1")
        finally:
            stop.set()
            await asyncio.wait_for(running, 5)


async def test_a_resting_order_is_placed_found_heard_and_cancelled():
    async with simulated() as venue:
        trading = venue.trading
        price = (venue.okx_price("BTCUSDT", "bid") * Decimal("0.95")).quantize(Decimal("0.1"))
        order_id = await trading.place(spec("a1b2c3d4e5f6-LE1", qty="0.02", price=price))
        found = await trading.order("BTCUSDT", "a1b2c3d4e5f6-LE1")
        assert found == OrderUpdate(link_id="a1b2c3d4e5f6-LE1", order_id=order_id, symbol="BTCUSDT", status="open",
                                    filled_qty=Decimal(0))
        assert [o.link_id for o in await trading.open_orders()] == ["a1b2c3d4e5f6-LE1"]
        await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "open")
        await trading.cancel("BTCUSDT", "a1b2c3d4e5f6-LE1")
        [cancelled] = await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "cancelled")
        assert cancelled.link_id == "a1b2c3d4e5f6-LE1" and cancelled.reason.startswith("cancelSource 1")
        assert (await trading.order("BTCUSDT", "a1b2c3d4e5f6-LE1")).status == "cancelled"
        with pytest.raises(Refused) as refusal:
            await trading.cancel("BTCUSDT", "a1b2c3d4e5f6-LE1")
        assert refusal.value.kind in ("too_late", "not_found")
        assert await trading.order("BTCUSDT", "ffffffffffff-XX1") is None
        assert venue.skipped == []


async def test_a_market_order_fills_into_fills_positions_balance_and_the_stream():
    async with simulated() as venue:
        trading = venue.trading
        before = await trading.balance()
        lot = trading.by_symbol["BTCUSDT"].lot
        assert lot == Decimal("0.1")  # contracts of 0.01 BTC
        await trading.place(spec("0123456789ab-LE1", qty="0.0399"))  # 3.99 contracts, floored to 3.9
        found = await trading.order("BTCUSDT", "0123456789ab-LE1")
        assert found.status == "filled" and found.filled_qty == Decimal("0.039")
        fills = await trading.fills("BTCUSDT", "0123456789ab-LE1")
        assert sum(f.qty for f in fills) == Decimal("0.039") and all(f.fee > 0 and not f.maker for f in fills)
        heard = await venue.heard(lambda u: isinstance(u, FillUpdate))
        await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "filled")
        assert {f.fill_id for f in heard} == {f.fill_id for f in fills}
        assert {f.link_id for f in heard} == {"0123456789ab-LE1"}
        [position] = [p for p in await trading.positions() if p.qty]
        assert position == PositionUpdate(symbol="BTCUSDT", qty=Decimal("0.039"), position_side="long")
        await venue.heard(lambda u: isinstance(u, PositionUpdate) and u.qty == Decimal("0.039"))
        await venue.heard(lambda u: isinstance(u, BalanceUpdate))
        after = await trading.balance()
        assert after.available < before.available
        # closing: the opposite side on the same posSide
        await trading.place(spec("0123456789ab-LX1", side="Sell", qty="0.039", reduce_only=True,
                                 position_side="long"))
        assert [p.qty for p in await trading.positions() if p.qty] == []
        await venue.heard(lambda u: isinstance(u, PositionUpdate) and u.qty == 0)
        assert venue.skipped == []


async def test_a_post_only_that_would_take_is_cancelled_as_post_only():
    async with simulated() as venue:
        trading = venue.trading
        through = venue.okx_price("BTCUSDT", "ask") + Decimal(50)
        await trading.place(spec("0123456789ab-PO1", qty="0.01", price=through, tif="post_only"))
        found = await trading.order("BTCUSDT", "0123456789ab-PO1")
        assert (found.status, found.kind, found.filled_qty) == ("cancelled", "post_only", 0)
        [heard] = await venue.heard(lambda u: isinstance(u, OrderUpdate) and u.status == "cancelled")
        assert heard.kind == "post_only" and heard.link_id == "0123456789ab-PO1"


async def test_an_order_under_the_minimum_is_refused_unsent():
    async with simulated(stream=False) as venue:
        sent = len(venue.server.journal)
        with pytest.raises(Refused) as refusal:
            await venue.trading.place(spec("0123456789ab-MN1", qty="0.00009"))
        assert refusal.value.kind == "below_minimum" and len(venue.server.journal) == sent


@pytest.mark.parametrize(("code", "kind"), [(51008, "insufficient_margin"), (51016, "duplicate"),
                                            (51020, "below_minimum"), (51169, "reduce_only"), (50113, "bad_signature"),
                                            (51000, "invalid")])
async def test_the_simulators_refusals_arrive_as_kinds(code, kind):
    async with simulated(Faults(reject_next=1, reject_code=code), stream=False) as venue:
        with pytest.raises(Refused) as refusal:
            await venue.trading.place(spec("0123456789ab-RJ1"))
        assert (refusal.value.kind, refusal.value.code) == (kind, str(code))


@pytest.mark.parametrize("code", [50001, 50004, 50026, 51149])
async def test_the_simulators_answers_that_do_not_say_are_outcome_unknown(code):
    async with simulated(Faults(reject_next=1, reject_code=code), stream=False) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.trading.place(spec("0123456789ab-UK1"))


async def test_real_refusals_of_the_engine():
    async with simulated(stream=False) as venue:
        trading = venue.trading
        with pytest.raises(Refused) as too_big:  # over the market order's maximum size
            await trading.place(spec("0123456789ab-BG1", qty="1000"))
        assert (too_big.value.kind, too_big.value.code) == ("invalid", "51202")
        price = (venue.okx_price("BTCUSDT", "bid") * Decimal("0.9")).quantize(Decimal("0.1"))
        with pytest.raises(Refused) as too_much:
            await trading.place(spec("0123456789ab-BG2", qty="100", price=price))
        assert too_much.value.kind == "insufficient_margin"
        with pytest.raises(Refused) as nothing_to_close:
            await trading.place(spec("0123456789ab-CL1", side="Sell", qty="0.01", reduce_only=True,
                                     position_side="long"))
        assert nothing_to_close.value.kind == "reduce_only"
        await trading.place(spec("0123456789ab-DU1", qty="0.01", price=price))
        with pytest.raises(Refused) as again:
            await trading.place(spec("0123456789ab-DU1", qty="0.01", price=price))
        assert again.value.kind == "duplicate"


async def test_a_dropped_answer_raises_outcome_unknown_and_the_order_is_found():
    async with simulated(Faults(drop_order_responses=1), stream=False) as venue:
        with pytest.raises(OutcomeUnknown):
            await venue.trading.place(spec("0123456789ab-DR1", qty="0.01"))
        found = await venue.trading.order("BTCUSDT", "0123456789ab-DR1")
        assert found is not None and found.status == "filled" and found.filled_qty == Decimal("0.01")
        assert [f.qty for f in await venue.trading.fills("BTCUSDT", "0123456789ab-DR1")] == [Decimal("0.01")]


async def test_funding_settled_on_a_position_is_a_bill():
    async with simulated(stream=False) as venue:
        trading, server = venue.trading, venue.server
        await trading.place(spec("0123456789ab-FD1", qty="0.05"))
        await trading.place(spec("0123456789ab-FD2", side="Sell", qty="0.02", symbol="ETHUSDT"))
        settle = server.model.next_funding_ms("BTCUSDT")
        venue.now[0] = settle / 1000
        server.step()
        paid = await trading.funding_payments(since_ms=T0)
        engine = [e for e in server.okx_matching.account(KEY).executions if e.exec_type == "Funding"]
        assert len(paid) == len(engine) == 2
        by_symbol = {p.symbol: p for p in paid}
        assert by_symbol["BTCUSDT"].side == "Buy" and by_symbol["ETHUSDT"].side == "Sell"
        assert {p.amount for p in paid} == {e.fee for e in engine}  # paid > 0, as the engine counts it
        assert all(p.ts_ms == settle for p in paid)
        assert await trading.funding_payments(since_ms=settle + 1) == []
        assert await trading.funding_payments(since_ms=T0 - 8 * 86_400_000) == paid  # from /bills-archive
        assert [r.path for r in server.journal][-1] == "/api/v5/account/bills-archive"


async def test_a_rate_limited_order_waits_and_goes_through():
    async with simulated(Faults(rate_limit_per_s=2), stream=False, real_time=True) as venue:
        for n in range(3):
            await venue.trading.place(spec(f"0123456789ab-RL{n}", qty="0.01"))
        assert venue.trading.rest.counts["rate_limited"] >= 1
        refused = [r for r in venue.server.journal if r.ret_code == 50011]
        assert refused and all(r.path == "/api/v5/trade/order" for r in refused)
        assert len([p for p in await venue.trading.positions() if p.qty]) == 1


async def test_a_wrong_passphrase_is_refused_as_a_key_problem():
    async with simulated(passphrase="not-it", stream=False) as venue:
        with pytest.raises(Refused) as refusal:
            await venue.trading.balance()
        assert refusal.value.kind == "unknown_key" and "not-it" not in str(refusal.value)
        async def on_connected() -> None:
            raise AssertionError("never connected")

        stream = venue.trading.private_stream(venue.on_message, on_connected)
        with pytest.raises(Refused) as login:
            await asyncio.wait_for(stream.run(asyncio.Event()), 5)
        assert login.value.kind == "unknown_key" and stream.connects == 0
