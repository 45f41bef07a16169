"""The Bitget client (shared/venues/bitget) against the simulator's Bitget V2 mix trading
(services/sim/bitget_*.py): orders, fills, positions, balance, funding bills, refusals, faults,
and the private stream's pushes and reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal

import aiohttp
import pytest

from services.sim.matching import OrderRequest
from services.sim.server import SimServer
from shared.venues.bitget import client as bitget_client
from shared.venues.bitget import rest
from shared.venues.bitget.trading import BitgetTrading
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

KEY, SECRET, PASSPHRASE = "bitget-sim-key", "bitget-sim-secret", "bitget-sim-pass"
T0 = 1_800_000_000_000
TAKER, MAKER = Decimal("0.0006"), Decimal("0.0002")


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(bitget_client, "RATE_LIMIT_WAIT_S", 0.05)


@contextlib.asynccontextmanager
async def venue_at(clock, secret: str = SECRET, passphrase: str = PASSPHRASE, key: str = KEY):
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=5, step_ms=10_000_000, clock=clock, api_keys={KEY: SECRET},
                       api_passphrases={KEY: PASSPHRASE})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v2/mix/market/contracts?productType=USDT-FUTURES") as response:
            instruments = rest.instruments([await response.read()])
        trading = BitgetTrading.for_account(http, base, f"{base.replace('http', 'ws')}/v2/ws/private",
                                            (key, secret, passphrase), instruments, demo=False, clock=clock)
        yield server, trading


@pytest.fixture
async def venue():
    now = [T0 / 1000]
    async with venue_at(lambda: now[0]) as (server, trading):
        await trading.prepare()
        await trading.ensure_position_mode(["BTCUSDT", "ETHUSDT"])
        yield server, trading, now


def spec(link: str, side: str = "Buy", qty: str = "0.01", price: Decimal | None = None, **fields) -> OrderSpec:
    return OrderSpec(link_id=link, symbol="BTCUSDT", side=side, qty=Decimal(qty), price=price, **fields)


def book(server: SimServer) -> tuple[Decimal, Decimal]:
    bids, asks = server.engine("bitget").view.sides(server.model.states["BTCUSDT"])
    return Decimal(max(bids)) / 10, Decimal(min(asks)) / 10


async def test_prepare_loads_the_contracts_and_the_account_is_put_in_hedge_mode(venue):
    server, trading, _ = venue
    assert trading.product_type == "USDT-FUTURES" and trading.min_notional == {"BTCUSDT": 5, "ETHUSDT": 5}
    assert trading.fees["BTCUSDT"] == (Decimal("0.0002"), Decimal("0.0006"))
    assert server.engine("bitget").account(KEY).hedge_symbols == {"BTCUSDT", "ETHUSDT"}
    assert await trading.position_mode() == (True, "hedge_mode, as the executor trades")
    assert await trading.fee_rates("BTCUSDT") == (MAKER, TAKER)
    await trading.ensure_position_mode(["BTCUSDT"])  # already: nothing to switch
    assert [q.path for q in server.journal].count("/api/v2/mix/account/set-position-mode") == 1
    assert not server.engine("okx").accounts and not server.matching.accounts  # Bitget's own accounts


async def test_a_market_order_fills_and_shows_in_fills_positions_and_balance(venue):
    server, trading, _ = venue
    order_id = await trading.place(spec("0123456789ab-LE1", qty="0.0129", position_side="long"))
    found = await trading.order("BTCUSDT", "0123456789ab-LE1")
    assert found == OrderUpdate("0123456789ab-LE1", order_id, "BTCUSDT", "filled", Decimal("0.012"))
    fills = await trading.fills("BTCUSDT", "0123456789ab-LE1")
    assert sum(f.qty for f in fills) == Decimal("0.012") and all(not f.maker for f in fills)
    for fill in fills:
        assert fill.fee == fill.price * fill.qty * TAKER and fill.link_id == "0123456789ab-LE1"
    assert await trading.positions() == [PositionUpdate("BTCUSDT", Decimal("0.012"), "long")]
    balance = await trading.balance()
    assert balance.currency == "USDT" and balance.equity < 100_000
    order = server.engine("bitget").account(KEY).orders[order_id]
    assert (order.side, order.position_idx, order.link_id) == ("Buy", 1, "0123456789abLE1")
    # a close of the long: Sell on the long side, sent as side buy + tradeSide close
    await trading.place(spec("0123456789ab-LX1", side="Sell", qty="0.012", position_side="long"))
    assert await trading.positions() == []
    places = [q for q in server.journal if q.path == "/api/v2/mix/order/place-order"]
    assert [(q.link_id, q.reduce_only) for q in places] == [("0123456789abLE1", False), ("0123456789abLX1", True)]


async def test_a_resting_order_is_listed_cancelled_and_not_found_after(venue):
    server, trading, _ = venue
    bid, _ = book(server)
    order_id = await trading.place(spec("aaaaaaaaaaaa-LE2", price=bid - 100, position_side="long"))
    assert [(o.link_id, o.order_id, o.status) for o in await trading.open_orders()] == [
        ("aaaaaaaaaaaa-LE2", order_id, "open")]
    await trading.cancel("BTCUSDT", "aaaaaaaaaaaa-LE2")
    found = await trading.order("BTCUSDT", "aaaaaaaaaaaa-LE2")
    assert (found.status, found.kind, found.filled_qty) == ("cancelled", None, 0)
    assert await trading.open_orders() == []
    with pytest.raises(Refused) as again:
        await trading.cancel("BTCUSDT", "aaaaaaaaaaaa-LE2")
    assert (again.value.code, again.value.kind) == ("40768", "not_found")
    assert await trading.order("BTCUSDT", "bbbbbbbbbbbb-LE9") is None
    assert await trading.fills("BTCUSDT", "bbbbbbbbbbbb-LE9") == []


async def test_a_client_oid_a_pending_order_carries_is_a_duplicate(venue):
    server, trading, _ = venue
    bid, _ = book(server)
    await trading.place(spec("cccccccccccc-LE3", price=bid - 100, position_side="long"))
    with pytest.raises(Refused) as duplicate:
        await trading.place(spec("cccccccccccc-LE3", price=bid - 100, position_side="long"))
    assert (duplicate.value.code, duplicate.value.kind, duplicate.value.venue) == ("40786", "duplicate", "bitget")


async def test_a_post_only_that_would_take_is_accepted_then_cancelled(venue):
    server, trading, _ = venue
    _, ask = book(server)
    await trading.place(spec("dddddddddddd-LE4", price=ask, tif="post_only", position_side="long"))
    found = await trading.order("BTCUSDT", "dddddddddddd-LE4")
    assert (found.status, found.kind, found.filled_qty) == ("cancelled", "post_only", 0)


async def test_sizes_under_the_minimums_are_refused_unsent_and_the_venues_own_refusals_keep_their_codes(venue):
    server, trading, _ = venue
    sent = len(server.journal)
    for qty, price in (("0.0009", None), ("0.001", Decimal(1000))):  # under minTradeNum; under 5 USDT
        with pytest.raises(Refused) as small:
            await trading.place(spec("eeeeeeeeeeee-LE5", qty=qty, price=price, position_side="long"))
        assert (small.value.code, small.value.kind) == ("local", "below_minimum")
    assert len(server.journal) == sent
    with pytest.raises(Refused) as nothing:  # no short to close
        await trading.place(spec("eeeeeeeeeeee-LX5", position_side="short"))
    assert (nothing.value.code, nothing.value.kind) == ("22002", "reduce_only")
    with pytest.raises(Refused) as poor:
        await trading.place(spec("eeeeeeeeeeee-LE6", qty="100", position_side="long"))
    assert (poor.value.code, poor.value.kind) == ("40762", "insufficient_margin")


async def test_auth_refusals_carry_their_kinds():
    now = [T0 / 1000]
    cases = [({"secret": "wrong"}, "40009", "bad_signature"), ({"passphrase": "wrong"}, "40012", "unknown_key"),
             ({"key": "nobody"}, "40006", "unknown_key")]
    for change, code, kind in cases:
        async with venue_at(lambda: now[0], **change) as (_, trading):
            with pytest.raises(Refused) as refused:
                await trading.positions()
            assert (refused.value.code, refused.value.kind) == (code, kind)
            assert "wrong" not in str(refused.value) and SECRET not in repr(trading)


async def test_an_expired_timestamp_resyncs_the_clock_and_goes_through(venue):
    server, trading, _ = venue
    server.faults.apply({"clock_skew_ms": 45_000})
    assert await trading.positions() == []
    assert trading.rest.counts["clock_resyncs"] == 1 and 44_000 < trading.rest.offset_ms < 46_000


async def test_a_rate_limit_waits_and_tries_again(monkeypatch):
    monkeypatch.setattr(bitget_client, "RATE_LIMIT_WAIT_S", 0.4)  # 0.4 + 0.8 s: past the sim's 1 s window
    async with venue_at(time.time) as (server, trading):
        await trading.prepare()
        server.faults.apply({"rate_limit_per_s": 2})
        answers = await asyncio.gather(*(trading.positions() for _ in range(4)))
        assert answers == [[]] * 4 and trading.rest.counts["rate_limited"] >= 1
        assert any(q.ret_code == 429 for q in server.journal)


async def test_funding_settles_at_bitgets_rate_and_is_read_from_the_bills(venue):
    server, trading, now = venue
    state = server.model.states["BTCUSDT"]
    server.model.force("BTCUSDT", "bitget", 0, 0.004, int(now[0] * 1000) + 86_400_000)
    now[0] += 1
    server.step()
    since = int(now[0] * 1000)
    await trading.place(spec("ffffffffffff-LE7", qty="0.03", position_side="long"))
    now[0] = server.model.next_funding_ms("BTCUSDT") / 1000 + 0.5
    server.step()
    rate = Decimal(f"{server.model.venue_funding(state, 'bitget'):.8f}")
    funding = await trading.funding_payments(since)
    assert len(funding) == 1
    paid = funding[0]
    assert (paid.symbol, paid.side, paid.ts_ms) == ("BTCUSDT", "Buy", int(now[0] * 1000))
    assert paid.amount == server.engine("bitget").mark("BTCUSDT") * Decimal("0.03") * rate > 0
    assert await trading.funding_payments(paid.ts_ms + 1) == []


async def test_faults_reject_drop_and_partially_fill_bitget_orders(venue):
    server, trading, _ = venue
    server.faults.apply({"reject_next": 1, "reject_code": 110007})  # Bybit's code, answered as Bitget's
    with pytest.raises(Refused) as margin:
        await trading.place(spec("111111111111-LE1", position_side="long"))
    assert (margin.value.code, margin.value.kind) == ("40762", "insufficient_margin")
    server.faults.apply({"reject_next": 1, "reject_code": 10016})
    with pytest.raises(OutcomeUnknown):  # 40725 with HTTP 500: the outcome is unknown
        await trading.positions()
    server.faults.apply({"reject_link_ids": "LE2$", "reject_code": 40762})
    with pytest.raises(Refused):
        await trading.place(spec("111111111111-LE2", position_side="long"))
    await trading.place(spec("111111111111-LE3", position_side="long"))
    server.faults.apply({"reject_link_ids": None, "drop_order_responses": 1})
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec("111111111111-LE4", position_side="long"))
    assert (await trading.order("BTCUSDT", "111111111111-LE4")).status == "filled"
    server.faults.apply({"partial_fill_fraction": 0.5, "partial_fill_orders": 1})
    await trading.place(spec("111111111111-LE5", qty="0.02", position_side="long"))
    half = await trading.order("BTCUSDT", "111111111111-LE5")
    assert (half.status, half.filled_qty) == ("cancelled", Decimal("0.01"))


async def test_the_private_stream_pushes_then_reconnects_and_catches_up_by_rest(venue):
    server, trading, now = venue
    heard: list = []
    caught_up: list = []

    async def on_message(message: object) -> None:
        heard.extend(trading.parse_private(message)[0])

    async def on_connected() -> None:  # as the executor does: what happened meanwhile, by REST
        caught_up.append((stream.connects, await trading.order("BTCUSDT", "222222222222-LE2")))

    stream = trading.private_stream(on_message, on_connected)
    stop = asyncio.Event()
    task = asyncio.ensure_future(stream.run(stop))
    try:
        await until(lambda: stream.connects == 1 and any(isinstance(u, BalanceUpdate) for u in heard))
        assert caught_up == [(1, None)]
        await trading.place(spec("222222222222-LE1", qty="0.02", position_side="long"))
        await until(lambda: any(isinstance(u, PositionUpdate) and u.qty for u in heard))
        fills = [u for u in heard if isinstance(u, FillUpdate)]
        assert sum({f.fill_id: f.qty for f in fills}.values()) == Decimal("0.02")  # orders and fill channels
        assert {f.link_id for f in fills} == {"222222222222-LE1"}
        assert any(isinstance(u, OrderUpdate) and u.status == "filled" for u in heard)
        assert PositionUpdate("BTCUSDT", Decimal("0.02"), "long") in heard

        server.drop_all()  # the connection drops; an order fills before the stream is back
        m = server.engine("bitget")
        m.create(KEY, OrderRequest("BTCUSDT", "Buy", "Market", "IOC", None, 10, position_idx=1,
                                   link_id="222222222222LE2"), int(now[0] * 1000))
        server.trading["bitget"].push(int(now[0] * 1000))
        await until(lambda: stream.connects == 2)
        await until(lambda: len(caught_up) == 2)
        (connects, found) = caught_up[1]
        assert connects == 2 and (found.link_id, found.status, found.filled_qty) == (
            "222222222222-LE2", "filled", Decimal("0.01"))
        assert "222222222222-LE2" not in {u.link_id for u in heard if isinstance(u, OrderUpdate | FillUpdate)}
        clients = server.trading["bitget"].streams[KEY]
        await until(lambda: any(len(c.topics) == 4 for c in clients))
        assert len(clients) == 1
        await trading.place(spec("222222222222-LE3", position_side="long"))  # heard on the new connection
        await until(lambda: any(getattr(u, "link_id", "") == "222222222222-LE3" for u in heard))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_the_stream_pings_and_a_refused_login_ends_it_with_the_keys_kind():
    now = [T0 / 1000]
    async with venue_at(lambda: now[0]) as (_, trading):
        stream = trading.private_stream(lambda m: asyncio.sleep(0), lambda: asyncio.sleep(0))
        stream.ping_s = 0.1
        stop = asyncio.Event()
        task = asyncio.ensure_future(stream.run(stop))
        await until(lambda: stream.connects == 1)
        await until(lambda: stream.pongs >= 3)  # three pings answered: still the first connection
        assert stream.connects == 1 and stream.connected.is_set()
        stop.set()
        await asyncio.wait_for(task, 5)
    async with venue_at(lambda: now[0], passphrase="wrong") as (_, trading):
        stream = trading.private_stream(lambda m: asyncio.sleep(0), lambda: asyncio.sleep(0))
        with pytest.raises(Refused) as refused:
            await asyncio.wait_for(stream.run(asyncio.Event()), 5)
        assert (refused.value.code, refused.value.kind) == ("30012", "unknown_key")
