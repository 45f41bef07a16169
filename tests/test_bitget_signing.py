"""Bitget V2 signing (shared/venues/bitget/signing.py) against the reference's formula (§3.2,
§3.5), and the simulator's gate accepting what the client signs."""

from __future__ import annotations

import base64
import hashlib
import hmac

from services.sim.bitget_auth import BitgetGate
from shared.venues.bitget import signing

SECRET = "bitget-doc-secret"
BODY = '{"productType":"usdt-futures","symbol":"BTCUSDT","size":"8","marginMode":"crossed","side":"buy"}'


def reference_sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def test_the_prehash_has_the_documented_form():
    # the doc's example: "16273667805456POST/api/v2/mix/order/place-order{...}"
    assert signing.prehash("16273667805456", "post", "/api/v2/mix/order/place-order", "", BODY) == (
        "16273667805456POST/api/v2/mix/order/place-order" + BODY)
    assert signing.prehash("1", "GET", "/api/v2/mix/order/detail", "symbol=BTCUSDT&clientOid=a") == (
        "1GET/api/v2/mix/order/detail?symbol=BTCUSDT&clientOid=a")
    assert signing.prehash("1", "GET", "/api/v2/mix/account/accounts") == "1GET/api/v2/mix/account/accounts"


def test_the_signature_is_base64_hmac_sha256_of_the_prehash():
    ts, path = "16273667805456", "/api/v2/mix/order/place-order"
    assert signing.signature(SECRET, ts, "POST", path, "", BODY) == reference_sign(SECRET, ts + "POST" + path + BODY)
    query = "productType=USDT-FUTURES&marginCoin=USDT"
    assert signing.signature(SECRET, ts, "GET", "/api/v2/mix/position/all-position", query) == reference_sign(
        SECRET, ts + "GET/api/v2/mix/position/all-position?" + query)


def test_the_headers_carry_ms_the_passphrase_and_paptrading_on_demo_only():
    headers = signing.auth_headers("k", SECRET, "pp", 1_700_000_000_123, "GET", "/p", "a=1")
    assert (headers["ACCESS-KEY"], headers["ACCESS-TIMESTAMP"], headers["ACCESS-PASSPHRASE"]) == (
        "k", "1700000000123", "pp")
    assert headers["ACCESS-SIGN"] == reference_sign(SECRET, "1700000000123GET/p?a=1")
    assert "paptrading" not in headers
    assert signing.auth_headers("k", SECRET, "pp", 1, "GET", "/p", demo=True)["paptrading"] == "1"


def test_the_simulators_gate_accepts_the_clients_signature_and_refuses_a_changed_one():
    gate = BitgetGate({"k": SECRET}, {"k": "pp"})
    now = 1_800_000_000_000
    body = '{"symbol":"BTCUSDT"}'
    headers = signing.auth_headers("k", SECRET, "pp", now, "POST", "/api/v2/mix/order/cancel-order", "", body)
    assert gate.check("POST", "/api/v2/mix/order/cancel-order", "", headers, body, now + 29_000) == ("k", None)
    assert gate.check("POST", "/api/v2/mix/order/cancel-order", "", headers, body + " ", now)[1].code == "40009"
    assert gate.check("POST", "/api/v2/mix/order/cancel-order", "", headers, body, now + 30_001)[1].code == "40008"
    query = "productType=USDT-FUTURES"
    headers = signing.auth_headers("k", SECRET, "pp", now, "GET", "/api/v2/mix/account/accounts", query)
    assert gate.check("GET", "/api/v2/mix/account/accounts", query, headers, "", now) == ("k", None)
    assert gate.check("GET", "/api/v2/mix/account/accounts", "", headers, "", now)[1].code == "40009"


def test_the_websocket_login_signs_seconds_over_user_verify():
    login = signing.websocket_login("k", SECRET, "pp", 1_538_054_050)
    args = login["args"][0]
    assert login["op"] == "login" and (args["apiKey"], args["passphrase"], args["timestamp"]) == (
        "k", "pp", "1538054050")
    assert args["sign"] == reference_sign(SECRET, "1538054050GET/user/verify")
    gate = BitgetGate({"k": SECRET}, {"k": "pp"})
    assert gate.login(login["args"], 1_538_054_050_000 + 29_000) == ("k", None)
    assert gate.login(login["args"], 1_538_054_050_000 + 31_000)[1].code == "30014"
    assert gate.login(signing.websocket_login("k", "other", "pp", 1_538_054_050)["args"],
                      1_538_054_050_000)[1].code == "30015"


def test_every_request_says_json_and_english_and_a_request_without_query_signs_none():
    headers = signing.auth_headers("k", SECRET, "pp", 1_700_000_000_123, "GET", "/api/v2/mix/account/accounts")
    assert headers["Content-Type"] == "application/json" and headers["locale"] == "en-US"  # §3.2
    assert headers["ACCESS-SIGN"] == reference_sign(SECRET, "1700000000123GET/api/v2/mix/account/accounts")


def test_a_timestamp_is_accepted_within_30_s_either_side_as_the_simulators_gate_does():
    server = 1_800_000_000_000
    for offset, ok in ((0, True), (30_000, True), (-30_000, True), (30_001, False), (-30_001, False)):
        assert signing.timestamp_accepted(server + offset, server) is ok, offset
        headers = signing.auth_headers("k", SECRET, "pp", server + offset, "GET", "/p")
        refusal = BitgetGate({"k": SECRET}, {"k": "pp"}).check("GET", "/p", "", headers, "", server)[1]
        assert (refusal is None) is ok, offset
