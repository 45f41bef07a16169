"""Binance USD-M signed REST (protocol-trading-okx-bitget-binance.md §4.2-4.4): `BinanceRest`,
and what Binance's codes mean to the executor (`CODE_KINDS`).

- Every signed request carries `X-MBX-APIKEY`, its parameters in the query string with
  `recvWindow` and `timestamp` (our clock plus the offset to Binance's, measured on
  `/fapi/v1/time` by `sync_time` and again after a -1021) and the hex signature last
  (signing.py). The listenKey endpoints send the key alone; public ones nothing.
- Limits: 2400 request weight a minute per IP, 300 orders per 10 s and 1200 a minute per
  account. Every answer's `X-MBX-USED-WEIGHT-1M`, `X-MBX-ORDER-COUNT-10S` and `-1M` are read,
  and a request that would take the count past `SLOW_AT` of its limit waits for the next
  window (Binance counts in fixed windows of its clock); order creates also pass two local
  rolling budgets (the `budget` of 10 s, and one of a minute), for what the headers do not yet
  show. HTTP 429/418 and -1003/-1015/-1008 wait `Retry-After` (else a doubling wait) and try
  again, at most `RATE_LIMIT_RETRIES` times; a ban longer than `MAX_RETRY_AFTER_S` is refused.
- An error answer (`{"code": -2019, "msg": "Margin is insufficient."}` with HTTP 4xx) raises
  `Refused` with its kind (`CODE_KINDS`); HTTP 5xx (503 "Unknown error, please check your
  request or try again later." is Binance's "execution status unknown"), 408, timeouts,
  dropped connections and the codes of `OUTCOME_UNKNOWN` raise `OutcomeUnknown`.
The key and secret are never logged, shown or put in an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp
import yarl

from shared.venues.binance import signing
from shared.venues.signed_rest import SignedRest
from shared.venues.trading import Budget, Kind, OutcomeUnknown, Refused

log = logging.getLogger("arb.binance")
VENUE = "binance"

# Binance's codes [BN:error-code] as what they mean to the executor; codes not here are "other".
CODE_KINDS: dict[int, Kind] = {
    -2019: "insufficient_margin", -2018: "insufficient_margin",
    -4116: "duplicate",
    -5022: "post_only",
    -4164: "below_minimum", -4004: "below_minimum", -4023: "below_minimum", -1111: "below_minimum",
    -2013: "not_found",
    # a cancel of an order that is unknown, filled or cancelled (Binance does not say which, as
    # OKX's 51400): "too late" makes the executor look the order up and act on what it finds
    -2011: "too_late",
    -1021: "timestamp", -5028: "timestamp",
    -1022: "bad_signature",
    # -2015 "Invalid API-key, IP, or permissions for action": most often a key of the other
    # environment (a live key on demo) or a wrong key; an IP or permission cause reads in its text.
    # Either way no retry helps (KEY_REFUSED) and the operator must check the key.
    -2014: "unknown_key", -2015: "unknown_key",
    -1003: "rate_limit", -1015: "rate_limit", -1008: "rate_limit",
    -2022: "reduce_only", -4118: "reduce_only",
    -4014: "invalid",  # a price off the tick: a parameter, not a size under the minimum
    -4061: "invalid", -4015: "invalid", -4016: "invalid", -4024: "invalid", -4131: "invalid",
    -4003: "invalid", -4005: "invalid", -4067: "invalid", -4068: "invalid", -4120: "invalid",
    -1100: "invalid", -1102: "invalid", -1106: "invalid", -1116: "invalid", -1117: "invalid",
    -1121: "invalid", -1130: "invalid", -1131: "invalid", -4028: "invalid", -2025: "invalid",
    -5021: "other",  # a FOK that could not fill whole: refused, nothing done
    # "no need to change": the callers take these as success
    -4059: "other", -4046: "other",
    -1125: "not_found",  # the listenKey does not exist (the stream gets a new one)
}
NO_CHANGE = frozenset({-4059, -4046})  # position side / margin type already as asked
LISTEN_KEY_GONE = -1125
# the answer does not say whether it was carried out: look the order up before anything else
OUTCOME_UNKNOWN = frozenset({-1000, -1001, -1006, -1007})
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_S = 0.5  # without a Retry-After: this, doubled after each further refusal
MAX_RETRY_AFTER_S = 30.0  # a longer ban (418) is refused at once rather than waited out here
WEIGHT_LIMIT_1M = 2400
ORDERS_10S, ORDERS_1M = 300, 1200
SLOW_AT = 0.9  # share of a limit the headers may show before requests wait for the next window
ORDER_PATH = "/fapi/v1/order"
# (header, window ms, limit): what each answer says is used of each limit
USED_HEADERS = (("x-mbx-used-weight-1m", 60_000, WEIGHT_LIMIT_1M), ("x-mbx-order-count-10s", 10_000, ORDERS_10S),
                ("x-mbx-order-count-1m", 60_000, ORDERS_1M))
# request weight of the endpoints that weigh more than 1 [BN; HB constants]
WEIGHTS = {"GET /fapi/v1/userTrades": 5, "GET /fapi/v3/positionRisk": 5, "GET /fapi/v3/balance": 5,
           "GET /fapi/v1/income": 30, "GET /fapi/v1/openOrders": 40, "GET /fapi/v1/commissionRate": 20,
           "GET /fapi/v1/exchangeInfo": 1}


def kind_of(code: int) -> Kind | None:
    """What a Binance code means (None: the outcome is unknown)."""
    return None if code in OUTCOME_UNKNOWN else CODE_KINDS.get(code, "other")


def order_budget(window_s: float = 10.0, limit: int = ORDERS_10S) -> Budget:
    """A rolling budget of order creates (all on one key, ORDER_PATH)."""
    return Budget({ORDER_PATH: limit}, limit, window_s=window_s)


class BinanceRest(SignedRest):
    """Binance's signed REST, answered as parsed JSON or raised as Refused / OutcomeUnknown."""

    time_path = "/fapi/v1/time"

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, api_key: str, api_secret: str,
                 budget: Budget | None = None, clock: Callable[[], float] = time.time, timeout_s: float = 5.0,
                 recv_window_ms: int = signing.DEFAULT_RECV_WINDOW_MS) -> None:
        if not 0 < recv_window_ms <= signing.MAX_RECV_WINDOW_MS:
            raise ValueError(f"recvWindow {recv_window_ms} ms: Binance takes 1 to {signing.MAX_RECV_WINDOW_MS}")
        super().__init__(http, rest_url, clock, timeout_s)
        self._key, self._secret = api_key, api_secret
        self.budget = budget or order_budget()
        self.minute_budget = order_budget(60.0, ORDERS_1M)
        self.recv_window_ms = recv_window_ms
        self.used: dict[str, tuple[int, int]] = {}  # header -> (count, the window it was counted in)

    def __repr__(self) -> str:  # never the key or secret
        return f"BinanceRest({self.rest_url})"

    def server_ms(self, body: bytes) -> int:
        return int(json.loads(body)["serverTime"])

    # ------------------------------------------------------------------ limits

    def room_wait_s(self, weight: int, order: bool) -> float:
        """Seconds until a request of `weight` (an order create when `order`) fits under what the
        last answers said is used of each limit; 0 when it fits now."""
        now = self.now_ms()
        wait = 0.0
        for header, window_ms, limit in USED_HEADERS:
            if header != USED_HEADERS[0][0] and not order:
                continue
            count, window = self.used.get(header, (0, -1))
            if window != now // window_ms:
                continue  # counted in an earlier window: that count is gone
            if count + (weight if header == USED_HEADERS[0][0] else 1) > limit * SLOW_AT:
                wait = max(wait, ((window + 1) * window_ms - now) / 1000 + 0.05)
        return wait

    def _read_used(self, headers: object) -> None:
        now = self.now_ms()
        for header, window_ms, _ in USED_HEADERS:
            value = headers.get(header) if headers is not None else None
            if isinstance(value, str) and value.isdigit():
                self.used[header] = (int(value), now // window_ms)

    async def _admit(self, key: str, weight: int, order: bool) -> None:
        if order:
            await self.budget.admit(ORDER_PATH)
            await self.minute_budget.admit(ORDER_PATH)
        while (wait := self.room_wait_s(weight, order)) > 0:
            self._count("slowed")
            log.info("%s: Binance's limits nearly used (%s); waiting %.1f s", key, self.used, wait)
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ requests

    async def request(self, method: str, path: str, params: dict | None = None, signed: bool = True,
                      on_send: Callable[[], None] | None = None, key_only: bool = False,
                      base: str | None = None) -> object:
        """Binance's answer (parsed JSON) to a request; Refused or OutcomeUnknown otherwise.
        `signed` adds recvWindow, timestamp and the signature; `key_only` sends the API key
        without them (listenKey). `on_send` is called as the request goes out, after any wait."""
        key = f"{method} {path}"
        order = key == f"POST {ORDER_PATH}"
        weight = WEIGHTS.get(key, 1) if not order else 0
        rate_limited, resynced = 0, False
        while True:
            await self._admit(key, weight, order)
            if on_send is not None:
                on_send()
                on_send = None
            status, code, message, body, retry_after = await self.send(method, path, params or {}, signed,
                                                                       key_only, base)
            if code is None:
                return body
            kind = kind_of(code)
            if kind is None:
                raise OutcomeUnknown(f"{key}: binance {code}: {message}")
            if kind == "rate_limit" and rate_limited < RATE_LIMIT_RETRIES:
                wait = retry_after if retry_after is not None else RATE_LIMIT_WAIT_S * 2 ** rate_limited
                if wait <= MAX_RETRY_AFTER_S:
                    self._count("rate_limited")
                    rate_limited += 1
                    log.warning("%s: rate limited by Binance (HTTP %d, %d); waiting %.1f s", path, status, code, wait)
                    await asyncio.sleep(wait)
                    continue
            if code == -1021 and not resynced:
                self._count("clock_resyncs")
                resynced = True
                offset = await self.sync_time()
                log.warning("%s: Binance refused our timestamp; clock offset re-measured: %d ms", path, offset)
                continue
            raise Refused(VENUE, str(code), message, kind, path)

    async def send(self, method: str, path: str, params: dict, signed: bool = True, key_only: bool = False,
                   base: str | None = None) -> tuple[int, int | None, str, object, float | None]:
        """One request, answered as it is: (HTTP status, Binance's error code or None, its
        message, the parsed body, Retry-After in s); OutcomeUnknown when there is no answer."""
        if signed:
            query = signing.signed_query(self._secret, params, self.now_ms(), self.recv_window_ms)
        else:
            query = "&".join(f"{k}={v}" for k, v in params.items())
        headers = {signing.API_KEY_HEADER: self._key} if signed or key_only else {}
        url = yarl.URL(f"{(base or self.rest_url).rstrip('/')}{path}{'?' + query if query else ''}", encoded=True)
        try:
            async with self.http.request(method, url, headers=headers, timeout=self.timeout) as response:
                status = response.status
                self._read_used(response.headers)
                retry_after = _seconds(response.headers.get("Retry-After"))
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        error = body if isinstance(body, dict) and isinstance(body.get("code"), int) and body["code"] < 0 else None
        if status in (429, 418):
            code = error["code"] if error else -1003
            return status, code, str((error or {}).get("msg") or f"HTTP {status}"), body, retry_after
        if error is not None and error["code"] == -1008:  # throttled, whatever the status: nothing was done
            return status, -1008, str(error.get("msg") or ""), body, retry_after
        if status >= 500 or status == 408:  # 503 "Unknown error..." is execution status unknown
            raise OutcomeUnknown(f"{method} {path}: HTTP {status}: {text[:200]}")
        if error is not None:
            return status, error["code"], str(error.get("msg") or ""), body, retry_after
        if status >= 400:  # refused before Binance read it (a WAF, a proxy, a wrong path): nothing was done
            raise Refused(VENUE, f"HTTP {status}", text[:200], "other", path)
        if body is None and text.strip():
            raise OutcomeUnknown(f"{method} {path}: HTTP {status} with an answer that is not JSON")
        return status, None, "", body, retry_after


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None
