"""Bitget V2 signed REST (protocol-trading-okx-bitget-binance.md §3.2-3.4): `BitgetRest`, and what
Bitget's codes mean to the executor (`CODE_KINDS`).

- Every private request is signed (signing.py) with our clock plus the offset to Bitget's
  (`/api/v2/public/time`, measured by `sync_time` and again after a 40008 "Request timestamp
  expired"); demo adds the `paptrading: 1` header.
- Each endpoint has a rolling 1 s budget at the reference's limit (place, cancel and order
  detail 10/s per UID; positions 5/s; the account settings 5/s), waited for before sending. A
  429 (the HTTP status or the code) blocks that budget and tries again, at most 3 times, the
  wait doubling from 0.5 s.
- The body is read whatever the HTTP status (sources disagree on 200 vs 400 for a refusal,
  UNSURE §3.2): `code` "00000" is success and answers `data`; another code raises `Refused`
  with its kind. HTTP 5xx, timeouts, dropped connections, a 2xx without Bitget's envelope and
  the codes that do not say whether it was done (`OUTCOME_UNKNOWN`: 40010 "Request timed out",
  and the maintenance codes) raise `OutcomeUnknown`; a 4xx without the envelope (a proxy, a
  wrong path: Bitget never read it) is refused as "other".
The key, secret and passphrase are never logged, shown or put in an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import yarl

from shared.venues.bitget import signing
from shared.venues.signed_rest import SignedRest
from shared.venues.trading import Budget, Kind, OutcomeUnknown, Refused

log = logging.getLogger("arb.bitget")

# Bitget's codes [BG:08_error_codes.md; CCXT-BG real bodies; HB constants] as what they mean to the
# executor. Codes not here are "other".
CODE_KINDS: dict[str, Kind] = {
    # "The order amount exceeds the balance" (real), "Insufficient balance", "balance not enough",
    # "Insufficient contract account balance"
    "40762": "insufficient_margin", "43012": "insufficient_margin", "40754": "insufficient_margin",
    "40711": "insufficient_margin",
    "40786": "duplicate",  # "Duplicate clientOid": a pending order carries it already
    # "less than the minimum amount 5 USDT", "...less than the minimum transaction quantity", "Less than
    # the minimum order amount"; 40808 "size checkBDScale error" is a size off the lot grid (the real
    # body's), which KINDS counts here; a price off its grid has its own code (41103, invalid)
    "45110": "below_minimum", "43006": "below_minimum", "22034": "below_minimum", "40808": "below_minimum",
    # "Order does not exist" (ccxt), "The order does not exist", "The data of the order cannot be
    # found", "No order to cancel", "Could not find order" (HB's test), and HB's other not-found codes
    "40768": "not_found", "43001": "not_found", "40109": "not_found", "22001": "not_found", "43026": "not_found",
    "43025": "not_found", "43020": "not_found", "80011": "not_found", "40819": "not_found", "45057": "not_found",
    "43033": "not_found",
    "22002": "reduce_only", "40757": "reduce_only",  # "No position to close", "Not enough position is available."
    "40008": "timestamp", "40005": "timestamp",  # "Request timestamp expired", "Invalid ACCESS_TIMESTAMP"
    "40009": "bad_signature", "40002": "bad_signature",  # "sign signature error", "ACCESS_SIGN cannot be empty"
    # "Invalid ACCESS_KEY", "Apikey does not exist", "apikey/password is incorrect", "passphrase is error",
    # "ACCESS_PASSPHRASE cannot be empty", "ACCESS_KEY cannot be empty"
    "40006": "unknown_key", "40037": "unknown_key", "40012": "unknown_key", "40036": "unknown_key",
    "40011": "unknown_key", "40001": "unknown_key",
    # "Incorrect permissions, need {0} permissions", "Invalid IP", "IP not in whitelist"
    "40014": "permission", "40018": "permission", "40038": "permission",
    "429": "rate_limit",  # "Too many requests"
    # "The order type for unilateral position must also be the unilateral position type." (hedge/one-way)
    "40774": "invalid",
    # the price band: "higher than the highest bid price" / "lower than the lowest selling price",
    # "limit/market price > / < risk price"
    "40815": "invalid", "40816": "invalid", "22006": "invalid", "22007": "invalid", "22008": "invalid",
    "22009": "invalid",
    "41103": "invalid",  # "param price scale error"
    "40920": "invalid",  # "Position or order exists, the position mode cannot be switched"
    "40128": "invalid",  # "not supported under Unified Account mode": a UTA account (V3 only), §3
    "40099": "invalid",  # S-prefixed demo names mixed with paptrading (a third-party report, §3.1)
    "40304": "invalid", "40305": "invalid",  # clientOid too long / bad characters
    "40034": "invalid", "40007": "invalid",  # a parameter that does not exist; Content-Type
    "22030": "invalid", "40110": "invalid",  # not available in demo trading
}
# the answer does not say whether it was carried out: look the order up before anything else.
# 40010 "Request timed out" (§5.5); 45001 / 40725 / 40015 come back in maintenance windows and mean
# "retry" (§3.2 Q14): for an order create that is an unknown outcome, not a refusal
OUTCOME_UNKNOWN = frozenset({"40010", "45001", "40725", "40015"})
SUCCESS = "00000"
TIMESTAMP_EXPIRED = "40008"
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_S = 0.5  # Bitget names no reset time: wait this, doubled after each further refusal
# requests per second per UID (§3.3); unlisted endpoints get DEFAULT_LIMIT_PER_S
LIMITS_PER_S = {
    "POST /api/v2/mix/order/place-order": 10, "POST /api/v2/mix/order/cancel-order": 10,
    "GET /api/v2/mix/order/detail": 10, "GET /api/v2/mix/order/orders-pending": 10,
    "GET /api/v2/mix/order/fills": 10, "GET /api/v2/mix/position/all-position": 5,
    "GET /api/v2/mix/position/single-position": 10, "GET /api/v2/mix/account/accounts": 10,
    "GET /api/v2/mix/account/account": 10, "POST /api/v2/mix/account/set-position-mode": 5,
    "POST /api/v2/mix/account/set-margin-mode": 5, "POST /api/v2/mix/account/set-leverage": 5,
    "GET /api/v2/mix/account/bill": 10, "GET /api/v2/mix/market/contracts": 20,
}
DEFAULT_LIMIT_PER_S = 5


def kind_of(code: str) -> Kind | None:
    """What a Bitget code means (None: the outcome is unknown)."""
    return None if code in OUTCOME_UNKNOWN else CODE_KINDS.get(code, "other")


def server_time_ms(body: object) -> int:
    """`/api/v2/public/time`'s serverTime; ValueError / LookupError for another answer."""
    data = body["data"] if isinstance(body, dict) else None
    value = data.get("serverTime") if isinstance(data, dict) else None
    if isinstance(value, int | str) and str(value).isdigit():
        return int(value)
    raise ValueError(f"no serverTime in {str(body)[:200]}")


