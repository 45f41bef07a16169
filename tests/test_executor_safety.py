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


def _placed(link_id: str, venue: str) -> f.OrderPlaced:
    return f.OrderPlaced(ts_ms=T0, trade_id="t", link_id=link_id, leg="long", purpose="entry", venue=venue,
                         symbol="BTCUSDT", side="Buy", order_type="Market", qty=D("0.01"))


def test_refusals_and_latency_are_counted_per_venue_and_the_stop_names_the_venue():
    safety = Safety(SafetyLimits(max_api_errors=3, max_p99_ms=50.0, latency_samples=20))
    for i in range(4):  # 2 refused at each venue: 4 in all, yet neither venue reaches 3
        venue = ("bybit", "okx")[i % 2]
        safety.apply(_placed(f"l{i}", venue))
        safety.apply(f.OrderClosed(ts_ms=T0 + i, trade_id="t", link_id=f"l{i}", status="rejected"))
    for _ in range(20):  # okx slow, bybit fast: the slow venue is not hidden by the fast one
        safety.observe_latency_ms(5.0, "bybit")
        safety.observe_latency_ms(5.0, "bybit")
        safety.observe_latency_ms(80.0, "okx")
    assert safety.p99_ms("bybit") == 5.0 and safety.p99_ms("okx") == 80.0 and safety.p99_ms() == 80.0
    assert safety.check(T0 + 10) == ("latency", "p99 order sent -> okx's answer 80.0 ms, above 50 ms")
    safety = Safety(SafetyLimits(max_api_errors=3, max_p99_ms=0))
    # a refusal of an order whose placing it never saw (read before a restart's replay reached it)
    safety.apply(f.OrderClosed(ts_ms=T0, trade_id="t", link_id="unseen", status="rejected"))
    for i in range(5):
        venue = "okx" if i < 3 else "bybit"
        safety.apply(_placed(f"l{i}", venue))
        safety.apply(f.OrderClosed(ts_ms=T0 + i, trade_id="t", link_id=f"l{i}", status="rejected"))
    assert safety.check(T0 + 10) == ("api_errors", "3 orders refused by okx within 60 s")


def test_live_a_signal_is_taken_only_with_room_for_each_leg_within_its_venues_order_rate():
    desk = Desk(ExecConfig(order_rate_per_s=4, order_headroom=2, max_concurrent_trades=10),
                venues=("binance", "okx", "bybit", "gate"))
    pairs = [("binance", "okx"), ("binance", "bybit"), ("okx", "bybit"), ("binance", "gate"), ("okx", "gate")]
    quotes(desk)
    desk.book("bybit", 100_700.0, 100_700.1)
    desk.book("gate", 100_700.0, 100_700.1)
    for i, (long_venue, short_venue) in enumerate(pairs):
        desk.signal(f"s{i}", long_venue=long_venue, short_venue=short_venue)
    placed = desk.of(f.OrderPlaced)
    rejected = [x for x in desk.of(f.SignalRejected) if x.reason == "rate_limit"]
    # a leg and 2 kept free at each venue: 2 orders a venue within 4; binance and okx are full after 3 trades
    assert len(desk.of(f.SignalTaken)) == 3 and len(placed) == 6
    assert [(x.signal_id, x.detail) for x in rejected] == [
        ("s3", "2 orders at binance in the last 1100 ms; the limit is 4"),
        ("s4", "2 orders at okx in the last 1100 ms; the limit is 4")]
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


# Each stop condition on its own, at and either side of its threshold (Safety fed facts by hand).

DAY = 86_400_000
NOON = _utc_ms("2026-12-02T12:00:00")  # a Wednesday


def leg_out(trade_id: str, ts: int, phase: str = "entry") -> f.LegOut:
    return f.LegOut(ts_ms=ts, trade_id=trade_id, phase=phase, filled_leg="long", unfilled_leg="short",
                    filled_at_ms=ts, action="hedge")


def active(trade_id: str, ts: int = NOON) -> f.TradeActive:
    return f.TradeActive(ts_ms=ts, trade_id=trade_id, long_qty=D("0.1"), short_qty=D("0.1"), long_avg=D(1),
                         short_avg=D(1))


def closed(trade_id: str, ts: int, pnl: str = "0") -> f.TradeClosed:
    return f.TradeClosed(ts_ms=ts, trade_id=trade_id, outcome="closed", reason="stop_loss", pnl_usd=D(pnl),
                         fees_usd=D(0), funding_usd=D(0), leg_out_loss_usd=D(0), size_usd=D(1000))


def refused(ts: int, status: str = "rejected") -> f.OrderClosed:
    return f.OrderClosed(ts_ms=ts, trade_id="t", link_id=f"l{ts}", status=status)


def fed(limits: SafetyLimits, *facts) -> Safety:
    safety = Safety(limits)
    for fact in facts:
        safety.apply(fact)
    return safety


ONLY_FAILURES = dict(min_success_rate=0, max_p99_ms=0, max_api_errors=0)


