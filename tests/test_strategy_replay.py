"""Recorded and simulated market data replayed through the strategy core: the same events
give the same signals and rankings every time."""

from __future__ import annotations

import json

from services.sim.market import MarketModel
from services.sim.server import DIALECTS
from services.strategy.core import StrategyCore
from services.strategy.scanner import ScanConfig
from services.strategy.signals import SignalGate
from shared.instruments import SymbolMap
from shared.venues import venue
from tests.conftest import bybit_instruments, capture_frames

T0 = 1_800_000_000_000


def capture_events() -> list:
    parser = venue("bybit").feed.parser(bybit_instruments())
    return [e for i, f in enumerate(capture_frames()) for e in parser.feed(f, i) if hasattr(e, "TYPE")]


def run_synthetic(events) -> tuple[list, list]:
    core = StrategyCore("synthetic", ScanConfig(position_usd=1000.0), SignalGate(cooldown_ms=60_000),
                        symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"])
    signals, scans, next_scan = [], [], 0
    for event in events:
        now = event.exchange_ts_ms
        signals += [(s.id, s.opportunity) for s in core.on_event(event, now)]
        if now >= next_scan:
            scans.append([(o.symbol, o.confidence, round(o.long_price, 6)) for o in core.scan(now).opportunities])
            next_scan = now + 1000
    return signals, scans


def test_the_real_bybit_capture_gives_the_same_synthetic_signals_every_time():
    events = capture_events()
    first, again = run_synthetic(events), run_synthetic(capture_events())
    assert first == again
    signals, scans = first
    assert sorted(o.symbol for _, o in signals) == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT"]  # 44 s < cooldown
    btc = next(o for _, o in signals if o.symbol == "BTCUSDT")
    assert btc.confidence == 80 and 60_000 < btc.long_price < btc.short_price < 70_000
    assert len(scans) > 30 and all(len(scan) <= 4 for scan in scans)


def simulated_events(seed: int) -> list:
    """A minute of a seeded market on Bybit, Binance and OKX, with a forced opportunity,
    through each venue's own wire format and parser."""
    model = MarketModel(["BTCUSDT"], seed=seed, start_ms=T0)
    model.force("BTCUSDT", "okx", 70.0, 0.004, T0 + 45_000)
    topics = {"bybit": ["tickers.BTCUSDT", "orderbook.50.BTCUSDT"],
              "binance": ["btcusdt@bookTicker", "btcusdt@depth20@100ms", "btcusdt@markPrice@1s"],
              "okx": ["tickers:BTC-USDT-SWAP", "books5:BTC-USDT-SWAP", "funding-rate:BTC-USDT-SWAP"]}
    dialects, parsers = {}, {}
    for name in topics:
        dialects[name] = DIALECTS[name](model)
        rest = venue(name).rest
        if name == "bybit":
            symbols = bybit_instruments()
        else:
            handlers = dialects[name].rest()
            bodies = [json.dumps(handlers[c.path](dict(c.params))[1]).encode() for c in rest.INSTRUMENTS]
            symbols = SymbolMap(name, rest.instruments(bodies))
        parsers[name] = venue(name).feed.parser(symbols)
    events = []

    def feed(name: str, topic: str, frame: bytes) -> None:
        if name == "binance":
            frame = b'{"stream":"%s","data":%s}' % (topic.encode(), frame)
        events.extend(e for e in parsers[name].feed(frame, model.now_ms * 1000) if hasattr(e, "TYPE"))

    for name, names in topics.items():
        for topic in names:
            for frame in dialects[name].snapshot(topic):
                feed(name, topic, frame)
    for _ in range(3000):  # 60 s of 20 ms steps
        model.step(model.now_ms + 20)
        for name, names in topics.items():
            for topic, frames in dialects[name].step_frames(set(names)).items():
                for frame in frames:
                    feed(name, topic, frame)
    return events


def run_cross(events) -> list:
    core = StrategyCore("cross", ScanConfig(position_usd=1000.0, scorer="dashboard"), SignalGate(cooldown_ms=10_000))
    core.set_stale({"bybit": False, "binance": False, "okx": False})
    return [(s.id, s.opportunity.long_venue, s.opportunity.short_venue, s.opportunity.confidence)
            for e in events for s in core.on_event(e, e.exchange_ts_ms)]


def test_a_simulated_three_venue_market_gives_the_same_cross_signals_every_time():
    events = simulated_events(seed=21)
    signals = run_cross(events)
    assert signals == run_cross(simulated_events(seed=21))
    assert signals and all(short == "okx" for _, _, short, _ in signals)  # OKX was forced 70 bps dearer


def test_an_event_received_longer_ago_than_the_max_age_updates_the_state_and_decides_nothing():
    events = capture_events()  # receive_ts_us is the frame's index: received at 0-n µs
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT"]

    def signals(now_ms: int) -> tuple[int, StrategyCore]:
        core = StrategyCore("synthetic", ScanConfig(position_usd=1000.0), SignalGate(cooldown_ms=0),
                            symbols=symbols, max_event_age_ms=2_000)
        return sum(len(core.on_event(e, now_ms)) for e in events), core

    fresh, _ = signals(1_000)  # every event under 2 s old
    stale, core = signals(10_000)  # every event 10 s old: a backlog, or entries taken over
    assert fresh > 0 and stale == 0
    assert core.held["stale_event"] > 0 and core.state.by_symbol.keys() >= set(symbols)  # the state still moved
