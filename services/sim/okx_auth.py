"""OKX V5's signed-request checks, private-stream login and per-key rate limits
(protocol-trading-okx-bitget-binance.md §2.2, §2.3, §2.7).

Pure: the caller passes the time. REST requests carry OK-ACCESS-KEY, OK-ACCESS-SIGN,
OK-ACCESS-TIMESTAMP (ISO-8601 UTC with milliseconds and 'Z') and OK-ACCESS-PASSPHRASE;

    sign = base64(HMAC_SHA256(secret, timestamp + METHOD + requestPath[?query] + body))

A key the simulator knows has a secret and a passphrase. Refusals use OKX's codes, messages
and HTTP statuses: 50103/50104/50106/50107 a header missing, 50112 a timestamp not in the
format, 50111 an unknown key, 50102 a timestamp more than 30 s from the server's clock, 50105
a wrong passphrase, 50113 a bad signature (all HTTP 401). `x-simulated-trading` is accepted
and not checked: the simulator is one environment.

The private stream's login signs `timestamp + "GET" + "/users/self/verify"` with the
timestamp in epoch seconds; the request expires 30 s after it. Refusals: 60005 unknown key,
60024 wrong passphrase, 60006 expired, 60004 a timestamp that is not a number or too far
ahead, 60007 bad signature, 60009 anything else wrong with the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

SKEW_MS = 30_000
LOGIN_PATH = "/users/self/verify"
_ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# (requests, window ms, per instrument) by (method, path). The reference documents place,
# cancel and order details (60/2 s per instId), positions (10/2 s), account config and
# set-position-mode (5/2 s), set-leverage (20/2 s) and bills-archive (5/2 s); the others are
# as OKX's pages give them (balance 10/2 s, pending orders and fills 60/2 s, trade fee 5/2 s,
# bills 5/1 s), which the reference marks UNSURE.
LIMITS: dict[tuple[str, str], tuple[int, int, bool]] = {
    ("POST", "/api/v5/trade/order"): (60, 2000, True),
    ("POST", "/api/v5/trade/cancel-order"): (60, 2000, True),
    ("GET", "/api/v5/trade/order"): (60, 2000, True),
    ("GET", "/api/v5/trade/orders-pending"): (60, 2000, False),
    ("GET", "/api/v5/trade/fills"): (60, 2000, False),
    ("GET", "/api/v5/account/positions"): (10, 2000, False),
    ("GET", "/api/v5/account/balance"): (10, 2000, False),
    ("GET", "/api/v5/account/config"): (5, 2000, False),
    ("POST", "/api/v5/account/set-position-mode"): (5, 2000, False),
    ("POST", "/api/v5/account/set-leverage"): (20, 2000, False),
    ("GET", "/api/v5/account/trade-fee"): (5, 2000, False),
    ("GET", "/api/v5/account/bills"): (5, 1000, False),
    ("GET", "/api/v5/account/bills-archive"): (5, 2000, False),
}
DEFAULT_LIMIT = (20, 2000, False)
RATE_LIMITED = ("50011", "Rate limit reached. Please refer to API documentation and throttle requests accordingly.",
                429)


def sign(secret: str, prehash: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()


def iso_ms(epoch_ms: int) -> str:
    """`2020-12-08T09:08:57.715Z`: OKX's REST timestamp."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def parse_iso_ms(text: str) -> int | None:
    if not _ISO_MS.match(text):
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return round(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Refusal:
    code: str
    msg: str
    http_status: int = 401


_MISSING = (("OK-ACCESS-KEY", "50103"), ("OK-ACCESS-PASSPHRASE", "50104"), ("OK-ACCESS-SIGN", "50106"),
            ("OK-ACCESS-TIMESTAMP", "50107"))


class OkxGate:
    """Verifies OKX signatures and passphrases, logs private streams in, counts requests."""

    def __init__(self, secrets: Mapping[str, str], passphrases: Mapping[str, str]) -> None:
        # a key is an OKX key when it has both a secret and a passphrase
        self.keys = {k: (secrets[k], p) for k, p in passphrases.items() if k in secrets}
        self._recent: dict[tuple, deque[int]] = {}

    def check(self, method: str, request_path: str, headers: Mapping[str, str], body: str,
              now_ms: int) -> tuple[str | None, Refusal | None]:
        """(the key, None) for a request signed as OKX requires, else (the key if known, why not).
        `request_path` is the path with `?query` as sent."""
        for header, code in _MISSING:
            if not headers.get(header):
                return None, Refusal(code, f'Request header "{header}" cannot be empty.')
        key, passphrase = headers["OK-ACCESS-KEY"], headers["OK-ACCESS-PASSPHRASE"]
        timestamp = headers["OK-ACCESS-TIMESTAMP"]
        sent_ms = parse_iso_ms(timestamp)
        if sent_ms is None:
            return None, Refusal("50112", "Invalid OK-ACCESS-TIMESTAMP.")
        if key not in self.keys:
            return None, Refusal("50111", "Invalid OK-ACCESS-KEY.")
        secret, expected_passphrase = self.keys[key]
        if abs(now_ms - sent_ms) > SKEW_MS:
            return key, Refusal("50102", "Timestamp request expired.")
        if not hmac.compare_digest(passphrase, expected_passphrase):
            return key, Refusal("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        expected = sign(secret, f"{timestamp}{method.upper()}{request_path}{body}")
        if not hmac.compare_digest(headers["OK-ACCESS-SIGN"], expected):
            return key, Refusal("50113", "Invalid signature.")
        return key, None

    def login(self, args: object, now_ms: int) -> tuple[str | None, Refusal | None]:
        """The key a private-stream login proves, or why it does not (WS codes)."""
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], dict):
            return None, Refusal("60009", "Login failed.")
        arg = args[0]
        key, passphrase, timestamp, signature = (arg.get(k) for k in ("apiKey", "passphrase", "timestamp", "sign"))
        if not all(isinstance(v, str) and v for v in (key, passphrase, timestamp, signature)):
            return None, Refusal("60009", "Login failed.")
        if key not in self.keys:
            return None, Refusal("60005", "Invalid OK-ACCESS-KEY")
        secret, expected_passphrase = self.keys[key]
        if not hmac.compare_digest(passphrase, expected_passphrase):
            return None, Refusal("60024", "Wrong passphrase")
        if not timestamp.isdigit():
            return None, Refusal("60004", f"Invalid timestamp: {timestamp}")
        sent_ms = int(timestamp) * 1000
        if now_ms - sent_ms > SKEW_MS:
            return None, Refusal("60006", "Timestamp request expired")
        if sent_ms - now_ms > SKEW_MS:
            return None, Refusal("60004", f"Invalid timestamp: {timestamp}")
        if not hmac.compare_digest(signature, sign(secret, f"{timestamp}GET{LOGIN_PATH}")):
            return None, Refusal("60007", "Invalid sign")
        return key, None

    def allow(self, key: str, method: str, path: str, inst_id: str, now_ms: int,
              limit_per_s: int | None = None) -> bool:
        """Count this request; False past the endpoint's limit (or `limit_per_s`, the
        rate-limit fault, per key and endpoint over one second)."""
        if limit_per_s is not None:
            limit, window_ms, per_instrument = limit_per_s, 1000, False
        else:
            limit, window_ms, per_instrument = LIMITS.get((method, path), DEFAULT_LIMIT)
        recent = self._recent.setdefault((key, method, path, inst_id if per_instrument else ""), deque())
        while recent and recent[0] <= now_ms - window_ms:
            recent.popleft()
        if len(recent) >= limit:
            return False
        recent.append(now_ms)
        return True
