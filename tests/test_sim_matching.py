"""The simulator's matching engine: fills against the book, queue positions, fees, funding,
Bybit's refusals, and a stateful test that the ledger always balances."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from services.sim.market import MarketModel, Trade
from services.sim.matching import (
    MAKER_FEE,
    START_BALANCE_USDT,
    TAKER_FEE,
    FillPolicy,
    Matching,
    OrderRequest,
    Rejected,
)

T0 = 1_800_000_000_000
KEY = "k"


def engine(symbols=("BTCUSDT",), seed: int = 3, policy: FillPolicy | None = None) -> Matching:
    return Matching(MarketModel(list(symbols), seed=seed, start_ms=T0), policy=policy)


def market(side: str, lots: int, **kw) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "Market", "IOC", None, lots, **kw)


def limit(side: str, lots: int, price_ticks: int, tif: str = "GTC", **kw) -> OrderRequest:
    return OrderRequest("BTCUSDT", side, "Limit", tif, price_ticks, lots, **kw)


def test_a_market_order_walks_the_book_and_pays_the_taker_fee_exactly():
    m = engine()
    state = m.model.states["BTCUSDT"]
    inst = state.inst
    asks = sorted(state.asks.items())
    want = asks[0][1] + asks[1][1] + 1  # the first two levels and one lot of the third
    order = m.create(KEY, market("Buy", want), T0)
    executions = list(m.account(KEY).executions)
    assert order.status == "Filled" and order.filled_lots == want
    assert [(e.price, e.qty) for e in executions] == [
        (inst.tick * asks[0][0], inst.lot * asks[0][1]), (inst.tick * asks[1][0], inst.lot * asks[1][1]),
        (inst.tick * asks[2][0], inst.lot)]
    assert all(e.fee == e.price * e.qty * TAKER_FEE and not e.is_maker for e in executions)
    assert asks[0][0] not in state.asks and asks[1][0] not in state.asks
    assert state.asks.get(asks[2][0], 0) == asks[2][1] - 1  # the fill left the book
    assert m.account(KEY).wallet == START_BALANCE_USDT - sum(e.fee for e in executions)


def test_a_resting_order_waits_for_the_size_ahead_then_fills_in_part_as_a_maker():
    m = engine()
    state = m.model.states["BTCUSDT"]
    bid = max(state.bids)
    ahead = state.bids[bid]
    order = m.create(KEY, limit("Buy", 5, bid), T0)
    assert order.status == "New" and order.queue_ahead == ahead
    state.trades[:] = [Trade(T0 + 1, "Sell", bid, ahead + 2, "t1")]  # uses the queue, then 2 lots for us
    m.on_step(T0 + 1)
    assert order.queue_ahead == 0 and order.filled_lots == 2 and order.status == "PartiallyFilled"
    fill = m.account(KEY).executions[-1]
    assert fill.is_maker and fill.fee == fill.value * MAKER_FEE
    state.trades[:] = [Trade(T0 + 2, "Buy", bid + 1, 50, "t2")]  # a buyer's trade does not fill a bid
    m.on_step(T0 + 2)
    assert order.filled_lots == 2
    state.trades[:] = [Trade(T0 + 3, "Sell", bid, 50, "t3")]
    m.on_step(T0 + 3)
    assert order.status == "Filled" and order.filled_lots == 5


def test_a_level_that_shrinks_shortens_the_queue_and_an_ask_arriving_there_uses_the_rest():
    m = engine()
    state = m.model.states["BTCUSDT"]
    bid = max(state.bids) - 3
    order = m.create(KEY, limit("Buy", 4, bid), T0)
    state.bids[bid] = 1
    state.trades.clear()
    m.on_step(T0 + 1)
    assert order.queue_ahead == 1 and order.filled_lots == 0
    state.asks[bid] = 10  # sellers came down to our bid: 1 lot for the queue, then our 4
    m.on_step(T0 + 2)
    assert order.status == "Filled"
    assert m.account(KEY).executions[-1].price == state.inst.tick * bid


@pytest.mark.parametrize("side", ["Buy", "Sell"])
def test_the_other_side_arriving_at_a_resting_price_is_volume_for_its_queue_and_through_it_a_fill(side):
    """A venue's book never stays crossed: an ask at our bid traded there, the queue ahead
    first; an ask below our bid took everything at our price (shared/fills.py)."""
    m = engine()
    state = m.model.states["BTCUSDT"]
    own, other, sign = (state.bids, state.asks, 1) if side == "Buy" else (state.asks, state.bids, -1)
    price = max(own) if side == "Buy" else min(own)
    own[price] = 10_000  # 10 BTC ahead of us
    order = m.create(KEY, limit(side, 5, price), T0)
    assert order.queue_ahead == 10_000
    state.trades.clear()
    other[price] = 500  # 0.5 BTC arrives at our price, nothing traded: the old rule filled us here
    m.on_step(T0 + 1)
    assert (order.filled_lots, order.queue_ahead) == (0, 9_500)
    m.on_step(T0 + 2)  # the same 0.5 BTC in the next book: not counted again
    assert (order.filled_lots, order.queue_ahead) == (0, 9_500)
    other[price] = 10_002  # 9,502 lots more: the queue's last 9,500, then 2 of ours
    m.on_step(T0 + 3)
    assert (order.filled_lots, order.queue_ahead, order.status) == (2, 0, "PartiallyFilled")
    other[price - sign] = 1  # one lot past our price: all that rested there traded
    m.on_step(T0 + 4)
    assert (order.filled_lots, order.status) == (5, "Filled")
    assert all(e.is_maker and e.price == state.inst.tick * price for e in m.account(KEY).executions)


def test_post_only_ioc_and_fok_cancel_as_bybit_does():
    m = engine()
    state = m.model.states["BTCUSDT"]
    ask, bid = min(state.asks), max(state.bids)
    post = m.create(KEY, limit("Buy", 1, ask, "PostOnly"), T0)
    assert (post.status, post.reject_reason, post.filled_lots) == ("Cancelled", "EC_PostOnlyWillTakeLiquidity", 0)
    ioc = m.create(KEY, limit("Buy", 1, bid, "IOC"), T0)
    assert (ioc.status, ioc.reject_reason) == ("Cancelled", "EC_NoImmediateQtyToFill")
    fok = m.create(KEY, limit("Buy", state.asks[ask] + 1, ask, "FOK"), T0)  # more than the level holds
    assert fok.status == "Cancelled" and fok.filled_lots == 0 and state.asks[ask] == fok.lots - 1
    assert not m.account(KEY).executions


@pytest.mark.parametrize(("request_", "code"), [
    (market("Sell", 1, reduce_only=True), 110017),  # nothing to reduce
    (market("Buy", 1, position_idx=1), 10001),  # hedge index in one-way mode
    (market("Buy", 1_400_000), 110007),  # 1,400 BTC on 100,000 USDT
])
def test_refusals_carry_bybits_ret_codes(request_, code):
    with pytest.raises(Rejected) as caught:
        engine().create(KEY, request_, T0)
    assert caught.value.ret_code == code


def test_a_reused_order_link_id_is_refused_even_after_the_first_order_closed():
    m = engine()
    m.create(KEY, market("Buy", 1, link_id="leg-1"), T0)
    with pytest.raises(Rejected) as caught:
        m.create(KEY, market("Buy", 1, link_id="leg-1"), T0)
    assert caught.value.ret_code == 110072
    assert len(m.account(KEY).orders) == 1


def test_reduce_only_is_capped_at_the_position_and_closing_realises_exact_pnl():
    m = engine()
    m.create(KEY, market("Buy", 3), T0)
    bought = sum(e.value for e in m.account(KEY).executions)
    close = m.create(KEY, market("Sell", 10, reduce_only=True), T0 + 1)
    assert close.lots == 3 and close.status == "Filled"
    position = m.position(m.account(KEY), "BTCUSDT", 0)
    assert position.lots == 0 and position.cost == 0
    executions = list(m.account(KEY).executions)
    sold = sum(e.value for e in executions if e.side == "Sell")
    fees = sum(e.fee for e in executions)
    assert sum(e.pnl for e in executions) == sold - bought
    assert m.account(KEY).wallet == START_BALANCE_USDT + sold - bought - fees


def test_hedge_mode_keeps_a_long_and_a_short_and_refuses_switching_while_open():
    m = engine()
    m.switch_mode(KEY, "BTCUSDT", hedge=True)
    m.create(KEY, market("Buy", 2, position_idx=1), T0)
    m.create(KEY, market("Sell", 1, position_idx=2), T0)
    account = m.account(KEY)
    assert m.position(account, "BTCUSDT", 1).lots == 2 and m.position(account, "BTCUSDT", 2).lots == -1
    closing = m.create(KEY, market("Sell", 5, position_idx=1), T0)  # a Sell on the long side only closes
    assert closing.reduce_only and closing.lots == 2
    with pytest.raises(Rejected) as caught:
        m.switch_mode(KEY, "BTCUSDT", hedge=False)
    assert caught.value.ret_code == 110024


def test_funding_settles_on_open_positions_at_the_funding_time():
    m = engine()
    m.create(KEY, market("Buy", 10), T0)
    wallet = m.account(KEY).wallet
    period = m.model.states["BTCUSDT"].inst.funding_interval_h * 3_600_000
    settle = (T0 // period + 1) * period
    m.model.step(settle)
    m.on_step(settle)
    funding = m.account(KEY).executions[-1]
    rate = Decimal(f"{m.model.states['BTCUSDT'].fundings[-1][1]:.8f}")
    assert funding.exec_type == "Funding" and funding.fee_rate == rate
    assert funding.fee == funding.value * rate  # a long pays a positive rate
    assert m.account(KEY).wallet == wallet - funding.fee


def test_faults_leave_orders_unfilled_or_fill_only_a_fraction():
    policy = FillPolicy(unfilled=True)
    m = engine(policy=policy)
    order = m.create(KEY, market("Buy", 5), T0)
    assert order.status == "New" and order.filled_lots == 0
    policy.unfilled, policy.partial_fill_fraction = False, 0.4
    part = m.create(KEY, market("Buy", 5), T0)
    assert part.filled_lots == 2 and part.status == "Cancelled"  # a market order's rest is cancelled


class LedgerMachine(RuleBasedStateMachine):
    """Any sequence of orders, cancels and market steps keeps the books exact."""

    def __init__(self) -> None:
        super().__init__()
        self.m = engine(("BTCUSDT", "ETHUSDT"), seed=11)
        self.now = T0

    @rule(symbol=st.sampled_from(["BTCUSDT", "ETHUSDT"]), side=st.sampled_from(["Buy", "Sell"]),
          lots=st.integers(1, 40), offset=st.integers(-5, 5), kind=st.sampled_from(["Market", "GTC", "IOC", "FOK",
                                                                                     "PostOnly"]),
          reduce=st.booleans())
    def place(self, symbol, side, lots, offset, kind, reduce):
        state = self.m.model.states[symbol]
        mid = round(state.mid)
        request = OrderRequest(symbol, side, "Market" if kind == "Market" else "Limit",
                               "IOC" if kind == "Market" else kind, None if kind == "Market" else mid + offset,
                               lots, reduce_only=reduce)
        try:
            self.m.create(KEY, request, self.now)
        except Rejected as exc:
            assert exc.ret_code in (110017, 110007)

    @rule(data=st.data())
    def cancel(self, data):
        open_orders = self.m.account(KEY).open_orders()
        if open_orders:
            order = data.draw(st.sampled_from(open_orders))
            self.m.cancel(KEY, {"orderId": order.order_id, "symbol": order.symbol}, self.now)

    @rule(ms=st.integers(1, 4 * 3_600_000))
    def step(self, ms):
        self.now += ms
        self.m.model.step(self.now)
        self.m.on_step(self.now)

    @invariant()
    def orders_never_overfill_and_queues_never_go_negative(self):
        account = self.m.account(KEY)
        for order in account.orders.values():
            assert 0 <= order.filled_lots <= order.lots
            assert order.queue_ahead >= 0
        assert set(account.open) == {i for i, o in account.orders.items() if o.is_open}

    @invariant()
    def the_ledger_balances_exactly(self):
        account = self.m.account(KEY)
        executions = list(account.executions)
        trades = [e for e in executions if e.exec_type == "Trade"]
        assert account.wallet == START_BALANCE_USDT + sum(e.pnl for e in trades) - sum(e.fee for e in executions)
        assert all(e.fee == e.value * e.fee_rate for e in trades)
        assert all(e.fee == e.value * e.fee_rate * (1 if e.side == "Buy" else -1)  # a short is paid a positive rate
                   for e in executions if e.exec_type == "Funding")
        for (symbol, _), position in account.positions.items():
            inst = self.m.model.states[symbol].inst
            signed = sum((1 if e.side == "Buy" else -1) * int(e.qty / inst.lot) for e in trades if e.symbol == symbol)
            assert position.lots == signed
            if not position.lots:
                assert position.cost == 0
        fees = sum(o.cum_fee for o in account.orders.values())
        assert fees == sum(e.fee for e in trades)

    @invariant()
    def flat_accounts_realise_exactly_sells_minus_buys(self):
        account = self.m.account(KEY)
        if any(p.lots for p in account.positions.values()):
            return
        trades = [e for e in account.executions if e.exec_type == "Trade"]
        flow = sum((e.value if e.side == "Sell" else -e.value) for e in trades)
        assert sum(e.pnl for e in trades) == flow


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
