"""Signed requests against the simulator, from a client written to Bybit's documentation."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest

from services.sim.server import SimServer
from shared.venues.bybit.signing import signature, timestamp_accepted, websocket_auth_signature
from tests.conftest import BYBIT_SAMPLES, serve_app

KEY, SECRET = "test-key", "test-secret"
NOW_MS = 1_800_000_000_000


def doc_sign(secret: str, timestamp: int, key: str, window: int, payload: str) -> str:
    """Bybit's documented formula, written out here independently of shared/."""
    return hmac.new(secret.encode(), f"{timestamp}{key}{window}{payload}".encode(), hashlib.sha256).hexdigest()


def test_signing_concatenates_exactly_as_documented():
    # the documentation's own payload strings (values only)
    get = "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C"
    assert signature("s", 1658384314791, "XXXXXXXXXX", 5000, "category=option&symbol=BTC-29JUL22-25000-C") == \
        hmac.new(b"s", get.encode(), hashlib.sha256).hexdigest()
    post = '1658385579423XXXXXXXXXX5000{"category": "option"}'
    assert signature("s", 1658385579423, "XXXXXXXXXX", 5000, '{"category": "option"}') == \
        hmac.new(b"s", post.encode(), hashlib.sha256).hexdigest()
    assert websocket_auth_signature("s", 1675418560633) == \
        hmac.new(b"s", b"GET/realtime1675418560633", hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("offset_ms", "ok"), [(0, True), (-5000, True), (-5001, False), (999, True), (1000, False)])
def test_timestamp_window(offset_ms, ok):
    assert timestamp_accepted(NOW_MS + offset_ms, NOW_MS, 5000) is ok


@pytest.fixture
async def call():
    server = SimServer(["BTCUSDT", "ETHUSDT"], seed=1, step_ms=10_000_000, clock=lambda: NOW_MS / 1000,
                       api_keys={KEY: SECRET})
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as session:
        async def get(path: str, query: str, key: str = KEY, secret: str = SECRET, timestamp: int = NOW_MS,
                      window: int = 5000):
            headers = {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": str(timestamp),
                       "X-BAPI-RECV-WINDOW": str(window), "X-BAPI-SIGN": doc_sign(secret, timestamp, key, window, query)}
            async with session.get(f"{base}{path}?{query}", headers=headers) as response:
                return response.status, response.headers, await response.json()
        yield get


def keys(value):
    return {k: keys(v) if isinstance(v, dict) else None for k, v in value.items()} if isinstance(value, dict) else None


async def test_a_correctly_signed_request_gets_the_wallet_in_bybits_shape(call):
    status, headers, body = await call("/v5/account/wallet-balance", "accountType=UNIFIED")
    assert status == 200 and body["retCode"] == 0
    doc = json.loads((BYBIT_SAMPLES / "docexample_rest_account_wallet_balance.json").read_text())
    account, doc_account = body["result"]["list"][0], doc["result"]["list"][0]
    assert set(account) == set(doc_account)
    assert set(account["coin"][0]) == set(doc_account["coin"][0])
    assert account["coin"][0]["coin"] == "USDT" and account["totalWalletBalance"] == "100000"
    assert headers["X-Bapi-Limit"] == "50" and headers["X-Bapi-Limit-Status"] == "49"


async def test_fee_rate_shape_and_rates(call):
    _, _, body = await call("/v5/account/fee-rate", "category=linear&symbol=BTCUSDT")
    doc = json.loads((BYBIT_SAMPLES / "docexample_rest_account_fee_rate.json").read_text())
    assert set(body["result"]["list"][0]) == set(doc["result"]["list"][0])
    assert body["result"]["list"][0] == {"symbol": "BTCUSDT", "takerFeeRate": "0.00055", "makerFeeRate": "0.0002"}


async def test_unknown_key_bad_signature_and_stale_time_get_bybits_codes(call):
    status, _, body = await call("/v5/account/wallet-balance", "accountType=UNIFIED", key="nope")
    assert (status, body["retCode"], body["retMsg"]) == (401, 10003, "API key is invalid.")
    _, _, body = await call("/v5/account/wallet-balance", "accountType=UNIFIED", secret="wrong")
    assert body["retCode"] == 10004 and body["retMsg"].startswith("error sign! origin_string[")
    _, _, body = await call("/v5/account/wallet-balance", "accountType=UNIFIED", timestamp=NOW_MS - 6000)
    assert body["retCode"] == 10002
    assert body["retMsg"] == ("invalid request, please check your server timestamp or recv_window param. "
                              f"req_timestamp[{NOW_MS - 6000}],server_timestamp[{NOW_MS}],recv_window[5000]")
    _, _, body = await call("/v5/account/wallet-balance", "accountType=UNIFIED", timestamp=NOW_MS + 1000)
    assert body["retCode"] == 10002  # a clock one second ahead is refused too
    _, _, body = await call("/v5/account/wallet-balance", "accountType=SPOT")
    assert (body["retCode"], body["retMsg"]) == (10001, "accountType only support UNIFIED")


async def test_rate_limit_answers_10006_with_the_limit_headers(call):
    statuses = []
    for _ in range(6):  # fee-rate allows 5 per second; the simulator's clock is frozen
        _, headers, body = await call("/v5/account/fee-rate", "category=linear")
        statuses.append((body["retCode"], headers["X-Bapi-Limit-Status"]))
    assert statuses == [(0, "4"), (0, "3"), (0, "2"), (0, "1"), (0, "0"), (10006, "0")]
    assert body["retMsg"] == "Too many visits!"
    assert headers["X-Bapi-Limit"] == "5" and headers["X-Bapi-Limit-Reset-Timestamp"] == str(NOW_MS + 1000)
