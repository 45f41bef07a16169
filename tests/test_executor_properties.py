"""Seed Properties 1, 3, 6 and 7 over random sequences of signals, market moves, trades, time
and restarts (hypothesis stateful testing of the executor core with paper execution)."""

from __future__ import annotations

import os
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore
from services.executor.paper import PaperVenue, restart
from tests.executor_market import T0, Desk

VENUES = ("binance", "okx", "bybit")
TIMEOUT = 500


class Executor(RuleBasedStateMachine):
    @initialize()
    def open_market(self) -> None:
        self.desk = Desk(ExecConfig(max_concurrent_trades=3, max_hold_ms=20_000), venues=VENUES)
        self.mids = {"binance": 100_000.0, "okx": 100_600.0, "bybit": 100_300.0}
        for venue, mid in self.mids.items():
            self.desk.book(venue, mid, mid + 0.1)
        self.n = 0

    @rule(long=st.sampled_from(VENUES), short=st.sampled_from(VENUES), spread=st.floats(20, 120),
          funding=st.floats(0.0001, 0.002))
    def signal(self, long, short, spread, funding) -> None:
        if long != short:
            self.n += 1
            self.desk.signal(f"s{self.n}", long_venue=long, short_venue=short, spread=spread, funding=funding)

    @rule(venue=st.sampled_from(VENUES), move=st.integers(-400, 400), size=st.sampled_from([0.0, 0.03, 0.5, 3.0]),
          levels=st.sampled_from([1, 3, 20]))
    def book(self, venue, move, size, levels) -> None:
        self.mids[venue] = round(self.mids[venue] + move * 0.1, 1)
        self.desk.book(venue, self.mids[venue], round(self.mids[venue] + 0.1, 1), size=size, levels=levels)

    @rule(venue=st.sampled_from(VENUES), side=st.sampled_from(["buy", "sell"]), size=st.sampled_from([0.01, 0.2, 2.0]))
    def trade(self, venue, side, size) -> None:
        mid = self.mids[venue]
        self.desk.trade(venue, round(mid + 0.1, 1) if side == "buy" else mid, size, side)

    @rule(ms=st.sampled_from([1, 100, 499, 500, 501, 3_000, 25_000]))
    def time_passes(self, ms) -> None:
        self.desk.at(self.desk.now - T0 + ms)

    @rule(venue=st.sampled_from(VENUES), rate=st.sampled_from([-0.0005, 0.0001, 0.0007]))
    def funding_settles(self, venue, rate) -> None:
        d = self.desk
        d.ticker(venue, funding_rate=rate, funding_interval_min=480, mark=self.mids[venue],
                 next_funding_ts_ms=d.now + 1)
        d.now += 1
        d.ticker(venue, next_funding_ts_ms=d.now + 8 * 3_600_000)

    @rule()
    def restart(self) -> None:
        """The executor dies and comes back: its state from its facts, a paper venue that forgot
        every resting order."""
        d = self.desk
        core = ExecutorCore(d.core.config, d.core.grids, d.core.market)
        for fact in d.facts:
            core.apply(f.from_fields(f.to_fields(fact)))
        d.core, d.paper = core, PaperVenue(d.core.market)
        d.facts += restart(d.core, d.paper, d.now)

    @rule()
    def shutdown(self) -> None:
        d = self.desk
        d._run(d.core.shutdown(d.now))
        d.core.halted = ""

    @invariant()
    def property_1_open_exposure_is_what_the_open_trades_reserve(self) -> None:
        p = self.desk.core.portfolio
        assert p.open_exposure == sum((t.taken.size_usd for t in self.desk.core.trades.values()), Decimal(0))

    @invariant()
    def property_1_the_fills_account_for_every_cent(self) -> None:
        """Not the ledger's identity but the cash itself: for the closed trades, what the fills
        moved (sells minus buys), less their fees and the funding paid, summed straight from the
        facts the paper venue produced, is the cumulative PnL."""
        d = self.desk
        side = {x.link_id: x.side for x in d.of(f.OrderPlaced)}
        closed = {x.trade_id for x in d.of(f.TradeClosed)}
        fills = {x.fill_id: x for x in d.of(f.OrderFilled) if x.trade_id in closed}
        cash = sum(((x.qty * x.price if side[x.link_id] == "Sell" else -x.qty * x.price) - x.fee
                    for x in fills.values()), Decimal(0))
        cash -= sum((x.amount for x in d.of(f.FundingPaid) if x.trade_id in closed), Decimal(0))
        assert not d.of(f.PositionGone)  # paper venues lose no position behind the executor's back
        assert cash == d.core.portfolio.cumulative_pnl

    @invariant()
    def property_3_no_leg_stays_alone_past_the_timeout(self) -> None:
        d = self.desk
        for trade in d.core.trades.values():
            if trade.status != "pending" or trade.open_orders(trade.taken.harder):
                continue
            hard, easy = trade.taken.harder, "short" if trade.taken.harder == "long" else "long"
            if trade.held[hard] and abs(trade.held[easy]) < abs(trade.held[hard]):
                done = max(o.done_ms for o in trade.legs(hard, "entry"))
                assert d.now - done < TIMEOUT or trade.leg_outs, "a naked leg past the timeout with no leg-out"

    @invariant()
    def property_6_every_leg_out_is_recorded_and_counted(self) -> None:
        d = self.desk
        assert d.core.portfolio.leg_out_count == len(d.of(f.LegOut))
        for trade in d.core.closed.values():
            hedged = any(o.placed.purpose in ("hedge", "unwind") and o.filled for o in trade.orders.values())
            assert not hedged or trade.leg_outs

    @invariant()
    def property_7_pnl_is_the_sum_of_closed_trades(self) -> None:
        d = self.desk
        closed = d.of(f.TradeClosed)
        p = d.core.portfolio
        assert p.cumulative_pnl == sum((c.pnl_usd for c in closed), Decimal(0))
        assert p.leg_out_total_loss == sum((c.leg_out_loss_usd for c in closed), Decimal(0))
        for trade in d.core.closed.values():
            assert trade.flat and trade.closed.pnl_usd == trade.cash - trade.fees - trade.funding

    @invariant()
    def replaying_the_facts_gives_the_same_portfolio(self) -> None:
        d = self.desk
        again = ExecutorCore(d.core.config, d.core.grids, d.core.market)
        for fact in d.facts:
            again.apply(fact)
        assert again.portfolio.summary() == d.core.portfolio.summary()


# ARB_HYPOTHESIS_EXAMPLES: fewer for a mutation run (tools/mutation.py), which runs this once per mutant
Executor.TestCase.settings = settings(max_examples=int(os.environ.get("ARB_HYPOTHESIS_EXAMPLES", 150)),
                                      stateful_step_count=40, deadline=None)
TestExecutorProperties = Executor.TestCase
