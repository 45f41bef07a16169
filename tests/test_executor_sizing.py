"""The trade size (ESTIMATED_POSITION_SIZE within the seed's limits, the guide's 1 % risk rule
and POSITION_SIZE_LIMIT), its floor, and the settings that carry it to the executor."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.executor import facts as f
from services.executor.core import ExecConfig
from services.executor.service import exec_config
from services.executor.sizing import Sizing, trade_size_usd
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
    ("BITGET_API_KEY", "live trading is at Bybit"), ("BITGET_API_SECRET", "live trading is at Bybit"),
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
