"""Binance USD-M request signing (shared/venues/binance/signing.py): the reference's known answer
(§4.2), the signature last, the recvWindow rule, and the simulator verifying what the client signs."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from services.sim.binance_auth import BinanceGate, split_signature
from shared.venues.binance.signing import signature, signed_query, timestamp_accepted

SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
PAYLOAD = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
EXPECTED = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_the_references_known_answer():
    assert signature(SECRET, PAYLOAD) == EXPECTED


def test_a_signed_query_is_the_payload_with_the_signature_last():
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "9000",
              "timeInForce": "GTC"}
    assert signed_query(SECRET, params, 1591702613943, 5000) == f"{PAYLOAD}&signature={EXPECTED}"


def test_booleans_are_sent_in_lowercase_and_odd_characters_encoded():
    query = signed_query("s", {"dualSidePosition": True, "newClientOrderId": "a:b/c"}, 1, 5000)
    assert query.startswith("dualSidePosition=true&newClientOrderId=a%3Ab%2Fc&recvWindow=5000&timestamp=1&")
    unsigned, sent = split_signature(query)
    assert sent == signature("s", unsigned) and dict(parse_qsl(unsigned))["newClientOrderId"] == "a:b/c"


@pytest.mark.parametrize(("sent_ms", "accepted"), [(10_000, True), (5_000, True), (4_999, False), (10_999, True),
                                                   (11_000, False)])
def test_the_recv_window_rule(sent_ms, accepted):
    """timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow (server at 10 000 ms)."""
    assert timestamp_accepted(sent_ms, 10_000, 5000) is accepted


def test_the_simulator_verifies_what_the_client_signs():
    gate = BinanceGate({"key": "secret"})
    query = signed_query("secret", {"symbol": "BTCUSDT"}, 1_000_000, 5000)
    assert gate.check({"X-MBX-APIKEY": "key"}, query, "", 1_000_000) == ("key", None)
    # the same parameters in a form body, and split between query and body, verify too
    assert gate.check({"X-MBX-APIKEY": "key"}, "", query, 1_000_000) == ("key", None)
    head, _, tail = query.partition("&recvWindow")
    assert gate.check({"X-MBX-APIKEY": "key"}, head, "recvWindow" + tail, 1_000_000)[1].code == -1022  # no '&' added
    wrong = signed_query("other", {"symbol": "BTCUSDT"}, 1_000_000, 5000)
    assert gate.check({"X-MBX-APIKEY": "key"}, wrong, "", 1_000_000)[1].code == -1022
    assert gate.check({"X-MBX-APIKEY": "key"}, query, "", 1_005_001)[1].code == -1021
    assert gate.check({"X-MBX-APIKEY": "nobody"}, query, "", 1_000_000)[1].code == -2015
    assert gate.check({}, query, "", 1_000_000)[1].code == -2014


def test_false_is_sent_as_false():
    """`reduceOnly` takes "true"/"false" (§4.3): False must not be sent as True, nor as Python's False."""
    assert signed_query("s", {"reduceOnly": False, "closePosition": True}, 1, 5000).startswith(
        "reduceOnly=false&closePosition=true&recvWindow=5000&timestamp=1&")
