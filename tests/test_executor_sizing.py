"""The trade size (ESTIMATED_POSITION_SIZE within the seed's limits, the guide's 1 % risk rule
and POSITION_SIZE_LIMIT), its floor, and the settings that carry it to the executor."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import pairwise

import pytest

from services.executor import facts as f
from services.executor.core import ExecConfig
from services.executor.service import exec_config
from services.executor.sizing import (
    Grid,
    GridError,
    Sizing,
    at_step,
    common_qty,
    harder_leg,
    round_price,
    round_trip_fees_bps,
    trade_size_usd,
)
from shared.settings import load_settings
from tests.executor_market import Desk


def size(sizing: Sizing, available: str = "20000", equity: str = "20000", spread: float = 70.0,
         depth: float = 10_000_000.0) -> D:
    # binance (4 bps) and okx (5 bps): 18 bps of round-trip taker fees
    return trade_size_usd(spread, 0.0, "binance", "okx", D(available), D(equity), depth, sizing, 100.0)


def test_the_trade_size_setting_sets_the_size_when_the_seed_limits_allow_more():
    assert size(Sizing()) == D("10000.00")  # no size asked for: half of the $20,000 available
    assert size(Sizing(target_usd=D(1000))) == D("1000.00")
    assert size(Sizing(target_usd=D(12_000))) == D("10000.00")  # the seed's 50 % still caps it
    assert size(Sizing(target_usd=D(1000), limit_usd=D(400))) == D("400.00")  # POSITION_SIZE_LIMIT caps it


def test_the_seed_limits_edge_half_the_capital_and_half_the_depth():
    # (70 - 18) / 70 x $1,000 = $742.857... ; half of $1,000 is $500 and binds
    assert size(Sizing(), available="1000") == D("500.00")
    # (20 - 18) / 20 x $20,000 = $2,000: the edge binds
    assert size(Sizing(), spread=20.0) == D("2000.00")
    assert size(Sizing(), depth=3_000.0) == D("1500.00")
    assert size(Sizing(), spread=18.0) == D(0)  # the fees eat it all


def test_what_a_trade_loses_at_its_stop_loss_is_at_most_1_percent_of_the_account():
    # 1 % of $20,000 = $200; at the stop loss a dollar loses 100 bps + 18 bps of fees:
    # $200 / 0.0118 = $16,949.152... (the $100,000 available leaves 50 % far above it)
    assert size(Sizing(), available="100000") == D("16949.15")
    assert size(Sizing(max_risk_share=D("0.02")), available="100000") == D("33898.30")
    # the account is capital plus realised PnL: after losing $5,000 it is $15,000
    assert size(Sizing(), available="100000", equity="15000") == D("12711.86")
    assert size(Sizing(), available="100000", equity="-1") == D(0)


def test_the_floor_is_100_dollars_unless_the_size_asked_for_is_smaller():
    assert Sizing().floor_usd == D(100)
    assert Sizing(target_usd=D(1000)).floor_usd == D(100)
    assert Sizing(target_usd=D(10)).floor_usd == D(10)
    assert Sizing(target_usd=D(1000), limit_usd=D(50)).floor_usd == D(50)


def taken_or_rejected(sizing: Sizing, capital: str = "20000") -> f.SignalTaken | f.SignalRejected:
    desk = Desk(ExecConfig(sizing=sizing, starting_capital=D(capital)))
    desk.book("binance", 100_000.0, 100_000.1)
    desk.book("okx", 100_700.0, 100_700.1)
    desk.signal()
    return (desk.of(f.SignalTaken) or desk.of(f.SignalRejected))[0]


def test_the_executor_trades_the_size_asked_for_on_the_lot_grid():
    taken = taken_or_rejected(Sizing(target_usd=D(1000)))
    # $1,000 at the limits' mean (100,050.1 + 100,649.7) / 2 is 0.00996 BTC: 0.009 on the 0.001 lot
    assert taken.size_usd == D("1000.00") and taken.qty == D("0.009")


def test_a_size_below_the_floor_or_the_lot_is_refused_with_the_numbers():
    small = taken_or_rejected(Sizing(), capital="150")  # half of $150 is $75, under $100
    assert (small.reason, small.detail) == ("too_small", "$75.00 of $150 available")
    tiny = taken_or_rejected(Sizing(target_usd=D(10)))  # the guide's $10 buys no 0.001 BTC
    assert tiny.reason == "grid" and "$10.00 at 100349.9 is 0.000, below the minimum quantity 0.001" in tiny.detail


def test_the_settings_reach_the_executor(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in (("ESTIMATED_POSITION_SIZE", "10"), ("MAX_TRADE_RISK", "0.005"),
                        ("POSITION_SIZE_LIMIT", "25"), ("MAX_WEEKLY_LOSS", "80"), ("MAX_MONTHLY_LOSS", "200")):
        monkeypatch.setenv(name, value)
    config = exec_config(load_settings(), "cross")
    assert config.sizing == Sizing(target_usd=D(10), max_risk_share=D("0.005"), limit_usd=D(25))
    assert (config.safety.max_weekly_loss, config.safety.max_monthly_loss) == (D(80), D(200))
    monkeypatch.delenv("ESTIMATED_POSITION_SIZE")
    assert exec_config(load_settings(), "cross").sizing.target_usd == D(1000)  # the default


@pytest.mark.parametrize(("name", "instead"), [
    ("POSITION_SIZE", "ESTIMATED_POSITION_SIZE"), ("BYBIT_API_URL", "BYBIT_REST_URL"),
    ("ENABLE_DEBUG_LOGGING", "LOG_LEVEL=DEBUG"), ("RUST_LOG", "LOG_LEVEL"),
    ("ENABLE_EMERGENCY_STOP", "MAX_DAILY_LOSS"), ("ENABLE_ALL_SAFETY_FEATURES", "SAFETY_MAX_FAILURES"),
])
def test_a_name_the_guide_gives_is_refused_at_start_with_what_to_set_instead(monkeypatch, tmp_path, name, instead):
    from shared.settings import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, "10")
    with pytest.raises(ConfigError, match=f"^config error: {name} is not a setting of this system; set .*{instead}"):
        load_settings()
    monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(f"{name}=10\n")  # in .env just the same
    with pytest.raises(ConfigError, match=f"{name} is not a setting"):
        load_settings()


HARDEST_FIRST = ["hyperliquid", "bitget", "gate", "kucoin", "okx", "bybit", "binance"]


@pytest.mark.parametrize(("harder", "easier"), [*pairwise(HARDEST_FIRST), ("paradex", "bitget"),
                                                ("newdex", "hyperliquid"), ("newdex", "binance")])
def test_the_leg_on_the_venue_least_likely_to_fill_goes_first_and_an_unknown_venue_is_hardest(harder, easier):
    assert harder_leg(long_venue=easier, short_venue=harder) == "short"
    assert harder_leg(long_venue=harder, short_venue=easier) == "long"


def test_on_a_tie_the_long_leg_goes_first():
    assert harder_leg("hyperliquid", "paradex") == harder_leg("paradex", "hyperliquid") == "long"
    assert harder_leg("newdex", "otherdex") == harder_leg("okx", "okx") == "long"


def test_round_trip_fees_are_both_taker_fees_in_and_out():
    assert round_trip_fees_bps("binance", "okx") == 18.0  # 2 x (4 + 5)
    assert round_trip_fees_bps("bybit", "gate") == 23.0  # 2 x (5.5 + 6)


def test_no_spread_no_capital_or_no_depth_is_no_size():
    assert size(Sizing(), spread=0.0) == D(0)
    assert size(Sizing(), spread=-5.0) == D(0)
    assert size(Sizing(), available="0") == D(0)
    assert size(Sizing(), available="-10") == D(0)
    assert size(Sizing(), depth=0.0) == D(0) and size(Sizing(), depth=-5.0) == D(0)
    assert size(Sizing(), available="1") == D("0.50")  # a dollar is capital: half of it (the floor refuses it)


def test_a_funding_delta_against_the_trade_is_a_cost_and_one_for_it_is_not():
    def sized(funding: float) -> D:
        return trade_size_usd(30.0, funding, "binance", "okx", D(20_000), D(20_000), 10_000_000.0, Sizing(), 100.0)

    assert sized(0.0005) == D("8000.00")  # (30 - 18) / 30 x $20,000; funding for it is no gain here
    assert sized(0.0) == D("8000.00")
    # -0.0005 per 8 h is 5 bps against: (30 - 18 - 5) / 30 x $20,000 = $4,666.666...
    assert sized(-0.0005) == D("4666.66")
    assert sized(-0.0013) == D(0)  # 13 bps against: more than the 12 left after fees


def test_the_risk_is_measured_at_the_stop_loss_given():
    # 1 % of $20,000 = $200; a dollar loses 200 bps + 18 bps at this stop loss: $200 / 0.0218 = $9,174.311...
    assert trade_size_usd(70.0, 0.0, "binance", "okx", D(100_000), D(20_000), 10_000_000.0, Sizing(),
                          200.0) == D("9174.31")


GRID_FINE = Grid(D("0.1"), D("0.001"), D("0.001"))
GRID_COARSE = Grid(D("0.01"), D("0.01"), D("0.01"))


def test_the_quantity_is_rounded_down_to_the_coarser_lot_whichever_leg_has_it():
    # $1,990 at 100,000 is 0.0199 BTC: 0.01 on the 0.01 lot, 0.019 on the 0.001 lot
    assert common_qty(D(1990), D(100_000), GRID_FINE, GRID_COARSE) == D("0.01")
    assert common_qty(D(1990), D(100_000), GRID_COARSE, GRID_FINE) == D("0.01")
    assert common_qty(D(1990), D(100_000), GRID_FINE, GRID_FINE) == D("0.019")
    assert common_qty(D(1000), D(100_000), GRID_COARSE, GRID_FINE) == D("0.01")  # exactly the minimum: taken


def test_the_quantity_is_at_least_each_venues_minimum():
    big_min = Grid(D("0.1"), D("0.001"), D("0.05"))
    assert common_qty(D(5000), D(100_000), big_min, GRID_FINE) == D("0.05")
    for a, b in ((big_min, GRID_FINE), (GRID_FINE, big_min)):
        with pytest.raises(GridError) as e:
            common_qty(D(4999), D(100_000), a, b)
        assert str(e.value) == "$4999 at 100000 is 0.049, below the minimum quantity 0.05"
    with pytest.raises(GridError) as e:
        common_qty(D(999), D(100_000), GRID_COARSE, GRID_FINE)
    assert str(e.value) == "$999 at 100000 is 0.00, below the minimum quantity 0.01"
    with pytest.raises(GridError) as e:
        common_qty(D(999), D(100_000), Grid(D("0.1"), D("0.003"), D("0")), Grid(D("0.1"), D("0.002"), D("0")))
    assert str(e.value) == "lots 0.003 and 0.002 have no common multiple to trade on both venues"
    no_min = Grid(D("0.1"), D("0.01"), D("0"))
    with pytest.raises(GridError) as e:  # no minimum given: one lot is the least a leg can trade
        common_qty(D(999), D(100_000), no_min, no_min)
    assert str(e.value) == "$999 at 100000 is 0.00, below the minimum quantity 0.01"


def test_a_price_on_the_tick_grid_stays_and_one_between_ticks_goes_the_passive_way():
    assert round_price(D("100.05"), D("0.05"), "Buy") == round_price(D("100.05"), D("0.05"), "Sell") == D("100.05")
    assert round_price(D("100.0999"), D("0.05"), "Buy") == D("100.05")
    assert round_price(D("100.0001"), D("0.05"), "Sell") == D("100.05")


def test_a_value_is_shown_to_the_decimals_of_its_step_and_a_step_of_ten_as_a_whole_number():
    assert at_step(D("33.3"), D("1E+1")) == "33"
    assert at_step(D("2.345"), D("0.01")) == "2.34"  # half to even
    assert at_step(D("2.355"), D("0.01")) == "2.36"
