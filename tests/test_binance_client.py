"""The Binance client's REST side (shared/venues/binance/client.py) against a scripted Binance
that checks every signature: what each code means, outcome-unknown answers, the limits read
from the answers' headers, rate-limit retries, and the clock re-measured after a -1021."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest

from shared.instruments import Instrument
from shared.venues.binance import client
from shared.venues.binance.client import CODE_KINDS, NO_CHANGE, OUTCOME_UNKNOWN, BinanceRest, kind_of
from shared.venues.binance.trading import BinanceTrading
from shared.venues.trading import KINDS, OrderSpec, OutcomeUnknown, Refused
from tests.binance_fake import DROP, KEY, SECRET, FakeBinance, error
from tests.conftest import serve_app

BTC = Instrument(venue="binance", symbol="BTCUSDT", venue_symbol="BTCUSDT", tick=Decimal("0.10"),
                 lot=Decimal("0.001"), min_size=Decimal("0.001"))
LINK = "a1b2c3d4e5f6-LE1"
PLACE = "/fapi/v1/order"

# every code the reference names (§4.2, §4.4) and the kind the brief gives it
REFERENCE_CODES = {
    -2019: "insufficient_margin", -2018: "insufficient_margin", -4116: "duplicate", -5022: "post_only",
    -4164: "below_minimum", -4004: "below_minimum", -4023: "below_minimum", -1111: "below_minimum",
    -4014: "invalid", -2013: "not_found", -2011: "too_late", -1021: "timestamp", -5028: "timestamp",
    -1022: "bad_signature", -2014: "unknown_key", -2015: "unknown_key", -1003: "rate_limit", -1015: "rate_limit",
    -1008: "rate_limit", -2022: "reduce_only", -4118: "reduce_only", -4061: "invalid", -4015: "invalid",
    -4016: "invalid", -4024: "invalid", -4131: "invalid", -5021: "other", -4059: "other", -4046: "other",
    -4067: "invalid", -4068: "invalid", -4120: "invalid", -1125: "not_found",
}


def spec(**fields) -> OrderSpec:
    return OrderSpec(**{"link_id": LINK, "symbol": "BTCUSDT", "side": "Buy", "qty": Decimal("0.002"),
                        "price": Decimal("60000.1"), "position_side": "long", **fields})


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(client, "RATE_LIMIT_WAIT_S", 0.01)


@pytest.fixture
async def binance():
    fake = FakeBinance()
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        yield fake, BinanceTrading(http, base, base.replace("http", "ws"), KEY, SECRET, [BTC], timeout_s=0.5)


# ---------------------------------------------------------------------- codes

@pytest.mark.parametrize(("code", "kind"), sorted(REFERENCE_CODES.items()))
def test_every_reference_code_has_its_kind(code, kind):
    assert kind_of(code) == kind == CODE_KINDS[code]


def test_the_table_speaks_only_the_interfaces_kinds():
    assert set(CODE_KINDS.values()) <= set(KINDS)
    assert not OUTCOME_UNKNOWN & set(CODE_KINDS)
    assert kind_of(-9999) == "other" and {-4059, -4046} == NO_CHANGE


@pytest.mark.parametrize(("code", "kind"), [(c, k) for c, k in sorted(CODE_KINDS.items())
                                            if k != "rate_limit" and c != -1021])
async def test_a_refused_order_raises_its_kind_with_binances_code(binance, code, kind):
    fake, trading = binance
    fake.answer("POST", PLACE, error(code, "no"))
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert (refusal.value.kind, refusal.value.code, refusal.value.venue) == (kind, str(code), "binance")
    assert len(fake.sent("POST", PLACE)) == 1  # a refusal is not retried


@pytest.mark.parametrize("code", sorted(OUTCOME_UNKNOWN))
async def test_a_code_that_does_not_say_is_outcome_unknown(binance, code):
    fake, trading = binance
    fake.answer("POST", PLACE, error(code, "Timeout waiting for response from backend server."))
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec())


@pytest.mark.parametrize("answer", [(503, {"code": -1000, "msg": "Unknown error, please check your request or try "
                                                                 "again later."}),
                                    (503, "Service Unavailable."), (500, "oops"), (502, "<html>"), (408, ""), DROP])
async def test_no_answer_or_a_5xx_is_outcome_unknown(binance, answer):
    fake, trading = binance
    fake.answer("POST", PLACE, answer)
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec())
    assert len(fake.sent("POST", PLACE)) == 1


async def test_a_refusal_without_binances_body_is_refused_as_other(binance):
    fake, trading = binance
    fake.answer("POST", PLACE, (403, "<html>WAF</html>"))
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert (refusal.value.kind, refusal.value.code) == ("other", "HTTP 403")


# ---------------------------------------------------------------------- requests as Binance wants them

async def test_an_order_is_signed_in_its_query_with_the_key_header(binance):
    fake, trading = binance
    fake.answer("POST", PLACE, {"orderId": 22542179, "clientOrderId": LINK, "status": "NEW"})
    assert await trading.place(spec()) == "22542179"
    [sent] = fake.sent("POST", PLACE)
    assert sent["headers"]["X-MBX-APIKEY"] == KEY and sent["raw"].split("&")[-1].startswith("signature=")
    params = sent["params"]
    assert {k: params[k] for k in ("symbol", "side", "positionSide", "type", "quantity", "price", "timeInForce",
                                   "newClientOrderId", "recvWindow")} == {
        "symbol": "BTCUSDT", "side": "BUY", "positionSide": "LONG", "type": "LIMIT", "quantity": "0.002",
        "price": "60000.1", "timeInForce": "GTC", "newClientOrderId": LINK, "recvWindow": "5000"}
    assert "reduceOnly" not in params
    assert SECRET not in repr(trading) and KEY not in repr(trading) and KEY not in repr(trading.rest)


async def test_the_recv_window_is_an_option(binance):
    fake, trading = binance
    with pytest.raises(ValueError):
        BinanceRest(None, "http://x", KEY, SECRET, recv_window_ms=60_001)
    rest = BinanceRest(trading.http, trading.rest.rest_url, KEY, SECRET, recv_window_ms=20_000)
    fake.answer("GET", "/fapi/v3/balance", [])
    await rest.request("GET", "/fapi/v3/balance")
    assert fake.sent("GET", "/fapi/v3/balance")[0]["params"]["recvWindow"] == "20000"


# ---------------------------------------------------------------------- the clock

async def test_a_timestamp_refusal_measures_the_clock_and_tries_once_more(binance):
    fake, trading = binance
    fake.clock_ms = 8_000  # Binance runs 8 s ahead: our first timestamp is outside the recvWindow
    fake.answer("GET", "/fapi/v3/balance", [{"asset": "USDT", "balance": "10", "crossUnPnl": "1",
                                              "availableBalance": "9"}])
    balance = await trading.balance()
    assert (balance.equity, balance.available) == (Decimal(11), Decimal(9))
    assert fake.time_asked == 1 and trading.rest.counts["clock_resyncs"] == 1
    assert 7_000 < trading.rest.offset_ms < 9_000
    assert len(fake.sent("GET", "/fapi/v3/balance")) == 2


async def test_a_second_timestamp_refusal_is_refused(binance):
    fake, trading = binance
    fake.answer("GET", "/fapi/v3/balance", error(-1021, "Timestamp for this request is outside of the recvWindow."))
    with pytest.raises(Refused) as refusal:
        await trading.balance()
    assert refusal.value.kind == "timestamp" and fake.time_asked == 1


# ---------------------------------------------------------------------- limits

@pytest.mark.parametrize("refusal", [(429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "0"}),
                                     (429, {"code": -1015, "msg": "Too many new orders"}, {"Retry-After": "0"}),
                                     (418, {"code": -1003, "msg": "IP banned until"}, {"Retry-After": "0"}),
                                     (400, {"code": -1008, "msg": "Request throttled by system-level protection."}),
                                     (503, {"code": -1008, "msg": "Server is currently overloaded."}),
                                     (429, "")])
async def test_a_rate_limit_is_waited_out_and_tried_again(binance, refusal):
    fake, trading = binance
    fake.answer("POST", PLACE, refusal, {"orderId": 7})
    assert await trading.place(spec()) == "7"
    assert len(fake.sent("POST", PLACE)) == 2 and trading.rest.counts["rate_limited"] == 1


async def test_retry_after_is_honoured_and_a_long_ban_refused_at_once(binance):
    fake, trading = binance
    fake.answer("POST", PLACE, (429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "0.3"}),
                {"orderId": 7})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await trading.place(spec())
    assert loop.time() - started >= 0.29
    fake.answer("GET", "/fapi/v3/balance", (418, {"code": -1003, "msg": "Way too many requests; IP banned until "
                                                                        "1700000000000."}, {"Retry-After": "120"}))
    with pytest.raises(Refused) as banned:
        await trading.balance()
    assert banned.value.kind == "rate_limit" and len(fake.sent("GET", "/fapi/v3/balance")) == 1


async def test_rate_limits_that_persist_are_refused_after_three_retries(binance):
    fake, trading = binance
    fake.answer("POST", PLACE, (429, {"code": -1003, "msg": "Too many requests"}))
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert refusal.value.kind == "rate_limit" and len(fake.sent("POST", PLACE)) == 4


async def test_every_answers_counts_are_read_and_a_nearly_used_limit_waits_for_the_next_window(binance):
    fake, trading = binance
    rest = trading.rest
    fake.headers = {"X-MBX-USED-WEIGHT-1M": "2100", "X-MBX-ORDER-COUNT-10S": "269", "X-MBX-ORDER-COUNT-1M": "500"}
    fake.answer("POST", PLACE, {"orderId": 7})
    await trading.place(spec())
    now = rest.now_ms()
    assert rest.used["x-mbx-used-weight-1m"] == (2100, now // 60_000)
    assert rest.used["x-mbx-order-count-10s"] == (269, now // 10_000)
    assert rest.room_wait_s(weight=1, order=True) == 0  # 270 of 300 is 90 %: still in
    assert rest.room_wait_s(weight=60, order=False) == 0
    wait = rest.room_wait_s(weight=61, order=False)  # 2161 of 2400 is past 90 %: the rest of this minute
    assert 0 < wait <= 60.05 and wait == pytest.approx(((now // 60_000 + 1) * 60_000 - now) / 1000 + 0.05, abs=0.01)
    rest.used["x-mbx-order-count-10s"] = (270, now // 10_000)
    assert 0 < rest.room_wait_s(weight=0, order=True) <= 10.05
    assert rest.room_wait_s(weight=0, order=False) == 0  # only order creates count orders
    rest.used["x-mbx-order-count-10s"] = (300, now // 10_000 - 1)  # counted in a window gone
    assert rest.room_wait_s(weight=0, order=True) == 0


async def test_a_nearly_used_order_count_slows_the_next_order_down(binance):
    fake, trading = binance
    rest = trading.rest
    fake.answer("POST", PLACE, {"orderId": 7})
    window_ms = 10_000
    # this answer says the 10 s window is nearly full; the window ends 0.3 s from now on Binance's clock
    rest.offset_ms = (rest.now_ms() // window_ms + 1) * window_ms - 300 - int(rest.clock() * 1000)
    fake.clock_ms = rest.offset_ms
    rest.used["x-mbx-order-count-10s"] = (295, rest.now_ms() // window_ms)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await trading.place(spec())
    assert loop.time() - started >= 0.3 and rest.counts["slowed"] >= 1
