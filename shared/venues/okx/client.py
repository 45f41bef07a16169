"""OKX V5 signed REST (protocol-trading-okx-bitget-binance.md §2.2-2.3): `OkxRest`, and what
OKX's codes mean to the executor (`CODE_KINDS`).

- Every private request is signed (signing.py) with our clock plus the offset to OKX's
  (`/api/v5/public/time`, measured by `sync_time` and again after a 50102); demo adds the
  `x-simulated-trading: 1` header.
- Each endpoint has a rolling 2 s budget, per instId for the trade endpoints (60 per 2 s per
  instId for place, cancel and order details), waited for before sending. 50011, 50061, 50013,
  50040 or an HTTP 429 blocks that budget and tries again, at most 3 times.
- An answer's refusal (a single order's `sCode`/`sMsg` inside the `code` "1" envelope, else
  the `code`) raises `Refused` with its kind; HTTP 5xx, timeouts, dropped connections and the
  codes that do not say whether it was done (`OUTCOME_UNKNOWN`) raise `OutcomeUnknown`.
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

from shared.venues.okx import signing
from shared.venues.okx.rest import server_time_ms
from shared.venues.signed_rest import SignedRest
from shared.venues.trading import Budget, Kind, OutcomeUnknown, Refused

log = logging.getLogger("arb.okx")

# OKX's codes [OKX:error-code-rest-api-public] as what they mean to the executor; a sub-coded answer
# (51008_1001) is read by its code (51008). Codes not here are "other".
CODE_KINDS: dict[str, Kind] = {
    "51008": "insufficient_margin", "51131": "insufficient_margin", "51127": "insufficient_margin",
    "51004": "insufficient_margin",  # over the position its leverage allows
    "51016": "duplicate", "50071": "duplicate", "51011": "duplicate",
    "51020": "below_minimum", "51121": "below_minimum", "51007": "below_minimum", "51120": "below_minimum",
    "50122": "below_minimum",
    "51603": "not_found",
    # a cancel of an order filled, canceled or unknown: the executor looks the order up
    "51400": "too_late", "51401": "too_late", "51402": "too_late", "51410": "too_late", "51503": "too_late",
    "50102": "timestamp", "50112": "timestamp", "50107": "timestamp",
    "50113": "bad_signature", "50106": "bad_signature",  # (NT's 50113 "exceeds the limit" contradicts the docs)
    "50111": "unknown_key", "50119": "unknown_key", "50101": "unknown_key", "50105": "unknown_key",
    "50104": "unknown_key", "50103": "unknown_key",
    "50120": "permission", "50110": "permission", "50100": "permission", "50030": "permission",
    "50035": "permission", "50121": "permission",
    "50011": "rate_limit", "50061": "rate_limit", "50013": "rate_limit", "50040": "rate_limit",
    "51169": "reduce_only", "51170": "reduce_only", "51112": "reduce_only",
    "51000": "invalid", "51006": "invalid", "51137": "invalid", "51138": "invalid", "51150": "invalid",
    "51001": "invalid", "50014": "invalid", "51010": "invalid",
    "51005": "invalid", "51101": "invalid", "51201": "invalid", "51202": "invalid", "51203": "invalid",  # over max sz
    # NT calls 51019 its post-only refusal; the docs give it to options (never a swap): a refusal either way
    "51019": "post_only",
}
# the answer does not say whether it was carried out: look the order up before anything else
OUTCOME_UNKNOWN = frozenset({"50001", "50004", "50026", "51149", "51054"})
RATE_LIMIT_RETRIES = 3
RATE_LIMIT_WAIT_S = 0.5  # OKX names no reset time: wait this, doubled after each further refusal
# requests per 2 s (§2.3); the trade endpoints' budgets are per instId
LIMITS_PER_2S = {
    "POST /api/v5/trade/order": 60, "POST /api/v5/trade/cancel-order": 60, "GET /api/v5/trade/order": 60,
    "GET /api/v5/trade/orders-pending": 60, "GET /api/v5/trade/fills": 60, "GET /api/v5/account/positions": 10,
    "GET /api/v5/account/balance": 10, "GET /api/v5/account/config": 5, "POST /api/v5/account/set-position-mode": 5,
    "POST /api/v5/account/set-leverage": 20, "GET /api/v5/account/trade-fee": 5, "GET /api/v5/account/bills": 5,
    "GET /api/v5/account/bills-archive": 5,
}
DEFAULT_LIMIT_PER_2S = 5
PAGE = 100


def kind_of(code: str) -> Kind | None:
    """What an OKX code means (None: the outcome is unknown)."""
    base = code.split("_", 1)[0]
    return None if base in OUTCOME_UNKNOWN else CODE_KINDS.get(base, "other")


class OkxRest(SignedRest):
    """OKX's signed REST, answered as `data` or raised as Refused / OutcomeUnknown."""

    time_path = "/api/v5/public/time"

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, api_key: str, api_secret: str, passphrase: str,
                 demo: bool = False, budget: Budget | None = None, clock: Callable[[], float] = time.time,
                 timeout_s: float = 5.0) -> None:
        super().__init__(http, rest_url, clock, timeout_s)
        self._key, self._secret, self._passphrase = api_key, api_secret, passphrase
        self.demo = demo
        self.budget = budget or Budget(dict(LIMITS_PER_2S), DEFAULT_LIMIT_PER_2S, window_s=2.0)

    def __repr__(self) -> str:  # never the key, secret or passphrase
        return f"OkxRest({self.rest_url}, demo={self.demo})"

    def server_ms(self, body: bytes) -> int:
        return server_time_ms(body)

    async def request(self, method: str, path: str, params: dict, inst_id: str = "",
                      on_send: Callable[[], None] | None = None) -> list:
        """OKX's `data` for a signed request; Refused or OutcomeUnknown otherwise. `on_send` is
        called as the request goes out (after any wait for the budget)."""
        key = f"{method} {path}"
        if inst_id:  # a budget per instId, at the endpoint's limit
            self.budget.limits.setdefault(f"{key} {inst_id}", self.budget.limits.get(key, DEFAULT_LIMIT_PER_2S))
            key = f"{key} {inst_id}"
        rate_limited, resynced = 0, False
        while True:
            await self.budget.admit(key)
            if on_send is not None:
                on_send()
                on_send = None
            code, message, data = await self.send(method, path, params)
            if code == "0":
                return data
            kind = kind_of(code)
            if kind is None:
                raise OutcomeUnknown(f"{method} {path}: okx {code}: {message}")
            if kind == "rate_limit" and rate_limited < RATE_LIMIT_RETRIES:
                self._count("rate_limited")
                wait = RATE_LIMIT_WAIT_S * 2 ** rate_limited
                rate_limited += 1
                log.warning("%s: rate limited by OKX (%s); waiting %.0f ms", path, code, wait * 1000)
                self.budget.block(key, wait)
                continue
            if code == "50102" and not resynced:
                self._count("clock_resyncs")
                resynced = True
                offset = await self.sync_time()
                log.warning("%s: OKX refused our timestamp; clock offset re-measured: %d ms", path, offset)
                continue
            raise Refused("okx", code, message, kind, path)

    async def send(self, method: str, path: str, params: dict) -> tuple[str, str, list]:
        """One signed request, answered as it is: (code, message, data), where a single order's
        `sCode`/`sMsg` stand for the envelope's; OutcomeUnknown when there is no answer."""
        if method == "GET":
            query = urlencode(params)
            request_path, body = f"{path}?{query}" if query else path, ""
        else:
            request_path, body = path, json.dumps(params, separators=(",", ":"))
        headers = signing.auth_headers(self._key, self._secret, self._passphrase, signing.timestamp(self.now_ms()),
                                       method, request_path, body, self.demo)
        url = yarl.URL(f"{self.rest_url}{request_path}", encoded=True)
        try:
            async with self.http.request(method, url, data=body or None, headers=headers,
                                         timeout=self.timeout) as response:
                status = response.status
                if status >= 500:
                    raise OutcomeUnknown(f"{method} {path}: HTTP {status}")
                if status == 429:
                    return "50011", "Too Many Requests (HTTP 429)", []
                text = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise OutcomeUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "code" not in answer:
            if status >= 400:  # refused before OKX read it (a proxy, a wrong path): nothing was done
                raise Refused("okx", f"HTTP {status}", text[:200], "other", path)
            raise OutcomeUnknown(f"{method} {path}: HTTP {status} without an OKX envelope")
        code, message = str(answer["code"]), str(answer.get("msg") or "")
        data = answer.get("data") if isinstance(answer.get("data"), list) else []
        first = data[0] if data and isinstance(data[0], dict) else {}
        if str(first.get("sCode", "0")) not in ("0", ""):
            code, message = str(first["sCode"]), str(first.get("sMsg") or message)
        return code, message, data

    async def pages(self, path: str, params: dict, cursor: str, stop: Callable[[dict], bool] | None = None) -> list:
        """Every row of a paginated GET (newest first; `after` = the last row's `cursor` field),
        until a short page, or a row `stop` says is far enough back."""
        out: list = []
        after = ""
        while True:
            query = {**params, "limit": str(PAGE), **({"after": after} if after else {})}
            page = await self.request("GET", path, query)
            out += page
            last = page[-1] if page and isinstance(page[-1], dict) else {}
            after = last.get(cursor) if isinstance(last.get(cursor), str) else ""
            if len(page) < PAGE or not after or (stop is not None and stop(last)):
                return out
