"""Bitget V2 request signing (protocol-trading-okx-bitget-binance.md §3.2, §3.5): pure, no clock inside.

    ACCESS-TIMESTAMP = epoch in ms, as decimal text: 1627293504612
    prehash          = timestamp + METHOD + requestPath + ("?" + queryString if any) + body
                       (body is the exact JSON text sent, "" for a GET)
    ACCESS-SIGN      = base64(HMAC-SHA256(secret, prehash))

with ACCESS-KEY, ACCESS-PASSPHRASE, Content-Type and `locale: en-US` on every private request,
and `paptrading: 1` in demo trading. Bitget refuses a timestamp more than 30 s from its clock
(40008 "Request timestamp expired"). The query is signed exactly as it is sent: the caller
builds it once.

The private stream's login signs the epoch in *seconds* (every working client and the doc's
wire example; the prose says ms, UNSURE §6.5): base64(HMAC-SHA256(secret, ts + "GET" +
"/user/verify")). The same functions sign in the client and verify in the simulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SKEW_MS = 30_000  # Bitget refuses a timestamp further than this from its clock (40008)
WS_LOGIN_PATH = "/user/verify"


def prehash(ts: str, method: str, path: str, query: str = "", body: str = "") -> str:
    """What is signed: ts + METHOD + path (+ "?" + query) + body."""
    return f"{ts}{method.upper()}{path}{'?' + query if query else ''}{body}"


def signature(secret: str, ts: str, method: str, path: str, query: str = "", body: str = "") -> str:
    """base64 HMAC-SHA256 of `prehash`."""
    message = prehash(ts, method, path, query, body)
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def timestamp_accepted(epoch_ms: int, server_ms: int) -> bool:
    return abs(server_ms - epoch_ms) <= SKEW_MS


def auth_headers(api_key: str, secret: str, passphrase: str, epoch_ms: int, method: str, path: str,
                 query: str = "", body: str = "", demo: bool = False) -> dict[str, str]:
    """The headers of one signed request."""
    ts = str(int(epoch_ms))
    headers = {
        "ACCESS-KEY": api_key,
        "ACCESS-SIGN": signature(secret, ts, method, path, query, body),
        "ACCESS-TIMESTAMP": ts,
        "ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
        "locale": "en-US",
    }
    if demo:
        headers["paptrading"] = "1"
    return headers


def websocket_login_signature(secret: str, epoch_s: int | str) -> str:
    """The private stream's login signature: over ts (epoch seconds) + "GET" + "/user/verify"."""
    return signature(secret, str(epoch_s), "GET", WS_LOGIN_PATH)


def websocket_login(api_key: str, secret: str, passphrase: str, epoch_s: int) -> dict:
    """The private stream's login message."""
    return {"op": "login", "args": [{"apiKey": api_key, "passphrase": passphrase, "timestamp": str(epoch_s),
                                     "sign": websocket_login_signature(secret, epoch_s)}]}
