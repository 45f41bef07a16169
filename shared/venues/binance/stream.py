"""Binance USD-M user-data stream (protocol-trading-okx-bitget-binance.md §4.5): `BinancePrivateStream`.

One session: `POST /fapi/v1/listenKey` (the API key alone; Binance answers the account's active
key, extended by 60 minutes, or a new one), connect `<ws_url>/private/ws?listenKey=<key>`,
then `connected` is set, `connects` counted and `on_connected` awaited (the caller catches up
by REST), and every event goes to `on_message` as parsed JSON (a frame that is not JSON as its
text, for parse_private to skip). No `events=` filter is sent: it is an allow list, and with
one the `listenKeyExpired` event is not received (§4.5; NT connects without it too).

- Every `keepalive_s` (30 min; the key lives 60) `PUT /fapi/v1/listenKey` extends the key. A
  keepalive refused (-1125: the key is gone) or unanswered, or a `listenKeyExpired` event,
  ends the session: the next one asks for a key again (a new one when the old has expired).
- Binance pings every 3 minutes; aiohttp answers (autoping). Our own ping every `heartbeat_s`
  drops a connection that stopped answering. A connection lives at most 24 h at Binance.
- `run` (shared/venues/trading.py) reconnects with a doubling backoff (0.2 s to 10 s, back to
  0.2 s after a session that lasted a minute). The listenKey refused for the key (-2014/-2015:
  wrong key, environment, IP or permission) raises `Refused` out of `run` (kind unknown_key): no
  retry helps, the caller stops with a config error. Any other refusal is tried again after up
  to a minute, logged at most once a minute.
The API key and the listenKey (which reads the account's events) are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import yarl

from shared.venues.binance.client import BinanceRest
from shared.venues.trading import OnMessage, OutcomeUnknown, PrivateStream, Refused, StreamRefused

LISTEN_KEY_PATH = "/fapi/v1/listenKey"
KEEPALIVE_S = 30 * 60.0
HEARTBEAT_S = 60.0


class BinancePrivateStream(PrivateStream):
    """The user-data stream kept connected (with its listenKey kept alive) until `stop`."""

    label = "Binance user-data stream"
    key_hint = "check the API key (its environment, IP whitelist and permissions)"
    log = logging.getLogger("arb.binance.stream")

    def __init__(self, http: aiohttp.ClientSession, ws_url: str, rest: BinanceRest, on_message: OnMessage,
                 on_connected: Callable[[], Awaitable[None]], keepalive_s: float = KEEPALIVE_S,
                 heartbeat_s: float | None = HEARTBEAT_S) -> None:
        self.http, self.ws_url, self.rest = http, ws_url.rstrip("/"), rest
        self.on_message, self.on_connected = on_message, on_connected
        self.keepalive_s, self.heartbeat_s = keepalive_s, heartbeat_s
        self.connected = asyncio.Event()
        self.connects = 0
        self.keys_asked = 0  # listenKeys asked for (POST), one per session
        self.keepalives = 0
        self._logged: dict[str, float] = {}

    def __repr__(self) -> str:  # never the key or the listenKey
        return f"BinancePrivateStream({self.ws_url}/private/ws)"

    async def listen_key(self) -> str:
        """The account's listenKey (POST: the active one extended, or a new one)."""
        self.keys_asked += 1
        answer = await self.rest.request("POST", LISTEN_KEY_PATH, signed=False, key_only=True)
        key = answer.get("listenKey") if isinstance(answer, dict) else None
        if not isinstance(key, str) or not key:
            raise ConnectionError("POST /fapi/v1/listenKey answered no listenKey")
        return key

    async def _session(self, stop: asyncio.Event) -> None:
        try:
            key = await self.listen_key()
        except Refused as exc:
            raise StreamRefused(exc) from None
        url = yarl.URL(f"{self.ws_url}/private/ws").with_query({"listenKey": key})
        async with self.http.ws_connect(url, heartbeat=self.heartbeat_s, autoping=True,
                                        timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            self.connects += 1
            self.connected.set()
            await self.on_connected()
            await self._listen(ws, stop)

    async def _keepalive(self) -> None:
        """Extend the listenKey; ConnectionError (a new key and a new connection) when that fails."""
        try:
            await self.rest.request("PUT", LISTEN_KEY_PATH, signed=False, key_only=True)
        except (Refused, OutcomeUnknown) as exc:
            raise ConnectionError(f"listenKey keepalive failed ({exc}): a new key") from None
        self.keepalives += 1

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        receive: asyncio.Future | None = None
        keepalive_at = time.monotonic() + self.keepalive_s
        try:
            while True:
                if receive is None:
                    receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, stopper}, timeout=max(0.0, keepalive_at - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper.done():
                    return
                if not done or time.monotonic() >= keepalive_at:  # due, however busy the stream
                    await self._keepalive()
                    keepalive_at = time.monotonic() + self.keepalive_s
                    if not done:
                        continue
                message, receive = receive.result(), None
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"user-data stream closed ({message.type.name})")
                try:
                    data = json.loads(message.data)
                except ValueError:
                    data = message.data  # not JSON: parse_private counts it as skipped
                if isinstance(data, dict) and data.get("e") == "listenKeyExpired":
                    raise ConnectionError("the listenKey expired: a new key")
                await self.on_message(data)
        finally:
            stopper.cancel()
            if receive is not None:
                receive.cancel()
