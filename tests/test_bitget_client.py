"""The Bitget client's REST side (shared/venues/bitget/client.py) against a scripted Bitget that
checks every signature: what each code means, outcome-unknown answers, rate-limit retries and
the clock resync after 40008."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import web

from shared.venues.bitget import client
from shared.venues.bitget.client import CODE_KINDS, OUTCOME_UNKNOWN, BitgetRest, kind_of
from shared.venues.bitget.signing import signature
from shared.venues.trading import KINDS, OutcomeUnknown, Refused
from tests.conftest import serve_app

KEY, SECRET, PASSPHRASE = "bitget-test-key", "bitget-test-secret", "bitget-test-pass"
PATH = "/api/v2/mix/position/all-position"
DROP = "drop"


class FakeBitget:
    """Answers queued per path (the last repeats): a body (HTTP 200), (status, body), text, or DROP."""

    def __init__(self, skew_ms: int = 0) -> None:
        self.skew_ms = skew_ms
        self.answers: dict[str, list] = {}
        self.requests: list[dict] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._rest)
        return app

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        now = int(time.time() * 1000) + self.skew_ms
        if request.path == "/api/v2/public/time":
            return web.json_response({"code": "00000", "msg": "success", "data": {"serverTime": str(now)}})
        body = await request.text()
        h = request.headers
        self.requests.append({"path": request.path, "query": request.query_string, "body": body, "headers": dict(h)})
        assert (h["ACCESS-KEY"], h["ACCESS-PASSPHRASE"]) == (KEY, PASSPHRASE)
        assert h["ACCESS-SIGN"] == signature(SECRET, h["ACCESS-TIMESTAMP"], request.method, request.path,
                                             request.query_string, body)
        if abs(int(h["ACCESS-TIMESTAMP"]) - now) > 30_000:
            return web.json_response({"code": "40008", "msg": "Request timestamp expired", "data": None}, status=400)
        queue = self.answers[request.path]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer == DROP:
            request.transport.close()
            raise asyncio.CancelledError
        status, reply = answer if isinstance(answer, tuple) else (200, answer)
        if isinstance(reply, str):
            return web.Response(status=status, text=reply)
        return web.json_response(reply, status=status)


def failed(code: str, msg: str = "no") -> dict:
    return {"code": code, "msg": msg, "requestTime": 1, "data": None}


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(client, "RATE_LIMIT_WAIT_S", 0.01)


@pytest.fixture
async def bitget():
    fake = FakeBitget()
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        yield fake, BitgetRest(http, base, KEY, SECRET, PASSPHRASE, timeout_s=0.5)


BRIEF_CODES = {
    "insufficient_margin": ["40762", "43012", "40754", "40711"], "duplicate": ["40786"],
    "below_minimum": ["45110", "43006", "22034", "40808"],
    "not_found": ["40768", "43001", "40109", "22001", "43026", "43025", "43020"],
    "reduce_only": ["22002", "40757"], "timestamp": ["40008", "40005"], "bad_signature": ["40009"],
    "unknown_key": ["40006", "40037", "40012", "40036", "40011"], "permission": ["40014", "40018", "40038"],
    "rate_limit": ["429"], "invalid": ["40774", "40815", "40816", "22006", "22007", "22008", "22009"],
    None: ["40010", "45001", "40725", "40015"], "other": ["99999", "1"],
}
ALL_CODES = [(code, kind) for kind, codes in BRIEF_CODES.items() for code in codes]


@pytest.mark.parametrize(("code", "kind"), ALL_CODES)
def test_every_code_has_its_kind(code, kind):
    assert kind_of(code) == kind


@pytest.mark.parametrize(("code", "kind"), sorted(CODE_KINDS.items()))
def test_every_entry_of_the_table_is_read_as_its_kind(code, kind):
    assert kind_of(code) == kind and kind in KINDS


def test_the_table_speaks_only_the_interfaces_kinds():
    assert set(CODE_KINDS.values()) <= set(KINDS) and not OUTCOME_UNKNOWN & set(CODE_KINDS)


@pytest.mark.parametrize(("code", "kind"), [c for c in ALL_CODES if c[1] not in (None, "rate_limit", "timestamp")])
@pytest.mark.parametrize("status", [200, 400])
async def test_a_refusal_raises_its_kind_whatever_the_http_status(bitget, code, kind, status):
    fake, rest = bitget
    fake.answers[PATH] = [(status, failed(code))]
    with pytest.raises(Refused) as refusal:
        await rest.request("GET", PATH, {"productType": "USDT-FUTURES"})
    assert (refusal.value.venue, refusal.value.code, refusal.value.kind) == ("bitget", code, kind)
    assert len(fake.requests) == 1  # a refusal is not retried
    assert SECRET not in str(refusal.value) and PASSPHRASE not in str(refusal.value) and SECRET not in repr(rest)


@pytest.mark.parametrize("answer", [(200, failed("40010", "Request timed out")), (200, failed("45001")),
                                    (500, failed("40725")), (502, "Bad Gateway"), (200, "<html>"),
                                    (200, {"data": []}), DROP])
async def test_no_answer_or_one_that_does_not_say_is_outcome_unknown(bitget, answer):
    fake, rest = bitget
    fake.answers[PATH] = [answer]
    with pytest.raises(OutcomeUnknown):
        await rest.request("POST", PATH, {"symbol": "BTCUSDT"})


async def test_a_timeout_is_outcome_unknown():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        rest = BitgetRest(http, base, KEY, SECRET, PASSPHRASE, timeout_s=0.2)
        with pytest.raises(OutcomeUnknown):
            await rest.request("GET", PATH, {})


async def test_a_4xx_without_bitgets_envelope_was_never_read_by_bitget(bitget):
    fake, rest = bitget
    fake.answers[PATH] = [(404, "not found")]
    with pytest.raises(Refused) as refusal:
        await rest.request("GET", PATH, {})
    assert (refusal.value.code, refusal.value.kind) == ("HTTP 404", "other")


@pytest.mark.parametrize("limited", [(429, failed("429", "Too many requests")), (429, "Too Many Requests"),
                                     (200, failed("429"))])
async def test_a_rate_limit_is_waited_out_and_tried_again(bitget, limited):
    fake, rest = bitget
    fake.answers[PATH] = [limited, limited, {"code": "00000", "msg": "success", "data": [{"a": 1}]}]
    assert await rest.request("GET", PATH, {"productType": "USDT-FUTURES"}) == [{"a": 1}]
    assert len(fake.requests) == 3 and rest.counts["rate_limited"] == 2


async def test_a_rate_limit_that_does_not_end_is_refused_after_three_retries(bitget):
    fake, rest = bitget
    fake.answers[PATH] = [(429, failed("429"))]
    with pytest.raises(Refused) as refusal:
        await rest.request("GET", PATH, {})
    assert refusal.value.kind == "rate_limit" and len(fake.requests) == 4


async def test_an_expired_timestamp_resyncs_the_clock_once_and_tries_again():
    fake = FakeBitget(skew_ms=60_000)
    fake.answers[PATH] = [{"code": "00000", "msg": "success", "data": []}]
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        rest = BitgetRest(http, base, KEY, SECRET, PASSPHRASE)
        assert await rest.request("POST", PATH, {"symbol": "BTCUSDT"}) == []
        assert rest.counts["clock_resyncs"] == 1 and 59_000 < rest.offset_ms < 61_000
        assert [json.loads(r["body"]) for r in fake.requests] == [{"symbol": "BTCUSDT"}] * 2
        fake.skew_ms = -120_000  # the server's clock jumps again: one resync per request, then refused
        fake.answers[PATH] = [(400, failed("40008"))]
        with pytest.raises(Refused) as refusal:
            await rest.request("GET", PATH, {})
        assert refusal.value.kind == "timestamp" and rest.counts["clock_resyncs"] == 2


async def test_the_query_is_signed_as_sent_and_demo_adds_paptrading():
    fake = FakeBitget()
    fake.answers[PATH] = [{"code": "00000", "msg": "success", "data": []}]
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        rest = BitgetRest(http, base, KEY, SECRET, PASSPHRASE, demo=True)
        await rest.request("GET", PATH, {"productType": "USDT-FUTURES", "marginCoin": "USDT"})
    sent = fake.requests[0]
    assert sent["query"] == "productType=USDT-FUTURES&marginCoin=USDT" and sent["headers"]["paptrading"] == "1"
