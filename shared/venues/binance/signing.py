"""Binance USD-M request signing (protocol-trading-okx-bitget-binance.md §4.2): pure, no clock inside.

    totalParams = query string + request body (form-urlencoded), without `signature`
    signature   = hex(HMAC-SHA256(secret, totalParams)), sent as the *last* parameter

with the header `X-MBX-APIKEY: <key>` on every private request (the listenKey endpoints need
only the header). `timestamp` (epoch ms) is required and `recvWindow` (ms, default 5000, at
most 60000) optional; the server takes a request when

    timestamp < serverTime + 1000  and  serverTime - timestamp <= recvWindow

else it refuses it with -1021. The same functions sign in the client and verify in the simulator.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60_000  # the long-standing rule (UNSURE, §4.2): -1131 above it
AHEAD_MS = 1000  # a timestamp this far ahead of the server's clock is refused


def signature(secret: str, total_params: str) -> str:
    """Lowercase hex HMAC-SHA256 of the query string concatenated with the body."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def signed_query(secret: str, params: dict[str, object], timestamp_ms: int,
                 recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> str:
    """`params` with `recvWindow` and `timestamp` added, url-encoded in that order, and
    `&signature=<hex>` last: the query string of a signed request whose body is empty."""
    query = urlencode({**{k: _text(v) for k, v in params.items()}, "recvWindow": str(recv_window_ms),
                       "timestamp": str(timestamp_ms)})
    return f"{query}&signature={signature(secret, query)}"


def timestamp_accepted(timestamp_ms: int, server_ms: int, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> bool:
    return timestamp_ms < server_ms + AHEAD_MS and server_ms - timestamp_ms <= recv_window_ms


def _text(value: object) -> str:
    """A parameter as Binance reads it: booleans lowercase (`true`), the rest as str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
