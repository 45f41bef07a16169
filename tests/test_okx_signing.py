"""OKX V5 signing (shared/venues/okx/signing.py) against the reference's known answer (§2.2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.venues.okx.signing import (
    SKEW_MS,
    auth_headers,
    signature,
    timestamp,
    timestamp_accepted,
    timestamp_ms,
    websocket_login,
    websocket_login_signature,
)

DOC_SECRET = "chNOOS4KvNXR_Xq4k4c9qsfoKWvnDecLATCRlcBwyKDYnWgO"
DOC_TS = "2020-12-08T09:08:57.715Z"


def test_the_known_answer_of_the_reference():
    assert signature(DOC_SECRET, DOC_TS, "GET", "/api/v5/account/balance", "") == \
        "PJ61e1nb2F2Qd7D8SPiaIcx2gjdELc+o0ygzre9z33k="


def test_the_method_is_upper_cased_and_the_body_and_query_are_signed():
    assert signature(DOC_SECRET, DOC_TS, "get", "/api/v5/account/balance") == \
        signature(DOC_SECRET, DOC_TS, "GET", "/api/v5/account/balance")
    body = '{"instId":"BTC-USDT-SWAP","sz":"1"}'
    expected = base64.b64encode(hmac.new(DOC_SECRET.encode(), f"{DOC_TS}POST/api/v5/trade/order{body}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert signature(DOC_SECRET, DOC_TS, "POST", "/api/v5/trade/order", body) == expected
    with_query = signature(DOC_SECRET, DOC_TS, "GET", "/api/v5/account/balance?ccy=USDT")
    assert with_query != signature(DOC_SECRET, DOC_TS, "GET", "/api/v5/account/balance")


def test_the_timestamp_is_iso_utc_with_three_ms_digits():
    assert timestamp(1607418537715) == DOC_TS
    assert timestamp(1607418537000) == "2020-12-08T09:08:57.000Z"
    assert timestamp(5) == "1970-01-01T00:00:00.005Z"
    assert timestamp_ms(DOC_TS) == 1607418537715


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_a_timestamp_reads_back_to_its_ms(epoch_ms):
    assert timestamp_ms(timestamp(epoch_ms)) == epoch_ms


@pytest.mark.parametrize("text", ["2020-12-08T09:08:57.71Z", "2020-12-08T09:08:57Z", "2020-12-08 09:08:57.715Z",
                                  "2020-12-08T09:08:57.715", "1607418537715", "", None])
def test_other_timestamp_forms_are_refused(text):
    with pytest.raises(ValueError, match=f"not an OKX timestamp: {re.escape(repr(text))}"):
        timestamp_ms(text)


def test_the_window_is_thirty_seconds_either_way():
    assert timestamp_accepted(1_000_000, 1_000_000 + SKEW_MS) and timestamp_accepted(1_000_000 + SKEW_MS, 1_000_000)
    assert not timestamp_accepted(1_000_000, 1_000_001 + SKEW_MS)


def test_headers_carry_key_passphrase_and_the_demo_flag():
    live = auth_headers("k", DOC_SECRET, "pass", DOC_TS, "GET", "/api/v5/account/balance")
    assert live == {"OK-ACCESS-KEY": "k", "OK-ACCESS-SIGN": "PJ61e1nb2F2Qd7D8SPiaIcx2gjdELc+o0ygzre9z33k=",
                    "OK-ACCESS-TIMESTAMP": DOC_TS, "OK-ACCESS-PASSPHRASE": "pass",
                    "Content-Type": "application/json"}
    demo = auth_headers("k", DOC_SECRET, "pass", DOC_TS, "GET", "/api/v5/account/balance", demo=True)
    assert demo == {**live, "x-simulated-trading": "1"}


def test_the_websocket_login_signs_epoch_seconds_get_and_the_verify_path():
    expected = base64.b64encode(hmac.new(b"s", b"1538054050GET/users/self/verify", hashlib.sha256).digest()).decode()
    assert websocket_login_signature("s", 1538054050) == expected
    assert websocket_login("k", "s", "p", 1538054050) == {
        "op": "login", "args": [{"apiKey": "k", "passphrase": "p", "timestamp": "1538054050", "sign": expected}]}


def test_the_timestamp_is_utc_whatever_the_machines_zone():
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"  # a machine nine hours east of UTC (POSIX form: no zone database needed)
    time.tzset()
    try:
        assert timestamp(1607418537715) == DOC_TS
        assert timestamp_ms(DOC_TS) == 1607418537715
    finally:
        if saved is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = saved
        time.tzset()
