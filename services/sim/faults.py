"""Faults the simulator injects, set from a JSON file at start (`arb sim --faults FILE`) and
changed at run time with `POST /admin/faults` (the same keys; only those given change).

    {"latency_ms": 50, "jitter_ms": 20,        # added to every REST answer and WebSocket frame
     "drop_ws_every_s": 30,                    # close every WebSocket this often (null: never)
     "clock_skew_ms": 2500,                    # the exchange clock runs this far ahead (or behind)
     "reject_next": 3, "reject_code": 10016,   # the next 3 signed requests answer 10016
     "reject_skip": 1,                         # ... after letting 1 more through
     "reject_message": "Server error",
     "drop_order_responses": 2,                # the next 2 order creates are carried out, but
                                               # the connection closes before the answer
     "drop_order_responses_fraction": 0.3,     # ... and so is this share of every create, at random
     "reject_link_ids": "E2$",                 # creates whose orderLinkId matches this regular
                                               # expression answer reject_code / reject_message
     "unfilled": true,                         # orders are accepted and never fill
     "partial_fill_fraction": 0.5,             # an order fills at most half its size
     "partial_fill_orders": 1,                 # ... only the next order, whose rest is then cancelled
     "rate_limit_per_s": 5,                    # every signed endpoint allows 5 requests/s per key
     "key_ips": ["*"], "key_wallet": true}     # what /v5/user/query-api says of the key

`POST /admin/drop` closes every WebSocket now. Unknown keys or bad values are refused with a
message naming them.

The faults act on OKX's, Bitget's and Binance's trading as on Bybit's, with one set of
counters for every venue (the next K signed requests, or order creates, on any). `reject_code`
is a Bybit retCode, and each venue answers its own code for it (Bitget: bitget_trade.fault_code,
110007 -> 40762, 110072 -> 40786, 10004 -> 40009, 10016 -> 40725 HTTP 500, its own codes as is;
Binance: binance_trade.fault_code, 110007 -> -2019, 10016 -> -1000 HTTP 503, 1000-5999 taken
as Binance's own code negated; `reject_link_ids` matches their clientOid / newClientOrderId).
OKX answers (okx_trade.fault_code): 110007 -> 51008 insufficient margin,
110072 -> 51016, 110017 -> 51169, 110001 -> 51400, 110020 -> 51102, 10001 -> 51000,
10002 -> 50102, 10003 -> 50111, 10004 -> 50113, 10006 -> 50011 (HTTP 429), 10016 -> 50026
"System error" (HTTP 500); a code from 50000 to 59999 is taken as OKX's own and answered
as is, anything else as 50026. On place and cancel a 51xxx code answers per item (top-level
code "1", the item's sCode), a 50xxx code at the top level. `drop_order_responses` counts
OKX's `POST /api/v5/trade/order`, `reject_link_ids` matches its `clOrdId`,
`rate_limit_per_s` replaces OKX's per-endpoint limits (50011 past it), and `key_wallet` /
`key_ips` show in `GET /api/v5/account/config` as `perm` "read_only,withdraw,trade" and `ip`.
"""

from __future__ import annotations

import random
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class FaultError(ValueError):
    """A fault setting that is unknown or out of range."""


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_ms: float = Field(0.0, ge=0, le=60_000)
    jitter_ms: float = Field(0.0, ge=0, le=60_000)
    drop_ws_every_s: float | None = Field(None, gt=0)
    clock_skew_ms: int = Field(0, ge=-3_600_000, le=3_600_000)
    reject_next: int = Field(0, ge=0)
    reject_code: int = Field(10016, ge=1)
    reject_message: str = "Server error"
    drop_order_responses: int = Field(0, ge=0)
    drop_order_responses_fraction: float = Field(0.0, ge=0, le=1)
    reject_link_ids: str | None = None
    unfilled: bool = False
    partial_fill_fraction: float | None = Field(None, gt=0, lt=1)
    partial_fill_orders: int | None = Field(None, ge=0)
    reject_skip: int = Field(0, ge=0)
    rate_limit_per_s: int | None = Field(None, ge=1)
    key_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1"])  # /v5/user/query-api: "*" is unbound
    key_wallet: bool = False  # the key may move funds (Wallet permission)

    @field_validator("reject_link_ids")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def apply(self, changes: object) -> None:
        """Change the given settings, all or none; raises FaultError naming what is wrong."""
        if not isinstance(changes, dict):
            raise FaultError("faults are a JSON object, e.g. {\"latency_ms\": 50}")
        try:
            merged = Faults.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise FaultError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        for name in changes:
            setattr(self, name, getattr(merged, name))

    def delay_s(self, rng: random.Random) -> float:
        return max(0.0, self.latency_ms + rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000

    def take_dropped_response(self, rng: random.Random) -> bool:
        """Whether this order create's answer is to be lost (one of the next K, or by chance)."""
        if self.drop_order_responses > 0:
            self.drop_order_responses -= 1
            return True
        return self.drop_order_responses_fraction > 0 and rng.random() < self.drop_order_responses_fraction

    def rejects_link_id(self, link_id: object) -> tuple[int, str] | None:
        """The retCode and message for a create with this orderLinkId, if `reject_link_ids` matches it."""
        if self.reject_link_ids is None or not isinstance(link_id, str) or not re.search(self.reject_link_ids,
                                                                                          link_id):
            return None
        return self.reject_code, self.reject_message

    def take_rejection(self) -> tuple[int, str] | None:
        """The retCode and message for this signed request, if it is one of the next K."""
        if self.reject_next <= 0:
            return None
        if self.reject_skip > 0:
            self.reject_skip -= 1
            return None
        self.reject_next -= 1
        return self.reject_code, self.reject_message
