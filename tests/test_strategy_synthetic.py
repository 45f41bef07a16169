"""Synthetic test mode: the dashboard qualification, its arithmetic, and why the seed's
defaults can never qualify."""

from __future__ import annotations

import pytest

from services.strategy.costs import slippage_bps, taker_fee_bps
from services.strategy.synthetic import dashboard_confidence, never_qualifies, synthetic_quote
from shared.settings import Settings


def test_the_defaults_qualify_with_the_arithmetic_the_readme_shows():
    s = Settings(_env_file=None)
    q = synthetic_quote("BTCUSDT", 64999.0, 65001.0, s.synthetic_spread_bps, s.synthetic_funding_delta,
                        float(s.estimated_position_size))
    assert q.qualifies and q.confidence == 80  # 100 x 0.5 + 100 x 0.3
    assert (q.fees_bps, q.depth_usd) == (11.0, 50_000.0)
    assert q.slippage_bps == pytest.approx(2.06)  # 2 + 1,000 / 50,000 x 3
    assert q.profit_bps == pytest.approx(50 - 11 - 10 - 2.06)
    assert (q.long_price, q.short_price) == (pytest.approx(65000 * (1 - 0.0025)), pytest.approx(65000 * 1.0025))


def test_the_seed_defaults_fail_three_ways_and_say_so():
    failed = never_qualifies(15.0, 0.0001, 1000.0)
    assert failed == (
        "funding delta 0.0001 is not above 0.0001 per 8 h",
        "confidence 15 is below 70",
        "projected profit -8.06 bps = 15 spread - 11 fees - 10 funding - 2.06 slippage is not above 0",
    )
    assert never_qualifies(50.0, 0.01, 1000.0) == ()


@pytest.mark.parametrize(("spread", "delta", "confidence"), [
    (15, 0.0001, 15), (50, 0.0067, 70), (50, 0.0066, 69), (100, 0.02, 80), (25, 0.005, 40),
    (49.8, 0.01, 79)])  # 49.8 + 30 = 79.8, truncated
def test_dashboard_confidence(spread, delta, confidence):
    assert dashboard_confidence(spread, delta) == confidence


def test_depth_estimate_tiers_and_the_depth_check():
    wide = synthetic_quote("X", 1.0, 1.0, 250.0, 0.01, 3000.0)  # $5,000 of depth for a $3,000 position
    assert wide.depth_usd == 5000.0 and "estimated depth $5,000 is below 2 x the $3,000 position" in wide.failed
    assert synthetic_quote("X", 1.0, 1.0, 150.0, 0.01, 1000.0).depth_usd == 10_000.0


def test_fees_and_slippage_tables():
    assert [taker_fee_bps(v) for v in ("binance", "OKX", "bybit", "hyperliquid", "gate", "kraken")] == [
        4.0, 5.0, 5.5, 3.5, 6.0, 6.0]
    assert slippage_bps(1000, 50_000) == pytest.approx(2.06)
    assert slippage_bps(1_000_000, 50_000) == 5.0 and slippage_bps(1000, 0) == 5.0
    assert slippage_bps(0.01, 0.5) == pytest.approx(2.06)  # 50 cents of depth is some depth: 2 + 0.02 x 3


def test_arb_strategy_warns_at_start_when_synthetic_settings_can_never_qualify(monkeypatch, redis_url, prefix, r):
    from typer.testing import CliRunner

    from services.cli import app

    monkeypatch.setenv("SYNTHETIC_SPREAD_BPS", "15")
    monkeypatch.setenv("SYNTHETIC_FUNDING_DELTA", "0.0001")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("REDIS_KEY_PREFIX", prefix)  # `r` deletes what the runs create
    result = CliRunner().invoke(app, ["strategy", "--mode", "synthetic", "--duration", "0"])
    assert result.exit_code == 0
    assert ("warning: with SYNTHETIC_SPREAD_BPS=15, SYNTHETIC_FUNDING_DELTA=0.0001 and ESTIMATED_POSITION_SIZE=1000 "
            "no synthetic opportunity can ever qualify: funding delta 0.0001 is not above 0.0001 per 8 h; "
            "confidence 15 is below 70; projected profit -8.06") in result.output
    monkeypatch.delenv("SYNTHETIC_SPREAD_BPS")
    monkeypatch.delenv("SYNTHETIC_FUNDING_DELTA")
    assert "warning" not in CliRunner().invoke(app, ["strategy", "--mode", "synthetic", "--duration", "0"]).output
    assert CliRunner().invoke(app, ["strategy", "--mode", "both"]).exit_code == 2


