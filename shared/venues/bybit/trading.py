"""Bybit V5 trading: the signed REST client and the private stream (protocol-bybit-v5.md §4-6).

REST (`BybitTrading`):
- every request is signed (signing.py) with the local clock plus the offset to Bybit's
  (`/v5/market/time`, measured at start and again after a 10002);
- each endpoint has its own rolling one-second budget (10/s for order create, amend and
  cancel, 50/s for the rest, as Bybit's per-UID limits), waited for before sending;
- 10006 ("Too many visits!") waits until `X-Bapi-Limit-Reset-Timestamp` and tries again, at
  most 3 times; 10002 re-measures the clock offset and tries once more;
- any other non-zero retCode raises `BybitApiError` with Bybit's code and text; a timeout, a
  dropped connection or an HTTP 5xx raises `BybitUnreachable`: the request may or may not
  have been carried out, so an order create must be looked up by its orderLinkId.
The key and secret are never logged or put in an error.

Private stream (`PrivateStream`): auth (HMAC over "GET/realtime" + expires), subscribe to
order, execution and position, a ping every 20 s; every message goes to a callback;
reconnects with backoff and calls `on_connected` each time (the caller catches up by REST).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp

from shared.venues.bybit.signing import DEFAULT_RECV_WINDOW_MS, auth_headers, websocket_auth_signature

log = logging.getLogger("arb.bybit")
LIMITS_PER_S = {"/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/order/cancel-all": 10,
                "/v5/account/fee-rate": 5}
DEFAULT_LIMIT_PER_S = 50
RATE_LIMIT_RETRIES = 3
TIMEOUT = aiohttp.ClientTimeout(total=5)


class BybitApiError(Exception):
    """Bybit answered with a non-zero retCode."""

    def __init__(self, code: int, message: str, path: str) -> None:
        super().__init__(f"{path}: Bybit {code}: {message}")
        self.code = code
        self.message = message


class BybitUnreachable(Exception):
    """No answer (timeout, connection lost, HTTP 5xx): the request's outcome is unknown."""


class Budget:
    """Rolling one-second request budgets per endpoint (pure but for the sleep).

    The window is `margin_s` longer than Bybit's second: a request counted here reaches Bybit
    a little later, by how busy this process and the link are, so two requests counted a
    second apart can arrive closer. The reliability suite's bursts (item 6) measured 12-13
    creates arriving within one of Bybit's seconds with no margin."""

    def __init__(self, limits: dict[str, int] | None = None, clock: Callable[[], float] = time.monotonic,
                 margin_s: float = 0.1) -> None:
        self.limits = limits or LIMITS_PER_S
        self.clock = clock
        self.window_s = 1.0 + margin_s
        self._sent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def delay(self, path: str) -> float:
        """Seconds to wait before `path` may be sent (0 when it may go now, and it is counted)."""
        now = self.clock()
        sent = self._sent.setdefault(path, deque())
        while sent and sent[0] <= now - self.window_s:
            sent.popleft()
        wait = self._blocked_until.get(path, 0.0) - now
        if len(sent) >= self.limits.get(path, DEFAULT_LIMIT_PER_S):
            wait = max(wait, sent[0] + self.window_s - now)
        if wait > 0:
            return wait
        sent.append(now)
        return 0.0

    def block(self, path: str, seconds: float) -> None:
        self._blocked_until[path] = max(self._blocked_until.get(path, 0.0), self.clock() + seconds)