def test_failures_halt_at_three_within_the_window_counting_its_first_millisecond():
    limits = SafetyLimits(max_failures=3, **ONLY_FAILURES)
    safety = fed(limits, leg_out("a", NOON), leg_out("b", NOON + 30_000))
    assert safety.check(NOON + 30_000) is None  # two
    safety.apply(leg_out("c", NOON + 60_000))
    assert safety.check(NOON + 60_000) == ("failures", "3 failed trades within 60 s")  # NOON is 60 s ago: in
    assert safety.check(NOON + 60_001) is None  # NOON is out: two left
    assert len(safety.failures) == 2


def test_a_failed_trade_counts_once_whatever_fails_in_it_and_an_entry_that_filled_does_not_count():
    limits = SafetyLimits(max_failures=2, **ONLY_FAILURES)
    # one trade's entry leg-out, then its exit leg-out, then its close: one failure
    safety = fed(limits, leg_out("a", NOON), active("a"), leg_out("a", NOON + 1, phase="exit"), closed("a", NOON + 2))
    assert list(safety.failures) == [NOON] and safety.check(NOON + 2) is None
    # a trade that filled both legs and closed: no failure; one refused at entry (never active): a failure
    safety = fed(limits, active("b"), closed("b", NOON), closed("c", NOON + 5))
    assert list(safety.failures) == [NOON + 5]
    # a leg-out on the way out of a trade that entered well is a failure too
    safety.apply(leg_out("d", NOON + 7, phase="exit"))
    assert safety.check(NOON + 7) == ("failures", "2 failed trades within 60 s")
    limits = SafetyLimits(max_failures=0, **{**ONLY_FAILURES, "max_api_errors": 1})  # 0 turns it off
    assert fed(limits, *(leg_out(f"t{i}", NOON) for i in range(5))).check(NOON) is None


def test_venue_refusals_halt_at_five_within_the_window_and_cancels_do_not_count():
    limits = SafetyLimits(max_api_errors=5, max_failures=0, min_success_rate=0, max_p99_ms=0,
                          failure_window_ms=10_000)
    safety = fed(limits, *(refused(NOON + i * 1_000) for i in range(4)), refused(NOON + 5, status="cancelled"))
    assert safety.check(NOON + 4_000) is None
    safety.apply(refused(NOON + 10_000))
    assert safety.check(NOON + 10_000) == ("api_errors", "5 orders refused by the venue within 10 s")
    assert safety.check(NOON + 10_001) is None  # the first is 10.001 s old
    assert fed(SafetyLimits(max_api_errors=0, min_success_rate=0),
               *(refused(NOON) for _ in range(9))).check(NOON) is None


def test_the_success_rate_counts_the_last_entries_once_the_window_is_full():
    limits = SafetyLimits(max_failures=0, success_window=10, min_success_rate=0.9, max_api_errors=0)
    # an entry leg-out, an entry that never filled a leg, and entries that filled both legs
    safety = fed(limits, leg_out("x", NOON), closed("y", NOON), *(active(f"ok{i}") for i in range(7)))
    assert list(safety.entries) == [False, False] + [True] * 7
    assert safety.check(NOON) is None  # 9 entries: the window is not full
    safety.apply(leg_out("z", NOON, phase="exit"))  # a failure, but its entry filled: not an entry
    safety.apply(active("x"))  # the leg-out trade goes active after its hedge: not a good entry
    assert len(safety.entries) == 9 and safety.check(NOON) is None
    safety.apply(active("ok7"))
    assert safety.check(NOON) == ("success_rate", "80% of the last 10 entries filled both legs, under 90%")
    safety.apply(active("ok8"))  # the oldest, a failure, leaves: 9 of the last 10 is not under 90 %
    assert len(safety.entries) == 10 and safety.check(NOON) is None
    assert fed(SafetyLimits(success_window=0, max_failures=0),
               *(leg_out(f"t{i}", NOON) for i in range(30))).check(NOON) is None  # a window of 0 is off
    assert fed(SafetyLimits(min_success_rate=0, max_failures=0),
               *(leg_out(f"t{i}", NOON) for i in range(30))).check(NOON) is None  # a rate of 0 is off


def test_latency_p99_is_judged_from_20_round_trips_and_halts_only_above_the_limit():
    safety = Safety(SafetyLimits(max_p99_ms=50.0))
    for _ in range(19):
        safety.observe_latency_ms(900.0)
    assert safety.p99_ms() is None and safety.check(NOON) is None  # 19: not judged yet
    safety.observe_latency_ms(900.0)
    assert safety.check(NOON) == ("latency", "p99 order sent -> the venue's answer 900.0 ms, above 50 ms")
    safety = Safety(SafetyLimits(max_p99_ms=50.0))
    for ms in [5.0] * 98 + [50.0, 90.0]:  # the 99th of 100 is 50 ms: at the limit, not above
        safety.observe_latency_ms(ms)
    assert safety.p99_ms() == 50.0 and safety.check(NOON) is None
    safety = Safety(SafetyLimits(max_p99_ms=50.0))
    for ms in [5.0] * 98 + [50.1, 90.0]:
        safety.observe_latency_ms(ms)
    assert safety.check(NOON) == ("latency", "p99 order sent -> the venue's answer 50.1 ms, above 50 ms")
    safety.observe_latency_ms(5.0)  # the last 100 only: the first 5 ms leaves, 50.1 is still the 99th
    assert safety.p99_ms() == 50.1
    for _ in range(99):
        safety.observe_latency_ms(5.0)
    assert safety.p99_ms() == 5.0 and safety.check(NOON) is None
    safety = Safety(SafetyLimits(max_p99_ms=0))
    for _ in range(20):
        safety.observe_latency_ms(900.0)
    assert safety.check(NOON) is None  # 0 turns it off