@pytest.mark.parametrize(("spread", "depth"), [
    (200.5, 5_000.0), (200.0, 10_000.0), (100.5, 10_000.0), (100.0, 50_000.0), (15.0, 50_000.0)])
def test_depth_estimate_tiers_are_strictly_above_200_and_100_bps(spread, depth):
    assert synthetic_quote("X", 1.0, 1.0, spread, 0.01, 1000.0).depth_usd == depth


def test_each_qualification_at_its_threshold_and_its_reason_key():
    # depth: $50,000 (spread 50 bps) is exactly 2 x $25,000: enough; 2 x $25,001 is not
    assert "depth" not in synthetic_quote("X", 1.0, 1.0, 50.0, 0.01, 25_000.0).reasons
    assert synthetic_quote("X", 1.0, 1.0, 50.0, 0.01, 25_001.0).reasons == ("depth",)
    assert synthetic_quote("X", 1.0, 1.0, 50.0, 0.01, 20_000.0).qualifies  # $50,000 >= 2 x $20,000
    # confidence: 50 bps and 0.0067: 50 + int-ed 0.67 x 30 -> 70, enough; 0.0066 -> 69 is not
    assert synthetic_quote("X", 1.0, 1.0, 50.0, 0.0067, 1000.0).qualifies
    assert synthetic_quote("X", 1.0, 1.0, 50.0, 0.0066, 1000.0).reasons == ("confidence",)
    # profit: $12,500 into $50,000 slips 2 + 0.25 x 3 = 2.75 bps; 23.75 - 11 - 10 - 2.75 = 0 is not above 0
    even = synthetic_quote("X", 1.0, 1.0, 23.75, 0.01, 12_500.0)
    assert even.profit_bps == 0.0 and even.reasons == ("confidence", "profit")  # 23 + 30 = 53 < 70 too
    # 23.5 bps on $1,000: 23.5 - 11 - 10 - 2.06 = 0.44 bps is a profit, however small
    small = synthetic_quote("X", 1.0, 1.0, 23.5, 0.01, 1000.0)
    assert small.profit_bps == pytest.approx(0.44) and small.reasons == ("confidence",)
    # funding: |delta| strictly above 0.0001, either sign
    assert synthetic_quote("X", 1.0, 1.0, 50.0, -0.01, 1000.0).qualifies
    assert synthetic_quote("X", 1.0, 1.0, 100.0, 0.0001, 1000.0).reasons == ("funding", "confidence")  # 50 + 0
    every = synthetic_quote("X", 1.0, 1.0, 15.0, 0.0, 30_000.0)  # $50,000 < 2 x $30,000
    assert every.reasons == ("funding", "depth", "confidence", "profit") and len(every.failed) == 4


def test_the_quote_carries_its_inputs_and_prices_half_the_spread_each_side_of_mid():
    q = synthetic_quote("ETHUSDT", 2999.0, 3001.0, 40.0, 0.008, 1000.0)
    assert (q.symbol, q.spread_bps, q.funding_delta) == ("ETHUSDT", 40.0, 0.008)
    # mid 3,000; 40 bps: 20 bps below and above, 2,994 and 3,006
    assert q.long_price == pytest.approx(2994.0, abs=1e-9) and q.short_price == pytest.approx(3006.0, abs=1e-9)
    # confidence 40 / 50 x 50 = 40 + 0.8 x 30 = 24: 64
    assert q.confidence == 64 and q.reasons == ("confidence",)