class BitgetRest(SignedRest):
    """Bitget's signed REST, answered as `data` or raised as Refused / OutcomeUnknown."""

    time_path = "/api/v2/public/time"

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, api_key: str, api_secret: str, passphrase: str,
                 demo: bool = False, budget: Budget | None = None, clock: Callable[[], float] = time.time,
                 timeout_s: float = 5.0) -> None:
        super().__init__(http, rest_url, clock, timeout_s)
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.demo = demo
        self.budget = budget or Budget(dict(LIMITS_PER_S), DEFAULT_LIMIT_PER_S, window_s=1.0)

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"BitgetRest({self.rest_url}, demo={self.demo})"

    def server_ms(self, body: bytes) -> int:
        return server_time_ms(json.loads(body))

    async def public(self, path: str, params: dict) -> object:
        """An unsigned GET (the market endpoints), with the demo header; `data` or Refused / OutcomeUnknown."""
        await self.budget.admit(f"GET {path}")
        query = urlencode(params)
        headers = {"paptrading": "1"} if self.demo else {}
        code, message, data = await self._exchange("GET", path, f"{path}?{query}" if query else path, "", headers)
        if code == SUCCESS:
            return data
        kind = kind_of(code)
        if kind is None:
            raise OutcomeUnknown(f"GET {path}: bitget {code}: {message}")
        raise Refused("bitget", code, message, kind, path)

    async def request(self, method: str, path: str, params: dict,
                      on_send: Callable[[], None] | None = None) -> object:
        """Bitget's `data` for a signed request; Refused or OutcomeUnknown otherwise. `on_send` is
        called as the request goes out (after any wait for the budget)."""
        key = f"{method} {path}"
        rate_limited, resynced = 0, False
        while True:
            await self.budget.admit(key)
            if on_send is not None:
                on_send()
                on_send = None
            code, message, data = await self.send(method, path, params)
            if code == SUCCESS:
                return data
            kind = kind_of(code)
            if kind is None:
                raise OutcomeUnknown(f"{method} {path}: bitget {code}: {message}")
            if kind == "rate_limit" and rate_limited < RATE_LIMIT_RETRIES:
                self._count("rate_limited")
                wait = RATE_LIMIT_WAIT_S * 2 ** rate_limited
                rate_limited += 1
                log.warning("%s: rate limited by Bitget (%s); waiting %.0f ms", path, code, wait * 1000)
                self.budget.block(key, wait)
                continue
            if code == TIMESTAMP_EXPIRED and not resynced:
                self._count("clock_resyncs")
                resynced = True
                offset = await self.sync_time()
                log.warning("%s: Bitget refused our timestamp; clock offset re-measured: %d ms", path, offset)
                continue
            raise Refused("bitget", code, message, kind, path)

    async def send(self, method: str, path: str, params: dict) -> tuple[str, str, object]:
        """One signed request, answered as it is: (code, message, data); OutcomeUnknown when
        there is no answer. The query (or body) is built once and signed as sent."""
        if method == "GET":
            query, body = urlencode(params), ""
        else:
            query, body = "", json.dumps(params, separators=(",", ":"))
        headers = signing.auth_headers(self._key, self._secret, self._passphrase, self.now_ms(), method, path,
                                       query, body, self.demo)
        return await self._exchange(method, path, f"{path}?{query}" if query else path, body, headers)

    async def _exchange(self, method: str, path: str, target: str, body: str,
                        headers: dict[str, str]) -> tuple[str, str, object]:
        url = yarl.URL(f"{self.rest_url}{target}", encoded=True)
        try:
            async with self.http.request(method, url, data=body or None, headers=headers,
                                         timeout=self.timeout) as response:
                status = response.status
                if status >= 500:
                    raise OutcomeUnknown(f"{method} {path}: HTTP {status}")
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "code" not in answer:
            if status == 429:
                return "429", f"Too many requests (HTTP 429) {text[:100]}", None
            if status in (408, 499):  # a gateway gave up waiting: Bitget may have carried it out
                raise OutcomeUnknown(f"{method} {path}: HTTP {status} without a Bitget envelope")
            if status >= 400:  # refused before Bitget read it (a proxy, a wrong path): nothing was done
                raise Refused("bitget", f"HTTP {status}", text[:200], "other", path)
            raise OutcomeUnknown(f"{method} {path}: HTTP {status} without a Bitget envelope")
        return str(answer["code"]), str(answer.get("msg") or ""), answer.get("data")
