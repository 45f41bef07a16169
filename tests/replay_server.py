"""A WebSocket server for tests that replays recorded Bybit frames to a real client.

It answers subscribes and pings as Bybit does, then sends the recorded frames in order; a
plain HTTP GET of the instruments list gets Bybit's real (trimmed) one.
Per connection it can drop the socket after N frames, stay silent, refuse the subscribe,
or skip a frame (a lost book delta), and it records every request it received.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus

import websockets

from tests.conftest import BYBIT_SAMPLES

INSTRUMENTS = BYBIT_SAMPLES / "rest_instruments_info_linear_trimmed_2026-08.json"


@dataclass
class Plan:
    drop_after: int | None = None  # abort the TCP connection after this many frames
    silent: bool = False  # ack nothing, send nothing
    refuse: str | None = None  # answer subscribes with success false and this message
    skip: set[int] = field(default_factory=set)  # frame indexes not sent


class ReplayServer:
    def __init__(self, frames: list[bytes], plans: list[Plan] | None = None) -> None:
        self.frames = [f for f in frames if b'"op":"subscribe"' not in f]  # acks are answered live
        self.plans = plans or []
        self.requests: list[list[dict]] = []  # per connection, every message the client sent
        self.sent: list[int] = []  # per connection, frames sent
        self.finished = asyncio.Event()  # a connection sent all its frames
        self._server = None

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v5/public/linear"

    async def __aenter__(self) -> ReplayServer:
        self._server = await websockets.serve(self._handle, "127.0.0.1", 0, process_request=self._http)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    @staticmethod
    def _http(connection, request):
        if request.path.startswith("/v5/market/instruments-info"):
            return connection.respond(HTTPStatus.OK, INSTRUMENTS.read_text())
        return None  # a WebSocket upgrade

    async def _handle(self, ws) -> None:
        index = len(self.requests)
        plan = self.plans[index] if index < len(self.plans) else Plan()
        requests: list[dict] = []
        self.requests.append(requests)
        self.sent.append(0)
        subscribed = asyncio.Event()

        async def answer() -> None:
            async for message in ws:
                request = json.loads(message)
                requests.append(request)
                if plan.silent:
                    continue
                op = request.get("op")
                if op in ("subscribe", "unsubscribe"):
                    ok = plan.refuse is None
                    await ws.send(json.dumps({"success": ok, "ret_msg": plan.refuse or "", "conn_id": "t",
                                              "req_id": request.get("req_id", ""), "op": op}))
                    subscribed.set()
                elif op == "ping":
                    await ws.send(json.dumps({"success": True, "ret_msg": "pong", "conn_id": "t",
                                              "req_id": request.get("req_id", ""), "op": "ping"}))

        answering = asyncio.ensure_future(answer())
        waiting = asyncio.ensure_future(subscribed.wait())
        try:
            await asyncio.wait({answering, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if subscribed.is_set() and plan.refuse is None:
                for i, frame in enumerate(self.frames):
                    if plan.drop_after is not None and self.sent[index] >= plan.drop_after:
                        ws.transport.abort()
                        return
                    if i in plan.skip:
                        continue
                    await ws.send(frame.decode())
                    self.sent[index] += 1
                self.finished.set()
            await answering
        except websockets.ConnectionClosed:
            pass
        finally:
            answering.cancel()
            waiting.cancel()

    def subscribed_topics(self, connection: int) -> list[str]:
        return [arg for r in self.requests[connection] if r.get("op") == "subscribe" for arg in r["args"]]
