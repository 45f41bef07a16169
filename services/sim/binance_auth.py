"""Binance USD-M's signed-request checks and request limits (protocol-trading-okx-bitget-binance.md §4.2).

Pure: the caller passes the time. A signed request carries `X-MBX-APIKEY` and, in its query
string or form body, `timestamp` (epoch ms), an optional `recvWindow` (ms, default 5000, at most
60000) and `signature`, the hex HMAC-SHA256 of the query string concatenated with the body, sent
last. The listenKey endpoints need the key alone. Refusals use Binance's codes, messages and
HTTP statuses: -2014 no key, -2015 an unknown key (HTTP 401), -1102 a mandatory parameter
missing, -1131 recvWindow over 60000, -1021 a timestamp outside the window (or 1000 ms ahead),
-1022 a bad signature (HTTP 400).

Limits, as Binance counts them in fixed windows of its clock: 2400 request weight a minute
(per IP at Binance; per key here, so accounts in one test do not share it), and 300 order
creates per 10 s and 1200 a minute per account. Past one: HTTP 429 with -1003 (weight) or
-1015 (orders) and `Retry-After` (seconds to the window's end). Every answer carries
`X-MBX-USED-WEIGHT-1M`, and an order create's `X-MBX-ORDER-COUNT-10S` and `-1M`. The
`rate_limit_per_s` fault allows that many requests per second per key and endpoint instead
(-1003, `Retry-After: 1`).
"""

from __future__ import annotations

import hmac
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from shared.venues.binance.signing import API_KEY_HEADER, MAX_RECV_WINDOW_MS, signature

WEIGHT_1M, ORDERS_10S, ORDERS_1M = 2400, 300, 1200
DEFAULT_RECV_WINDOW_MS = 5000


@dataclass(frozen=True)
class Refusal:
    code: int
    msg: str
    http_status: int = 400
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> Refusal:
    return Refusal(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def split_signature(text: str) -> tuple[str, str | None]:
    """(the text without a last `signature=...` parameter, that signature or None)."""
    head, sep, sig = text.rpartition("signature=")
    if not sep or (head and not head.endswith("&")) or "&" in sig:
        return text, None
    return head[:-1] if head else "", sig


def parameters(raw_query: str, body: str) -> dict[str, str]:
    """The parameters of the query string and the form body (the body's win)."""
    return {**dict(parse_qsl(raw_query, keep_blank_values=True)), **dict(parse_qsl(body, keep_blank_values=True))}


class BinanceGate:
    """Checks Binance keys and signatures, counts weight and orders per key."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.keys = dict(secrets)
        self._used: dict[tuple[str, str], tuple[int, int]] = {}  # (key, what) -> (window, count)
        self._recent: dict[tuple, deque[int]] = {}

    def key(self, headers: Mapping[str, str]) -> tuple[str | None, Refusal | None]:
        key = headers.get(API_KEY_HEADER)
        if not key:
            return None, Refusal(-2014, "API-key format invalid.", 401)
        if key not in self.keys:
            return None, Refusal(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return key, None

    def check(self, headers: Mapping[str, str], raw_query: str, body: str,
              now_ms: int) -> tuple[str | None, Refusal | None]:
        """(the key, None) for a request signed as Binance requires, else (the key if known, why not)."""
        key, refused = self.key(headers)
        if refused is not None:
            return None, refused
        params = parameters(raw_query, body)
        timestamp = params.get("timestamp", "")
        if not timestamp.isdigit():
            return key, missing("timestamp")
        window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        if not window.isdigit():
            return key, missing("recvWindow")
        if int(window) > MAX_RECV_WINDOW_MS:
            return key, Refusal(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW_MS}.")
        query, in_query = split_signature(raw_query)
        form, in_body = split_signature(body)
        sent = in_query if in_query is not None else in_body
        if not sent:
            return key, missing("signature")
        sent_ms = int(timestamp)
        if sent_ms >= now_ms + 1000:
            return key, Refusal(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now_ms - sent_ms > int(window):
            return key, Refusal(-1021, "Timestamp for this request is outside of the recvWindow.")
        total = (query + body) if in_query is not None else (raw_query + form)
        if not hmac.compare_digest(sent.lower(), signature(self.keys[key], total)):
            return key, Refusal(-1022, "Signature for this request is not valid.")
        return key, None

    def allow(self, key: str, method: str, path: str, now_ms: int, limit_per_s: int | None) -> Refusal | None:
        """The rate_limit_per_s fault: None while this key's requests to this endpoint in the last
        second are under it."""
        if limit_per_s is None:
            return None
        recent = self._recent.setdefault((key, method, path), deque())
        while recent and recent[0] <= now_ms - 1000:
            recent.popleft()
        if len(recent) >= limit_per_s:
            return Refusal(-1003, f"Too many requests; current limit is {limit_per_s} requests per second. Please "
                                  "use the websocket for live updates to avoid polling the API.", 429,
                           {"Retry-After": "1"})
        recent.append(now_ms)
        return None

    def _add(self, key: str, what: str, window_ms: int, now_ms: int, amount: int) -> int:
        window = now_ms // window_ms
        last, count = self._used.get((key, what), (window, 0))
        count = (count if last == window else 0) + amount
        self._used[(key, what)] = (window, count)
        return count

    def count(self, key: str, now_ms: int, weight: int, order: bool) -> tuple[dict[str, str], Refusal | None]:
        """Count a request of `weight` (an order create when `order`): the headers of its answer,
        and the refusal when it is past a limit."""
        used = self._add(key, "weight", 60_000, now_ms, weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if used > WEIGHT_1M:
            wait = math.ceil((60_000 - now_ms % 60_000) / 1000)
            return headers, Refusal(-1003, f"Too many requests; current limit is {WEIGHT_1M} requests per minute. "
                                           "Please use the websocket for live updates to avoid polling the API.",
                                    429, {**headers, "Retry-After": str(wait)})
        if not order:
            return headers, None
        ten = self._add(key, "orders10s", 10_000, now_ms, 1)
        minute = self._add(key, "orders1m", 60_000, now_ms, 1)
        headers.update({"X-MBX-ORDER-COUNT-10S": str(ten), "X-MBX-ORDER-COUNT-1M": str(minute)})
        for count, limit, window_ms, name in ((ten, ORDERS_10S, 10_000, "TEN_SECONDS"),
                                              (minute, ORDERS_1M, 60_000, "MINUTE")):
            if count > limit:
                wait = math.ceil((window_ms - now_ms % window_ms) / 1000)
                return headers, Refusal(-1015, f"Too many new orders; current limit is {limit} orders per {name}.",
                                        429, {**headers, "Retry-After": str(wait)})
        return headers, None
