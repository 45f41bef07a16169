"""Reliability items 1, 5 and 7 across two venues, on every pair of Bybit, OKX, Bitget and
Binance: a live cross executor with one leg at each venue of the pair on the simulator (each
venue's real trading API: signed REST, private stream, matching engine), the safety stops off.

1. SIGKILL of the executor process at every named point while it trades, restarted each time,
   then stopped properly [naked legs = 0 and no order left open at either venue, duplicate
   orders = 0 at each venue, events lost = 0].
5. 30 % of the order creates carried out but their answers dropped, at both venues [duplicate
   orders = 0, dropped creates resolved by client id = 100 %].
7. The second leg refused, with its hedges: the trade is long the easier venue and short the
   harder one, whose leg goes first; the easier venue's is refused [leg-out events = one a
   trade, unwinds sent reduce-only = 100 %, longest naked exposure in ms].

Trades are long the easier venue and short the harder one, held 60 bps above with its funding
0.5 % above: no spread or funding exit, each trade closes at its maximum hold (or when stopped).
"""

from __future__ import annotations

import pytest

from services.executor import facts as f
from services.executor.sizing import EASE
from tests.executor_process import Left, dropped_answers, facts_of, left_behind, refused_second_legs, sigkill_trading
from tests.figures import figure, scale
from tests.live_venue import PAIRS as VENUE_PAIRS
from tests.live_venue import SAFETY_OFF, TwoVenues, cross_executor, trade_one, two_venues

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
# (long, short): each leg at its own venue, the harder (first) one short
PAIRS = [tuple(sorted(pair, key=lambda v: -EASE[v])) for pair in VENUE_PAIRS]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.mark.parametrize("legs", PAIRS, ids="-".join)
async def test_1_cross_sigkill_at_every_named_point_leaves_both_venues_flat_no_duplicate_and_loses_no_event(
        settings, r, tmp_path, legs):
    await sigkill_trading(settings, r, tmp_path, legs, scale(15, 200), SYMBOLS, label=f"{'+'.join(legs)}: ")


@pytest.mark.parametrize("legs", PAIRS, ids="-".join)
async def test_5_cross_dropped_create_answers_at_both_venues_are_resolved_by_client_id_and_never_make_a_second_order(
        settings, r, legs):
    trades = scale(20, 100)
    async with two_venues(settings, r, pair=legs) as venues:
        await venues.faults(drop_order_responses_fraction=0.3)  # at both venues, one draw a create
        async with cross_executor(venues, exit_max_hold_s=0.2, **SAFETY_OFF) as executor:
            for _ in range(trades):
                await trade_one(executor, lambda: venues.cross_signal(*legs))
        await left_at_both(venues, 5, f"{'+'.join(legs)}: {trades} trades with dropped answers: ")
        dropped_answers(executor.facts_written, list(venues.server.journal), venues.server, trades,
                        label=f"{'+'.join(legs)}: ")
    assert len(executor.core.closed) == trades


@pytest.mark.parametrize("legs", PAIRS, ids="-".join)
async def test_7_cross_the_refused_second_leg_is_a_leg_out_unwound_reduce_only_at_the_other_venue(settings, r, legs):
    trades = scale(20, 50)
    async with two_venues(settings, r, pair=legs) as venues:
        # the second entry order, the long one (<trade>-LE2), and every hedge of it (-LH<n>), whether the
        # venue's client id keeps the - or not
        await venues.faults(reject_link_ids="^[0-9a-f]{12}-?L[EH]", reject_code=110007,
                            reject_message="ab not enough for new order")
        async with cross_executor(venues, **SAFETY_OFF) as executor:
            for _ in range(trades):
                await trade_one(executor, lambda: venues.cross_signal(*legs))
        await left_at_both(venues, 7, f"{'+'.join(legs)}: {trades} trades with the second leg refused: ")
    taken = [x for x in executor.facts_written if isinstance(x, f.SignalTaken)]
    assert {(x.harder, x.long_venue, x.short_venue) for x in taken} == {("short", *legs)}  # the harder leg went first
    refused_second_legs(executor.facts_written, list(venues.server.journal), trades, label=f"{'+'.join(legs)}: ")


async def left_at_both(venues: TwoVenues, item: int, label: str) -> None:
    """The figure and checks of what the executor (stopped) left at both venues and in its facts."""
    left = await left_behind(venues.r, venues.settings, venues.server,
                             await facts_of(venues.r, venues.settings.redis_key_prefix + venues.settings.stream_events))
    figure(item, label + Left.NAMES, left.text(), Left.TARGET, left.ok())
    left.check()
