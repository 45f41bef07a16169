"""Binance USD-M trading on the simulator's server: the signed REST of binance_trade.py, the
listenKey endpoints and the user-data stream `/private/ws?listenKey=<key>`, over Binance's own
accounts (a matching engine of its own on Binance's shifted book, book_view.ShiftedBook).
Every key the simulator knows (key -> secret) is a Binance key too, on an account of its own.

User-data stream (protocol-trading-okx-bitget-binance.md §4.5):

    POST   /fapi/v1/listenKey   (X-MBX-APIKEY only) -> {"listenKey": "..."}: the account's active
           key, extended by 60 minutes, or a new one
    PUT    /fapi/v1/listenKey   -> {"listenKey": "..."}, extended; -1125 when it has expired
    DELETE /fapi/v1/listenKey   -> {}
    GET    /private/ws?listenKey=<key>   (an unknown or expired key: HTTP 400, -1125)

The stream sends `ORDER_TRADE_UPDATE` (NEW, each TRADE, then CANCELED or EXPIRED) and
`ACCOUNT_UPDATE` (reason ORDER after fills, FUNDING_FEE after funding) events; whatever a client
sends is ignored. A key not kept alive expires 60 minutes (of the simulator's clock) after it
was last extended: its streams get `{"e": "listenKeyExpired", ...}` and nothing more.

Faults act as on Bybit and OKX: latency, dropped order answers (`POST /fapi/v1/order` carried
out, the connection cut before the answer), reject_next / reject_link_ids (`newClientOrderId`;
the code mapped by binance_trade.fault_code), unfilled and partial fills, disconnects, clock
skew and rate_limit_per_s (-1003, HTTP 429). `key_wallet` / `key_ips` show in
`/sapi/v1/account/apiRestrictions` (the spot host's, served here too).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import msgspec
from aiohttp import WSMsgType, web

from services.sim import binance_private, binance_trade
from services.sim.binance_auth import BinanceGate, Refusal, parameters
from services.sim.book_view import ShiftedBook
from services.sim.journal import Request
from services.sim.matching import Matching

log = logging.getLogger("arb.sim.binance")
_encode = msgspec.json.encode
PLACE_ORDER = "/fapi/v1/order"
LISTEN_KEY = "/fapi/v1/listenKey"
LISTEN_KEY_LIFE_MS = 60 * 60_000
LISTEN_KEY_GONE = Refusal(-1125, "This listenKey does not exist. Please use `POST /fapi/v1/listenKey` to recreate "
                                 "`listenKey`")


class BinanceTrading:
    """Binance's accounts on a SimServer: their engine, signed routes, listenKeys and user-data streams."""

    def __init__(self, server, api_keys: dict[str, str] | None) -> None:
        self.server = server
        self.gate = BinanceGate(api_keys or {})
        self.matching = Matching(server.model, new_id=binance_trade.new_ids(), policy=server.faults,
                                 view=ShiftedBook(server.model, "binance"), rules=binance_trade.RULES)
        self.streams: dict[str, set] = {}  # API key -> its user-data streams
        self.listen_keys: dict[str, tuple[str, int]] = {}  # listenKey -> (API key, expiry ms)
        self._announced: set[str] = set()  # orders whose NEW event went out

    def add_routes(self, app: web.Application) -> None:
        for (method, path), (handler, weight, order) in binance_trade.HANDLERS.items():
            app.router.add_route(method, path, self._signed(handler, weight, order))
        for method in ("POST", "PUT", "DELETE"):
            app.router.add_route(method, LISTEN_KEY, self._listen_key)
        app.router.add_get("/private/ws", self._private_ws)

    # --- REST --------------------------------------------------------------------------

    def _refuse(self, now: int, path: str, key: str | None, refusal: Refusal, headers=None) -> web.Response:
        self.server.journal.append(Request(now, path, key, refusal.code))
        return web.json_response(refusal.body(), status=refusal.http_status, headers={**(headers or {}),
                                                                                      **refusal.headers})

    def _signed(self, handler, weight: int, order: bool):
        server = self.server

        async def route(request: web.Request) -> web.StreamResponse:
            await server._latency()
            body = await request.text() if request.can_read_body else ""
            raw_query = request.rel_url.raw_query_string
            now = server._now_ms()
            key, refused = self.gate.check(request.headers, raw_query, body, now)
            if refused is not None:
                return self._refuse(now, request.path, key, refused)
            if (refused := self.gate.allow(key, request.method, request.path, now,
                                           server.faults.rate_limit_per_s)) is not None:
                return self._refuse(now, request.path, key, refused)
            headers, refused = self.gate.count(key, now, weight, order)
            if refused is not None:
                return self._refuse(now, request.path, key, refused)
            params = parameters(raw_query, body)
            if (rejection := server.faults.take_rejection()) is not None or (
                    order and (rejection := server.faults.rejects_link_id(params.get("newClientOrderId"))) is not None):
                code = binance_trade.fault_code(rejection[0])
                error = binance_trade.BinanceError(code, binance_trade.MESSAGES.get(code, rejection[1]))
                status, answer = error.http_status, error.body()
            else:
                status, answer, code = binance_trade.answer(handler, self.matching, key, params, now)
                self.push(now)
            dropped = order and server.faults.take_dropped_response(server._fault_rng)
            server.journal.append(Request(now, request.path, key, code, params.get("newClientOrderId") or None,
                                          binance_trade.reduces_only(params) if order else False, dropped))
            if dropped:
                log.info("fault: Binance order %s carried out, its answer dropped", answer.get("orderId"))
                request.transport.abort()
                raise ConnectionResetError("answer dropped by the drop_order_responses fault")
            if code in (-1003, -1015):
                headers["Retry-After"] = "1"
            return web.json_response(answer, status=status, headers=headers)

        return route

    async def _listen_key(self, request: web.Request) -> web.Response:
        """POST a key (the active one extended, or a new one), PUT extend it, DELETE close it."""
        server = self.server
        await server._latency()
        now = server._now_ms()
        key, refused = self.gate.key(request.headers)
        if refused is not None:
            return self._refuse(now, request.path, None, refused)
        headers, refused = self.gate.count(key, now, 1, False)
        if refused is not None:
            return self._refuse(now, request.path, key, refused, headers)
        active = next((k for k, (owner, expiry) in self.listen_keys.items() if owner == key and expiry > now), None)
        if request.method == "DELETE":
            if active is not None:
                del self.listen_keys[active]
            return web.json_response({}, headers=headers)
        if active is None:
            if request.method == "PUT":
                return self._refuse(now, request.path, key, LISTEN_KEY_GONE, headers)
            active = uuid.uuid4().hex + uuid.uuid4().hex
        self.listen_keys[active] = (key, now + LISTEN_KEY_LIFE_MS)
        return web.json_response({"listenKey": active}, headers=headers)

    # --- the user-data stream -------------------------------------------------------------

    async def _private_ws(self, request: web.Request) -> web.StreamResponse:
        from services.sim.server import _Client  # the server imports this module

        server = self.server
        listen_key = request.query.get("listenKey", "")
        owner, expiry = self.listen_keys.get(listen_key, (None, 0))
        if owner is None or expiry <= server._now_ms():
            return web.json_response(LISTEN_KEY_GONE.body(), status=400)
        ws = web.WebSocketResponse(max_msg_size=1 << 20)  # autoping: a client's ping is answered
        await ws.prepare(request)
        client = _Client(ws, request.path, server._delay_s)
        client.api_key = owner
        client.topics.add(listen_key)
        server.clients.add(client)
        self.streams.setdefault(owner, set()).add(client)
        sender = asyncio.ensure_future(server._send_loop(client))
        try:
            async for message in ws:  # Binance's user-data stream takes no requests
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            server.clients.discard(client)
            self.streams.get(owner, set()).discard(client)
            client.queue.put_nowait(None)
            await sender
        return ws

    def _expire(self, now_ms: int) -> None:
        for listen_key, (owner, expiry) in list(self.listen_keys.items()):
            if expiry > now_ms:
                continue
            del self.listen_keys[listen_key]
            frame = _encode({"e": "listenKeyExpired", "E": now_ms, "listenKey": listen_key})
            for client in [c for c in self.streams.get(owner, ()) if listen_key in c.topics]:
                client.send(frame)
                self.streams[owner].discard(client)  # connected, and told nothing more
            log.info("Binance listenKey of %s expired", owner[:4] + "...")

    def push(self, now_ms: int) -> None:
        """Send each Binance account's changes to its user-data streams; expire listenKeys not kept alive."""
        self._expire(now_ms)
        m = self.matching
        for key, changes in m.take_changes().items():
            events = binance_private.order_events(m, changes, self._announced, now_ms)
            clients = self.streams.get(key)
            if not clients:
                continue
            events += binance_private.account_events(m, m.account(key), changes, now_ms)
            frames = [_encode(e) for e in events]
            for client in clients:
                for frame in frames:
                    client.send(frame)