class BybitTrading:
    def __init__(self, http: aiohttp.ClientSession, rest_url: str, api_key: str, api_secret: str,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS, budget: Budget | None = None) -> None:
        self.http = http
        self.rest_url = rest_url.rstrip("/")
        self._key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.budget = budget or Budget()
        self.offset_ms = 0  # Bybit's clock minus ours
        self.counts: dict[str, int] = {}

    def __repr__(self) -> str:  # never the key or secret
        return f"BybitTrading({self.rest_url})"

    async def sync_time(self) -> int:
        """Measure Bybit's clock against ours (the midpoint of the round trip); the offset in ms."""
        sent = time.time()
        async with self.http.get(f"{self.rest_url}/v5/market/time", timeout=TIMEOUT) as response:
            body = await response.json(content_type=None)
        received = time.time()
        server_ms = int(body["result"]["timeNano"]) // 1_000_000
        self.offset_ms = server_ms - int((sent + received) / 2 * 1000)
        return self.offset_ms

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def request(self, method: str, path: str, params: dict, on_send: Callable[[], None] | None = None) -> dict:
        """Bybit's `result` for a signed request; BybitApiError / BybitUnreachable otherwise.
        `on_send` is called as the request goes out (after any wait for the rate limit)."""
        resynced = False
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            while (wait := self.budget.delay(path)) > 0:
                await asyncio.sleep(wait)
            if on_send is not None:
                on_send()
                on_send = None
            code, message, result, headers = await self.send(method, path, params)
            if code == 0:
                return result
            if code == 10006 and attempt < RATE_LIMIT_RETRIES:
                self._count("rate_limited")
                reset_ms = int(headers.get("X-Bapi-Limit-Reset-Timestamp") or 0)
                wait = max(0.05, (reset_ms - (time.time() * 1000 + self.offset_ms)) / 1000)
                log.warning("%s: rate limited by Bybit; waiting %.0f ms", path, wait * 1000)
                self.budget.block(path, wait)
                continue
            if code == 10002 and not resynced:
                self._count("clock_resyncs")
                resynced = True
                offset = await self.sync_time()
                log.warning("%s: Bybit refused our timestamp; clock offset re-measured: %d ms", path, offset)
                continue
            raise BybitApiError(code, message, path)
        raise BybitApiError(10006, "Too many visits! (still limited after retries)", path)

    async def send(self, method: str, path: str, params: dict) -> tuple[int, str, dict, dict]:
        """One signed request, answered as it is: (retCode, retMsg, result, rate-limit headers);
        BybitUnreachable when there is no answer. No retry (`request` retries)."""
        timestamp = int(time.time() * 1000) + self.offset_ms
        if method == "GET":
            payload = urlencode(params)
            url, data = f"{self.rest_url}{path}?{payload}", None
        else:
            payload = data = json.dumps(params, separators=(",", ":"))
            url = f"{self.rest_url}{path}"
        headers = auth_headers(self._key, self._secret, timestamp, payload, self.recv_window_ms)
        headers["Content-Type"] = "application/json"
        try:
            async with self.http.request(method, url, data=data, headers=headers, timeout=TIMEOUT) as response:
                if response.status >= 500:
                    raise BybitUnreachable(f"{method} {path}: HTTP {response.status}")
                body = await response.json(content_type=None)
                limit_headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-bapi-limit")}
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise BybitUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict) or "retCode" not in body:
            raise BybitUnreachable(f"{method} {path}: HTTP {response.status} without a Bybit envelope")
        return int(body["retCode"]), str(body.get("retMsg", "")), body.get("result") or {}, limit_headers

    # ------------------------------------------------------------------ endpoints

    async def create_order(self, params: dict, on_send: Callable[[], None] | None = None) -> dict:
        return await self.request("POST", "/v5/order/create", {"category": "linear", **params}, on_send)

    async def cancel_order(self, symbol: str, link_id: str) -> dict:
        return await self.request("POST", "/v5/order/cancel",
                                  {"category": "linear", "symbol": symbol, "orderLinkId": link_id})

    async def order(self, symbol: str, link_id: str) -> dict | None:
        """The order with this orderLinkId, open or recently closed, or None."""
        result = await self.request("GET", "/v5/order/realtime",
                                    {"category": "linear", "symbol": symbol, "orderLinkId": link_id})
        orders = result.get("list") or []
        return orders[0] if orders else None

    async def executions(self, symbol: str, link_id: str) -> list[dict]:
        result = await self.request("GET", "/v5/execution/list",
                                    {"category": "linear", "symbol": symbol, "orderLinkId": link_id, "limit": "100"})
        return result.get("list") or []

    async def open_orders(self) -> list[dict]:
        result = await self.request("GET", "/v5/order/realtime", {"category": "linear", "settleCoin": "USDT",
                                                                  "limit": "50"})
        return result.get("list") or []

    async def positions(self) -> list[dict]:
        result = await self.request("GET", "/v5/position/list", {"category": "linear", "settleCoin": "USDT",
                                                                 "limit": "200"})
        return result.get("list") or []

    async def key_problems(self) -> list[str]:
        """What makes this API key unsafe to trade with (`/v5/user/query-api`): a permission to
        move funds, or no IP binding. Empty when it is fine."""
        return key_problems(await self.request("GET", "/v5/user/query-api", {}))

    async def hedge_mode(self, symbol: str) -> None:
        """Both sides of `symbol` as separate positions (positionIdx 1 and 2)."""
        with contextlib.suppress(BybitApiError):  # 110025: already in that mode
            await self.request("POST", "/v5/position/switch-mode", {"category": "linear", "symbol": symbol,
                                                                   "mode": 3})


