"""Bybit V5 request signing (shared/docs/protocol-bybit-v5.md §5.1): pure, no clock inside.

    GET : payload = timestamp + api_key + recv_window + query string (exactly as sent)
    POST: payload = timestamp + api_key + recv_window + JSON body (exactly as sent)
    X-BAPI-SIGN = lowercase hex HMAC-SHA256(api_secret, payload)

A timestamp is accepted when server_time - recv_window <= timestamp < server_time + 1000.
The same functions sign in the live client and verify in the simulator.
"""

from __future__ import annotations

import hashlib
import hmac

DEFAULT_RECV_WINDOW_MS = 5000


def signature(secret: str, timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    message = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def auth_headers(api_key: str, secret: str, timestamp_ms: int, payload: str,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> dict[str, str]:
    """The four headers of a signed request; `payload` is the query string or the body."""
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": str(timestamp_ms),
        "X-BAPI-RECV-WINDOW": str(recv_window_ms),
        "X-BAPI-SIGN": signature(secret, timestamp_ms, api_key, recv_window_ms, payload),
    }


def timestamp_accepted(timestamp_ms: int, server_ms: int, recv_window_ms: int) -> bool:
    return server_ms - recv_window_ms <= timestamp_ms < server_ms + 1000


def websocket_auth_signature(secret: str, expires_ms: int) -> str:
    """The private stream's `auth` signature: HMAC-SHA256 over "GET/realtime" + expires."""
    return hmac.new(secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()
