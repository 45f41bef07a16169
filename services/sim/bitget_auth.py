"""Bitget V2's signed-request checks, private-stream login and per-key rate limits
(protocol-trading-okx-bitget-binance.md §3.2, §3.3, §3.5).

Pure: the caller passes the time. REST requests carry ACCESS-KEY, ACCESS-SIGN,
ACCESS-TIMESTAMP (epoch ms) and ACCESS-PASSPHRASE;

    sign = base64(HMAC_SHA256(secret, timestamp + METHOD + path + ("?" + query if any) + body))

A key the simulator knows has a secret and a passphrase. Refusals use Bitget's codes and
messages, HTTP 400: 40001 / 40002 / 40011 a header missing, 40005 a timestamp that is not
epoch ms, 40006 an unknown key, 40008 a timestamp more than 30 s from the server's clock,
40012 a wrong passphrase, 40009 a bad signature. `paptrading` is accepted and not checked: the
simulator is one environment.

The private stream's login signs `timestamp + "GET" + "/user/verify"` with the timestamp in
epoch seconds, within 30 s. Refusals (Bitget's WS codes, numbers on the wire): 30011 unknown
key, 30012 wrong passphrase, 30013 a timestamp that is not a number, 30014 expired (or too far
ahead), 30015 bad signature, 30005 anything else wrong with the login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

SKEW_MS = 30_000
LOGIN_PATH = "/user/verify"

# requests per second per key by (method, path) (§3.3); others DEFAULT_LIMIT
LIMITS: dict[tuple[str, str], int] = {
    ("POST", "/api/v2/mix/order/place-order"): 10,
    ("POST", "/api/v2/mix/order/cancel-order"): 10,
    ("GET", "/api/v2/mix/order/detail"): 10,
    ("GET", "/api/v2/mix/order/orders-pending"): 10,
    ("GET", "/api/v2/mix/order/fills"): 10,
    ("GET", "/api/v2/mix/position/all-position"): 5,
    ("GET", "/api/v2/mix/position/single-position"): 10,
    ("GET", "/api/v2/mix/account/accounts"): 10,
    ("GET", "/api/v2/mix/account/account"): 10,
    ("POST", "/api/v2/mix/account/set-position-mode"): 5,
    ("POST", "/api/v2/mix/account/set-margin-mode"): 5,
    ("POST", "/api/v2/mix/account/set-leverage"): 5,
    ("GET", "/api/v2/mix/account/bill"): 10,
}
DEFAULT_LIMIT = 10
RATE_LIMITED = ("429", "Too many requests", 429)


def sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class Refusal:
    code: str
    msg: str
    http_status: int = 400


_MISSING = (("ACCESS-KEY", "40001", "ACCESS_KEY cannot be empty"),
            ("ACCESS-SIGN", "40002", "ACCESS_SIGN cannot be empty"),
            ("ACCESS-TIMESTAMP", "40005", "Invalid ACCESS_TIMESTAMP"),
            ("ACCESS-PASSPHRASE", "40011", "ACCESS_PASSPHRASE cannot be empty"))


class BitgetGate:
    """Verifies Bitget signatures and passphrases, logs private streams in, counts requests."""

    def __init__(self, secrets: Mapping[str, str], passphrases: Mapping[str, str]) -> None:
        # a key is a Bitget key when it has both a secret and a passphrase
        self.keys = {k: (secrets[k], p) for k, p in passphrases.items() if k in secrets}
        self._recent: dict[tuple, deque[int]] = {}

    def check(self, method: str, path: str, query: str, headers: Mapping[str, str], body: str,
              now_ms: int) -> tuple[str | None, Refusal | None]:
        """(the key, None) for a request signed as Bitget requires, else (the key if known, why
        not). `query` is the query string as sent (without '?')."""
        for header, code, message in _MISSING:
            if not headers.get(header):
                return None, Refusal(code, message)
        key, passphrase, timestamp = headers["ACCESS-KEY"], headers["ACCESS-PASSPHRASE"], headers["ACCESS-TIMESTAMP"]
        if not timestamp.isdigit() or len(timestamp) != 13:
            return None, Refusal("40005", "Invalid ACCESS_TIMESTAMP")
        if key not in self.keys:
            return None, Refusal("40006", "Invalid ACCESS_KEY")
        secret, expected_passphrase = self.keys[key]
        if abs(now_ms - int(timestamp)) > SKEW_MS:
            return key, Refusal("40008", "Request timestamp expired")
        if not hmac.compare_digest(passphrase, expected_passphrase):
            return key, Refusal("40012", "apikey/password is incorrect")
        expected = sign(secret, f"{timestamp}{method.upper()}{path}{'?' + query if query else ''}{body}")
        if not hmac.compare_digest(headers["ACCESS-SIGN"], expected):
            return key, Refusal("40009", "sign signature error")
        return key, None

    def login(self, args: object, now_ms: int) -> tuple[str | None, Refusal | None]:
        """The key a private-stream login proves, or why it does not (WS codes)."""
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            return None, Refusal("30005", "Login failed")
        arg = args[0]
        key, passphrase, timestamp, signature = (arg.get(k) for k in ("apiKey", "passphrase", "timestamp", "sign"))
        if not all(isinstance(v, str) and v for v in (key, passphrase, timestamp, signature)):
            return None, Refusal("30005", "Login failed")
        if key not in self.keys:
            return None, Refusal("30011", "Invalid ACCESS_KEY")
        secret, expected_passphrase = self.keys[key]
        if not hmac.compare_digest(passphrase, expected_passphrase):
            return None, Refusal("30012", "Invalid ACCESS_PASSPHRASE")
        if not timestamp.isdigit():
            return None, Refusal("30013", "Invalid ACCESS_TIMESTAMP")
        if abs(now_ms - int(timestamp) * 1000) > SKEW_MS:
            return None, Refusal("30014", "Request timestamp expired")
        if not hmac.compare_digest(signature, sign(secret, f"{timestamp}GET{LOGIN_PATH}")):
            return None, Refusal("30015", "Invalid signature")
        return key, None

    def allow(self, key: str, method: str, path: str, now_ms: int, limit_per_s: int | None = None) -> bool:
        """Count this request; False past the endpoint's limit per second (or `limit_per_s`, the
        rate-limit fault), per key and endpoint."""
        limit = limit_per_s if limit_per_s is not None else LIMITS.get((method, path), DEFAULT_LIMIT)
        recent = self._recent.setdefault((key, method, path), deque())
        while recent and recent[0] <= now_ms - 1000:
            recent.popleft()
        if len(recent) >= limit:
            return False
        recent.append(now_ms)
        return True
