"""A scripted Binance USD-M for the Binance client's tests: REST answers queued per (method,
path), every signed request's signature and timestamp checked as Binance checks them (over the
query string as received), and the answers' limit headers set by the test.

An answer is a body (HTTP 200), `(status, body)`, `(status, body, headers)`, `DROP` (the
connection closed unanswered) or a callable of the request; the last answer queued for an
endpoint repeats.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import web

from shared.venues.binance.signing import API_KEY_HEADER, signature, timestamp_accepted

KEY, SECRET = "binance-test-key", "binance-test-secret"
DROP = "drop"


def error(code: int, message: str = "", status: int = 400) -> tuple[int, dict]:
    return status, {"code": code, "msg": message}


@dataclass
class FakeBinance:
    clock_ms: int = 0  # Binance's clock minus the test's (a skewed server)
    answers: dict[tuple[str, str], list] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    time_asked: int = 0

    def answer(self, method: str, path: str, *answers: object) -> None:
        self.answers.setdefault((method, path), []).extend(answers)

    def sent(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._rest)
        return app

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_ms

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/fapi/v1/time":
            self.time_asked += 1
            return web.json_response({"serverTime": self._now_ms()})
        raw = request.rel_url.raw_query_string
        params = dict(parse_qsl(raw))
        self.requests.append({"method": request.method, "path": request.path, "params": params, "raw": raw,
                              "headers": dict(request.headers)})
        if "signature" in params:
            if request.headers.get(API_KEY_HEADER) != KEY:
                return web.json_response({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                                         status=401)
            if not timestamp_accepted(int(params["timestamp"]), self._now_ms(), int(params.get("recvWindow", 5000))):
                return web.json_response({"code": -1021, "msg": "Timestamp for this request is outside of the "
                                                                "recvWindow."}, status=400)
            unsigned, _, sent = raw.rpartition("&signature=")
            if sent != signature(SECRET, unsigned):
                return web.json_response({"code": -1022, "msg": "Signature for this request is not valid."},
                                         status=400)
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return web.json_response({"code": -1, "msg": f"no answer scripted for {request.path}"}, status=410)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer == DROP:
            request.transport.close()
            raise asyncio.CancelledError
        if callable(answer):
            answer = answer(self.requests[-1])
        status, body, headers = (*answer, {})[:3] if isinstance(answer, tuple) else (200, answer, {})
        headers = {**self.headers, **headers}
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)
