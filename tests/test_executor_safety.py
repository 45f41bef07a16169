"""The emergency-stop conditions and the kill switch, in the executor core with paper fills:
each condition halts trading with its reason, the open trades are closed (or kept), a halt
survives a replay, and a resume lifts it."""

from __future__ import annotations

from decimal import Decimal as D

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore
from services.executor.safety import Safety, SafetyLimits
from tests.executor_market import T0, Desk


def desk_with(**limits) -> Desk:
    return Desk(ExecConfig(safety=SafetyLimits(**limits), max_concurrent_trades=10))


def quotes(desk: Desk, long_ask: float = 100_000.1, short_bid: float = 100_700.0) -> None:
    desk.book("binance", long_ask - 0.1, long_ask)
    desk.book("okx", short_bid, short_bid + 0.1)


def unfillable_trade(desk: Desk, sid: str) -> None:
    """A signal whose harder leg (okx, the short) finds no bid to sell into: rejected at 500 ms."""
    quotes(desk)
    desk.book("okx", 100_600.0, 100_600.1, size=0.0)
    desk.core.market.get("okx", "BTCUSDT").bid = 100_700.0  # as when the signal was read
    desk.signal(sid)
    desk.at(desk.now - T0 + 500)


def halts(desk: Desk) -> list[f.TradingHalted]:
    return desk.of(f.TradingHalted)


def test_three_failed_trades_within_60_s_halt_trading_and_later_signals_are_refused():
    desk = desk_with(max_failures=3)
    for i in range(3):
        desk.now = T0 + i * 10_000
        unfillable_trade(desk, f"s{i}")
    assert [x.reason for x in desk.of(f.TradeClosed)] == ["harder_leg_timeout"] * 3
    (halt,) = halts(desk)
    assert (halt.reason, halt.detail) == ("failures", "3 failed trades within 60 s")
    desk.now += 1_000
    quotes(desk)
    desk.signal("after")
    assert desk.of(f.SignalRejected)[-1].reason == "halted"


def test_failures_spread_over_more_than_the_window_do_not_halt():
    desk = desk_with(max_failures=3, success_window=100)
    for i in range(3):
        desk.now = T0 + i * 31_000
        unfillable_trade(desk, f"s{i}")
    assert halts(desk) == []


def test_daily_loss_limit_halts_and_closes_the_open_trades_at_market():
    desk = desk_with(max_daily_loss=D("10"))
    quotes(desk)
    desk.signal("loser")
    desk.now += 1_000
    desk.book("binance", 99_000.0, 99_000.1)  # the spread widens by 100 bps and more: stop loss
    desk.book("okx", 100_800.0, 100_800.1)
    loss = desk.of(f.TradeClosed)[0]
    assert loss.pnl_usd < -10
    desk.now += 1_000
    quotes(desk)
    desk.signal("next")
    (halt,) = halts(desk)
    assert halt.reason == "daily_loss" and halt.action == "close"
    assert f"lost ${-loss.pnl_usd} today" in halt.detail
    assert desk.of(f.SignalRejected)[-1].reason == "halted"


def test_the_kill_switch_closes_every_active_trade_at_market_and_a_pending_one_once_it_fills():
    desk = Desk(ExecConfig(), venues=("binance", "okx", "bybit"))
    quotes(desk)
    desk.signal("a")
    active = desk.of(f.SignalTaken)[0].trade_id
    desk.book("bybit", 100_600.0, 100_600.1, size=0.0)  # the next entry's harder leg (bybit) rests
    desk.core.market.get("bybit", "BTCUSDT").bid = 100_700.0
    desk.signal("b", long_venue="binance", short_venue="bybit")
    (pending,) = [t for t in desk.core.trades if t != active]
    facts = desk._run(desk.core.halt("manual", "arb stop --emergency", desk.now))
    assert isinstance(facts[0], f.TradingHalted) and facts[0].action == "close"
    exits = [o for o in desk.of(f.OrderPlaced) if o.purpose == "exit"]
    assert {(o.trade_id, o.order_type, o.reduce_only) for o in exits} == {(active, "Market", True)}
    assert desk.core.closed[active].closed.reason == "emergency_stop"
    assert desk.core.trades[pending].status == "pending"
    desk.now += 300
    desk.book("bybit", 100_700.0, 100_700.1)  # the resting harder leg fills now...
    desk.trade("bybit", 100_700.0, 5.0, "buy")
    assert desk.core.trades == {}  # ...and its trade is closed as soon as it is whole
    assert desk.core.closed[pending].closed.reason == "emergency_stop"


