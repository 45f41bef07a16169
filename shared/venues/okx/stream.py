"""OKX V5 private stream (protocol-trading-okx-bitget-binance.md §2.7): `OkxPrivateStream`.

One session: connect; log in (ts in epoch seconds, signed over ts + "GET/users/self/verify");
subscribe to `orders` and `positions` (instType SWAP) and `account`; once every channel is
acknowledged, `connected` is set, `connects` counted and `on_connected` awaited (the caller
catches up by REST), then the messages that came meanwhile and every later one go to
`on_message` as parsed JSON (a frame that is not JSON as its text, for parse_private to skip).
After `ping_s` of silence the text `ping` is sent; no answer in another `ping_s` and the
session is dropped (OKX drops a connection silent for 30 s).

`run` (shared/venues/trading.py) reconnects with a doubling backoff (0.2 s to 10 s, back to 0.2 s after
a session that lasted a minute). A login
refused for the key (a wrong key, passphrase or signature) raises `Refused` out of `run` with
kind unknown_key / bad_signature / permission: no retry helps, the caller stops with a config
error. A timestamp refusal re-measures the clock and tries again; any other refusal is tried
again after up to a minute, logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from shared.venues.okx.signing import websocket_login
from shared.venues.trading import Kind, OnMessage, PrivateStream, Refused, StreamRefused

CHANNELS = ({"channel": "orders", "instType": "SWAP"}, {"channel": "positions", "instType": "SWAP"},
            {"channel": "account"})  # account: every currency (its `ccy` argument is UNSURE, §2.7)
# WS error codes [OKX:error-code-websocket-public] as refusal kinds
WS_CODE_KINDS: dict[str, Kind] = {
    "60005": "unknown_key", "60032": "unknown_key", "60024": "unknown_key", "60007": "bad_signature",
    "60004": "timestamp", "60006": "timestamp", "60014": "rate_limit", "50101": "unknown_key",
    "50111": "unknown_key", "50105": "unknown_key", "50113": "bad_signature", "50110": "permission",
}


class OkxPrivateStream(PrivateStream):
    """The authenticated private WebSocket; `run` keeps it connected until `stop`."""

    label = "OKX private stream"
    log = logging.getLogger("arb.okx.stream")

    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str, api_secret: str, passphrase: str,
                 on_message: OnMessage, on_connected: Callable[[], Awaitable[None]],
                 now_s: Callable[[], int] = lambda: int(time.time()),
                 resync: Callable[[], Awaitable[object]] | None = None, ping_s: float = 20.0) -> None:
        self.http, self.url = http, url
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.on_message, self.on_connected = on_message, on_connected
        self.now_s, self.resync = now_s, resync
        self.ping_s = ping_s
        self.connected = asyncio.Event()
        self.connects = 0
        self._logged: dict[str, float] = {}

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"OkxPrivateStream({self.url})"

    async def _session(self, stop: asyncio.Event) -> None:
        async with self.http.ws_connect(self.url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            await ws.send_json(websocket_login(self._key, self._secret, self._passphrase, self.now_s()))
            reply = await self._event(ws, [])
            if reply.get("event") != "login" or str(reply.get("code", "0")) != "0":
                code, text = str(reply.get("code", "")), str(reply.get("msg", ""))
                raise StreamRefused(Refused("okx", code, f"private stream login: {text}",
                                            WS_CODE_KINDS.get(code, "other"), "/ws/v5/private"))
            await self._subscribe_and_listen(ws, stop, {"id": "sub", "op": "subscribe", "args": list(CHANNELS)},
                                             {c["channel"] for c in CHANNELS})

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        receive: asyncio.Future | None = None
        pinged = False
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, stopper}, timeout=self.ping_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    return
                if not done:  # silent for ping_s
                    if pinged:
                        raise ConnectionError(f"private stream: no pong within {self.ping_s:.0f} s")
                    await ws.send_str("ping")
                    pinged = True
                    continue
                message, receive, pinged = receive.result(), None, False
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"private stream closed ({message.type.name})")
                if message.data == "pong":
                    continue
                try:
                    data = json.loads(message.data)
                except ValueError:
                    data = message.data  # not JSON: parse_private counts it as skipped
                if isinstance(data, dict) and "event" in data:
                    self._on_event(data)
                else:
                    await self.on_message(data)
        finally:
            stopper.cancel()
            if receive is not None:
                receive.cancel()

    def _on_event(self, event: dict) -> None:
        if event.get("event") == "notice":  # 64008: closing soon for a service upgrade
            raise ConnectionError(f"private stream notice {event.get('code')}: {event.get('msg')}")
        if event.get("event") in ("error", "channel-conn-count-error"):
            self._log(f"event {event.get('code')}", "OKX private stream: %s %s: %s", event.get("event"),
                      event.get("code"), event.get("msg"))
