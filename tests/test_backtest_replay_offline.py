"""A backtest is a replay, in-process and without Redis: half a minute of the simulator's market
on Bybit and Binance (each venue's own frames through its own parser), with Binance forced
100 bps dearer, written as `arb record` writes a recording, read back and replayed through the
live strategy and executor cores with paper fills. The trades it reports are the facts' trades."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from services.backtest.replay import RecordingError, grid_line, read_recording, run
from services.executor import facts as f
from services.executor.core import ExecConfig
from services.executor.service import grid_of
from services.sim.market import MarketModel
from services.sim.server import DIALECTS
from services.strategy.scanner import ScanConfig
from services.strategy.signals import SignalGate, pair_of
from shared.codec import to_fields
from shared.instruments import SymbolMap
from shared.venues import venue
from tests.conftest import bybit_instruments

T0 = 1_800_000_000_000
TOPICS = {"bybit": ["tickers.BTCUSDT", "orderbook.50.BTCUSDT"],
          "binance": ["btcusdt@bookTicker", "btcusdt@depth20@100ms", "btcusdt@markPrice@1s"]}


def record(path, seconds: int = 30, forced: tuple[tuple[int, int], ...] = ((0, 30),), start_ms: int = T0) -> int:
    """A recording of `seconds` of the simulated market from `start_ms` at `path`, Binance 100 bps
    dearer in each `forced` window (from, to in s after the start); how many events it holds."""
    model = MarketModel(["BTCUSDT"], seed=11, start_ms=start_ms)
    windows = {start_ms + start * 1000: start_ms + end * 1000 for start, end in forced}
    dialects, parsers, grids = {}, {}, {}
    for name in TOPICS:
        dialects[name] = DIALECTS[name](model)
        if name == "bybit":
            symbols = bybit_instruments()
        else:
            handlers = dialects[name].rest()
            bodies = [json.dumps(handlers[c.path](dict(c.params))[1]).encode() for c in venue(name).rest.INSTRUMENTS]
            symbols = SymbolMap(name, venue(name).rest.instruments(bodies))
        parsers[name] = venue(name).feed.parser(symbols)
        grids[name, "BTCUSDT"] = grid_of(symbols.by_symbol["BTCUSDT"])
    events = []

    def feed(name: str, topic: str, frame: bytes) -> None:
        if name == "binance":
            frame = b'{"stream":"%s","data":%s}' % (topic.encode(), frame)
        events.extend(e for e in parsers[name].feed(frame, model.now_ms * 1000) if hasattr(e, "TYPE"))

    for name, topics in TOPICS.items():
        for topic in topics:
            for frame in dialects[name].snapshot(topic):
                feed(name, topic, frame)
    for _ in range(seconds * 50):  # 20 ms steps
        if model.now_ms in windows:
            model.force("BTCUSDT", "binance", 100.0, 0.005, windows[model.now_ms])
        model.step(model.now_ms + 20)
        for name, topics in TOPICS.items():
            for topic in topics:  # one at a time: a set's order (sequence numbers) moves with PYTHONHASHSEED
                for frame in dialects[name].step_frames({topic}).get(topic, []):
                    feed(name, topic, frame)
    lines = [grid_line(grids)] + [json.dumps({"fields": to_fields(e)}) for e in events]
    path.write_text("\n".join(lines) + "\n")
    return len(events)


def replay(path, config: ExecConfig | None = None, gate: SignalGate | None = None):
    grids, events, skipped = read_recording(path)
    result = run(events, grids, config or ExecConfig(starting_capital=D(20_000)),
                 ScanConfig(position_usd=1000.0, scorer="dashboard"),
                 gate or SignalGate(cooldown_ms=60_000, pending_ttl_ms=30_000))
    return grids, result, skipped[0]


START = T0 - 15_000  # T0 is a funding settlement (every 8 h)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """30 s across a funding settlement, Binance forced dearer throughout, and how many events it holds."""
    path = tmp_path_factory.mktemp("replay") / "rec.jsonl"
    return path, record(path, start_ms=START)


def test_a_recording_replays_in_process_to_the_same_facts_and_the_forced_trade(recording):
    path, n = recording
    grids, first, skipped = replay(path)
    assert set(grids) == {("bybit", "BTCUSDT"), ("binance", "BTCUSDT")} and skipped == 0
    assert grids["binance", "BTCUSDT"].tick > 0 and grids["bybit", "BTCUSDT"].lot > 0
    assert first.events == n > 1_000
    _, second, _ = replay(path)
    assert [f.to_fields(x) for x in first.facts] == [f.to_fields(x) for x in second.facts]  # deterministic

    taken = [x for x in first.facts if isinstance(x, f.SignalTaken)]
    assert taken and first.signals >= len(taken)
    assert taken[0].short_venue == "binance" and taken[0].long_venue == "bybit"  # Binance was forced dearer
    # on the recording's clock: each event's receive time, in ms
    assert all(START <= x.ts_ms <= START + 30_000 for x in first.facts)
    for t in taken:  # the signal the strategy made is the one the executor took
        assert (t.mode, pair_of(t.signal_id)) == ("cross", (t.symbol, t.signal_long_venue, t.signal_short_venue))
        assert t.signal_ms == int(t.signal_id.rsplit("-", 1)[1]) and 70 <= t.confidence <= 100
        assert 80 <= t.entry_spread_bps <= 120  # the forced 100 bps, give or take the books' own spread
    p = first.core.portfolio
    assert not first.core.trades and p.closed_trades + p.rejected_trades == len(taken)  # all closed at the end
    assert p.available + p.open_exposure == p.starting_capital + p.cumulative_pnl


def test_the_backtest_of_a_replay_reports_the_facts_trades(recording):
    # trades held at most 10 s: three in the 30 s, the last closed at the end of the recording
    _, result, _ = replay(recording[0], ExecConfig(starting_capital=D(20_000), max_hold_ms=10_000),
                          SignalGate(cooldown_ms=1_000, pending_ttl_ms=5_000))
    closed = [x for x in result.facts if isinstance(x, f.TradeClosed)]
    taken = {x.trade_id: x for x in result.facts if isinstance(x, f.SignalTaken)}
    assert len(closed) == 3
    report = result.backtest()
    assert len(report.trades) == len(closed)
    equity = D(0)
    for trade, fact, (at, value) in zip(report.trades, closed, report.equity, strict=True):
        t = taken[fact.trade_id]
        assert (trade.symbol, trade.long_venue, trade.short_venue) == (t.symbol, t.long_venue, t.short_venue)
        assert (trade.opened_ms, trade.closed_ms, trade.qty, trade.notional_usd) == (t.ts_ms, fact.ts_ms, t.qty,
                                                                                     t.size_usd)
        # the facts count funding paid; the report counts it received
        assert (trade.fees_usd, trade.funding_usd, trade.pnl_usd) == (fact.fees_usd, -fact.funding_usd, fact.pnl_usd)
        assert trade.price_pnl_usd == fact.pnl_usd + fact.fees_usd + fact.funding_usd
        assert trade.pnl_usd == trade.price_pnl_usd - trade.fees_usd + trade.funding_usd
        assert (trade.closest_to_liquidation, trade.liquidated) == (1, False)  # no liquidation in a replay
        assert trade.reason == f"{fact.outcome}:{fact.reason}"
        equity += fact.pnl_usd
        assert (at, value) == (fact.ts_ms, equity)  # the running sum of the closed trades' PnL
    assert equity == result.core.portfolio.cumulative_pnl
    # the trade open at the settlement received funding: short on Binance, forced 0.5 % dearer
    (funded,) = [t for t in report.trades if t.funding_usd]
    assert funded.funding_usd > 0 and funded.short_venue == "binance"
    # the capital reserved: each taken trade's size from its taking to its close
    reserved, expected = {}, []
    for x in result.facts:
        if isinstance(x, f.SignalTaken):
            reserved[x.trade_id] = x.size_usd
        elif isinstance(x, f.TradeClosed):
            reserved.pop(x.trade_id)
        else:
            continue
        expected.append((x.ts_ms, sum(reserved.values(), D(0))))
    assert report.exposure == expected and expected[0][1] > 0 and expected[-1][1] == 0


def test_a_recording_with_blank_and_cut_lines_skips_them_and_reads_on(tmp_path):
    path = tmp_path / "rec.jsonl"
    record(path, seconds=1)
    head, *lines = path.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join([head, lines[0], "", lines[1][:20], '{"fields": {"v": "1"}}', *lines[2:]]) + "\n")
    grids, events, skipped = read_recording(cut)
    # every event but the one whose line was cut; skipped: that line and the one that is no event
    assert len(list(events)) == len(lines) - 1 and skipped == [2]
    assert grids == read_recording(path)[0]
    # the grids as written: venue:symbol -> tick, lot, minimum
    written = json.loads(head)["grids"]
    assert {f"{v}:{s}": [str(g.tick), str(g.lot), str(g.min_qty)] for (v, s), g in grids.items()} == written


def test_the_strategy_learns_from_the_facts_which_pairs_are_taken_as_it_does_live(recording):
    # with a 1 s cooldown and a 5 s pending TTL, only the open trade keeps the pair from being
    # signalled again: a trade held at most 10 s, then at once the next (three in the 30 s)
    config = ExecConfig(starting_capital=D(20_000), max_hold_ms=10_000)
    _, result, _ = replay(recording[0], config, SignalGate(cooldown_ms=1_000, pending_ttl_ms=5_000))
    kinds = [type(x).__name__ for x in result.facts if isinstance(x, f.SignalTaken | f.TradeClosed)]
    assert kinds == ["SignalTaken", "TradeClosed"] * 3 and result.signals == 3
    # a rejected signal frees its pair at once: with $100, every signal is too small, and the pair
    # is signalled again each cooldown (one a second), not each pending TTL (5 s)
    _, poor, _ = replay(recording[0], ExecConfig(starting_capital=D(100)),
                        SignalGate(cooldown_ms=1_000, pending_ttl_ms=5_000))
    rejected = [x for x in poor.facts if isinstance(x, f.SignalRejected)]
    assert len(rejected) == poor.signals == 30 and {x.reason for x in rejected} == {"too_small"}


def test_exits_still_working_when_the_recording_ends_finish_on_the_clock(tmp_path):
    # limits at the far touch (no slippage allowed): at the end one exit leg fills, the other's
    # limit rests; the replay moves the clock on to the leg timeout, where it is cancelled and
    # closed at market
    path = tmp_path / "rec.jsonl"
    record(path, seconds=10, forced=((0, 10),))
    _, result, _ = replay(path, ExecConfig(starting_capital=D(20_000), limit_slippage_bps=0.0))
    end = T0 + 10_000
    (closed,) = [x for x in result.facts if isinstance(x, f.TradeClosed)]
    assert (closed.ts_ms, closed.reason) == (end + 500, "shutdown") and not result.core.trades
    after = [x for x in result.facts if x.ts_ms > end]
    assert {type(x).__name__ for x in after} >= {"CancelRequested", "LegOut", "OrderFilled", "TradeClosed"}
    assert [x.order_type for x in after if isinstance(x, f.OrderPlaced)] == ["Market"]
    kinds = [type(x).__name__ for x in result.facts]  # what came before the end is kept
    assert (kinds.count("SignalTaken"), kinds.count("TradeActive"), kinds.count("ExitStarted")) == (1, 1, 1)
    # held at most 9.94 s, the exit starts 40 ms before the end; a leg rests, and times out 500 ms
    # after it was placed: the clock moves to that deadline, not to a leg timeout after the end
    _, result, _ = replay(path, ExecConfig(starting_capital=D(20_000), limit_slippage_bps=0.0, max_hold_ms=9_940))
    (started,) = [x for x in result.facts if isinstance(x, f.ExitStarted)]
    (closed,) = [x for x in result.facts if isinstance(x, f.TradeClosed)]
    assert started.reason == "max_hold" and started.ts_ms < end < closed.ts_ms == started.ts_ms + 500


def test_an_empty_file_is_not_a_recording(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RecordingError, match=r"empty\.jsonl:1: not a recording"):
        read_recording(empty)


def test_a_recording_that_is_not_there_is_named(tmp_path):
    with pytest.raises(RecordingError, match=rf"^{tmp_path}/nope\.jsonl: No such file or directory$"):
        read_recording(tmp_path / "nope.jsonl")