def test_keep_leaves_the_hedged_trades_running_and_only_refuses_new_signals():
    desk = Desk(ExecConfig(safety=SafetyLimits(on_stop="keep")))
    quotes(desk)
    desk.signal("a")
    desk._run(desk.core.halt("manual", "by hand", desk.now))
    assert [t.status for t in desk.core.trades.values()] == ["active"]
    assert not [o for o in desk.of(f.OrderPlaced) if o.purpose == "exit"]


def test_a_halt_survives_a_replay_and_a_resume_lifts_it_with_fresh_windows():
    desk = desk_with(max_failures=3)
    for i in range(3):
        desk.now = T0 + i * 1_000
        unfillable_trade(desk, f"s{i}")
    assert halts(desk)
    again = ExecutorCore(desk.core.config, desk.core.grids, desk.core.market)
    for fact in desk.facts:
        again.apply(f.from_fields(f.to_fields(fact)))
    assert again.halted == desk.core.halted and again.halted.startswith("failures")
    assert again.step(desk.now) == []  # no second halt
    resumed = again.resume(desk.now, "alice")
    assert [type(x) for x in resumed] == [f.TradingResumed] and again.halted == ""
    assert again.step(desk.now + 1) == []  # the failures before the resume no longer count
    assert again.resume(desk.now) == []


def test_success_rate_below_90_percent_of_the_last_entries_halts():
    desk = desk_with(max_failures=0, success_window=10, min_success_rate=0.9)
    for i in range(9):  # nine good entries, each closed straight away at the profit target
        desk.now = T0 + i * 10_000
        quotes(desk)
        desk.signal(f"ok{i}")
        desk.book("binance", 100_300.0, 100_300.1)
        desk.book("okx", 100_300.0, 100_300.1)
    assert halts(desk) == []
    desk.now += 10_000
    unfillable_trade(desk, "bad1")
    assert halts(desk) == []  # 9 of 10 is not under 90 %
    desk.now += 10_000
    unfillable_trade(desk, "bad2")  # 8 of the last 10
    (halt,) = halts(desk)
    assert (halt.reason, halt.detail) == ("success_rate", "80% of the last 10 entries filled both legs, under 90%")


def test_p99_latency_and_venue_refusals_halt():
    core = ExecutorCore(ExecConfig(safety=SafetyLimits(max_p99_ms=50)), {})
    for ms in [5.0] * 98 + [80.0, 90.0]:
        core.safety.observe_latency_ms(ms)
    (halt,) = core.step(T0)
    assert halt.reason == "latency" and "80.0 ms" in halt.detail

    core = ExecutorCore(ExecConfig(safety=SafetyLimits(max_api_errors=5)), {})
    for i in range(5):
        core.safety.apply(f.OrderClosed(ts_ms=T0 + i, trade_id="t", link_id=f"l{i}", status="rejected"))
    assert core.step(T0 + 10)[0].reason == "api_errors"


