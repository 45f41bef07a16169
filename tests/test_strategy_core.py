"""The strategy core, event by event: which events decide, which venue pairs an event looks at,
the event-age limit, the symbol filter, and the ranking it hands to the scan."""

from __future__ import annotations

import pytest

from services.strategy.core import StrategyCore, SyntheticConfig
from services.strategy.scanner import ScanConfig
from services.strategy.signals import SignalGate
from services.strategy.state import StateConfig
from shared.events import BookUpdate, Ticker, Trade

T0 = 1_800_000_000_000
FRESH = {"binance": False, "bybit": False, "okx": False}


def book(venue: str, bid: float, bids: float, ask: float, asks: float, symbol: str = "BTCUSDT",
         received_ms: int = T0) -> BookUpdate:
    return BookUpdate(venue=venue, symbol=symbol, kind="snapshot", update_id=1, exchange_ts_ms=T0,
                      receive_ts_us=received_ms * 1000, bids=((bid, bids),), asks=((ask, asks),))


def funding(venue: str, rate: float, symbol: str = "BTCUSDT", received_ms: int = T0, **top) -> Ticker:
    return Ticker(venue=venue, symbol=symbol, exchange_ts_ms=T0, receive_ts_us=received_ms * 1000,
                  funding_rate=rate, funding_interval_min=480, **top)


# binance: buyers lean on it (bids 3 x the asks) at 99.99 / 100.00; bybit 40 bps dearer, sellers leaning on
# it, paying shorts 0.1 % per 8 h more. Long binance, short bybit: spread 0.4 / 100.2 = 39.9 bps > 19 bps of
# fees, funding 1, OBI (0.5 + 0.5 + 2) / 4 = 0.75, OI, VWAP, ATR unknown 0.5, no liquidations 1: confidence
# 100 x (9 + 6 + 3.5 + 3 + 2.5 + 5) / 40 = 72.5, and the OBI is a hair under 0.75 (bids at 99.99 are $30
# short of 3 x the asks): 72 >= 70
BINANCE = book("binance", 99.99, 3000.0, 100.0, 1000.0)
BYBIT = book("bybit", 100.40, 1000.0, 100.41, 3000.0)


def cross(**kwargs) -> StrategyCore:
    core = StrategyCore("cross", ScanConfig(position_usd=1000.0), SignalGate(cooldown_ms=60_000), **kwargs)
    core.set_stale(FRESH)
    return core


def feed(core: StrategyCore, events, now_ms: int = T0) -> list[list[str]]:
    """The ids of the signals each event gave."""
    return [[s.id for s in core.on_event(e, now_ms)] for e in events]


def test_the_event_that_opens_an_opportunity_signals_it_at_once_book_or_ticker():
    signal = f"BTCUSDT-binance-bybit-{T0}"
    # the short venue's book arrives last: it opens the trade
    assert feed(cross(), [BINANCE, funding("binance", 0.0), funding("bybit", 0.001), BYBIT]) == [[], [], [], [signal]]
    # the short venue's funding arrives last, in a ticker
    assert feed(cross(), [BINANCE, funding("binance", 0.0), BYBIT, funding("bybit", 0.001)]) == [[], [], [], [signal]]
    # the long venue, the first one seen, moves last: its new book opens the trade
    opens_on_first = [funding("binance", 0.0), funding("bybit", 0.001), BYBIT, BINANCE]
    assert feed(cross(), opens_on_first) == [[], [], [], [signal]]


def test_a_signal_carries_the_opportunity_found_when_the_event_was_read():
    core = cross()
    feed(core, [BINANCE, funding("binance", 0.0), funding("bybit", 0.001)], T0)
    [s] = core.on_event(BYBIT, T0 + 500)
    assert (s.created_ms, s.opportunity.detected_ms, s.opportunity.confidence) == (T0 + 500, T0 + 500, 72)
    assert (s.opportunity.long_venue, s.opportunity.short_venue) == ("binance", "bybit")


def test_trades_update_the_state_but_decide_nothing_and_every_event_is_counted():
    core = cross()
    feed(core, [BINANCE, funding("binance", 0.0), funding("bybit", 0.001)])
    trade = Trade(venue="bybit", symbol="BTCUSDT", trade_id="1", price=100.4, size=1.0, side="buy",
                  exchange_ts_ms=T0, receive_ts_us=T0 * 1000)
    assert core.on_event(trade, T0) == [] and core.state.get("bybit", "BTCUSDT").vwap == 100.4
    assert core.events == 4


def test_a_blocked_pair_is_not_evaluated_again_and_the_held_ones_are_counted():
    core = cross()
    okx = [book("okx", 99.99, 3000.0, 100.0, 1000.0), funding("okx", 0.0)]
    # bybit's book opens two trades at once, long binance and long okx: the first is signalled, the
    # second held by the symbol's cooldown
    assert feed(core, [BINANCE, funding("binance", 0.0), *okx, funding("bybit", 0.001), BYBIT])[-1] == [
        f"BTCUSDT-binance-bybit-{T0}"]
    assert core.held == {"cooldown": 1}
    # now both pairs are blocked (pending, cooldown): the next book is not even evaluated, nothing is held
    assert feed(core, [BYBIT], T0 + 1000) == [[]] and core.held == {"cooldown": 1}
    core.gate.cooldown_ms = 0  # without the cooldown only the pending pair is held, by the gate's pre-check
    assert feed(core, [BYBIT], T0 + 2000) == [[f"BTCUSDT-okx-bybit-{T0 + 2000}"]] and core.held == {"cooldown": 1}


