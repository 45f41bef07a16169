"""`arb validate` against the simulator's Bybit API: green as configured, and each check turning
red when the simulator is made to misbehave in its way."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from services.sim.faults import Faults
from services.sim.server import SimServer
from services.validate import table, validate, validate_venue
from tests.conftest import free_port, serve_app

NAMES = ["connectivity", "authentication", "balance_handling", "rate_limits", "error_handling", "key_security"]


async def _run(settings, **faults):
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(["BTCUSDT"], seed=1, api_keys={key: secret}, faults=Faults(**faults))
    async with serve_app(server.app()) as base:
        port = int(base.rsplit(":", 1)[1])
        return await validate(settings.model_copy(update={"sim_port": port})), port


async def test_every_check_passes_against_the_simulator(settings):
    checks, _ = await _run(settings)
    assert [c.name for c in checks] == NAMES and all(c.ok for c in checks), table(checks)
    assert "equity $100,000.00" in next(c.detail for c in checks if c.name == "balance_handling")
    assert table(checks).endswith("6/6 passed")


@pytest.mark.parametrize("faults, failing, said", [
    ({"clock_skew_ms": 3000}, "connectivity", 3000),
    ({"key_ips": ["*"], "key_wallet": True}, "key_security", "it may move funds"),
    ({"reject_next": 1, "reject_code": 10003, "reject_message": "API key is invalid."}, "authentication",
     "Bybit 10003: API key is invalid."),
])
async def test_a_misbehaving_venue_fails_the_check_it_concerns(settings, faults, failing, said):
    checks, _ = await _run(settings, **faults)
    bad = {c.name: c.detail for c in checks if not c.ok}
    assert failing in bad and _says(bad[failing], said), table(checks)


async def test_an_unreachable_venue_fails_connectivity_and_runs_nothing_else(settings):
    checks = await validate(settings.model_copy(update={"sim_port": free_port()}))
    assert [c.ok for c in checks] == [False] * 6 and checks[1].detail == "not run: no connection"


def test_arb_validate_prints_the_table_and_exits_1_on_a_failure(settings):
    env = {**os.environ, "SIM_PORT": str(free_port()), "VENUE_ENV": "sim"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "validate"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "connectivity      FAIL" in done.stdout and "0/6 passed" in done.stdout


OKX_NAMES = ["connectivity", "authentication", "balance_handling", "position_mode", "error_handling", "key_security"]


async def _run_sim(settings, passphrase: str | None = None, venue: str = "okx", **faults):
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(["BTCUSDT"], seed=1, api_keys={key: secret}, faults=Faults(**faults),
                       api_passphrases={key: passphrase or settings.sim_api_passphrase.get_secret_value()})
    async with serve_app(server.app()) as base:
        port = int(base.rsplit(":", 1)[1])
        return await validate_venue(settings.model_copy(update={"sim_port": port}), venue)


async def test_okx_every_check_passes_against_the_simulator(settings):
    checks = await _run_sim(settings)
    assert [c.name for c in checks] == OKX_NAMES and all(c.ok for c in checks), table(checks)
    details = {c.name: c.detail for c in checks}
    assert "USDT equity 100,000.00" in details["balance_handling"]
    assert details["position_mode"] == "long/short mode, as the executor trades"
    assert "wrong signature -> 50113 (bad_signature)" in details["error_handling"]
    assert details["key_security"] == "it may trade, may not withdraw, and is bound to an IP"


@pytest.mark.parametrize("venue, refused, mode, key", [
    ("bitget", "40009 (bad_signature)", "one_way_mode: the executor switches", "not read: Bitget shows no key"),
    ("binance", "-1022 (bad_signature)", "one-way mode: the executor switches",
     "it may not withdraw, is bound to an IP, and pays fees in USDT"),
])
async def test_bitget_and_binance_pass_every_check_against_the_simulator(settings, venue, refused, mode, key):
    checks = await _run_sim(settings, venue=venue)
    assert [c.name for c in checks] == OKX_NAMES and all(c.ok for c in checks), table(checks)
    details = {c.name: c.detail for c in checks}
    assert "USDT equity 100,000.00" in details["balance_handling"]
    assert details["position_mode"].startswith(mode)  # a fresh simulated account is one-way
    assert f"wrong signature -> {refused}; an order that does not exist -> none" in details["error_handling"]
    assert details["key_security"].startswith(key)


@pytest.mark.parametrize("venue, faults, failing, said", [
    ("bitget", {"clock_skew_ms": 3000}, "connectivity", 3000),
    ("binance", {"clock_skew_ms": -3000}, "connectivity", -3000),
    ("binance", {"key_ips": ["*"], "key_wallet": True}, "key_security", "it may withdraw funds"),
])
async def test_bitget_and_binance_fail_the_check_a_misbehaving_venue_concerns(settings, venue, faults, failing, said):
    checks = await _run_sim(settings, venue=venue, **faults)
    bad = {c.name: c.detail for c in checks if not c.ok}
    assert failing in bad and _says(bad[failing], said), table(checks)


@pytest.mark.parametrize("passphrase, faults, failing, said", [
    (None, {"clock_skew_ms": 3000}, "connectivity", 3000),
    (None, {"key_ips": ["*"], "key_wallet": True}, "key_security", "it may withdraw funds"),
    ("another-passphrase", {}, "authentication", "OKX 50105"),  # the key's passphrase is not ours
])
async def test_okx_a_misbehaving_venue_or_a_wrong_passphrase_fails_the_check_it_concerns(
        settings, passphrase, faults, failing, said):
    checks = await _run_sim(settings, passphrase, **faults)
    bad = {c.name: c.detail for c in checks if not c.ok}
    assert failing in bad and _says(bad[failing], said), table(checks)


async def test_okx_unreachable_fails_connectivity_and_runs_nothing_else(settings):
    checks = await validate_venue(settings.model_copy(update={"sim_port": free_port()}), "okx")
    assert [c.ok for c in checks] == [False] * 6 and checks[1].detail == "not run: no connection"


def test_arb_validate_checks_each_venue_named(settings):
    env = {**os.environ, "SIM_PORT": str(free_port()), "VENUE_ENV": "sim"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "validate", "--venues", "bybit,okx"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout.count("0/6 passed") == 2
    assert "\nokx on sim (http://127.0.0.1:" in done.stdout and "position_mode" in done.stdout
    done = subprocess.run([sys.executable, "-m", "services.cli", "validate", "--venues", "kucoin"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no live trading at 'kucoin' to validate" in done.stderr


def _says(detail: str, said: str | int) -> bool:
    """`detail` holds `said`; an int is a clock skew in ms, read within the round trip's rounding
    (the venue's clock is read between the request and its answer: -3000 may read -2999)."""
    if isinstance(said, str):
        return said in detail
    found = re.search(r"clock skew ([+-]\d+) ms", detail)
    return found is not None and abs(int(found[1]) - said) <= 50
