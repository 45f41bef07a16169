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

`BybitTrading` is Bybit on the trading interface (shared/venues/trading.py): canonical orders,
fills, positions and funding, refusals as kinds (`KIND`), `BybitUnreachable` an outcome unknown.

Private stream (`BybitPrivateStream`): auth (HMAC over "GET/realtime" + expires), subscribe to
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
from collections.abc import Awaitable, Callable
from decimal import Decimal
from urllib.parse import urlencode

import aiohttp

from shared.venues.bybit.signing import DEFAULT_RECV_WINDOW_MS, auth_headers, websocket_auth_signature
from shared.venues.trading import (
    BadRow,
    BalanceUpdate,
    FillUpdate,
    FundingUpdate,
    Kind,
    OrderSpec,
    OrderUpdate,
    OutcomeUnknown,
    PositionUpdate,
    Refused,
    Status,
    StreamUpdate,
    VenueTrading,
    decimal_field,
    text_field,
)
from shared.venues.trading import Budget as RateBudget
from shared.venues.trading import PrivateStream as PrivateStreamBase

log = logging.getLogger("arb.bybit")
LIMITS_PER_S = {"/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/order/cancel-all": 10,
                "/v5/account/fee-rate": 5}
DEFAULT_LIMIT_PER_S = 50
RATE_LIMIT_RETRIES = 3
TIMEOUT = aiohttp.ClientTimeout(total=5)


# Bybit's retCodes as the executor's kinds (protocol-bybit-v5.md section 5.4); others are "other"
KIND: dict[int, Kind] = {
    110004: "insufficient_margin", 110007: "insufficient_margin", 110012: "insufficient_margin",
    110072: "duplicate", 110094: "below_minimum", 110001: "not_found", 110008: "too_late", 110010: "too_late",
    10002: "timestamp", 10004: "bad_signature", 10003: "unknown_key", 10005: "permission", 10010: "permission",
    10006: "rate_limit", 110017: "reduce_only", 10001: "invalid", 110003: "invalid",
}
CLOSED: dict[str, Status] = {"Cancelled": "cancelled", "Rejected": "rejected", "Deactivated": "cancelled",
                             "PartiallyFilledCanceled": "cancelled", "Filled": "filled"}


class BybitApiError(Refused):
    """Bybit answered with a non-zero retCode (`code`, an int here)."""

    def __init__(self, code: int, message: str, path: str) -> None:
        super().__init__("bybit", str(code), message, KIND.get(code, "other"), path)
        self.code = code  # type: ignore[assignment]


class BybitUnreachable(OutcomeUnknown):
    """No answer (timeout, connection lost, HTTP 5xx): the request's outcome is unknown."""


def bybit_budget(limits: dict[str, int] | None = None, clock: Callable[[], float] = time.monotonic,
                 margin_s: float = 0.1) -> RateBudget:
    """Bybit's rolling one-second budgets per endpoint (per UID)."""
    return RateBudget(limits or LIMITS_PER_S, DEFAULT_LIMIT_PER_S, 1.0, clock, margin_s)