def test_an_unknown_latency_is_stale_until_the_verdicts_come():
    core = StrategyCore()  # the defaults: cross mode, $1,000 trades, a 60 s cooldown
    assert feed(core, [BINANCE, funding("binance", 0.0), funding("bybit", 0.001), BYBIT]) == [[], [], [], []]
    assert core.scan(T0).rejections == {"hard_latency": 1}
    core.set_stale(FRESH)
    assert feed(core, [BYBIT]) == [[f"BTCUSDT-binance-bybit-{T0}"]]
    assert (core.mode, core.config, core.gate.cooldown_ms) == ("cross", ScanConfig(), 60_000)


def test_an_event_older_than_the_max_age_updates_the_state_and_decides_nothing():
    events = [BINANCE, funding("binance", 0.0), funding("bybit", 0.001), BYBIT]  # received at T0
    at_limit = cross(max_event_age_ms=2000)
    assert feed(at_limit, events, T0 + 2000)[-1] == [f"BTCUSDT-binance-bybit-{T0 + 2000}"]  # 2 s old: in time
    late = cross(max_event_age_ms=2000)
    assert feed(late, events, T0 + 2001) == [[], [], [], []]  # 2.001 s old
    assert late.held == {"stale_event": 4} and late.state.get("bybit", "BTCUSDT").bid == 100.40
    assert late.scan(T0 + 2001).opportunities  # the state moved: the scan still sees it


def test_only_the_configured_symbols_are_kept_and_scanned():
    core = cross(symbols=["ETHUSDT"])
    assert feed(core, [BINANCE, funding("binance", 0.0), funding("bybit", 0.001), BYBIT]) == [[], [], [], []]
    assert core.state.by_symbol == {} and core.events == 4
    eth = [book("binance", 99.99, 3000.0, 100.0, 1000.0, "ETHUSDT"), funding("binance", 0.0, "ETHUSDT"),
           funding("bybit", 0.001, "ETHUSDT"), book("bybit", 100.40, 1000.0, 100.41, 3000.0, "ETHUSDT")]
    assert feed(core, eth)[-1] == [f"ETHUSDT-binance-bybit-{T0}"]
    result = core.scan(T0 + 1)
    assert result.candidates == 1 and [(o.symbol, o.detected_ms) for o in result.opportunities] == [("ETHUSDT",
                                                                                                     T0 + 1)]


def test_the_state_settings_reach_every_market():
    core = cross(state_config=StateConfig(vwap_window_s=2))
    for i, price in enumerate([100.0, 200.0, 300.0]):
        core.on_event(Trade(venue="okx", symbol="BTCUSDT", trade_id=str(i), price=price, size=1.0, side="buy",
                            exchange_ts_ms=T0 + i * 1000, receive_ts_us=0), T0)
    assert core.state.get("okx", "BTCUSDT").vwap == 250.0  # the first second left the 2 s window


def test_a_mode_other_than_cross_or_synthetic_is_refused():
    with pytest.raises(ValueError, match="mode 'both' is not cross or synthetic"):
        StrategyCore("both")


def synthetic(symbols: list[str] | None) -> StrategyCore:
    return StrategyCore("synthetic", ScanConfig(position_usd=1000.0), SignalGate(cooldown_ms=60_000),
                        symbols=symbols, synthetic=SyntheticConfig(venue="bybit", spread_bps=50.0,
                                                                   funding_delta=0.01))


def test_synthetic_mode_rates_the_configured_venues_quotes_and_scans_its_symbols():
    quote = book("bybit", 64999.0, 1.0, 65001.0, 1.0)
    core = synthetic(["BTCUSDT", "ETHUSDT"])
    assert feed(core, [book("okx", 64999.0, 1.0, 65001.0, 1.0)]) == [[]]  # another venue: nothing
    [s] = core.on_event(quote, T0 + 7)
    # 50 bps and 0.01: confidence 50 + 30; long bybit at mid x (1 - 0.0025), short bybit_synthetic
    assert (s.id, s.opportunity.confidence, s.opportunity.detected_ms) == (f"BTCUSDT-bybit-bybit_synthetic-{T0 + 7}",
                                                                            80, T0 + 7)
    assert s.opportunity.long_price == pytest.approx(65000 * 0.9975)
    result = core.scan(T0 + 8)
    assert (result.candidates, result.rejections) == (2, {"no_quote": 1})  # no ETHUSDT quote yet
    assert [(o.symbol, o.detected_ms) for o in result.opportunities] == [("BTCUSDT", T0 + 8)]
    every = synthetic(None)  # no symbols configured: every symbol seen on any venue
    feed(every, [quote, book("okx", 1.0, 1.0, 1.1, 1.0, "ETHUSDT")])
    result = every.scan(T0)
    assert (result.candidates, result.rejections, [o.symbol for o in result.opportunities]) == (
        2, {"no_quote": 1}, ["BTCUSDT"])
