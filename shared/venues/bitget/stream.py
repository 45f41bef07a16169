"""Bitget V2 private stream (protocol-trading-okx-bitget-binance.md §3.5): `BitgetPrivateStream`.

One session: connect; log in (ts in epoch *seconds*, signed over ts + "GET" + "/user/verify";
the answer's `code` is the number 0 live, "0" or "00000" in other copies: all are success);
subscribe to `orders`, `positions` and `fill` (instId "default": every symbol) and `account`
(coin "default"), all of the product type (`USDT-FUTURES`, or the demo's `SUSDT-FUTURES`); once
every channel is acknowledged, `connected` is set, `connects` counted and `on_connected`
awaited (the caller catches up by REST: `orders` pushes no snapshot, and Bitget says pushes
can be lost), then the messages that came meanwhile and every later one go to `on_message` as
parsed JSON (a frame that is not JSON as its text, for parse_private to skip).

The text `ping` goes out every `ping_s` (25 s: Bitget drops a connection that sent none for
30 s in one copy of its page, 2 min in another) whatever else arrives; no `pong` within another
`ping_s` and the session is dropped.

`run` (shared/venues/trading.py) reconnects with a doubling backoff (0.2 s to 10 s, back to 0.2 s after
a session that lasted a minute). A login
refused for the key (unknown key, wrong passphrase, bad signature, or Bitget's bare 30005
"login failed") raises `Refused` out of `run` with kind unknown_key / bad_signature /
permission: no retry helps, the executor halts with a config error. A timestamp refusal
re-measures the clock and tries again; a rate limit waits up to a minute, logged at most once
a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from shared.venues.bitget.client import CODE_KINDS
from shared.venues.bitget.signing import websocket_login
from shared.venues.trading import Kind, OnMessage, PrivateStream, Refused, StreamRefused

# Bitget's WS error codes (its "Websocket Error Code" table; not in the reference: UNSURE) as refusal
# kinds; a login error with another code counts as the key refused (the reference gives only 30005)
WS_CODE_KINDS: dict[str, Kind] = {
    "30005": "unknown_key", "30011": "unknown_key", "30012": "unknown_key", "30013": "timestamp",
    "30014": "timestamp", "30015": "bad_signature", "30006": "rate_limit", "30007": "rate_limit",
}
PING_S = 25.0


def channels(inst_type: str) -> list[dict]:
    return [{"instType": inst_type, "channel": "orders", "instId": "default"},
            {"instType": inst_type, "channel": "positions", "instId": "default"},
            {"instType": inst_type, "channel": "account", "coin": "default"},
            {"instType": inst_type, "channel": "fill", "instId": "default"}]


def login_ok(code: object) -> bool:
    return str(code) in ("0", "00000")


def login_kind(code: str) -> Kind:
    return WS_CODE_KINDS.get(code) or CODE_KINDS.get(code) or "unknown_key"


class BitgetPrivateStream(PrivateStream):
    """The authenticated private WebSocket; `run` keeps it connected until `stop`."""

    label = "Bitget private stream"
    log = logging.getLogger("arb.bitget.stream")

    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str, api_secret: str, passphrase: str,
                 on_message: OnMessage, on_connected: Callable[[], Awaitable[None]], inst_type: str = "USDT-FUTURES",
                 now_s: Callable[[], int] = lambda: int(time.time()),
                 resync: Callable[[], Awaitable[object]] | None = None, ping_s: float = PING_S) -> None:
        self.http, self.url = http, url
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.on_message, self.on_connected = on_message, on_connected
        self.inst_type = inst_type
        self.now_s, self.resync = now_s, resync
        self.ping_s = ping_s
        self.connected = asyncio.Event()
        self.connects = 0
        self.pongs = 0  # pongs heard: the heartbeat works
        self._logged: dict[str, float] = {}

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"BitgetPrivateStream({self.url})"

    async def _session(self, stop: asyncio.Event) -> None:
        async with self.http.ws_connect(self.url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            await ws.send_json(websocket_login(self._key, self._secret, self._passphrase, self.now_s()))
            reply = await self._event(ws, [])
            if reply.get("event") != "login" or not login_ok(reply.get("code")):
                code, text = str(reply.get("code", "")), str(reply.get("msg", ""))
                raise StreamRefused(Refused("bitget", code, f"private stream login: {text}", login_kind(code),
                                            "/v2/ws/private"))
            subscriptions = channels(self.inst_type)
            await self._subscribe_and_listen(ws, stop, {"op": "subscribe", "args": subscriptions},
                                             {a["channel"] for a in subscriptions})

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        stopper = asyncio.ensure_future(stop.wait())
        receive: asyncio.Future | None = None
        next_ping = loop.time() + self.ping_s
        pong_due: float | None = None  # a ping is out: its pong must come by then
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(ws.receive())
                now = loop.time()
                if pong_due is not None and now >= pong_due:
                    raise ConnectionError(f"private stream: no pong within {self.ping_s:.0f} s")
                if now >= next_ping:
                    await ws.send_str("ping")
                    next_ping = now + self.ping_s
                    if pong_due is None:
                        pong_due = now + self.ping_s
                deadline = min(next_ping, pong_due if pong_due is not None else next_ping)
                await asyncio.wait({receive, stopper}, timeout=max(0.0, deadline - loop.time()),
                                   return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    return
                if not receive.done():
                    continue
                message, receive = receive.result(), None
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"private stream closed ({message.type.name})")
                if message.data == "pong":
                    pong_due = None
                    self.pongs += 1
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
        if event.get("event") == "error":
            self._log(f"event {event.get('code')}", "Bitget private stream: error %s: %s", event.get("code"),
                      event.get("msg"))
