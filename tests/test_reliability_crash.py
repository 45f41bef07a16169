"""Reliability item 1: SIGKILL the executor (live, synthetic, against the simulated Bybit) at
its named points (shared/failpoints.py: after reading a signal, before and after writing the
facts, after each entry leg's fill, before the XACK) while it trades, restart it each time,
then stop it properly.

Figures: naked legs left at the venue = 0, orders left open = 0, duplicate venue orders = 0,
events lost = 0 (orders at the venue without their fact, fills at the venue the facts do not
hold, signals read with no decision), the ledger equal to the replay of the facts, and the time
from a restart to reading signals again (p95). The run and its checks are
`tests.executor_process.sigkill_trading`, which the same item across Bybit and OKX shares
(tests/test_reliability_cross.py)."""

from __future__ import annotations

import pytest

from tests.executor_process import sigkill_trading
from tests.figures import scale

pytestmark = [pytest.mark.reliability, pytest.mark.redis]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def test_1_sigkill_at_every_named_point_leaves_no_naked_leg_no_duplicate_and_loses_no_event(
        settings, r, tmp_path):
    await sigkill_trading(settings, r, tmp_path, ("bybit", "bybit_synthetic"), scale(40, 200), SYMBOLS)
