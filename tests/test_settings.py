"""Settings: the specification's defaults and env names, one-line errors, masked secrets."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.ingestor.service import venue_hosts
from shared.settings import ConfigError, Settings, load_settings
from shared.venues import venue
from shared.venues.protocol import NoSuchEnvironment


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("SYNTHETIC_SPREAD_BPS", "SYMBOLS_TO_TRADE", "VENUE_ENV", "REDIS_URL", "MAX_CONCURRENT_TRADES",
                 "BYBIT_DEMO_API_SECRET", "BYBIT_API_SECRET", "VENUE_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_seeds_except_the_synthetic_pair_that_could_never_qualify():
    s = load_settings()
    assert (s.synthetic_spread_bps, s.synthetic_funding_delta) == (50.0, 0.01)  # the seed's 15 / 0.0001 cannot
    assert (s.estimated_position_size, s.max_concurrent_trades) == (1000.0, 3)
    assert s.symbols_to_trade == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_env_names_are_the_seeds_and_symbols_are_a_comma_list(monkeypatch):
    monkeypatch.setenv("SYNTHETIC_SPREAD_BPS", "22.5")
    monkeypatch.setenv("SYMBOLS_TO_TRADE", " btcusdt, ETHUSDT ,BTCUSDT")
    monkeypatch.setenv("MAX_CONCURRENT_TRADES", "5")
    s = load_settings()
    assert s.synthetic_spread_bps == 22.5
    assert s.symbols_to_trade == ["BTCUSDT", "ETHUSDT"]
    assert s.max_concurrent_trades == 5


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("SYNTHETIC_FUNDING_DELTA=0.0003\n")
    assert load_settings().synthetic_funding_delta == 0.0003


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SYNTHETIC_SPREAD_BPS", "-1", "config error: SYNTHETIC_SPREAD_BPS='-1' is invalid: Input should be greater than 0"),
        ("VENUE_ENV", "prod", "config error: VENUE_ENV='prod' is invalid: allowed: 'mainnet', 'testnet', 'demo' or 'sim'"),
        ("MAX_CONCURRENT_TRADES", "three", "config error: MAX_CONCURRENT_TRADES='three' is invalid: "
         "Input should be a valid integer, unable to parse string as an integer"),
        ("SYMBOLS_TO_TRADE", "BTC/USDT", "config error: SYMBOLS_TO_TRADE='BTC/USDT' is invalid: "
         "symbols are 2-40 letters or digits like BTCUSDT, not 'BTC/USDT'"),
    ],
)
def test_bad_value_is_one_line_naming_variable_value_and_allowed(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == expected


def test_urls_must_have_the_right_scheme():
    with pytest.raises(ConfigError, match=r"^config error: --url='stream.bybit.com' is invalid: a WebSocket URL"):
        load_settings({"bybit_ws_private_url": ("--url", "stream.bybit.com")})
    with pytest.raises(ConfigError, match=r"BYBIT_REST_URL='ws://x' is invalid: an HTTP URL"):
        load_settings({"bybit_rest_url": ("BYBIT_REST_URL", "ws://x")})


def test_cli_override_is_named_by_its_option():
    with pytest.raises(ConfigError, match=r"^config error: --symbols='X' is invalid"):
        load_settings({"symbols_to_trade": ("--symbols", "X")})


def test_secrets_never_show(monkeypatch):
    monkeypatch.setenv("BYBIT_API_SECRET", "hunter2-secret")
    s = load_settings()
    assert s.bybit_api_secret.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0 and "hunter2" not in result.output
    assert "BYBIT_API_SECRET=**********" in result.output


def test_demo_takes_public_data_from_mainnet_and_private_from_demo_hosts():
    s = Settings(venue_env="demo", _env_file=None)
    assert venue_hosts(s, venue("bybit")).ws == "wss://stream.bybit.com"
    assert s.trading_endpoints("bybit").ws_private == "wss://stream-demo.bybit.com/v5/private"
    assert s.trading_endpoints("bybit").rest == "https://api-demo.bybit.com"


def test_sim_and_overrides_point_everything_at_local_hosts():
    s = Settings(venue_env="sim", sim_port=9999, _env_file=None)
    assert venue_hosts(s, venue("okx")) == ("http://127.0.0.1:9999", "ws://127.0.0.1:9999")
    assert s.trading_endpoints("bybit").ws_private == "ws://127.0.0.1:9999/v5/private"
    s = Settings(venue_env="mainnet", venue_hosts="okx=127.0.0.1:1, binance=https://a.example|wss://b.example:9",
                 _env_file=None)
    assert venue_hosts(s, venue("okx")) == ("http://127.0.0.1:1", "ws://127.0.0.1:1")
    assert venue_hosts(s, venue("binance")) == ("https://a.example", "wss://b.example:9")
    assert venue_hosts(s, venue("bybit")) == ("https://api.bybit.com", "wss://stream.bybit.com")


def test_bad_venue_hosts_and_missing_environments_are_named():
    with pytest.raises(ConfigError, match=r"VENUE_HOSTS='okx' is invalid: 'okx' is not venue=host:port"):
        load_settings({"venue_hosts": ("VENUE_HOSTS", "okx")})
    with pytest.raises(ConfigError, match=r"give host:port, or an http\(s\) and a ws\(s\) base URL"):
        load_settings({"venue_hosts": ("VENUE_HOSTS", "okx=https://www.okx.com/api")})
    with pytest.raises(NoSuchEnvironment, match="bitget has no testnet endpoints; use one of: sim, mainnet"):
        venue_hosts(Settings(venue_env="testnet", _env_file=None), venue("bitget"))


def test_cli_exits_2_with_the_message_on_bad_config(monkeypatch):
    monkeypatch.setenv("VENUE_ENV", "prod")
    result = CliRunner().invoke(app, ["ingest", "--duration", "0"])
    assert result.exit_code == 2
    assert "VENUE_ENV='prod' is invalid" in result.output


def test_cli_rejects_unknown_venue_and_cpu():
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--venue", "kraken"])
    assert result.exit_code == 2 and "available: bybit" in result.output
    result = runner.invoke(app, ["ingest", "--cpu", "4096"])
    assert result.exit_code == 2 and "--cpu 4096" in result.output


def test_credentials_follow_the_venue_environment():
    assert Settings(venue_env="sim", _env_file=None).trading_credentials("bybit") == ("sim-api-key", "sim-api-secret")
    assert Settings(venue_env="sim", _env_file=None).trading_credentials("bitget") == (
        "sim-api-key", "sim-api-secret", "sim-passphrase")
    keys = dict(bybit_demo_api_key="dk", bybit_demo_api_secret="ds", bybit_api_key="mk", bybit_api_secret="ms",
                binance_demo_api_key="bdk", binance_demo_api_secret="bds", bitget_api_key="gk",
                bitget_api_secret="gs", _env_file=None)
    assert Settings(venue_env="demo", **keys).trading_credentials("bybit") == ("dk", "ds")
    assert Settings(venue_env="mainnet", **keys).trading_credentials("bybit") == ("mk", "ms")
    # Bybit has a testnet of its own; at the other venues testnet is their demo
    assert Settings(venue_env="testnet", **keys).trading_credentials("bybit") == ("mk", "ms")
    assert Settings(venue_env="testnet", **keys).trading_credentials("binance") == ("bdk", "bds")
    # Bitget's key is nothing without its passphrase: the settings that are missing are named
    mainnet = Settings(venue_env="mainnet", **keys)
    assert mainnet.trading_credentials("bitget") is None and mainnet.trading_credentials("okx") is None
    assert mainnet.credential_names("bitget") == "BITGET_API_KEY, BITGET_API_SECRET and BITGET_API_PASSPHRASE"
    assert Settings(venue_env="demo", _env_file=None).credential_names("binance") == (
        "BINANCE_DEMO_API_KEY and BINANCE_DEMO_API_SECRET")


def test_each_trading_venue_has_its_hosts_per_environment_and_on_the_simulator():
    sim = Settings(venue_env="sim", sim_port=9999, _env_file=None)
    assert sim.trading_endpoints("bitget").ws_private == "ws://127.0.0.1:9999/v2/ws/private"
    assert sim.trading_endpoints("binance") == ("http://127.0.0.1:9999", "ws://127.0.0.1:9999")
    demo = Settings(venue_env="demo", _env_file=None)
    assert demo.trading_endpoints("binance").rest == "https://demo-fapi.binance.com"
    assert demo.trading_endpoints("bitget") == ("https://api.bitget.com", "wss://wspap.bitget.com/v2/ws/private")
    moved = Settings(venue_env="demo", binance_ws_private_url="wss://fstream.binancefuture.com", _env_file=None)
    assert moved.trading_endpoints("binance").ws_private == "wss://fstream.binancefuture.com"
    assert demo.trading_options("bitget") == {"product_type": None}  # auto: asked of Bitget at start
    assert demo.trading_options("binance") == {"recv_window_ms": 5000, "spot_url": ""}  # no spot host on the demo
    assert Settings(venue_env="mainnet", _env_file=None).trading_options("binance")["spot_url"] == (
        "https://api.binance.com")
    assert Settings(venue_env="demo", bitget_demo_product_type="SUSDT-FUTURES", _env_file=None).trading_options(
        "bitget") == {"product_type": "SUSDT-FUTURES"}
    with pytest.raises(ConfigError, match=r"BINANCE_REST_URL=.fapi\.binance\.com. is invalid"):
        load_settings({"binance_rest_url": ("BINANCE_REST_URL", "fapi.binance.com")})


def test_cli_metrics_port_in_use_exits_2(taken_port):
    result = CliRunner().invoke(app, ["ingest", "--metrics-port", str(taken_port), "--duration", "0"])
    assert result.exit_code == 2 and f"--metrics-port {taken_port}:" in result.output


def test_venue_hosts_must_name_a_venue():
    result = CliRunner().invoke(app, ["ingest", "--venue", "okx", "--hosts", "okk=127.0.0.1:1", "--duration", "0"])
    assert result.exit_code == 2
    assert "config error: --hosts='okk=127.0.0.1:1' is invalid: names no venue 'okk'; venues: bybit, binance" in result.output


def test_executor_refuses_a_bad_mode_live_without_keys_and_unknown_venues(monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["executor", "--mode", "both", "--duration", "0"])
    assert result.exit_code == 2 and "--mode: 'both' is not one of: cross, synthetic" in result.output
    monkeypatch.setenv("VENUE_ENV", "demo")
    monkeypatch.delenv("BYBIT_DEMO_API_KEY", raising=False)
    result = runner.invoke(app, ["executor", "--mode", "synthetic", "--execution", "live", "--duration", "0"])
    assert result.exit_code == 2 and ("config error: --execution live places orders at Bybit on VENUE_ENV=demo: set "
                                      "BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET") in result.output
    monkeypatch.setenv("EXECUTOR_VENUES", "bybit,kucoin")  # cross trades at EXECUTOR_VENUES
    result = runner.invoke(app, ["executor", "--execution", "live", "--duration", "0"])
    assert result.exit_code == 2 and ("EXECUTION=live trades at bybit, okx, bitget, binance only; kucoin has no live "
                                      "trading yet" in result.output)
    monkeypatch.setenv("EXECUTOR_VENUES", "bybit,okx")
    monkeypatch.setenv("BYBIT_DEMO_API_KEY", "k")
    monkeypatch.setenv("BYBIT_DEMO_API_SECRET", "s")
    for name in ("OKX_DEMO_API_KEY", "OKX_DEMO_API_SECRET", "OKX_DEMO_API_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["executor", "--execution", "live", "--duration", "0"])
    assert result.exit_code == 2 and result.output == (
        "config error: --execution live places orders at OKX on VENUE_ENV=demo: set OKX_DEMO_API_KEY, "
        "OKX_DEMO_API_SECRET and OKX_DEMO_API_PASSPHRASE\n")
    monkeypatch.delenv("EXECUTOR_VENUES")
    for name in ("BYBIT_DEMO_API_KEY", "BYBIT_DEMO_API_SECRET"):
        monkeypatch.delenv(name)
    # on mainnet, an executor started alone (as docker compose starts it) asks what arb up --mode live asks
    for name in ("MAX_DAILY_LOSS", "POSITION_SIZE_LIMIT", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VENUE_ENV", "mainnet")
    monkeypatch.setenv("BYBIT_API_KEY", "k")
    monkeypatch.setenv("BYBIT_API_SECRET", "s")
    result = runner.invoke(app, ["executor", "--mode", "synthetic", "--execution", "live", "--duration", "0"])
    assert result.exit_code == 2, result.output
    assert "arb executor: live mode on VENUE_ENV=mainnet trades real money: add --confirm-mainnet" in result.output
    assert "arb executor: live mode needs the safety limits set: MAX_DAILY_LOSS, POSITION_SIZE_LIMIT" in result.output
    monkeypatch.setenv("ARB_CONFIRM_MAINNET", "1")  # said in .env, as docker compose passes it
    monkeypatch.setenv("MAX_DAILY_LOSS", "50")
    result = runner.invoke(app, ["executor", "--mode", "synthetic", "--execution", "live", "--duration", "0"])
    assert result.exit_code == 2 and "add --confirm-mainnet" not in result.output, result.output
    assert "live mode needs the safety limits set: POSITION_SIZE_LIMIT (USD)" in result.output
    monkeypatch.delenv("ARB_CONFIRM_MAINNET")
    monkeypatch.delenv("MAX_DAILY_LOSS")
    monkeypatch.setenv("VENUE_ENV", "demo")
    monkeypatch.setenv("EXECUTOR_VENUES", "okx,ftx")
    result = runner.invoke(app, ["executor", "--duration", "0"])
    assert result.exit_code == 2 and "EXECUTOR_VENUES" in result.output and "'ftx'" in result.output


def test_the_operations_guide_settings_table_lists_every_setting():
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text() + "\n## "
    table = guide[guide.index("## Settings"):]
    table = table[:table.index("\n## ")]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == []


def test_a_taken_over_entry_must_be_too_old_to_decide(monkeypatch):
    monkeypatch.setenv("STRATEGY_CLAIM_IDLE_MS", "2000")
    monkeypatch.setenv("STRATEGY_MAX_EVENT_AGE_MS", "2000")
    with pytest.raises(ConfigError, match=r"^config error: STRATEGY_MAX_EVENT_AGE_MS='2000' is invalid: must be below "
                       r"STRATEGY_CLAIM_IDLE_MS \(2000\)"):
        load_settings()
    monkeypatch.setenv("STRATEGY_MAX_EVENT_AGE_MS", "1999")
    assert load_settings().strategy_max_event_age_ms == 1999
