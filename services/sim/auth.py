"""Signed-request checks as Bybit makes them, and its per-key, per-endpoint rate limits.

Pure: the caller passes the time. Answers use Bybit's retCodes and texts: 10003 for a
missing or unknown key (HTTP 401), 10004 for a bad signature, 10002 for a timestamp outside
the receive window, 10006 "Too many visits!" past the limit, and every answer to a known
key carries the `X-Bapi-Limit`, `X-Bapi-Limit-Status` and `X-Bapi-Limit-Reset-Timestamp`
headers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.venues.bybit.signing import signature, timestamp_accepted, websocket_auth_signature

# Per UID, per endpoint, rolling 1 s (protocol-bybit-v5.md §6); others default to 50/s.
LIMITS_PER_S = {
    "/v5/order/create": 10, "/v5/order/amend": 10, "/v5/order/cancel": 10, "/v5/order/cancel-all": 10,
    "/v5/account/fee-rate": 5,
}
DEFAULT_LIMIT_PER_S = 50


@dataclass(frozen=True)
class Verdict:
    ret_code: int  # 0 = accepted
    message: str
    http_status: int = 200
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Gate:
    """Verifies signatures and counts requests per key and endpoint."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self.secrets = dict(secrets)
        self._recent: dict[tuple[str, str], deque[int]] = {}

    def check(self, path: str, headers: Mapping[str, str], payload: str, now_ms: int,
              limit_per_s: int | None = None) -> Verdict:
        """Bybit's verdict on a signed request; `limit_per_s` overrides the endpoint's limit."""
        key = headers.get("X-BAPI-API-KEY", "")
        secret = self.secrets.get(key)
        if not key or secret is None:
            return Verdict(10003, "API key is invalid.", 401)
        try:
            timestamp = int(headers.get("X-BAPI-TIMESTAMP", ""))
            window = int(headers.get("X-BAPI-RECV-WINDOW", "5000"))
        except ValueError:
            return Verdict(10001, "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW must be integers",
                           api_key=key)
        limit_headers, allowed = self._count(key, path, now_ms, limit_per_s)
        if not timestamp_accepted(timestamp, now_ms, window):
            return Verdict(10002, "invalid request, please check your server timestamp or recv_window param. "
                           f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{window}]",
                           api_key=key, headers=limit_headers)
        if headers.get("X-BAPI-SIGN", "") != signature(secret, timestamp, key, window, payload):
            return Verdict(10004, f"error sign! origin_string[{timestamp}{key}{window}{payload}]",
                           api_key=key, headers=limit_headers)
        if not allowed:
            return Verdict(10006, "Too many visits!", api_key=key, headers=limit_headers)
        return Verdict(0, "OK", api_key=key, headers=limit_headers)

    def stream_auth(self, args: object, now_ms: int) -> str | None:
        """The API key a private-stream `auth` request proves, or None: args are
        [api_key, expires_ms, signature] with expires in the future."""
        if not isinstance(args, list) or len(args) != 3:
            return None
        key, expires, sign = args
        secret = self.secrets.get(key) if isinstance(key, str) else None
        try:
            expires = int(expires)
        except (TypeError, ValueError):
            return None
        if secret is None or expires <= now_ms or sign != websocket_auth_signature(secret, expires):
            return None
        return key

    def _count(self, key: str, path: str, now_ms: int, limit: int | None) -> tuple[dict[str, str], bool]:
        limit = limit or LIMITS_PER_S.get(path, DEFAULT_LIMIT_PER_S)
        recent = self._recent.setdefault((key, path), deque())
        while recent and recent[0] <= now_ms - 1000:
            recent.popleft()
        allowed = len(recent) < limit
        if allowed:
            recent.append(now_ms)
        reset = recent[0] + 1000 if not allowed else now_ms
        return {"X-Bapi-Limit": str(limit), "X-Bapi-Limit-Status": str(limit - len(recent)),
                "X-Bapi-Limit-Reset-Timestamp": str(reset)}, allowed
