"""Reliability item 9: every parser and every REST response handler fed malformed input.

Each venue's public-stream parser gets its messages (recorded ones where a recording exists,
and the simulator's in the venue's wire format) with 10,000 broken ones mixed in: values
replaced by NaN, infinity, prices <= 0, text or the wrong type, fields left out, truncated or
corrupted frames, and earlier messages again (duplicate and out-of-order ids). The REST
handlers (instruments lists, server times) and the executor's handlers of Bybit's private
stream get 10,000 broken answers each.

Figures: crashes = 0 (anything raised out of a handler, or caught by the parsers' frame loop
as an error it did not foresee: `parser_error`); events or facts that carry a value no
venue could mean (a price <= 0 or not finite, a size < 0, a symbol not asked for) = 0, since
those are what an order could be made from; and every reject counted: a broken message that
gives nothing moves one of the parser's counters.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

import aiohttp
import pytest

from services.executor import facts as f
from services.executor.live import VenueExecution
from shared.events import BookUpdate, Liquidation, Ticker, Trade
from shared.instruments import SymbolMap
from shared.venues import NAMES, venue
from shared.venues.bybit.trading import BybitTrading
from shared.venues.protocol import VenueError
from tests.conftest import BYBIT_SAMPLES, bybit_instruments, capture_frames
from tests.figures import figure, scale
from tests.fuzz import Mutator
from tests.sim_frames import SIM_SYMBOLS, sim_instruments, simulated_frames
from tests.test_venues import binance_map, capture, okx_map

pytestmark = pytest.mark.reliability
CASES = 10_000  # broken messages per handler, both forms
REST_ERRORS = (VenueError,)  # what the ingestor, the latency monitor and the executor catch


CORPORA = [("bybit", "2026-08 capture"), ("binance", "2021 capture"), ("okx", "2022 capture"),
           *((name, "simulated") for name in NAMES)]


def _corpus(name: str, what: str) -> tuple[SymbolMap, list[bytes]]:
    """The instruments and the messages of one venue: recorded, or the simulator's."""
    if what == "2026-08 capture":
        return bybit_instruments(), capture_frames()
    if what == "2021 capture":
        return (binance_map("SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"),
                capture("binance", "ws_usdm_capture_SUSHIUSDT_2021_cryptofeed.jsonl"))
    if what == "2022 capture":
        return okx_map(), capture("okx", "ws_capture_UNI-USD-SWAP_2022_cryptofeed.jsonl")
    symbols = bybit_instruments() if name == "bybit" else SymbolMap(
        name, venue(name).rest.instruments(sim_instruments(name, SIM_SYMBOLS)))
    return symbols, simulated_frames(name, SIM_SYMBOLS, seconds=scale(10, 60))


def _finite(x, low: float = 0.0, strict: bool = False) -> bool:
    return x is None or (isinstance(x, float | int) and math.isfinite(x) and (x > low if strict else x >= low))


def out_of_range(event, symbols: set[str]) -> str | None:
    """What in `event` no venue could mean, or None."""
    if event.symbol not in symbols:
        return f"symbol {event.symbol}"
    match event:
        case Ticker():
            for name in ("bid", "ask", "last", "mark", "index"):
                if not _finite(getattr(event, name), strict=True):
                    return f"{name} {getattr(event, name)}"
            for name in ("bid_size", "ask_size", "open_interest"):
                if not _finite(getattr(event, name)):
                    return f"{name} {getattr(event, name)}"
            if not _finite(event.funding_rate, -math.inf):
                return f"funding_rate {event.funding_rate}"
        case BookUpdate():
            for price, size in event.bids + event.asks:
                if not (_finite(price, strict=True) and _finite(size, strict=event.kind == "snapshot")):
                    return f"level {price} x {size}"
        case Trade() | Liquidation():
            if not (_finite(event.price, strict=True) and _finite(event.size, strict=True)):
                return f"{event.price} x {event.size}"
    return None


@pytest.mark.parametrize("name, what", CORPORA)
def test_a_parser_fed_broken_messages_never_crashes_never_passes_a_bad_value_and_counts_every_reject(name, what):
    symbols, frames = _corpus(name, what)
    parser = venue(name).feed.parser(symbols)
    mutator = Mutator(seed=sum(map(ord, name + what)))
    rng, canonical = mutator.rng, {i.symbol for i in symbols.by_symbol.values()}
    crashes, bad_values, silent, mutants, sent = [], [], [], 0, []
    i = 0
    while mutants < CASES:
        frame = frames[i % len(frames)]
        i += 1
        if rng.random() < 0.5:
            mutants += 1
            broken = mutator.replay(sent) if sent and rng.random() < 0.1 else mutator.mutate(frame)
            before = parser.stats.noted
            try:
                out = parser.feed(broken, 1)
            except Exception as exc:  # the figure: nothing may escape
                crashes.append((broken[:300], repr(exc)))
                continue
            bad_values += [(broken[:300], why) for e in out if hasattr(e, "TYPE") and (why := out_of_range(e, canonical))]
            if not out and parser.stats.noted == before and broken not in sent:
                silent.append(broken[:300])
        out = parser.feed(frame, 1)
        bad_values += [(frame[:300], why) for e in out if hasattr(e, "TYPE") and (why := out_of_range(e, canonical))]
        sent.append(frame)
    rejects = parser.stats.error_count
    crashes += [("(counted as parser_error)", "")] * parser.stats.errors["parser_error"]
    figure(9, f"{name} parser ({what}): crashes / bad values passed / silent skips of {mutants:,} broken",
           f"{len(crashes)} / {len(bad_values)} / {len(silent)} ({rejects:,} rejects counted)", "0 / 0 / 0",
           not (crashes or bad_values or silent))
    assert crashes == [], crashes[:3]
    assert bad_values == [], bad_values[:3]
    assert silent == [], silent[:5]