def test_live_a_signal_is_taken_only_with_room_for_both_legs_within_the_order_rate():
    desk = Desk(ExecConfig(order_rate_per_s=10, order_headroom=2, max_concurrent_trades=10),
                venues=("binance", "okx", "bybit", "gate"))
    pairs = [("binance", "okx"), ("binance", "bybit"), ("okx", "bybit"), ("binance", "gate"), ("okx", "gate")]
    quotes(desk)
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.book("gate", 100_700.0, 100_700.1)
    for i, (long_venue, short_venue) in enumerate(pairs):
        desk.signal(f"s{i}", long_venue=long_venue, short_venue=short_venue)
    placed = desk.of(f.OrderPlaced)
    rejected = [x for x in desk.of(f.SignalRejected) if x.reason == "rate_limit"]
    # 2 orders a trade, 2 kept free: 4 trades fill 8 of the 10; the fifth would need 12
    assert len(desk.of(f.SignalTaken)) == 4 and len(placed) == 8 and len(rejected) == 1
    assert rejected[0].detail == "8 orders in the last 1100 ms; the limit is 10"
    desk.now += 1_101  # a window later it is empty again
    desk.signal("later", long_venue="okx", short_venue="gate")
    assert desk.of(f.SignalTaken)[-1].signal_id == "later"


def _utc_ms(text: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(text + "+00:00").timestamp() * 1000)


def _losses(limits: SafetyLimits, *closes: tuple[str, str]) -> Safety:
    safety = Safety(limits)
    for i, (when, pnl) in enumerate(closes):
        safety.apply(f.TradeClosed(ts_ms=_utc_ms(when), trade_id=f"t{i}", outcome="closed", reason="stop_loss",
                                   pnl_usd=D(pnl), fees_usd=D(0), funding_usd=D(0), leg_out_loss_usd=D(0),
                                   size_usd=D(1000)))
        safety._active.add(f"t{i}")  # as if each had filled both legs: only the loss limits can speak
    return safety


def test_the_weekly_loss_limit_counts_from_monday_utc():
    weekly = SafetyLimits(max_weekly_loss=D(100))
    # 2026-11-30 is a Monday: Monday's and Wednesday's losses are one week's
    safety = _losses(weekly, ("2026-11-30T00:00:00", "-60"), ("2026-12-02T10:00:00", "-40"))
    assert safety.check(_utc_ms("2026-12-02T10:00:01")) == (
        "weekly_loss", "lost $100 this week (UTC, from Monday), the limit is $100")
    # a second before Monday is the week before
    safety = _losses(weekly, ("2026-11-29T23:59:59", "-60"), ("2026-12-02T10:00:00", "-40"))
    assert safety.check(_utc_ms("2026-12-02T10:00:01")) is None
    # a cent short of the limit
    safety = _losses(weekly, ("2026-11-30T00:00:00", "-60"), ("2026-12-02T10:00:00", "-39.99"))
    assert safety.check(_utc_ms("2026-12-02T10:00:01")) is None
    # next Monday the week starts afresh, with no new loss
    safety = _losses(weekly, ("2026-11-30T00:00:00", "-60"), ("2026-12-02T10:00:00", "-40"))
    assert safety.check(_utc_ms("2026-12-07T00:00:00")) is None


def test_the_monthly_loss_limit_counts_the_calendar_month_utc():
    monthly = SafetyLimits(max_monthly_loss=D(100))
    safety = _losses(monthly, ("2026-12-01T00:00:00", "-70"), ("2026-12-31T23:00:00", "-30"))
    assert safety.check(_utc_ms("2026-12-31T23:00:01")) == (
        "monthly_loss", "lost $100 this month (UTC), the limit is $100")
    safety = _losses(monthly, ("2026-11-30T23:59:59", "-70"), ("2026-12-01T00:00:00", "-30"))
    assert safety.check(_utc_ms("2026-12-01T00:00:01")) is None
    # a gain in the month counts against the losses
    safety = _losses(monthly, ("2026-12-01T00:00:00", "-70"), ("2026-12-02T00:00:00", "20"),
                     ("2026-12-03T00:00:00", "-45"))
    assert safety.check(_utc_ms("2026-12-03T00:00:01")) is None
    # the daily limit is the day's alone
    safety = _losses(SafetyLimits(max_daily_loss=D(50)), ("2026-12-01T23:59:59", "-40"),
                     ("2026-12-02T00:00:00", "-40"))
    assert safety.check(_utc_ms("2026-12-02T00:00:01")) is None
