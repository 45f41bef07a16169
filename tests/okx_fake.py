"""A scripted OKX for the OKX client's tests: REST answers queued per (method, path), every
signature checked as OKX checks it (over the path and query as received, and the body), and a
private stream whose login and pushes the test controls.

An answer is a body (HTTP 200), `(status, body)`, `DROP` (the connection closed unanswered)
or `Sleep(seconds, answer)`; the last answer queued for an endpoint repeats.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

from shared.venues.okx.signing import signature, timestamp_accepted, timestamp_ms, websocket_login_signature

KEY, SECRET, PASSPHRASE = "okx-test-key", "okx-test-secret", "okx-test-pass"
DROP = "drop"


@dataclass
class Sleep:
    seconds: float
    answer: object


def ok(*rows: dict) -> dict:
    return {"code": "0", "msg": "", "data": list(rows)}


def refused(code: str, message: str = "", **row) -> dict:
    """A single order refused: the envelope's code "1" and the order's sCode/sMsg."""
    return {"code": "1", "msg": "", "data": [{"clOrdId": "", "ordId": "", "sCode": code, "sMsg": message, **row}]}


@dataclass
class FakeOkx:
    demo: bool = False
    clock_ms: int = 0  # OKX's clock minus the test's (a skewed server)
    answers: dict[tuple[str, str], list] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    # the private stream: what login answers (None: success), pushes sent after subscribing, and every message heard
    ws_login: list[dict | None] = field(default_factory=list)
    ws_pushes: list[dict] = field(default_factory=list)
    ws_heard: list[object] = field(default_factory=list)
    ws_answer_pings: bool = True
    ws_connections: int = 0
    time_asked: int = 0

    def answer(self, method: str, path: str, *answers: object) -> None:
        self.answers.setdefault((method, path), []).extend(answers)

    def sent(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws/v5/private", self._private)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        return app

    def _now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_ms

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/api/v5/public/time":
            self.time_asked += 1
            return web.json_response(ok({"ts": str(self._now_ms())}))
        body = await request.text()
        headers = request.headers
        stamp = headers.get("OK-ACCESS-TIMESTAMP", "")
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "body": json.loads(body) if body else None, "headers": dict(headers)})
        if headers.get("OK-ACCESS-KEY") != KEY:
            return web.json_response({"code": "50111", "msg": "Invalid OK-ACCESS-KEY", "data": []}, status=401)
        if headers.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return web.json_response({"code": "50105", "msg": "Request header OK-ACCESS-PASSPHRASE incorrect.",
                                      "data": []}, status=401)
        if (headers.get("x-simulated-trading") == "1") != self.demo:
            return web.json_response({"code": "50101", "msg": "APIKey does not match current environment.",
                                      "data": []}, status=401)
        try:
            stamp_ms = timestamp_ms(stamp)
        except ValueError:
            return web.json_response({"code": "50112", "msg": "Invalid OK-ACCESS-TIMESTAMP", "data": []}, status=401)
        if not timestamp_accepted(stamp_ms, self._now_ms()):
            return web.json_response({"code": "50102", "msg": "Timestamp request expired", "data": []}, status=401)
        if headers.get("OK-ACCESS-SIGN") != signature(SECRET, stamp, request.method, request.path_qs, body):
            return web.json_response({"code": "50113", "msg": "Invalid Sign", "data": []}, status=401)
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return web.json_response({"code": "50005", "msg": f"no answer scripted for {request.path}"}, status=410)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return await self._give(request, answer)

    async def _give(self, request: web.Request, answer: object) -> web.StreamResponse:
        if isinstance(answer, Sleep):
            await asyncio.sleep(answer.seconds)
            answer = answer.answer
        if answer == DROP:
            request.transport.close()
            raise asyncio.CancelledError
        if callable(answer):
            answer = answer(self.requests[-1])
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    async def _private(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connections += 1
        async for message in ws:
            text = message.data
            self.ws_heard.append(text)
            if text == "ping":
                if self.ws_answer_pings:
                    await ws.send_str("pong")
                continue
            data = json.loads(text)
            if data.get("op") == "login":
                refusal = self.ws_login.pop(0) if self.ws_login else None
                if refusal is None:
                    refusal = self._login_refusal(data["args"][0])
                if refusal is not None:
                    await ws.send_json({"event": "error", **refusal, "connId": "c1"})
                    await ws.close()
                    break
                await ws.send_json({"event": "login", "code": "0", "msg": "", "connId": "c1"})
            elif data.get("op") == "subscribe":
                for arg in data["args"]:
                    await ws.send_json({"id": data.get("id", ""), "event": "subscribe", "arg": arg, "connId": "c1"})
                for push in self.ws_pushes:
                    await (ws.send_str(push) if isinstance(push, str) else ws.send_json(push))
        return ws

    def _login_refusal(self, args: dict) -> dict | None:
        if args.get("apiKey") != KEY:
            return {"code": "60005", "msg": "Invalid apiKey"}
        if args.get("passphrase") != PASSPHRASE:
            return {"code": "60024", "msg": "Wrong passphrase"}
        if abs(int(args["timestamp"]) - self._now_ms() // 1000) > 30:
            return {"code": "60006", "msg": "Timestamp request expired"}
        if args.get("sign") != websocket_login_signature(SECRET, args["timestamp"]):
            return {"code": "60007", "msg": "Invalid sign"}
        return None