async def min_notional(http: aiohttp.ClientSession, rest_url: str) -> dict[str, Decimal]:
    """Each linear symbol's minimum order value in USDT (`lotSizeFilter.minNotionalValue`)."""
    out: dict[str, Decimal] = {}
    cursor = ""
    while True:
        params = {"category": "linear", "limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{rest_url.rstrip('/')}/v5/market/instruments-info", params=params,
                            timeout=TIMEOUT) as response:
            body = await response.json(content_type=None)
        result = body.get("result") or {}
        for row in result.get("list") or []:
            value = (row.get("lotSizeFilter") or {}).get("minNotionalValue")
            if value:
                out[row["symbol"]] = Decimal(value)
        cursor = result.get("nextPageCursor") or ""
        if not cursor:
            return out


OnMessage = Callable[[dict], Awaitable[None]]


def key_problems(info: dict) -> list[str]:
    """Reliability notes, section 3: refuse a key with Wallet permissions or bound to no IP."""
    problems = []
    if wallet := (info.get("permissions") or {}).get("Wallet"):
        problems.append(f"it may move funds (Wallet permission: {', '.join(wallet)})")
    if not info.get("ips") or "*" in info.get("ips", []):
        problems.append("it is bound to no IP address (ips: *)")
    return problems


class PrivateStream:
    """The authenticated private WebSocket; `run` keeps it connected until `stop`."""

    def __init__(self, http: aiohttp.ClientSession, url: str, api_key: str, api_secret: str, on_message: OnMessage,
                 on_connected: Callable[[], Awaitable[None]], topics=("order", "execution", "position"),
                 ping_s: float = 20.0) -> None:
        self.http, self.url = http, url
        self._key, self._secret = api_key, api_secret
        self.on_message, self.on_connected = on_message, on_connected
        self.topics = list(topics)
        self.ping_s = ping_s
        self.connected = asyncio.Event()
        self.connects = 0

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.2
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError) as exc:
                log.warning("private stream: %s; reconnecting in %.1f s", exc, delay)
            self.connected.clear()
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * (0.5 + random.random()))
            delay = min(delay * 2, 10.0)

    async def _session(self, stop: asyncio.Event) -> None:
        async with self.http.ws_connect(self.url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            expires = int(time.time() * 1000) + 5_000
            await ws.send_json({"req_id": "auth", "op": "auth",
                                "args": [self._key, expires, websocket_auth_signature(self._secret, expires)]})
            reply = await ws.receive_json(timeout=10)
            if not reply.get("success"):
                raise ConnectionError(f"private stream auth refused: {reply.get('ret_msg')}")
            await ws.send_json({"req_id": "sub", "op": "subscribe", "args": self.topics})
            reply = await ws.receive_json(timeout=10)
            if not reply.get("success"):
                raise ConnectionError(f"private stream subscribe refused: {reply.get('ret_msg')}")
            self.connects += 1
            self.connected.set()
            await self.on_connected()
            pinger = asyncio.ensure_future(self._ping(ws))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                while True:
                    receive = asyncio.ensure_future(ws.receive(timeout=self.ping_s * 2))
                    await asyncio.wait({receive, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if stopper.done():
                        receive.cancel()
                        return
                    message = receive.result()
                    if message.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"private stream closed ({message.type.name})")
                    data = json.loads(message.data)
                    if "topic" in data:
                        await self.on_message(data)
            finally:
                pinger.cancel()
                stopper.cancel()

    async def _ping(self, ws) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            await ws.send_json({"req_id": "ping", "op": "ping"})