def test_latency_is_judged_on_the_last_100_round_trips_only_and_from_as_few_as_the_setting_says():
    safety = Safety(SafetyLimits(max_p99_ms=50.0))
    for _ in range(100):
        safety.observe_latency_ms(900.0)  # a slow spell
    assert safety.check(NOON)[0] == "latency"
    for _ in range(100):
        safety.observe_latency_ms(5.0)  # then 100 quick answers: the slow spell has left the window
    assert safety.p99_ms() == 5.0 and safety.check(NOON) is None
    safety = Safety(SafetyLimits(max_p99_ms=50.0, latency_samples=1))  # SAFETY_LATENCY_SAMPLES=1
    safety.observe_latency_ms(60.0)
    assert safety.check(NOON) == ("latency", "p99 order sent -> the venue's answer 60.0 ms, above 50 ms")


def test_a_success_window_of_one_entry_judges_the_last_entry_alone():
    limits = SafetyLimits(max_failures=0, success_window=1, min_success_rate=0.9, max_api_errors=0)
    safety = fed(limits, leg_out("a", NOON))
    assert safety.check(NOON) == ("success_rate", "0% of the last 1 entries filled both legs, under 90%")
    safety.apply(active("b"))
    assert safety.check(NOON) is None and list(safety.entries) == [True]


def test_the_month_is_the_utc_month_whatever_the_machines_time_zone(monkeypatch):
    import time

    monthly = SafetyLimits(max_monthly_loss=D(100))
    monkeypatch.setenv("TZ", "UTC-13")  # POSIX for UTC+13: 2026-11-30T23:59:59 UTC is already December there
    time.tzset()
    try:
        safety = _losses(monthly, ("2026-11-30T23:59:59", "-70"), ("2026-12-01T00:00:00", "-30"))
        assert safety.check(_utc_ms("2026-12-01T00:00:01")) is None
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_daily_loss_halts_at_the_limit_not_a_cent_before_and_only_on_its_day():
    limits = SafetyLimits(max_daily_loss=D(50))
    safety = fed(limits, active("a"), closed("a", NOON, "-30"), active("b"), closed("b", NOON + 1, "-19.99"))
    assert safety.check(NOON + 2) is None  # $49.99
    safety.apply(active("c"))
    safety.apply(closed("c", NOON + 3, "-0.01"))
    assert safety.check(NOON + 3) == ("daily_loss", "lost $50.00 today (UTC), the limit is $50")
    assert safety.check(_utc_ms("2026-12-02T23:59:59")) is not None
    assert safety.check(_utc_ms("2026-12-03T00:00:00")) is None  # a new day
    safety.apply(active("d"))
    safety.apply(closed("d", _utc_ms("2026-12-03T01:00:00"), "-5"))  # the new day starts from 0
    assert safety.period_pnl["daily_loss"][1] == D(-5)
    assert safety.period_pnl["weekly_loss"][1] == D("-55.00")  # the same week


def test_after_a_resume_the_losses_and_the_windows_start_afresh_and_halts_are_counted_by_reason():
    limits = SafetyLimits(max_daily_loss=D(50), max_failures=2, success_window=2, max_api_errors=2)
    safety = fed(limits, active("a"), closed("a", NOON, "-60"), leg_out("b", NOON), leg_out("c", NOON),
                 refused(NOON), refused(NOON))
    for _ in range(20):
        safety.observe_latency_ms(900.0)
    assert safety.check(NOON)[0] == "daily_loss"  # the first that holds
    safety.apply(f.TradingHalted(ts_ms=NOON, reason="daily_loss", detail="", action="close"))
    safety.apply(f.TradingHalted(ts_ms=NOON, reason="manual", detail="", action="close"))
    safety.apply(f.TradingHalted(ts_ms=NOON, reason="daily_loss", detail="", action="close"))
    assert safety.stops == {"daily_loss": 2, "manual": 1}
    safety.apply(f.TradingResumed(ts_ms=NOON + 1))
    assert safety.check(NOON + 1) is None and safety.p99_ms() is None
    assert (list(safety.failures), list(safety.api_errors), list(safety.entries), list(safety.latencies_ms)) == (
        [], [], [], [])
    assert safety.stops == {"daily_loss": 2, "manual": 1}  # halts ever: kept
    safety.apply(active("d"))
    safety.apply(closed("d", NOON + 2, "-49.99"))  # $49.99 since the resume
    assert safety.check(NOON + 2) is None
    assert safety.period_pnl["daily_loss"] == (NOON // DAY, D("-49.99"))
