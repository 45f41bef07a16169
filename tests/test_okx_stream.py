"""The OKX private stream (shared/venues/okx/stream.py) against a scripted OKX: login in epoch
seconds, the three channels, on_connected before any push, ping after silence, reconnects, and
a login refused for the key raising instead of retrying."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from decimal import Decimal

import aiohttp
import pytest

from shared.instruments import Instrument
from shared.venues.okx.signing import websocket_login_signature
from shared.venues.okx.trading import OkxTrading
from shared.venues.trading import OrderUpdate, Refused
from tests.conftest import serve_app
from tests.okx_fake import KEY, PASSPHRASE, SECRET, FakeOkx

BTC = Instrument(venue="okx", symbol="BTCUSDT", venue_symbol="BTC-USDT-SWAP", contract_size=Decimal("0.01"),
                 tick=Decimal("0.1"), lot=Decimal("0.01"), min_size=Decimal("0.01"))
PUSH = {"arg": {"channel": "orders", "instType": "SWAP"},
        "data": [{"instId": "BTC-USDT-SWAP", "ordId": "1", "clOrdId": "abc123", "state": "live", "accFillSz": "0"}]}


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def streaming(fake: FakeOkx, ping_s: float = 20.0, secret: str = SECRET):
    """A running stream of a client of `fake`: (trading, stream, heard, task)."""
    async with serve_app(fake.app()) as base, aiohttp.ClientSession() as http:
        trading = OkxTrading(http, base, f"{base.replace('http', 'ws')}/ws/v5/private", KEY, secret, PASSPHRASE, [BTC])
        heard: list[object] = []

        async def on_message(message: object) -> None:
            heard.append(message)

        async def on_connected() -> None:
            heard.append(("connected", stream.connects, stream.connected.is_set()))

        stream = trading.private_stream(on_message, on_connected)
        stream.ping_s = ping_s
        stop = asyncio.Event()
        task = asyncio.ensure_future(stream.run(stop))
        try:
            yield trading, stream, heard, task
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)


async def test_login_subscribe_then_on_connected_then_the_pushes():
    fake = FakeOkx(ws_pushes=[PUSH])
    async with streaming(fake) as (trading, stream, heard, _):
        await until(lambda: len(heard) == 2)
        assert heard == [("connected", 1, True), PUSH]
        login, subscribe = (json.loads(m) for m in fake.ws_heard[:2])
        args = login["args"][0]
        assert login["op"] == "login" and (args["apiKey"], args["passphrase"]) == (KEY, PASSPHRASE)
        assert abs(int(args["timestamp"]) - time.time()) < 5  # epoch seconds
        assert args["sign"] == websocket_login_signature(SECRET, args["timestamp"])
        assert subscribe["op"] == "subscribe" and subscribe["args"] == [
            {"channel": "orders", "instType": "SWAP"}, {"channel": "positions", "instType": "SWAP"},
            {"channel": "account"}]
        updates, skipped = trading.parse_private(heard[1])
        assert skipped == [] and isinstance(updates[0], OrderUpdate) and updates[0].link_id == "abc123"
        assert repr(stream).count(SECRET) == 0 and PASSPHRASE not in repr(stream)


async def test_silence_sends_a_text_ping_and_a_pong_keeps_the_connection():
    fake = FakeOkx()
    async with streaming(fake, ping_s=0.2) as (_, stream, _, _):
        await until(lambda: fake.ws_heard.count("ping") >= 3)
        assert stream.connects == 1 and fake.ws_connections == 1 and stream.connected.is_set()


async def test_no_pong_reconnects_resubscribes_and_catches_up_again():
    fake = FakeOkx(ws_answer_pings=False, ws_pushes=[PUSH])
    async with streaming(fake, ping_s=0.2) as (_, stream, heard, _):
        await until(lambda: stream.connects >= 2)
        assert heard[:3] == [("connected", 1, True), PUSH, ("connected", 2, True)]
        assert sum(1 for m in fake.ws_heard if '"op":"subscribe"' in m.replace(" ", "")) >= 2


@pytest.mark.parametrize(("code", "kind"), [("60024", "unknown_key"), ("60005", "unknown_key"),
                                            ("60032", "unknown_key"), ("60007", "bad_signature")])
async def test_a_login_refused_for_the_key_stops_with_a_clear_error(code, kind, caplog):
    fake = FakeOkx(ws_login=[{"code": code, "msg": "Login failed"}])
    async with streaming(fake) as (_, stream, _, task):
        with pytest.raises(Refused) as refusal:
            await asyncio.wait_for(task, 5)
    assert refusal.value.kind == kind and refusal.value.code == code and stream.connects == 0
    assert "check the API key, secret and passphrase" in caplog.text


async def test_a_wrong_secret_is_refused_by_its_signature():
    async with streaming(FakeOkx(), secret="not-the-secret") as (_, _, _, task):
        with pytest.raises(Refused) as refusal:
            await asyncio.wait_for(task, 5)
    assert refusal.value.kind == "bad_signature" and "not-the-secret" not in str(refusal.value)


async def test_another_login_refusal_is_tried_again_and_logged_once(caplog):
    fake = FakeOkx(ws_login=[{"code": "60009", "msg": "Login failed."}] * 3)
    with caplog.at_level(logging.WARNING, logger="arb.okx.stream"):
        async with streaming(fake) as (_, stream, heard, _):
            await until(lambda: stream.connects == 1, timeout=10)
    assert fake.ws_connections == 4 and heard[0] == ("connected", 1, True)
    assert caplog.text.count("login refused") == 1


async def test_a_timestamp_refusal_measures_the_clock_again():
    fake = FakeOkx(ws_login=[{"code": "60006", "msg": "Timestamp request expired"}])
    async with streaming(fake) as (_, stream, _, _):
        await until(lambda: stream.connects == 1, timeout=10)
    assert fake.time_asked == 1


async def test_an_upgrade_notice_reconnects_at_once():
    notice = {"event": "notice", "code": "64008", "msg": "The connection will soon be closed for a service upgrade."}
    fake = FakeOkx(ws_pushes=[PUSH, notice])
    async with streaming(fake) as (_, stream, heard, _):
        await until(lambda: stream.connects >= 2)
        assert notice not in heard


async def test_a_frame_that_is_not_json_is_passed_on_and_the_stream_stays():
    fake = FakeOkx(ws_pushes=["{broken", PUSH])
    async with streaming(fake) as (trading, stream, heard, _):
        await until(lambda: len(heard) == 3)
        assert heard[1:] == ["{broken", PUSH] and stream.connects == 1
        assert trading.parse_private(heard[1]) == ([], [("message", "not an object", "{broken")])
