"""OKX V5 request signing (protocol-trading-okx-bitget-binance.md §2.2, §2.7): pure, no clock inside.

    timestamp = ISO-8601 UTC with exactly 3 ms digits and 'Z': 2020-12-08T09:08:57.715Z
    prehash   = timestamp + METHOD + requestPath + body
                (requestPath includes "?query" for a GET; body is the exact JSON text sent, "" for a GET)
    OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, prehash))

with OK-ACCESS-KEY, OK-ACCESS-TIMESTAMP, OK-ACCESS-PASSPHRASE and Content-Type on every private
request, and `x-simulated-trading: 1` in demo trading. The server refuses a timestamp more than
30 s from its clock (50102).

The private stream's login signs the epoch in *seconds*: base64(HMAC-SHA256(secret,
ts + "GET" + "/users/self/verify")). The same functions sign in the client and can verify in a
simulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

SKEW_MS = 30_000  # OKX refuses a timestamp further than this from its clock (50102)
WS_LOGIN_PATH = "/users/self/verify"
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def timestamp(epoch_ms: int) -> str:
    """OK-ACCESS-TIMESTAMP for an epoch in ms: `2020-12-08T09:08:57.715Z`."""
    seconds, ms = divmod(int(epoch_ms), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def timestamp_ms(text: str) -> int:
    """The epoch in ms of an OK-ACCESS-TIMESTAMP; ValueError unless it has exactly OKX's form."""
    if not isinstance(text, str) or not _ISO.match(text):
        raise ValueError(f"not an OKX timestamp: {text!r}")
    whole = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(whole.timestamp()) * 1000 + int(text[20:23])


def timestamp_accepted(epoch_ms: int, server_ms: int) -> bool:
    return abs(server_ms - epoch_ms) <= SKEW_MS


def signature(secret: str, ts: str, method: str, request_path: str, body: str = "") -> str:
    """base64 HMAC-SHA256 over ts + METHOD + requestPath (with ?query) + body."""
    message = f"{ts}{method.upper()}{request_path}{body}"
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def auth_headers(api_key: str, secret: str, passphrase: str, ts: str, method: str, request_path: str,
                 body: str = "", demo: bool = False) -> dict[str, str]:
    """The headers of one signed request; `request_path` includes the query of a GET."""
    headers = {
        "OK-ACCESS-KEY": api_key,
        "OK-ACCESS-SIGN": signature(secret, ts, method, request_path, body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
    }
    if demo:
        headers["x-simulated-trading"] = "1"
    return headers


def websocket_login_signature(secret: str, epoch_s: int | str) -> str:
    """The private stream's login signature: over ts (epoch seconds) + "GET" + "/users/self/verify"."""
    return signature(secret, str(epoch_s), "GET", WS_LOGIN_PATH)


def websocket_login(api_key: str, secret: str, passphrase: str, epoch_s: int) -> dict:
    """The private stream's login message."""
    return {"op": "login", "args": [{"apiKey": api_key, "passphrase": passphrase, "timestamp": str(epoch_s),
                                     "sign": websocket_login_signature(secret, epoch_s)}]}