class BybitTrading(VenueTrading):
    venue = "bybit"
    order_rate = (LIMITS_PER_S["/v5/order/create"], 1.0)
    funding_on_stream = True  # execType=Funding executions

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, api_key: str, api_secret: str,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS, budget: RateBudget | None = None,
                 ws_url: str = "") -> None:
        self.http = http
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url
        self.min_notional: dict[str, Decimal] = {}  # symbol -> minimum order value (load_min_notional)
        self._key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.budget = budget or bybit_budget()
        self.offset_ms = 0  # Bybit's clock minus ours
        self.counts: dict[str, int] = {}

    def __repr__(self) -> str:  # never the key or secret
        return f"BybitTrading({self.rest_url})"

    @classmethod
    def for_account(cls, http, rest_url: str, ws_url: str, credentials: tuple[str, ...], instruments: list,
                    demo: bool, **options) -> BybitTrading:
        key, secret = credentials
        return cls(http, rest_url, key, secret, ws_url=ws_url)

    async def prepare(self) -> None:
        await self.load_min_notional()

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
            await self.budget.admit(path)
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

    # ------------------------------------------------------------------ the trading interface

    async def place(self, spec: OrderSpec, on_send: Callable[[], None] | None = None) -> str:
        floor = self.min_notional.get(spec.symbol)
        if floor and spec.price is not None and spec.qty * spec.price < floor and not spec.reduce_only:
            raise Refused("bybit", "min_notional", f"below Bybit's minimum notional {floor} USDT", "below_minimum")
        result = await self.request("POST", "/v5/order/create", {"category": "linear", **order_params(spec)}, on_send)
        return str(result.get("orderId", ""))

    async def cancel(self, symbol: str, link_id: str) -> None:
        await self.request("POST", "/v5/order/cancel", {"category": "linear", "symbol": symbol, "orderLinkId": link_id})

    async def order(self, symbol: str, link_id: str) -> OrderUpdate | None:
        """The order with this orderLinkId, open or recently closed, or None; BadRow for an
        answer that is not one."""
        result = await self.request("GET", "/v5/order/realtime",
                                    {"category": "linear", "symbol": symbol, "orderLinkId": link_id})
        orders = result.get("list") or []
        return order_update(orders[0]) if orders else None

    async def fills(self, symbol: str, link_id: str) -> list[FillUpdate]:
        """The order's trade executions, oldest first; a malformed one is left out and logged."""
        result = await self.request("GET", "/v5/execution/list",
                                    {"category": "linear", "symbol": symbol, "orderLinkId": link_id, "limit": "100"})
        out = []
        for row in reversed(result.get("list") or []):
            try:
                if isinstance(row, dict) and row.get("execType") == "Trade":
                    out.append(fill_update(row))
            except BadRow as exc:
                log.warning("skipped a malformed execution of %s (%s)", link_id, exc)
        return out

    async def open_orders(self) -> list[OrderUpdate]:
        result = await self.request("GET", "/v5/order/realtime", {"category": "linear", "settleCoin": "USDT",
                                                                  "limit": "50"})
        return [order_update(row) for row in result.get("list") or []]

    async def positions(self) -> list[PositionUpdate]:
        result = await self.request("GET", "/v5/position/list", {"category": "linear", "settleCoin": "USDT",
                                                                 "limit": "200"})
        out = []
        for p in result.get("list") or []:
            size = Decimal(p.get("size") or "0")
            if size:
                idx = int(p.get("positionIdx", 0))
                out.append(PositionUpdate(p["symbol"], size if p.get("side") == "Buy" else -size,
                                          {1: "long", 2: "short"}.get(idx)))  # type: ignore[arg-type]
        return out

    async def balance(self) -> BalanceUpdate:
        result = await self.request("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"})
        account = (result.get("list") or [{}])[0]
        coin = next((c for c in account.get("coin") or [] if c.get("coin") == "USDT"), {})
        equity = Decimal(coin.get("equity") or account.get("totalEquity") or "0")
        available = Decimal(account.get("totalAvailableBalance") or coin.get("walletBalance") or "0")
        return BalanceUpdate("USDT", equity, available)

    async def ensure_position_mode(self, symbols: list[str]) -> None:
        """Both sides of each symbol as separate positions (positionIdx 1 and 2): a synthetic
        trade's two legs, or two cross trades in opposite directions, never net."""
        for symbol in symbols:
            with contextlib.suppress(BybitApiError):  # 110025: already in that mode
                await self.request("POST", "/v5/position/switch-mode", {"category": "linear", "symbol": symbol,
                                                                       "mode": 3})

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        try:
            await self.request("POST", "/v5/position/set-leverage", {
                "category": "linear", "symbol": symbol, "buyLeverage": str(leverage), "sellLeverage": str(leverage)})
        except BybitApiError as exc:
            if exc.code != 110043:  # leverage not modified: it is that already
                raise

    async def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        result = await self.request("GET", "/v5/account/fee-rate", {"category": "linear", "symbol": symbol})
        row = (result.get("list") or [{}])[0]
        return Decimal(row.get("makerFeeRate") or "0.0002"), Decimal(row.get("takerFeeRate") or "0.00055")

    async def funding_payments(self, since_ms: int) -> list[FundingUpdate]:
        result = await self.request("GET", "/v5/execution/list", {"category": "linear", "execType": "Funding",
                                                                  "startTime": str(since_ms), "limit": "100"})
        return [funding_update(row) for row in reversed(result.get("list") or [])]

    async def key_problems(self) -> list[str]:
        """What makes this API key unsafe to trade with (`/v5/user/query-api`): a permission to
        move funds, or no IP binding. Empty when it is fine."""
        return key_problems(await self.request("GET", "/v5/user/query-api", {}))

    def parse_private(self, message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
        return parse_private(message)

    def private_stream(self, on_message, on_connected) -> BybitPrivateStream:
        return BybitPrivateStream(self.http, self.ws_url, self._key, self._secret, on_message, on_connected)

    async def load_min_notional(self) -> None:
        self.min_notional = await min_notional(self.http, self.rest_url)

    # the low-level calls the validation and the tests use
    async def create_order(self, params: dict, on_send: Callable[[], None] | None = None) -> dict:
        return await self.request("POST", "/v5/order/create", {"category": "linear", **params}, on_send)

    async def cancel_order(self, symbol: str, link_id: str) -> dict:
        return await self.request("POST", "/v5/order/cancel",
                                  {"category": "linear", "symbol": symbol, "orderLinkId": link_id})


def order_params(spec: OrderSpec) -> dict:
    """An order as `/v5/order/create`'s parameters (a market order runs as IOC)."""
    params = {"symbol": spec.symbol, "side": spec.side, "orderType": "Market" if spec.price is None else "Limit",
              "qty": str(spec.qty), "orderLinkId": spec.link_id,
              "positionIdx": {"long": 1, "short": 2}.get(spec.position_side or "", 0)}
    if spec.price is not None:
        params.update(price=str(spec.price), timeInForce={"post_only": "PostOnly"}.get(spec.tif, spec.tif))
    else:
        params["timeInForce"] = "IOC"
    if spec.reduce_only:
        params["reduceOnly"] = True
    return params


def order_update(row: object) -> OrderUpdate:
    """An order row (REST or stream) as an OrderUpdate; BadRow when it lacks what one needs."""
    if not isinstance(row, dict):
        raise BadRow("not an object")
    status_text = row.get("orderStatus")
    status = CLOSED.get(status_text, "open") if isinstance(status_text, str) else "open"
    cum = decimal_field(row, "cumExecQty") if row.get("cumExecQty") else Decimal(0)
    reason = str(row.get("rejectReason") or row.get("cancelType") or "") if status in ("cancelled", "rejected") else ""
    return OrderUpdate(text_field(row, "orderLinkId"), str(row.get("orderId", "")), str(row.get("symbol", "")), status,
                       cum, reason)


def fill_update(row: dict) -> FillUpdate:
    """A Trade execution; BadRow unless it holds a quantity and a price > 0 and a fee (a rebate is < 0)."""
    exec_time = row.get("execTime")
    return FillUpdate(text_field(row, "orderLinkId"), text_field(row, "execId"), str(row.get("symbol", "")),
                      decimal_field(row, "execQty", positive=True), decimal_field(row, "execPrice", positive=True),
                      decimal_field(row, "execFee", low=None), row.get("isMaker") is True,
                      int(exec_time) if isinstance(exec_time, str) and exec_time.isdigit() else 0)


def funding_update(row: dict) -> FundingUpdate:
    """A Funding execution: Bybit's execFee is what the position paid (< 0: received)."""
    side = row.get("side")
    if side not in ("Buy", "Sell"):
        raise BadRow(f"side={side!r}")
    exec_time = row.get("execTime")
    return FundingUpdate(text_field(row, "execId"), text_field(row, "symbol"), side,
                         decimal_field(row, "execFee", low=None),
                         int(exec_time) if isinstance(exec_time, str) and exec_time.isdigit() else 0)


def parse_private(message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
    """A private-stream message (order, execution, position, wallet) as updates, and the rows
    skipped as malformed."""
    topic = message.get("topic") if isinstance(message, dict) else None
    rows = message.get("data") if isinstance(message, dict) else None
    if not isinstance(topic, str) or not isinstance(rows, list):
        return [], [("message", "no topic or no data list", message)]
    topic = topic.split(".")[0]
    out: list[StreamUpdate] = []
    skipped: list[tuple[str, str, object]] = []
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise BadRow("not an object")
            if topic == "execution" and row.get("execType") == "Funding":
                out.append(funding_update(row))
            elif topic == "execution" and row.get("execType") == "Trade":
                out.append(fill_update(row))
            elif topic == "order":
                out.append(order_update(row))
        except BadRow as exc:
            skipped.append((topic, str(exc), row))
    return out, skipped


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


class BybitPrivateStream(PrivateStreamBase):
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