def _rest_answers(name: str) -> list[tuple[str, list[bytes]]]:
    """The venue's answers to its instruments calls (all of them: one is broken at a time) and
    to its server-time call, as the simulator (Bybit: the recorded answers) gives them."""
    from services.sim.market import MarketModel
    from services.sim.server import DIALECTS

    if name == "bybit":
        return [("instruments", [(BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json").read_bytes()]),
                ("server_time", [(BYBIT_SAMPLES / "docexample_rest_market_time.json").read_bytes()])]
    call = venue(name).rest.SERVER_TIME
    dialect = DIALECTS[name](MarketModel(SIM_SYMBOLS, seed=3))
    handler = dialect.rest_post()[call.path] if call.json else dialect.rest()[call.path]
    return [("instruments", sim_instruments(name, SIM_SYMBOLS)),
            ("server_time", [json.dumps(handler(dict(call.json or call.params))[1]).encode()])]


@pytest.mark.parametrize("name", NAMES)
def test_rest_handlers_fed_broken_answers_raise_only_their_error_and_never_a_bad_grid(name):
    v = venue(name)
    answers = _rest_answers(name)
    mutator = Mutator(seed=len(name))
    crashes, bad, refused = [], [], 0
    for case in range(CASES):
        handler, bodies = answers[case % len(answers)]
        i = mutator.rng.randrange(len(bodies))
        broken = [*bodies[:i], mutator.mutate(bodies[i]), *bodies[i + 1:]]
        try:
            if handler == "instruments":
                for inst in v.instruments(broken):
                    grid = (inst.tick, inst.lot, inst.min_size, inst.contract_size)
                    if not all(g is None or (g.is_finite() and g > 0) for g in grid) or not inst.symbol:
                        bad.append((broken[i][:200], grid))
            else:
                ms = v.server_time_ms(broken[0])
                if not isinstance(ms, int) or ms <= 0:
                    bad.append((broken[0][:200], ms))
        except REST_ERRORS:
            refused += 1
        except Exception as exc:
            crashes.append((broken[i][:200], repr(exc)))
    figure(9, f"{name} REST handlers: crashes / bad grids or times of {CASES:,} broken",
           f"{len(crashes)} / {len(bad)} ({refused:,} refused)", "0 / 0", not (crashes or bad))
    assert crashes == [], crashes[:3]
    assert bad == [], bad[:3]


async def test_the_executors_bybit_handlers_fed_broken_messages_make_no_bad_fact():
    """The private stream's order and execution messages, broken, into the live executor's
    handler for orders it placed: only facts with real values come out, and nothing raises.
    (Executions it would fetch go to a closed port: the client's real 'unreachable' path.)"""
    samples = [json.loads((BYBIT_SAMPLES / n).read_text()) for n in
               ("docexample_ws_private_execution.json", "docexample_ws_private_order.json")]
    link_ids = {row["orderLinkId"] for s in samples for row in s["data"]}
    async with aiohttp.ClientSession() as http:
        trading = BybitTrading(http, "http://127.0.0.1:9", "key", "secret")
        mutator = Mutator(seed=9)
        crashes, bad, counted = [], [], 0
        for case in range(CASES):
            bybit = VenueExecution(trading)
            for link_id in link_ids:
                bybit.track(f.OrderPlaced(ts_ms=0, trade_id="t", link_id=link_id, leg="long", purpose="entry",
                                          venue="bybit", symbol="BTCUSDT", side="Buy", order_type="Limit",
                                          qty=Decimal("0.01"), price=Decimal(60_000), reduce_only=False,
                                          position_idx=0))
            broken = mutator.mutate(json.dumps(samples[case % 2]).encode())
            try:
                facts = await bybit.on_message(json.loads(broken))
            except ValueError:
                continue  # not JSON: the stream's reader refuses it before the handler
            except Exception as exc:
                crashes.append((broken[:200], repr(exc)))
                continue
            finally:
                counted += sum(bybit.bad_rows.values())
            for x in facts:
                if isinstance(x, f.OrderFilled) and not (x.qty.is_finite() and x.qty > 0 and x.price.is_finite()
                                                         and x.price > 0 and x.fee.is_finite()):
                    bad.append((broken[:200], x))
    figure(9, f"executor's Bybit stream handlers: crashes / bad fills of {CASES:,} broken", f"{len(crashes)} / "
           f"{len(bad)} ({counted:,} malformed rows counted)", "0 / 0", not (crashes or bad))
    assert crashes == [], crashes[:3]
    assert bad == [], bad[:3]
