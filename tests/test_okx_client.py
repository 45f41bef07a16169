"""The OKX trading client's REST side (shared/venues/okx/client.py, trading.py) against a
scripted OKX that checks every signature: what each code means, retries, outcome-unknown,
sizes in contracts, and each endpoint's request and answer."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.instruments import Instrument
from shared.venues.okx import client
from shared.venues.okx.client import CODE_KINDS, OUTCOME_UNKNOWN, kind_of
from shared.venues.okx.trading import OkxTrading, client_id, order_request
from shared.venues.trading import KINDS, FillUpdate, FundingUpdate, OrderSpec, OutcomeUnknown, Refused
from tests.conftest import serve_app
from tests.okx_fake import DROP, KEY, PASSPHRASE, SECRET, FakeOkx, Sleep, ok, refused

BTC = Instrument(venue="okx", symbol="BTCUSDT", venue_symbol="BTC-USDT-SWAP", contract_size=Decimal("0.01"),
                 tick=Decimal("0.1"), lot=Decimal("0.01"), min_size=Decimal("0.01"))
ETH = Instrument(venue="okx", symbol="ETHUSDT", venue_symbol="ETH-USDT-SWAP", contract_size=Decimal("0.1"),
                 tick=Decimal("0.01"), lot=Decimal("1"), min_size=Decimal("1"))
LINK = "a1b2c3d4e5f6-LE1"
CL = "a1b2c3d4e5f6LE1"
PLACE, CANCEL, ORDER = "/api/v5/trade/order", "/api/v5/trade/cancel-order", "/api/v5/trade/order"


def spec(**fields) -> OrderSpec:
    return OrderSpec(**{"link_id": LINK, "symbol": "BTCUSDT", "side": "Buy", "qty": Decimal("0.001"),
                        "price": Decimal("50000.1"), "position_side": "long", **fields})


def order_row(**fields) -> dict:
    return {"instId": "BTC-USDT-SWAP", "ordId": "900", "clOrdId": CL, "state": "live", "accFillSz": "0",
            "cancelSource": "", "sz": "10", "px": "50000.1", **fields}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(client, "RATE_LIMIT_WAIT_S", 0.01)


@pytest.fixture
async def okx():
    fake = FakeOkx()
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        yield fake, OkxTrading(http, base, f"{base.replace('http', 'ws')}/ws/v5/private", KEY, SECRET, PASSPHRASE,
                               [BTC, ETH], timeout_s=0.5)


# ---------------------------------------------------------------------- codes

BRIEF_CODES = {
    "insufficient_margin": ["51008", "51008_1000", "51008_1001", "51131"], "duplicate": ["51016", "50071"],
    "below_minimum": ["51020", "51121"], "invalid": ["51150", "51000", "51006", "51137", "51138"],
    "not_found": ["51603"], "too_late": ["51400"], "timestamp": ["50102", "50112"], "bad_signature": ["50113"],
    "unknown_key": ["50111", "50119", "50101", "50105", "50104"], "permission": ["50120", "50110"],
    "rate_limit": ["50011", "50061", "50013"], "reduce_only": ["51169", "51170", "51112"],
    None: ["50001", "50004", "50026", "51149"], "other": ["59999", "1"],
}
MORE_CODES = {"invalid": ["51202", "51005", "51101"], None: ["51054"], "too_late": ["51401", "51402", "51410"]}
ALL_CODES = [(code, kind) for kind, codes in BRIEF_CODES.items() for code in codes]


@pytest.mark.parametrize(("code", "kind"), [(code, kind) for kind, codes in MORE_CODES.items() for code in codes])
def test_codes_beyond_the_references_table(code, kind):
    assert kind_of(code) == kind


@pytest.mark.parametrize(("code", "kind"), ALL_CODES)
def test_every_code_has_its_kind(code, kind):
    assert kind_of(code) == kind


def test_the_table_speaks_only_the_interfaces_kinds():
    assert set(CODE_KINDS.values()) <= set(KINDS)
    assert not OUTCOME_UNKNOWN & set(CODE_KINDS)


@pytest.mark.parametrize(("code", "kind"), [c for c in ALL_CODES if c[1] not in (None, "rate_limit")
                                            and c[0] != "50102"])
async def test_a_refused_order_raises_its_kind_with_okxs_code(okx, code, kind):
    fake, trading = okx
    fake.answer("POST", PLACE, refused(code, "no"))
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert (refusal.value.kind, refusal.value.code, refusal.value.venue) == (kind, code, "okx")
    assert len(fake.sent("POST", PLACE)) == 1  # a refusal is not retried


async def test_an_envelope_code_without_an_order_row_is_read_too(okx):
    fake, trading = okx
    fake.answer("POST", PLACE, (401, {"code": "50113", "msg": "Invalid Sign", "data": []}))
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert refusal.value.kind == "bad_signature"


@pytest.mark.parametrize("code", BRIEF_CODES[None])
async def test_a_code_that_does_not_say_is_outcome_unknown(okx, code):
    fake, trading = okx
    fake.answer("POST", PLACE, (500 if code in ("50026", "51149") else 200, refused(code, "timeout")))
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec())


# ---------------------------------------------------------------------- client ids and order bodies

def test_a_client_id_is_the_link_ids_letters_and_digits():
    assert client_id(LINK) == CL
    assert client_id("0123456789ab-X") == "0123456789abX"
    for bad in ("", "--", "-_.", "a" * 33, "0123456789ab-" + "L" * 21):
        with pytest.raises(ValueError):
            client_id(bad)


@given(st.lists(st.tuples(st.from_regex(r"[0-9a-f]{12}", fullmatch=True),
                          st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)), unique=True, min_size=2))
def test_link_ids_of_the_executors_form_keep_distinct_client_ids(parts):
    links = [f"{trade}-{leg}" for trade, leg in parts]
    assert len({client_id(link) for link in links}) == len(links)


def test_the_client_maps_a_client_id_back_to_its_link_id():
    trading = OkxTrading(None, "http://x", "ws://x", KEY, SECRET, PASSPHRASE, [BTC])
    assert trading.link_id(trading.client_id(LINK)) == LINK
    assert trading.link_id("unknown1") == "unknown1"
    restarted = OkxTrading(None, "http://x", "ws://x", KEY, SECRET, PASSPHRASE, [BTC])  # a new process
    assert restarted.link_id("0123456789abLE12") == "0123456789ab-LE12"  # the executor's form, rebuilt
    assert restarted.link_id("0123456789aLE12") == "0123456789aLE12"  # 11 hex digits: not one of its ids


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, {"side": "buy", "posSide": "long", "ordType": "limit", "px": "50000.1", "sz": "0.10"}),
    ({"side": "Sell", "position_side": "short", "tif": "post_only"},
     {"side": "sell", "posSide": "short", "ordType": "post_only", "px": "50000.1", "sz": "0.10"}),
    ({"tif": "IOC"}, {"ordType": "ioc"}), ({"tif": "FOK"}, {"ordType": "fok"}),
    ({"price": None, "qty": Decimal("0.0159")}, {"ordType": "market", "sz": "1.59"}),
    # a close: the opposite side on the same posSide; reduceOnly is never sent in long/short mode
    ({"side": "Sell", "reduce_only": True, "position_side": "long"}, {"side": "sell", "posSide": "long"}),
    ({"side": "Sell", "reduce_only": True, "position_side": None}, {"side": "sell", "posSide": "long"}),
    ({"side": "Buy", "reduce_only": True, "position_side": None}, {"side": "buy", "posSide": "short"}),
    ({"side": "Sell", "position_side": None}, {"side": "sell", "posSide": "short"}),
    ({"qty": Decimal("0.00019999")}, {"sz": "0.01"}),  # floored to the lot: never more than asked
])
def test_an_order_body(fields, expected):
    body = order_request(spec(**fields), BTC, CL)
    assert body["instId"] == "BTC-USDT-SWAP" and body["tdMode"] == "cross" and body["clOrdId"] == CL
    assert "reduceOnly" not in body
    assert {k: body.get(k) for k in expected} == expected
    assert ("px" in body) == (body["ordType"] != "market")


@pytest.mark.parametrize(("fields", "kind"), [
    ({"qty": Decimal("0.000099")}, "below_minimum"),  # 0.0099 contracts, under minSz 0.01
    ({"qty": Decimal("0")}, "invalid"), ({"qty": Decimal("NaN")}, "invalid"), ({"price": Decimal("-1")}, "invalid"),
    ({"price": None, "tif": "post_only"}, "invalid"),
    ({"side": "Buy", "reduce_only": True, "position_side": "long"}, "invalid"),  # it would open, not close
])
def test_an_order_okx_could_not_take_is_refused_unsent(fields, kind):
    with pytest.raises(Refused) as refusal:
        order_request(spec(**fields), BTC, CL)
    assert refusal.value.kind == kind and refusal.value.code == "local"


def test_a_whole_contract_lot_refuses_less_than_one_contract():
    with pytest.raises(Refused, match="under the minimum"):
        order_request(spec(symbol="ETHUSDT", qty=Decimal("0.09")), ETH, CL)
    assert order_request(spec(symbol="ETHUSDT", qty=Decimal("0.29")), ETH, CL)["sz"] == "2"


# ---------------------------------------------------------------------- requests

async def test_a_place_is_signed_sent_once_and_answers_the_order_id(okx):
    fake, trading = okx
    fake.answer("POST", PLACE, ok({"clOrdId": CL, "ordId": "312269865356374016", "sCode": "0", "sMsg": ""}))
    sends = []
    assert await trading.place(spec(), on_send=lambda: sends.append(1)) == "312269865356374016"
    [request] = fake.sent("POST", PLACE)
    assert request["body"] == {"instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "buy", "posSide": "long",
                               "ordType": "limit", "sz": "0.10", "clOrdId": CL, "px": "50000.1"}
    assert "x-simulated-trading" not in request["headers"] and sends == [1]
    assert trading.rest.budget.limits["POST /api/v5/trade/order BTC-USDT-SWAP"] == 60  # a budget per instId


async def test_an_accepted_order_without_an_id_is_outcome_unknown(okx):
    fake, trading = okx
    fake.answer("POST", PLACE, ok())
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec())


async def test_demo_sends_the_simulated_trading_header():
    fake = FakeOkx(demo=True)
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        fake.answer("GET", "/api/v5/account/config", ok({"perm": "read_only,trade", "ip": "1.2.3.4"}))
        demo = OkxTrading(http, base, "", KEY, SECRET, PASSPHRASE, [BTC], demo=True)
        assert await demo.key_problems() == []
        assert fake.requests[-1]["headers"]["x-simulated-trading"] == "1"
        live = OkxTrading(http, base, "", KEY, SECRET, PASSPHRASE, [BTC])
        with pytest.raises(Refused) as refusal:  # a demo key on the live service
            await live.key_problems()
        assert refusal.value.kind == "unknown_key" and refusal.value.code == "50101"


@pytest.mark.parametrize(("key", "secret", "passphrase", "kind"), [
    ("nobody", SECRET, PASSPHRASE, "unknown_key"), (KEY, "wrong", PASSPHRASE, "bad_signature"),
    (KEY, SECRET, "wrong", "unknown_key")])
async def test_a_wrong_key_secret_or_passphrase_is_a_key_refusal_that_shows_none_of_them(key, secret, passphrase,
                                                                                          kind, caplog):
    fake = FakeOkx()
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        trading = OkxTrading(http, base, "", key, secret, passphrase, [BTC])
        with caplog.at_level(logging.DEBUG), pytest.raises(Refused) as refusal:
            await trading.balance()
    assert refusal.value.kind == kind
    shown = str(refusal.value) + repr(trading) + caplog.text
    assert secret not in shown and passphrase not in shown and key not in repr(trading)


async def test_a_clock_outside_the_window_is_measured_again_once(okx):
    fake, trading = okx
    fake.clock_ms = 60_000  # OKX is a minute ahead of us
    fake.answer("GET", "/api/v5/account/balance", ok({"details": []}))
    assert (await trading.balance()).equity == 0
    assert fake.time_asked == 1 and trading.rest.counts == {"clock_resyncs": 1}
    assert 59_000 < trading.rest.offset_ms < 61_000
    assert await trading.sync_time() == pytest.approx(60_000, abs=1000)


async def test_a_timestamp_refused_after_the_resync_is_refused(okx):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/balance", (401, {"code": "50102", "msg": "Timestamp request expired"}))
    with pytest.raises(Refused) as refusal:
        await trading.balance()
    assert refusal.value.kind == "timestamp" and fake.time_asked == 1
    assert len(fake.sent("GET", "/api/v5/account/balance")) == 2


@pytest.mark.parametrize("limited", [refused("50011", "Rate limit reached"), (429, {"msg": "Too Many Requests",
                                                                                    "code": "50011"}),
                                     (429, "Too Many Requests"), refused("50061"), refused("50013")])
async def test_a_rate_limit_waits_and_tries_again_three_times(okx, limited):
    fake, trading = okx
    fake.answer("POST", PLACE, limited, limited, ok({"ordId": "7", "sCode": "0"}))
    assert await trading.place(spec()) == "7"
    assert trading.rest.counts == {"rate_limited": 2}
    fake.answers.clear()
    fake.answer("POST", PLACE, limited)
    with pytest.raises(Refused) as refusal:
        await trading.place(spec())
    assert refusal.value.kind == "rate_limit" and len(fake.sent("POST", PLACE)) == 3 + 4


@pytest.mark.parametrize("answer", [(503, ok()), (502, "Bad Gateway"), DROP, Sleep(2.0, ok()), (200, "<html>"),
                                    (200, {"data": []})])
async def test_no_answer_is_outcome_unknown(okx, answer):
    fake, trading = okx
    fake.answer("POST", PLACE, answer)
    with pytest.raises(OutcomeUnknown):
        await trading.place(spec())


async def test_a_refusal_before_okx_read_it_is_refused(okx):
    fake, trading = okx
    fake.answer("POST", CANCEL, (404, "not found"))
    with pytest.raises(Refused) as refusal:
        await trading.cancel("BTCUSDT", LINK)
    assert (refusal.value.kind, refusal.value.code) == ("other", "HTTP 404")


async def test_an_unknown_symbol_is_refused_unsent(okx):
    fake, trading = okx
    with pytest.raises(Refused) as refusal:
        await trading.place(spec(symbol="XRPUSDT"))
    assert refusal.value.kind == "invalid" and fake.requests == []


# ---------------------------------------------------------------------- endpoints

async def test_an_order_is_found_by_its_client_id(okx):
    fake, trading = okx
    fake.answer("GET", ORDER, ok(order_row(state="partially_filled", accFillSz="3")),
                refused("51603", "Order does not exist."), ok())
    found = await trading.order("BTCUSDT", LINK)
    assert (found.link_id, found.order_id, found.status, found.filled_qty) == (LINK, "900", "open", Decimal("0.03"))
    assert fake.sent("GET", ORDER)[0]["query"] == {"instId": "BTC-USDT-SWAP", "clOrdId": CL}
    assert await trading.order("BTCUSDT", LINK) is None
    assert await trading.order("BTCUSDT", LINK) is None


async def test_a_malformed_order_answer_is_outcome_unknown(okx):
    fake, trading = okx
    fake.answer("GET", ORDER, ok(order_row(state="weird")))
    with pytest.raises(OutcomeUnknown):
        await trading.order("BTCUSDT", LINK)


async def test_a_cancel_names_the_client_id_and_too_late_is_its_own_kind(okx):
    fake, trading = okx
    fake.answer("POST", CANCEL, ok({"clOrdId": CL, "ordId": "900", "sCode": "0", "sMsg": ""}),
                refused("51400", "Order cancellation failed as the order has been filled, canceled or does not exist."))
    await trading.cancel("BTCUSDT", LINK)
    assert fake.sent("POST", CANCEL)[0]["body"] == {"instId": "BTC-USDT-SWAP", "clOrdId": CL}
    with pytest.raises(Refused) as refusal:
        await trading.cancel("BTCUSDT", LINK)
    assert refusal.value.kind == "too_late"


def fill_row(n: int) -> dict:
    return {"instId": "BTC-USDT-SWAP", "tradeId": f"t{n}", "ordId": "900", "clOrdId": CL, "billId": f"b{n}",
            "fillPx": "50000.1", "fillSz": "1", "side": "buy", "posSide": "long", "execType": "T",
            "fee": "-0.025", "feeCcy": "USDT", "ts": str(1_000 + n), "fillTime": str(1_000 + n)}


async def test_fills_page_through_the_orders_fills_oldest_first(okx):
    fake, trading = okx
    fake.answer("GET", ORDER, ok(order_row(state="filled", accFillSz="101")))
    fake.answer("GET", "/api/v5/trade/fills", ok(*[fill_row(n) for n in range(101, 1, -1)]), ok(fill_row(1)))
    fills = await trading.fills("BTCUSDT", LINK)
    queries = [r["query"] for r in fake.sent("GET", "/api/v5/trade/fills")]
    assert queries == [{"instType": "SWAP", "instId": "BTC-USDT-SWAP", "ordId": "900", "limit": "100"},
                       {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "ordId": "900", "limit": "100", "after": "b2"}]
    assert len(fills) == 101 and fills[0] == FillUpdate(link_id=LINK, fill_id="t1", symbol="BTCUSDT",
                                                        qty=Decimal("0.01"), price=Decimal("50000.1"),
                                                        fee=Decimal("0.025"), maker=False, ts_ms=1001)
    assert [f.ts_ms for f in fills] == sorted(f.ts_ms for f in fills)
    await trading.fills("BTCUSDT", LINK)
    assert len(fake.sent("GET", ORDER)) == 1  # the order id is remembered


async def test_fills_of_an_order_okx_does_not_have_are_none(okx):
    fake, trading = okx
    fake.answer("GET", ORDER, refused("51603"))
    assert await trading.fills("BTCUSDT", LINK) == []


async def test_open_orders_positions_and_balance(okx):
    fake, trading = okx
    fake.answer("GET", "/api/v5/trade/orders-pending", ok(order_row(), order_row(instId="DOGE-USDT-SWAP")))
    fake.answer("GET", "/api/v5/account/positions",
                ok({"instId": "BTC-USDT-SWAP", "posSide": "long", "pos": "12"},
                   {"instId": "ETH-USDT-SWAP", "posSide": "short", "pos": "3"}))
    fake.answer("GET", "/api/v5/account/balance",
                ok({"details": [{"ccy": "USDT", "eq": "1000.5", "availEq": "900.25", "availBal": "950"}]}),
                ok({"details": []}))
    [only] = await trading.open_orders()  # DOGE is not traded here: skipped
    # a client id this client has not made (it restarted) is read back in the executor's form
    assert only.link_id == LINK and only.status == "open"
    assert fake.sent("GET", "/api/v5/trade/orders-pending")[-1]["query"] == {"instType": "SWAP", "limit": "100"}
    positions = await trading.positions()
    assert [(p.symbol, p.qty, p.position_side) for p in positions] == [("BTCUSDT", Decimal("0.12"), "long"),
                                                                       ("ETHUSDT", Decimal("-0.3"), "short")]
    balance = await trading.balance()
    assert (balance.equity, balance.available) == (Decimal("1000.5"), Decimal("900.25"))
    assert fake.sent("GET", "/api/v5/account/balance")[0]["query"] == {"ccy": "USDT"}
    assert (await trading.balance()).equity == 0


async def test_the_position_mode_is_set_to_long_short_when_it_is_not(okx):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/config", ok({"posMode": "long_short_mode", "acctLv": "2"}),
                ok({"posMode": "net_mode", "acctLv": "2"}))
    fake.answer("POST", "/api/v5/account/set-position-mode", ok({"posMode": "long_short_mode"}),
                refused("59000", "Your settings failed as you have positions or open orders."))
    await trading.ensure_position_mode(["BTCUSDT"])
    assert fake.sent("POST", "/api/v5/account/set-position-mode") == []
    await trading.ensure_position_mode(["BTCUSDT"])
    assert fake.sent("POST", "/api/v5/account/set-position-mode")[0]["body"] == {"posMode": "long_short_mode"}
    with pytest.raises(Refused, match="close every swap position and order"):
        await trading.ensure_position_mode(["BTCUSDT"])


@pytest.mark.parametrize("level", ["1", "4"])
async def test_an_account_that_cannot_hold_both_sides_is_refused_clearly(okx, level):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/config", ok({"posMode": "net_mode", "acctLv": level}))
    with pytest.raises(Refused, match=f"acctLv {level}"):
        await trading.ensure_position_mode(["BTCUSDT"])
    assert fake.sent("POST", "/api/v5/account/set-position-mode") == []


async def test_leverage_and_fee_rates(okx):
    fake, trading = okx
    fake.answer("POST", "/api/v5/account/set-leverage", ok({"lever": "5", "mgnMode": "cross"}))
    await trading.set_leverage("ETHUSDT", 5)
    assert fake.sent("POST", "/api/v5/account/set-leverage")[0]["body"] == {"instId": "ETH-USDT-SWAP", "lever": "5",
                                                                             "mgnMode": "cross"}
    fake.answer("GET", "/api/v5/account/trade-fee",
                ok({"instType": "SWAP", "maker": "-0.0009", "taker": "-0.001", "makerU": "-0.0002",
                    "takerU": "-0.0005"}),
                ok({"instType": "SWAP", "maker": "0.00005", "taker": "-0.0005", "makerU": "", "takerU": ""}),
                ok({"instType": "SWAP"}))
    assert await trading.fee_rates("BTCUSDT") == (Decimal("0.0002"), Decimal("0.0005"))
    assert fake.sent("GET", "/api/v5/account/trade-fee")[0]["query"] == {"instType": "SWAP", "instFamily": "BTC-USDT"}
    assert await trading.fee_rates("BTCUSDT") == (Decimal("-0.00005"), Decimal("0.0005"))  # a maker rebate
    with pytest.raises(OutcomeUnknown):
        await trading.fee_rates("BTCUSDT")


HOUR_AGO = int(time.time() * 1000) - 3_600_000  # bills' times: an hour ago plus their ts


def bill(n: int, ts: int, bal_chg: str, inst: str = "BTC-USDT-SWAP", **fields) -> dict:
    return {"billId": f"{n}", "instId": inst, "instType": "SWAP", "type": "8",
            "subType": "173" if bal_chg.startswith("-") else "174", "balChg": bal_chg, "ccy": "USDT", "sz": "10",
            "ts": str(HOUR_AGO + ts), **fields}


async def test_funding_payments_page_back_to_since_oldest_first(okx):
    fake, trading = okx
    newest = [bill(1000 - n, 10_000 - n, "-0.5", posSide="long") for n in range(100)]
    fake.answer("GET", "/api/v5/account/bills", ok(*newest), ok(bill(900, 9_900, "0.25", posSide="short"),
                                                                bill(899, 1_000, "-9", posSide="long")))
    paid = await trading.funding_payments(since_ms=HOUR_AGO + 5_000)
    queries = [r["query"] for r in fake.sent("GET", "/api/v5/account/bills")]
    assert queries[0] == {"instType": "SWAP", "type": "8", "begin": str(HOUR_AGO + 5_000), "limit": "100"}
    assert queries[1]["after"] == "901"
    assert len(paid) == 101 and paid[0] == FundingUpdate(funding_id="900", symbol="BTCUSDT", side="Sell",
                                                         amount=Decimal("-0.25"), ts_ms=HOUR_AGO + 9_900)
    assert paid[-1] == FundingUpdate(funding_id="1000", symbol="BTCUSDT", side="Buy", amount=Decimal("0.5"),
                                     ts_ms=HOUR_AGO + 10_000)


async def test_a_bills_side_comes_from_the_side_held_else_buy(okx, caplog):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/bills", ok(bill(3, 300, "-1"), bill(2, 200, "2", inst="ETH-USDT-SWAP"),
                                                   bill(1, 100, "-3", inst="SOL-USDT-SWAP")))
    fake.answer("GET", "/api/v5/account/positions", ok({"instId": "BTC-USDT-SWAP", "posSide": "short", "pos": "4"},
                                                       {"instId": "BTC-USDT-SWAP", "posSide": "long", "pos": "0"},
                                                       {"instId": "ETH-USDT-SWAP", "posSide": "long", "pos": "1"},
                                                       {"instId": "ETH-USDT-SWAP", "posSide": "short", "pos": "1"}))
    paid = await trading.funding_payments(since_ms=HOUR_AGO)
    assert [(p.symbol, p.side, p.amount) for p in paid] == [("SOLUSDT", "Buy", Decimal(3)),
                                                            ("ETHUSDT", "Buy", Decimal(-2)),
                                                            ("BTCUSDT", "Sell", Decimal(1))]
    assert len(fake.sent("GET", "/api/v5/account/positions")) == 1
    assert "position side is unknown" in caplog.text


@pytest.mark.parametrize(("config", "problems"), [
    ({"perm": "read_only,trade", "ip": "10.0.0.1,10.0.0.2"}, []),
    ({"perm": "read_only,withdraw,trade", "ip": "10.0.0.1"}, ["it may withdraw funds (perm: read_only, withdraw, "
                                                              "trade)"]),
    ({"perm": "read_only,trade", "ip": ""}, ["it is bound to no IP address (ip is empty)"]),
])
async def test_key_problems(okx, config, problems):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/config", ok({"uid": "1", "posMode": "long_short_mode", **config}))
    assert await trading.key_problems() == problems


async def test_funding_older_than_a_week_is_read_from_the_archive(okx):
    fake, trading = okx
    fake.answer("GET", "/api/v5/account/bills-archive", ok(bill(5, 1_000, "-1", posSide="long")))
    week_ago = trading.now_ms() - 7 * 86_400_000
    [paid] = await trading.funding_payments(since_ms=week_ago)
    assert paid.amount == 1 and fake.sent("GET", "/api/v5/account/bills") == []
